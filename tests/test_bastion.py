"""The first deploy through the private endpoint (issue 24): the bastion and its one-port subnet as the plan
declares them, the Kubernetes provider's proxy, and pixelstream.tools.bastion driving pulumi, the OCI CLI (each
command line parsed by the real CLI's command tree, tests/fake_oci.py) and ssh, stood in."""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, free_port
from test_addons import plan_with, stack_with
from test_node_image import fake_oci  # noqa: F401 (the fixture)
from tools import one_line_error

from pixelstream.config import ConfigError, StackConfig
from pixelstream.oci.cluster import KUBERNETES_PROXY_ENV, kubernetes_proxy, with_proxy
from pixelstream.tools.bastion import first_step_exclusions, main, second_step
from pixelstream.tools.offline import plan_stack

BASTION = "oci:Bastion/bastion:Bastion"
OPERATOR = "198.51.100.7/32"


@pytest.fixture(scope="module")
def bastion_plan(tmp_path_factory: pytest.TempPathFactory):
    bastion = {"clientCidrs": [OPERATOR], "maxSessionTtlSeconds": 3600}
    return plan_with(tmp_path_factory.mktemp("bastion"), "prod", cluster={"endpoint": {"bastion": bastion}})


def test_the_bastion_takes_sessions_from_the_listed_networks_only(bastion_plan) -> None:
    [bastion] = bastion_plan.of_type(BASTION)
    inputs = bastion.inputs
    assert inputs["bastionType"] == "STANDARD" and inputs["dnsProxyStatus"] == "ENABLED", "SOCKS5 sessions"
    assert inputs["clientCidrBlockAllowLists"] == [OPERATOR] and inputs["maxSessionTtlInSeconds"] == 3600
    assert inputs["name"] == "pixelstream-prod-api"
    subnet = bastion_plan.named("oci:Core/subnet:Subnet", "pixelstream-prod-bastion-subnet").inputs
    assert inputs["targetSubnetId"] == "ocid1.subnet.offline..pixelstream-prod-bastion-subnet"
    assert subnet["cidrBlock"] == "10.0.0.16/28" and subnet["prohibitPublicIpOnVnic"] is True


def test_the_bastion_subnet_reaches_the_api_on_6443_and_nothing_else(bastion_plan) -> None:
    security = bastion_plan.named("oci:Core/securityList:SecurityList", "pixelstream-prod-bastion-security-list")
    assert security.inputs["ingressSecurityRules"] == []
    [egress] = security.inputs["egressSecurityRules"]
    assert (egress["destination"], egress["protocol"], egress["tcpOptions"]) == (
        "10.0.0.0/28",
        "6",
        {"min": 6443, "max": 6443},
    )
    rules = bastion_plan.of_type("oci:Core/networkSecurityGroupSecurityRule:NetworkSecurityGroupSecurityRule")
    into_api = [r.inputs for r in rules if r.inputs.get("source") == "10.0.0.16/28"]
    assert [(r["direction"], r["tcpOptions"]["destinationPortRange"]) for r in into_api] == [
        ("INGRESS", {"min": 6443, "max": 6443})
    ]


def test_no_bastion_without_client_networks_and_its_subnet_refused_alone(tmp_path: Path) -> None:
    assert not plan_with(tmp_path, "prod", cluster={"endpoint": {"bastion": {"clientCidrs": []}}}).of_type(BASTION)
    with pytest.raises(ConfigError, match=r"network.subnets.bastion: is only used with cluster.endpoint.bastion"):
        StackConfig.from_stack_file(
            stack_with(
                tmp_path,
                "prod",
                network={"subnets": {"bastion": "10.0.0.32/28"}},
                cluster={"endpoint": {"bastion": {"clientCidrs": []}}},
            )
        )


