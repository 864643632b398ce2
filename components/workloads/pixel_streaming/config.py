"""The pixel-streaming workload's configuration (`streaming.*`) and its checks."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

from pydantic.alias_generators import to_camel

from ...config_base import INT32_MAX, ConfigError, ConfigModel, Range
from ...constants import STREAM_TERMINATION_MARGIN_SECONDS
from ..config import (
    IngressConfig,
    WorkloadConfig,
    check_basic_auth_over_tls,
    check_host,
    check_https_url,
    check_images,
    check_namespace,
    check_path_prefix,
    check_pull_secrets,
    check_requests_and_limits,
)
from ..images import IMAGES, STREAMING_IMAGES, UNREAL_VERSIONS, image_problem
from .routing import EdgeLimits
from .session.schedule import MAX_SCHEDULES, SCHEDULE_NAME, CapacitySchedule
from .sessions import OidcSettings, PlayerAuth, QueueSettings, SignedLinkSettings
from .streaming import StreamBuild, StreamerSettings
from .turn import TURN_TERMINATION_MARGIN_SECONDS, TurnServerSettings

if TYPE_CHECKING:
    from ...config import StackConfig
    from ...media_path import MediaPath


class TurnTlsConfig(ConfigModel):
    host: str | None = None
    """TURN over TLS on 443 (`turns:<host>:443`) for players whose networks allow only HTTPS: a DNS name of its own
    (not streaming.ingress.host) pointing at the ingress load balancer, which passes TLS for it through to coturn;
    it needs addons.certManager and addons.ingressNginx. Unset: off."""


class TurnConfig(ConfigModel):
    realm: str = "pixelstream"
    """The TURN realm: letters, digits, dots and dashes, at most 63."""
    # Minutes: a credential only opens allocations, so a short one cuts no running session.
    credential_ttl_seconds: Annotated[int, Range(60, 3600)] = 300
    """Lifetime of a session's TURN credentials: new allocations need a fresh one (every signalling connection of
    the session gets one); a running allocation outlives it."""
    # A few allocations per session: what one browser opens, and a spare.
    user_quota: Annotated[int, Range(3, 16)] = 4
    """coturn allocations per player session per TURN node: a browser opens one per TURN URL it is given (UDP,
    TCP, and TLS when on), and releases them when it closes the connection; one spare."""
    # coturn reads the quota as a C int.
    total_quota: Annotated[int, Range(1, INT32_MAX)] = 1000
    """coturn allocations per TURN node."""
    max_bytes_per_second: int = 6_250_000
    """Relay bandwidth per session, at least 1 (6250000: 50 Mbit/s)."""
    capacity_bytes_per_second: int = 250_000_000
    """Relay bandwidth of one TURN node (250000000: 2 Gbit/s, the default TURN shape's). Each allocation reserves
    maxBytesPerSecond of it, and it must hold every build's maxReplicas x userQuota allocations, so no set of
    sessions fills a node."""
    allow_relay_to_all_pods: bool = False
    """Accept that the relay can reach every pod (the plan warns): the only way to stream on flannel, or on an
    existing cluster without cluster.existing.streamPodCidrs, where the relay cannot be limited to the stream
    pods; refused where the stream pods have addresses of their own."""
    tls: TurnTlsConfig = TurnTlsConfig()
    # Up to OKE's longest eviction grace (60 minutes) with coturn's exit margin: what a leaving TURN node waits for.
    drain_seconds: Annotated[int, Range(0, 3600 - TURN_TERMINATION_MARGIN_SECONDS)] = 1800
    """How long a TURN server that is stopping (coturn's update, its node leaving) keeps relaying its sessions
    while it refuses new allocations, before it exits; also how long a leaving TURN node is held for them. 0: it
    stops at once. On OKE, nodePools.turn.eviction.graceMinutes must cover it (+10 s); see
    [TURN that drains](docs/operations.md#turn-that-drains)."""

    def server_settings(self, relay_ports: tuple[int, int], path: MediaPath) -> TurnServerSettings:
        return TurnServerSettings(
            relay_ports=relay_ports,
            media_peer_cidrs=path.stream_peers,
            private_cidrs=path.private_cidrs,
            realm=self.realm,
            user_quota=self.user_quota,
            total_quota=self.total_quota,
            max_bytes_per_second=self.max_bytes_per_second,
            capacity_bytes_per_second=self.capacity_bytes_per_second,
            tls=self.tls.host is not None,
            drain_seconds=self.drain_seconds,
        )


class StreamerConfig(ConfigModel):
    gpu_mode: Literal["whole", "timeSliced", "cpuPacked"] = "whole"
    """whole: one GPU per stream (addons.gpuPlugin.streamsPerGpu 1); timeSliced: one time-sliced share each
    (needs streamsPerGpu above 1); cpuPacked: no GPU request, streams packed by their CPU request as in the
    reference."""
    cpu: str = "3750m"
    """The Unreal container's CPU request (the packing knob in cpuPacked), at most cpuLimit."""
    memory: str = "8Gi"
    """Its memory request, at most memoryLimit."""
    cpu_limit: str = "8"
    """Its CPU limit."""
    memory_limit: str = "16Gi"
    """Its memory limit."""
    resolution_width: Annotated[int, Range(320, 7680)] = 1920
    """The render resolution's width."""
    resolution_height: Annotated[int, Range(240, 4320)] = 1080
    """Its height."""
    max_fps: Annotated[int, Range(1, 240)] = 30
    """The WebRTC frame-rate cap."""
    extra_args: list[str] = []
    """More Unreal arguments, each starting with `-` (such as -PixelStreamingEncoderMaxQP=30)."""
    startup_timeout_seconds: Annotated[int, Range(60, 3600)] = 600
    """How long the Unreal app may take to connect before the pod restarts."""
    drain_seconds: Annotated[int, Range(0, 3600)] = 120
    """How long a stopping stream waits for its player to leave; on OKE, nodePools.gpu.eviction.graceMinutes
    must cover it (+30 s)."""
    allow_console_commands: bool = False
    """Let players run Unreal console commands (-AllowPixelStreamingCommands); every plan warns while on."""

    def settings(self) -> StreamerSettings:
        return StreamerSettings(
            gpu_mode=self.gpu_mode,
            cpu=self.cpu,
            memory=self.memory,
            cpu_limit=self.cpu_limit,
            memory_limit=self.memory_limit,
            resolution=(self.resolution_width, self.resolution_height),
            max_fps=self.max_fps,
            extra_args=self.extra_args,
            startup_timeout_seconds=self.startup_timeout_seconds,
            drain_seconds=self.drain_seconds,
            allow_console_commands=self.allow_console_commands,
        )


class ScaleDownConfig(ConfigModel):
    # As long as an HPA's scale-down stabilization may be (Kubernetes: at most one hour).
    stabilization_seconds: Annotated[int, Range(0, 3600)] = 30
    """A build scales down only to the most streams it wanted within this window: a stream a player leaves is
    not stopped just before the next player comes."""


class AutoscalingConfig(ConfigModel):
    """Every build's streams: those in use, one per waiting player and bufferStreams started ones, within
    minReplicas and maxReplicas (the session service scales each build's Deployment to exactly that).
    targetPoolRatio and scaleUp were removed with the streams' HPA: a stack that sets them is told what replaces
    them."""

    min_replicas: Annotated[int, Range(0, INT32_MAX)] = 1
    """The fewest streams a build keeps, at most maxReplicas."""
    max_replicas: Annotated[int, Range(1, INT32_MAX)] = 10
    """The most streams a build runs; every build's counts toward the TURN capacity check
    (streaming.turn.capacityBytesPerSecond)."""
    buffer_streams: Annotated[int, Range(0, INT32_MAX)] = 1
    """Started streams without a player that each build taking new players keeps ready: a player within the
    buffer gets a stream at once; 0: every player waits for a stream's start (prod: 3; see
    [Capacity](docs/capacity.md#capacity-how-gpu-streams-grow-and-shrink))."""
    scale_down: ScaleDownConfig = ScaleDownConfig()
    """How a build gives streams back."""
    REMOVED_KEYS: ClassVar[dict[str, str]] = {
        "targetPoolRatio": "removed: the streams no longer scale on a ratio but to in-use + bufferStreams "
        "(docs/capacity.md); set bufferStreams instead",
        "scaleUp": "removed: the streams scale up at once to in-use + bufferStreams; remove it",
    }


class ScheduleConfig(ConfigModel):
    """A larger buffer between two times: a launch, a demo day (`streaming.capacity.schedules`)."""

    name: str
    """Lower-case letters, digits and dashes, starting with a letter, at most 40, unique: what the session
    service's log calls it."""
    start: str
    """A cron (five fields, numbers only: minute hour day-of-month month day-of-week) at which it becomes active;
    start it early enough for new GPU nodes (about ten minutes: boot, pull, start)."""
    end: str
    """A cron at which it ends: it is active from a fire of start until the next fire of end."""
    time_zone: str = "UTC"
    """The crons' time zone (IANA, such as Europe/Paris)."""
    buffer_streams: Annotated[int, Range(0, INT32_MAX)]
    """While active, every build taking new players keeps at least this many started streams (and the GPU nodes
    they need come with them)."""

    def schedule(self) -> CapacitySchedule:
        return CapacitySchedule(self.name, self.start, self.end, self.time_zone, self.buffer_streams)


class CapacityConfig(ConfigModel):
    warm_streams: Annotated[int, Range(0, 64)] = 0
    """Streams' worth of GPU kept ready by low-priority placeholder pods: GPU slots without a started stream."""
    pre_pull: bool = True
    """Pull the stream images on every GPU node as it joins."""
    schedules: list[ScheduleConfig] = []
    """Scheduled capacity, at most 16: larger buffers between two times (KEDA's cron rule: active from a start
    until the next end); see [Scheduled capacity](docs/capacity.md#scheduled-capacity)."""


class SignedLinksConfig(ConfigModel):
    """Launch links the operator's portal signs (a JWT in the link's fragment: `<site>/#launch=<token>`)."""

    audience: str = "pixelstream"
    """The `aud` every launch link must carry."""
    max_lifetime_seconds: Annotated[int, Range(30, 3600)] = 300
    """The longest a launch link may live (`exp - iat`)."""
    jwks_url: str | None = None
    """RS256/ES256 links checked against the portal's keys at this https:// URL; unset: HS256 with a secret this
    stack generates (stack output `launchLinkSecret`)."""
    issuer: str | None = None
    """The `iss` every link must carry, when set."""

    def settings(self) -> SignedLinkSettings:
        return SignedLinkSettings(self.audience, self.max_lifetime_seconds, self.jwks_url, self.issuer)


class OidcConfig(ConfigModel):
    """Players sign in with the operator's OpenID Connect provider (through oauth2-proxy)."""

    issuer_url: str
    """Your provider, an https:// URL."""
    client_id: str
    """Its application for the player site."""
    client_secret: str
    """The application's secret, refused in plain text: `pulumi config set --secret --path
    streaming.players.auth.oidc.clientSecret <secret>`."""
    scopes: list[str] = ["openid", "email", "profile"]
    """What is asked of the provider (openid among them)."""
    email_domains: list[str] = ["*"]
    """Who may sign in, by email domain; `*`: any."""
    allowed_groups: list[str] = []
    """Who may sign in, by group; empty: any."""
    jwks_url: str | None = None
    """Where the provider's keys are; unset: discovered."""
    token_issuer: str | None = None
    """The ID tokens' `iss` when the discovery document at issuerUrl names another (OCI IAM identity domains:
    https://identity.oraclecloud.com/)."""

    def settings(self) -> OidcSettings:
        return OidcSettings(
            self.issuer_url,
            self.client_id,
            self.client_secret,
            self.scopes,
            self.email_domains,
            self.allowed_groups,
            self.jwks_url,
            self.token_issuer,
        )


class PlayerAuthConfig(ConfigModel):
    mode: Literal["oidc", "signedLinks", "none"] = "none"
    """How players are known before a GPU is handed out; none warns in every plan and fails the policy pack in
    production (prod: signedLinks)."""
    signed_links: SignedLinksConfig = SignedLinksConfig()
    oidc: OidcConfig | None = None
    """Required with mode oidc (issuerUrl, clientId and clientSecret), and with it streaming.ingress.host with
    addons.certManager on."""

    def settings(self) -> PlayerAuth:
        oidc = self.oidc.settings() if self.mode == "oidc" and self.oidc else None
        return PlayerAuth(self.mode, self.signed_links.settings(), oidc)


class QueueConfig(ConfigModel):
    max_players: Annotated[int, Range(1, 100_000)] = 500
    """Players the waiting room holds; the next one is told to come back later (503)."""
    claim_seconds: Annotated[int, Range(5, 600)] = 30
    """How long a player given a stream has to connect before the stream goes to the next one."""
    reconnect_seconds: Annotated[int, Range(0, 600)] = 20
    """How long a disconnected player's stream waits for it."""
    max_session_minutes: Annotated[int, Range(0, 10_080)] = 0
    """A session ends after this long; 0: when the player leaves."""
    cold_start_seconds: Annotated[int, Range(1, 3600)] = 120
    """The wait a player is told when there is no history: one new stream's start."""

    def settings(self) -> QueueSettings:
        return QueueSettings(
            self.max_players,
            self.claim_seconds,
            self.reconnect_seconds,
            self.max_session_minutes * 60,
            self.cold_start_seconds,
        )


# Per client address and limit.
_RATE_LIMIT = Range(1, 10_000)


class RateLimitsConfig(ConfigModel):
    """Per client address, as the load balancer saw it, with bursts of 3x."""

    requests_per_second: Annotated[int, _RATE_LIMIT] = 20
    """Page and status requests."""
    joins_per_minute: Annotated[int, _RATE_LIMIT] = 10
    """Joins and leaves."""
    signalling_per_minute: Annotated[int, _RATE_LIMIT] = 20
    """Websocket upgrades."""
    signalling_connections: Annotated[int, _RATE_LIMIT] = 10
    """Open websockets."""

    def settings(self) -> EdgeLimits:
        return EdgeLimits(
            self.requests_per_second, self.joins_per_minute, self.signalling_per_minute, self.signalling_connections
        )


class PlayersConfig(ConfigModel):
    auth: PlayerAuthConfig = PlayerAuthConfig()
    queue: QueueConfig = QueueConfig()
    rate_limits: RateLimitsConfig = RateLimitsConfig()


class BuildConfig(ConfigModel):
    """One version of the Unreal app, streamed beside the others (`streaming.builds`)."""

    name: str
    """Lower-case letters, digits and dashes, starting with a letter, at most 20, unique: its Deployment is
    stream-<name>, its pods carry `pixelstream.io/build: <name>`."""
    image: str
    """Its Unreal image, pinned by tag or digest."""
    unreal_version: str | None = None
    """Its Unreal Engine version (the signalling server and the player page's library); unset: unrealVersion."""
    weight: Annotated[int, Range(0, 1000)] = 1
    """Its share of new players: weight / the sum of the weights, at least one build above 0. 0: it takes no new
    player, keeps no buffer and scales down to no stream as its sessions end; then remove it from the list."""
    min_replicas: Annotated[int, Range(0, INT32_MAX)] | None = None
    """Its own fewest streams; unset: autoscaling.minReplicas (a build at weight 0: 0, and setting it is
    refused)."""
    max_replicas: Annotated[int, Range(1, INT32_MAX)] | None = None
    """Its own most streams; unset: autoscaling.maxReplicas."""
    buffer_streams: Annotated[int, Range(0, INT32_MAX)] | None = None
    """Its own buffer; unset: autoscaling.bufferStreams (a build at weight 0: 0, and setting it is refused)."""


BUILD_NAME = re.compile(r"[a-z]([a-z0-9-]{0,18}[a-z0-9])?")
MAX_BUILDS = 4
DEFAULT_BUILD = "main"


class PodProxyConfig(ConfigModel):
    enabled: bool = False
    """The pod proxy (an operator's Unreal REST calls by pod IP) behind generated basic auth (ingress-nginx
    `auth-type: basic`): it needs streaming.ingress.host with addons.certManager on (HTTPS), or allowPlainHttp."""
    path_prefix: str = "/proxy"
    """Where the pod proxy is served (not empty)."""
    allow_plain_http: bool = False
    """Serve the pod proxy's basic auth over plain HTTP (no streaming.ingress.host with a certificate): development
    stacks only (environment: development), refused where the host has TLS, and every plan warns."""


class StreamingConfig(WorkloadConfig):
    """The streaming workload ([the player edge](docs/player-edge.md)); it needs addons.ingressNginx."""

    namespace: str = "pixel"
    unreal_version: str = "5.7"
    """The streamer's Unreal Engine version, 5.6 or 5.7: the signalling server (images signalling-ue<version>) and
    the player page's library match it."""
    builds: list[BuildConfig] = []
    """The builds streamed side by side, at most 4, each with its share of new players (see
    [Shipping a build](docs/operations.md#shipping-a-build)); empty: one build, `main`, of images.unreal at
    unrealVersion."""
    images: dict[str, str] = {}
    """Override one image of the image table (session, signalling-ue5.6, signalling-ue5.7, unreal, coturn,
    python, pause, oauth2-proxy, podproxy) with `repo:tag` or `repo@sha256:...`: pin session to the digest the
    images workflow publishes, unreal to your build (not beside builds, where each build names its image)."""
    image_pull_secrets: list[str] = []
    """Existing docker-registry Secrets in the namespace, on every pod."""
    players: PlayersConfig = PlayersConfig()
    turn: TurnConfig = TurnConfig()
    streamer: StreamerConfig = StreamerConfig()
    autoscaling: AutoscalingConfig = AutoscalingConfig()
    capacity: CapacityConfig = CapacityConfig()
    ingress: IngressConfig = IngressConfig()
    pod_proxy: PodProxyConfig = PodProxyConfig()
    CREDENTIALS = (("players", "auth", "oidc", "clientSecret"),)

    def check(self, config: StackConfig) -> None:
        check_streaming(config)

    def stream_builds(self) -> list[StreamBuild]:
        """The builds as the workload declares them, their bounds resolved."""
        scaling = self.autoscaling
        if not self.builds:
            image = self.images.get("unreal", IMAGES["unreal"])
            bounds = (scaling.min_replicas, scaling.max_replicas, scaling.buffer_streams)
            return [StreamBuild(DEFAULT_BUILD, image, self.unreal_version, 1, *bounds)]
        return [
            StreamBuild(
                name=build.name,
                unreal_image=build.image,
                unreal_version=build.unreal_version or self.unreal_version,
                weight=build.weight,
                min_replicas=0 if build.weight == 0 else _or(build.min_replicas, scaling.min_replicas),
                max_replicas=_or(build.max_replicas, scaling.max_replicas),
                buffer_streams=0 if build.weight == 0 else _or(build.buffer_streams, scaling.buffer_streams),
                image_key=f"streaming.builds[{index}].image",
            )
            for index, build in enumerate(self.builds)
        ]


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def check_streaming(config: StackConfig) -> None:
    """The workload's keys, when it is enabled."""
    streaming = config.streaming
    check_namespace(config, "streaming")
    if streaming.unreal_version not in UNREAL_VERSIONS:
        raise ConfigError(
            "streaming.unrealVersion",
            f"{streaming.unreal_version} is not a supported Unreal Engine version: {', '.join(UNREAL_VERSIONS)} "
            "(each has its signalling server and player library)",
        )
    check_images("streaming", streaming.images, STREAMING_IMAGES)
    check_pull_secrets("streaming", streaming.image_pull_secrets)
    _check_turn(streaming.turn)
    _check_turn_drain(config)
    _check_turn_tls(config)
    _check_players(config)
    _check_streamer(config)
    _check_autoscaling(streaming)
    _check_builds(streaming)
    _check_turn_capacity(streaming)
    _check_routing(config)


def _check_builds(streaming: StreamingConfig) -> None:
    builds = streaming.builds
    if len(builds) > MAX_BUILDS:
        raise ConfigError(
            "streaming.builds", f"lists {len(builds)} builds; at most {MAX_BUILDS} run side by side (each its GPUs)"
        )
    if builds and "unreal" in streaming.images:
        raise ConfigError(
            "streaming.images.unreal", "is set beside streaming.builds, where each build names its image: remove it"
        )
    seen: set[str] = set()
    for index, build in enumerate(builds):
        key = f"streaming.builds[{index}]"
        if not BUILD_NAME.fullmatch(build.name):
            raise ConfigError(
                f"{key}.name",
                f"{build.name!r} is not a build name (a-z, 0-9 and -, starting with a letter, at most 20)",
            )
        for bound in ("min_replicas", "buffer_streams"):
            if build.weight == 0 and getattr(build, bound):
                raise ConfigError(
                    f"{key}.{to_camel(bound)}",
                    f"{getattr(build, bound)} at weight 0: a build that takes no new player keeps only the streams "
                    "in use; remove it or give the build a weight",
                )
        if build.name in seen:
            raise ConfigError(f"{key}.name", f"{build.name} is listed twice")
        seen.add(build.name)
        problem = image_problem(build.image)
        if problem:
            raise ConfigError(f"{key}.image", problem)
        if build.unreal_version is not None and build.unreal_version not in UNREAL_VERSIONS:
            raise ConfigError(
                f"{key}.unrealVersion",
                f"{build.unreal_version} is not a supported Unreal Engine version: {', '.join(UNREAL_VERSIONS)}",
            )
    for index, build in enumerate(streaming.stream_builds()):
        if build.min_replicas > build.max_replicas:
            raise ConfigError(
                f"streaming.builds[{index}].minReplicas",
                f"{build.min_replicas} is above the build's maxReplicas ({build.max_replicas})",
            )
    if builds and not any(build.weight for build in builds):
        raise ConfigError("streaming.builds", "every weight is 0: no build would take a new player; give one a weight")


def _check_turn(turn: TurnConfig) -> None:
    if not re.match(r"^[A-Za-z0-9.-]{1,63}$", turn.realm):
        raise ConfigError("streaming.turn.realm", f"{turn.realm} is not a realm (letters, digits, dots, dashes)")
    if turn.max_bytes_per_second < 1:
        raise ConfigError("streaming.turn.maxBytesPerSecond", f"{turn.max_bytes_per_second} is below 1")
    if turn.capacity_bytes_per_second < turn.max_bytes_per_second:
        raise ConfigError(
            "streaming.turn.capacityBytesPerSecond",
            f"{turn.capacity_bytes_per_second} is below maxBytesPerSecond ({turn.max_bytes_per_second}): no session "
            "would fit on a TURN node",
        )


def _check_turn_drain(config: StackConfig) -> None:
    drain = config.streaming.turn.drain_seconds + TURN_TERMINATION_MARGIN_SECONDS
    grace = config.node_pools.turn.eviction.grace_minutes
    if config.cluster.oke and config.streaming.turn.drain_seconds and grace * 60 < drain:
        raise ConfigError(
            "nodePools.turn.eviction.graceMinutes",
            f"{grace} minutes is shorter than a TURN server's drain ({drain} s: streaming.turn.drainSeconds + "
            f"{TURN_TERMINATION_MARGIN_SECONDS}); OKE would delete a TURN node under sessions it still relays",
        )


def _check_turn_tls(config: StackConfig) -> None:
    host = config.streaming.turn.tls.host
    if host is None:
        return
    check_host("streaming.turn.tls.host", host)
    if host == config.streaming.ingress.host:
        raise ConfigError(
            "streaming.turn.tls.host",
            f"{host} is the player site's host too; TURN over TLS needs a name of its own (e.g. turn.{host}), by "
            "which the ingress controller tells it from the site",
        )
    if not (config.addons.cert_manager.enabled and config.addons.ingress_nginx.enabled):
        raise ConfigError(
            "streaming.turn.tls.host",
            "needs addons.certManager (its certificate) and addons.ingressNginx (which passes it through on 443)",
        )


def _check_turn_capacity(streaming: StreamingConfig) -> None:
    """No set of sessions can fill a TURN node: only a player holding a stream gets credentials, so at most
    maxReplicas sessions, each at most userQuota allocations on a node (a misbehaving client may use every node,
    not only the one it was given), and each allocation reserves maxBytesPerSecond of the node's capacity."""
    turn = streaming.turn
    streams = sum(build.max_replicas for build in streaming.stream_builds())
    held = turn.capacity_bytes_per_second // turn.max_bytes_per_second
    needed = streams * turn.user_quota
    if held < needed:
        raise ConfigError(
            "streaming.turn.capacityBytesPerSecond",
            f"{turn.capacity_bytes_per_second} holds {held} allocations of maxBytesPerSecond "
            f"({turn.max_bytes_per_second}) per TURN node, fewer than the {needed} that the sessions of "
            f"{streams} streams (every build's maxReplicas) may hold with userQuota {turn.user_quota}: raise it (a "
            "TURN shape with more bandwidth), or lower maxBytesPerSecond or userQuota",
        )


def _check_players(config: StackConfig) -> None:
    players = config.streaming.players
    auth = players.auth
    links = auth.signed_links
    if not links.audience.strip() or len(links.audience) > 256:
        raise ConfigError("streaming.players.auth.signedLinks.audience", "must be a non-empty string")
    check_https_url("streaming.players.auth.signedLinks.jwksUrl", links.jwks_url)
    if auth.mode == "oidc":
        _check_oidc(config)
    elif auth.oidc is not None:
        raise ConfigError("streaming.players.auth.oidc", f"is set but players.auth.mode is {auth.mode}; set mode: oidc")


def _check_oidc(config: StackConfig) -> None:
    oidc, ingress = config.streaming.players.auth.oidc, config.streaming.ingress
    key = "streaming.players.auth.oidc"
    if oidc is None:
        raise ConfigError(key, "is required with players.auth.mode: oidc (issuerUrl, clientId, clientSecret)")
    if not (ingress.host and config.addons.cert_manager.enabled):
        raise ConfigError(
            "streaming.ingress.host",
            "is required with players.auth.mode: oidc, with certificates on (addons.certManager): the provider "
            "sends players back to https://<host>/oauth2/callback",
        )
    check_https_url(f"{key}.issuerUrl", oidc.issuer_url)
    check_https_url(f"{key}.jwksUrl", oidc.jwks_url)
    check_https_url(f"{key}.tokenIssuer", oidc.token_issuer)
    if not re.match(r"^[\x21-\x7e]{1,256}$", oidc.client_id):
        raise ConfigError(f"{key}.clientId", "must be 1-256 printable characters without spaces")
    if not oidc.client_secret.strip():
        raise ConfigError(f"{key}.clientSecret", "is empty")
    if "openid" not in oidc.scopes:
        raise ConfigError(f"{key}.scopes", f"{' '.join(oidc.scopes)} lacks openid, without which there is no ID token")
    for path, values in (("emailDomains", oidc.email_domains), ("allowedGroups", oidc.allowed_groups)):
        for index, value in enumerate(values):
            if not re.match(r"^[^\s,]{1,256}$", value):
                raise ConfigError(f"{key}.{path}[{index}]", f"{value!r} is not one value (no spaces or commas)")
    if not oidc.email_domains:
        raise ConfigError(f"{key}.emailDomains", 'is empty: nobody could sign in; use ["*"] for any domain')


def _check_streamer(config: StackConfig) -> None:
    streamer = config.streaming.streamer
    check_requests_and_limits("streaming.streamer", streamer)
    for index, argument in enumerate(streamer.extra_args):
        if not argument.startswith("-") or any(c in argument for c in "\n\r\0"):
            raise ConfigError(
                f"streaming.streamer.extraArgs[{index}]",
                f"{argument!r} is not an Unreal argument such as -PixelStreamingEncoderMaxQP=30",
            )
    drain = streamer.drain_seconds + STREAM_TERMINATION_MARGIN_SECONDS
    grace = config.node_pools.gpu.eviction.grace_minutes
    if config.cluster.oke and grace * 60 < drain:
        raise ConfigError(
            "nodePools.gpu.eviction.graceMinutes",
            f"{grace} minutes is shorter than a stream's drain and termination ({drain} s: "
            f"streaming.streamer.drainSeconds + {STREAM_TERMINATION_MARGIN_SECONDS}); OKE would delete the node under "
            "sessions still draining",
        )
    plugin = config.addons.gpu_plugin
    if streamer.gpu_mode == "timeSliced" and not (plugin.enabled and plugin.streams_per_gpu > 1):
        raise ConfigError(
            "streaming.streamer.gpuMode",
            "timeSliced needs the device plugin's time-slicing: set addons.gpuPlugin.streamsPerGpu above 1",
        )
    if streamer.gpu_mode == "whole" and plugin.enabled and plugin.streams_per_gpu > 1:
        raise ConfigError(
            "streaming.streamer.gpuMode",
            f"whole cannot be scheduled while addons.gpuPlugin.streamsPerGpu is {plugin.streams_per_gpu} (GPUs are "
            "then offered only as shares): use timeSliced, or streamsPerGpu: 1",
        )


def _check_autoscaling(streaming: StreamingConfig) -> None:
    scaling = streaming.autoscaling
    if scaling.min_replicas > scaling.max_replicas:
        raise ConfigError(
            "streaming.autoscaling.minReplicas",
            f"{scaling.min_replicas} is above maxReplicas ({scaling.max_replicas})",
        )
    _check_schedules(streaming.capacity.schedules)


def _check_schedules(schedules: list[ScheduleConfig]) -> None:
    if len(schedules) > MAX_SCHEDULES:
        raise ConfigError("streaming.capacity.schedules", f"lists {len(schedules)}; at most {MAX_SCHEDULES}")
    seen: set[str] = set()
    for index, schedule in enumerate(schedules):
        key = f"streaming.capacity.schedules[{index}]"
        if not SCHEDULE_NAME.fullmatch(schedule.name) or schedule.name in seen:
            raise ConfigError(
                f"{key}.name",
                f"{schedule.name!r} is not a new name (a-z, 0-9 and -, starting with a letter, at most 40)",
            )
        seen.add(schedule.name)
        try:
            schedule.schedule()
        except ValueError as error:
            part, _, problem = str(error).partition(": ")
            raise ConfigError(f"{key}.{part}", problem) from None


def _check_routing(config: StackConfig) -> None:
    streaming, addons = config.streaming, config.addons
    ingress = streaming.ingress
    check_host("streaming.ingress.host", ingress.host)
    for path, prefix in (
        ("ingress.pathPrefix", ingress.path_prefix),
        ("podProxy.pathPrefix", streaming.pod_proxy.path_prefix),
    ):
        check_path_prefix(f"streaming.{path}", prefix, "/pixel")
    if streaming.pod_proxy.enabled and not streaming.pod_proxy.path_prefix:
        raise ConfigError(
            "streaming.podProxy.pathPrefix", '"" would serve the pod proxy over the players\' pages; use e.g. /proxy'
        )
    if streaming.pod_proxy.enabled:
        check_basic_auth_over_tls(
            config,
            "the pod proxy",
            "streaming.ingress.host",
            ingress.host,
            "streaming.podProxy.allowPlainHttp",
            streaming.pod_proxy.allow_plain_http,
        )
    if not addons.ingress_nginx.enabled:
        raise ConfigError(
            "addons.ingressNginx.enabled",
            "false leaves the streaming workload without its ingress controller; enable it or set "
            "streaming.enabled: false",
        )
