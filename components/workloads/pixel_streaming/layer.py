"""The pixel-streaming workload declared from the stack config, on the platform below it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pulumi

from ...media_path import media_path
from .component import PixelStreaming, PixelStreamingArgs

if TYPE_CHECKING:
    from ...addons.layer import AddonLayer
    from ...config import StackConfig
    from ...oci.layer import OciLayer


def turn_nodes_to_hold(config: StackConfig) -> int:
    """The TURN nodes a drain hold keeps while their sessions last: the OKE TURN pool's nodes when its size is fixed
    (an autoscaled pool's pending holds would grow it; an existing cluster's nodes are not the stack's to count)."""
    pool = config.node_pools.turn
    return pool.size if config.cluster.oke and pool.max_size is None else 0


def declare_pixel_streaming(
    config: StackConfig, infra: OciLayer, addons: AddonLayer, opts: pulumi.ResourceOptions
) -> dict[str, Any]:
    """The workload and the stack outputs it adds. The relay may reach only the stream pods (media_path)."""
    streaming, path = config.streaming, media_path(config)
    workload = PixelStreaming(
        "pixel-streaming",
        PixelStreamingArgs(
            namespace=streaming.namespace,
            images=streaming.images,
            image_pull_secrets=streaming.image_pull_secrets,
            builds=streaming.stream_builds(),
            turn=streaming.turn.server_settings(config.network.relay_ports.bounds, path),
            credential_ttl_seconds=streaming.turn.credential_ttl_seconds,
            auth=streaming.players.auth.settings(),
            queue=streaming.players.queue.settings(),
            limits=streaming.players.rate_limits.settings(),
            streamer=streaming.streamer.settings(),
            scale_down_seconds=streaming.autoscaling.scale_down.stabilization_seconds,
            schedules=[schedule.schedule() for schedule in streaming.capacity.schedules],
            warm_streams=streaming.capacity.warm_streams,
            pre_pull=streaming.capacity.pre_pull,
            host=streaming.ingress.host,
            path_prefix=streaming.ingress.path_prefix,
            cluster_issuer=streaming.ingress.issuer if addons.cluster_issuers else None,
            pod_proxy_prefix=streaming.pod_proxy.path_prefix if streaming.pod_proxy.enabled else None,
            system_nodes=infra.nodes("default"),
            turn_nodes=infra.nodes("turn"),
            turn_nodes_to_hold=turn_nodes_to_hold(config),
            gpu_nodes=[*infra.nodes("gpu"), *addons.gpu_plugin],
            ingress_controller=addons.ingress_controller,
            turn_tls_host=streaming.turn.tls.host,
            certificates=addons.certificates,
            placement=config.cluster.placement(),
            private_cidrs=path.private_cidrs,
            turn_node_cidrs=path.turn_nodes,
        ),
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(providers=[infra.provider])),
    )
    outputs: dict[str, Any] = {
        "url": workload.url,
        "streamingNamespace": workload.namespace,
        "images": workload.images,
    }
    if workload.launch_link_secret is not None:
        outputs["launchLinkSecret"] = workload.launch_link_secret
    if workload.pod_proxy_password is not None:
        outputs |= {"podProxyUsername": workload.pod_proxy_username, "podProxyPassword": workload.pod_proxy_password}
    return outputs