@pytest.mark.parametrize(
    ("bastion", "problem"),
    [
        ({"clientCidrs": ["0.0.0.0/0"]}, "cluster.endpoint.bastion.clientCidrs: 0.0.0.0/0 is wider than a /16"),
        ({"clientCidrs": ["10.0.0.0/8"]}, "cluster.endpoint.bastion.clientCidrs: 10.0.0.0/8 is wider than a /16"),
        ({"clientCidrs": [OPERATOR], "maxSessionTtlSeconds": 60}, "maxSessionTtlSeconds: 60 is outside 1800-10800 s"),
        ({"clientCidrs": [f"198.51.100.{i}/32" for i in range(21)]}, "lists 21; the Bastion service takes 20"),
    ],
)
def test_a_bastion_open_to_the_world_or_beyond_the_services_limits_is_refused(
    tmp_path: Path, bastion: dict, problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem.replace(".", r"\.")):
        StackConfig.from_stack_file(stack_with(tmp_path, "prod", cluster={"endpoint": {"bastion": bastion}}))


def test_the_provider_reaches_the_api_through_the_proxy_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    kubeconfig = yaml.safe_dump(
        {"clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.2:6443"}}], "users": [], "contexts": []}
    )
    proxied = yaml.safe_load(with_proxy(kubeconfig, "socks5://127.0.0.1:1080"))
    assert proxied["clusters"][0]["cluster"] == {
        "server": "https://10.0.0.2:6443",
        "proxy-url": "socks5://127.0.0.1:1080",
    }
    monkeypatch.delenv(KUBERNETES_PROXY_ENV, raising=False)
    assert kubernetes_proxy() is None
    monkeypatch.setenv(KUBERNETES_PROXY_ENV, "127.0.0.1:1080")
    with pytest.raises(ValueError, match=re.escape("is not a proxy URL such as socks5://127.0.0.1:1080")):
        kubernetes_proxy()


# -- the tool ------------------------------------------------------------------------------------------------------

PULUMI = """#!{python}
import json, os, sys
log = os.path.join(os.environ["FAKE_OCI_DIR"], "pulumi.jsonl")
with open(log, "a") as out:
    out.write(json.dumps({{"argv": sys.argv[1:], "proxy": os.environ.get("{env}")}}) + "\\n")
scenario = json.load(open(os.path.join(os.environ["FAKE_OCI_DIR"], "scenario.json")))
if sys.argv[1:3] == ["stack", "output"]:
    print(json.dumps(scenario.get("outputs", {{}})))
    sys.exit(0)
if scenario.get("waitForInterrupt") and "--exclude" not in sys.argv:
    import signal, time
    def cancel(*_):
        time.sleep(1)  # cancelling gracefully takes a while
        open(os.path.join(os.environ["FAKE_OCI_DIR"], "cancelled"), "w").write("cleanly")
        sys.exit(255)
    signal.signal(signal.SIGINT, cancel)
    open(os.path.join(os.environ["FAKE_OCI_DIR"], "running"), "w").write("yes")
    time.sleep(60)
sys.exit(scenario.get("upExit", 0) if "--exclude" in sys.argv else scenario.get("commandExit", 0))
"""
SSH = """#!{python}
import json, os, signal, socket, sys, time
argv = sys.argv[1:]
with open(os.path.join(os.environ["FAKE_OCI_DIR"], "ssh.jsonl"), "a") as out:
    out.write(json.dumps(argv) + "\\n")
scenario = json.load(open(os.path.join(os.environ["FAKE_OCI_DIR"], "scenario.json")))
if scenario.get("sshFails"):
    sys.exit(255)
host, port = argv[argv.index("-D") + 1].rsplit(":", 1)
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind((host, int(port)))
listener.listen()
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    time.sleep(0.1)
"""
SSH_KEYGEN = """#!/bin/sh
while [ "$1" != "-f" ]; do shift; done
echo private > "$2"; echo "ssh-ed25519 AAAAfake pixelstream" > "$2.pub"
echo "$2" >> "$FAKE_OCI_DIR/keys.log"
"""


@pytest.fixture
def stand_ins(fake_oci: Path) -> Path:  # noqa: F811 (the fixture above)
    bin_dir = fake_oci / "oci-bin"
    for name, text in (("pulumi", PULUMI), ("ssh", SSH), ("ssh-keygen", SSH_KEYGEN)):
        (bin_dir / name).write_text(text.format(python=sys.executable, env=KUBERNETES_PROXY_ENV))
        (bin_dir / name).chmod(0o755)
    return fake_oci


