"""Streaming: one build's stream pods.

A build is one version of the Unreal app with the signalling server of its Unreal Engine version; every build has
a stream Deployment (`stream-<build>`), and the session service sends players to builds by weight. A stream pod is
Epic's signalling server (Wilbur, of the build's Unreal Engine version) beside the Unreal app, which connects to it
on the pod's loopback. Players never reach a stream pod themselves: the session service relays their signalling
to the pod's player port, one player per stream. The pods hold no API token (the session service writes their
deletion cost) and take no traffic but the session service's and the relayed media.
The session service scales each build's Deployment (session/scaler.py): its streams in use, one per waiting player
and a buffer of started streams.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s

from ...constants import (
    BUILD_LABEL,
    GPU_RESOURCE,
    SHARED_GPU_RESOURCE,
    STREAM_DEPLOYMENT,
    STREAM_TERMINATION_MARGIN_SECONDS,
)
from ...placement import GPU_NODES, NodePlacement
from ..kubernetes import (
    cpu_millis,
    gpu_node_affinity,
    image_pull_secrets,
    labels,
    memory_bytes,
    pod_security_context,
    resources,
    security_context,
)

STREAM = STREAM_DEPLOYMENT
# Wilbur's ports (SignallingWebServer/src/index.ts, --player_port and --streamer_port): players (the session
# service) and its REST API on one, the Unreal app on the other, over the pod's loopback.
SIGNALLING_PLAYER_PORT = 8080
STREAMER_PORT = 8888
# Wilbur starts its SFU listener for any truthy --sfu_port (Signalling/src/SignallingServer.ts `if
# (config.sfuPort)`, 8889 by default in SignallingWebServer/src/index.ts); commander parses `--sfu_port=` as "",
# so none is opened: one player per stream needs no SFU, and a listener nobody uses is one more door.
UNREAL_REST_PORT = 8111
# Where Epic's image has Wilbur (SignallingWebServer/Dockerfile: WORKDIR /SignallingWebServer, the server built
# into SignallingWebServer/dist by platform_scripts/bash/setup.sh --build); its REST API reads
# ./apidoc/api-definition-base.yml relative to this directory.
WILBUR_DIR = "/SignallingWebServer/SignallingWebServer"

# The stream pod's users and the signalling server's resources. Unreal runs as 1000, the owner of the game files
# in the reference's runtime images; Wilbur as 1000, the `node` user of its node:lts base.
SIGNALLING_UID = 1000
UNREAL_UID = 1000
SIGNALLING_RESOURCES = resources("250m", "256Mi", "1", "512Mi")

GpuMode = Literal["whole", "timeSliced", "cpuPacked"]


@dataclass(frozen=True)
class StreamBuild:
    """One version of the Unreal app, streamed beside the others."""

    name: str
    unreal_image: str
    unreal_version: str = "5.7"
    """Its Unreal Engine version: the signalling server beside it and the player page's library match it."""
    weight: int = 1
    """Its share of new players (weight / the sum of the weights); 0: none, its streams end with their sessions."""
    min_replicas: int = 1
    max_replicas: int = 10
    buffer_streams: int = 1
    """Started streams without a player it keeps ready (the session service's scaler)."""
    image_key: str = "streaming.images.unreal"
    """The stack key that sets its image (what a plan's warnings name)."""

    @property
    def deployment(self) -> str:
        return f"{STREAM}-{self.name}"

    def pod_labels(self) -> dict[str, str]:
        return {**labels(STREAM), BUILD_LABEL: self.name}

    def signalling_image(self, images: Mapping[str, str]) -> str:
        """Epic's signalling server of its engine version, from the image table."""
        return images[f"signalling-ue{self.unreal_version}"]


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
    """How long a stopping stream waits for its player to leave."""
    allow_console_commands: bool = False
    """Let the player run engine console commands (-AllowPixelStreamingCommands): Epic's security guidelines
    say to launch without it."""


