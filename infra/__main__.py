"""The platform stack: validated config in, components composed, outputs exported."""

import pulumi
import pulumi_oci as oci

from pixelstream import (
    GPU_NODE_LABEL,
    GPU_TAINT,
    TURN_NODE_LABEL,
    TURN_TAINT,
    CertManager,
    CertManagerArgs,
    ClusterAutoscaler,
    ClusterAutoscalerArgs,
    CustomMetricsAdapter,
    CustomMetricsAdapterArgs,
    DcgmExporter,
    DcgmExporterArgs,
    GpuDevicePlugin,
    GpuDevicePluginArgs,
    IngressController,
    IngressControllerArgs,
    MetricsServer,
    MetricsServerArgs,
    Monitoring,
    MonitoringArgs,
    Network,
    NetworkArgs,
    NodePool,
    NodePoolArgs,
    OkeCluster,
    OkeClusterArgs,
    PixelStreaming,
    PixelStreamingArgs,
    load_stack_config,
    protect_resources,
    protected,
)

config = load_stack_config()
# Secret config values stay secret in every resource input and output that carries them.
protect_resources(config.secrets)


def export(name: str, value: object) -> None:
    pulumi.export(name, protected(value, config.secrets))


region_domains = [
    ad.name for ad in oci.identity.get_availability_domains(compartment_id=config.compartment_id).availability_domains
]
placements = {pool: config.availability_domain_names(pool, region_domains) for pool, _ in config.node_pools.items()}
name = config.cluster.name or f"pixelstream-{pulumi.get_stack()}"
vcn_native = config.vcn_native_pods
for warning in config.warnings():
    pulumi.log.warn(warning)

network = Network(
    name,
    NetworkArgs(
        compartment_id=config.compartment_id,
        vcn_cidr=config.network.vcn_cidr,
        api_endpoint_subnet_cidr=config.network.subnets.api_endpoint,
        workers_subnet_cidr=config.network.subnets.workers,
        turn_subnet_cidr=config.network.subnets.turn,
        load_balancer_subnet_cidr=config.network.subnets.load_balancers,
        api_endpoint_public=config.cluster.endpoint.public,
        api_allowed_cidrs=config.cluster.endpoint.allowed_cidrs,
        allow_world_api_access=config.cluster.endpoint.allow_world_access,
        client_cidrs=config.network.client_cidrs,
        relay_ports=config.network.relay_ports.bounds,
        pods_subnet_cidr=config.network.subnets.pods if vcn_native else None,
        stream_pods_subnet_cidr=config.network.subnets.stream_pods if vcn_native else None,
    ),
)

cluster = OkeCluster(
    name,
    OkeClusterArgs(
        compartment_id=config.compartment_id,
        vcn_id=network.vcn_id,
        kubernetes_version=config.cluster.kubernetes_version,
        endpoint_subnet_id=network.subnet_ids["api"],
        endpoint_nsg_ids=[network.nsg_ids["api"]],
        endpoint_public=config.cluster.endpoint.public,
        load_balancer_subnet_id=network.subnet_ids["lb"],
        load_balancer_backend_nsg_ids=[network.nsg_ids["workers"]],
        cluster_type=config.cluster.type,
        cni=config.cluster.cni,
        pods_cidr=config.cluster.pods_cidr,
        services_cidr=config.cluster.services_cidr,
    ),
)

# Where each pool and its pods live, and what keeps other workloads off it.
roles = {
    "default": ("workers", "pods", {}, ()),
    "turn": ("turn", "pods", dict([TURN_NODE_LABEL]), (TURN_TAINT,)),
    "gpu": ("workers", "streams", dict([GPU_NODE_LABEL]), (GPU_TAINT,)),
}
pools = {}
for pool, spec in config.node_pools.items():
    subnet, pod_subnet, labels, taints = roles[pool]
    pools[pool] = NodePool(
        pool,
        NodePoolArgs(
            cluster_id=cluster.cluster_id,
            compartment_id=config.compartment_id,
            kubernetes_version=config.cluster.kubernetes_version,
            subnet_id=network.subnet_ids[subnet],
            nsg_ids=[network.nsg_ids[subnet]],
            availability_domains=placements[pool],
            fault_domains=spec.fault_domains,
            shape=spec.shape,
            ocpus=spec.ocpus,
            memory_gbs=spec.memory_gbs,
            size=spec.size,
            min_size=spec.min_size,
            max_size=spec.max_size,
            boot_volume_gbs=spec.boot_volume_gbs,
            image_id=spec.image_id,
            labels=labels,
            taints=taints,
            cni=config.cluster.cni,
            pod_subnet_id=network.subnet_ids[pod_subnet] if vcn_native else None,
            pod_nsg_ids=[network.nsg_ids[pod_subnet]] if vcn_native else (),
        ),
    )

# Cluster add-ons, through the cluster's Kubernetes provider. Their Deployments run on the default pool,
# so they wait for it; the GPU DaemonSets follow GPU nodes whenever those join.
addons = config.addons
in_cluster = pulumi.ResourceOptions(providers=[cluster.provider])
system_nodes = [pools["default"]]
ingress_controller: list[pulumi.Resource] = []
gpu_plugin: list[pulumi.Resource] = []

# Node capacity: OKE's Cluster Autoscaler add-on resizes every autoscaled pool, running on the default pool.
autoscaled_pools = [p.autoscaler_nodes for p in pools.values() if p.autoscaler_nodes]
if autoscaled_pools and addons.cluster_autoscaler.enabled:
    ClusterAutoscaler(
        "cluster-autoscaler",
        ClusterAutoscalerArgs(
            cluster_id=cluster.cluster_id,
            compartment_id=config.compartment_id,
            node_groups=autoscaled_pools,
            policy_name=f"{name}-cluster-autoscaler",
            depends_on=system_nodes,
            **addons.cluster_autoscaler.settings(),
        ),
    )

