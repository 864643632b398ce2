"""The cluster add-ons' configuration: which are on, their chart versions and values, and their own settings."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic.alias_generators import to_camel, to_snake

from ..config_base import ConfigError, ConfigModel
from ..constants import BLOCK_VOLUME_GBS
from .alerts import AlertReceiver, AlertThresholds, ReceiverKind
from .charts import CHARTS
from .cluster_autoscaler import AutoscalerTimings

if TYPE_CHECKING:
    from ..config import StackConfig

_CHART_VERSION = re.compile(r"^v?\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DURATION = re.compile(r"^\d+[smhdwy]$")


class AddonConfig(ConfigModel):
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


class AlertsConfig(ConfigModel):
    """Thresholds of the platform's own alerts (components/alerts.py)."""

    queued_players: int = AlertThresholds.queued_players
    queued_minutes: int = AlertThresholds.queued_minutes
    no_ready_stream_minutes: int = AlertThresholds.no_ready_stream_minutes
    build_not_ready_minutes: int = AlertThresholds.build_not_ready_minutes
    autoscaler_at_max_minutes: int = AlertThresholds.autoscaler_at_max_minutes
    scale_in_held_minutes: int = AlertThresholds.scale_in_held_minutes
    turn_not_ready_minutes: int = AlertThresholds.turn_not_ready_minutes
    session_service_down_minutes: int = AlertThresholds.session_service_down_minutes
    gpu_temperature_celsius: int = AlertThresholds.gpu_temperature_celsius
    gpu_temperature_minutes: int = AlertThresholds.gpu_temperature_minutes

    def thresholds(self) -> AlertThresholds:
        return AlertThresholds(**self.model_dump())


class AlertReceiverConfig(ConfigModel):
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


class ClusterAutoscalerConfig(ConfigModel):
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


class AddonsConfig(ConfigModel):
    cluster_autoscaler: ClusterAutoscalerConfig = ClusterAutoscalerConfig()
    ingress_nginx: IngressNginxConfig = IngressNginxConfig()
    cert_manager: CertManagerConfig = CertManagerConfig()
    metrics_server: AddonConfig = AddonConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    dcgm_exporter: AddonConfig = AddonConfig()
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
    smallest, largest = BLOCK_VOLUME_GBS
    if not smallest <= addons.monitoring.storage_gbs <= largest:
        raise ConfigError(
            "addons.monitoring.storageGbs",
            f"{addons.monitoring.storage_gbs} is outside {smallest}-{largest} GB, the sizes of an OCI block volume",
        )
    _check_alerts(addons.monitoring)
    if addons.dcgm_exporter.enabled and not addons.monitoring.enabled:
        raise ConfigError(
            "addons.dcgmExporter.enabled", "true needs addons.monitoring (its Prometheus); enable it or disable this"
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
