"""The media path: where relayed TURN media may go. One rule behind the TURN NSG flows (the OCI layer) and
coturn's peer lists (the workload)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .config_base import ConfigError

if TYPE_CHECKING:
    from .config import StackConfig


@dataclass(frozen=True)
class MediaPath:
    """Where relayed media may go: the stream pods, and none of the platform's own networks besides.

    Both come from the stack's config: the stream pods are a subnet of their own with VCN-native pods on OKE, and
    the pod ranges the config names (`cluster.existing.streamPodCidrs`) on an existing cluster."""

    stream_peers: tuple[str, ...]
    """What coturn allows: the stream pod subnet (flannel opt-in: the whole pod overlay)."""
    private_cidrs: tuple[str, ...]
    """What coturn denies besides the special ranges: the VCN (or the existing cluster's node networks), the
    services CIDR, the pod range, the on-premises networks behind the VPN."""
    turn_nodes: tuple[str, ...]
    """Where the TURN servers' relay addresses are (host network): the TURN subnet, or the existing cluster's node
    networks. The streams send their media there."""

    def forbidden_cidrs(self) -> tuple[str, ...]:
        """The private ranges that hold no stream pod: the relay must touch none of them."""
        peers = [ipaddress.ip_network(cidr) for cidr in self.stream_peers]
        return tuple(c for c in self.private_cidrs if not any(ipaddress.ip_network(c).overlaps(p) for p in peers))


def media_path(config: StackConfig) -> MediaPath:
    network, cluster = config.network, config.cluster
    if not cluster.oke:
        existing = cluster.existing
        private = (*existing.node_cidrs, cluster.services_cidr, cluster.pods_cidr)
        return MediaPath(tuple(existing.stream_pod_cidrs) or (cluster.pods_cidr,), private, tuple(existing.node_cidrs))
    private = [network.vcn_cidr, cluster.services_cidr, *network.on_premises.cidrs]
    turn = (network.subnets.turn,)
    if config.vcn_native_pods:
        return MediaPath((network.subnets.stream_pods,), tuple(private), turn)
    return MediaPath((cluster.pods_cidr,), (*private, cluster.pods_cidr), turn)


def stream_pods_apart(config: StackConfig) -> bool:
    """Whether stream pods have addresses of their own: VCN-native pods on OKE, configured ranges otherwise."""
    return config.vcn_native_pods if config.cluster.oke else bool(config.cluster.existing.stream_pod_cidrs)


def check_media_path(config: StackConfig) -> None:
    """Streaming where stream pods have no addresses of their own only with the explicit opt-in, and the opt-in
    only where it means something."""
    if not config.streaming.enabled:
        return
    opted_in = config.streaming.turn.allow_relay_to_all_pods
    apart = stream_pods_apart(config)
    if apart and opted_in:
        where = "cluster.cni: flannel" if config.cluster.oke else "an existing cluster without streamPodCidrs"
        raise ConfigError(
            "streaming.turn.allowRelayToAllPods",
            f"true only applies to {where}; here the relay reaches exactly the stream pods",
        )
    if not apart and not opted_in:
        if config.cluster.oke:
            raise ConfigError(
                "cluster.cni",
                "flannel cannot tell stream pods from the others, so the TURN relay would reach every pod; use "
                "vcnNative (the default), or accept that risk with streaming.turn.allowRelayToAllPods: true",
            )
        raise ConfigError(
            "cluster.existing.streamPodCidrs",
            "[] leaves the TURN relay no way to tell stream pods from the others (it would reach every pod); name "
            "the pod ranges only GPU nodes use, or accept that risk with streaming.turn.allowRelayToAllPods: true",
        )


def media_path_warnings(config: StackConfig) -> list[str]:
    """What the stack allows on purpose that a reviewer should see in every plan."""
    warnings = []
    if config.streaming.enabled and not stream_pods_apart(config):
        confine = "use cluster.cni: vcnNative" if config.cluster.oke else "name them in cluster.existing.streamPodCidrs"
        warnings.append(
            "streaming.turn.allowRelayToAllPods: the TURN relay can send UDP to every pod of the cluster "
            f"({config.cluster.pods_cidr}), not only to the streams; {confine} to confine it"
        )
    if config.simulation.enabled and not config.streaming.enabled:
        warnings.append(
            "simulation.enabled without streaming.enabled: the TURN relay belongs to the streaming workload, so "
            "the instances' WebRTC media has no relay to browsers outside the VCN"
        )
    return warnings
