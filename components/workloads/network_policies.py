"""NetworkPolicies of a workload namespace: it answers nobody unless a policy names the caller (default deny), and
the pods that run the least trusted code (GPU pods fed by players, gateways or job producers) reach only what they
need: DNS, the in-cluster services named, and the internet, never the cluster's own networks nor the node's
link-local metadata service (OCI's instance metadata, which hands out the node's instance-principal token).

They hold where the cluster's network plugin enforces NetworkPolicies (README, "Trust boundaries").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from ..addons.charts import PART_OF

NAMESPACE_LABEL = "kubernetes.io/metadata.name"
# OCI's instance metadata service (169.254.169.254) and every other link-local address.
LINK_LOCAL = "169.254.0.0/16"
DNS_PORTS = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
DEFAULT_DENY = "default-deny-ingress"


def in_namespace(namespace: str) -> dict[str, Any]:
    """A peer: every pod of `namespace`."""
    return {"namespaceSelector": {"matchLabels": {NAMESPACE_LABEL: namespace}}}


def pods(labels: Mapping[str, str]) -> dict[str, Any]:
    """A peer: the pods of the policy's namespace with `labels`."""
    return {"podSelector": {"matchLabels": dict(labels)}}


def tcp(port: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": port}]


def deny_ingress(namespace: pulumi.Input[str], parent: pulumi.Resource) -> k8s.networking.v1.NetworkPolicy:
    """No pod of the namespace takes a connection that no other policy of it allows."""
    return _policy(DEFAULT_DENY, namespace, {"podSelector": {}, "policyTypes": ["Ingress"]}, parent)


def allow_ingress(
    name: str,
    namespace: pulumi.Input[str],
    selected: Mapping[str, str],
    ports: list[dict[str, Any]],
    peers: Sequence[dict[str, Any]],
    parent: pulumi.Resource,
) -> k8s.networking.v1.NetworkPolicy:
    """The pods with labels `selected` take `ports` from `peers`, and from nobody else."""
    spec = {
        "podSelector": {"matchLabels": dict(selected)},
        "policyTypes": ["Ingress"],
        "ingress": [{"from": list(peers), "ports": ports}],
    }
    return _policy(name, namespace, spec, parent)


def internet_egress(
    name: str,
    namespace: pulumi.Input[str],
    selected: Mapping[str, str],
    private_cidrs: Sequence[str],
    services: Sequence[dict[str, Any]],
    parent: pulumi.Resource,
) -> k8s.networking.v1.NetworkPolicy:
    """The pods with labels `selected` reach DNS, `services` (egress rules naming in-cluster peers and ports) and
    the internet outside `private_cidrs` and the link-local range: nothing else."""
    internet = {"ipBlock": {"cidr": "0.0.0.0/0", "except": [*private_cidrs, LINK_LOCAL]}}
    spec = {
        "podSelector": {"matchLabels": dict(selected)},
        "policyTypes": ["Egress"],
        "egress": [
            {"to": [in_namespace("kube-system")], "ports": DNS_PORTS},
            *services,
            {"to": [internet]},
        ],
    }
    return _policy(name, namespace, spec, parent)


def _policy(
    name: str, namespace: pulumi.Input[str], spec: dict[str, Any], parent: pulumi.Resource
) -> k8s.networking.v1.NetworkPolicy:
    return k8s.networking.v1.NetworkPolicy(
        name,
        metadata={"name": name, "namespace": namespace, "labels": PART_OF},
        spec=spec,
        opts=pulumi.ResourceOptions(parent=parent),
    )
