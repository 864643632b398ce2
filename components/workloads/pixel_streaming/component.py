"""PixelStreaming: the streaming workload in its namespace: TURN and ICE config, streams and matchmaker, their
GPU capacity (priorities, warm placeholders, image pre-pull), player, router and Ingress."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi

from ...addons.charts import namespace
from ...placement import OKE_PLACEMENT, Placement
from ..images import IMAGES, STREAMING_IMAGES, floating
from .gpu_capacity import GpuCapacity, GpuCapacityArgs
from .routing import Routing, RoutingArgs
from .streaming import AutoscalingSettings, StreamerSettings, Streaming, StreamingArgs
from .turn import Turn, TurnArgs, TurnServerSettings


@dataclass(kw_only=True)
class PixelStreamingArgs:
    turn: TurnServerSettings
    namespace: str = "pixel"
    images: Mapping[str, str] = field(default_factory=dict)
    """Overrides of the image table (`pixelstream.workloads.images.IMAGES`) by name."""
    image_pull_secrets: Sequence[str] = ()
    """Existing docker-registry Secrets in the namespace, used by every pod."""
    credential_ttl_seconds: int = 3600
    credentials_per_minute: int = 30
    """TURN credentials one signalling server may obtain per minute (a flood of player connections gets 429)."""
    streamer: StreamerSettings = field(default_factory=StreamerSettings)
    autoscaling: AutoscalingSettings = field(default_factory=AutoscalingSettings)
    warm_streams: int = 0
    """Streams' worth of GPU kept ready by placeholder pods."""
    pre_pull: bool = True
    """Pull the stream images on every GPU node as it joins."""
    host: str | None = None
    path_prefix: str = ""
    cluster_issuer: str | None = None
    pod_proxy_prefix: str | None = None
    system_nodes: Sequence[pulumi.Resource] = ()
    """What the namespace waits for: the pool that runs the matchmaker, player and router."""
    turn_nodes: Sequence[pulumi.Resource] = ()
    gpu_nodes: Sequence[pulumi.Resource] = ()
    """What the stream Deployment waits for: the GPU pool and the device plugin."""
    ingress_controller: Sequence[pulumi.Resource] = ()
    """What the Ingress waits for: the controller whose admission webhook validates it."""
    placement: Placement = OKE_PLACEMENT
    """Which nodes are the TURN and GPU nodes (their labels and taints)."""


class PixelStreaming(pulumi.ComponentResource):
    """Outputs: `url`, `namespace`, `images` (what runs), and `pod_proxy_username`/`pod_proxy_password`
    (secrets) when the pod proxy is on."""

    url: str
    namespace: str
    images: dict[str, str]
    pod_proxy_username: pulumi.Output[str] | None
    pod_proxy_password: pulumi.Output[str] | None

    def __init__(self, name: str, args: PixelStreamingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        unknown = sorted(set(args.images) - set(STREAMING_IMAGES))
        if unknown:
            raise ValueError(f"unknown images {', '.join(unknown)}; known: {', '.join(STREAMING_IMAGES)}")
        super().__init__("pixelstream:index:PixelStreaming", name, None, opts)
        images = {**{name: IMAGES[name] for name in STREAMING_IMAGES}, **args.images}
        for image_name, reference in images.items():
            if floating(reference) and (image_name != "podproxy" or args.pod_proxy_prefix):
                pulumi.log.warn(f"image {image_name} is {reference}, a moving tag; pin it (images.{image_name})", self)
        ns = namespace(args.namespace, self, depends_on=args.system_nodes)
        ns_name = ns.metadata["name"]
        pull_secrets = list(args.image_pull_secrets)

        turn = Turn(
            f"{name}-turn",
            TurnArgs(
                namespace=ns_name,
                server=args.turn,
                coturn_image=images["coturn"],
                python_image=images["python"],
                credential_ttl_seconds=args.credential_ttl_seconds,
                credentials_per_minute=args.credentials_per_minute,
                image_pull_secrets=pull_secrets,
                depends_on=args.turn_nodes,
                nodes=args.placement.turn,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        capacity = GpuCapacity(
            f"{name}-capacity",
            GpuCapacityArgs(
                namespace=ns_name,
                images=images,
                streamer=args.streamer,
                warm_streams=args.warm_streams,
                pre_pull=args.pre_pull,
                image_pull_secrets=pull_secrets,
                depends_on=args.gpu_nodes,
                nodes=args.placement.gpu,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        Streaming(
            f"{name}-streaming",
            StreamingArgs(
                namespace=ns_name,
                images=images,
                ice_config_url=turn.ice_config_url,
                streamer=args.streamer,
                autoscaling=args.autoscaling,
                image_pull_secrets=pull_secrets,
                priority_class=capacity.stream_priority_class,
                depends_on=args.gpu_nodes,
                nodes=args.placement.gpu,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        routing = Routing(
            f"{name}-routing",
            RoutingArgs(
                namespace=ns_name,
                images=images,
                host=args.host,
                path_prefix=args.path_prefix,
                cluster_issuer=args.cluster_issuer,
                pod_proxy_prefix=args.pod_proxy_prefix,
                image_pull_secrets=pull_secrets,
                depends_on=args.ingress_controller,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.url = routing.url
        self.namespace = args.namespace
        self.images = images
        self.pod_proxy_username = routing.pod_proxy_username
        self.pod_proxy_password = routing.pod_proxy_password
        self.register_outputs({"url": self.url, "namespace": self.namespace, "images": self.images})
