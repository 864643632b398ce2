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

from ..constants import (
    DNS_PORT,
    ISAAC_MEDIA_PORT,
    ISAAC_SIGNAL_PORT,
    KUBE_API_PORT,
    KUBE_PROXY_HEALTH_PORT,
    KUBELET_PORT,
    LOAD_BALANCER_LISTENER_PORTS,
    NODE_EXPORTER_PORT,
    NODE_PORT_RANGE,
    OKE_CONTROL_PLANE_PORT,
    PATH_DISCOVERY_ICMP,
    TURN_LISTENING_PORT,
    TURN_METRICS_PORT,
    TURN_TLS_PORT,
)

# The network security groups of the platform: the Kubernetes API endpoint, the private workers (default and
# GPU pools), the public TURN nodes, the public service load balancers and, with VCN-native pod networking, the
# system pods (default and TURN pools) and the stream pods (GPU pool).
API, WORKERS, TURN, LOAD_BALANCERS, PODS, STREAM_PODS = "api", "workers", "turn", "lb", "pods", "streams"
NODE_NSGS = (WORKERS, TURN)
POD_NSGS = (PODS, STREAM_PODS)
ORACLE_SERVICES = "oracle-services"
WORLD = "0.0.0.0/0"

Protocol = Literal["tcp", "udp", "icmp", "all"]
PROTOCOL_NUMBERS = {"tcp": "6", "udp": "17", "icmp": "1", "all": "all"}
# OCI's limit of security rules in one network security group.
MAX_RULES_PER_NSG = 120


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


def outside(*cidrs: str) -> list[str]:
    """Every IPv4 address outside all of `cidrs`, as the fewest CIDR blocks (NSG rules cannot say "all but")."""
    blocks = [ipaddress.IPv4Network(WORLD)]
    for cidr in cidrs:
        excluded = ipaddress.IPv4Network(cidr)
        blocks = [part for block in blocks for part in _without(block, excluded)]
    return [str(n) for n in sorted(blocks)]


def _without(block: ipaddress.IPv4Network, excluded: ipaddress.IPv4Network) -> list[ipaddress.IPv4Network]:
    if not block.overlaps(excluded):
        return [block]
    if block.subnet_of(excluded):
        return []
    return list(block.address_exclude(excluded))


@dataclass(frozen=True)
class OnPremisesFlows:
    """What crosses the site-to-site VPN: nothing but these flows (NSG rules are the boundary on this side)."""

    cidrs: tuple[str, ...]
    kubernetes_api: bool = False
    """The on-premises networks reach the Kubernetes API endpoint."""
    services: tuple[tuple[str, Protocol, tuple[int, int]], ...] = ()
    """(name, protocol, ports) the system pods and the workers reach on the on-premises networks."""


def _internet_egress(nsg: str, private: Sequence[str], description: str) -> list[SecurityRule]:
    """Egress to everything outside the VCN (and the on-premises networks): there, this group reaches only what
    its flows allow."""
    return [SecurityRule(nsg, "EGRESS", "all", cidr, description) for cidr in outside(*private)]


def _world_egress(nsg: str, on_premises: OnPremisesFlows | None, description: str) -> list[SecurityRule]:
    """Egress to everywhere, or, with a VPN, everywhere but the on-premises networks."""
    if on_premises is None:
        return [SecurityRule(nsg, "EGRESS", "all", WORLD, description)]
    return _internet_egress(nsg, on_premises.cidrs, f"{description}, not on-premises")


def _on_premises_rules(flows: OnPremisesFlows, vcn_native_pods: bool) -> list[SecurityRule]:
    """The Kubernetes API from the on-premises networks, and the named services there from the system pods and
    the workers. Stream pods and TURN nodes never reach them (their egress leaves them out)."""
    rules = []
    for cidr in flows.cidrs:
        if flows.kubernetes_api:
            rules.append(
                SecurityRule(API, "INGRESS", "tcp", cidr, "on-premises to the Kubernetes API", _ports(KUBE_API_PORT))
            )
        for name, protocol, ports in flows.services:
            for nsg in (WORKERS, PODS) if vcn_native_pods else (WORKERS,):
                rules.append(SecurityRule(nsg, "EGRESS", protocol, cidr, f"to on-premises {name}", ports))
    return rules


