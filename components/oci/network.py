"""Network: the VCN, its gateways, route tables, subnets and network security groups."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_oci as oci

from ..constants import (
    DEFAULT_API_ENDPOINT_SUBNET,
    DEFAULT_LOAD_BALANCER_SUBNET,
    DEFAULT_PODS_SUBNET,
    DEFAULT_RELAY_PORT_RANGE,
    DEFAULT_STREAM_PODS_SUBNET,
    DEFAULT_TURN_SUBNET,
    DEFAULT_VCN_CIDR,
    DEFAULT_WORKERS_SUBNET,
    KUBE_API_PORT,
)
from .security import (
    API,
    LOAD_BALANCERS,
    MAX_RULES_PER_NSG,
    ORACLE_SERVICES,
    PODS,
    PROTOCOL_NUMBERS,
    STREAM_PODS,
    TURN,
    WORKERS,
    WORLD,
    GpuPodFlows,
    OnPremisesFlows,
    SecurityRule,
    check_world_ingress,
    platform_security_rules,
    rule_counts,
)

ORACLE_SERVICES_NAME = "All .* Services In Oracle Services Network"


@dataclass
class NetworkArgs:
    compartment_id: pulumi.Input[str]
    """Compartment that holds every network resource."""
    vcn_cidr: str = DEFAULT_VCN_CIDR
    api_endpoint_subnet_cidr: str = DEFAULT_API_ENDPOINT_SUBNET
    """Subnet of the Kubernetes API endpoint; public only when `api_endpoint_public`."""
    workers_subnet_cidr: str = DEFAULT_WORKERS_SUBNET
    """Private subnet of the default and GPU nodes (and of pods with VCN-native pod networking)."""
    turn_subnet_cidr: str = DEFAULT_TURN_SUBNET
    """Public regional subnet of the TURN nodes, which need public IPs."""
    load_balancer_subnet_cidr: str = DEFAULT_LOAD_BALANCER_SUBNET
    """Public subnet of the service load balancers."""
    api_endpoint_public: bool = False
    api_allowed_cidrs: Sequence[str] = ()
    """Networks that may reach the Kubernetes API on 6443 (administrators, CI, VPN)."""
    allow_world_api_access: bool = False
    """The only way to let 0.0.0.0/0 reach the Kubernetes API; the guard refuses it otherwise."""
    client_cidrs: Sequence[str] = (WORLD,)
    """Where players connect from: the ingress listeners and TURN accept only these."""
    relay_ports: tuple[int, int] = DEFAULT_RELAY_PORT_RANGE
    """TURN relay port range, opened (UDP) on the TURN nodes."""
    pods_subnet_cidr: str | None = DEFAULT_PODS_SUBNET
    """VCN-native pod networking: subnet of the default and TURN pools' pods. None (with the next) for flannel."""
    stream_pods_subnet_cidr: str | None = DEFAULT_STREAM_PODS_SUBNET
    """VCN-native pod networking: subnet of the GPU pool's pods, the only addresses the TURN relay may reach."""
    dns_label: str = "pixelstream"
    freeform_tags: dict[str, str] = field(default_factory=dict)
    on_premises: OnPremisesFlows | None = None
    """Networks behind a site-to-site VPN, and what may cross to them."""
    turn_tls: bool = False
    """TURN over TLS: the ingress controller (a system pod) reaches coturn's TLS listener on the TURN nodes."""
    drg_id: pulumi.Input[str] | None = None
    """The VPN's dynamic routing gateway (with `on_premises`): attached to the VCN, the route to those networks."""
    on_premises_object_storage: bool = False
    """The on-premises networks reach Oracle services through the service gateway (transit routing)."""
    gpu_flows: GpuPodFlows = field(default_factory=GpuPodFlows)
    """What the GPU pods reach on the system pods and the control plane (VCN-native pods only)."""
    viewer_cidrs: Sequence[str] = ()
    """Who reaches the simulation instances' streams (their network load balancers); none when not published."""
    allow_world_viewers: bool = False
    """The only way to let 0.0.0.0/0 reach the simulation streams; the guard refuses it otherwise."""
    bastion_subnet_cidr: str | None = None
    """The API bastion's subnet; None: no bastion."""

    @property
    def vcn_native_pods(self) -> bool:
        return self.pods_subnet_cidr is not None

    def validate(self) -> None:
        if (self.pods_subnet_cidr is None) != (self.stream_pods_subnet_cidr is None):
            raise ValueError("VCN-native pod networking needs both pods_subnet_cidr and stream_pods_subnet_cidr")
        if (self.on_premises is None) != (self.drg_id is None):
            raise ValueError("on-premises networks need the VPN's DRG (drg_id), and a DRG the networks behind it")


