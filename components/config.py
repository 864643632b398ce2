"""Typed stack configuration: every key, its default, and the checks that run before any resource exists.

All keys live in one Pulumi config namespace (the project name, `pixelstream`). Structured keys are read
with `Config.require_object`/`get_object` and validated here; a bad value fails with one message that
names the key path, the bad value and what is allowed.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import pulumi
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel, to_snake

from .alerts import AlertReceiver, AlertThresholds, ReceiverKind
from .charts import ADDON_NAMESPACES, CHARTS
from .cluster import KUBERNETES_VERSIONS
from .cluster_autoscaler import AutoscalerTimings
from .constants import (
    DEFAULT_API_ENDPOINT_SUBNET,
    DEFAULT_LOAD_BALANCER_SUBNET,
    DEFAULT_PODS_CIDR,
    DEFAULT_PODS_SUBNET,
    DEFAULT_RELAY_PORT_RANGE,
    DEFAULT_SERVICES_CIDR,
    DEFAULT_STREAM_PODS_SUBNET,
    DEFAULT_TURN_SUBNET,
    DEFAULT_VCN_CIDR,
    DEFAULT_WORKERS_SUBNET,
    PODS_PER_NODE,
    TURN_NODE_HOST_PORTS,
)
from .images import IMAGES, image_problem, version_problem
from .quantities import quantity
from .regions import OCI_REGIONS
from .secrets import secret_paths, secret_values
from .security import WORLD
from .shapes import FLEX_SHAPES, GPU_SHAPES, KNOWN_SHAPES, STREAMING_GPU_SHAPES, is_gpu, shape_sizing_problem
from .stack_file import MAX_DEPTH, OFFLINE_PLACEHOLDERS, read_stack_config
from .streaming import AutoscalingSettings, StreamerSettings
from .turn import TurnServerSettings

NAMESPACE = "pixelstream"
TOP_LEVEL_KEYS = ("compartmentId", "network", "cluster", "nodePools", "addons", "streaming", "extraRegions")
FAULT_DOMAINS = ("FAULT-DOMAIN-1", "FAULT-DOMAIN-2", "FAULT-DOMAIN-3")
MAX_AVAILABILITY_DOMAINS = 3
# OCI limits: nodes in one managed node pool, and in one cluster by type (OKE "Kubernetes Engine Limits").
MAX_NODES_PER_POOL = 1000
MAX_NODES_PER_CLUSTER = {"ENHANCED": 2000, "BASIC": 1000}
# Kubernetes stores replica counts as int32.
INT32_MAX = 2**31 - 1
# Namespaces the workload must not take: Kubernetes' own, and the add-ons'.
RESERVED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease", *ADDON_NAMESPACES.values())

_K8S_VERSION = re.compile(r"^v1\.\d{1,2}\.\d{1,3}$")
_REGION = re.compile(r"^[a-z]{2}-[a-z]+-\d{1,2}$")
_CLUSTER_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,30}[a-z0-9])?$")
_COMPARTMENT = re.compile(r"^ocid1\.(compartment|tenancy)\.oc\d+\.[a-z0-9-]*\.[a-z0-9]+$")
_CHART_VERSION = re.compile(r"^v?\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DURATION = re.compile(r"^\d+[smhdwy]$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_HOST = re.compile(r"^(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_PATH_PREFIX = re.compile(r"^(/[A-Za-z0-9._~-]+)+$")
_IMAGE = re.compile(r"^ocid1\.image\.oc\d+\.[a-z0-9-]*\.[a-z0-9]+$")


class ConfigError(pulumi.RunError):
    """A stack config value is invalid. The message names the key path, the value and what is allowed."""

    def __init__(self, path: str, message: str, namespace: str = NAMESPACE) -> None:
        self.path = path
        super().__init__(f"{namespace}:{path}: {message}")


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _cidr(value: str) -> str:
    try:
        network = ipaddress.IPv4Network(value, strict=False)
    except ValueError:
        raise ValueError(f"{_show(value)} is not an IPv4 CIDR such as 10.0.0.0/16") from None
    if str(network) != value:
        raise ValueError(f"{value} has host bits set; did you mean {network}?")
    return value


Cidr = Annotated[str, AfterValidator(_cidr)]


class _Model(BaseModel):
    # Strict: `true` is not 1 and 1.0 is not a whole number, as a reviewer reading the stack file would expect.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True, strict=True)


class SubnetsConfig(_Model):
    api_endpoint: str = DEFAULT_API_ENDPOINT_SUBNET
    """Kubernetes API endpoint subnet."""
    workers: str = DEFAULT_WORKERS_SUBNET
    """Private subnet of the default and GPU nodes (and pods, with VCN-native networking)."""
    turn: str = DEFAULT_TURN_SUBNET
    """Public subnet of the TURN nodes."""
    load_balancers: str = DEFAULT_LOAD_BALANCER_SUBNET
    """Public subnet of the service load balancers."""
    pods: str = DEFAULT_PODS_SUBNET
    """VCN-native pods of the default and TURN pools."""
    stream_pods: str = DEFAULT_STREAM_PODS_SUBNET
    """VCN-native pods of the GPU pool: the only addresses the TURN relay may reach."""

    _valid = field_validator("*")(_cidr)

    def in_use(self, cni: str) -> dict[str, str]:
        """The subnets the stack creates, by config key: the pod subnets only with VCN-native pods."""
        subnets = {to_camel(name): cidr for name, cidr in self.model_dump().items()}
        if cni != "vcnNative":
            del subnets["pods"], subnets["streamPods"]
        return subnets


class PortRange(_Model):
    min: int = DEFAULT_RELAY_PORT_RANGE[0]
    max: int = DEFAULT_RELAY_PORT_RANGE[1]

    @property
    def bounds(self) -> tuple[int, int]:
        return (self.min, self.max)


class NetworkConfig(_Model):
    vcn_cidr: str = DEFAULT_VCN_CIDR
    subnets: SubnetsConfig = SubnetsConfig()
    relay_ports: PortRange = PortRange()
    """TURN relay range; the same value opens the security rules and configures coturn."""
    client_cidrs: list[Cidr] = [WORLD]
    """Where players connect from (ingress listeners and TURN)."""

    _valid_vcn = field_validator("vcn_cidr")(_cidr)


class EndpointConfig(_Model):
    public: bool = False
    """Give the API endpoint a public IP (reachable only from allowedCidrs)."""
    allowed_cidrs: list[Cidr] = []
    """Networks that may reach the Kubernetes API on 6443."""
    allow_world_access: bool = False
    """Must be true for allowedCidrs to contain 0.0.0.0/0."""


class ClusterConfig(_Model):
    name: str | None = None
    """Cluster name; default `pixelstream-<stack>`."""
    type: Literal["ENHANCED", "BASIC"] = "ENHANCED"
    kubernetes_version: str = "v1.34.2"
    cni: Literal["flannel", "vcnNative"] = "vcnNative"
    """vcnNative: pods take addresses from network.subnets.pods/streamPods, so the relay can reach only the
    stream pods; flannel: an overlay that hides which pod is which (streaming then needs an explicit opt-in)."""
    pods_cidr: str = DEFAULT_PODS_CIDR
    """Pod overlay range, flannel only."""
    services_cidr: str = DEFAULT_SERVICES_CIDR
    endpoint: EndpointConfig = EndpointConfig()

    _valid_cidrs = field_validator("pods_cidr", "services_cidr")(_cidr)

    @field_validator("kubernetes_version")
    @classmethod
    def _valid_version(cls, value: str) -> str:
        if not _K8S_VERSION.match(value):
            raise ValueError(f"{value} is not a Kubernetes version such as v1.34.2")
        return value


class NodePoolConfig(_Model):
    shape: str
    ocpus: float | None = None
    memory_gbs: float | None = None
    size: int = 1
    min_size: int | None = None
    max_size: int | None = None
    boot_volume_gbs: int = 100
    availability_domains: list[int] = [1]
    """1-based availability domain indexes of the region."""
    fault_domains: list[str] = []
    image_id: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_flex_defaults_on_fixed_shapes(cls, data: Any) -> Any:
        """A pool switched to a fixed shape drops the pool's default ocpus/memoryGbs instead of failing on them."""
        if isinstance(data, dict) and isinstance(data.get("shape"), str) and data["shape"] not in FLEX_SHAPES:
            data = {"ocpus": None, "memoryGbs": None, **data}
        return data

    @field_validator("shape")
    @classmethod
    def _known_shape(cls, value: str) -> str:
        if value not in KNOWN_SHAPES:
            raise ValueError(f"{value} is not a known shape; known shapes: {', '.join(KNOWN_SHAPES)}")
        return value

    @field_validator("image_id")
    @classmethod
    def _valid_image(cls, value: str | None) -> str | None:
        if value is not None and not _IMAGE.match(value):
            raise ValueError(f"{value} is not an image OCID (ocid1.image.oc1..<id>)")
        return value


