"""PixelStreaming: the streaming workload in its namespace: TURN, the session service (players' sign-in or signed
links, the queue, one stream per player, players sent to builds by weight), the streams of each build and their
GPU capacity (priorities, warm placeholders, image pre-pull), and the routes players reach."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
from pulumi_kubernetes.core.v1 import Namespace

from ...addons.charts import namespace
from ...constants import STREAM_DEPLOYMENT
from ...placement import OKE_PLACEMENT, Placement
from ..images import IMAGES, STREAMING_IMAGES, floating, streaming_images, unpublished
from ..kubernetes import disruption_budget, labels
from .gpu_capacity import GpuCapacity, GpuCapacityArgs
from .policies import streaming_network_policies
from .routing import EdgeLimits, Routing, RoutingArgs
from .session.schedule import CapacitySchedule
from .sessions import PlayerAuth, QueueSettings, Sessions, SessionsArgs
from .sign_in import SignIn, SignInArgs
from .streaming import StreamBuild, StreamerSettings, Streaming, StreamingArgs
from .turn import Turn, TurnArgs, TurnServerSettings


@dataclass(kw_only=True)
class PixelStreamingArgs:
    turn: TurnServerSettings
    private_cidrs: Sequence[str]
    """The cluster's own networks (media_path): the streams reach none of them but the TURN nodes."""
    turn_node_cidrs: Sequence[str]
    """Where the TURN servers' relay addresses are: the streams send their media there."""
    builds: Sequence[StreamBuild]
    """The versions of the Unreal app streamed side by side, each with its share of new players."""
    namespace: str = "pixel"
    images: Mapping[str, str] = field(default_factory=dict)
    """Overrides of the image table (`pixelstream.workloads.images.IMAGES`) by name."""
    image_pull_secrets: Sequence[str] = ()
    """Existing docker-registry Secrets in the namespace, used by every pod."""
    credential_ttl_seconds: int = 300
    """Lifetime of a session's TURN credentials (a new signalling connection of the session gets fresh ones)."""
    auth: PlayerAuth = field(default_factory=PlayerAuth)
    queue: QueueSettings = field(default_factory=QueueSettings)
    limits: EdgeLimits = field(default_factory=EdgeLimits)
    streamer: StreamerSettings = field(default_factory=StreamerSettings)
    scale_down_seconds: int = 30
    """How long a build must have wanted fewer streams before the session service scales it down."""
    schedules: Sequence[CapacitySchedule] = ()
    """Larger buffers between two times (a launch, a demo day)."""
    warm_streams: int = 0
    """Streams' worth of GPU kept ready by placeholder pods."""
    pre_pull: bool = True
    """Pull the stream images on every GPU node as it joins."""
    host: str | None = None
    path_prefix: str = ""
    cluster_issuer: str | None = None
    pod_proxy_prefix: str | None = None
    system_nodes: Sequence[pulumi.Resource] = ()
    """What the session service and the sign-in wait for: the pool they run on."""
    turn_nodes: Sequence[pulumi.Resource] = ()
    turn_nodes_to_hold: int = 0
    """TURN nodes whose relayed sessions a node drain waits for (the TURN pool's fixed size; 0: none)."""
    gpu_nodes: Sequence[pulumi.Resource] = ()
    """What the stream Deployments wait for: the GPU pool and the device plugin."""
    ingress_controller: Sequence[pulumi.Resource] = ()
    """What the Ingresses wait for: the controller whose admission webhook validates them."""
    turn_tls_host: str | None = None
    """TURN over TLS on 443 under this name (with `turn.tls`)."""
    certificates: Sequence[pulumi.Resource] = ()
    """What a certificate waits for: cert-manager and its issuers."""
    placement: Placement = OKE_PLACEMENT
    """Which nodes are the system, TURN and GPU nodes (their labels and taints)."""


