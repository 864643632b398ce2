"""The TURN bootstrap, and the stream pod's readiness probe and drain hook, run for real (bash) against fakes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import APP
from fake_kube import node, secret_file, serve

from pixelstream.workloads.pixel_streaming.streaming import (
    SIGNALLING_PLAYER_PORT,
    StreamerSettings,
    drain_hook,
    streamer_connected_probe,
)


def run_bootstrap(tmp_path: Path, node_object: dict) -> subprocess.CompletedProcess:
    template = tmp_path / "turnserver.conf"
    template.write_text("listening-port=3478\nuse-auth-secret\n")
    with serve({("GET", "/api/v1/nodes/turn-a"): lambda call: (200, node_object)}) as kube:
        env = {
            **os.environ,
            **kube.env(tmp_path),
            "NODE_NAME": "turn-a",
            "TURN_SECRET_FILE": secret_file(tmp_path, "s3cret"),
            "TEMPLATE": str(template),
            "OUTPUT": str(tmp_path / "out.conf"),
        }
        return subprocess.run(
            [sys.executable, str(APP / "turn_bootstrap.py")], env=env, capture_output=True, text=True, timeout=30
        )


def test_bootstrap_completes_the_config_for_its_node(tmp_path: Path) -> None:
    result = run_bootstrap(tmp_path, node("turn-a", "203.0.113.10"))
    assert result.returncode == 0, result.stderr
    written = tmp_path / "out.conf"
    assert written.read_text() == (
        "listening-port=3478\nuse-auth-secret\n"
        "listening-ip=10.0.30.6\nrelay-ip=10.0.30.6\nexternal-ip=203.0.113.10/10.0.30.6\n"
        "prometheus-address=10.0.30.6\nstatic-auth-secret=s3cret\n"
    )
    assert written.stat().st_mode & 0o077 == 0, "the secret-bearing file is private"
    assert "s3cret" not in result.stdout + result.stderr


def test_bootstrap_refuses_a_node_without_public_ip(tmp_path: Path) -> None:
    result = run_bootstrap(tmp_path, node("turn-a", None))
    assert result.returncode == 1
    assert "has no public IP" in result.stderr
    assert not (tmp_path / "out.conf").exists()


class Status:
    """A signalling server's /api/status (Wilbur, SignallingWebServer/src/paths/status.ts: compact JSON from
    express) with settable streamer and player counts."""

    def __init__(self) -> None:
        self.streamers = 1
        self.players = 0
        self.requests = 0
        status = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status.requests += 1
                counts = {"uptime": 5, "streamer_count": status.streamers, "player_count": status.players}
                body = json.dumps({**counts, "version": "3.1.0"}, separators=(",", ":")).encode()
                self.send_response(200 if self.path == "/api/status" else 404)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def status():
    s = Status()
    yield s
    s.close()


def test_a_stream_pod_is_ready_exactly_while_its_streamer_is_connected(status: Status) -> None:
    probe = streamer_connected_probe(period=5)["exec"]["command"]
    assert probe[:2] == ["bash", "-c"] and probe[4:] == [str(SIGNALLING_PLAYER_PORT), "streamer_count"]

    def ready(port: int) -> bool:
        return subprocess.run([*probe[:4], str(port), "streamer_count"], timeout=10).returncode == 0

    assert ready(status.port)
    status.streamers = 0
    assert not ready(status.port), "the Unreal app has not connected (or has gone)"
    status.streamers = 12
    assert ready(status.port)
    status.server.shutdown()  # still accepting connections, no longer answering them
    start = time.monotonic()
    assert not ready(status.port) and time.monotonic() - start < 5, "a hung signalling server"
    status.server.server_close()
    assert not ready(status.port), "no signalling server at all"


def test_drain_hook_keeps_unreal_alive_while_its_player_remains(status: Status) -> None:
    command = drain_hook(StreamerSettings(drain_seconds=120))["preStop"]["exec"]["command"]
    assert command[:2] == ["bash", "-c"] and command[4:] == [str(SIGNALLING_PLAYER_PORT), "player_count", "24", "5"]
    script = command[2]

    def drain(checks: int) -> tuple[int, float]:
        start = time.monotonic()
        arguments = [str(status.port), "player_count", str(checks), "0.2"]
        result = subprocess.run(["bash", "-c", script, "drain", *arguments], timeout=30)
        return result.returncode, time.monotonic() - start

    status.players = 0
    code, elapsed = drain(50)
    assert code == 0 and elapsed < 1.5, "no player: the app stops at once"

    status.players = 1
    threading.Timer(1.0, lambda: setattr(status, "players", 0)).start()
    code, elapsed = drain(50)
    assert code == 0 and 0.9 <= elapsed < 5, "waits until the player leaves"

    status.players = 1
    requests = status.requests
    code, elapsed = drain(4)
    assert elapsed >= 0.6 and status.requests - requests == 4, "gives up after its checks; Kubernetes then stops it"


def test_the_tls_reloader_signals_coturn_once_per_renewal_and_retries_a_signal_that_failed(tmp_path: Path) -> None:
    import tls_reloader

    certificate = tmp_path / "tls"
    certificate.mkdir()
    pid_file = tmp_path / "turnserver.pid"
    received = tmp_path / "received"
    # Stands in for coturn: counts the SIGUSR2 it gets.
    program = (
        "import signal, sys, time\n"
        "def reload(*_):\n    open(sys.argv[1], 'a').write('reload\\n')\n"
        "signal.signal(signal.SIGUSR2, reload)\nprint('ready', flush=True)\ntime.sleep(30)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", program, str(received)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "ready"
        assert tls_reloader.step(certificate, pid_file, None) is None, "no certificate yet: nothing to do"
        (certificate / "tls.crt").write_text("first")
        (certificate / "tls.key").write_text("first key")
        seen = tls_reloader.step(certificate, pid_file, None)
        assert seen is not None and not received.exists(), "the first look is what coturn started with"
        assert tls_reloader.step(certificate, pid_file, seen) == seen, "unchanged: no signal"
        (certificate / "tls.crt").write_text("renewed")
        assert tls_reloader.step(certificate, pid_file, seen) == seen, "no pidfile yet: kept to try again"
        pid_file.write_text(f"{process.pid}\n")
        renewed = tls_reloader.step(certificate, pid_file, seen)
        assert renewed != seen
        time.sleep(0.3)
        assert received.read_text() == "reload\n"
        assert tls_reloader.step(certificate, pid_file, renewed) == renewed
        time.sleep(0.3)
        assert received.read_text() == "reload\n", "one signal per renewal"
    finally:
        process.kill()
