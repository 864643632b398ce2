"""The OCI layer of a stack: its network, the OKE cluster and the node pools, declared from the stack config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pulumi
import pulumi_oci as oci

from ..constants import GPU_NODE_LABEL, GPU_TAINT, TURN_NODE_LABEL, TURN_TAINT
from .cluster import OkeCluster, OkeClusterArgs
from .network import Network, NetworkArgs
from .node_pool import NodePool, NodePoolArgs
from .security import PODS, STREAM_PODS, TURN, WORKERS

if TYPE_CHECKING:
    from ..config import StackConfig

# Where each pool's nodes and pods live, and what keeps other workloads off it.
POOL_ROLES: dict[str, tuple[str, str, dict[str, str], tuple]] = {
    "default": (WORKERS, PODS, {}, ()),
    "turn": (TURN, PODS, dict([TURN_NODE_LABEL]), (TURN_TAINT,)),
    "gpu": (WORKERS, STREAM_PODS, dict([GPU_NODE_LABEL]), (GPU_TAINT,)),
}


@dataclass
class OciLayer:
    network: Network
    cluster: OkeCluster
    pools: dict[str, NodePool]

    def outputs(self, config: StackConfig) -> dict[str, Any]:
        relay = config.network.relay_ports
        return {
            "vcnId": self.network.vcn_id,
            "subnetIds": self.network.subnet_ids,
            "nsgIds": self.network.nsg_ids,
            "relayPorts": {"min": relay.min, "max": relay.max},
            "clusterId": self.cluster.cluster_id,
            "kubernetesVersion": config.cluster.kubernetes_version,
            "kubeconfig": self.cluster.kubeconfig,
            "nodePoolIds": {pool: p.node_pool_id for pool, p in self.pools.items()},
            "nodeImages": {pool: p.image_name for pool, p in self.pools.items()},
            "autoscalerNodes": {pool: p.autoscaler_nodes for pool, p in self.pools.items() if p.autoscaler_nodes},
        }


def declare_oci(config: StackConfig, name: str, opts: pulumi.ResourceOptions) -> OciLayer:
    network = _network(config, name, opts)
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
            load_balancer_backend_nsg_ids=[network.nsg_ids[WORKERS]],
            cluster_type=config.cluster.type,
            cni=config.cluster.cni,
            pods_cidr=config.cluster.pods_cidr,
            services_cidr=config.cluster.services_cidr,
        ),
        opts=opts,
    )
    return OciLayer(network, cluster, _pools(config, network, cluster, opts))


def _network(config: StackConfig, name: str, opts: pulumi.ResourceOptions) -> Network:
    subnets, endpoint = config.network.subnets, config.cluster.endpoint
    vcn_native = config.vcn_native_pods
    return Network(
        name,
        NetworkArgs(
            compartment_id=config.compartment_id,
            vcn_cidr=config.network.vcn_cidr,
            api_endpoint_subnet_cidr=subnets.api_endpoint,
            workers_subnet_cidr=subnets.workers,
            turn_subnet_cidr=subnets.turn,
            load_balancer_subnet_cidr=subnets.load_balancers,
            api_endpoint_public=endpoint.public,
            api_allowed_cidrs=endpoint.allowed_cidrs,
            allow_world_api_access=endpoint.allow_world_access,
            client_cidrs=config.network.client_cidrs,
            relay_ports=config.network.relay_ports.bounds,
            pods_subnet_cidr=subnets.pods if vcn_native else None,
            stream_pods_subnet_cidr=subnets.stream_pods if vcn_native else None,
        ),
        opts=opts,
    )


def _pools(
    config: StackConfig, network: Network, cluster: OkeCluster, opts: pulumi.ResourceOptions
) -> dict[str, NodePool]:
    domains = oci.identity.get_availability_domains(compartment_id=config.compartment_id).availability_domains
    region_domains = [ad.name for ad in domains]
    vcn_native = config.vcn_native_pods
    pools = {}
    for pool, spec in config.node_pools.items():
        subnet, pod_subnet, labels, taints = POOL_ROLES[pool]
        pools[pool] = NodePool(
            pool,
            NodePoolArgs(
                cluster_id=cluster.cluster_id,
                compartment_id=config.compartment_id,
                kubernetes_version=config.cluster.kubernetes_version,
                subnet_id=network.subnet_ids[subnet],
                nsg_ids=[network.nsg_ids[subnet]],
                availability_domains=config.availability_domain_names(pool, region_domains),
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
            opts=opts,
        )
    return pools
