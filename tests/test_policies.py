"""The policy pack's policies, offline: each one failing on a bad input and passing on a good one, and the
real stacks passing them all."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pulumi_policy
import pytest
import yaml
from conftest import ROOT

from pixelstream.tools.offline import plan_stack
from pixelstream.tools.policies import (
    POLICIES,
    Secret,
    preserve_secret_markers,
    run_policies,
)
from pixelstream.workloads.pixel_streaming.turn import TurnServerSettings, turnserver_conf

NSG_RULE = "oci:Core/networkSecurityGroupSecurityRule:NetworkSecurityGroupSecurityRule"
SUBNET = "oci:Core/subnet:Subnet"
CLUSTER = "oci:ContainerEngine/cluster:Cluster"


def resource(type_: str, inputs: dict[str, Any], name: str = "r") -> dict[str, Any]:
    return {"type": type_, "name": name, "inputs": inputs}


def violations(
    *resources: dict[str, Any], outputs: dict[str, Any] | None = None, config: dict | None = None
) -> list[str]:
    return [f"{v.policy}: {v.message}" for v in run_policies(list(resources), outputs or {}, config)]


def ingress(protocol: str, source: str, ports: tuple[int, int] | None = None, icmp: dict | None = None) -> dict:
    inputs: dict[str, Any] = {
        "direction": "INGRESS",
        "protocol": protocol,
        "source": source,
        "sourceType": "CIDR_BLOCK",
    }
    if ports:
        key = "tcpOptions" if protocol == "6" else "udpOptions"
        inputs[key] = {"destinationPortRange": {"min": ports[0], "max": ports[1]}}
    if icmp:
        inputs["icmpOptions"] = icmp
    return resource(NSG_RULE, inputs)


def deployment(container: dict) -> dict:
    return resource(
        "kubernetes:apps/v1:Deployment",
        {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"template": {"spec": {"containers": [container]}}}},
    )


LIMITED = {
    "name": "app",
    "resources": {"requests": {"cpu": "10m", "memory": "8Mi"}, "limits": {"cpu": "1", "memory": "64Mi"}},
}
STREAM_PODS = "10.0.192.0/19"
TURN_CONF = turnserver_conf(
    TurnServerSettings((49152, 65535), media_peer_cidrs=[STREAM_PODS], private_cidrs=["10.0.0.0/16", "10.96.0.0/16"])
)


def turn_config(conf: str, name: str = "coturn") -> dict[str, Any]:
    return resource("kubernetes:core/v1:ConfigMap", {"data": {"turnserver.conf": conf}}, name)


def network(flannel: bool = False) -> list[dict[str, Any]]:
    """The subnets and cluster of a stack, as the Network and OkeCluster components declare them."""
    subnets = {
        "10.0.0.0/28": "api-endpoint",
        "10.0.64.0/18": "nodes",
        "10.0.30.0/24": "nodes",
        "10.0.2.0/24": "load-balancers",
    }
    if not flannel:
        subnets |= {"10.0.128.0/18": "pods", STREAM_PODS: "stream-pods"}
    kubernetes_network = {"servicesCidr": "10.96.0.0/16", **({"podsCidr": "10.244.0.0/16"} if flannel else {})}
    return [
        *(
            resource(SUBNET, {"cidrBlock": cidr, "freeformTags": {"pixelstream-role": role}}, f"subnet-{role}-{cidr}")
            for cidr, role in subnets.items()
        ),
        resource(CLUSTER, {"options": {"kubernetesNetworkConfig": kubernetes_network}}, "cluster"),
    ]


def with_peers(*allowed: str, tcp_relay: bool = False) -> str:
    conf = "\n".join(line for line in TURN_CONF.splitlines() if not line.startswith("allowed-peer-ip="))
    if tcp_relay:
        conf = conf.replace("no-tcp-relay\n", "")
    return conf + "\n" + "".join(f"allowed-peer-ip={peer}\n" for peer in allowed)


RELAY_POLICY = "turn-relays-only-to-stream-pods"


@pytest.mark.parametrize(
    ("bad", "good", "policy"),
    [
        (ingress("6", "0.0.0.0/0", (22, 22)), ingress("6", "0.0.0.0/0", (443, 443)), "no-world-open-ingress"),
        (
            ingress("17", "0.0.0.0/0", (1024, 65535)),
            ingress("17", "0.0.0.0/0", (49152, 65535)),
            "no-world-open-ingress",
        ),
        (ingress("all", "0.0.0.0/0"), ingress("all", "10.0.0.0/16"), "no-world-open-ingress"),
        (
            ingress("1", "0.0.0.0/0", icmp={"type": 8, "code": 0}),
            ingress("1", "0.0.0.0/0", icmp={"type": 3, "code": 4}),
            "no-world-open-ingress",
        ),
        (ingress("6", "0.0.0.0/0", (6443, 6443)), ingress("6", "0.0.0.0/0", (3478, 3478)), "no-world-open-ingress"),
        (
            resource(
                "oci:Core/securityList:SecurityList",
                {
                    "ingressSecurityRules": [
                        {"protocol": "6", "source": "0.0.0.0/0", "tcpOptions": {"min": 22, "max": 22}}
                    ]
                },
            ),
            resource(
                "oci:Core/securityList:SecurityList",
                {
                    "ingressSecurityRules": [
                        {"protocol": "6", "source": "0.0.0.0/0", "tcpOptions": {"min": 80, "max": 80}}
                    ]
                },
            ),
            "no-world-open-ingress",
        ),
        (
            resource(
                "oci:ContainerEngine/nodePool:NodePool",
                {"nodeShape": "BM.GPU.H100.8", "initialNodeLabels": [{"key": "app.pixel/gpu", "value": "true"}]},
            ),
            resource(
                "oci:ContainerEngine/nodePool:NodePool",
                {"nodeShape": "VM.GPU.A10.1", "initialNodeLabels": [{"key": "app.pixel/gpu", "value": "true"}]},
            ),
            "streaming-gpu-pool-has-nvenc",
        ),
        (
            resource("kubernetes:helm.sh/v3:Release", {"chart": "ingress-nginx"}),
            resource("kubernetes:helm.sh/v3:Release", {"chart": "ingress-nginx", "version": "4.15.1"}),
            "helm-release-pins-version",
        ),
        (
            resource("kubernetes:helm.sh/v3:Release", {"chart": "cert-manager", "version": "^1.21"}),
            resource("kubernetes:helm.sh/v3:Release", {"chart": "cert-manager", "version": "v1.21.1"}),
            "helm-release-pins-version",
        ),
        (
            deployment({"name": "app", "resources": {"requests": {"cpu": "10m", "memory": "8Mi"}}}),
            deployment(LIMITED),
            "containers-have-requests-and-limits",
        ),
        (
            resource("kubernetes:core/v1:Secret", {"stringData": {"password": "hunter2"}}),
            resource("kubernetes:core/v1:Secret", {"stringData": {"password": "[secret]"}}),
            "no-plaintext-kubernetes-secrets",
        ),
        (
            turn_config("listening-port=3478\nuse-auth-secret\nno-tcp-relay\n"),
            turn_config(TURN_CONF),
            "turn-denies-private-peers",
        ),
        (
            turn_config(TURN_CONF + "allowed-peer-ip=169.254.169.254\n"),
            turn_config(TURN_CONF),
            "turn-denies-private-peers",
        ),
        (
            turn_config(TURN_CONF.replace("denied-peer-ip=::ffff:0:0-::ffff:ffff:ffff\n", "")),
            turn_config(TURN_CONF),
            "turn-denies-private-peers",
        ),
        (
            turn_config(
                TURN_CONF.replace("denied-peer-ip=10.0.0.0-10.255.255.255", "denied-peer-ip=10.0.0.0-10.0.0.255")
            ),
            turn_config(TURN_CONF),
            "turn-denies-private-peers",
        ),
    ],
)
def test_each_policy_fails_bad_and_passes_good_input(bad: dict, good: dict, policy: str) -> None:
    found = violations(*network(), bad)
    assert any(v.startswith(f"{policy}: ") for v in found), found
    assert violations(*network(), good) == []


def relay_violations(conf: str, flannel: bool = False, config: dict | None = None) -> list[str]:
    found = violations(*network(flannel), turn_config(conf), config=config)
    assert all(v.startswith(f"{RELAY_POLICY}: ") for v in found), found
    return [v.removeprefix(f"{RELAY_POLICY}: ") for v in found]


def test_the_relay_policy_accepts_exactly_the_stream_pods() -> None:
    assert relay_violations(TURN_CONF) == []
    assert relay_violations(with_peers("10.0.192.0-10.0.200.255")) == [], "a part of the stream pods is fine"


@pytest.mark.parametrize(
    ("conf", "flannel", "expected"),
    [
        # main before this policy: the whole pod overlay, on flannel, with the TCP relay on
        (
            with_peers("10.244.0.0-10.244.255.255", tcp_relay=True),
            True,
            ["has no stream pod subnet", "no-tcp-relay is missing"],
        ),
        # VCN-native pods in the workers subnet: the relay reaches the nodes
        (
            with_peers("10.0.64.0-10.0.127.255"),
            False,
            ["beyond the stream pods (10.0.192.0-10.0.223.255): 10.0.64.0-10.0.127.255", "nodes subnet 10.0.64.0/18"],
        ),
        # a range that "allows the pods" by allowing almost everything
        (
            with_peers("10.0.0.2-10.255.255.255"),
            False,
            [
                "beyond the stream pods",
                "api-endpoint subnet 10.0.0.0/28",
                "load-balancers subnet 10.0.2.0/24",
                "nodes subnet 10.0.30.0/24",
                "nodes subnet 10.0.64.0/18",
                "pods subnet 10.0.128.0/18",
                "services CIDR 10.96.0.0/16",
            ],
        ),
        (with_peers(STREAM_PODS.replace("/19", "") + "-10.0.223.255", tcp_relay=True), False, ["no-tcp-relay"]),
        (with_peers("10.0.192.0-10.0.223.255", "10.96.0.10"), False, ["beyond", "services CIDR 10.96.0.0/16"]),
    ],
    ids=["main-before", "vcn-native-workers", "wide-range", "tcp-relay", "services"],
)
def test_the_relay_policy_refuses_wider_reach(conf: str, flannel: bool, expected: list[str]) -> None:
    found = relay_violations(conf, flannel)
    assert len(found) == len(expected), found
    for message, words in zip(found, expected, strict=True):
        assert words in message, (words, found)


def test_the_relay_policy_takes_the_flannel_opt_in_and_explicit_cidrs() -> None:
    overlay = with_peers("10.244.0.0-10.244.255.255")
    assert relay_violations(overlay, flannel=True, config={RELAY_POLICY: {"allowRelayToAllPods": True}}) == []
    assert relay_violations(overlay, flannel=True)
    # A stack that brings its own cluster names the stream pods in the policy config.
    bare = violations(turn_config(TURN_CONF), config={RELAY_POLICY: {"streamPodCidrs": [STREAM_PODS]}})
    assert bare == []
    forbidden = {RELAY_POLICY: {"streamPodCidrs": [STREAM_PODS], "forbiddenCidrs": ["10.0.200.0/24"]}}
    assert violations(turn_config(TURN_CONF), config=forbidden) == [
        f"{RELAY_POLICY}: coturn turnserver.conf: the relay reaches the forbidden CIDR 10.0.200.0/24"
    ]


def test_the_streaming_gpu_rule_spares_other_gpu_pools() -> None:
    ai_pool = resource(
        "oci:ContainerEngine/nodePool:NodePool",
        {"nodeShape": "BM.GPU.H100.8", "initialNodeLabels": [{"key": "pool", "value": "training"}]},
    )
    assert violations(ai_pool) == []


def test_containers_without_limits_include_init_containers() -> None:
    bad = deployment(LIMITED)
    bad["inputs"]["spec"]["template"]["spec"]["initContainers"] = [{"name": "init"}]
    assert violations(bad) == [
        "containers-have-requests-and-limits: container init has no requests for cpu, memory",
        "containers-have-requests-and-limits: container init has no limits for cpu, memory",
    ]


def test_the_jobs_that_keda_starts_need_requests_and_limits_too() -> None:
    pod = {"containers": [LIMITED], "initContainers": [{"name": "display", "resources": LIMITED["resources"]}]}
    scaled = resource("kubernetes:keda.sh/v1alpha1:ScaledJob", {"spec": {"jobTargetRef": {"template": {"spec": pod}}}})
    assert violations(scaled) == []
    pod["containers"] = [{"name": "job"}]
    assert violations(scaled) == [
        "containers-have-requests-and-limits: container job has no requests for cpu, memory",
        "containers-have-requests-and-limits: container job has no limits for cpu, memory",
    ]


def test_plaintext_secret_outputs_are_refused() -> None:
    assert violations(outputs={"grafanaAdminPassword": "plain", "url": "https://x"}) == [
        "no-plaintext-secret-outputs: stack output grafanaAdminPassword is not a secret: "
        "export it with pulumi.Output.secret"
    ]
    assert violations(outputs={"grafanaAdminPassword": "[secret]", "kubeconfig": Secret("...")}) == []


def test_relay_range_and_world_api_from_policy_config() -> None:
    relay = ingress("17", "0.0.0.0/0", (40000, 40999))
    api = ingress("6", "0.0.0.0/0", (6443, 6443))
    assert violations(relay, api)
    config = {"no-world-open-ingress": {"relayMin": 40000, "relayMax": 40999, "allowWorldApi": True}}
    assert violations(relay, api, config=config) == []


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_stacks_pass_every_policy(stack: str) -> None:
    plan, _ = plan_stack(stack, ROOT)
    resources = [{"type": r.type, "name": r.name, "inputs": r.inputs} for r in plan.resources]
    assert run_policies(resources, plan.outputs) == []
    tampered = copy.deepcopy(resources)
    rule = next(r for r in tampered if r["type"] == NSG_RULE and r["inputs"].get("direction") == "INGRESS")
    rule["inputs"].update(source="0.0.0.0/0", protocol="6", tcpOptions={"destinationPortRange": {"min": 22, "max": 22}})
    assert [v.policy for v in run_policies(tampered, plan.outputs)] == ["no-world-open-ingress"]
    relayed = copy.deepcopy(resources)
    coturn = next(r for r in relayed if r["type"] == "kubernetes:core/v1:ConfigMap" and r["name"] == "coturn")
    conf = coturn["inputs"]["data"]["turnserver.conf"]
    coturn["inputs"]["data"]["turnserver.conf"] = conf + "allowed-peer-ip=10.0.64.0-10.0.127.255\n"
    assert [v.policy for v in run_policies(relayed, plan.outputs)] == [RELAY_POLICY, RELAY_POLICY]


def session_deployment(mode: str) -> dict:
    return deployment({**LIMITED, "name": "session", "env": [{"name": "AUTH_MODE", "value": mode}]})


def test_production_refuses_anonymous_players_and_other_environments_only_warn_in_the_plan() -> None:
    production = {"players-authenticated-in-production": {"environment": "production"}}
    assert violations(session_deployment("none"), config=production) == [
        "players-authenticated-in-production: Deployment r container session gives GPUs to anonymous players "
        "(AUTH_MODE none) in a production stack: set streaming.players.auth.mode to oidc or signedLinks"
    ]
    for mode in ("signedLinks", "oidc"):
        assert violations(session_deployment(mode), config=production) == []
    for environment in ("development", "staging"):
        config = {"players-authenticated-in-production": {"environment": environment}}
        assert violations(session_deployment("none"), config=config) == []
    assert violations(session_deployment("none")) == [], "development unless a stack says otherwise"


def test_the_committed_production_stack_authenticates_and_would_fail_anonymous(tmp_path: Path) -> None:
    """prod declares itself production: its own settings pass; the same stack with `auth: none` fails."""
    from pixelstream.config import StackConfig
    from pixelstream.tools.policies import policy_config

    stack_file = ROOT / "stacks" / "Pulumi.prod.yaml"
    config = policy_config(StackConfig.from_stack_file(stack_file))
    assert config["players-authenticated-in-production"] == {"environment": "production"}
    plan, _ = plan_stack("prod", ROOT)
    resources = [{"type": r.type, "name": r.name, "inputs": r.inputs} for r in plan.resources]
    assert run_policies(resources, plan.outputs, config) == []
    document = yaml.safe_load(stack_file.read_text())
    document["config"]["pixelstream:streaming"]["players"]["auth"]["mode"] = "none"
    anonymous = tmp_path / "Pulumi.prod.yaml"
    anonymous.write_text(yaml.safe_dump(document))
    plan, _ = plan_stack("prod", ROOT, anonymous)
    resources = [{"type": r.type, "name": r.name, "inputs": r.inputs} for r in plan.resources]
    assert [v.policy for v in run_policies(resources, plan.outputs, config)] == ["players-authenticated-in-production"]


def test_live_props_keep_secret_markers(monkeypatch) -> None:
    """Under the Pulumi CLI, props arrive through pulumi-policy's deserializer and read-only proxies."""
    from pulumi_policy import deserialize, policy
    from pulumi_policy.proxy import unknown_checking_proxy

    monkeypatch.setattr(policy, "deserialize_properties", deserialize.deserialize_properties)
    wire = {
        "stringData": {deserialize.SPECIAL_SIG_KEY: deserialize.SPECIAL_SECRET_SIG, "value": {"password": "s3cret"}}
    }
    assert violations(
        resource("kubernetes:core/v1:Secret", unknown_checking_proxy(policy.deserialize_properties(wire)))
    )
    preserve_secret_markers()
    props = unknown_checking_proxy(policy.deserialize_properties(wire))
    assert violations(resource("kubernetes:core/v1:Secret", props)) == []