def unreal_arguments(settings: StreamerSettings) -> str:
    """EXTRA_ARGS of the Unreal image's launch script. The signalling URL is given in Pixel Streaming 2's form
    (-PixelStreamingSignallingURL, Epic's pixel-streaming-2-migration-guide.md) besides the image's SIGNAL_URL."""
    arguments = [
        f"-PixelStreamingSignallingURL=ws://localhost:{STREAMER_PORT}",
        f"-RestApiPort={UNREAL_REST_PORT}",
        *(["-AllowPixelStreamingCommands"] if settings.allow_console_commands else []),
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
    """What one stream pod requests in all (its containers): what the scheduler and the cluster autoscaler fit
    onto a node, and what a warm-capacity placeholder holds for it."""
    cpus = [SIGNALLING_RESOURCES["requests"]["cpu"], settings.cpu]
    memories = [SIGNALLING_RESOURCES["requests"]["memory"], settings.memory]
    memory_mi = -(-sum(memory_bytes(m) for m in memories) // 2**20)
    return {
        "cpu": f"{sum(cpu_millis(c) for c in cpus)}m",
        "memory": f"{memory_mi}Mi",
        **gpu_resources(settings.gpu_mode),
    }


# Reads `key` of the signalling server's /api/status (SignallingWebServer/src/paths/status.ts: streamer_count,
# player_count) into $n, over the pod's loopback with bash and coreutils alone (the Unreal and node:lts images
# have both, neither needs curl); a server that accepts but does not answer is given 3 seconds.
# Arguments: $1 the port, $2 the key.
_STATUS_SCRIPT = """s=$( (exec 3<>/dev/tcp/127.0.0.1/$1 \\
    && printf 'GET /api/status HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && timeout 3 cat <&3) 2>/dev/null)
n=
[[ $s =~ \\"$2\\":([0-9]+) ]] && n=${BASH_REMATCH[1]}"""
# Succeeds while a streamer (the Unreal app) is connected.
_READY_SCRIPT = _STATUS_SCRIPT + '\n[ "${n:-0}" -ge 1 ]'
# Keeps the Unreal app alive while its signalling server still has a player (an unreadable status: nothing to
# wait for). Arguments after the port and key: the number of checks, the seconds between them.
_DRAIN_SCRIPT = f"""for i in $(seq 1 $3); do
{_STATUS_SCRIPT}
  [ "${{n:-0}}" = "0" ] && exit 0
  sleep $4
done"""
DRAIN_CHECK_SECONDS = 5


def streamer_connected_probe(period: int, failures: int = 3) -> dict[str, Any]:
    command = ["bash", "-c", _READY_SCRIPT, "ready", str(SIGNALLING_PLAYER_PORT), "streamer_count"]
    return {"exec": {"command": command}, "periodSeconds": period, "failureThreshold": failures, "timeoutSeconds": 3}


def drain_hook(settings: StreamerSettings) -> dict:
    checks = max(settings.drain_seconds // DRAIN_CHECK_SECONDS, 1)
    arguments = [str(SIGNALLING_PLAYER_PORT), "player_count", str(checks), str(DRAIN_CHECK_SECONDS)]
    return {"preStop": {"exec": {"command": ["bash", "-c", _DRAIN_SCRIPT, "drain", *arguments]}}}


@dataclass(kw_only=True)
class StreamingArgs:
    namespace: pulumi.Input[str]
    build: StreamBuild
    images: dict[str, str]
    """Image references by name: signalling-ue<version>."""
    streamer: StreamerSettings = field(default_factory=StreamerSettings)
    image_pull_secrets: Sequence[str] = field(default_factory=list)
    priority_class: pulumi.Input[str] | None = None
    """PriorityClass of the stream pods (above the warm-capacity placeholders, which they preempt)."""
    depends_on: Sequence[pulumi.Resource] = ()
    """What the stream Deployment waits for: the GPU pool and the device plugin."""
    nodes: NodePlacement = GPU_NODES
    """The GPU nodes the streams run on."""


class Streaming(pulumi.ComponentResource):
    """A build's stream Deployment. Outputs: `deployment` (its name)."""

    deployment: str

    def __init__(self, name: str, args: StreamingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("pixelstream:index:Streaming", name, None, opts)
        ns, settings, build = args.namespace, args.streamer, args.build
        stream_labels = build.pod_labels()
        k8s.apps.v1.Deployment(
            build.deployment,
            metadata={
                "name": build.deployment,
                "namespace": ns,
                "labels": stream_labels,
                # Unreal images are large and GPU nodes slow to join: give the first rollout time.
                "annotations": {"pulumi.com/timeoutSeconds": "1800"},
            },
            spec={
                # No replicas: the session service owns the count (the scale subresource), Pulumi never resets it.
                "selector": {"matchLabels": stream_labels},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "template": {
                    "metadata": {"labels": stream_labels},
                    "spec": {
                        # Nothing in a stream pod calls the Kubernetes API.
                        "automountServiceAccountToken": False,
                        "imagePullSecrets": image_pull_secrets(args.image_pull_secrets),
                        "affinity": gpu_node_affinity(args.nodes),
                        "tolerations": args.nodes.tolerations(),
                        **({"priorityClassName": args.priority_class} if args.priority_class else {}),
                        "terminationGracePeriodSeconds": settings.drain_seconds + STREAM_TERMINATION_MARGIN_SECONDS,
                        "securityContext": pod_security_context(fs_group=1000),
                        "containers": [
                            _signalling_container(build.signalling_image(args.images), settings),
                            _unreal_container(build.unreal_image, settings),
                        ],
                        "volumes": [{"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}],
                    },
                },
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )
        self.deployment = build.deployment
        self.register_outputs({"deployment": build.deployment})


def _signalling_container(image: str, settings: StreamerSettings) -> dict[str, Any]:
    """Wilbur with its command-line options only (--no_config: the image's config.json serves the stock
    frontend and redirects to HTTPS), one player per streamer, its REST API for the probes and the drain."""
    periods = -(-settings.startup_timeout_seconds // 10)
    return {
        "name": "signalling",
        "image": image,
        "workingDir": WILBUR_DIR,
        "command": ["node", "dist/index.js"],
        "args": [
            "--no_config",
            f"--player_port={SIGNALLING_PLAYER_PORT}",
            f"--streamer_port={STREAMER_PORT}",
            "--sfu_port=",
            "--max_players=1",
            "--rest_api",
            # Its console goes to the pod's log; its files (on the pod's /tmp) keep errors only.
            "--log_folder=/tmp/logs",
            "--log_level_console=info",
            "--log_level_file=error",
        ],
        "ports": [{"name": "signalling", "containerPort": SIGNALLING_PLAYER_PORT}],
        # Ready once the Unreal app has connected as a streamer: a slow start gets startup_timeout_seconds, then
        # readiness follows the streamer; liveness only asks whether the server itself answers.
        "startupProbe": streamer_connected_probe(period=10, failures=periods),
        "readinessProbe": streamer_connected_probe(period=5),
        "livenessProbe": {"tcpSocket": {"port": "signalling"}, "periodSeconds": 20, "failureThreshold": 3},
        # Wilbur must outlive the Unreal app's drain: as PID 1 without a SIGTERM handler it would, but only by
        # accident; the same hook holds its SIGTERM while a player is connected.
        "lifecycle": drain_hook(settings),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        "securityContext": security_context(SIGNALLING_UID),
        "resources": SIGNALLING_RESOURCES,
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
        "lifecycle": drain_hook(settings),
        # Unreal writes its Saved/ tree next to the game: the root filesystem stays writable.
        "securityContext": security_context(UNREAL_UID, read_only=False),
        "resources": {
            "requests": {"cpu": settings.cpu, "memory": settings.memory, **gpu},
            "limits": {"cpu": settings.cpu_limit, "memory": settings.memory_limit, **gpu},
        },
    }
