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

from pixelstream.workloads.pixel_streaming.streaming import StreamerSettings, drain_hook


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


def run_agent(tmp_path: Path, monkeypatch, annotations: dict, gauge: Gauge, players: list[int]):
    """Start the agent on a pod with `annotations`, step once per player count; the PATCH calls sent."""
    import deletion_cost

    pod = {"metadata": {"name": "stream-a", "annotations": annotations}}
    path = "/api/v1/namespaces/pixel/pods/stream-a"
    with serve({("GET", path): lambda call: (200, pod), ("PATCH", path): lambda call: (200, pod)}) as kube:
        for key, value in kube.env(tmp_path).items():
            monkeypatch.setenv(key, value)
        agent = deletion_cost.Agent("pixel", "stream-a", f"http://127.0.0.1:{gauge.port}/custom")
        agent.start()
        sent = []
        for count in players:
            gauge.players = count
            sent.append(agent.step())
        assert {c.path for c in kube.calls} == {path}, "only its own pod"
        patches = [c for c in kube.calls if c.method == "PATCH"]
        assert {c.content_type for c in patches} in ({"application/merge-patch+json"}, set())
        return sent, [c.body["metadata"]["annotations"] for c in patches]


def test_deletion_cost_follows_players_and_patches_only_on_change(tmp_path: Path, gauge: Gauge, monkeypatch) -> None:
    import deletion_cost

    cost, evict = deletion_cost.ANNOTATION, deletion_cost.SAFE_TO_EVICT
    sent, patches = run_agent(tmp_path, monkeypatch, {cost: "0"}, gauge, [0, 2, 2, 3, 0, 0])
    assert sent == [False, True, False, True, True, False], "0 players and cost 0 already: nothing to send"
    assert patches == [
        {cost: "2", evict: "false"},
        {cost: "3", evict: "false"},
        {cost: "0", evict: None},
    ], "not evictable while players are connected; the annotation is removed (null) once drained"


def test_deletion_cost_agent_repairs_annotations_after_a_restart(tmp_path: Path, gauge: Gauge, monkeypatch) -> None:
    import deletion_cost

    cost, evict = deletion_cost.ANNOTATION, deletion_cost.SAFE_TO_EVICT
    _, patches = run_agent(tmp_path, monkeypatch, {cost: "2"}, gauge, [2])
    assert patches == [{cost: "2", evict: "false"}], "the cost was right, the eviction guard missing"
    sent, patches = run_agent(tmp_path, monkeypatch, {cost: "0", evict: "false"}, gauge, [0])
    assert sent == [True] and patches == [{cost: "0", evict: None}], "a stale guard from before the restart goes"


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
