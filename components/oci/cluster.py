"""OkeCluster: the OKE control plane, its kubeconfig and a Kubernetes provider built from it."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import pulumi
import pulumi_kubernetes as k8s
import pulumi_oci as oci
import yaml

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
    private_endpoint: pulumi.Output[str]
    """The API's private `address:port`, inside the VCN."""
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
        # This run reaches the API through a proxy (a bastion session's SOCKS5 port) when one is set; the stack's
        # kubeconfig output stays as OKE gives it.
        proxy = kubernetes_proxy()
        through = self.kubeconfig.apply(lambda text: with_proxy(text, proxy)) if proxy else self.kubeconfig
        # The cluster's OCID, not the kubeconfig, says which cluster this is: a kubeconfig that changes (a proxy one
        # run has and the next has not, a token format) updates the provider instead of replacing it and, with it,
        # every Kubernetes resource (pulumi-kubernetes' clusterIdentifier).
        self.provider = k8s.Provider(f"{name}-k8s", kubeconfig=through, cluster_identifier=cluster.id, opts=child)
        self.private_endpoint = cluster.endpoints.apply(lambda found: found[0].private_endpoint if found else "")
        self.cluster_id = cluster.id
        self.kubernetes_version = args.kubernetes_version
        self.cni = args.cni
        self.register_outputs({"cluster_id": self.cluster_id, "kubeconfig": self.kubeconfig})


KUBERNETES_PROXY_ENV = "PIXELSTREAM_KUBERNETES_PROXY"
_PROXY = re.compile(r"^(socks5|http|https)://[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")


def kubernetes_proxy() -> str | None:
    """The proxy this run reaches the API through (PIXELSTREAM_KUBERNETES_PROXY, which pixelstream.tools.bastion
    sets to its session's SOCKS5 port), or None."""
    proxy = os.environ.get(KUBERNETES_PROXY_ENV) or None
    if proxy is not None and not _PROXY.match(proxy):
        raise ValueError(f"{KUBERNETES_PROXY_ENV}: {proxy!r} is not a proxy URL such as socks5://127.0.0.1:1080")
    return proxy


def with_proxy(kubeconfig: str, proxy: str) -> str:
    """The kubeconfig with `proxy-url` on each of its clusters: client-go then reaches the API through it (a
    kubeconfig cluster's proxy-url, socks5 or http(s); Kubernetes "Configure Access to Multiple Clusters")."""
    document = yaml.safe_load(kubeconfig)
    for entry in document.get("clusters", []):
        entry["cluster"]["proxy-url"] = proxy
    return yaml.safe_dump(document, sort_keys=False)
