"""TURN that drains: the coturn container's stop hook and the drain hold, run as the pods run them (sh, the
pinned Python), against stand-ins that behave as coturn does in drain mode (SIGUSR1: refuse new allocations,
exit once the last one ends; SIGTERM: exit at once) and as its exporter's gauge reads. The real coturn's drain
mode (4.6.3 and later) cannot run here: Debian's coturn is 4.6.1 (see docs/operations.md, TURN that drains)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from test_addons import plan_with
from test_prometheus_live import serve

from pixelstream.tools.offline import Plan, plan_stack
from pixelstream.workloads.pixel_streaming.turn import DRAIN_SCRIPT

HELPER = ROOT / "components" / "workloads" / "pixel_streaming" / "app" / "turn_drain_hold.py"

# A stand-in for coturn: its pid file, drain mode on SIGUSR1 (it exits when its last allocation ends, here
# after `sessions_end` seconds), an immediate stop on SIGTERM; what it got is written to `record`.
STAND_IN = textwrap.dedent(
    """
    import os, signal, sys, time
    pid_file, record, sessions_end = sys.argv[1], sys.argv[2], float(sys.argv[3])
    draining = []
    def drain(*_):
        draining.append(time.monotonic())
        open(record, "a").write("USR1\\n")
    def stop(*_):
        open(record, "a").write("TERM\\n")
        sys.exit(0)
    signal.signal(signal.SIGUSR1, drain)
    signal.signal(signal.SIGTERM, stop)
    open(pid_file, "w").write(str(os.getpid()))
    while not draining or time.monotonic() < draining[0] + sessions_end:
        time.sleep(0.05)
    open(record, "a").write("drained\\n")
    """
)


def stand_in(tmp_path: Path, sessions_end: float) -> tuple[subprocess.Popen, Path]:
    pid_file, record = tmp_path / "turnserver.pid", tmp_path / "record"
    process = subprocess.Popen([sys.executable, "-c", STAND_IN, str(pid_file), str(record), str(sessions_end)])
    deadline = time.monotonic() + 10
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return process, record


def run_hook(pid_file: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", DRAIN_SCRIPT, "drain", str(pid_file)], capture_output=True, timeout=30)


def test_the_stop_hook_drains_coturn_and_returns_only_when_it_has_exited(tmp_path: Path) -> None:
    process, record = stand_in(tmp_path, sessions_end=1.5)
    # Reaped as it exits, as a container's end (or the pod's pause process) reaps coturn.
    threading.Thread(target=process.wait, daemon=True).start()
    started = time.monotonic()
    hook = run_hook(tmp_path / "turnserver.pid")
    took = time.monotonic() - started
    assert hook.returncode == 0
    assert record.read_text().split() == ["USR1", "drained"], "drain mode, never the immediate stop"
    assert took >= 1.4, "the hook held the kubelet's SIGTERM until coturn's sessions ended"


def test_the_stop_hook_returns_at_once_when_there_is_no_coturn(tmp_path: Path) -> None:
    assert run_hook(tmp_path / "missing.pid").returncode == 0
    (tmp_path / "stale.pid").write_text("999999")
    started = time.monotonic()
    assert run_hook(tmp_path / "stale.pid").returncode == 0 and time.monotonic() - started < 2


class Exporter:
    """coturn's exporter as the hold reads it: the allocations gauge, per transport."""

    def __init__(self) -> None:
        self.allocations = {"UDP": 2, "TCP": 1}
        self.server = serve(self.metrics)

    def metrics(self) -> str:
        lines = ["# TYPE turn_total_allocations gauge"]
        lines += [f'turn_total_allocations{{type="{t}"}} {n}' for t, n in self.allocations.items()]
        return "\n".join(lines) + "\n"


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    running = Exporter()
    yield running
    running.server.shutdown()


def hold(port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "HOST_IP": "127.0.0.1",
        "METRICS_PORT": str(port),
        "CHECK_SECONDS": "0.2",
        "SILENT_SECONDS": "1",
    }
    return subprocess.Popen([sys.executable, str(HELPER)], env=env, stderr=subprocess.PIPE, text=True)


