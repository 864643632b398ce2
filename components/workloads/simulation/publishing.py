"""How the simulation instances' streams reach viewers outside the cluster: a load balancer per instance.

Isaac Sim's viewer dials the address the instance advertises (ISAACSIM_HOST) for both signalling (TCP 49100) and
media (UDP 47998), and takes no TURN server. So each instance gets a network load balancer of its own, listening
on exactly those ports, at an address known before the instance starts: on OKE a reserved public IP the stack
creates (the cloud controller takes it from `spec.loadBalancerIP`, load_balancer.go at v1.34.2), on an existing
cluster the address its own load-balancer implementation gives (listed in the stack). A load balancer per instance,
not one shared with a port per instance: a Service forwards its ports to every pod it selects, so ports per
instance would need a Service per instance anyway, and the cloud controller makes one load balancer per Service;
OCI's network load balancers cost nothing of their own.

The load balancer does not preserve the viewer's address (`is-preserve-source: false`): the instance sees the load
balancer's, which the stack's NSG rules admit, instead of viewers' addresses on every GPU node's NodePorts (the
controller writes no UDP rule: its security rules are TCP only).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pulumi
import pulumi_oci as oci

from ...oci.load_balancers import NLB_PREFIX, network_load_balancer
from ...oci.security import LOAD_BALANCERS
from .fleet import StreamPublishing, instance_name

if TYPE_CHECKING:
    from ...config import StackConfig
    from ...oci.layer import OciLayer


def stream_publishing(config: StackConfig, infra: OciLayer, opts: pulumi.ResourceOptions) -> StreamPublishing | None:
    """None when the stack names no viewer networks: the streams stay inside the cluster."""
    streams = config.simulation.streams
    if not streams.viewer_cidrs:
        return None
    if infra.network is None:
        return StreamPublishing(hosts=list(streams.addresses), viewer_cidrs=list(streams.viewer_cidrs))
    hosts = [
        oci.core.PublicIp(
            f"{instance_name(index)}-stream",
            compartment_id=config.compartment_id,
            lifetime="RESERVED",
            display_name=f"pixelstream-{config.simulation.namespace}-{instance_name(index)}-stream",
            opts=opts,
        ).ip_address
        for index in range(config.simulation.instances)
    ]
    annotations = {
        **network_load_balancer(infra.network.nsg_ids[LOAD_BALANCERS], config.cluster.placement().gpu.label_selector()),
        f"{NLB_PREFIX}is-preserve-source": "false",
    }
    return StreamPublishing(hosts=hosts, viewer_cidrs=list(streams.viewer_cidrs), annotations=annotations)