def test_the_pack_is_mandatory_and_complete() -> None:
    names = {p.name for p in POLICIES}
    assert names == {
        "no-world-open-ingress",
        "streaming-gpu-pool-has-nvenc",
        "helm-release-pins-version",
        "containers-have-requests-and-limits",
        "no-plaintext-kubernetes-secrets",
        "turn-denies-private-peers",
        "no-plaintext-secret-outputs",
        "turn-relays-only-to-stream-pods",
        "players-authenticated-in-production",
        "ai-orchestrator-answers-its-callers",
        "kafka-clients-sign-in",
        "workload-namespaces-deny-by-default",
    }
    main = (ROOT / "policy" / "__main__.py").read_text()
    assert "PolicyPack(" in main and "preserve_secret_markers()" in main
    from pixelstream.tools.policies import ENFORCEMENT

    assert ENFORCEMENT == pulumi_policy.EnforcementLevel.MANDATORY


# -- the AI orchestrator answers only its gateways and workers ----------------------------------------------

ORCHESTRATOR_POLICY = "ai-orchestrator-answers-its-callers"
ALLOW = "nginx.ingress.kubernetes.io/allowlist-source-range"
DENY = "nginx.ingress.kubernetes.io/denylist-source-range"


def orchestrator_ingress(path: str, annotations: dict[str, str], service: str = "ai-orchestrator") -> dict:
    backend = {"service": {"name": service, "port": {"number": 8935}}}
    rule = {"host": "ai.example.com", "http": {"paths": [{"path": path, "pathType": "Prefix", "backend": backend}]}}
    return resource(
        "kubernetes:networking.k8s.io/v1:Ingress",
        {"metadata": {"name": "ai", "annotations": annotations}, "spec": {"rules": [rule]}},
    )


