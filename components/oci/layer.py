"""The OCI layer of a stack: its network (and site-to-site VPN), the OKE cluster and the node pools, declared from
the stack config; or, with `cluster.target: existing`, only the way to a cluster the stack did not create."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_oci as oci

from ..constants import (
    AI_ORCHESTRATOR_PORT,
    GPU_NODE_LABEL,
    GPU_TAINT,
    KAFKA_TLS_PORT,
    OKE_STORAGE_CLASS,
    TURN_NODE_LABEL,
    TURN_TAINT,
)
from .cluster import OkeCluster, OkeClusterArgs
from .existing_cluster import ExistingCluster, ExistingClusterArgs
from .network import Network, NetworkArgs
from .node_pool import NodeCycling, NodeEviction, NodePool, NodePoolArgs
from .security import PODS, STREAM_PODS, TURN, WORKERS, GpuPodFlows, OnPremisesFlows
from .vpn import SiteToSiteVpn, SiteToSiteVpnArgs

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
    """What the layers above build on: the cluster's Kubernetes provider, and on OKE the network and pools."""

    network: Network | None
    cluster: OkeCluster | ExistingCluster
    pools: dict[str, NodePool]
    vpn: SiteToSiteVpn | None = None
    storage_class: str | None = OKE_STORAGE_CLASS
    bastion: oci.bastion.Bastion | None = None
    """The storage class of persistent volumes: OKE's block volumes, or what the existing cluster names."""

    @property
    def provider(self) -> k8s.Provider:
        return self.cluster.provider

    def nodes(self, pool: str) -> list[pulumi.Resource]:
        """What a pod of the pool's role waits for: the stack's own pool (none on an existing cluster)."""
        return [self.pools[pool]] if pool in self.pools else []

    def outputs(self, config: StackConfig) -> dict[str, Any]:
        relay = config.network.relay_ports
        if self.network is None or not isinstance(self.cluster, OkeCluster):
            return {
                "clusterTarget": "existing",
                "kubernetesVersion": config.cluster.kubernetes_version,
                "relayPorts": {"min": relay.min, "max": relay.max},
            }
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
            **self._vpn_outputs(),
            **self._bastion_outputs(),
        }

    def _bastion_outputs(self) -> dict[str, Any]:
        """What `python -m pixelstream.tools.bastion` opens a session with."""
        if self.bastion is None or not isinstance(self.cluster, OkeCluster):
            return {}
        return {"bastionId": self.bastion.id, "apiPrivateEndpoint": self.cluster.private_endpoint}

    def _vpn_outputs(self) -> dict[str, Any]:
        if self.vpn is None:
            return {}
        return {
            "vpnTunnelIps": self.vpn.tunnel_ips,
            "vpnDeviceConfig": self.vpn.device_config,
            "vpnSharedSecrets": self.vpn.shared_secrets,
        }