class DefaultPoolConfig(NodePoolConfig):
    shape: str = "VM.Standard.E4.Flex"
    ocpus: float | None = 2
    memory_gbs: float | None = 32
    size: int = 2


class TurnPoolConfig(NodePoolConfig):
    shape: str = "VM.Standard.E4.Flex"
    ocpus: float | None = 2
    memory_gbs: float | None = 16


class GpuPoolConfig(NodePoolConfig):
    shape: str = "VM.GPU.A10.1"


class NodePoolsConfig(_Model):
    default: DefaultPoolConfig = DefaultPoolConfig()
    turn: TurnPoolConfig = TurnPoolConfig()
    gpu: GpuPoolConfig = GpuPoolConfig()

    def items(self) -> list[tuple[str, NodePoolConfig]]:
        return [("default", self.default), ("turn", self.turn), ("gpu", self.gpu)]


class AddonConfig(_Model):
    enabled: bool = True
    version: str | None = None
    """Chart version instead of the pinned one."""
    repository: str | None = None
    """Chart repository URL instead of the upstream one (a mirror)."""
    values: dict[str, Any] = {}
    """Helm values deep-merged over this project's."""


class IngressNginxConfig(AddonConfig):
    load_balancer: Literal["flexible", "network"] = "flexible"
    min_bandwidth_mbps: int = 10
    max_bandwidth_mbps: int = 100
    replicas: int = 2


class CertManagerConfig(AddonConfig):
    email: str | None = None
    """ACME account contact for Let's Encrypt (optional)."""


class AlertsConfig(_Model):
    """Thresholds of the platform's own alerts (components/alerts.py)."""

    queued_players: int = AlertThresholds.queued_players
    queued_minutes: int = AlertThresholds.queued_minutes
    no_ready_stream_minutes: int = AlertThresholds.no_ready_stream_minutes
    autoscaler_at_max_minutes: int = AlertThresholds.autoscaler_at_max_minutes
    turn_not_ready_minutes: int = AlertThresholds.turn_not_ready_minutes
    ice_config_down_minutes: int = AlertThresholds.ice_config_down_minutes
    gpu_temperature_celsius: int = AlertThresholds.gpu_temperature_celsius
    gpu_temperature_minutes: int = AlertThresholds.gpu_temperature_minutes

    def thresholds(self) -> AlertThresholds:
        return AlertThresholds(**self.model_dump())


class AlertReceiverConfig(_Model):
    """Where Alertmanager sends alerts. Set the URL as a secret:
    `pulumi config set --secret --path addons.monitoring.alertReceiver.url https://...`."""

    type: ReceiverKind
    url: str
    channel: str | None = None

    def receiver(self) -> AlertReceiver:
        return AlertReceiver(kind=self.type, url=self.url, channel=self.channel)