@pytest.mark.parametrize(
    ("path", "annotations", "open_to"),
    [
        ("/", {}, "anyone on the internet"),
        ("/net.Orchestrator", {ALLOW: ""}, "anyone on the internet"),
        ("/aiResults", {DENY: "10.0.0.0/8"}, "anyone on the internet"),
        ("/", {ALLOW: "203.0.113.0/24,0.0.0.0/0"}, "wider than any network"),
        ("/net.AIWorker", {ALLOW: "0.0.0.0/1"}, "wider than any network"),
        ("/", {ALLOW: "not-a-network"}, "wider than any network"),
        ("/aiResults", {DENY: "::/0"}, "anyone on the internet"),
        ("/aiResults", {DENY: "0.0.0.0/0"}, "anyone on the internet"),
        ("/stream", {"nginx.ingress.kubernetes.io/rewrite-target": "/aiResults"}, "anyone on the internet"),
    ],
)
def test_orchestrator_paths_open_to_the_internet_are_refused(path: str, annotations: dict, open_to: str) -> None:
    [found] = violations(orchestrator_ingress(path, annotations))
    assert found.startswith(f"{ORCHESTRATOR_POLICY}: Ingress r: the AI orchestrator's {path} "), found
    assert open_to in found


@pytest.mark.parametrize(
    ("path", "annotations", "service"),
    [
        ("/", {ALLOW: "203.0.113.0/24"}, "ai-orchestrator"),
        ("/net.Orchestrator", {ALLOW: "10.0.0.0/8, 192.0.2.0/24"}, "ai-orchestrator"),
        ("/aiResults", {DENY: "0.0.0.0/0,::/0"}, "ai-orchestrator"),
        ("/stream", {}, "ai-orchestrator"),
        ("/", {}, "player"),
    ],
)
def test_orchestrator_paths_for_listed_networks_pass(path: str, annotations: dict, service: str) -> None:
    assert violations(orchestrator_ingress(path, annotations, service)) == []


