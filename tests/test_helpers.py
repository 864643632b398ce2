"""The TURN bootstrap, the pod-deletion-cost agent and the stream drain hook, run for real against fakes."""

from __future__ import annotations

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

from pixelstream.streaming import StreamerSettings, drain_hook


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


class Gauge:
    """A signalling server's /custom metrics endpoint with a settable player count."""

    def __init__(self) -> None:
        self.players = 0
        self.requests = 0
        gauge = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                gauge.requests += 1
                metric = "signalserver_player_socket_connections"
                body = f"# TYPE {metric} gauge\n{metric} {gauge.players}\n".encode()
                self.send_response(200)
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


@pytest.fixture
def gauge():
    g = Gauge()
    yield g
    g.close()


def test_deletion_cost_follows_players_and_patches_only_on_change(tmp_path: Path, gauge: Gauge, monkeypatch) -> None:
    import deletion_cost

    pod = {"metadata": {"name": "stream-a", "annotations": {deletion_cost.ANNOTATION: "0"}}}
    path = "/api/v1/namespaces/pixel/pods/stream-a"
    with serve({("GET", path): lambda call: (200, pod), ("PATCH", path): lambda call: (200, pod)}) as kube:
        for key, value in kube.env(tmp_path).items():
            monkeypatch.setenv(key, value)
        agent = deletion_cost.Agent("pixel", "stream-a", f"http://127.0.0.1:{gauge.port}/custom")
        agent.start()
        assert agent.step() is False, "0 players and cost 0 already: nothing to send"
        gauge.players = 2
        assert agent.step() is True
        assert agent.step() is False
        gauge.players = 0
        assert agent.step() is True
        patches = [c for c in kube.calls if c.method == "PATCH"]
        assert [c.body for c in patches] == [
            {"metadata": {"annotations": {deletion_cost.ANNOTATION: "2"}}},
            {"metadata": {"annotations": {deletion_cost.ANNOTATION: "0"}}},
        ]
        assert {c.content_type for c in patches} == {"application/merge-patch+json"}
        assert {c.path for c in kube.calls} == {path}, "only its own pod"


def test_drain_hook_keeps_unreal_alive_while_players_remain(gauge: Gauge) -> None:
    command = drain_hook(StreamerSettings(drain_seconds=120))["preStop"]["exec"]["command"]
    assert command[:2] == ["bash", "-c"] and command[4:] == ["24", "9000", "5"]
    script = command[2]

    def drain(checks: int) -> tuple[int, float]:
        start = time.monotonic()
        result = subprocess.run(["bash", "-c", script, "drain", str(checks), str(gauge.port), "0.2"], timeout=30)
        return result.returncode, time.monotonic() - start

    gauge.players = 0
    code, elapsed = drain(50)
    assert code == 0 and elapsed < 1.5, "no players: the app stops at once"

    gauge.players = 1
    threading.Timer(1.0, lambda: setattr(gauge, "players", 0)).start()
    code, elapsed = drain(50)
    assert code == 0 and 0.9 <= elapsed < 5, "waits until the last player leaves"

    gauge.players = 3
    requests = gauge.requests
    code, elapsed = drain(4)
    assert elapsed >= 0.6 and gauge.requests - requests == 4, "gives up after its checks; Kubernetes then stops the app"