def _node_rules(nodes: str) -> list[SecurityRule]:
    """What OKE needs between a node group and the control plane."""
    rules = _flow(nodes, API, "tcp", "kubelet and pods to the Kubernetes API", KUBE_API_PORT)
    rules += _flow(nodes, API, "tcp", "node registration to the OKE control plane", OKE_CONTROL_PLANE_PORT)
    rules += _flow(API, nodes, "tcp", "control plane to kubelet (logs, exec, health)", KUBELET_PORT)
    rules += _flow(nodes, API, "icmp", "path MTU discovery", icmp=PATH_DISCOVERY_ICMP)
    rules += _flow(API, nodes, "icmp", "path MTU discovery", icmp=PATH_DISCOVERY_ICMP)
    rules.append(SecurityRule(nodes, "INGRESS", "icmp", WORLD, "path MTU discovery", icmp=PATH_DISCOVERY_ICMP))
    return rules


def _overlay_rules() -> list[SecurityRule]:
    """Flannel: pods have no VCN addresses, their traffic is VXLAN between the nodes."""
    rules = _flow(TURN, TURN, "all", "TURN node to TURN node (pod network)")
    rules += _flow(WORKERS, TURN, "all", "workers to TURN nodes (pod network)")
    rules += _flow(TURN, WORKERS, "all", "TURN nodes to workers (pod network, relayed media to any pod)")
    return rules


@dataclass(frozen=True)
class GpuPodFlows:
    """What the GPU pools' pods (streams, simulation instances, AI workers, jobs: the least trusted code, fed by
    players, gateways and job producers) reach in the VCN besides cluster DNS and the Kubernetes API: each system
    pod port named here, and OKE's workload identity endpoint when `workload_identity`."""

    system_ports: tuple[tuple[str, int], ...] = ()
    """(what, TCP port) on the system pods, e.g. the AI orchestrator's service port, Kafka's TLS listener."""
    workload_identity: bool = False
    """Pods sign in to OCI as their service account (the GPU jobs): the control plane's port 12250."""


def _gpu_pod_rules(flows: GpuPodFlows) -> list[SecurityRule]:
    """The GPU pods reach the system pods on DNS and the named ports only, so a compromised stream or job cannot
    reach the simulation orchestrator, Prometheus, KEDA, Kafka's other listeners or any webhook."""
    rules = []
    for protocol in ("udp", "tcp"):
        rules += _flow(STREAM_PODS, PODS, protocol, "stream pods to cluster DNS", DNS_PORT)
    for what, port in flows.system_ports:
        rules += _flow(STREAM_PODS, PODS, "tcp", f"GPU pods to {what}", port)
    if flows.workload_identity:
        rules += _flow(STREAM_PODS, API, "tcp", "GPU pods to OKE's workload identity", OKE_CONTROL_PLANE_PORT)
    return rules


def _vcn_native_pod_rules(
    vcn_cidr: str, on_premises: OnPremisesFlows | None, turn_tls: bool, gpu_flows: GpuPodFlows
) -> list[SecurityRule]:
    """VCN-native pods: system pods talk freely among themselves and with the nodes; stream pods accept only
    the relay's UDP from the TURN nodes, and TCP from the system pods (the session service, Prometheus), and
    reach the system pods only as `gpu_flows` says."""
    rules = _flow(PODS, PODS, "all", "pod to pod")
    rules += _flow(WORKERS, PODS, "all", "nodes to pods (probes, host-network pods)")
    rules += _flow(PODS, WORKERS, "all", "pods to nodes (metrics, host-network pods)")
    rules += _flow(WORKERS, STREAM_PODS, "all", "nodes to stream pods (probes)")
    rules += _flow(PODS, STREAM_PODS, "tcp", "system pods to stream pods (the session service's signalling, metrics)")
    rules += _gpu_pod_rules(gpu_flows)
    rules += _flow(TURN, STREAM_PODS, "udp", "relayed media to the stream pods")
    for protocol in ("udp", "tcp"):
        rules += _flow(TURN, PODS, protocol, "TURN host-network pods to cluster DNS", DNS_PORT)
    for port, what in (
        (KUBELET_PORT, "kubelet"),
        (NODE_EXPORTER_PORT, "node exporter"),
        (TURN_METRICS_PORT, "coturn exporter"),
    ):
        rules += _flow(PODS, TURN, "tcp", f"Prometheus to the TURN nodes' {what}", port)
    if turn_tls:
        rules += _flow(PODS, TURN, "tcp", "the ingress controller to coturn's TLS listener", TURN_TLS_PORT)
    for pods in POD_NSGS:
        rules += _flow(pods, API, "tcp", "pods to the Kubernetes API", KUBE_API_PORT)
        rules.append(SecurityRule(pods, "INGRESS", "icmp", WORLD, "path MTU discovery", icmp=PATH_DISCOVERY_ICMP))
    rules += _flow(PODS, API, "tcp", "pods to the OKE control plane", OKE_CONTROL_PLANE_PORT)
    rules += _flow(API, PODS, "tcp", "control plane to pod webhooks and API services")
    rules.append(SecurityRule(PODS, "EGRESS", "tcp", ORACLE_SERVICES, "OCI services through the service gateway"))
    rules += _world_egress(PODS, on_premises, "outbound internet through the NAT gateway")
    private = (vcn_cidr, *(on_premises.cidrs if on_premises else ()))
    rules += _internet_egress(STREAM_PODS, private, "WebRTC straight to players, outside the VCN")
    return rules


