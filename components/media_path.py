"""The media path: where relayed TURN media may go. One rule behind the TURN NSG flows (the OCI layer) and
coturn's peer lists (the workload)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .config_base import ConfigError

if TYPE_CHECKING:
    from .config import StackConfig


@dataclass(frozen=True)
class MediaPath:
    """Where relayed media may go: the stream pods, and none of the platform's own networks besides.

    Both come from the stack's config: the stream pods are a subnet of their own with VCN-native pods."""

    stream_peers: tuple[str, ...]
    """What coturn allows: the stream pod subnet (flannel opt-in: the whole pod overlay)."""
    private_cidrs: tuple[str, ...]
    """What coturn denies besides the special ranges: the VCN, the services CIDR, the pod overlay."""


def media_path(config: StackConfig) -> MediaPath:
    network, cluster = config.network, config.cluster
    private = [network.vcn_cidr, cluster.services_cidr]
    if config.vcn_native_pods:
        return MediaPath((network.subnets.stream_pods,), tuple(private))
    return MediaPath((cluster.pods_cidr,), (*private, cluster.pods_cidr))


def check_media_path(config: StackConfig) -> None:
    """Streaming on flannel only with the explicit opt-in, and the opt-in only where it means something."""
    if not config.streaming.enabled:
        return
    opted_in = config.streaming.turn.allow_relay_to_all_pods
    if config.vcn_native_pods and opted_in:
        raise ConfigError(
            "streaming.turn.allowRelayToAllPods",
            "true only applies to cluster.cni: flannel; with vcnNative the relay reaches exactly the stream pods",
        )
    if not config.vcn_native_pods and not opted_in:
        raise ConfigError(
            "cluster.cni",
            "flannel cannot tell stream pods from the others, so the TURN relay would reach every pod; use vcnNative "
            "(the default), or accept that risk with streaming.turn.allowRelayToAllPods: true",
        )


def media_path_warnings(config: StackConfig) -> list[str]:
    """What the stack allows on purpose that a reviewer should see in every plan."""
    warnings = []
    if config.streaming.enabled and not config.vcn_native_pods:
        warnings.append(
            "streaming.turn.allowRelayToAllPods: the TURN relay can send UDP to every pod of the cluster "
            f"({config.cluster.pods_cidr}), not only to the streams; use cluster.cni: vcnNative to confine it"
        )
    if config.simulation.enabled and not config.streaming.enabled:
        warnings.append(
            "simulation.enabled without streaming.enabled: the TURN relay belongs to the streaming workload, so "
            "the instances' WebRTC media has no relay to browsers outside the VCN"
        )
    return warnings
