"""Network: the VCN, its gateways, route tables, subnets and network security groups."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_oci as oci

from .constants import (
    DEFAULT_API_ENDPOINT_SUBNET,
    DEFAULT_LOAD_BALANCER_SUBNET,
    DEFAULT_RELAY_PORT_RANGE,
    DEFAULT_TURN_SUBNET,
    DEFAULT_VCN_CIDR,
    DEFAULT_WORKERS_SUBNET,
)
from .security import (
    NSG_KEYS,
    ORACLE_SERVICES,
    PROTOCOL_NUMBERS,
    WORLD,
    SecurityRule,
    check_world_ingress,
    platform_security_rules,
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
    """TURN relay port range, opened on the TURN nodes."""
    pods_on_vcn: bool = False
    """VCN-native pod networking: pods take IPs from the workers subnet."""
    dns_label: str = "pixelstream"
    freeform_tags: dict[str, str] = field(default_factory=dict)


class Network(pulumi.ComponentResource):
    """The VCN of one platform stack.

    Outputs: `vcn_id`; `subnet_ids` and `nsg_ids` keyed `api`, `workers`, `turn`, `lb`; `rules`, the security
    rules as plain data; `cidrs`, the subnet CIDRs by the same keys.
    """

    vcn_id: pulumi.Output[str]
    subnet_ids: dict[str, pulumi.Output[str]]
    nsg_ids: dict[str, pulumi.Output[str]]
    rules: list[SecurityRule]
    cidrs: dict[str, str]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        self.rules = platform_security_rules(
            api_allowed_cidrs=args.api_allowed_cidrs,
            client_cidrs=args.client_cidrs,
            relay_ports=args.relay_ports,
            pods_on_vcn=args.pods_on_vcn,
        )
        check_world_ingress(self.rules, relay_ports=args.relay_ports, allow_world_api=args.allow_world_api_access)
        super().__init__("pixelstream:index:Network", name, None, opts)
        self.cidrs = {
            "api": args.api_endpoint_subnet_cidr,
            "workers": args.workers_subnet_cidr,
            "turn": args.turn_subnet_cidr,
            "lb": args.load_balancer_subnet_cidr,
        }

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

        internet = oci.core.InternetGateway(
            f"{name}-igw", display_name=f"{name}-igw", enabled=True, **common, opts=child
        )
        nat = oci.core.NatGateway(f"{name}-nat", display_name=f"{name}-nat", **common, opts=child)
        oracle_services = oci.core.get_services_output(
            filters=[oci.core.GetServicesFilterArgs(name="name", values=[ORACLE_SERVICES_NAME], regex=True)]
        ).services[0]
        service_gateway = oci.core.ServiceGateway(
            f"{name}-sgw",
            display_name=f"{name}-sgw",
            services=[oci.core.ServiceGatewayServiceArgs(service_id=oracle_services.id)],
            **common,
            opts=child,
        )
        public_routes = oci.core.RouteTable(
            f"{name}-public-routes",
            display_name=f"{name}-public",
            route_rules=[
                oci.core.RouteTableRouteRuleArgs(
                    network_entity_id=internet.id,
                    destination=WORLD,
                    destination_type="CIDR_BLOCK",
                    description="internet through the internet gateway",
                )
            ],
            **common,
            opts=child,
        )
        private_routes = oci.core.RouteTable(
            f"{name}-private-routes",
            display_name=f"{name}-private",
            route_rules=[
                oci.core.RouteTableRouteRuleArgs(
                    network_entity_id=nat.id,
                    destination=WORLD,
                    destination_type="CIDR_BLOCK",
                    description="outbound internet through the NAT gateway",
                ),
                oci.core.RouteTableRouteRuleArgs(
                    network_entity_id=service_gateway.id,
                    destination=oracle_services.cidr_block,
                    destination_type="SERVICE_CIDR_BLOCK",
                    description="OCI services through the service gateway",
                ),
            ],
            **common,
            opts=child,
        )

        public_subnets = {"turn", "lb"} | ({"api"} if args.api_endpoint_public else set())
        dns_labels = {"api": "api", "workers": "workers", "turn": "turn", "lb": "lb"}
        self.subnet_ids = {}
        for key, cidr in self.cidrs.items():
            public = key in public_subnets
            self.subnet_ids[key] = oci.core.Subnet(
                f"{name}-{key}-subnet",
                display_name=f"{name}-{key}",
                cidr_block=cidr,
                dns_label=dns_labels[key],
                prohibit_public_ip_on_vnic=not public,
                prohibit_internet_ingress=not public,
                route_table_id=(public_routes if public else private_routes).id,
                security_list_ids=[locked_default.id],
                **common,
                opts=child,
            ).id

        self.nsg_ids = {
            key: oci.core.NetworkSecurityGroup(
                f"{name}-{key}-nsg", display_name=f"{name}-{key}", **common, opts=child
            ).id
            for key in NSG_KEYS
        }
        for rule in self.rules:
            self._declare_rule(name, rule, oracle_services.cidr_block, child)

        self.vcn_id = vcn.id
        self.register_outputs(
            {
                "vcn_id": self.vcn_id,
                "subnet_ids": self.subnet_ids,
                "nsg_ids": self.nsg_ids,
                "cidrs": self.cidrs,
            }
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