class MonitoringConfig(AddonConfig):
    retention: str = "15d"
    storage_gbs: int = 50
    alerts: AlertsConfig = AlertsConfig()
    alert_receiver: AlertReceiverConfig | None = None


class GpuPluginConfig(AddonConfig):
    owner: Literal["chart", "okeAddon"] = "chart"
    streams_per_gpu: int = 1
    addon_version: str | None = None


_TIMINGS = AutoscalerTimings()


class ClusterAutoscalerConfig(_Model):
    """OKE's Cluster Autoscaler add-on for every autoscaled pool (timing defaults: the add-on's)."""

    enabled: bool = True
    auth_type: Literal["workload", "instance"] = "workload"
    dynamic_group: str | None = None
    """Instance principal only: the worker nodes' dynamic group."""
    addon_version: str | None = None
    scan_interval_seconds: int = _TIMINGS.scan_interval_seconds
    scale_down_delay_after_add_seconds: int = _TIMINGS.scale_down_delay_after_add_seconds
    scale_down_unneeded_seconds: int = _TIMINGS.scale_down_unneeded_seconds
    max_node_provision_seconds: int = _TIMINGS.max_node_provision_seconds

    def timings(self) -> AutoscalerTimings:
        return AutoscalerTimings(**self.model_dump(include=set(AutoscalerTimings.__dataclass_fields__)))

    def settings(self) -> dict[str, Any]:
        """ClusterAutoscalerArgs keywords from this config."""
        return {
            "auth_type": self.auth_type,
            "dynamic_group": self.dynamic_group,
            "addon_version": self.addon_version,
            "timings": self.timings(),
        }


class AddonsConfig(_Model):
    cluster_autoscaler: ClusterAutoscalerConfig = ClusterAutoscalerConfig()
    ingress_nginx: IngressNginxConfig = IngressNginxConfig()
    cert_manager: CertManagerConfig = CertManagerConfig()
    metrics_server: AddonConfig = AddonConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    dcgm_exporter: AddonConfig = AddonConfig()
    gpu_plugin: GpuPluginConfig = GpuPluginConfig()
    prometheus_adapter: AddonConfig = AddonConfig()

    def release_args(self, key: str) -> dict[str, Any]:
        """`chart` and `values` for add-on `key` (as in config, e.g. `ingressNginx`): the pinned chart with the
        stack's version/repository overrides, and the stack's values."""
        addon: AddonConfig = getattr(self, to_snake(key))
        chart = CHARTS[_ADDON_CHARTS[key]].overridden(addon.version, addon.repository)
        return {"chart": chart, "values": addon.values}


_ADDON_CHARTS = {
    "ingressNginx": "ingress-nginx",
    "certManager": "cert-manager",
    "metricsServer": "metrics-server",
    "monitoring": "kube-prometheus-stack",
    "dcgmExporter": "dcgm-exporter",
    "gpuPlugin": "nvidia-device-plugin",
    "prometheusAdapter": "prometheus-adapter",
}


class TurnConfig(_Model):
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


class StreamerConfig(_Model):
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


class ScaleUpConfig(_Model):
    stabilization_seconds: int = 0
    pods: int = 2
    percent: int = 10
    period_seconds: int = 15


class ScaleDownConfig(_Model):
    stabilization_seconds: int = 30


class AutoscalingConfig(_Model):
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


class IngressConfig(_Model):
    host: str | None = None
    path_prefix: str = ""
    issuer: Literal["letsencrypt-prod", "letsencrypt-staging"] = "letsencrypt-prod"


class CapacityConfig(_Model):
    warm_streams: int = 0
    """Streams' worth of GPU kept ready by low-priority placeholders."""
    pre_pull: bool = True
    """Pull the stream images on every GPU node as it joins."""


class PodProxyConfig(_Model):
    enabled: bool = False
    path_prefix: str = "/proxy"


class StreamingConfig(_Model):
    enabled: bool = True
    namespace: str = "pixel"
    images: dict[str, str] = {}
    image_pull_secrets: list[str] = []
    turn: TurnConfig = TurnConfig()
    streamer: StreamerConfig = StreamerConfig()
    autoscaling: AutoscalingConfig = AutoscalingConfig()
    capacity: CapacityConfig = CapacityConfig()
    ingress: IngressConfig = IngressConfig()
    pod_proxy: PodProxyConfig = PodProxyConfig()


@dataclass(frozen=True)
class MediaPath:
    """Where relayed media may go: the stream pods, and none of the platform's own networks besides.

    The one rule behind both the TURN NSG flows (network) and coturn's peer lists (workload)."""

    stream_peers: tuple[str, ...]
    """What coturn allows: the stream pod subnet (flannel opt-in: the whole pod overlay)."""
    private_cidrs: tuple[str, ...]
    """What coturn denies besides the special ranges: the VCN, the services CIDR, the pod overlay."""