def test_a_default_backend_to_the_orchestrator_counts_as_its_root() -> None:
    ingress = orchestrator_ingress("/stream", {})
    ingress["inputs"]["spec"]["defaultBackend"] = {"service": {"name": "ai-orchestrator", "port": {"number": 8935}}}
    [found] = violations(ingress)
    assert "the AI orchestrator's / has no source allow-list" in found


def test_the_stack_may_allow_the_world_for_the_orchestrator() -> None:
    wide = orchestrator_ingress("/", {ALLOW: "0.0.0.0/0"})
    config = {ORCHESTRATOR_POLICY: {"allowWorldAccess": True}}
    assert violations(wide, config=config) == []
    assert violations(orchestrator_ingress("/", {}), config=config), "a missing list is never allowed"


def test_the_ai_stack_passes_and_fails_once_its_gateway_list_is_dropped() -> None:
    plan, _ = plan_stack("ai", ROOT)
    resources = [{"type": r.type, "name": r.name, "inputs": r.inputs} for r in plan.resources]
    assert [v for v in run_policies(resources, plan.outputs) if v.policy == ORCHESTRATOR_POLICY] == []
    tampered = copy.deepcopy(resources)
    gateways = next(r for r in tampered if r["name"] == "ai-orchestrator-gateways")
    del gateways["inputs"]["metadata"]["annotations"][ALLOW]
    assert [v.policy for v in run_policies(tampered, plan.outputs)] == [ORCHESTRATOR_POLICY]