def scenario(directory: Path, **values: object) -> None:
    outputs = {"bastionId": "ocid1.bastion.oc1.iad.b", "apiPrivateEndpoint": "10.0.0.2:6443"}
    (directory / "scenario.json").write_text(json.dumps({"outputs": outputs, **values}))


def logged(directory: Path, name: str) -> list:
    path = directory / name
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.slow
def test_a_first_deploy_brings_up_the_cluster_then_the_rest_through_a_session(stand_ins: Path) -> None:
    scenario(stand_ins, commandExit=0)
    port = free_port()
    argv = ["--stack", "prod", "--first-deploy", "--port", str(port), "--project-dir", str(ROOT)]
    assert main([*argv, "--", "pulumi", "up", "--yes", "--stack", "prod"]) == 0
    ups = logged(stand_ins, "pulumi.jsonl")
    plan, _ = plan_stack("prod", ROOT)
    provider, *later = first_step_exclusions(plan)
    assert provider.startswith("urn:pulumi:prod::pixelstream::") and provider.endswith(
        "$pulumi:providers:kubernetes::pixelstream-prod-k8s"
    ), "an engine URN: no pulumi:pulumi:Stack in its type"
    assert {urn.split("::")[-2].rsplit("$", 1)[-1] for urn in later} == {
        "oci:ContainerEngine/nodePool:NodePool",
        "oci:ContainerEngine/addon:Addon",
    }
    excludes = [arg for urn in (provider, *later) for arg in ("--exclude", urn)]
    assert ups[0] == {
        "argv": ["up", "--yes", "--stack", "prod", *excludes, "--exclude-dependents"],
        "proxy": None,
    }, "first the network, the cluster and the bastion, with no proxy"
    assert ups[1]["argv"][:2] == ["stack", "output"]
    assert ups[2] == {"argv": ["up", "--yes", "--stack", "prod"], "proxy": f"socks5://127.0.0.1:{port}"}
    oci = [" ".join(c["argv"][:3]) for c in logged(stand_ins, "calls.jsonl")]
    assert oci[0].startswith("bastion session create-session-create-dynamic-port-forwarding")
    assert oci[1:] == ["bastion session get", "bastion session get", "bastion session delete"]
    [ssh] = logged(stand_ins, "ssh.jsonl")
    assert ssh[-1] == "ocid1.bastionsession.oc1.iad.session@host.bastion.us-ashburn-1.oci.oraclecloud.com"
    assert ssh[ssh.index("-D") + 1] == f"127.0.0.1:{port}" and "ExitOnForwardFailure=yes" in ssh
    assert "IdentitiesOnly=yes" in ssh and ssh[ssh.index("-F") + 1] == "/dev/null", "the session's key alone"
    key = (stand_ins / "keys.log").read_text().split()[0]
    assert not Path(key).exists() and not Path(key).parent.exists(), "the session's key pair is gone"


def test_the_session_is_closed_whatever_the_command_did(stand_ins: Path) -> None:
    scenario(stand_ins, commandExit=3)
    port = free_port()
    argv = ["--stack", "prod", "--port", str(port), "--project-dir", str(ROOT), "--", "pulumi", "up", "--yes"]
    assert main(argv) == 3, "the command's own status"
    assert [" ".join(c["argv"][:3]) for c in logged(stand_ins, "calls.jsonl")][-1] == "bastion session delete"
    import socket

    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "ssh is stopped"


def test_a_stack_without_a_bastion_is_one_line_and_exit_2(stand_ins: Path, capsys) -> None:
    (stand_ins / "scenario.json").write_text(json.dumps({"outputs": {}}))
    argv = ["--stack", "prod", "--project-dir", str(ROOT), "--", "pulumi", "up"]
    assert main(argv) == 2
    assert one_line_error(capsys.readouterr().err, "stack prod has no bastionId output")
    assert not logged(stand_ins, "calls.jsonl"), "no session opened"


# -- the first deploy's sequence (docs/deploying.md), planned step by step ---------------------------------------

