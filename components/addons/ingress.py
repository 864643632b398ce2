"""IngressController: ingress-nginx behind an OCI load balancer that only the platform's NSG rules open."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pulumi

from ..constants import INGRESS_CLASS
from ..oci.load_balancers import network_load_balancer
from .charts import CHARTS, Chart, ReleaseArgs, namespace, release

LoadBalancerKind = Literal["flexible", "network"]
# Any default-pool node forwards to a controller pod: the load balancer's health checks pass on every backend.
EXTERNAL_TRAFFIC_POLICY = "Cluster"


@dataclass(kw_only=True)
class IngressControllerArgs(ReleaseArgs):
    load_balancer_nsg_id: pulumi.Input[str] | None
    """NSG of the OCI load balancer: it alone opens the listeners (80/443) to the players' networks. None off
    OCI: the Service gets no OCI annotations, and the cluster's own load-balancer implementation serves it."""
    load_balancer: LoadBalancerKind = "flexible"
    """`flexible`: OCI flexible load balancer; `network`: OCI network load balancer."""
    min_bandwidth_mbps: int = 10
    max_bandwidth_mbps: int = 100
    """Flexible load balancer bandwidth range."""
    replicas: int = 2
    ssl_passthrough: bool = False
    """Pass TLS through by server name (for TURN over TLS on 443): every TLS connection then goes through the
    controller's own proxy first (internal/ingress/controller/nginx.go `setupSSLProxy`, v1.15.1), which reads the
    PROXY header and hands nginx the client's address in one of its own."""
    chart: Chart = CHARTS["ingress-nginx"]


def load_balancer_annotations(args: IngressControllerArgs) -> dict[str, pulumi.Input[str]]:
    """OCI cloud-controller annotations: the platform's NSG instead of security-list edits, and only the
    default pool as backends (TURN and GPU nodes never serve ingress traffic).

    Each load balancer kind reads its node filter from its own annotation prefix (OCI CCM v1.34.2,
    `getNodeFilter`). A network load balancer with `externalTrafficPolicy: Cluster` does not preserve the
    client's address, and the CCM rejects the Service if `is-preserve-source` is set at all
    (`getPreserveSource`): backends see the load balancer's address, which the workers' NSG rules admit.

    The client's address reaches ingress-nginx in a PROXY protocol v2 header instead, which both kinds prepend
    (load_balancer_spec.go: `oci-load-balancer-connection-proxy-protocol-version` for the flexible load
    balancer's listeners, `is-ppv2-enabled` for the network load balancer's), so the edge's limits count per
    player. `ingress-ip-mode: proxy` sets the Service's `status.loadBalancer.ingress[].ipMode` to Proxy
    (`getIngressIpMode`): kube-proxy then sends in-cluster traffic for the load balancer's address through the
    load balancer too (cert-manager's self-check of an HTTP-01 challenge), where it gets its header.
    """
    if args.load_balancer_nsg_id is None:
        return {}
    node_filter = args.nodes.label_selector()
    common = {
        "oci.oraclecloud.com/security-rule-management-mode": "None",
        "oci.oraclecloud.com/ingress-ip-mode": "proxy",
    }
    if args.load_balancer == "network":
        return {
            **network_load_balancer(args.load_balancer_nsg_id, node_filter),
            "oci.oraclecloud.com/ingress-ip-mode": "proxy",
            "oci-network-load-balancer.oraclecloud.com/is-ppv2-enabled": "true",
        }
    return {
        **common,
        "oci.oraclecloud.com/load-balancer-type": "lb",
        "oci.oraclecloud.com/node-label-selector": node_filter,
        "oci.oraclecloud.com/oci-network-security-groups": args.load_balancer_nsg_id,
        "service.beta.kubernetes.io/oci-load-balancer-shape": "flexible",
        "service.beta.kubernetes.io/oci-load-balancer-shape-flex-min": str(args.min_bandwidth_mbps),
        "service.beta.kubernetes.io/oci-load-balancer-shape-flex-max": str(args.max_bandwidth_mbps),
        "service.beta.kubernetes.io/oci-load-balancer-connection-proxy-protocol-version": "2",
    }


def controller_config(proxy_protocol: bool) -> dict[str, str]:
    """ingress-nginx's ConfigMap (internal/ingress/controller/config/config.go at controller v1.15.1): the client's
    address from the load balancer's PROXY header (never from X-Forwarded-For, which a client can set:
    `use-forwarded-headers` stays off), and 429 for what the edge's limits refuse."""
    config = {"use-forwarded-headers": "false", "limit-req-status-code": "429", "limit-conn-status-code": "429"}
    if proxy_protocol:
        config["use-proxy-protocol"] = "true"
    return config


class IngressController(pulumi.ComponentResource):
    """ingress-nginx with the `nginx` IngressClass. Outputs: `ingress_class`, `namespace`."""

    ingress_class: str
    namespace: pulumi.Output[str]

    def __init__(self, name: str, args: IngressControllerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("pixelstream:index:IngressController", name, None, opts)
        ns = namespace("ingress-nginx", self)
        values = {
            "controller": {
                "replicaCount": args.replicas,
                "ingressClassResource": {"name": INGRESS_CLASS, "enabled": True, "default": False},
                "ingressClass": INGRESS_CLASS,
                "nodeSelector": args.nodes.node_selector(),
                # The Jobs that create and patch the admission webhook's certificate, too.
                "admissionWebhooks": {"patch": {"nodeSelector": args.nodes.node_selector()}},
                "service": {
                    "annotations": load_balancer_annotations(args),
                    "externalTrafficPolicy": EXTERNAL_TRAFFIC_POLICY,
                },
                # The OCI load balancers send the PROXY header; another cluster's may not (then the edge's
                # limits count whatever address reaches the controller).
                "config": controller_config(proxy_protocol=args.load_balancer_nsg_id is not None),
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
                **({"extraArgs": {"enable-ssl-passthrough": "true"}} if args.ssl_passthrough else {}),
            }
        }
        release(self, args, ns, values)
        self.ingress_class = INGRESS_CLASS
        self.namespace = ns.metadata["name"]
        self.register_outputs({"ingress_class": self.ingress_class, "namespace": self.namespace})