def platform_security_rules(
    *,
    api_allowed_cidrs: Sequence[str],
    client_cidrs: Sequence[str],
    relay_ports: tuple[int, int],
    vcn_cidr: str,
    vcn_native_pods: bool,
    on_premises: OnPremisesFlows | None = None,
    turn_tls: bool = False,
    gpu_flows: GpuPodFlows = GpuPodFlows(),
    viewer_cidrs: Sequence[str] = (),
    bastion_cidr: str | None = None,
) -> list[SecurityRule]:
    """Every rule the platform needs: what OKE needs between its parts, plus the player-facing ports, plus what
    crosses the VPN to `on_premises`.

    With VCN-native pods, nothing in the VCN but the stream pods' UDP is reachable from the TURN nodes; with
    flannel the TURN nodes and workers must exchange everything (the overlay hides which pod is which).
    """
    rules: list[SecurityRule] = []
    for nodes in NODE_NSGS:
        rules += _node_rules(nodes)
    rules += _flow(WORKERS, WORKERS, "all", "worker to worker")
    rules += _world_egress(WORKERS, on_premises, "image pulls and outbound traffic")
    private = (vcn_cidr, *(on_premises.cidrs if on_premises else ()))
    rules += _internet_egress(TURN, private, "relayed media and image pulls, outside the VCN")
    if vcn_native_pods:
        rules += _vcn_native_pod_rules(vcn_cidr, on_premises, turn_tls, gpu_flows)
    else:
        rules += _overlay_rules()
    if on_premises is not None:
        rules += _on_premises_rules(on_premises, vcn_native_pods)
    rules.append(SecurityRule(WORKERS, "EGRESS", "tcp", ORACLE_SERVICES, "OCI services through the service gateway"))
    rules.append(SecurityRule(API, "EGRESS", "tcp", ORACLE_SERVICES, "control plane to OCI services"))

    rules += _flow(LOAD_BALANCERS, WORKERS, "tcp", "load balancers to NodePorts", NODE_PORT_RANGE)
    rules += _flow(LOAD_BALANCERS, WORKERS, "udp", "load balancers to NodePorts", NODE_PORT_RANGE)
    rules += _flow(LOAD_BALANCERS, WORKERS, "tcp", "load balancer health checks (kube-proxy)", KUBE_PROXY_HEALTH_PORT)
    rules += _flow(LOAD_BALANCERS, WORKERS, "icmp", "path MTU discovery", icmp=PATH_DISCOVERY_ICMP)

    for cidr in dict.fromkeys(client_cidrs):
        for port in LOAD_BALANCER_LISTENER_PORTS:
            rules.append(
                SecurityRule(LOAD_BALANCERS, "INGRESS", "tcp", cidr, "players to the ingress listener", (port, port))
            )
        for protocol in ("udp", "tcp"):
            rules.append(
                SecurityRule(TURN, "INGRESS", protocol, cidr, "players to STUN/TURN", _ports(TURN_LISTENING_PORT))
            )
        # UDP only: the relay never carries TCP (coturn runs with no-tcp-relay).
        rules.append(SecurityRule(TURN, "INGRESS", "udp", cidr, "players to the TURN relay range", relay_ports))
    rules += _simulation_viewer_rules(viewer_cidrs, vcn_native_pods)
    for cidr in dict.fromkeys(api_allowed_cidrs):
        rules.append(
            SecurityRule(API, "INGRESS", "tcp", cidr, "administrators to the Kubernetes API", _ports(KUBE_API_PORT))
        )
    if bastion_cidr is not None:
        rules.append(
            SecurityRule(
                API, "INGRESS", "tcp", bastion_cidr, "bastion sessions to the Kubernetes API", _ports(KUBE_API_PORT)
            )
        )

    keys = [r.key for r in rules]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise ValueError(f"security rules declared twice: {', '.join(duplicates)}")
    return rules


