"""Streaming: the stream pods (signalling server + Unreal app + deletion-cost agent) and their autoscaler,
the matchmaker that queues players and hands them a free stream, and the player web app."""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s

from ...addons.charts import PART_OF
from ...addons.custom_metrics import POOL_RATIO_METRIC
from ...constants import GPU_RESOURCE, SHARED_GPU_RESOURCE, STREAM_AUTOSCALER, STREAM_DEPLOYMENT
from ...placement import GPU_NODES, NodePlacement
from ..kubernetes import (
    account_with_role,
    api_access_mount,
    api_access_volume,
    cpu_millis,
    disruption_budget,
    gpu_node_affinity,
    helper_command,
    helpers_config_map,
    helpers_mount,
    helpers_volume,
    http_probe,
    image_pull_secrets,
    labels,
    memory_bytes,
    pod_security_context,
    resources,
    security_context,
)

MATCHMAKER = "matchmaker"
PLAYER = "player"
STREAM = STREAM_DEPLOYMENT
AUTOSCALER = STREAM_AUTOSCALER
SIGNAL_HTTP_PORT = 3000
STREAMER_PORT = 8888
SIGNAL_METRICS_PORT = 9000
MATCHMAKER_SOCKET_PORT = 9999
UNREAL_REST_PORT = 8111
PLAYER_PORT = 8080
DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"

# The stream pod's containers besides Unreal: their users and resources. Unreal runs as 1000, the owner of the
# game files in the reference's runtime images.
SIGNALER_UID = 10001
UNREAL_UID = 1000
AGENT_UID = 65534
SIGNALER_RESOURCES = resources("250m", "256Mi", "1", "512Mi")
AGENT_RESOURCES = resources("5m", "24Mi", "50m", "64Mi")
# The images of a stream pod by image-table name, with the user each runs as.
STREAM_IMAGE_USERS = {"signalserver": SIGNALER_UID, "unreal": UNREAL_UID, "python": AGENT_UID}

GpuMode = Literal["whole", "timeSliced", "cpuPacked"]

# The reference's signalling and matchmaker settings (cirrus.json, matchmaker.json); flags override them.
CIRRUS = {
    "UseFrontend": False,
    "UseMatchmaker": False,
    "UseHTTPS": False,
    "UseAuthentication": False,
    "LogToFile": False,
    "EnableWebserver": False,
    "HomepageFile": None,
    "HttpPort": SIGNAL_HTTP_PORT,
    "StreamerPort": STREAMER_PORT,
}
MATCHMAKER_CONFIG = {
    "HttpPort": SIGNAL_HTTP_PORT,
    "UseHTTPS": False,
    "MatchmakerPort": MATCHMAKER_SOCKET_PORT,
    "LogToFile": False,
    "enableRedirectionLinks": False,
    "enableRESTAPI": True,
}

# This workload's helper programs (run by the pinned Python image from a ConfigMap).
HELPERS = Path(__file__).parent / "app"


@dataclass
class StreamerSettings:
    gpu_mode: GpuMode = "whole"
    """`whole`: one GPU per stream; `timeSliced`: one time-sliced share; `cpuPacked`: no GPU request, streams
    packed onto GPU nodes by their CPU request (the reference's approach)."""
    cpu: str = "3750m"
    memory: str = "8Gi"
    cpu_limit: str = "8"
    memory_limit: str = "16Gi"
    resolution: tuple[int, int] = (1920, 1080)
    max_fps: int = 30
    extra_args: Sequence[str] = ()
    """More Unreal command-line arguments."""
    startup_timeout_seconds: int = 600
    """How long the Unreal app may take to connect to its signalling server before the pod is restarted."""
    drain_seconds: int = 120
    """How long a stopping stream waits for its players to leave."""


@dataclass
class AutoscalingSettings:
    min_replicas: int = 1
    max_replicas: int = 10
    target_pool_ratio: float = 0.9
    """Players per ready stream the autoscaler aims for; below 1 keeps spare streams warm."""
    scale_up_stabilization_seconds: int = 0
    scale_up_pods: int = 2
    scale_up_percent: int = 10
    scale_up_period_seconds: int = 15
    scale_down_stabilization_seconds: int = 30