PLACEHOLDERS = {"ocid1.compartment.oc1..<id>": "ocid1.compartment.oc1..readme", "<your egress address>": "198.51.100.7"}


def first_deploy_lines() -> list[str]:
    text = (ROOT / "docs" / "deploying.md").read_text()
    block = re.search(r"<!-- first-deploy -->\n```sh\n(.*?)```", text, re.S)[1]
    return [line for line in block.splitlines() if line.strip()]


def config_set(document: dict, line: str) -> None:
    """`pulumi config set [--stack S] [--path] KEY VALUE` applied to a stack file's document, as the CLI does for
    the forms the documentation uses (a project key, or a path into one)."""
    words = shlex.split(line)[3:]
    path = "--path" in words
    key, value = [w for i, w in enumerate(words) if not w.startswith("--") and words[i - 1] != "--stack"][:2]
    for placeholder, example in PLACEHOLDERS.items():
        value = value.replace(placeholder, example)
    top, *rest = re.split(r"\.|\[", key) if path else [key]
    node = document["config"]
    full = f"pixelstream:{top}"
    if not rest:
        node[full] = value
        return
    node = node.setdefault(full, {})
    parts = [int(p[:-1]) if p.endswith("]") else p for p in rest]
    for part, following in zip(parts, [*parts[1:], None], strict=True):
        if following is None:
            if isinstance(part, int):
                node[part : part + 1] = [value]
            else:
                node[part] = value
        else:
            node = (
                node.setdefault(part, [] if isinstance(following, int) else {}) if isinstance(part, str) else node[part]
            )


def test_the_readmes_first_deploy_plans_step_by_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = first_deploy_lines()
    assert lines[0] == "pulumi stack init prod" and lines[-1].startswith("python -m pixelstream.tools.bastion")
    document = yaml.safe_load((ROOT / "stacks" / "Pulumi.prod.yaml").read_text())
    for line in lines[1:-1]:
        assert line.startswith("pulumi config set --stack prod "), line
        config_set(document, line)
    stack_file = tmp_path / "Pulumi.prod.yaml"
    stack_file.write_text(yaml.safe_dump(document))
    assert StackConfig.from_stack_file(stack_file).cluster.endpoint.bastion.client_cidrs == ["198.51.100.7/32"]
    assert "--first-deploy" in shlex.split(lines[-1])

    # Step 1: pulumi up --exclude <provider> --exclude-dependents keeps what does not go through the API.
    plan, _ = plan_stack("prod", ROOT, stack_file)
    excluded = second_step(plan)
    kept = [r for r in plan.resources if r.urn not in excluded]
    assert all(r.urn in excluded for r in plan.resources if r.type.startswith("kubernetes:")), "none through the API"
    kept_types = {r.type for r in kept}
    for needed in (BASTION, "oci:ContainerEngine/cluster:Cluster", "oci:Core/subnet:Subnet", "oci:Core/vcn:Vcn"):
        assert needed in kept_types, needed
    rules = [r for r in kept if r.type.endswith("NetworkSecurityGroupSecurityRule")]
    assert any(r.inputs.get("source") == "10.0.0.16/28" for r in rules), "the bastion's way to 6443 comes first"
    later = {r.type for r in plan.resources if r.urn in excluded and r.type.startswith("oci:")}
    assert later == {"oci:ContainerEngine/nodePool:NodePool", "oci:ContainerEngine/addon:Addon"}, later

    # Step 3: the whole stack, its provider through the session's proxy.
    monkeypatch.setenv(KUBERNETES_PROXY_ENV, "socks5://127.0.0.1:1080")
    full, notes = plan_stack("prod", ROOT, stack_file)
    assert len(full.resources) == len(plan.resources)
    assert not [n for n in notes if "documentation address" in n]


