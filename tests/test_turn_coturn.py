"""coturn, Debian's real turnserver, with the configuration this program renders and the TURN bootstrap
completes; only the listening addresses and ports are moved to loopback test values.

Every stack (dev, prod, and one with its own address plan) gets its own server. The addresses the relay is
asked to reach are taken from that stack's plan (subnets, services CIDR), so the coturn configuration and the
network are checked against each other. Credentials come from the session service's own code (one identity per
player session); a small TURN client (tests/stun.py) speaks to it.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from certificates import CertificateAuthority
from conftest import APP, OTHER_ADDRESS_PLAN, ROOT, free_port
from fake_kube import node, secret_file, serve
from stun import SOFTWARE, TCP_TRANSPORT, XOR_RELAYED_ADDRESS, TurnClient
from tools import require

from pixelstream.tools.offline import Plan, plan_stack
from pixelstream.workloads.pixel_streaming.session.turn import credentials, turn_name

SECRET = "coturn-test-static-auth-secret"
SUBNET = "oci:Core/subnet:Subnet"
CLUSTER = "oci:ContainerEngine/cluster:Cluster"

# A stack with an address plan of its own; its services CIDR lies outside every private range, so only the
# explicit denial of the stack's own networks keeps the relay away from it.
CUSTOM = {"pixelstream:network": OTHER_ADDRESS_PLAN, "pixelstream:cluster": {"servicesCidr": "11.200.0.0/16"}}
# A TURN node with room for exactly three allocations: one stream's session at its quota.
THREE_ALLOCATIONS = {
    "pixelstream:streaming": {
        "autoscaling": {"minReplicas": 1, "maxReplicas": 1},
        "turn": {"maxBytesPerSecond": 1_000_000, "capacityBytesPerSecond": 3_000_000, "userQuota": 3},
    },
}
# TURN over TLS: the player site and the TURN name beside it.
TURN_HOST = "turn.play.example.com"
TLS = {"pixelstream:streaming": {"ingress": {"host": "play.example.com"}, "turn": {"tls": {"host": TURN_HOST}}}}
STACK_CHANGES = {"custom": CUSTOM, "three-allocations": THREE_ALLOCATIONS, "tls": TLS}


@dataclass
class Server:
    address: tuple[str, int]
    config: str
    log: Path
    plan: Plan
    node_ip: str

    def subnet(self, key: str) -> ipaddress.IPv4Network:
        cidr = self.plan.named(SUBNET, f"pixelstream-{self.plan.stack}-{key}-subnet").inputs["cidrBlock"]
        return ipaddress.IPv4Network(cidr)

    def services(self) -> ipaddress.IPv4Network:
        cluster = self.plan.named(CLUSTER, f"pixelstream-{self.plan.stack}").inputs
        return ipaddress.IPv4Network(cluster["options"]["kubernetesNetworkConfig"]["servicesCidr"])


def plan_of(name: str, directory: Path) -> Plan:
    """The plan of a committed stack, or of the dev stack with one of STACK_CHANGES."""
    if name not in STACK_CHANGES:
        return plan_stack(name, ROOT)[0]
    document = yaml.safe_load((ROOT / "stacks" / "Pulumi.dev.yaml").read_text())
    document["config"].update(STACK_CHANGES[name])
    stack_file = directory / f"Pulumi.{name}.yaml"
    stack_file.write_text(yaml.safe_dump(document))
    return plan_stack(name, ROOT, stack_file)[0]


def node_config(plan: Plan, directory: Path) -> tuple[str, str]:
    """The configuration a TURN node of the stack runs, and that node's private IP (in the TURN subnet)."""
    turn_subnet = plan.named(SUBNET, f"pixelstream-{plan.stack}-turn-subnet").inputs["cidrBlock"]
    node_ip = str(ipaddress.IPv4Network(turn_subnet)[6])
    return rendered_config(plan, directory, node_ip), node_ip


def rendered_config(plan: Plan, directory: Path, node_ip: str) -> str:
    """The deployed template, completed by the real bootstrap for a TURN node of the stack's TURN subnet."""
    template = directory / "template.conf"
    template.write_text(plan.manifests()["pixel.configmap.coturn.yaml"]["data"]["turnserver.conf"])
    output = directory / "turnserver.conf"
    turn_node = node("turn-a", "203.0.113.10", internal=node_ip)
    with serve({("GET", "/api/v1/nodes/turn-a"): lambda call: (200, turn_node)}) as kube:
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