SIMULATION_STREAM_PORTS = (("tcp", ISAAC_SIGNAL_PORT), ("udp", ISAAC_MEDIA_PORT))


def _simulation_viewer_rules(viewer_cidrs: Sequence[str], vcn_native_pods: bool) -> list[SecurityRule]:
    """The simulation instances' streams, published by a network load balancer each: the viewers' networks reach
    its signalling (TCP) and media (UDP) listeners, and the load balancers the instances' pods (which see the load
    balancer's address: it does not preserve the viewer's). On flannel the load balancers reach the pods through
    the NodePorts, which the load balancers' rules already open."""
    rules = []
    for protocol, port in SIMULATION_STREAM_PORTS:
        for cidr in dict.fromkeys(viewer_cidrs):
            rules.append(
                SecurityRule(
                    LOAD_BALANCERS, "INGRESS", protocol, cidr, "viewers to the simulation streams", _ports(port)
                )
            )
        if viewer_cidrs and vcn_native_pods:
            rules += _flow(LOAD_BALANCERS, STREAM_PODS, protocol, "load balancers to the simulation streams", port)
    return rules


def rule_counts(rules: Iterable[SecurityRule]) -> dict[str, int]:
    """Rules per network security group."""
    counts: dict[str, int] = {}
    for rule in rules:
        counts[rule.nsg] = counts.get(rule.nsg, 0) + 1
    return counts


def _world_ingress_allowed(
    rule: SecurityRule, relay_ports: tuple[int, int], allow_world_api: bool, allow_world_viewers: bool
) -> bool:
    if rule.protocol == "icmp" and rule.icmp == PATH_DISCOVERY_ICMP:
        return True
    if rule.nsg == TURN and rule.protocol in ("tcp", "udp"):
        return rule.ports == _ports(TURN_LISTENING_PORT) or (rule.protocol == "udp" and rule.ports == relay_ports)
    if rule.nsg == LOAD_BALANCERS and (rule.protocol, rule.ports) in {
        (p, _ports(n)) for p, n in SIMULATION_STREAM_PORTS
    }:
        return allow_world_viewers
    if rule.nsg == LOAD_BALANCERS and rule.protocol == "tcp":
        return rule.ports in {_ports(p) for p in LOAD_BALANCER_LISTENER_PORTS}
    if rule.nsg == API and rule.protocol == "tcp":
        return allow_world_api and rule.ports == _ports(KUBE_API_PORT)
    return False


def unexpected_world_ingress(
    rules: Iterable[SecurityRule],
    *,
    relay_ports: tuple[int, int],
    allow_world_api: bool,
    allow_world_viewers: bool = False,
) -> list[SecurityRule]:
    """Ingress rules open to the whole internet that the platform does not need."""
    return [
        r
        for r in rules
        if r.direction == "INGRESS"
        and r.is_world
        and not _world_ingress_allowed(r, relay_ports, allow_world_api, allow_world_viewers)
    ]


def check_world_ingress(
    rules: Iterable[SecurityRule],
    *,
    relay_ports: tuple[int, int],
    allow_world_api: bool,
    allow_world_viewers: bool = False,
) -> None:
    """Fail, like terraform-oci-oke's precondition, on any world-open ingress beyond TURN, listeners and ICMP."""
    bad = unexpected_world_ingress(
        rules, relay_ports=relay_ports, allow_world_api=allow_world_api, allow_world_viewers=allow_world_viewers
    )
    if bad:
        raise UnsafeNetworkError(
            f"unexpected ingress open to {WORLD}: {bad[0].describe()}"
            + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else "")
            + "; only TURN 3478, the relay range (UDP), load-balancer listeners 80/443, path-discovery ICMP and, "
            "when explicitly allowed, the Kubernetes API may be open to the internet"
        )