class StackConfig(_Model):
    compartment_id: str
    extra_regions: list[str] = []
    """OCI regions newer than this program's table (pixelstream.regions) that `oci:region` may name."""
    _secrets: frozenset[str] = PrivateAttr(default=frozenset())
    network: NetworkConfig = NetworkConfig()
    cluster: ClusterConfig = ClusterConfig()
    node_pools: NodePoolsConfig = NodePoolsConfig()
    addons: AddonsConfig = AddonsConfig()
    streaming: StreamingConfig = StreamingConfig()

    @field_validator("compartment_id")
    @classmethod
    def _valid_compartment(cls, value: str) -> str:
        if not _COMPARTMENT.match(value):
            raise ValueError(f"{value} is not a compartment OCID (ocid1.compartment.oc1..<id>)")
        return value

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> StackConfig:
        """Validate raw config values (keys as in the stack file, without namespace) into a StackConfig."""
        for key, value in raw.items():
            if _depth(value) > MAX_DEPTH:
                raise ConfigError(key, f"is nested deeper than {MAX_DEPTH} levels")
        try:
            config = cls.model_validate(dict(raw))
        except ValidationError as error:
            raise _translate(error) from None
        _check_network(config)
        _check_cluster(config)
        _check_node_pools(config)
        _check_pod_subnets(config)
        _check_addons(config)
        _check_cluster_autoscaler(config)
        _check_streaming(config)
        for index, region in enumerate(config.extra_regions):
            if not _REGION.match(region):
                raise ConfigError(
                    f"extraRegions[{index}]", f"{region} is not an OCI region identifier like us-ashburn-1"
                )
        return config

    @classmethod
    def from_stack_file(cls, path: Path, namespace: str = NAMESPACE) -> StackConfig:
        """A stack file's settings as the program would read them, with the offline plan's stand-ins for what
        the file leaves to each user or encrypts."""
        raw: dict[str, Any] = {}
        for full_key, value in read_stack_config(path, namespace).values.items():
            key_namespace, _, key = full_key.partition(":")
            if key_namespace == namespace:
                # As load_stack_config reads them: compartmentId a string, every other key structured config.
                raw[key] = value if key == "compartmentId" else json.loads(value)
        for key, placeholder in OFFLINE_PLACEHOLDERS.items():
            raw.setdefault(key, placeholder)
        return cls.parse(raw)

    def check_region(self, region: str | None) -> None:
        """`oci:region` must be a region OCI has (the table, or one the stack lists in extraRegions)."""
        known = (*OCI_REGIONS, *self.extra_regions)
        if region is not None and region not in known:
            close = difflib.get_close_matches(region, known, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise ConfigError(
                "region",
                f"{region} is not an OCI region; {hint}a region newer than this program's table goes in "
                "pixelstream:extraRegions",
                namespace="oci",
            )

    @property
    def secrets(self) -> frozenset[str]:
        """Plain text of the stack's secret config values, to be kept secret wherever they are used."""
        return self._secrets

    @property
    def vcn_native_pods(self) -> bool:
        return self.cluster.cni == "vcnNative"

    def media_path(self) -> MediaPath:
        network, cluster = self.network, self.cluster
        private = [network.vcn_cidr, cluster.services_cidr]
        if self.vcn_native_pods:
            return MediaPath((network.subnets.stream_pods,), tuple(private))
        return MediaPath((cluster.pods_cidr,), (*private, cluster.pods_cidr))

    def warnings(self) -> list[str]:
        """What the stack allows on purpose that a reviewer should see in every plan."""
        if self.streaming.enabled and not self.vcn_native_pods:
            return [
                "streaming.turn.allowRelayToAllPods: the TURN relay can send UDP to every pod of the cluster "
                f"({self.cluster.pods_cidr}), not only to the streams; use cluster.cni: vcnNative to confine it"
            ]
        return []

    def availability_domain_names(self, pool: str, region_domains: Sequence[str]) -> list[str]:
        """The pool's availability domain indexes resolved against the region's domain names."""
        indexes = dict(self.node_pools.items())[pool].availability_domains
        for index in indexes:
            if index > len(region_domains):
                raise ConfigError(
                    f"nodePools.{pool}.availabilityDomains",
                    f"{index} is not an availability domain of this region, which has {len(region_domains)} "
                    f"(allowed: 1-{len(region_domains)})",
                )
        return [region_domains[i - 1] for i in indexes]


def _check_network(config: StackConfig) -> None:
    network, cluster = config.network, config.cluster
    vcn = ipaddress.IPv4Network(network.vcn_cidr)
    if not 16 <= vcn.prefixlen <= 30:
        raise ConfigError("network.vcnCidr", f"{vcn} must be between /16 and /30 (OCI VCN limits)")
    in_use = network.subnets.in_use(cluster.cni)
    unused = sorted(set(network.subnets.model_fields_set) - {to_snake(k) for k in in_use})
    if unused:
        raise ConfigError(
            f"network.subnets.{to_camel(unused[0])}", "is only used with cluster.cni: vcnNative (pods on VCN addresses)"
        )
    subnets = {key: ipaddress.IPv4Network(cidr) for key, cidr in in_use.items()}
    seen: dict[str, ipaddress.IPv4Network] = {}
    for key, subnet in subnets.items():
        if subnet.prefixlen > 30:
            raise ConfigError(f"network.subnets.{key}", f"{subnet} is smaller than /30, the smallest OCI subnet")
        if not subnet.subnet_of(vcn):
            raise ConfigError(f"network.subnets.{key}", f"{subnet} is not inside the VCN {vcn}")
        for other_key, other in seen.items():
            if subnet.overlaps(other):
                raise ConfigError(f"network.subnets.{key}", f"{subnet} overlaps network.subnets.{other_key} ({other})")
        seen[key] = subnet

    low, high = network.relay_ports.bounds
    if not 1024 <= low <= high <= 65535:
        raise ConfigError("network.relayPorts", f"{low}-{high} is not a port range within 1024-65535 with min <= max")
    for what, (first, last) in TURN_NODE_HOST_PORTS.items():
        if low <= last and first <= high:
            ports = str(first) if first == last else f"{first}-{last}"
            raise ConfigError(
                "network.relayPorts",
                f"{low}-{high} contains {ports} ({what}, listening on every TURN node), which would open it to "
                f"players; the default is {DEFAULT_RELAY_PORT_RANGE[0]}-{DEFAULT_RELAY_PORT_RANGE[1]}",
            )
    if not network.client_cidrs:
        raise ConfigError("network.clientCidrs", "[] leaves players no way in; use [0.0.0.0/0] or your client networks")
    _check_unique("network.clientCidrs", network.client_cidrs)

    overlays = [("servicesCidr", cluster.services_cidr)]
    if cluster.cni == "flannel":
        overlays.insert(0, ("podsCidr", cluster.pods_cidr))
    elif "pods_cidr" in cluster.model_fields_set:
        raise ConfigError(
            "cluster.podsCidr",
            "is only used with cluster.cni: flannel; VCN-native pods take network.subnets.pods and .streamPods",
        )
    for key, cidr in overlays:
        if ipaddress.IPv4Network(cidr).overlaps(vcn):
            raise ConfigError(f"cluster.{key}", f"{cidr} overlaps the VCN {vcn}; pick a range outside it")
    if cluster.cni == "flannel" and ipaddress.IPv4Network(cluster.pods_cidr).overlaps(
        ipaddress.IPv4Network(cluster.services_cidr)
    ):
        raise ConfigError(
            "cluster.servicesCidr", f"{cluster.services_cidr} overlaps cluster.podsCidr ({cluster.pods_cidr})"
        )


def _depth(value: Any, limit: int = MAX_DEPTH + 1) -> int:
    """How deep `value` nests, counted no further than `limit` (so a hostile value costs nothing)."""
    if limit <= 0 or not isinstance(value, dict | list):
        return 0
    children = value.values() if isinstance(value, dict) else value
    return 1 + max((_depth(child, limit - 1) for child in children), default=0)


def _check_unique(path: str, values: Sequence[Any]) -> None:
    for index, value in enumerate(values):
        if value in values[:index]:
            raise ConfigError(f"{path}[{index}]", f"{_show(value)} is listed twice (first at [{values.index(value)}])")


def _check_cluster(config: StackConfig) -> None:
    cluster = config.cluster
    if cluster.name is not None and not _CLUSTER_NAME.match(cluster.name):
        raise ConfigError(
            "cluster.name",
            f"{cluster.name!r} is not a cluster name: 1-32 lowercase letters, digits and dashes, starting with a "
            "letter (it prefixes every network resource's name)",
        )
    if cluster.kubernetes_version not in KUBERNETES_VERSIONS:
        raise ConfigError(
            "cluster.kubernetesVersion",
            f"{cluster.kubernetes_version} is not a version OKE offers; use one of {', '.join(KUBERNETES_VERSIONS)}",
        )
    endpoint = cluster.endpoint
    _check_unique("cluster.endpoint.allowedCidrs", endpoint.allowed_cidrs)
    for cidr in endpoint.allowed_cidrs:
        if ipaddress.IPv4Network(cidr).prefixlen == 0 and not endpoint.allow_world_access:
            raise ConfigError(
                "cluster.endpoint.allowedCidrs",
                f"{cidr} opens the Kubernetes API to the whole internet; list your admin networks instead, "
                "or set cluster.endpoint.allowWorldAccess: true to accept that",
            )
    if endpoint.public and not endpoint.allowed_cidrs:
        raise ConfigError(
            "cluster.endpoint.allowedCidrs",
            "[] with a public endpoint leaves the API reachable by nobody outside the VCN; "
            "list the CIDRs of your administrators or CI",
        )


def _check_node_pools(config: StackConfig) -> None:
    for pool, spec in config.node_pools.items():
        path = f"nodePools.{pool}"
        if pool == "gpu":
            gpu = GPU_SHAPES.get(spec.shape)
            if gpu is None:
                raise ConfigError(
                    f"{path}.shape",
                    f"{spec.shape} is not a GPU shape; use one with a video encoder: {', '.join(STREAMING_GPU_SHAPES)}",
                )
            if not gpu.nvenc:
                raise ConfigError(
                    f"{path}.shape",
                    f"{spec.shape} ({gpu.gpu_model}) has no hardware video encoder (NVENC); pixel streaming needs "
                    f"one: use {', '.join(STREAMING_GPU_SHAPES)}",
                )
        elif is_gpu(spec.shape):
            raise ConfigError(f"{path}.shape", f"{spec.shape} is a GPU shape; GPU nodes belong in nodePools.gpu")
        sizing = shape_sizing_problem(spec.shape, spec.ocpus, spec.memory_gbs)
        if sizing:
            raise ConfigError(f"{path}.{sizing[0]}", sizing[1])
        for key in ("size", "min_size", "max_size"):
            count = getattr(spec, key)
            if count is not None and count > MAX_NODES_PER_POOL:
                raise ConfigError(
                    f"{path}.{to_camel(key)}", f"{count} is above {MAX_NODES_PER_POOL}, OCI's limit of nodes per pool"
                )

        smallest = 0 if pool == "gpu" else 1
        if spec.size < smallest:
            raise ConfigError(f"{path}.size", f"{spec.size} is below {smallest}, the smallest {pool} pool")
        if (spec.min_size is None) != (spec.max_size is None):
            missing = "maxSize" if spec.max_size is None else "minSize"
            raise ConfigError(f"{path}.{missing}", "is missing; an autoscaled pool needs both minSize and maxSize")
        autoscaled = spec.min_size is not None and spec.max_size is not None
        if autoscaled and spec.max_size < 1:
            raise ConfigError(f"{path}.maxSize", f"{spec.max_size} leaves the autoscaler no node to add; use 1 or more")
        if autoscaled and not smallest <= spec.min_size <= spec.size <= spec.max_size:
            raise ConfigError(
                f"{path}.size",
                f"{spec.size} must satisfy {smallest} <= minSize ({spec.min_size}) <= size <= maxSize "
                f"({spec.max_size})",
            )
        if not 50 <= spec.boot_volume_gbs <= 32768:
            raise ConfigError(f"{path}.bootVolumeGbs", f"{spec.boot_volume_gbs} is outside 50-32768 GB")

        ads = spec.availability_domains
        if not ads:
            raise ConfigError(f"{path}.availabilityDomains", "[] is empty; list at least one index, e.g. [1]")
        for index in ads:
            if not 1 <= index <= MAX_AVAILABILITY_DOMAINS:
                raise ConfigError(
                    f"{path}.availabilityDomains",
                    f"{index} is not an availability domain index; allowed: 1-{MAX_AVAILABILITY_DOMAINS}",
                )
        if len(set(ads)) != len(ads):
            raise ConfigError(f"{path}.availabilityDomains", f"{json.dumps(ads)} lists a domain twice")
        for fault_domain in spec.fault_domains:
            if fault_domain not in FAULT_DOMAINS:
                raise ConfigError(
                    f"{path}.faultDomains",
                    f"{fault_domain} is not a fault domain; allowed: {', '.join(FAULT_DOMAINS)}",
                )
        if len(set(spec.fault_domains)) != len(spec.fault_domains):
            raise ConfigError(f"{path}.faultDomains", f"{json.dumps(spec.fault_domains)} lists a fault domain twice")
    _check_cluster_size(config)


def _check_cluster_size(config: StackConfig) -> None:
    most = sum(spec.max_size if spec.max_size is not None else spec.size for _, spec in config.node_pools.items())
    limit = MAX_NODES_PER_CLUSTER[config.cluster.type]
    if most > limit:
        raise ConfigError(
            "nodePools",
            f"{most} nodes at most (size or maxSize of every pool) is above {limit}, OCI's limit for a "
            f"{config.cluster.type} cluster",
        )


def _check_pod_subnets(config: StackConfig) -> None:
    """Every node of a pool reserves PODS_PER_NODE addresses in its pod subnet; OCI keeps three per subnet."""
    if not config.vcn_native_pods:
        return
    subnets = config.network.subnets
    pools = dict(config.node_pools.items())
    for key, cidr, users in (
        ("pods", subnets.pods, ("default", "turn")),
        ("streamPods", subnets.stream_pods, ("gpu",)),
    ):
        nodes = sum(pools[p].max_size if pools[p].max_size is not None else pools[p].size for p in users)
        usable = ipaddress.IPv4Network(cidr).num_addresses - 3
        if nodes * PODS_PER_NODE > usable:
            raise ConfigError(
                f"network.subnets.{key}",
                f"{cidr} holds {usable} pod addresses, fewer than the {nodes * PODS_PER_NODE} that "
                f"{nodes} node(s) of the {'/'.join(users)} pool(s) reserve ({PODS_PER_NODE} each); use a larger subnet",
            )


def _check_addons(config: StackConfig) -> None:
    addons = config.addons
    for key in _ADDON_CHARTS:
        addon: AddonConfig = getattr(addons, to_snake(key))
        if addon.version is not None and not _CHART_VERSION.match(addon.version):
            raise ConfigError(
                f"addons.{key}.version", f"{addon.version} is not a chart version such as 1.2.3 or v1.2.3"
            )
        if addon.repository is not None and not re.match(r"^(https|oci)://\S+$", addon.repository):
            raise ConfigError(f"addons.{key}.repository", f"{addon.repository} is not an https:// or oci:// URL")

    ingress = addons.ingress_nginx
    for key in ("min_bandwidth_mbps", "max_bandwidth_mbps"):
        if not 10 <= getattr(ingress, key) <= 8000:
            raise ConfigError(
                f"addons.ingressNginx.{to_camel(key)}",
                f"{getattr(ingress, key)} Mbps is outside 10-8000 (OCI flexible load balancer)",
            )
    if ingress.min_bandwidth_mbps > ingress.max_bandwidth_mbps:
        raise ConfigError(
            "addons.ingressNginx.minBandwidthMbps",
            f"{ingress.min_bandwidth_mbps} is above maxBandwidthMbps ({ingress.max_bandwidth_mbps})",
        )
    if not 1 <= ingress.replicas <= 100:
        raise ConfigError("addons.ingressNginx.replicas", f"{ingress.replicas} is outside 1-100")
    email = addons.cert_manager.email
    if email is not None and not _EMAIL.match(email):
        raise ConfigError("addons.certManager.email", f"{email} is not an email address")
    if not _DURATION.match(addons.monitoring.retention):
        raise ConfigError("addons.monitoring.retention", f"{addons.monitoring.retention} is not a duration such as 15d")
    if addons.monitoring.storage_gbs < 50:
        raise ConfigError(
            "addons.monitoring.storageGbs",
            f"{addons.monitoring.storage_gbs} is below 50 GB, the smallest OCI block volume",
        )
    _check_alerts(addons.monitoring)
    for key in ("dcgmExporter", "prometheusAdapter"):
        if getattr(addons, to_snake(key)).enabled and not addons.monitoring.enabled:
            raise ConfigError(
                f"addons.{key}.enabled", "true needs addons.monitoring (its Prometheus); enable it or disable this"
            )

    plugin = addons.gpu_plugin
    if plugin.addon_version is not None and not _CHART_VERSION.match(plugin.addon_version):
        raise ConfigError(
            "addons.gpuPlugin.addonVersion", f"{plugin.addon_version} is not a version such as v0.15.0 or 0.15.0"
        )
    if not 1 <= plugin.streams_per_gpu <= 64:
        raise ConfigError("addons.gpuPlugin.streamsPerGpu", f"{plugin.streams_per_gpu} is outside 1-64")
    if plugin.owner == "okeAddon" and plugin.streams_per_gpu > 1:
        raise ConfigError(
            "addons.gpuPlugin.streamsPerGpu",
            f"{plugin.streams_per_gpu} needs time-slicing, which only owner: chart configures",
        )
    if plugin.enabled and config.cluster.type == "BASIC":
        raise ConfigError(
            "addons.gpuPlugin.enabled",
            "true needs cluster.type ENHANCED: BASIC clusters have no managed add-ons, so this program cannot make "
            "sure only one GPU device plugin runs; use ENHANCED or set addons.gpuPlugin.enabled: false",
        )


_QUANTITY_KINDS = {"cpu": "a CPU quantity such as 3750m or 4", "memory": "a memory quantity such as 8Gi"}


def _check_requests_and_limits(streamer: StreamerConfig) -> None:
    for kind, example in _QUANTITY_KINDS.items():
        values = {}
        for key in (kind, f"{kind}_limit"):
            text = getattr(streamer, key)
            try:
                values[key] = quantity(text)
            except ValueError:
                raise ConfigError(f"streaming.streamer.{to_camel(key)}", f"{text} is not {example}") from None
            if values[key] <= 0:
                raise ConfigError(f"streaming.streamer.{to_camel(key)}", f"{text} is not above zero")
        if values[kind] > values[f"{kind}_limit"]:
            raise ConfigError(
                f"streaming.streamer.{kind}",
                f"{getattr(streamer, kind)} is above the limit {kind}Limit ({getattr(streamer, f'{kind}_limit')}); "
                "Kubernetes refuses a request above its limit",
            )


# Allowed ranges of the alert thresholds: minutes up to a day, a GPU temperature below NVIDIA's shutdown point.
_ALERT_LIMITS = {"queued_players": (0, 10000), "gpu_temperature_celsius": (40, 110)}
_ALERT_MINUTES = (1, 1440)


def _check_alerts(monitoring: MonitoringConfig) -> None:
    for key, value in monitoring.alerts.model_dump().items():
        low, high = _ALERT_LIMITS.get(key, _ALERT_MINUTES)
        if not low <= value <= high:
            raise ConfigError(f"addons.monitoring.alerts.{to_camel(key)}", f"{value} is outside {low}-{high}")
    receiver = monitoring.alert_receiver
    if receiver is None:
        return
    # The URL is a secret: the message never repeats it.
    if not re.match(r"^https?://[^\s/]+\S*$", receiver.url):
        raise ConfigError(
            "addons.monitoring.alertReceiver.url", "(secret, not shown) is not an http:// or https:// URL"
        )
    if receiver.channel is not None and (
        receiver.type != "slack" or not re.match(r"^[#@]?[\w.-]{1,80}$", receiver.channel)
    ):
        raise ConfigError(
            "addons.monitoring.alertReceiver.channel",
            f"{receiver.channel} is only for type slack, as a channel name such as #alerts",
        )


# (key, smallest, largest) in seconds.
_AUTOSCALER_TIMINGS = (
    ("scanIntervalSeconds", 1, 600),
    ("scaleDownDelayAfterAddSeconds", 0, 86400),
    ("scaleDownUnneededSeconds", 0, 86400),
    ("maxNodeProvisionSeconds", 60, 7200),
)
_DYNAMIC_GROUP = re.compile(r"^(id ocid1\.dynamicgroup\.oc\d+\.\.[a-z0-9]+|('[^'\s]+'/)?'?[A-Za-z0-9._-]{1,100}'?)$")


def _check_cluster_autoscaler(config: StackConfig) -> None:
    autoscaler = config.addons.cluster_autoscaler
    path = "addons.clusterAutoscaler"
    for key, low, high in _AUTOSCALER_TIMINGS:
        value = getattr(autoscaler, to_snake(key))
        if not low <= value <= high:
            raise ConfigError(f"{path}.{key}", f"{value} is outside {low}-{high} seconds")
    if autoscaler.addon_version is not None and not re.match(r"^v?\d+\.\d+\.\d+[-.\w]*$", autoscaler.addon_version):
        raise ConfigError(
            f"{path}.addonVersion", f"{autoscaler.addon_version} is not an add-on version such as v1.34.0-1"
        )
    if autoscaler.auth_type == "instance" and not autoscaler.dynamic_group:
        raise ConfigError(
            f"{path}.dynamicGroup",
            "is missing; authType instance needs the dynamic group of the worker nodes (name, 'domain'/'name' or "
            "id ocid1.dynamicgroup...), or use authType workload",
        )
    if autoscaler.dynamic_group is not None and not _DYNAMIC_GROUP.match(autoscaler.dynamic_group):
        raise ConfigError(
            f"{path}.dynamicGroup",
            f"{autoscaler.dynamic_group} is not a dynamic group (name, 'domain'/'name' or id ocid1.dynamicgroup...)",
        )
    autoscaled = [pool for pool, spec in config.node_pools.items() if spec.max_size is not None]
    if autoscaler.enabled and autoscaled and config.cluster.type == "BASIC":
        raise ConfigError(
            f"{path}.enabled",
            f"true needs cluster.type ENHANCED (OKE manages cluster add-ons and workload identity only there) to "
            f"autoscale nodePools.{autoscaled[0]}; use ENHANCED, or set {path}.enabled: false and size the pools",
        )


def _check_streaming(config: StackConfig) -> None:
    streaming, addons = config.streaming, config.addons
    if not streaming.enabled:
        return
    if not _DNS_LABEL.match(streaming.namespace):
        raise ConfigError(
            "streaming.namespace", f"{streaming.namespace} is not a Kubernetes namespace name (a DNS label)"
        )
    if streaming.namespace in RESERVED_NAMESPACES:
        raise ConfigError(
            "streaming.namespace",
            f"{streaming.namespace} belongs to Kubernetes or an add-on of this platform; taken: "
            f"{', '.join(RESERVED_NAMESPACES)}",
        )
    for name, reference in streaming.images.items():
        if name not in IMAGES:
            raise ConfigError(
                f"streaming.images.{name}", f"is not an image of the workload; known: {', '.join(IMAGES)}"
            )
        problem = image_problem(reference) or version_problem(name, reference)
        if problem:
            raise ConfigError(f"streaming.images.{name}", problem)
    for index, secret in enumerate(streaming.image_pull_secrets):
        if not _DNS_SUBDOMAIN.match(secret):
            raise ConfigError(f"streaming.imagePullSecrets[{index}]", f"{secret} is not a Secret name")

    turn = streaming.turn
    if not re.match(r"^[A-Za-z0-9.-]{1,63}$", turn.realm):
        raise ConfigError("streaming.turn.realm", f"{turn.realm} is not a realm (letters, digits, dots, dashes)")
    if not 60 <= turn.credential_ttl_seconds <= 86400:
        raise ConfigError(
            "streaming.turn.credentialTtlSeconds", f"{turn.credential_ttl_seconds} is outside 60-86400 seconds"
        )
    for key in ("user_quota", "total_quota", "max_bytes_per_second"):
        if getattr(turn, key) < 1:
            raise ConfigError(f"streaming.turn.{to_camel(key)}", f"{getattr(turn, key)} is below 1")
    if turn.capacity_bytes_per_second < turn.max_bytes_per_second:
        raise ConfigError(
            "streaming.turn.capacityBytesPerSecond",
            f"{turn.capacity_bytes_per_second} is below maxBytesPerSecond ({turn.max_bytes_per_second}): no session "
            "would fit on a TURN node",
        )
    if not 1 <= turn.credentials_per_minute <= 600:
        raise ConfigError("streaming.turn.credentialsPerMinute", f"{turn.credentials_per_minute} is outside 1-600")
    if config.vcn_native_pods and turn.allow_relay_to_all_pods:
        raise ConfigError(
            "streaming.turn.allowRelayToAllPods",
            "true only applies to cluster.cni: flannel; with vcnNative the relay reaches exactly the stream pods",
        )
    if not config.vcn_native_pods and not turn.allow_relay_to_all_pods:
        raise ConfigError(
            "cluster.cni",
            "flannel cannot tell stream pods from the others, so the TURN relay would reach every pod; use vcnNative "
            "(the default), or accept that risk with streaming.turn.allowRelayToAllPods: true",
        )

    streamer = streaming.streamer
    _check_requests_and_limits(streamer)
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
    plugin = addons.gpu_plugin
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
    if up.pods < 1 or up.percent < 1 or not 1 <= up.period_seconds <= 1800:
        raise ConfigError(
            "streaming.autoscaling.scaleUp",
            f"pods {up.pods}, percent {up.percent} and periodSeconds {up.period_seconds} must be positive "
            "(period at most 1800)",
        )
    for path, seconds in (
        ("scaleUp", up.stabilization_seconds),
        ("scaleDown", scaling.scale_down.stabilization_seconds),
    ):
        if not 0 <= seconds <= 3600:
            raise ConfigError(f"streaming.autoscaling.{path}.stabilizationSeconds", f"{seconds} is outside 0-3600")

    if not 0 <= streaming.capacity.warm_streams <= 64:
        raise ConfigError("streaming.capacity.warmStreams", f"{streaming.capacity.warm_streams} is outside 0-64")

    ingress = streaming.ingress
    if ingress.host is not None and not _HOST.match(ingress.host):
        raise ConfigError("streaming.ingress.host", f"{ingress.host} is not a DNS host name")
    for path, prefix in (
        ("ingress.pathPrefix", ingress.path_prefix),
        ("podProxy.pathPrefix", streaming.pod_proxy.path_prefix),
    ):
        if prefix and not _PATH_PREFIX.match(prefix):
            raise ConfigError(f"streaming.{path}", f"{prefix} is not a path prefix such as /pixel (no trailing slash)")
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


_TYPE_WORDS = {
    "int_parsing": "a whole number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_parsing": "a number",
    "float_type": "a number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "model_type": "a mapping of keys",
    "model_attributes_type": "a mapping of keys",
    "dict_type": "a mapping of keys",
}


def _allowed_keys(loc: Sequence[str | int]) -> list[str]:
    model: Any = StackConfig
    for part in loc:
        if isinstance(part, int):
            continue
        fields = {f.alias or n: f for n, f in model.model_fields.items()}
        annotation = fields[part].annotation if part in fields else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return [f.alias or n for n, f in model.model_fields.items()]


def _translate(error: ValidationError) -> ConfigError:
    first = error.errors()[0]
    loc = [p for p in first["loc"]]
    path = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in loc).replace(".[", "[")
    kind, value = first["type"], first.get("input")
    if kind == "missing":
        hint = " (pulumi config set compartmentId <compartment OCID>)" if path == "compartmentId" else ""
        message = f"is required{hint}"
    elif kind == "extra_forbidden":
        message = f"unknown key; allowed here: {', '.join(_allowed_keys(loc[:-1]))}"
    elif kind == "literal_error":
        message = f"{_show(value)} is not allowed; use one of {first['ctx']['expected']}"
    elif kind in _TYPE_WORDS:
        message = f"{_show(value)} is not {_TYPE_WORDS[kind]}"
    elif kind == "value_error":
        message = str(first["ctx"]["error"])
    else:
        message = f"{_show(value)}: {first['msg']}"
    more = len(error.errors()) - 1
    if more:
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return ConfigError(path, message)


