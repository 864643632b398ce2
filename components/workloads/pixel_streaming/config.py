"""The pixel-streaming workload's configuration (`streaming.*`) and its checks."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic.alias_generators import to_camel, to_snake

from ...config_base import INT32_MAX, ConfigError, ConfigModel
from ..config import (
    IngressConfig,
    WorkloadConfig,
    check_host,
    check_images,
    check_namespace,
    check_path_prefix,
    check_pull_secrets,
    check_requests_and_limits,
)
from ..images import STREAMING_IMAGES
from .streaming import AutoscalingSettings, StreamerSettings
from .turn import TurnServerSettings

if TYPE_CHECKING:
    from ...config import StackConfig
    from ...media_path import MediaPath


class TurnConfig(ConfigModel):
    realm: str = "pixelstream"
    credential_ttl_seconds: int = 3600
    """Lifetime of the TURN credentials the ICE config service hands out."""
    credentials_per_minute: int = 30
    """Credentials the ICE config service hands one signalling server per minute."""
    user_quota: int = 20
    """Allocations per TURN user (one stream pod) per TURN node: its streamer and player hold about four per
    connection (UDP and TCP to the server), so 20 leaves room for reconnects within an allocation's lifetime."""
    total_quota: int = 1000
    max_bytes_per_second: int = 6_250_000
    capacity_bytes_per_second: int = 250_000_000
    allow_relay_to_all_pods: bool = False
    """The only way to stream on flannel, where the relay cannot be limited to the stream pods."""

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
        )


class StreamerConfig(ConfigModel):
    gpu_mode: Literal["whole", "timeSliced", "cpuPacked"] = "whole"
    cpu: str = "3750m"
    memory: str = "8Gi"
    cpu_limit: str = "8"
    memory_limit: str = "16Gi"
    resolution_width: int = 1920
    resolution_height: int = 1080
    max_fps: int = 30
    extra_args: list[str] = []
    startup_timeout_seconds: int = 600
    drain_seconds: int = 120

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
        )


class ScaleUpConfig(ConfigModel):
    stabilization_seconds: int = 0
    pods: int = 2
    percent: int = 10
    period_seconds: int = 15


class ScaleDownConfig(ConfigModel):
    stabilization_seconds: int = 30


class AutoscalingConfig(ConfigModel):
    min_replicas: int = 1
    max_replicas: int = 10
    target_pool_ratio: float = 0.9
    scale_up: ScaleUpConfig = ScaleUpConfig()
    scale_down: ScaleDownConfig = ScaleDownConfig()

    def settings(self) -> AutoscalingSettings:
        return AutoscalingSettings(
            min_replicas=self.min_replicas,
            max_replicas=self.max_replicas,
            target_pool_ratio=self.target_pool_ratio,
            scale_up_stabilization_seconds=self.scale_up.stabilization_seconds,
            scale_up_pods=self.scale_up.pods,
            scale_up_percent=self.scale_up.percent,
            scale_up_period_seconds=self.scale_up.period_seconds,
            scale_down_stabilization_seconds=self.scale_down.stabilization_seconds,
        )


class CapacityConfig(ConfigModel):
    warm_streams: int = 0
    """Streams' worth of GPU kept ready by low-priority placeholders."""
    pre_pull: bool = True
    """Pull the stream images on every GPU node as it joins."""


class PodProxyConfig(ConfigModel):
    enabled: bool = False
    path_prefix: str = "/proxy"


class StreamingConfig(WorkloadConfig):
    namespace: str = "pixel"
    images: dict[str, str] = {}
    image_pull_secrets: list[str] = []
    turn: TurnConfig = TurnConfig()
    streamer: StreamerConfig = StreamerConfig()
    autoscaling: AutoscalingConfig = AutoscalingConfig()
    capacity: CapacityConfig = CapacityConfig()
    ingress: IngressConfig = IngressConfig()
    pod_proxy: PodProxyConfig = PodProxyConfig()

    def check(self, config: StackConfig) -> None:
        check_streaming(config)


def check_streaming(config: StackConfig) -> None:
    """The workload's keys, when it is enabled."""
    streaming = config.streaming
    check_namespace(config, "streaming")
    check_images("streaming", streaming.images, STREAMING_IMAGES)
    check_pull_secrets("streaming", streaming.image_pull_secrets)
    _check_turn(streaming.turn)
    _check_streamer(config)
    _check_autoscaling(streaming)
    _check_routing(config)