class PixelStreaming(pulumi.ComponentResource):
    """Outputs: `url`, `namespace`, `images` (what runs), `launch_link_secret` (secret; signed links with a
    generated HS256 key: what the operator's portal signs launch links with), and `pod_proxy_username` /
    `pod_proxy_password` (secrets) when the pod proxy is on."""

    url: str
    namespace: str
    images: dict[str, str]
    launch_link_secret: pulumi.Output[str] | None
    pod_proxy_username: pulumi.Output[str] | None
    pod_proxy_password: pulumi.Output[str] | None

    def __init__(self, name: str, args: PixelStreamingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        unknown = sorted(set(args.images) - set(STREAMING_IMAGES))
        if unknown:
            raise ValueError(f"unknown images {', '.join(unknown)}; known: {', '.join(STREAMING_IMAGES)}")
        names = [build.name for build in args.builds]
        if not names or len(set(names)) != len(names) or not any(build.weight for build in args.builds):
            raise ValueError(f"builds {names} must be one or more, named apart, at least one with a weight above 0")
        super().__init__("pixelstream:index:PixelStreaming", name, None, opts)
        images = streaming_images(args.images)
        self._warn(args, images)
        # The namespace waits for nothing: what runs in it waits for its own nodes (the session service and the
        # sign-in for the system pool, TURN for its pool, the streams for the GPU pool and its device plugin),
        # and the GPU image pre-pull and placeholders start as soon as the cluster is up.
        ns = namespace(args.namespace, self)
        ns_name = ns.metadata["name"]
        pull_secrets = list(args.image_pull_secrets)
        child = pulumi.ResourceOptions(parent=self)

        turn = Turn(
            f"{name}-turn",
            TurnArgs(
                namespace=ns_name,
                server=args.turn,
                coturn_image=images["coturn"],
                python_image=images["python"],
                image_pull_secrets=pull_secrets,
                depends_on=args.turn_nodes,
                nodes=args.placement.turn,
                tls_host=args.turn_tls_host,
                cluster_issuer=args.cluster_issuer,
                certificates_after=args.certificates,
                ingress_controller=args.ingress_controller,
                nodes_to_hold=args.turn_nodes_to_hold,
            ),
            opts=child,
        )
        sessions = Sessions(
            f"{name}-sessions",
            SessionsArgs(
                namespace=ns_name,
                image=images["session"],
                builds=args.builds,
                auth=args.auth,
                queue=args.queue,
                scale_down_seconds=args.scale_down_seconds,
                schedules=args.schedules,
                turn_secret_name=turn.secret_name,
                turn_secret_key=turn.secret_key,
                turn_ttl_seconds=args.credential_ttl_seconds,
                turn_tls_url=turn.tls_url,
                cookie_secure=bool(args.host and args.cluster_issuer),
                path_prefix=args.path_prefix,
                image_pull_secrets=pull_secrets,
                turn_nodes=args.placement.turn,
                depends_on=args.system_nodes,
            ),
            opts=child,
        )
        capacity = GpuCapacity(
            f"{name}-capacity",
            GpuCapacityArgs(
                namespace=ns_name,
                images=images,
                builds=args.builds,
                streamer=args.streamer,
                warm_streams=args.warm_streams,
                pre_pull=args.pre_pull,
                image_pull_secrets=pull_secrets,
                nodes=args.placement.gpu,
            ),
            opts=child,
        )
        for build in args.builds:
            Streaming(
                f"{name}-streaming-{build.name}",
                StreamingArgs(
                    namespace=ns_name,
                    build=build,
                    images=images,
                    streamer=args.streamer,
                    image_pull_secrets=pull_secrets,
                    priority_class=capacity.stream_priority_class,
                    depends_on=args.gpu_nodes,
                    nodes=args.placement.gpu,
                ),
                opts=child,
            )
        # One stream at a time, of all builds, during node drains: sessions end gradually, drains never block. It
        # was the one stream Deployment's before builds: the alias keeps it (a new one of the same name would clash).
        before_builds = pulumi.Alias(parent=pulumi.create_urn(f"{name}-streaming", "pixelstream:index:Streaming", self))
        disruption_budget(STREAM_DEPLOYMENT, ns_name, labels(STREAM_DEPLOYMENT), self, [before_builds])
        sign_in = self._sign_in(name, args, ns, images) if args.auth.mode == "oidc" else None
        routing = Routing(
            f"{name}-routing",
            RoutingArgs(
                namespace=ns_name,
                images=images,
                host=args.host,
                path_prefix=args.path_prefix,
                cluster_issuer=args.cluster_issuer,
                limits=args.limits,
                sign_in=sign_in.annotations if sign_in else None,
                sign_in_service=sign_in.service if sign_in else None,
                pod_proxy_prefix=args.pod_proxy_prefix,
                image_pull_secrets=pull_secrets,
                depends_on=args.ingress_controller,
            ),
            opts=child,
        )
        streaming_network_policies(
            ns_name,
            private_cidrs=args.private_cidrs,
            turn_nodes=args.turn_node_cidrs,
            relay_ports=args.turn.relay_ports,
            pod_proxy=args.pod_proxy_prefix is not None,
            sign_in=sign_in is not None,
            parent=self,
        )
        self.url = routing.url
        self.namespace = args.namespace
        self.images = images
        self.launch_link_secret = sessions.launch_link_secret
        self.pod_proxy_username = routing.pod_proxy_username
        self.pod_proxy_password = routing.pod_proxy_password
        self.register_outputs({"url": self.url, "namespace": self.namespace, "images": self.images})

    def _sign_in(self, name: str, args: PixelStreamingArgs, ns: Namespace, images: dict[str, str]) -> SignIn:
        if args.auth.oidc is None or not args.host:
            raise ValueError("oidc sign-in needs the OpenID Connect settings and a host name")
        return SignIn(
            f"{name}-sign-in",
            SignInArgs(
                nodes=args.placement.system,
                namespace=ns,
                oidc=args.auth.oidc,
                host=args.host,
                path_prefix=args.path_prefix,
                image=images["oauth2-proxy"],
                image_pull_secrets=list(args.image_pull_secrets),
                depends_on=args.system_nodes,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _warn(self, args: PixelStreamingArgs, images: dict[str, str]) -> None:
        """What every plan of this workload says until the stack settles it."""
        in_use = {"session", "coturn", "python", "pause"}
        in_use |= {f"signalling-ue{build.unreal_version}" for build in args.builds}
        in_use |= {"oauth2-proxy"} if args.auth.mode == "oidc" else set()
        in_use |= {"podproxy"} if args.pod_proxy_prefix else set()
        # What each reference is, and the key that sets it.
        references = {f"image {name}": (images[name], f"streaming.images.{name}") for name in sorted(in_use)}
        references |= {f"build {b.name}'s image": (b.unreal_image, b.image_key) for b in args.builds}
        for what, (reference, key) in references.items():
            if floating(reference):
                pulumi.log.warn(f"{what} is {reference}, a moving tag; pin it ({key})", self)
            if unpublished(reference):
                pulumi.log.warn(
                    f"{what} is {reference}, the name of a local build that no node can pull: publish it "
                    f"with .github/workflows/images.yml and pin its digest ({key})",
                    self,
                )
        for build in args.builds:
            if build.unreal_image == IMAGES["unreal"]:
                pulumi.log.warn(
                    f"build {build.name} streams the reference's Unreal Engine 4.27 demo ({build.unreal_image}), "
                    f"which does not speak the signalling protocol of Unreal Engine {build.unreal_version}: set "
                    f"{build.image_key} to your Pixel Streaming build",
                    self,
                )
        if args.auth.mode == "none":
            pulumi.log.warn(
                "players are anonymous (streaming.players.auth.mode: none): anyone who reaches the site can take a "
                "GPU; use oidc or signedLinks before players arrive",
                self,
            )
        if args.pod_proxy_prefix and not (args.host and args.cluster_issuer):
            pulumi.log.warn(
                "the pod proxy takes the basic-auth password over plain HTTP (streaming.podProxy.allowPlainHttp): "
                "anyone on the path can read it and call the streams' REST APIs; set streaming.ingress.host with "
                "addons.certManager on",
                self,
            )
        for build in args.builds:
            if build.weight and not (build.min_replicas or build.buffer_streams):
                pulumi.log.warn(
                    f"build {build.name} keeps no stream while nobody plays (minReplicas and bufferStreams 0): every "
                    "first player waits for a stream's start, and PixelStreamNoReadyStream fires while it is idle",
                    self,
                )
        taking = [build.max_replicas for build in args.builds if build.weight]
        for schedule in args.schedules:
            if taking and schedule.buffer > max(taking):
                pulumi.log.warn(
                    f"schedule {schedule.name} asks for {schedule.buffer} started streams, more than any build taking "
                    f"players may have (maxReplicas {max(taking)}): it gets at most that many",
                    self,
                )
        if args.streamer.allow_console_commands:
            pulumi.log.warn(
                "players may run Unreal console commands (streaming.streamer.allowConsoleCommands: true); Epic's "
                "security guidelines say to launch without -AllowPixelStreamingCommands",
                self,
            )
