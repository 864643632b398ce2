"""Kubernetes NetworkPolicy semantics (networking.k8s.io/v1, as the API reference states them), to ask of a plan's
policies which connections they allow: a pod is isolated for ingress (egress) once any policy of its namespace
selects it with that policy type, and then takes (makes) only the connections some such policy's rule allows; a
connection needs both the source's egress and the destination's ingress.

Endpoints are pods (namespace, labels, address, named container ports) or bare addresses (outside the cluster,
or host-network pods such as coturn on the TURN nodes, which no policy governs)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

NAMESPACE_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: Mapping[str, str]
    address: str
    ports: Mapping[str, tuple[int, str]] = field(default_factory=dict)
    """Named container ports: name -> (number, protocol)."""


@dataclass(frozen=True)
class Address:
    address: str


Endpoint = Pod | Address


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A label selector: matchLabels and matchExpressions all hold (an empty selector selects everything)."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        holds = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not holds:
            return False
    return True


def _in_block(address: str, block: Mapping[str, Any]) -> bool:
    ip = ipaddress.ip_address(address)
    network = ipaddress.ip_network(block["cidr"])
    if ip.version != network.version or ip not in network:
        return False
    return not any(ip in ipaddress.ip_network(c) for c in block.get("except") or [])


def _peer_matches(peer: Mapping[str, Any], policy_namespace: str, other: Endpoint) -> bool:
    if "ipBlock" in peer:
        return _in_block(other.address, peer["ipBlock"])
    if not isinstance(other, Pod):
        return False  # pod and namespace selectors name pods only
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], {NAMESPACE_LABEL: other.namespace}):
            return False
    elif other.namespace != policy_namespace:
        return False
    return selects(peer.get("podSelector"), other.labels)


def _port_matches(rule_port: Mapping[str, Any], destination: Endpoint, protocol: str, port: int) -> bool:
    if rule_port.get("protocol", "TCP") != protocol:
        return False
    wanted = rule_port.get("port")
    if wanted is None:
        return True
    if isinstance(wanted, str):
        # A named port is the destination pod's container port of that name and protocol.
        named = destination.ports.get(wanted) if isinstance(destination, Pod) else None
        return named == (port, protocol)
    return wanted <= port <= rule_port.get("endPort", wanted)


def _rule_allows(
    rule: Mapping[str, Any],
    peers_key: str,
    policy_namespace: str,
    other: Endpoint,
    destination: Endpoint,
    proto: str,
    port: int,
) -> bool:
    peers = rule.get(peers_key) or []
    if peers and not any(_peer_matches(p, policy_namespace, other) for p in peers):
        return False
    ports = rule.get("ports") or []
    return not ports or any(_port_matches(p, destination, proto, port) for p in ports)


def _policy_types(spec: Mapping[str, Any]) -> list[str]:
    """`policyTypes`, or its default: Ingress, and Egress too when the policy has egress rules."""
    return spec.get("policyTypes") or ["Ingress", *(["Egress"] if spec.get("egress") else [])]


class Policies:
    """The NetworkPolicies of a plan, asked about one connection at a time."""

    def __init__(self, manifests: Iterable[Mapping[str, Any]]) -> None:
        self.policies = [m for m in manifests if m.get("kind") == "NetworkPolicy"]

    def _selecting(self, pod: Pod, policy_type: str) -> list[tuple[str, Mapping[str, Any]]]:
        return [
            (p["metadata"]["namespace"], p["spec"])
            for p in self.policies
            if p["metadata"]["namespace"] == pod.namespace
            and policy_type in _policy_types(p["spec"])
            and selects(p["spec"].get("podSelector"), pod.labels)
        ]

    def _permits(
        self, holder: Endpoint, other: Endpoint, destination: Endpoint, policy_type: str, protocol: str, port: int
    ) -> bool:
        """Whether `holder`'s policies of `policy_type` let it exchange with `other` (`destination`'s port)."""
        if not isinstance(holder, Pod):
            return True
        rules_key, peers_key = ("egress", "to") if policy_type == "Egress" else ("ingress", "from")
        selecting = self._selecting(holder, policy_type)
        return not selecting or any(
            _rule_allows(rule, peers_key, ns, other, destination, protocol, port)
            for ns, spec in selecting
            for rule in spec.get(rules_key) or []
        )

    def egress(self, source: Endpoint, destination: Endpoint, protocol: str, port: int) -> bool:
        return self._permits(source, destination, destination, "Egress", protocol, port)

    def ingress(self, source: Endpoint, destination: Endpoint, protocol: str, port: int) -> bool:
        return self._permits(destination, source, destination, "Ingress", protocol, port)

    def allows(self, source: Endpoint, destination: Endpoint, protocol: str, port: int) -> bool:
        """Whether `source` may open a connection (or send a datagram) to `destination` on `protocol`/`port`."""
        return self.egress(source, destination, protocol, port) and self.ingress(source, destination, protocol, port)