def _configured_keys(namespace: str) -> set[str]:
    from pulumi.runtime import config as runtime_config

    keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    return {k.split(":", 1)[1] for k in keys if k.startswith(f"{namespace}:")}


def load_stack_config(namespace: str = NAMESPACE) -> StackConfig:
    """Read this stack's config namespace and validate it; `secrets` holds the plain text of its secret values."""
    from pulumi.runtime.config import is_config_secret

    config = pulumi.Config(namespace)
    for key in sorted(_configured_keys(namespace)):
        if key not in TOP_LEVEL_KEYS:
            raise ConfigError(key, f"unknown key; allowed: {', '.join(TOP_LEVEL_KEYS)}", namespace)
    raw: dict[str, Any] = {}
    for key in TOP_LEVEL_KEYS:
        try:
            value = config.get(key) if key == "compartmentId" else config.get_object(key)
        except pulumi.ConfigTypeError:
            raise ConfigError(key, "is not valid YAML/JSON for a structured value", namespace) from None
        if value is not None:
            raw[key] = value
    stack_config = StackConfig.parse(raw)
    stack_config.check_region(pulumi.Config("oci").get("region"))
    secret_keys = [key for key in raw if is_config_secret(f"{namespace}:{key}")]
    paths = secret_paths(namespace, secret_keys, raw, pulumi.get_stack())
    stack_config._secrets = secret_values(raw, paths)
    return stack_config