def on_loopback(config: str, port: int, metrics_port: int, directory: Path | None = None) -> str:
    """The node's configuration moved to loopback ports; with `directory`, the TLS listener on a free port, the
    certificate (tls.crt, tls.key) and the pidfile there."""
    moved = []
    for line in config.splitlines():
        key, _, value = line.partition("=")
        if key in ("listening-ip", "relay-ip", "prometheus-address"):
            line = f"{key}=127.0.0.1"
        elif key == "external-ip":
            continue
        elif key == "listening-port":
            line = f"listening-port={port}"
        elif key == "prometheus-port":
            line = f"prometheus-port={metrics_port}"
        elif directory is not None and key == "tls-listening-port":
            line = f"tls-listening-port={free_port()}"
        elif directory is not None and key in ("cert", "pkey", "pidfile"):
            line = f"{key}={directory / Path(value).name}"
        moved.append(line)
    return "\n".join(moved) + "\n"


def option(config: str, key: str) -> str:
    return re.search(rf"^{key}=(.*)$", config, re.M)[1]


@pytest.fixture
def started(tmp_path: Path) -> Iterator:
    """Starts coturn on a configuration; stops every server the test started."""
    binary = require("turnserver", "coturn")
    processes: list[subprocess.Popen] = []

    def start(config: str, tls_dir: Path | None = None) -> tuple[tuple[str, int], Path]:
        port = free_port()
        directory = tmp_path / f"coturn-{port}"
        directory.mkdir()
        path = directory / "loopback.conf"
        path.write_text(on_loopback(config, port, free_port(), tls_dir))
        log = directory / "turnserver.log"
        with log.open("w") as output:
            processes.append(subprocess.Popen([binary, "-c", str(path)], stdout=output, stderr=subprocess.STDOUT))
        server = ("127.0.0.1", port)
        wait_until_answering(server, processes[-1], log)
        return server, log

    try:
        yield start
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)


def wait_until_answering(server: tuple[str, int], process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"turnserver exited:\n{log.read_text()[-3000:]}")
        probe = TurnClient(server, "probe", "probe")
        try:
            probe.socket.settimeout(0.3)
            probe.allocate()
            return
        except OSError:
            time.sleep(0.2)
        finally:
            probe.close()
    pytest.fail(f"turnserver did not answer:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module", params=["dev", "prod", "custom"])