def _check_turn(turn: TurnConfig) -> None:
    if not re.match(r"^[A-Za-z0-9.-]{1,63}$", turn.realm):
        raise ConfigError("streaming.turn.realm", f"{turn.realm} is not a realm (letters, digits, dots, dashes)")
    if not 60 <= turn.credential_ttl_seconds <= 86400:
        raise ConfigError(
            "streaming.turn.credentialTtlSeconds", f"{turn.credential_ttl_seconds} is outside 60-86400 seconds"
        )
    # coturn reads the quotas as C ints.
    for key in ("user_quota", "total_quota"):
        if not 1 <= getattr(turn, key) <= INT32_MAX:
            raise ConfigError(f"streaming.turn.{to_camel(key)}", f"{getattr(turn, key)} is outside 1-{INT32_MAX}")
    if turn.max_bytes_per_second < 1:
        raise ConfigError("streaming.turn.maxBytesPerSecond", f"{turn.max_bytes_per_second} is below 1")
    if turn.capacity_bytes_per_second < turn.max_bytes_per_second:
        raise ConfigError(
            "streaming.turn.capacityBytesPerSecond",
            f"{turn.capacity_bytes_per_second} is below maxBytesPerSecond ({turn.max_bytes_per_second}): no session "
            "would fit on a TURN node",
        )
    if not 1 <= turn.credentials_per_minute <= 600:
        raise ConfigError("streaming.turn.credentialsPerMinute", f"{turn.credentials_per_minute} is outside 1-600")


def _check_streamer(config: StackConfig) -> None:
    streamer = config.streaming.streamer
    check_requests_and_limits("streaming.streamer", streamer)
    for key, low, high in (("resolution_width", 320, 7680), ("resolution_height", 240, 4320), ("max_fps", 1, 240)):
        value = getattr(streamer, key)
        if not low <= value <= high:
            raise ConfigError(f"streaming.streamer.{to_camel(key)}", f"{value} is outside {low}-{high}")
    for index, argument in enumerate(streamer.extra_args):
        if not argument.startswith("-") or any(c in argument for c in "\n\r\0"):
            raise ConfigError(
                f"streaming.streamer.extraArgs[{index}]",
                f"{argument!r} is not an Unreal argument such as -PixelStreamingEncoderMaxQP=30",
            )
    if not 60 <= streamer.startup_timeout_seconds <= 3600:
        raise ConfigError(
            "streaming.streamer.startupTimeoutSeconds", f"{streamer.startup_timeout_seconds} is outside 60-3600"
        )
    if not 0 <= streamer.drain_seconds <= 3600:
        raise ConfigError("streaming.streamer.drainSeconds", f"{streamer.drain_seconds} is outside 0-3600")
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
    for key in ("min_replicas", "max_replicas"):
        if not 1 <= getattr(scaling, key) <= INT32_MAX:
            raise ConfigError(
                f"streaming.autoscaling.{to_camel(key)}", f"{getattr(scaling, key)} is outside 1-{INT32_MAX}"
            )
    if scaling.min_replicas > scaling.max_replicas:
        raise ConfigError(
            "streaming.autoscaling.minReplicas",
            f"{scaling.min_replicas} is above maxReplicas ({scaling.max_replicas})",
        )
    if not 0 < scaling.target_pool_ratio <= 10:
        raise ConfigError("streaming.autoscaling.targetPoolRatio", f"{scaling.target_pool_ratio} is outside (0, 10]")
    up = scaling.scale_up
    if not (1 <= up.pods <= INT32_MAX and 1 <= up.percent <= INT32_MAX and 1 <= up.period_seconds <= 1800):
        raise ConfigError(
            "streaming.autoscaling.scaleUp",
            f"pods {up.pods}, percent {up.percent} and periodSeconds {up.period_seconds} must be positive "
            f"(pods and percent at most {INT32_MAX}, period at most 1800)",
        )
    for path, seconds in (
        ("scaleUp", up.stabilization_seconds),
        ("scaleDown", scaling.scale_down.stabilization_seconds),
    ):
        if not 0 <= seconds <= 3600:
            raise ConfigError(f"streaming.autoscaling.{path}.stabilizationSeconds", f"{seconds} is outside 0-3600")

    if not 0 <= streaming.capacity.warm_streams <= 64:
        raise ConfigError("streaming.capacity.warmStreams", f"{streaming.capacity.warm_streams} is outside 0-64")


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
    for needed in ("ingressNginx", "prometheusAdapter"):
        if not getattr(addons, to_snake(needed)).enabled:
            raise ConfigError(
                f"addons.{needed}.enabled",
                "false leaves the streaming workload without "
                + ("its ingress controller" if needed == "ingressNginx" else "the custom metric its autoscaler reads")
                + "; enable it or set streaming.enabled: false",
            )
