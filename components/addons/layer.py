"""The cluster platform layer of a stack: the add-ons, declared from the stack config through the cluster's
Kubernetes provider. Their Deployments run on the default pool, so they wait for it; the GPU DaemonSets follow
GPU nodes whenever those join."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pulumi

from .certificates import CertManager, CertManagerArgs
from .cluster_autoscaler import ClusterAutoscaler, ClusterAutoscalerArgs
from .dcgm_exporter import DcgmExporter, DcgmExporterArgs
from .gpu_device_plugin import GpuDevicePlugin, GpuDevicePluginArgs
from .ingress import IngressController, IngressControllerArgs
from .metrics_server import MetricsServer, MetricsServerArgs
from .monitoring import Monitoring, MonitoringArgs

if TYPE_CHECKING:
    from ..config import StackConfig
    from ..oci.layer import OciLayer


@dataclass
class AddonLayer:
    """What the workloads build on: the ingress controller and GPU plugin to wait for, the certificate issuers."""

    ingress_controller: list[pulumi.Resource] = field(default_factory=list)
    gpu_plugin: list[pulumi.Resource] = field(default_factory=list)
    cluster_issuers: bool = False
    certificates: list[pulumi.Resource] = field(default_factory=list)
    """cert-manager with its issuers: what a Certificate waits for."""
    outputs: dict[str, Any] = field(default_factory=dict)


def declare_addons(
    config: StackConfig, name: str, infra: OciLayer, opts: pulumi.ResourceOptions, alerts_namespace: str | None
) -> AddonLayer:
    """`alerts_namespace`: the streaming workload's namespace, whose alerts the monitoring installs (or None)."""
    addons = config.addons
    in_cluster = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(providers=[infra.provider]))
    system_nodes = infra.nodes("default")
    layer = AddonLayer()
    # Node capacity: OKE's Cluster Autoscaler add-on resizes every autoscaled pool, running on the default pool.
    autoscaled = [p.autoscaler_nodes for p in infra.pools.values() if p.autoscaler_nodes]
    if autoscaled and addons.cluster_autoscaler.enabled:
        ClusterAutoscaler(
            "cluster-autoscaler",
            ClusterAutoscalerArgs(
                cluster_id=infra.cluster.cluster_id,
                compartment_id=config.compartment_id,
                node_groups=autoscaled,
                policy_name=f"{name}-cluster-autoscaler",
                depends_on=system_nodes,
                **addons.cluster_autoscaler.settings(),
            ),
            opts=opts,
        )
    _traffic(config, infra, in_cluster, system_nodes, layer)
    if addons.monitoring.enabled:
        _telemetry(config, infra, in_cluster, system_nodes, alerts_namespace, layer)
    if addons.gpu_plugin.enabled:
        plugin = GpuDevicePlugin(
            "gpu-device-plugin",
            GpuDevicePluginArgs(
                cluster_id=infra.cluster.cluster_id,
                owner=addons.gpu_plugin.owner,
                streams_per_gpu=addons.gpu_plugin.streams_per_gpu,
                addon_version=addons.gpu_plugin.addon_version,
                nodes=config.cluster.placement().gpu,
                **addons.release_args("gpuPlugin"),
            ),
            opts=in_cluster,
        )
        layer.gpu_plugin.append(plugin)
        layer.outputs["gpuResource"] = plugin.gpu_resource
    return layer


def _traffic(
    config: StackConfig,
    infra: OciLayer,
    opts: pulumi.ResourceOptions,
    system_nodes: list[pulumi.Resource],
    layer: AddonLayer,
) -> None:
    """Ingress, certificates and resource metrics."""
    addons = config.addons
    system = config.cluster.placement().system
    if addons.ingress_nginx.enabled:
        settings = addons.ingress_nginx
        ingress = IngressController(
            "ingress-nginx",
            IngressControllerArgs(
                load_balancer_nsg_id=infra.network.nsg_ids["lb"] if infra.network else None,
                load_balancer=settings.load_balancer,
                min_bandwidth_mbps=settings.min_bandwidth_mbps,
                max_bandwidth_mbps=settings.max_bandwidth_mbps,
                replicas=settings.replicas,
                # TURN over TLS shares the load balancer's 443, passed through by server name.
                ssl_passthrough=config.streaming.enabled and config.streaming.turn.tls.host is not None,
                depends_on=system_nodes,
                nodes=system,
                **addons.release_args("ingressNginx"),
            ),
            opts=opts,
        )
        layer.ingress_controller.append(ingress)
        layer.outputs["ingressClass"] = ingress.ingress_class
    if addons.cert_manager.enabled:
        certificates = CertManager(
            "cert-manager",
            CertManagerArgs(
                email=addons.cert_manager.email,
                depends_on=system_nodes,
                nodes=system,
                **addons.release_args("certManager"),
            ),
            opts=opts,
        )
        layer.cluster_issuers = True
        layer.certificates.append(certificates)
        layer.outputs["clusterIssuers"] = certificates.issuers
    if addons.metrics_server.enabled:
        MetricsServer(
            "metrics-server",
            MetricsServerArgs(depends_on=system_nodes, nodes=system, **addons.release_args("metricsServer")),
            opts=opts,
        )


def _telemetry(
    config: StackConfig,
    infra: OciLayer,
    opts: pulumi.ResourceOptions,
    system_nodes: list[pulumi.Resource],
    alerts_namespace: str | None,
    layer: AddonLayer,
) -> None:
    """Prometheus and Grafana, and the GPUs' metrics."""
    addons = config.addons
    placement = config.cluster.placement()
    receiver = addons.monitoring.alert_receiver
    monitoring = Monitoring(
        "monitoring",
        MonitoringArgs(
            retention=addons.monitoring.retention,
            storage_gbs=addons.monitoring.storage_gbs,
            storage_class=infra.storage_class,
            alerts_namespace=alerts_namespace,
            alert_thresholds=addons.monitoring.alerts.thresholds(),
            alert_receiver=receiver.receiver() if receiver else None,
            depends_on=system_nodes,
            nodes=placement.system,
            **addons.release_args("monitoring"),
        ),
        opts=opts,
    )
    layer.outputs["prometheusUrl"] = f"{monitoring.prometheus_url}:{monitoring.prometheus_port}"
    layer.outputs["grafanaAdminPassword"] = monitoring.grafana_admin_password
    if addons.dcgm_exporter.enabled:
        DcgmExporter(
            "dcgm-exporter",
            DcgmExporterArgs(
                depends_on=[monitoring.release], nodes=placement.gpu, **addons.release_args("dcgmExporter")
            ),
            opts=opts,
        )