def coturn(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    binary = require("turnserver", "coturn")
    directory = tmp_path_factory.mktemp(f"coturn-{request.param}")
    plan = plan_of(request.param, directory)
    config, node_ip = node_config(plan, directory)
    port = free_port()
    path = directory / "loopback.conf"
    path.write_text(on_loopback(config, port, free_port()))
    log = directory / "turnserver.log"
    with log.open("w") as output:
        process = subprocess.Popen([binary, "-c", str(path)], stdout=output, stderr=subprocess.STDOUT)
    server = ("127.0.0.1", port)
    try:
        wait_until_answering(server, process, log)
        yield Server(server, config, log, plan, node_ip)
    finally:
        process.terminate()
        process.wait(timeout=10)


def client(
    server: tuple[str, int], ttl: int = 300, secret: str = SECRET, now: float | None = None, **kw: Any
) -> TurnClient:
    """A TURN client with the credentials the session service gives the player of session `session`."""
    session = kw.pop("session", "session-1")
    identity = turn_name(secret, session)
    username, password = credentials(secret, ttl, time.time() if now is None else now, identity)
    return TurnClient(server, username, password, **kw)


def test_the_rendered_config_is_what_a_node_runs(coturn: Server) -> None:
    assert f"external-ip=203.0.113.10/{coturn.node_ip}" in coturn.config
    assert f"static-auth-secret={SECRET}" in coturn.config
    assert re.search(r"^min-port=49152$", coturn.config, re.M) and re.search(r"^max-port=65535$", coturn.config, re.M)
    # Every option is understood by a real coturn (the IPv6 ranges too); Debian's build lacks only the exporter.
    rejected = set(re.findall(r"Bad configuration format: (\S+)", coturn.log.read_text()))
    assert rejected <= {"prometheus", "prometheus-port", "prometheus-address", "unauthorized-ratelimit"}, rejected


def test_allocate_with_fresh_credentials_succeeds(coturn: Server) -> None:
    turn = client(coturn.address)
    try:
        response = turn.allocate()
        assert response.success, response
        assert XOR_RELAYED_ADDRESS in response.attributes
        assert SOFTWARE not in response.attributes, "the server does not announce its version"
    finally:
        turn.close()


def test_turn_over_tcp_works_but_a_tcp_relay_is_refused(coturn: Server) -> None:
    turn = client(coturn.address, tcp=True)
    try:
        assert turn.allocate().success, "TURN over TCP to the server (UDP relay) stays available"
    finally:
        turn.close()
    turn = client(coturn.address, tcp=True, session="tcp-relay")
    try:
        response = turn.allocate(TCP_TRANSPORT)
        assert not response.success and response.error == 442, response
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
def test_bad_credentials_get_401(coturn: Server, make) -> None:
    turn = make(coturn.address)
    try:
        response = turn.allocate()
        assert not response.success and response.error == 401, response
    finally:
        turn.close()


def peers_to_try(server: Server) -> list[tuple[str, str, bool]]:
    """(what, address, allowed): an address of every network of the stack, and the special ranges."""
    stream = server.subnet("streams")
    return [
        ("a stream pod", str(stream[37]), True),
        ("the last stream pod address", str(stream[-2]), True),
        ("a player on the internet", "8.8.8.8", True),
        ("a system pod (default pool)", str(server.subnet("pods")[20]), False),
        ("a worker node", str(server.subnet("workers")[20]), False),
        ("the TURN node itself", server.node_ip, False),
        ("another TURN node", str(server.subnet("turn")[7]), False),
        ("the API endpoint", str(server.subnet("api")[3]), False),
        ("a load balancer", str(server.subnet("lb")[9]), False),
        ("a Service (cluster DNS)", str(server.services()[10]), False),
        ("just past the stream pods", str(stream[-1] + 2), False),
        ("OCI instance metadata", "169.254.169.254", False),
        ("loopback", "127.0.0.1", False),
        ("another private network", "192.168.1.10", False),
        ("172.16/12", "172.31.0.1", False),
        ("CGNAT", "100.64.0.1", False),
        ("the old flannel pod CIDR", "10.244.3.7", False),
    ]


def test_relay_reaches_only_the_stream_pods(coturn: Server) -> None:
    turn = client(coturn.address)
    try:
        assert turn.allocate().success
        outcomes = {what: turn.create_permission(address) for what, address, _ in peers_to_try(coturn)}
    finally:
        turn.close()
    for what, address, allowed in peers_to_try(coturn):
        response = outcomes[what]
        if allowed:
            assert response.success, (what, address, response)
        else:
            assert not response.success and response.error == 403, (what, address, response)


def test_one_session_holds_at_most_user_quota_allocations(coturn: Server) -> None:
    quota = int(re.search(r"^user-quota=(\d+)$", coturn.config, re.M)[1])
    assert 3 <= quota <= 4, "a few: one per TURN URL of a browser (UDP, TCP, TLS), and one spare"
    session = f"quota-{time.monotonic_ns()}"
    turns = [client(coturn.address, session=session) for _ in range(quota + 1)]
    try:
        results = [t.allocate() for t in turns]
        assert all(r.success for r in results[:quota]), results
        assert results[quota].error == 486, results[quota]
        other = client(coturn.address, session=f"{session}-other")
        assert other.allocate().success, "another session has its own quota"
        other.close()
    finally:
        for t in turns:
            t.close()


def test_every_other_session_at_its_quota_leaves_a_player_its_allocations(started, tmp_path: Path) -> None:
    """The worst the prod stack allows on one TURN node: every stream's session (maxReplicas of them, the only
    holders of credentials) but one takes its whole quota on that node; the last player still gets its own."""
    plan = plan_of("prod", tmp_path)
    config, _ = node_config(plan, tmp_path)
    quota = int(re.search(r"^user-quota=(\d+)$", config, re.M)[1])
    builds = json.loads(plan.manifests()["pixel.configmap.session-builds.yaml"]["data"]["builds.json"])["builds"]
    sessions = sum(build["maxReplicas"] for build in builds)
    server, _ = started(config)
    greedy = [client(server, session=f"greedy-{s}") for s in range(sessions - 1) for _ in range(quota)]
    player = [client(server, session="the-player") for _ in range(quota)]
    try:
        assert all(t.allocate().success for t in greedy)
        assert all(t.allocate().success for t in player), "the node had room for the last session"
    finally:
        for t in greedy + player:
            t.close()


@pytest.mark.slow
def test_a_sessions_credential_opens_allocations_for_minutes_and_a_running_one_outlives_it(coturn: Server) -> None:
    """A new allocation needs a credential that has not expired; the allocation made with it keeps refreshing and
    taking permissions after it expires (coturn keeps the key it authenticated: `hmackey_set`), so a session is
    never cut by its credential's lifetime, and a leaked credential opens nothing new after it."""
    session = f"ttl-{time.monotonic_ns()}"
    running = client(coturn.address, ttl=2, session=session)
    try:
        assert running.allocate().success
        time.sleep(3.5)
        late = client(coturn.address, ttl=2, now=time.time() - 3.5, session=session)
        try:
            assert late.allocate().error == 401, "the expired credential opens no new allocation"
        finally:
            late.close()
        assert running.refresh(600).success, "the running allocation refreshes"
        stream_pod = str(coturn.subnet("streams")[37])
        assert running.create_permission(stream_pod).success, "and still reaches its stream"
    finally:
        running.close()


def test_a_turn_node_admits_sessions_only_up_to_its_bandwidth(started, tmp_path: Path) -> None:
    config, _ = node_config(plan_of("three-allocations", tmp_path), tmp_path)
    assert "max-bps=1000000" in config and "bps-capacity=3000000" in config
    server, _ = started(config)
    turns = [client(server, session=f"session-{i}") for i in range(4)]
    try:
        results = [t.allocate() for t in turns]
        assert [r.success for r in results] == [True, True, True, False], results
        assert results[3].error == 486, results[3]
    finally:
        for t in turns:
            t.close()


def test_without_no_tcp_relay_a_tcp_relay_would_be_granted(started, tmp_path: Path) -> None:
    """The control: the 442 above comes from `no-tcp-relay`, not from this machine's coturn."""
    config, _ = node_config(plan_of("dev", tmp_path), tmp_path)
    server, _ = started(config.replace("no-tcp-relay\n", ""))
    turn = client(server, tcp=True)
    try:
        assert turn.allocate(TCP_TRANSPORT).success
    finally:
        turn.close()


@pytest.mark.slow
def test_turn_over_tls_checks_out_and_takes_a_renewed_certificate_without_dropping_a_session(
    started, tmp_path: Path
) -> None:
    """The TLS stack's configuration on a real coturn: a player's client verifies the certificate for the TURN
    name and allocates over TLS; cert-manager renews the certificate, the real reloader signals coturn, the next
    connection gets the new certificate, and the allocation made before keeps refreshing."""
    import tls_reloader

    config, _ = node_config(plan_of("tls", tmp_path), tmp_path)
    assert option(config, "tls-listening-port") == "5349" and "no-tls" not in config.splitlines()
    assert {"no-tlsv1", "no-tlsv1_1", "no-dtls"} <= set(config.splitlines())
    tls_dir = tmp_path / "turn-tls"
    authority = CertificateAuthority(tmp_path / "ca")
    first = authority.issue(tls_dir, TURN_HOST)
    _, log = started(config, tls_dir)
    loopback = (log.parent / "loopback.conf").read_text()
    tls_server = ("127.0.0.1", int(option(loopback, "tls-listening-port")))
    trust = ssl.create_default_context(cafile=str(authority.file))

    def over_tls(session: str) -> TurnClient:
        return client(tls_server, tls=trust, server_name=TURN_HOST, session=session)

    running = over_tls("tls-player")
    try:
        assert running.allocate().success, "a TURNS allocation with the session's credentials"
        assert int(running.peer_certificate()["serialNumber"], 16) == first
        with pytest.raises(ssl.SSLCertVerificationError):
            client(tls_server, tls=trust, server_name="play.example.com")
        seen = tls_reloader.fingerprint(tls_dir)
        renewed = authority.issue(tls_dir, TURN_HOST)
        pid_file = Path(option(loopback, "pidfile"))
        assert tls_reloader.step(tls_dir, pid_file, seen) != seen, "the reloader noticed and signalled"
        deadline = time.monotonic() + 10
        while True:
            late = over_tls("tls-late")
            try:
                serial = int(late.peer_certificate()["serialNumber"], 16)
                if serial == renewed:
                    assert late.allocate().success
                    break
            finally:
                late.close()
            assert time.monotonic() < deadline, "coturn kept the old certificate"
            time.sleep(0.2)
        assert running.refresh(600).success, "the session made before the renewal goes on"
    finally:
        running.close()
