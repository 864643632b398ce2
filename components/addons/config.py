"""The cluster add-ons' configuration: which are on, their chart versions and values, and their own settings."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic.alias_generators import to_snake

from ..config_base import ConfigError, ConfigModel, Range, check_ranges
from ..constants import BLOCK_VOLUME_GBS
from .alerts import AlertReceiver, AlertThresholds, ReceiverKind
from .charts import CHARTS
from .cluster_autoscaler import AutoscalerTimings

if TYPE_CHECKING:
    from ..config import StackConfig

_CHART_VERSION = re.compile(r"^v?\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DURATION = re.compile(r"^\d+[smhdwy]$")
# An OCI flexible load balancer's bandwidth.
_LB_BANDWIDTH = Range(10, 8000, "Mbps", "OCI flexible load balancer")


class AddonConfig(ConfigModel):
    enabled: bool = True
    """Install the add-on."""
    version: str | None = None
    """A chart version (such as 1.2.3 or v1.2.3) instead of the pinned one ([the chart table](docs/addons.md))."""
    repository: str | None = None
    """A chart repository (a mirror), `https://` or `oci://`, instead of the upstream one."""
    values: dict[str, Any] = {}
    """Helm values deep-merged over this project's (mappings merge, lists replace)."""


class IngressNginxConfig(AddonConfig):
    load_balancer: Literal["flexible", "network"] = "flexible"
    """An OCI flexible load balancer or a network load balancer in front of the controller."""
    min_bandwidth_mbps: Annotated[int, _LB_BANDWIDTH] = 10
    """The flexible load balancer's bandwidth floor, at most maxBandwidthMbps."""
    max_bandwidth_mbps: Annotated[int, _LB_BANDWIDTH] = 100
    """The flexible load balancer's bandwidth ceiling."""
    replicas: Annotated[int, Range(1, 100)] = 2
    """Controller replicas."""


class CertManagerConfig(AddonConfig):
    email: str | None = None
    """The ACME account's contact address for the Let's Encrypt issuers (optional)."""


# Minutes up to a day, a GPU temperature below NVIDIA's shutdown point.
_ALERT_MINUTES = Range(1, 1440, "min")


class AlertsConfig(ConfigModel):
    """Thresholds of the platform's own alerts (components/addons/alerts.py; what each means and what to do when
    it fires: [the alert runbook](docs/alerts.md))."""

    queued_players: Annotated[int, Range(0, 10000)] = AlertThresholds.queued_players
    """PixelStreamPlayersQueued fires when more players than this wait for a stream for queuedMinutes."""
    queued_minutes: Annotated[int, _ALERT_MINUTES] = AlertThresholds.queued_minutes
    """How long more than queuedPlayers must wait before PixelStreamPlayersQueued fires."""
    no_ready_stream_minutes: Annotated[int, _ALERT_MINUTES] = AlertThresholds.no_ready_stream_minutes
    """PixelStreamNoReadyStream: after this long without an available stream pod of any build."""
    build_not_ready_minutes: Annotated[int, _ALERT_MINUTES] = AlertThresholds.build_not_ready_minutes
    """PixelStreamBuildNotReady: after a build's stream Deployment has had unready pods this long."""
    autoscaler_at_max_minutes: Annotated[int, _ALERT_MINUTES] = AlertThresholds.autoscaler_at_max_minutes
    """PixelStreamAutoscalerAtMaximum: after a build has been this long at its maxReplicas."""
    scale_in_held_minutes: Annotated[int, _ALERT_MINUTES] = AlertThresholds.scale_in_held_minutes
    """PixelStreamScaleInHeld: after a build has kept streams it does not want this long."""
    turn_not_ready_minutes: Annotated[int, _ALERT_MINUTES] = AlertThresholds.turn_not_ready_minutes
    """PixelStreamTurnPodsNotReady: after this long with fewer ready TURN pods than scheduled."""
    session_service_down_minutes: Annotated[int, _ALERT_MINUTES] = AlertThresholds.session_service_down_minutes
    """PixelStreamSessionServiceDown: after this long without an available session service pod."""
    gpu_temperature_celsius: Annotated[int, Range(40, 110, "°C")] = AlertThresholds.gpu_temperature_celsius
    """PixelStreamGpuTemperatureHigh fires above this temperature for gpuTemperatureMinutes."""
    gpu_temperature_minutes: Annotated[int, _ALERT_MINUTES] = AlertThresholds.gpu_temperature_minutes
    """How long a GPU must stay above gpuTemperatureCelsius before PixelStreamGpuTemperatureHigh fires."""

    def thresholds(self) -> AlertThresholds:
        return AlertThresholds(**self.model_dump())