def test_the_hold_keeps_its_node_until_the_last_relayed_session_ends(exporter: Exporter) -> None:
    process = hold(exporter.server.server_address[1])
    time.sleep(1)
    assert process.poll() is None, "it holds its node until it is asked to go"
    process.send_signal(signal.SIGTERM)
    time.sleep(1)
    assert process.poll() is None, "evicted, it waits while coturn still relays sessions"
    exporter.allocations = {"UDP": 0, "TCP": 0}
    assert process.wait(timeout=5) == 0
    assert "no relayed session left" in process.stderr.read()


def test_the_hold_lets_its_node_go_at_once_without_sessions_or_without_coturn(exporter: Exporter) -> None:
    exporter.allocations = {"UDP": 0}
    process = hold(exporter.server.server_address[1])
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=5) == 0
    exporter.server.shutdown()
    exporter.server.server_close()
    process = hold(exporter.server.server_address[1])
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert process.poll() is None, "one silent read is not coturn gone"
    assert process.wait(timeout=5) == 0
    assert "coturn has not answered for 1 s" in process.stderr.read()


# -- what the plans declare ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dev() -> Plan:
    return plan_stack("dev", ROOT)[0]


def test_coturn_drains_for_the_configured_time_when_its_pod_stops(dev: Plan) -> None:
    daemonset = dev.manifests()["pixel.daemonset.turn.yaml"]
    nodes = dev.manifests()["pixel.deployment.turn-drain-hold.yaml"]["spec"]["replicas"]
    # Pulumi waits for the update: every node's coturn draining in turn
    assert daemonset["metadata"]["annotations"]["pulumi.com/timeoutSeconds"] == str(nodes * 1810 + 600)
    spec = daemonset["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] == 1800 + 10
    [coturn] = [c for c in spec["containers"] if c["name"] == "coturn"]
    assert coturn["lifecycle"]["preStop"]["exec"]["command"] == [
        "sh",
        "-c",
        DRAIN_SCRIPT,
        "drain",
        "/var/tmp/turnserver.pid",
    ]


def test_each_turn_node_of_a_fixed_pool_has_a_hold_a_drain_evicts_one_at_a_time(dev: Plan) -> None:
    manifests = dev.manifests()
    deployment = manifests["pixel.deployment.turn-drain-hold.yaml"]
    stack = yaml.safe_load((ROOT / "stacks" / "Pulumi.dev.yaml").read_text())["config"]
    turn_size = stack.get("pixelstream:nodePools", {}).get("turn", {}).get("size", 1)
    assert deployment["spec"]["replicas"] == turn_size
    pod = deployment["spec"]["template"]["spec"]
    [anti] = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti["topologyKey"] == "kubernetes.io/hostname"
    assert anti["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "app.pixel/turn", "operator": "In", "values": ["true"]}]}]
    assert pod["terminationGracePeriodSeconds"] == 1810 and pod["automountServiceAccountToken"] is False
    assert "hostNetwork" not in pod, "it reads coturn's exporter at the node's address, as Prometheus does"
    budget = manifests["pixel.poddisruptionbudget.turn-drain-hold.yaml"]["spec"]
    assert budget["maxUnavailable"] == 1
    # every TURN node holds one: an update can only replace them one by one, never surge
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1},
    }


def test_no_hold_where_the_stack_does_not_own_a_fixed_turn_pool(tmp_path: Path) -> None:
    autoscaled = plan_with(tmp_path, nodePools={"turn": {"size": 2, "minSize": 1, "maxSize": 3}})
    assert "pixel.deployment.turn-drain-hold.yaml" not in autoscaled.manifests()
    off = plan_with(tmp_path, streaming={"turn": {"drainSeconds": 0}})
    assert "pixel.deployment.turn-drain-hold.yaml" not in off.manifests()
    spec = off.manifests()["pixel.daemonset.turn.yaml"]["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] == 10 and "lifecycle" not in spec["containers"][0]