if addons.ingress_nginx.enabled:
    ingress = IngressController(
        "ingress-nginx",
        IngressControllerArgs(
            load_balancer_nsg_id=network.nsg_ids["lb"],
            load_balancer=addons.ingress_nginx.load_balancer,
            min_bandwidth_mbps=addons.ingress_nginx.min_bandwidth_mbps,
            max_bandwidth_mbps=addons.ingress_nginx.max_bandwidth_mbps,
            replicas=addons.ingress_nginx.replicas,
            depends_on=system_nodes,
            **addons.release_args("ingressNginx"),
        ),
        opts=in_cluster,
    )
    ingress_controller.append(ingress)
    export("ingressClass", ingress.ingress_class)
if addons.cert_manager.enabled:
    certificates = CertManager(
        "cert-manager",
        CertManagerArgs(email=addons.cert_manager.email, depends_on=system_nodes, **addons.release_args("certManager")),
        opts=in_cluster,
    )
    export("clusterIssuers", certificates.issuers)
if addons.metrics_server.enabled:
    MetricsServer(
        "metrics-server",
        MetricsServerArgs(depends_on=system_nodes, **addons.release_args("metricsServer")),
        opts=in_cluster,
    )
if addons.monitoring.enabled:
    monitoring = Monitoring(
        "monitoring",
        MonitoringArgs(
            retention=addons.monitoring.retention,
            storage_gbs=addons.monitoring.storage_gbs,
            alerts_namespace=config.streaming.namespace if config.streaming.enabled else None,
            alert_thresholds=addons.monitoring.alerts.thresholds(),
            alert_receiver=receiver.receiver() if (receiver := addons.monitoring.alert_receiver) else None,
            depends_on=system_nodes,
            **addons.release_args("monitoring"),
        ),
        opts=in_cluster,
    )
    export("prometheusUrl", f"{monitoring.prometheus_url}:{monitoring.prometheus_port}")
    export("grafanaAdminPassword", monitoring.grafana_admin_password)
    if addons.dcgm_exporter.enabled:
        DcgmExporter(
            "dcgm-exporter",
            DcgmExporterArgs(depends_on=[monitoring.release], **addons.release_args("dcgmExporter")),
            opts=in_cluster,
        )
    if addons.prometheus_adapter.enabled:
        CustomMetricsAdapter(
            "prometheus-adapter",
            CustomMetricsAdapterArgs(
                prometheus_url=monitoring.prometheus_url,
                prometheus_port=monitoring.prometheus_port,
                depends_on=system_nodes,
                **addons.release_args("prometheusAdapter"),
            ),
            opts=in_cluster,
        )
if addons.gpu_plugin.enabled:
    plugin = GpuDevicePlugin(
        "gpu-device-plugin",
        GpuDevicePluginArgs(
            cluster_id=cluster.cluster_id,
            owner=addons.gpu_plugin.owner,
            streams_per_gpu=addons.gpu_plugin.streams_per_gpu,
            addon_version=addons.gpu_plugin.addon_version,
            **addons.release_args("gpuPlugin"),
        ),
        opts=in_cluster,
    )
    gpu_plugin.append(plugin)
    export("gpuResource", plugin.gpu_resource)

# The streaming workload. The relay may reach only what media must reach: the stream pods' addresses.
streaming = config.streaming
if streaming.enabled:
    workload = PixelStreaming(
        "pixel-streaming",
        PixelStreamingArgs(
            namespace=streaming.namespace,
            images=streaming.images,
            image_pull_secrets=streaming.image_pull_secrets,
            turn=streaming.turn.server_settings(config.network.relay_ports.bounds, config.media_path()),
            credential_ttl_seconds=streaming.turn.credential_ttl_seconds,
            credentials_per_minute=streaming.turn.credentials_per_minute,
            streamer=streaming.streamer.settings(),
            autoscaling=streaming.autoscaling.settings(),
            warm_streams=streaming.capacity.warm_streams,
            pre_pull=streaming.capacity.pre_pull,
            host=streaming.ingress.host,
            path_prefix=streaming.ingress.path_prefix,
            cluster_issuer=streaming.ingress.issuer if addons.cert_manager.enabled else None,
            pod_proxy_prefix=streaming.pod_proxy.path_prefix if streaming.pod_proxy.enabled else None,
            system_nodes=system_nodes,
            turn_nodes=[pools["turn"]],
            gpu_nodes=[pools["gpu"], *gpu_plugin],
            ingress_controller=ingress_controller,
        ),
        opts=in_cluster,
    )
    export("url", workload.url)
    export("streamingNamespace", workload.namespace)
    export("images", workload.images)
    if workload.pod_proxy_password is not None:
        export("podProxyUsername", workload.pod_proxy_username)
        export("podProxyPassword", workload.pod_proxy_password)

export("vcnId", network.vcn_id)
export("subnetIds", network.subnet_ids)
export("nsgIds", network.nsg_ids)
export("relayPorts", {"min": config.network.relay_ports.min, "max": config.network.relay_ports.max})
export("clusterId", cluster.cluster_id)
export("kubernetesVersion", config.cluster.kubernetes_version)
export("kubeconfig", cluster.kubeconfig)
export("nodePoolIds", {pool: p.node_pool_id for pool, p in pools.items()})
export("nodeImages", {pool: p.image_name for pool, p in pools.items()})
export("autoscalerNodes", {pool: p.autoscaler_nodes for pool, p in pools.items() if p.autoscaler_nodes})