# Addresses for documentation (RFC 5737): a stack file may ship one as the bastion's client, never reachable.
DOCUMENTATION_NETWORKS = tuple(ipaddress.IPv4Network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"))


def target_warnings(config: StackConfig) -> list[str]:
    """On OKE: a bastion nobody can use yet. On an existing cluster: what the stack leaves out or does differently
    than on OKE. For every plan to say."""
    if config.cluster.oke:
        return [
            f"cluster.endpoint.bastion.clientCidrs: {cidr} is a documentation address, so nobody can open a session "
            'yet: set your own egress address (docs/deploying.md, "The first deploy of a private endpoint")'
            for cidr in config.cluster.endpoint.bastion.client_cidrs
            if any(ipaddress.IPv4Network(cidr).subnet_of(net) for net in DOCUMENTATION_NETWORKS)
        ]
    addons, placement = config.addons, config.cluster.placement()
    off = ["OKE add-ons (ClusterAutoscaler, NvidiaGpuPlugin)", "network security groups"]
    replaced = []
    if addons.ingress_nginx.enabled:
        off.append("OCI load-balancer annotations")
        replaced.append(
            "the cluster's own load-balancer implementation serves the ingress controller's Service, with no PROXY "
            "protocol: the edge's per-client limits and source allow-lists judge the address it hands the controller"
        )
    if addons.gpu_plugin.enabled:
        replaced.append("NVIDIA's device-plugin chart alone advertises GPUs")
    if addons.monitoring.enabled or (config.jobs.enabled and config.jobs.kafka.mode == "strimzi"):
        storage = config.cluster.existing.storage_class
        volumes = f"storage class {storage}" if storage else "the default storage class"
        replaced.append(f"persistent volumes use {volumes} instead of {OKE_STORAGE_CLASS}")
    roles = [("system", placement.system)]
    if config.streaming.enabled:
        roles.append(("TURN", placement.turn))
    roles.append(("GPU", placement.gpu))
    nodes = "; ".join(f"{role} {spec.label_selector() or 'any node'}" for role, spec in roles)
    return [
        "cluster.target existing: no OCI network, cluster or node pools are declared; every in-cluster resource "
        "goes through the kubeconfig's cluster",
        f"cluster.target existing: off: {', '.join(off)}; instead: {'; '.join(replaced) or 'nothing'}",
        f"cluster.target existing: nodes by label: {nodes}",
    ]


def declare_oci(config: StackConfig, name: str, opts: pulumi.ResourceOptions) -> OciLayer:
    if not config.cluster.oke:
        existing = config.cluster.existing
        cluster = ExistingCluster(
            name,
            ExistingClusterArgs(
                kubernetes_version=config.cluster.kubernetes_version,
                kubeconfig=existing.kubeconfig,
                stack_reference=existing.stack_reference,
                stack_output=existing.stack_output,
            ),
            opts=opts,
        )
        return OciLayer(None, cluster, {}, storage_class=existing.storage_class)
    vpn = _vpn(config, name, opts)
    network = _network(config, name, vpn, opts)
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
    bastion = _bastion(config, name, network, opts)
    return OciLayer(network, cluster, _pools(config, network, cluster, opts), vpn, bastion=bastion)


def _bastion(
    config: StackConfig, name: str, network: Network, opts: pulumi.ResourceOptions
) -> oci.bastion.Bastion | None:
    """An OCI bastion for the private API endpoint: SOCKS5 sessions (dns_proxy_status ENABLED: "FQDN and SOCKS5
    support", the Bastion API's CreateBastionDetails) from the listed client networks only, each for at most
    maxSessionTtlSeconds, its private endpoint in a subnet that may reach the API on 6443 and nothing else."""
    bastion = config.cluster.endpoint.bastion
    if not bastion.enabled or network.bastion_subnet_id is None:
        return None
    return oci.bastion.Bastion(
        f"{name}-api",
        name=f"{name}-api",  # ^[a-zA-Z_](-?[a-zA-Z_0-9])*$, unique per region and tenancy
        bastion_type="STANDARD",
        compartment_id=config.compartment_id,
        target_subnet_id=network.bastion_subnet_id,
        client_cidr_block_allow_lists=list(bastion.client_cidrs),
        max_session_ttl_in_seconds=bastion.max_session_ttl_seconds,
        dns_proxy_status="ENABLED",
        opts=opts,
    )


def _vpn(config: StackConfig, name: str, opts: pulumi.ResourceOptions) -> SiteToSiteVpn | None:
    on_premises = config.network.on_premises
    if not on_premises.enabled or on_premises.cpe_ip_address is None:
        return None
    return SiteToSiteVpn(
        f"{name}-vpn",
        SiteToSiteVpnArgs(
            compartment_id=config.compartment_id,
            on_premises_cidrs=on_premises.cidrs,
            cpe_ip_address=on_premises.cpe_ip_address,
            vcn_cidr=config.network.vcn_cidr,
            routing=on_premises.routing,
            customer_bgp_asn=on_premises.customer_bgp_asn,
            bgp_tunnels=[(t.customer_interface_ip, t.oracle_interface_ip) for t in on_premises.bgp_tunnels],
            shared_secrets=on_premises.shared_secrets,
            ike_version=on_premises.ike_version,
            object_storage=on_premises.object_storage,
        ),
        opts=opts,
    )


def _on_premises_flows(config: StackConfig) -> OnPremisesFlows | None:
    on_premises = config.network.on_premises
    if not on_premises.enabled:
        return None
    return OnPremisesFlows(
        cidrs=tuple(on_premises.cidrs),
        kubernetes_api=on_premises.kubernetes_api,
        services=tuple(
            (s.name, s.protocol, (s.port, s.end_port if s.end_port is not None else s.port))
            for s in on_premises.services
        ),
    )


def _network(config: StackConfig, name: str, vpn: SiteToSiteVpn | None, opts: pulumi.ResourceOptions) -> Network:
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
            on_premises=_on_premises_flows(config),
            turn_tls=config.streaming.enabled and config.streaming.turn.tls.host is not None,
            drg_id=vpn.drg_id if vpn else None,
            on_premises_object_storage=config.network.on_premises.object_storage,
            gpu_flows=_gpu_pod_flows(config),
            viewer_cidrs=config.simulation.streams.viewer_cidrs if config.simulation.enabled else (),
            allow_world_viewers=config.simulation.streams.allow_world_access,
            bastion_subnet_cidr=subnets.bastion if endpoint.bastion.enabled else None,
        ),
        opts=opts,
    )


def _gpu_pod_flows(config: StackConfig) -> GpuPodFlows:
    """The engines the stack's GPU workloads use on the system pods: the AI orchestrator the workers register
    with, the Kafka brokers the jobs read, and the workload identity the jobs sign in to OCI with."""
    ports = []
    if config.ai_workers.enabled and config.ai_workers.orchestrator.mode != "external":
        ports.append(("the AI orchestrator", AI_ORCHESTRATOR_PORT))
    if config.jobs.enabled and config.jobs.kafka.mode == "strimzi":
        ports.append(("Kafka's TLS listener", KAFKA_TLS_PORT))
    identity = config.jobs.enabled and config.jobs.results_access(config) == "workloadIdentity"
    return GpuPodFlows(system_ports=tuple(ports), workload_identity=identity)


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
                cycling=NodeCycling(spec.cycling.max_surge, spec.cycling.max_unavailable),
                eviction=NodeEviction(spec.eviction.grace_minutes, spec.eviction.force_delete_after_grace),
            ),
            opts=opts,
        )
    return pools