# -- every Kafka client signs in --------------------------------------------------------------------------------

KAFKA_POLICY = "kafka-clients-sign-in"
SCRAM = {"type": "scram-sha-512"}


def kafka_cluster(listeners: list[dict], authorization: dict | None = None) -> dict:
    kafka: dict[str, Any] = {"listeners": listeners}
    if authorization:
        kafka["authorization"] = authorization
    return resource("kubernetes:kafka.strimzi.io/v1:Kafka", {"spec": {"kafka": kafka}})


def scaled_job(metadata: dict, authentication: dict | None = None) -> dict:
    trigger: dict[str, Any] = {"type": "kafka", "metadata": {"topic": "tasks", **metadata}}
    if authentication:
        trigger["authenticationRef"] = authentication
    return resource("kubernetes:keda.sh/v1alpha1:ScaledJob", {"spec": {"triggers": [trigger]}})


@pytest.mark.parametrize(
    ("bad", "said"),
    [
        (kafka_cluster([{"name": "plain", "port": 9092}], {"type": "simple"}), "plain (port 9092) takes clients"),
        (kafka_cluster([{"name": "tls", "port": 9093, "authentication": {}}], {"type": "simple"}), "tls (port 9093)"),
        (kafka_cluster([{"name": "tls", "port": 9093, "authentication": SCRAM}]), "no authorization"),
        (scaled_job({"sasl": "none"}, {"name": "a"}), "signs in with nothing"),
        (scaled_job({"sasl": "scram_sha512"}), "signs in with nothing"),
        (scaled_job({}), "signs in with nothing"),
        (scaled_job({"sasl": "plaintext"}, {"name": "a"}), "PLAIN password without TLS"),
    ],
)
def test_kafka_without_sign_in_is_refused(bad: dict, said: str) -> None:
    [found] = violations(bad)
    assert found.startswith(f"{KAFKA_POLICY}: ") and said in found, found


