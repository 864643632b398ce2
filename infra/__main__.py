"""The platform stack: validated config in, components composed, outputs exported."""

import pulumi
import pulumi_oci as oci
from pixelstream import (
    GPU_NODE_LABEL,
    GPU_TAINT,
    TURN_NODE_LABEL,
    TURN_TAINT,
    Network,
    NetworkArgs,
    NodePool,
    NodePoolArgs,
    OkeCluster,
    OkeClusterArgs,
    load_stack_config,
)

config = load_stack_config()
region_domains = [
    ad.name for ad in oci.identity.get_availability_domains(compartment_id=config.compartment_id).availability_domains
]
placements = {pool: config.availability_domain_names(pool, region_domains) for pool, _ in config.node_pools.items()}
name = config.cluster.name or f"pixelstream-{pulumi.get_stack()}"
vcn_native = config.cluster.cni == "vcnNative"

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
        pods_on_vcn=vcn_native,
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

# Where each pool lives and what keeps other workloads off it.
roles = {
    "default": ("workers", {}, ()),
    "turn": ("turn", dict([TURN_NODE_LABEL]), (TURN_TAINT,)),
    "gpu": ("workers", dict([GPU_NODE_LABEL]), (GPU_TAINT,)),
}
pools = {}
for pool, spec in config.node_pools.items():
    subnet, labels, taints = roles[pool]
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
            pod_subnet_id=network.subnet_ids["workers"] if vcn_native else None,
            pod_nsg_ids=[network.nsg_ids["workers"]] if vcn_native else (),
        ),
    )

pulumi.export("vcnId", network.vcn_id)
pulumi.export("subnetIds", network.subnet_ids)
pulumi.export("nsgIds", network.nsg_ids)
pulumi.export("relayPorts", {"min": config.network.relay_ports.min, "max": config.network.relay_ports.max})
pulumi.export("clusterId", cluster.cluster_id)
pulumi.export("kubernetesVersion", config.cluster.kubernetes_version)
pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("nodePoolIds", {pool: p.node_pool_id for pool, p in pools.items()})
pulumi.export("nodeImages", {pool: p.image_name for pool, p in pools.items()})
pulumi.export("autoscalerNodes", {pool: p.autoscaler_nodes for pool, p in pools.items() if p.autoscaler_nodes})
