"""TURN drain hold: one pod on each TURN node that keeps the node while its relayed sessions last.

A node drain (OKE's node pool cycling or scale-in) evicts the node's pods and deletes the node once they are gone,
but it does not evict DaemonSet pods, coturn's among them: without a pod that waits, a TURN node would go with
every session it relays. This pod is evicted like any other; on SIGTERM it waits until the node's coturn holds
no allocation (its Prometheus gauge `turn_total_allocations`, prom_server.c at coturn 4.17.1, read from the node's
address), then exits, and the node may go. The drain has cordoned the node already, so the session service gives it
to no new player; the pod's termination grace bounds the wait. A coturn silent for a minute holds nothing.

Environment: HOST_IP (the node's address), METRICS_PORT (coturn's exporter), CHECK_SECONDS (5), SILENT_SECONDS
(60).
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
import time
import urllib.request
from collections.abc import Callable

_SAMPLE = re.compile(r"^turn_total_allocations(?:\{[^}]*\})?\s+([0-9.eE+-]+)\s*$", re.MULTILINE)


def allocations(metrics: str) -> int:
    """The allocations coturn holds now: the gauge's samples (one per transport) added up."""
    return round(sum(float(value) for value in _SAMPLE.findall(metrics)))


def read_metrics(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.read().decode()
    except OSError:
        return None


def wait_for_sessions(
    read: Callable[[], str | None], check_seconds: float, silent_seconds: float, log: Callable[[str], None]
) -> None:
    """Returns once coturn holds no allocation, or has not answered for `silent_seconds` (a slow answer or a
    restart is not the end of its sessions)."""
    silent_since: float | None = None
    while True:
        metrics = read()
        if metrics is None:
            silent_since = time.monotonic() if silent_since is None else silent_since
            if time.monotonic() - silent_since >= silent_seconds:
                log(f"coturn has not answered for {silent_seconds:g} s: nothing to hold the node for")
                return
            time.sleep(check_seconds)
            continue
        silent_since = None
        held = allocations(metrics)
        if held == 0:
            log("no relayed session left: the node may go")
            return
        log(f"{held} allocations still relayed: holding the node")
        time.sleep(check_seconds)


def main() -> int:
    url = f"http://{os.environ['HOST_IP']}:{os.environ['METRICS_PORT']}/metrics"
    check_seconds = float(os.environ.get("CHECK_SECONDS", "5"))
    silent_seconds = float(os.environ.get("SILENT_SECONDS", "60"))
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    stopping.wait()

    def log(message: str) -> None:
        print(f"turn-drain-hold: {message}", file=sys.stderr, flush=True)

    wait_for_sessions(lambda: read_metrics(url), check_seconds, silent_seconds, log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
