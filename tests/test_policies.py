"""The policy pack's policies, offline: each one failing on a bad input and passing on a good one, and the
real stacks passing them all."""

from __future__ import annotations

import copy
from typing import Any

import pulumi_policy
import pytest
from conftest import ROOT

from pixelstream.offline import plan_stack
from pixelstream.policies import (
    POLICIES,
    Secret,
    preserve_secret_markers,
    run_policies,
)

NSG_RULE = "oci:Core/networkSecurityGroupSecurityRule:NetworkSecurityGroupSecurityRule"


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
TURN_CONF = (
    "listening-port=3478\nuse-auth-secret\n"
    "denied-peer-ip=10.0.0.0-10.255.255.255\ndenied-peer-ip=100.64.0.0-100.127.255.255\n"
    "denied-peer-ip=127.0.0.0-127.255.255.255\ndenied-peer-ip=169.254.0.0-169.254.255.255\n"
    "denied-peer-ip=172.16.0.0-172.31.255.255\ndenied-peer-ip=192.168.0.0-192.168.255.255\n"
    "allowed-peer-ip=10.244.0.0-10.244.255.255\n"
)


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
            resource(
                "kubernetes:core/v1:ConfigMap", {"data": {"turnserver.conf": "listening-port=3478\nuse-auth-secret\n"}}
            ),
            resource("kubernetes:core/v1:ConfigMap", {"data": {"turnserver.conf": TURN_CONF}}),
            "turn-denies-private-peers",
        ),
        (
            resource(
                "kubernetes:core/v1:ConfigMap",
                {"data": {"turnserver.conf": TURN_CONF + "allowed-peer-ip=169.254.169.254\n"}},
            ),
            resource("kubernetes:core/v1:ConfigMap", {"data": {"turnserver.conf": TURN_CONF}}),
            "turn-denies-private-peers",
        ),
    ],
)
def test_each_policy_fails_bad_and_passes_good_input(bad: dict, good: dict, policy: str) -> None:
    found = violations(bad)
    assert found and all(v.startswith(f"{policy}: ") for v in found), found
    assert violations(good) == []


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
    }
    main = (ROOT / "policy" / "__main__.py").read_text()
    assert "PolicyPack(" in main and "preserve_secret_markers()" in main
    from pixelstream.policies import ENFORCEMENT

    assert ENFORCEMENT == pulumi_policy.EnforcementLevel.MANDATORY