class AlertReceiverConfig(ConfigModel):
    """Where Alertmanager sends every alert but the Watchdog; unset: no receiver."""

    type: ReceiverKind
    """A webhook, or a Slack incoming webhook."""
    url: str
    """The webhook's `http(s)://` URL, set as a secret: `pulumi config set --secret --path
    'addons.monitoring.alertReceiver.url' https://...`. It stays a Pulumi secret: it goes into a Kubernetes
    Secret (`alertmanager-receiver` in `monitoring`; a secret in Pulumi's state and `[secret]` in build/) that
    Alertmanager mounts and reads with `url_file` / `api_url_file`; it is never in Helm values, outputs or error
    messages."""
    channel: str | None = None
    """slack only: the channel (such as #alerts); unset: the webhook's own."""

    def receiver(self) -> AlertReceiver:
        return AlertReceiver(kind=self.type, url=self.url, channel=self.channel)


class MonitoringConfig(AddonConfig):
    retention: str = "15d"
    """How long Prometheus keeps its data, a duration such as 15d."""
    storage_gbs: Annotated[int, Range(*BLOCK_VOLUME_GBS, "GB", "an OCI block volume's sizes")] = 50
    """Prometheus's volume (an OCI block volume)."""
    alerts: AlertsConfig = AlertsConfig()
    alert_receiver: AlertReceiverConfig | None = None


class GpuPluginConfig(AddonConfig):
    """The GPU device plugin. It needs an ENHANCED cluster (on BASIC clusters OKE's own plugin cannot be
    managed, so disable it there)."""

    owner: Literal["chart", "okeAddon"] = "chart"
    """Who advertises the GPUs: NVIDIA's chart (OKE's add-on parked), or OKE's NvidiaGpuPlugin add-on."""
    streams_per_gpu: Annotated[int, Range(1, 64)] = 1
    """Time-slicing replicas per GPU (owner chart only); above 1 the resource is `nvidia.com/gpu.shared`."""
    addon_version: str | None = None
    """owner okeAddon: the add-on's version (such as v0.15.0); unset: OKE's choice."""


_TIMINGS = AutoscalerTimings()


class ClusterAutoscalerConfig(ConfigModel):
    """OKE's ClusterAutoscaler add-on, declared when a pool has minSize and maxSize (timing defaults: the
    add-on's own, but maxNodeProvisionSeconds: Oracle's recommendation for production)."""

    enabled: bool = True
    """Manage the autoscaled pools (needs an ENHANCED cluster)."""
    auth_type: Literal["workload", "instance"] = "workload"
    """Workload identity, with a policy scoped to this cluster's autoscaler; or instance principal."""
    dynamic_group: str | None = None
    """authType instance only (required there): the worker nodes' dynamic group, as `name`, `'domain'/'name'`
    or `id ocid1.dynamicgroup...`."""
    addon_version: str | None = None
    """The add-on's version (such as v1.34.0-1); unset: OKE's choice."""
    scan_interval_seconds: Annotated[int, Range(1, 600, "seconds")] = _TIMINGS.scan_interval_seconds
    """How often it looks for pending pods and unneeded nodes."""
    scale_down_delay_after_add_seconds: Annotated[int, Range(0, 86400, "seconds")] = (
        _TIMINGS.scale_down_delay_after_add_seconds
    )
    """No scale-down this long after a scale-up (prod: 300)."""
    scale_down_unneeded_seconds: Annotated[int, Range(0, 86400, "seconds")] = _TIMINGS.scale_down_unneeded_seconds
    """How long a node stays unneeded before it goes (prod: 300)."""
    max_node_provision_seconds: Annotated[int, Range(60, 7200, "seconds")] = _TIMINGS.max_node_provision_seconds
    """How long it waits for a node to register before giving up on it (and backing the pool off)."""

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


