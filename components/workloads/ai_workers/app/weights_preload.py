"""Fill the weights volume for one runner, then get out of the way.

Runs as an init container of a worker pod, with the runner's own image, before the runners that serve jobs:
it starts the runner's server on loopback exactly as the runner will (so it downloads exactly the files that
runner's pipeline loads, and no more), waits until the server answers /health with anything but ERROR (a runner
loads its model before it answers), then stops it and exits 0. The runners that then serve jobs mount the
volume read-only, with downloads off: a runner that a crafted job input takes over cannot change the weights
the next pod, or another worker on the node, loads.

Usage: weights_preload.py <port> <timeout-seconds> -- <runner server command...>
Exits 1 when the server exits first, reports ERROR, or has not loaded the model in time (the pod then restarts
this container, and a download resumes from Hugging Face's cache).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

POLL_SECONDS = 5
STOP_SECONDS = 30


def runner_state(port: int) -> str | None:
    """The runner's reported status, or None while it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
            return str(json.load(response)["status"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def preload(port: int, timeout: float, command: list[str]) -> int:
    server = subprocess.Popen(command)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                print(f"the runner exited with {server.returncode} before its model loaded", flush=True)
                return 1
            state = runner_state(port)
            if state == "ERROR":
                print("the runner reports ERROR while loading its model", flush=True)
                return 1
            if state is not None:
                print(f"the model is loaded (runner status {state}); its weights are on the volume", flush=True)
                return 0
            time.sleep(POLL_SECONDS)
        print(f"the runner did not load its model within {timeout:.0f} s", flush=True)
        return 1
    finally:
        server.terminate()
        try:
            server.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def main(argv: list[str]) -> int:
    if len(argv) < 5 or argv[3] != "--":
        print(__doc__.split("\n\n")[2], file=sys.stderr)
        return 2
    return preload(int(argv[1]), float(argv[2]), argv[4:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
