"""Network security rules of the platform, as data, and the guard against world-open ingress.

The rules are computed here as plain values so they can be reviewed, tested and guarded before any
resource is declared; `Network` only turns each one into a network security group rule.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import pulumi

from .constants import (
    KUBE_API_PORT,
    KUBE_PROXY_HEALTH_PORT,
    KUBELET_PORT,
    LOAD_BALANCER_LISTENER_PORTS,
    NODE_PORT_RANGE,
    OKE_CONTROL_PLANE_PORT,
    PATH_DISCOVERY_ICMP,
    TURN_LISTENING_PORT,
)

# The network security groups of the platform: the Kubernetes API endpoint, the private workers
# (default and GPU pools), the public TURN nodes, and the public service load balancers.
API, WORKERS, TURN, LOAD_BALANCERS = "api", "workers", "turn", "lb"
NSG_KEYS = (API, WORKERS, TURN, LOAD_BALANCERS)
ORACLE_SERVICES = "oracle-services"
WORLD = "0.0.0.0/0"

Protocol = Literal["tcp", "udp", "icmp", "all"]
PROTOCOL_NUMBERS = {"tcp": "6", "udp": "17", "icmp": "1", "all": "all"}


class UnsafeNetworkError(pulumi.RunError):
    """A security rule would open ingress to the whole internet where the platform does not need it."""


@dataclass(frozen=True)
class SecurityRule:
    """One stateful rule of one network security group.

    `peer` is a CIDR, `nsg:<key>` for another group of the platform, or `oracle-services` for the
    Oracle Services Network behind the service gateway.
    """

    nsg: str
    direction: Literal["INGRESS", "EGRESS"]
    protocol: Protocol
    peer: str
    description: str
    ports: tuple[int, int] | None = None
    icmp: tuple[int, int] | None = None

    @property
    def peer_type(self) -> str:
        if self.peer.startswith("nsg:"):
            return "NETWORK_SECURITY_GROUP"
        if self.peer == ORACLE_SERVICES:
            return "SERVICE_CIDR_BLOCK"
        return "CIDR_BLOCK"

    @property
    def is_world(self) -> bool:
        return self.peer_type == "CIDR_BLOCK" and ipaddress.ip_network(self.peer).prefixlen == 0

    @property
    def key(self) -> str:
        """A stable, unique, readable name: the resource name of the rule."""
        way = "in" if self.direction == "INGRESS" else "out"
        proto = self.protocol
        if self.ports:
            low, high = self.ports
            proto += f"-{low}" if low == high else f"-{low}-{high}"
        if self.icmp:
            proto += f"-{self.icmp[0]}-{self.icmp[1]}"
        peer = self.peer.removeprefix("nsg:").replace(".", "-").replace("/", "-")
        return f"{self.nsg}-{way}-{proto}-{'from' if way == 'in' else 'to'}-{peer}"

    def describe(self) -> str:
        what = self.protocol.upper()
        if self.ports:
            what += f" {self.ports[0]}" if self.ports[0] == self.ports[1] else f" {self.ports[0]}-{self.ports[1]}"
        if self.icmp:
            what += f" type {self.icmp[0]} code {self.icmp[1]}"
        side = "from" if self.direction == "INGRESS" else "to"
        return f"{self.nsg} {self.direction.lower()} {what} {side} {self.peer} ({self.description})"


def _ports(port: int | tuple[int, int] | None) -> tuple[int, int] | None:
    if port is None or isinstance(port, tuple):
        return port
    return (port, port)


def _flow(
    source: str,
    destination: str,
    protocol: Protocol,
    description: str,
    port: int | tuple[int, int] | None = None,
    icmp: tuple[int, int] | None = None,
) -> list[SecurityRule]:
    """Traffic from one group to another: the egress rule on the source and the ingress rule on the target."""
    ports = _ports(port)
    return [
        SecurityRule(source, "EGRESS", protocol, f"nsg:{destination}", description, ports, icmp),
        SecurityRule(destination, "INGRESS", protocol, f"nsg:{source}", description, ports, icmp),
    ]


def platform_security_rules(
    *,
    api_allowed_cidrs: Sequence[str],
    client_cidrs: Sequence[str],
    relay_ports: tuple[int, int],
    pods_on_vcn: bool,
) -> list[SecurityRule]:
    """Every rule the platform needs: what OKE needs between its parts, plus the player-facing ports."""
    rules: list[SecurityRule] = []
    for nodes in (WORKERS, TURN):
        rules += _flow(nodes, API, "tcp", "kubelet and pods to the Kubernetes API", KUBE_API_PORT)
        rules += _flow(nodes, API, "tcp", "node registration to the OKE control plane", OKE_CONTROL_PLANE_PORT)
        rules += _flow(API, nodes, "tcp", "control plane to kubelet (logs, exec, health)", KUBELET_PORT)
        rules += _flow(nodes, API, "icmp", "path MTU discovery", icmp=PATH_DISCOVERY_ICMP)
        rules += _flow(API, nodes, "icmp", "path MTU discovery", icmp=PATH_DISCOVERY_ICMP)
        rules.append(SecurityRule(nodes, "INGRESS", "icmp", WORLD, "path MTU discovery", icmp=PATH_DISCOVERY_ICMP))
        rules.append(SecurityRule(nodes, "EGRESS", "all", WORLD, "image pulls and outbound traffic"))
    rules += _flow(WORKERS, WORKERS, "all", "worker to worker (pod network, flannel VXLAN)")
    rules += _flow(TURN, TURN, "all", "TURN node to TURN node (pod network)")
    rules += _flow(WORKERS, TURN, "all", "workers to TURN nodes (pod network, relayed media to streamers)")
    rules += _flow(TURN, WORKERS, "all", "TURN nodes to workers (pod network, relayed media to streamers)")
    if pods_on_vcn:
        rules += _flow(API, WORKERS, "tcp", "control plane to pods on VCN IPs (admission webhooks)")
    rules.append(SecurityRule(WORKERS, "EGRESS", "tcp", ORACLE_SERVICES, "OCI services through the service gateway"))
    rules.append(SecurityRule(API, "EGRESS", "tcp", ORACLE_SERVICES, "control plane to OCI services"))

    rules += _flow(LOAD_BALANCERS, WORKERS, "tcp", "load balancers to NodePorts", NODE_PORT_RANGE)
    rules += _flow(LOAD_BALANCERS, WORKERS, "udp", "load balancers to NodePorts", NODE_PORT_RANGE)
    rules += _flow(LOAD_BALANCERS, WORKERS, "tcp", "load balancer health checks (kube-proxy)", KUBE_PROXY_HEALTH_PORT)
    rules += _flow(LOAD_BALANCERS, WORKERS, "icmp", "path MTU discovery", icmp=PATH_DISCOVERY_ICMP)

    for cidr in client_cidrs:
        for port in LOAD_BALANCER_LISTENER_PORTS:
            rules.append(
                SecurityRule(LOAD_BALANCERS, "INGRESS", "tcp", cidr, "players to the ingress listener", (port, port))
            )
        for protocol in ("udp", "tcp"):
            rules.append(
                SecurityRule(TURN, "INGRESS", protocol, cidr, "players to STUN/TURN", _ports(TURN_LISTENING_PORT))
            )
            rules.append(SecurityRule(TURN, "INGRESS", protocol, cidr, "players to the TURN relay range", relay_ports))
    for cidr in api_allowed_cidrs:
        rules.append(
            SecurityRule(API, "INGRESS", "tcp", cidr, "administrators to the Kubernetes API", _ports(KUBE_API_PORT))
        )

    keys = [r.key for r in rules]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise ValueError(f"security rules declared twice: {', '.join(duplicates)}")
    return rules


def _world_ingress_allowed(rule: SecurityRule, relay_ports: tuple[int, int], allow_world_api: bool) -> bool:
    if rule.protocol == "icmp" and rule.icmp == PATH_DISCOVERY_ICMP:
        return True
    if rule.nsg == TURN and rule.protocol in ("tcp", "udp"):
        return rule.ports in (_ports(TURN_LISTENING_PORT), relay_ports)
    if rule.nsg == LOAD_BALANCERS and rule.protocol == "tcp":
        return rule.ports in {_ports(p) for p in LOAD_BALANCER_LISTENER_PORTS}
    if rule.nsg == API and rule.protocol == "tcp":
        return allow_world_api and rule.ports == _ports(KUBE_API_PORT)
    return False


def unexpected_world_ingress(
    rules: Iterable[SecurityRule], *, relay_ports: tuple[int, int], allow_world_api: bool
) -> list[SecurityRule]:
    """Ingress rules open to the whole internet that the platform does not need."""
    return [
        r
        for r in rules
        if r.direction == "INGRESS" and r.is_world and not _world_ingress_allowed(r, relay_ports, allow_world_api)
    ]


def check_world_ingress(rules: Iterable[SecurityRule], *, relay_ports: tuple[int, int], allow_world_api: bool) -> None:
    """Fail, like terraform-oci-oke's precondition, on any world-open ingress beyond TURN, listeners and ICMP."""
    bad = unexpected_world_ingress(rules, relay_ports=relay_ports, allow_world_api=allow_world_api)
    if bad:
        raise UnsafeNetworkError(
            f"unexpected ingress open to {WORLD}: {bad[0].describe()}"
            + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else "")
            + "; only TURN 3478 and the relay range, load-balancer listeners 80/443, path-discovery ICMP and, "
            "when explicitly allowed, the Kubernetes API may be open to the internet"
        )