class AddonsConfig(ConfigModel):
    """The cluster add-ons ([the cluster platform](docs/addons.md)). prometheusAdapter was removed with the
    streams' HPA: a stack that still sets it is told to remove it."""

    cluster_autoscaler: ClusterAutoscalerConfig = ClusterAutoscalerConfig()
    ingress_nginx: IngressNginxConfig = IngressNginxConfig()
    """ingress-nginx, the players' way in: streaming and simulation need it, and so does the AI orchestrator's host."""
    cert_manager: CertManagerConfig = CertManagerConfig()
    """cert-manager, with Let's Encrypt issuers for the Ingress hosts."""
    metrics_server: AddonConfig = AddonConfig()
    """metrics-server, the resource metrics API."""
    monitoring: MonitoringConfig = MonitoringConfig()
    """kube-prometheus-stack: Prometheus, Alertmanager and the platform's alerts."""
    dcgm_exporter: AddonConfig = AddonConfig()
    """NVIDIA's dcgm-exporter, the GPUs' metrics: it needs monitoring."""
    gpu_plugin: GpuPluginConfig = GpuPluginConfig()
    REMOVED_KEYS: ClassVar[dict[str, str]] = {
        "prometheusAdapter": "removed: nothing reads custom metrics any more (the session service scales the streams "
        "itself); remove it",
    }

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
}


def check_addons(config: StackConfig) -> None:
    check_ranges(config.addons, "addons")
    _check_charts_and_settings(config)
    _check_alerts(config.addons.monitoring)
    _check_cluster_autoscaler(config)


def _check_charts_and_settings(config: StackConfig) -> None:
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
    if ingress.min_bandwidth_mbps > ingress.max_bandwidth_mbps:
        raise ConfigError(
            "addons.ingressNginx.minBandwidthMbps",
            f"{ingress.min_bandwidth_mbps} is above maxBandwidthMbps ({ingress.max_bandwidth_mbps})",
        )
    email = addons.cert_manager.email
    if email is not None and not _EMAIL.match(email):
        raise ConfigError("addons.certManager.email", f"{email} is not an email address")
    if not _DURATION.match(addons.monitoring.retention):
        raise ConfigError("addons.monitoring.retention", f"{addons.monitoring.retention} is not a duration such as 15d")
    if addons.dcgm_exporter.enabled and not addons.monitoring.enabled:
        raise ConfigError(
            "addons.dcgmExporter.enabled", "true needs addons.monitoring (its Prometheus); enable it or disable this"
        )

    plugin = addons.gpu_plugin
    if plugin.addon_version is not None and not _CHART_VERSION.match(plugin.addon_version):
        raise ConfigError(
            "addons.gpuPlugin.addonVersion", f"{plugin.addon_version} is not a version such as v0.15.0 or 0.15.0"
        )
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


def _check_alerts(monitoring: MonitoringConfig) -> None:
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


_DYNAMIC_GROUP = re.compile(r"^(id ocid1\.dynamicgroup\.oc\d+\.\.[a-z0-9]+|('[^'\s]+'/)?'?[A-Za-z0-9._-]{1,100}'?)$")


def _check_cluster_autoscaler(config: StackConfig) -> None:
    autoscaler = config.addons.cluster_autoscaler
    path = "addons.clusterAutoscaler"
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
