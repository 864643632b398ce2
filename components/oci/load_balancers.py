"""What OCI's cloud controller reads on a Service of type LoadBalancer (oracle/oci-cloud-controller-manager v1.34.2,
pkg/cloudprovider/providers/oci/load_balancer_spec.go): the annotations every network load balancer of the platform
shares."""

from __future__ import annotations

import pulumi

NLB_PREFIX = "oci-network-load-balancer.oraclecloud.com/"


def network_load_balancer(nsg_id: pulumi.Input[str], node_filter: str) -> dict[str, pulumi.Input[str]]:
    """An OCI network load balancer in the platform's load-balancer NSG (whose rules alone open its listeners: the
    controller writes no security rule, `security-rule-management-mode: None`), with only the nodes `node_filter`
    selects as backends (each kind reads its own prefix: `getNodeFilter`)."""
    return {
        "oci.oraclecloud.com/load-balancer-type": "nlb",
        "oci.oraclecloud.com/security-rule-management-mode": "None",
        f"{NLB_PREFIX}node-label-selector": node_filter,
        f"{NLB_PREFIX}oci-network-security-groups": nsg_id,
    }
