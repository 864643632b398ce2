"""coturn, Debian's real turnserver, with the configuration this program renders and the TURN bootstrap
completes; only the listening addresses and ports are moved to loopback test values.

Credentials come from the ICE config service's own code; a small TURN client (tests/stun.py) speaks to it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import APP, ROOT, free_port
from fake_kube import node, secret_file, serve
from stun import SOFTWARE, XOR_RELAYED_ADDRESS, TurnClient
from tools import require

from pixelstream.offline import plan_stack

SECRET = "coturn-test-static-auth-secret"


def rendered_config(directory: Path) -> str:
    """The deployed template from the dev plan, completed by the real bootstrap for a TURN node."""
    plan, _ = plan_stack("dev", ROOT)
    template = directory / "template.conf"
    template.write_text(plan.manifests()["pixel.configmap.coturn.yaml"]["data"]["turnserver.conf"])
    output = directory / "turnserver.conf"
    with serve({("GET", "/api/v1/nodes/turn-a"): lambda call: (200, node("turn-a", "203.0.113.10"))}) as kube:
        env = {
            **os.environ,
            **kube.env(directory),
            "NODE_NAME": "turn-a",
            "TURN_SECRET_FILE": secret_file(directory, SECRET),
            "TEMPLATE": str(template),
            "OUTPUT": str(output),
        }
        subprocess.run([sys.executable, str(APP / "turn_bootstrap.py")], env=env, check=True, capture_output=True)
    return output.read_text()


def on_loopback(config: str, port: int, metrics_port: int) -> str:
    moved = []
    for line in config.splitlines():
        key = line.split("=", 1)[0]
        if key in ("listening-ip", "relay-ip"):
            line = f"{key}=127.0.0.1"
        elif key == "external-ip":
            continue
        elif key == "listening-port":
            line = f"listening-port={port}"
        elif key == "prometheus-port":
            line = f"prometheus-port={metrics_port}"
        moved.append(line)
    return "\n".join(moved) + "\n"


@pytest.fixture(scope="module")
def coturn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[tuple[str, int], str, Path]]:
    binary = require("turnserver", "coturn")
    directory = tmp_path_factory.mktemp("coturn")
    config = rendered_config(directory)
    port = free_port()
    path = directory / "loopback.conf"
    path.write_text(on_loopback(config, port, free_port()))
    log = directory / "turnserver.log"
    with log.open("w") as output:
        process = subprocess.Popen([binary, "-c", str(path)], stdout=output, stderr=subprocess.STDOUT)
    server = ("127.0.0.1", port)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"turnserver exited:\n{log.read_text()[-3000:]}")
            probe = TurnClient(server, "probe", "probe")
            try:
                probe.socket.settimeout(0.3)
                probe.allocate()
                break
            except OSError:
                time.sleep(0.2)
            finally:
                probe.close()
        else:
            pytest.fail(f"turnserver did not answer:\n{log.read_text()[-3000:]}")
        yield server, config, log
    finally:
        process.terminate()
        process.wait(timeout=10)


def client(server: tuple[str, int], ttl: int = 600, secret: str = SECRET, now: float | None = None) -> TurnClient:
    import ice_config

    username, password = ice_config.turn_credentials(secret, ttl, time.time() if now is None else now, "test-session")
    return TurnClient(server, username, password)


def test_the_rendered_config_is_what_a_node_runs(coturn) -> None:
    _, config, log = coturn
    assert "external-ip=203.0.113.10/10.0.30.6" in config
    assert f"static-auth-secret={SECRET}" in config
    assert re.search(r"^min-port=49152$", config, re.M) and re.search(r"^max-port=65535$", config, re.M)
    # Every option is understood by a real coturn; Debian's build lacks only the Prometheus exporter.
    rejected = set(re.findall(r"Bad configuration format: (\S+)", log.read_text()))
    assert rejected <= {"prometheus", "prometheus-port"}, rejected


def test_allocate_with_fresh_credentials_succeeds(coturn) -> None:
    turn = client(coturn[0])
    try:
        response = turn.allocate()
        assert response.success, response
        assert XOR_RELAYED_ADDRESS in response.attributes
        assert SOFTWARE not in response.attributes, "the server does not announce its version"
    finally:
        turn.close()


@pytest.mark.parametrize(
    "make",
    [
        lambda server: client(server, ttl=600, now=time.time() - 3600),  # expired half an hour ago
        lambda server: client(server, secret="not-the-secret"),
        lambda server: TurnClient(server, "pixel", "static-password"),  # the reference's static credential style
    ],
    ids=["expired", "wrong-secret", "static-user"],
)
def test_bad_credentials_get_401(coturn, make) -> None:
    turn = make(coturn[0])
    try:
        response = turn.allocate()
        assert not response.success and response.error == 401, response
    finally:
        turn.close()


@pytest.mark.parametrize(
    ("peer", "allowed"),
    [
        ("169.254.169.254", False),  # OCI instance metadata
        ("10.0.0.5", False),  # the API endpoint subnet
        ("10.0.64.20", False),  # a worker node
        ("192.168.1.10", False),
        ("172.20.0.1", False),
        ("100.64.0.1", False),
        ("10.244.3.7", True),  # a streamer pod (the dev stack's pod CIDR)
    ],
)
def test_relay_reaches_only_the_streamer_pods(coturn, peer: str, allowed: bool) -> None:
    turn = client(coturn[0])
    try:
        assert turn.allocate().success
        response = turn.create_permission(peer)
        if allowed:
            assert response.success, response
        else:
            assert not response.success and response.error == 403, response
    finally:
        turn.close()