def test_kafka_with_sign_in_passes_and_the_jobs_stacks_have_it(tmp_path: Path) -> None:
    good = kafka_cluster([{"name": "tls", "port": 9093, "authentication": SCRAM}], {"type": "simple"})
    auth = {"name": "k", "kind": "ClusterTriggerAuthentication"}
    assert violations(good, scaled_job({"sasl": "scram_sha512"}, auth)) == []
    assert violations(scaled_job({}, auth), scaled_job({"sasl": "plaintext", "tls": "enable"}, auth)) == []
    plan, _ = plan_stack("onprem", ROOT)
    resources = [{"type": r.type, "name": r.name, "inputs": r.inputs} for r in plan.resources]
    assert [v for v in run_policies(resources, plan.outputs) if v.policy == KAFKA_POLICY] == []
    tampered = copy.deepcopy(resources)
    kafka = next(r for r in tampered if r["type"].endswith(":Kafka"))
    del kafka["inputs"]["spec"]["kafka"]["listeners"][1]["authentication"]
    assert [v.policy for v in run_policies(tampered, plan.outputs)] == [KAFKA_POLICY]


DENY_POLICY = "workload-namespaces-deny-by-default"
DENY_ALL = {"podSelector": {}, "policyTypes": ["Ingress"]}


def pods_in(namespace: str, kind: str = "apps/v1:Deployment") -> dict[str, Any]:
    return resource(f"kubernetes:{kind}", {"metadata": {"name": "w", "namespace": namespace}, "spec": {}})