def test_the_provider_is_given_the_proxy_only_when_the_run_has_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from test_cluster import cluster_args

    from pixelstream import OkeCluster
    from pixelstream.tools.offline import OfflineMocks, run_offline

    class Providers(OfflineMocks):
        def __init__(self) -> None:
            super().__init__()
            self.kubeconfigs: list[dict] = []

        def new_resource(self, args):
            if args.typ == "pulumi:providers:kubernetes":
                secret = args.inputs["kubeconfig"]  # a secret: its value inside Pulumi's secret wrapper
                self.kubeconfigs.append(yaml.safe_load(secret["value"] if isinstance(secret, dict) else secret))
            return super().new_resource(args)

    for proxy in (None, "socks5://127.0.0.1:1080"):
        if proxy:
            monkeypatch.setenv(KUBERNETES_PROXY_ENV, proxy)
        else:
            monkeypatch.delenv(KUBERNETES_PROXY_ENV, raising=False)
        mocks = Providers()
        run_offline(lambda: OkeCluster("oke", cluster_args()), mocks=mocks)
        [kubeconfig] = mocks.kubeconfigs
        assert [c["cluster"].get("proxy-url") for c in kubeconfig["clusters"]] == [proxy]


def test_a_session_that_never_becomes_active_is_deleted_all_the_same(
    stand_ins: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import pixelstream.tools.bastion as tool

    monkeypatch.setattr(tool, "SESSION_READY_SECONDS", 0)
    scenario(stand_ins, activeAfter=99)
    argv = ["--stack", "prod", "--port", str(free_port()), "--project-dir", str(ROOT), "--", "pulumi", "up"]
    assert main(argv) == 2
    assert one_line_error(capsys.readouterr().err, "is CREATING, not ACTIVE")
    oci = [" ".join(c["argv"][:3]) for c in logged(stand_ins, "calls.jsonl")]
    assert oci[-1] == "bastion session delete", "the session is deleted though it never became ACTIVE"
    assert not [u for u in logged(stand_ins, "pulumi.jsonl") if u["argv"][0] == "up"], "no command without a tunnel"


def test_an_ssh_that_cannot_connect_ends_the_run_and_closes_the_session(stand_ins: Path, capsys) -> None:
    scenario(stand_ins, sshFails=True)
    argv = ["--stack", "prod", "--port", str(free_port()), "--project-dir", str(ROOT), "--", "pulumi", "up"]
    assert main(argv) == 2
    assert one_line_error(capsys.readouterr().err, "ssh to the bastion did not open 127.0.0.1:")
    assert [" ".join(c["argv"][:3]) for c in logged(stand_ins, "calls.jsonl")][-1] == "bastion session delete"


@pytest.mark.slow
@pytest.mark.parametrize(("signal_name", "to_group", "status"), [("SIGINT", True, 255), ("SIGTERM", False, 130)])
def test_an_interrupt_lets_pulumi_cancel_gracefully_and_still_closes_the_session(
    stand_ins: Path, signal_name: str, to_group: bool, status: int
) -> None:
    """A terminal's Ctrl-C goes to its foreground process group: the tool and the command it runs. The command is
    left to stop as it will (pulumi cancels its operations and releases its lock; killing it would not), the
    tunnel is in a session of its own and outlives the signal, and the session is closed after. A SIGTERM to the
    tool alone (a cancelled job) is passed on to the command as that interrupt, and waited for."""
    import signal
    import subprocess
    import time

    scenario(stand_ins, waitForInterrupt=True)
    argv = ["--stack", "prod", "--port", str(free_port()), "--project-dir", str(ROOT), "--", "pulumi", "up"]
    tool = subprocess.Popen(
        [sys.executable, "-m", "pixelstream.tools.bastion", *argv], start_new_session=True, env=os.environ.copy()
    )
    deadline = time.monotonic() + 60
    while not (stand_ins / "running").exists():
        assert time.monotonic() < deadline and tool.poll() is None, "the command never started"
        time.sleep(0.1)
    (os.killpg if to_group else os.kill)(tool.pid, getattr(signal, signal_name))
    assert tool.wait(timeout=60) == status, "the command's status, or the tool's own when it was told to stop"
    assert (stand_ins / "cancelled").read_text() == "cleanly", "not killed while cancelling"
    assert [" ".join(c["argv"][:3]) for c in logged(stand_ins, "calls.jsonl")][-1] == "bastion session delete"
