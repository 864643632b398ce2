"""NetworkPolicies of a workload namespace: it answers nobody unless a policy names the caller (default deny), and
the pods that run the least trusted code (GPU pods fed by players, gateways or job producers) reach only what they
need: DNS, the in-cluster services named, and the internet, never the cluster's own networks nor the node's
link-local metadata service (OCI's instance metadata, which hands out the node's instance-principal token).

They hold where the cluster's network plugin enforces NetworkPolicies (docs/security.md, "Trust boundaries").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from ..addons.charts import ADDON_NAMESPACES, PART_OF
from ..constants import TURN_LISTENING_PORT

NAMESPACE_LABEL = "kubernetes.io/metadata.name"
# OCI's instance metadata service (169.254.169.254) and every other link-local address.
LINK_LOCAL = "169.254.0.0/16"
DNS_PORTS = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
DEFAULT_DENY = "default-deny-ingress"


def in_namespace(namespace: str) -> dict[str, Any]:
    """A peer: every pod of `namespace`."""
    return {"namespaceSelector": {"matchLabels": {NAMESPACE_LABEL: namespace}}}


# The callers every workload has: the ingress controller (players' and operators' routes) and Prometheus (scrapes).
INGRESS_CONTROLLER = in_namespace(ADDON_NAMESPACES["ingress-nginx"])
PROMETHEUS = in_namespace(ADDON_NAMESPACES["kube-prometheus-stack"])
# Every port of a protocol (WebRTC's media ports are ephemeral).
ANY_UDP = [{"protocol": "UDP"}]


# cert-manager's HTTP-01 solver: the pod it starts in a certificate's namespace for each challenge, labelled so
# (SolverIdentificationLabelKey, pkg/apis/acme) and listening on 8089 (acmesolver's port); the ingress
# controller routes Let's Encrypt's request to it.
ACME_SOLVER = {"acme.cert-manager.io/http01-solver": "true"}
ACME_SOLVER_PORT = 8089


def addresses(cidrs: Sequence[str]) -> list[dict[str, Any]]:
    """Peers: the addresses in `cidrs` (e.g. the TURN nodes, whose host-network pods no pod selector names)."""
    return [{"ipBlock": {"cidr": cidr}} for cidr in cidrs]


def pods(labels: Mapping[str, str]) -> dict[str, Any]:
    """A peer: the pods of the policy's namespace with `labels`."""
    return {"podSelector": {"matchLabels": dict(labels)}}


def tcp(*ports: int | str) -> list[dict[str, Any]]:
    """TCP to each of `ports`: numbers, or the names of container ports (what the selected pods call them)."""
    return [{"protocol": "TCP", "port": port} for port in ports]


def reach(peers: Sequence[dict[str, Any]], ports: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """An egress rule: to `peers` (any address when empty), on `ports` (every port without)."""
    return {**({"to": list(peers)} if peers else {}), **({"ports": ports} if ports else {})}


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
    """The pods with labels `selected` take `ports` from `peers` (from any address when `peers` is empty)."""
    rule: dict[str, Any] = {"ports": ports}
    if peers:
        rule["from"] = list(peers)
    spec = {"podSelector": {"matchLabels": dict(selected)}, "policyTypes": ["Ingress"], "ingress": [rule]}
    return _policy(name, namespace, spec, parent)


def allow_certificate_challenges(namespace: pulumi.Input[str], parent: pulumi.Resource) -> None:
    """cert-manager's HTTP-01 solver pods take the challenge from the ingress controller: without this, a
    namespace that denies by default could never get or renew a certificate for its Ingresses."""
    allow_ingress("acme-http01-solver", namespace, ACME_SOLVER, tcp(ACME_SOLVER_PORT), [INGRESS_CONTROLLER], parent)


def relay_egress(turn_nodes: Sequence[str], relay_ports: tuple[int, int]) -> dict[str, Any]:
    """An egress rule: WebRTC media to the TURN servers (host network, so by address): their listening port and
    the relay range, over UDP, and no other port of those addresses."""
    ports = [
        {"protocol": "UDP", "port": TURN_LISTENING_PORT},
        {"protocol": "UDP", "port": relay_ports[0], "endPort": relay_ports[1]},
    ]
    return reach(addresses(turn_nodes), ports)


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