def unreal_arguments(settings: StreamerSettings) -> str:
    """EXTRA_ARGS of the reference Unreal image's launch script."""
    arguments = [
        f"-RestApiPort={UNREAL_REST_PORT}",
        "-AllowPixelStreamingCommands",
        "-PixelStreamingHideCursor",
        f"-PixelStreamingWebRTCMaxFps={settings.max_fps}",
        "-PixelStreamingWebRTCDisableReceiveAudio",
        "-FullStdOutLogOutput",
        *settings.extra_args,
    ]
    return shlex.join(arguments)


def gpu_resources(mode: GpuMode) -> dict[str, str]:
    return {"whole": {GPU_RESOURCE: "1"}, "timeSliced": {SHARED_GPU_RESOURCE: "1"}, "cpuPacked": {}}[mode]


def stream_requests(settings: StreamerSettings) -> dict[str, str]:
    """What one stream pod requests in all (its three containers): what the scheduler and the cluster
    autoscaler fit onto a node, and what a warm-capacity placeholder holds for it."""
    cpus = [SIGNALER_RESOURCES["requests"]["cpu"], settings.cpu, AGENT_RESOURCES["requests"]["cpu"]]
    memories = [SIGNALER_RESOURCES["requests"]["memory"], settings.memory, AGENT_RESOURCES["requests"]["memory"]]
    memory_mi = -(-sum(memory_bytes(m) for m in memories) // 2**20)
    return {
        "cpu": f"{sum(cpu_millis(c) for c in cpus)}m",
        "memory": f"{memory_mi}Mi",
        **gpu_resources(settings.gpu_mode),
    }


# Keeps the Unreal app alive while its signalling server still has players (it tells them the stream is
# ending and waits for them to leave); reads the signalling server's own player gauge with bash only.
# Arguments: number of checks, metrics port, seconds between checks.
_DRAIN_SCRIPT = """for i in $(seq 1 $1); do
  players=$( (exec 3<>/dev/tcp/127.0.0.1/$2 \\
      && printf 'GET /custom HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3) 2>/dev/null \\
    | awk '/^signalserver_player_socket_connections /{print int($2)}')
  [ "${players:-0}" = "0" ] && exit 0
  sleep $3
done"""
DRAIN_CHECK_SECONDS = 5


def drain_hook(settings: StreamerSettings) -> dict:
    checks = max(settings.drain_seconds // DRAIN_CHECK_SECONDS, 1)
    arguments = [str(checks), str(SIGNAL_METRICS_PORT), str(DRAIN_CHECK_SECONDS)]
    return {"preStop": {"exec": {"command": ["bash", "-c", _DRAIN_SCRIPT, "drain", *arguments]}}}


@dataclass(kw_only=True)
class StreamingArgs:
    namespace: pulumi.Input[str]
    images: dict[str, str]
    """Image references by name: signalserver, matchmaker, player, unreal, python."""
    ice_config_url: str
    streamer: StreamerSettings = field(default_factory=StreamerSettings)
    autoscaling: AutoscalingSettings = field(default_factory=AutoscalingSettings)
    player_replicas: int = 2
    image_pull_secrets: Sequence[str] = field(default_factory=list)
    priority_class: pulumi.Input[str] | None = None
    """PriorityClass of the stream pods (above the warm-capacity placeholders, which they preempt)."""
    depends_on: Sequence[pulumi.Resource] = ()
    """What the stream Deployment waits for: the GPU pool and the device plugin."""
    nodes: NodePlacement = GPU_NODES
    """The GPU nodes the streams run on."""


class Streaming(pulumi.ComponentResource):
    """Outputs: `matchmaker_service`, `player_service` (names, port 80 for the player, 3000 for the matchmaker)."""

    matchmaker_service: str
    player_service: str

    def __init__(self, name: str, args: StreamingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("pixelstream:index:Streaming", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        ns = args.namespace
        pull_secrets = image_pull_secrets(args.image_pull_secrets)
        app_config = k8s.core.v1.ConfigMap(
            "pixel-app-configs",
            metadata={"name": "pixel-app-configs", "namespace": ns, "labels": PART_OF},
            data={
                "cirrus.json": json.dumps(CIRRUS, indent=2),
                "matchmaker.json": json.dumps(MATCHMAKER_CONFIG, indent=2),
            },
            opts=child,
        )
        config_volume = {"name": "config", "configMap": {"name": app_config.metadata["name"]}}
        helpers = helpers_config_map("stream-helpers", ns, [HELPERS / "deletion_cost.py"], self)

        self._stream(args, helpers, config_volume, pull_secrets)
        self._matchmaker(args, config_volume, pull_secrets)
        self._player(args, pull_secrets)
        self.matchmaker_service = MATCHMAKER
        self.player_service = PLAYER
        self.register_outputs({"matchmaker_service": MATCHMAKER, "player_service": PLAYER})

    def _stream(
        self, args: StreamingArgs, helpers: k8s.core.v1.ConfigMap, config_volume: dict, pull_secrets: list
    ) -> None:
        ns, settings = args.namespace, args.streamer
        account = self._stream_account(ns)
        stream_labels = labels(STREAM)
        deployment = k8s.apps.v1.Deployment(
            STREAM,
            metadata={
                "name": STREAM,
                "namespace": ns,
                "labels": stream_labels,
                # Unreal images are large and GPU nodes slow to join: give the first rollout time.
                "annotations": {"pulumi.com/timeoutSeconds": "1800"},
            },
            spec={
                # No replicas: the autoscaler owns the count.
                "selector": {"matchLabels": stream_labels},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "template": {
                    "metadata": {
                        "labels": stream_labels,
                        "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": str(SIGNAL_METRICS_PORT)},
                    },
                    "spec": {
                        "serviceAccountName": account,
                        # Only the deletion-cost agent gets the token; the Unreal app and the signalling server don't.
                        "automountServiceAccountToken": False,
                        "imagePullSecrets": pull_secrets,
                        "affinity": gpu_node_affinity(args.nodes),
                        "tolerations": args.nodes.tolerations(),
                        **({"priorityClassName": args.priority_class} if args.priority_class else {}),
                        "terminationGracePeriodSeconds": settings.drain_seconds + 30,
                        "securityContext": pod_security_context(fs_group=1000),
                        "containers": [
                            _signaller_container(args),
                            _unreal_container(args.images["unreal"], settings),
                            _deletion_cost_container(args.images["python"]),
                        ],
                        "volumes": [
                            config_volume,
                            helpers_volume(helpers),
                            api_access_volume(),
                            {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
                        ],
                    },
                },
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            AUTOSCALER,
            metadata={"name": AUTOSCALER, "namespace": ns, "labels": labels(AUTOSCALER)},
            spec=_autoscaler_spec(deployment.metadata["name"], args.autoscaling),
            opts=pulumi.ResourceOptions(parent=self),
        )
        # One stream at a time during node drains: sessions end gradually, drains never block.
        disruption_budget(STREAM, ns, stream_labels, self)

    def _stream_account(self, ns: pulumi.Input[str]) -> pulumi.Output[str]:
        """The streams' service account; the deletion-cost agent patches its own pod through a namespaced Role,
        pods only, get and patch only."""
        rules = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "patch"]}]
        return account_with_role(STREAM, "stream-deletion-cost", ns, rules, self)

    def _matchmaker(self, args: StreamingArgs, config_volume: dict, pull_secrets: list) -> None:
        child = pulumi.ResourceOptions(parent=self)
        ns = args.namespace
        matchmaker_labels = labels(MATCHMAKER)
        k8s.apps.v1.Deployment(
            MATCHMAKER,
            metadata={"name": MATCHMAKER, "namespace": ns, "labels": matchmaker_labels},
            spec={
                # The matchmaker keeps the stream pool in memory: exactly one, replaced rather than doubled.
                "replicas": 1,
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": matchmaker_labels},
                "template": {
                    "metadata": {"labels": matchmaker_labels},
                    "spec": {
                        "imagePullSecrets": pull_secrets,
                        "automountServiceAccountToken": False,
                        "securityContext": pod_security_context(),
                        "containers": [
                            {
                                "name": MATCHMAKER,
                                "image": args.images["matchmaker"],
                                "command": ["node", "wrapper.js"],
                                "args": [
                                    "--configFile=/config/matchmaker.json",
                                    f"--HttpPort={SIGNAL_HTTP_PORT}",
                                    f"--httpPort={SIGNAL_HTTP_PORT}",
                                    f"--MatchmakerPort={MATCHMAKER_SOCKET_PORT}",
                                    f"--matchmakerPort={MATCHMAKER_SOCKET_PORT}",
                                ],
                                "ports": [
                                    {"name": "http", "containerPort": SIGNAL_HTTP_PORT},
                                    {"name": "socket", "containerPort": MATCHMAKER_SOCKET_PORT},
                                    {"name": "metrics", "containerPort": SIGNAL_METRICS_PORT},
                                ],
                                "readinessProbe": http_probe("/healthz", "http", period=10),
                                "livenessProbe": http_probe("/healthz", "http", period=20),
                                "volumeMounts": [{"name": "config", "mountPath": "/config", "readOnly": True}],
                                "securityContext": security_context(10001),
                                "resources": resources("100m", "128Mi", "500m", "256Mi"),
                            }
                        ],
                        "volumes": [config_volume],
                    },
                },
            },
            opts=child,
        )
        k8s.core.v1.Service(
            MATCHMAKER,
            metadata={
                "name": MATCHMAKER,
                "namespace": ns,
                "labels": matchmaker_labels,
                # Scraped through the Service, so its series carry the `service` label the HPA's metric needs.
                "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": str(SIGNAL_METRICS_PORT)},
            },
            spec={
                "selector": matchmaker_labels,
                "sessionAffinity": "ClientIP",
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10}},
                "ports": [
                    {"name": "http", "port": SIGNAL_HTTP_PORT, "targetPort": "http"},
                    {"name": "socket", "port": MATCHMAKER_SOCKET_PORT, "targetPort": "socket"},
                    {"name": "metrics", "port": SIGNAL_METRICS_PORT, "targetPort": "metrics"},
                ],
            },
            opts=child,
        )

    def _player(self, args: StreamingArgs, pull_secrets: list) -> None:
        child = pulumi.ResourceOptions(parent=self)
        ns = args.namespace
        player_labels = labels(PLAYER)
        k8s.apps.v1.Deployment(
            PLAYER,
            metadata={"name": PLAYER, "namespace": ns, "labels": player_labels},
            spec={
                "replicas": args.player_replicas,
                "selector": {"matchLabels": player_labels},
                "template": {
                    "metadata": {"labels": player_labels},
                    "spec": {
                        "imagePullSecrets": pull_secrets,
                        "automountServiceAccountToken": False,
                        "securityContext": pod_security_context(),
                        "containers": [
                            {
                                "name": PLAYER,
                                "image": args.images["player"],
                                "ports": [{"name": "http", "containerPort": PLAYER_PORT}],
                                "readinessProbe": http_probe("/healthz", "http", period=10),
                                "livenessProbe": http_probe("/healthz", "http", period=20),
                                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                                "securityContext": security_context(10001),
                                "resources": resources("50m", "64Mi", "200m", "128Mi"),
                            }
                        ],
                        "volumes": [{"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}],
                    },
                },
            },
            opts=child,
        )
        k8s.core.v1.Service(
            PLAYER,
            metadata={"name": PLAYER, "namespace": ns, "labels": player_labels},
            spec={"selector": player_labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
            opts=child,
        )
        disruption_budget(PLAYER, ns, player_labels, self)


def _signaller_container(args: StreamingArgs) -> dict[str, Any]:
    periods = -(-args.streamer.startup_timeout_seconds // 10)
    return {
        "name": "signaler",
        "image": args.images["signalserver"],
        "command": ["node", "wrapper.js"],
        "args": [
            "--configFile=/config/cirrus.json",
            f"--httpPort={SIGNAL_HTTP_PORT}",
            f"--streamerPort={STREAMER_PORT}",
            "--UseMatchmaker=true",
            f"--MatchmakerAddress={MATCHMAKER}",
            f"--MatchmakerPort={MATCHMAKER_SOCKET_PORT}",
            "--useMatchmaker=true",
            f"--matchmakerAddress={MATCHMAKER}",
            f"--matchmakerPort={MATCHMAKER_SOCKET_PORT}",
            f"--ueRestEndpoint=http://localhost:{UNREAL_REST_PORT}",
            f"--rtcConfigSvc={args.ice_config_url}",
            f"--metricsPort={SIGNAL_METRICS_PORT}",
        ],
        "ports": [
            {"name": "http", "containerPort": SIGNAL_HTTP_PORT},
            {"name": "stream", "containerPort": STREAMER_PORT},
            {"name": "metrics", "containerPort": SIGNAL_METRICS_PORT},
        ],
        # /healthz answers 200 once the Unreal app has connected: a slow start gets startup_timeout_seconds,
        # then readiness follows the stream; liveness only asks whether the server itself answers.
        "startupProbe": http_probe("/healthz", "http", period=10, failures=periods),
        "readinessProbe": http_probe("/healthz", "http", period=5),
        "livenessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 20, "failureThreshold": 3},
        "volumeMounts": [
            {"name": "config", "mountPath": "/config", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        "securityContext": security_context(SIGNALER_UID),
        "resources": SIGNALER_RESOURCES,
    }


def _unreal_container(image: str, settings: StreamerSettings) -> dict[str, Any]:
    width, height = settings.resolution
    gpu = gpu_resources(settings.gpu_mode)
    return {
        "name": "streamer",
        "image": image,
        "env": [
            {"name": "SIGNAL_URL", "value": f"ws://localhost:{STREAMER_PORT}"},
            {"name": "RES_X", "value": str(width)},
            {"name": "RES_Y", "value": str(height)},
            {"name": "EXTRA_ARGS", "value": unreal_arguments(settings)},
            # NVENC needs `video`, rendering `graphics`; without them the runtime injects neither library.
            {"name": "NVIDIA_DRIVER_CAPABILITIES", "value": "graphics,video,compute,utility"},
            *([{"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"}] if settings.gpu_mode == "cpuPacked" else []),
        ],
        "ports": [{"name": "rest", "containerPort": UNREAL_REST_PORT}],
        "lifecycle": drain_hook(settings),
        # Unreal writes its Saved/ tree next to the game: the root filesystem stays writable.
        "securityContext": security_context(UNREAL_UID, read_only=False),
        "resources": {
            "requests": {"cpu": settings.cpu, "memory": settings.memory, **gpu},
            "limits": {"cpu": settings.cpu_limit, "memory": settings.memory_limit, **gpu},
        },
    }


def _deletion_cost_container(image: str) -> dict[str, Any]:
    return {
        "name": "deletion-cost",
        "image": image,
        "command": helper_command("deletion_cost.py"),
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "METRICS_URL", "value": f"http://localhost:{SIGNAL_METRICS_PORT}/custom"},
        ],
        "volumeMounts": [helpers_mount(), api_access_mount()],
        "securityContext": security_context(AGENT_UID),
        "resources": AGENT_RESOURCES,
    }


def _autoscaler_spec(deployment: pulumi.Input[str], scaling: AutoscalingSettings) -> dict[str, Any]:
    """Streams scale on the matchmaker's players-per-ready-stream ratio, with the configured behaviour."""
    period = scaling.scale_up_period_seconds
    return {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
        "minReplicas": scaling.min_replicas,
        "maxReplicas": scaling.max_replicas,
        "metrics": [
            {
                "type": "Object",
                "object": {
                    "metric": {"name": POOL_RATIO_METRIC},
                    "describedObject": {"apiVersion": "v1", "kind": "Service", "name": MATCHMAKER},
                    "target": {"type": "Value", "value": f"{scaling.target_pool_ratio:g}"},
                },
            }
        ],
        "behavior": {
            "scaleUp": {
                "stabilizationWindowSeconds": scaling.scale_up_stabilization_seconds,
                "policies": [
                    {"type": "Pods", "value": scaling.scale_up_pods, "periodSeconds": period},
                    {"type": "Percent", "value": scaling.scale_up_percent, "periodSeconds": period},
                ],
            },
            "scaleDown": {"stabilizationWindowSeconds": scaling.scale_down_stabilization_seconds},
        },
    }