def network_policy(namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return resource(
        "kubernetes:networking.k8s.io/v1:NetworkPolicy", {"metadata": {"namespace": namespace}, "spec": spec}
    )


@pytest.mark.parametrize(
    "policy",
    [
        None,
        {"podSelector": {"matchLabels": {"app": "w"}}, "policyTypes": ["Ingress"]},
        {"podSelector": {}, "policyTypes": ["Egress"]},
        {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{}]},
    ],
)
def test_a_namespace_running_pods_without_a_default_deny_is_refused(policy: dict | None) -> None:
    """No policy, one that selects some pods only, one for egress only, one whose rule allows everyone."""
    declared = [network_policy("pixel", policy)] if policy else []
    kinds = ("core/v1:Pod", "apps/v1:Deployment", "apps/v1:StatefulSet", "apps/v1:DaemonSet", "apps/v1:ReplicaSet")
    for kind in (*kinds, "batch/v1:Job", "batch/v1:CronJob", "keda.sh/v1alpha1:ScaledJob"):
        [found] = violations(pods_in("pixel", kind), *declared)
        assert found.startswith(f"{DENY_POLICY}: namespace pixel runs the stack's pods but no NetworkPolicy denies"), (
            found
        )
    # The policy of another namespace does not count.
    assert violations(pods_in("pixel"), network_policy("sim", DENY_ALL))


def test_every_shipped_stack_denies_by_default_and_the_policy_sees_one_removed() -> None:
    assert violations(pods_in("pixel"), network_policy("pixel", DENY_ALL)) == []
    for stack in ("prod", "sim", "ai", "onprem"):
        plan, _ = plan_stack(stack, ROOT)
        resources = [{"type": r.type, "name": r.name, "inputs": r.inputs} for r in plan.resources]
        assert [v for v in run_policies(resources, plan.outputs) if v.policy == DENY_POLICY] == [], stack
        tampered = [r for r in resources if r["name"] != "default-deny-ingress"]
        assert {v.policy for v in run_policies(tampered, plan.outputs)} == {DENY_POLICY}, stack
