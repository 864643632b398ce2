"""OkeCluster: the OKE control plane, its kubeconfig and a Kubernetes provider built from it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import pulumi
import pulumi_kubernetes as k8s
import pulumi_oci as oci

from ..constants import DEFAULT_PODS_CIDR, DEFAULT_SERVICES_CIDR

# Kubernetes versions OKE offers (newest few), from Oracle's "Cluster Add-on Supported Versions", November 2026.
KUBERNETES_VERSIONS = ("v1.31.10", "v1.32.10", "v1.33.1", "v1.34.1", "v1.34.2")

ClusterType = Literal["ENHANCED", "BASIC"]
Cni = Literal["flannel", "vcnNative"]
CNI_TYPES: dict[str, str] = {"flannel": "FLANNEL_OVERLAY", "vcnNative": "OCI_VCN_IP_NATIVE"}


@dataclass
class OkeClusterArgs:
    compartment_id: pulumi.Input[str]
    vcn_id: pulumi.Input[str]
    kubernetes_version: str
    """OKE version such as `v1.34.2`."""
    endpoint_subnet_id: pulumi.Input[str]
    load_balancer_subnet_id: pulumi.Input[str]
    """Subnet where Services of type LoadBalancer get their load balancers."""
    endpoint_nsg_ids: Sequence[pulumi.Input[str]] = ()
    load_balancer_backend_nsg_ids: Sequence[pulumi.Input[str]] = ()
    """NSGs of the nodes behind service load balancers, so OKE can manage their rules."""
    endpoint_public: bool = False
    """Give the API endpoint a public IP; who may reach it is decided by the endpoint NSG."""
    cluster_type: ClusterType = "ENHANCED"
    cni: Cni = "flannel"
    pods_cidr: str = DEFAULT_PODS_CIDR
    """Pod overlay range (flannel only; with VCN-native networking pods take VCN addresses)."""
    services_cidr: str = DEFAULT_SERVICES_CIDR
    freeform_tags: dict[str, str] = field(default_factory=dict)


class OkeCluster(pulumi.ComponentResource):
    """An OKE cluster.

    Outputs: `cluster_id`; `kubeconfig`, a secret; `provider`, a `pulumi_kubernetes.Provider` for the
    in-cluster components; `kubernetes_version`; `cni`.
    """

    cluster_id: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    provider: k8s.Provider
    kubernetes_version: str
    cni: Cni

    def __init__(self, name: str, args: OkeClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("pixelstream:index:OkeCluster", name, None, opts)
        if args.cni not in CNI_TYPES:
            raise ValueError(f"cni {args.cni!r} is not one of {', '.join(CNI_TYPES)}")
        child = pulumi.ResourceOptions(parent=self)
        cluster = oci.containerengine.Cluster(
            name,
            name=name,
            compartment_id=args.compartment_id,
            vcn_id=args.vcn_id,
            kubernetes_version=args.kubernetes_version,
            type=f"{args.cluster_type}_CLUSTER",
            cluster_pod_network_options=[
                oci.containerengine.ClusterClusterPodNetworkOptionArgs(cni_type=CNI_TYPES[args.cni])
            ],
            endpoint_config=oci.containerengine.ClusterEndpointConfigArgs(
                subnet_id=args.endpoint_subnet_id,
                is_public_ip_enabled=args.endpoint_public,
                nsg_ids=list(args.endpoint_nsg_ids),
            ),
            options=oci.containerengine.ClusterOptionsArgs(
                service_lb_subnet_ids=[args.load_balancer_subnet_id],
                kubernetes_network_config=oci.containerengine.ClusterOptionsKubernetesNetworkConfigArgs(
                    pods_cidr=args.pods_cidr if args.cni == "flannel" else None,
                    services_cidr=args.services_cidr,
                ),
                service_lb_config=oci.containerengine.ClusterOptionsServiceLbConfigArgs(
                    backend_nsg_ids=list(args.load_balancer_backend_nsg_ids)
                ),
                add_ons=oci.containerengine.ClusterOptionsAddOnsArgs(
                    is_kubernetes_dashboard_enabled=False, is_tiller_enabled=False
                ),
            ),
            freeform_tags=args.freeform_tags,
            opts=child,
        )
        kubeconfig = oci.containerengine.get_cluster_kube_config_output(
            cluster_id=cluster.id,
            endpoint="PUBLIC_ENDPOINT" if args.endpoint_public else "PRIVATE_ENDPOINT",
            token_version="2.0.0",
        ).content
        self.kubeconfig = pulumi.Output.secret(kubeconfig)
        self.provider = k8s.Provider(f"{name}-k8s", kubeconfig=self.kubeconfig, opts=child)
        self.cluster_id = cluster.id
        self.kubernetes_version = args.kubernetes_version
        self.cni = args.cni
        self.register_outputs({"cluster_id": self.cluster_id, "kubeconfig": self.kubeconfig})