# Subnets by role, so reviews and policies can tell node, pod and stream-pod subnets apart without their IDs.
ROLE_TAG = "pixelstream-role"
SUBNET_ROLES = {
    API: "api-endpoint",
    WORKERS: "nodes",
    TURN: "nodes",
    LOAD_BALANCERS: "load-balancers",
    PODS: "pods",
    STREAM_PODS: "stream-pods",
}
SUBNET_DNS_LABELS = {
    API: "api",
    WORKERS: "workers",
    TURN: "turn",
    LOAD_BALANCERS: "lb",
    PODS: "pods",
    STREAM_PODS: "streams",
}


class Network(pulumi.ComponentResource):
    """The VCN of one platform stack.

    Outputs: `vcn_id`; `subnet_ids` and `nsg_ids` keyed `api`, `workers`, `turn`, `lb` and, with VCN-native
    pods, `pods` and `streams`; `rules`, the security rules as plain data; `cidrs`, the subnet CIDRs by the same keys.
    """

    vcn_id: pulumi.Output[str]
    bastion_subnet_id: pulumi.Output[str] | None
    subnet_ids: dict[str, pulumi.Output[str]]
    nsg_ids: dict[str, pulumi.Output[str]]
    rules: list[SecurityRule]
    cidrs: dict[str, str]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        args.validate()
        self.rules = platform_security_rules(
            api_allowed_cidrs=args.api_allowed_cidrs,
            client_cidrs=args.client_cidrs,
            relay_ports=args.relay_ports,
            vcn_cidr=args.vcn_cidr,
            vcn_native_pods=args.vcn_native_pods,
            on_premises=args.on_premises,
            turn_tls=args.turn_tls,
            gpu_flows=args.gpu_flows,
            viewer_cidrs=args.viewer_cidrs,
            bastion_cidr=args.bastion_subnet_cidr,
        )
        check_world_ingress(
            self.rules,
            relay_ports=args.relay_ports,
            allow_world_api=args.allow_world_api_access,
            allow_world_viewers=args.allow_world_viewers,
        )
        crowded = {nsg: n for nsg, n in rule_counts(self.rules).items() if n > MAX_RULES_PER_NSG}
        if crowded:
            raise ValueError(f"more security rules than OCI allows in one group ({MAX_RULES_PER_NSG}): {crowded}")
        super().__init__("pixelstream:index:Network", name, None, opts)
        self.cidrs = {
            API: args.api_endpoint_subnet_cidr,
            WORKERS: args.workers_subnet_cidr,
            TURN: args.turn_subnet_cidr,
            LOAD_BALANCERS: args.load_balancer_subnet_cidr,
        }
        if args.pods_subnet_cidr is not None and args.stream_pods_subnet_cidr is not None:
            self.cidrs |= {PODS: args.pods_subnet_cidr, STREAM_PODS: args.stream_pods_subnet_cidr}

        child = pulumi.ResourceOptions(parent=self)
        common = {"compartment_id": args.compartment_id, "freeform_tags": args.freeform_tags}
        vcn = oci.core.Vcn(
            f"{name}-vcn",
            cidr_blocks=[args.vcn_cidr],
            dns_label=args.dns_label,
            display_name=f"{name}-vcn",
            **common,
            opts=child,
        )
        common["vcn_id"] = vcn.id
        # The VCN's default security list opens SSH to the world; every subnet uses NSGs instead.
        locked_default = oci.core.DefaultSecurityList(
            f"{name}-default-security-list",
            manage_default_resource_id=vcn.default_security_list_id,
            compartment_id=args.compartment_id,
            display_name=f"{name}-default-locked",
            ingress_security_rules=[],
            egress_security_rules=[],
            opts=child,
        )
        oracle_services = oci.core.get_services_output(
            filters=[oci.core.GetServicesFilterArgs(name="name", values=[ORACLE_SERVICES_NAME], regex=True)]
        ).services[0]
        routes = self._routes(name, common, oracle_services, args)
        public_subnets = {TURN, LOAD_BALANCERS} | ({API} if args.api_endpoint_public else set())
        self.subnet_ids = {}
        for key, cidr in self.cidrs.items():
            public = key in public_subnets
            self.subnet_ids[key] = oci.core.Subnet(
                f"{name}-{key}-subnet",
                display_name=f"{name}-{key}",
                cidr_block=cidr,
                dns_label=SUBNET_DNS_LABELS[key],
                prohibit_public_ip_on_vnic=not public,
                prohibit_internet_ingress=not public,
                route_table_id=routes["public" if public else "private"].id,
                security_list_ids=[locked_default.id],
                compartment_id=args.compartment_id,
                vcn_id=vcn.id,
                freeform_tags={**args.freeform_tags, ROLE_TAG: SUBNET_ROLES[key]},
                opts=child,
            ).id

        self.nsg_ids = {
            key: oci.core.NetworkSecurityGroup(
                f"{name}-{key}-nsg", display_name=f"{name}-{key}", **common, opts=child
            ).id
            for key in self.cidrs
        }
        for rule in self.rules:
            self._declare_rule(name, rule, oracle_services.cidr_block, child)
        self.bastion_subnet_id = (
            self._bastion_subnet(name, args, vcn, routes["private"], child) if args.bastion_subnet_cidr else None
        )

        self.vcn_id = vcn.id
        self.register_outputs(
            {
                "vcn_id": self.vcn_id,
                "subnet_ids": self.subnet_ids,
                "nsg_ids": self.nsg_ids,
                "cidrs": self.cidrs,
            }
        )

    def _bastion_subnet(
        self,
        name: str,
        args: NetworkArgs,
        vcn: oci.core.Vcn,
        routes: oci.core.RouteTable,
        child: pulumi.ResourceOptions,
    ) -> pulumi.Output[str]:
        """The bastion's subnet. A bastion's private endpoint takes no network security group, so this subnet's
        own security list is all it may do: reach the API endpoint's subnet on 6443 (stateful: the replies come
        back), nothing else; the API's group admits this subnet on 6443 (platform_security_rules)."""
        only_the_api = oci.core.SecurityList(
            f"{name}-bastion-security-list",
            compartment_id=args.compartment_id,
            vcn_id=vcn.id,
            display_name=f"{name}-bastion",
            ingress_security_rules=[],
            egress_security_rules=[
                oci.core.SecurityListEgressSecurityRuleArgs(
                    protocol=PROTOCOL_NUMBERS["tcp"],
                    destination=args.api_endpoint_subnet_cidr,
                    destination_type="CIDR_BLOCK",
                    description="bastion sessions to the Kubernetes API",
                    tcp_options=oci.core.SecurityListEgressSecurityRuleTcpOptionsArgs(
                        min=KUBE_API_PORT, max=KUBE_API_PORT
                    ),
                )
            ],
            freeform_tags=args.freeform_tags,
            opts=child,
        )
        return oci.core.Subnet(
            f"{name}-bastion-subnet",
            display_name=f"{name}-bastion",
            cidr_block=args.bastion_subnet_cidr,
            dns_label="bastion",
            prohibit_public_ip_on_vnic=True,
            prohibit_internet_ingress=True,
            route_table_id=routes.id,
            security_list_ids=[only_the_api.id],
            compartment_id=args.compartment_id,
            vcn_id=vcn.id,
            freeform_tags={**args.freeform_tags, ROLE_TAG: "bastion"},
            opts=child,
        ).id

    def _routes(
        self, name: str, common: dict[str, Any], oracle_services: Any, args: NetworkArgs
    ) -> dict[str, oci.core.RouteTable]:
        """The gateways, and the two route tables: `public` to the internet gateway, `private` through NAT,
        (for the Oracle Services Network) the service gateway and (to on-premises networks) the DRG."""
        child = pulumi.ResourceOptions(parent=self)
        internet = oci.core.InternetGateway(
            f"{name}-igw", display_name=f"{name}-igw", enabled=True, **common, opts=child
        )
        nat = oci.core.NatGateway(f"{name}-nat", display_name=f"{name}-nat", **common, opts=child)
        service_gateway = oci.core.ServiceGateway(
            f"{name}-sgw",
            display_name=f"{name}-sgw",
            services=[oci.core.ServiceGatewayServiceArgs(service_id=oracle_services.id)],
            **common,
            opts=child,
        )
        public = oci.core.RouteTable(
            f"{name}-public-routes",
            display_name=f"{name}-public",
            route_rules=[_route(internet.id, WORLD, "internet through the internet gateway")],
            **common,
            opts=child,
        )
        private = oci.core.RouteTable(
            f"{name}-private-routes",
            display_name=f"{name}-private",
            route_rules=[
                _route(nat.id, WORLD, "outbound internet through the NAT gateway"),
                _route(
                    service_gateway.id, oracle_services.cidr_block, "OCI services through the service gateway", True
                ),
                *self._on_premises_routes(args),
            ],
            **common,
            opts=child,
        )
        if args.on_premises is not None and args.drg_id is not None:
            transit = args.on_premises_object_storage
            self._attach_drg(name, common, args.drg_id, transit, service_gateway, oracle_services)
        return {"public": public, "private": private}

    @staticmethod
    def _on_premises_routes(args: NetworkArgs) -> list[oci.core.RouteTableRouteRuleArgs]:
        if args.on_premises is None or args.drg_id is None:
            return []
        what = "on-premises network through the DRG (site-to-site VPN)"
        return [_route(args.drg_id, cidr, what) for cidr in args.on_premises.cidrs]

    def _attach_drg(
        self,
        name: str,
        common: dict[str, Any],
        drg_id: pulumi.Input[str],
        object_storage: bool,
        service_gateway: oci.core.ServiceGateway,
        oracle_services: Any,
    ) -> None:
        """The DRG's VCN attachment. With transit routing to Oracle services, traffic entering the VCN from the DRG
        follows its own route table: Oracle services through the service gateway, nothing else (OCI "Transit
        Routing: Private Access to Oracle Services")."""
        child = pulumi.ResourceOptions(parent=self)
        ingress_table = None
        if object_storage:
            ingress_table = oci.core.RouteTable(
                f"{name}-drg-ingress-routes",
                display_name=f"{name}-drg-ingress",
                route_rules=[
                    _route(
                        service_gateway.id,
                        oracle_services.cidr_block,
                        "on-premises to OCI services (Object Storage) through the service gateway",
                        service=True,
                    )
                ],
                **common,
                opts=child,
            ).id
        oci.core.DrgAttachment(
            f"{name}-drg-attachment",
            display_name=f"{name}-drg-attachment",
            drg_id=drg_id,
            network_details=oci.core.DrgAttachmentNetworkDetailsArgs(
                id=common["vcn_id"], type="VCN", route_table_id=ingress_table
            ),
            freeform_tags=common["freeform_tags"],
            opts=child,
        )

    def _declare_rule(
        self,
        name: str,
        rule: SecurityRule,
        oracle_services_cidr: pulumi.Output[str],
        opts: pulumi.ResourceOptions,
    ) -> None:
        peer: pulumi.Input[str]
        if rule.peer_type == "NETWORK_SECURITY_GROUP":
            peer = self.nsg_ids[rule.peer.removeprefix("nsg:")]
        elif rule.peer == ORACLE_SERVICES:
            peer = oracle_services_cidr
        else:
            peer = rule.peer
        ports = None
        if rule.ports:
            ports = {"destination_port_range": {"min": rule.ports[0], "max": rule.ports[1]}}
        side = "source" if rule.direction == "INGRESS" else "destination"
        oci.core.NetworkSecurityGroupSecurityRule(
            f"{name}-{rule.key}",
            network_security_group_id=self.nsg_ids[rule.nsg],
            direction=rule.direction,
            protocol=PROTOCOL_NUMBERS[rule.protocol],
            description=rule.description,
            stateless=False,
            tcp_options=ports if rule.protocol == "tcp" else None,
            udp_options=ports if rule.protocol == "udp" else None,
            icmp_options={"type": rule.icmp[0], "code": rule.icmp[1]} if rule.icmp else None,
            **{side: peer, f"{side}_type": rule.peer_type},
            opts=opts,
        )


def _route(
    target: pulumi.Input[str], destination: pulumi.Input[str], description: str, service: bool = False
) -> oci.core.RouteTableRouteRuleArgs:
    """A route rule to a CIDR block or (`service`) to the Oracle Services Network's label."""
    return oci.core.RouteTableRouteRuleArgs(
        network_entity_id=target,
        destination=destination,
        destination_type="SERVICE_CIDR_BLOCK" if service else "CIDR_BLOCK",
        description=description,
    )
