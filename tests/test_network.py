"""Network component under mocks: what it declares and how each security rule becomes an NSG rule."""

from __future__ import annotations

import pulumi
import pytest
from conftest import COMPARTMENT

from pixelstream import Network, NetworkArgs, UnsafeNetworkError
from pixelstream.tools.offline import Plan, run_offline

NSG_RULE = "oci:Core/networkSecurityGroupSecurityRule:NetworkSecurityGroupSecurityRule"
SUBNET = "oci:Core/subnet:Subnet"


def plan_network(**overrides) -> tuple[Plan, Network]:
    created: list[Network] = []
    args = NetworkArgs(**{"compartment_id": COMPARTMENT, "api_allowed_cidrs": ["198.51.100.0/24"], **overrides})
    plan = run_offline(lambda: created.append(Network("net", args)))
    return plan, created[0]


def test_declares_vcn_gateways_routes_subnets_and_nsgs() -> None:
    plan, network = plan_network()
    counts = {t: len(plan.of_type(t)) for t in {r.type for r in plan.resources}}
    assert counts["oci:Core/vcn:Vcn"] == 1
    assert counts["oci:Core/internetGateway:InternetGateway"] == 1
    assert counts["oci:Core/natGateway:NatGateway"] == 1
    assert counts["oci:Core/serviceGateway:ServiceGateway"] == 1
    assert counts["oci:Core/routeTable:RouteTable"] == 2
    assert counts[SUBNET] == 6
    assert counts["oci:Core/networkSecurityGroup:NetworkSecurityGroup"] == 6
    assert counts[NSG_RULE] == len(network.rules)
    component = plan.named("pixelstream:index:Network", "net")
    assert all(r.parent == component.urn for r in plan.resources if r.custom)


def test_routes_send_private_traffic_through_nat_and_service_gateway() -> None:
    plan, _ = plan_network()
    public = plan.named("oci:Core/routeTable:RouteTable", "net-public-routes").inputs["routeRules"]
    private = plan.named("oci:Core/routeTable:RouteTable", "net-private-routes").inputs["routeRules"]
    assert [(r["destination"], r["networkEntityId"]) for r in public] == [
        ("0.0.0.0/0", "ocid1.internetgateway.offline..net-igw")
    ]
    assert [(r["destination"], r["destinationType"], r["networkEntityId"]) for r in private] == [
        ("0.0.0.0/0", "CIDR_BLOCK", "ocid1.natgateway.offline..net-nat"),
        (
            "all-offline-services-in-oracle-services-network",
            "SERVICE_CIDR_BLOCK",
            "ocid1.servicegateway.offline..net-sgw",
        ),
    ]


@pytest.mark.parametrize(("public_api", "public_subnets"), [(False, {"turn", "lb"}), (True, {"turn", "lb", "api"})])
def test_subnets_are_public_only_where_needed(public_api: bool, public_subnets: set[str]) -> None:
    plan, _ = plan_network(api_endpoint_public=public_api)
    subnets = {r.name.removeprefix("net-").removesuffix("-subnet"): r.inputs for r in plan.of_type(SUBNET)}
    assert {k for k, s in subnets.items() if not s["prohibitPublicIpOnVnic"]} == public_subnets
    for key, subnet in subnets.items():
        routes = "public" if key in public_subnets else "private"
        assert subnet["routeTableId"] == f"ocid1.routetable.offline..net-{routes}-routes"
        assert "availabilityDomain" not in subnet  # regional
        assert subnet["securityListIds"] == ["ocid1.defaultsecuritylist.offline..net-default-security-list"]
    assert subnets["turn"]["cidrBlock"] == "10.0.30.0/24"


def test_subnets_carry_their_role_so_policies_can_find_the_stream_pods() -> None:
    plan, _ = plan_network(freeform_tags={"team": "media"})
    roles = {r.inputs["cidrBlock"]: r.inputs["freeformTags"] for r in plan.of_type(SUBNET)}
    assert roles == {
        "10.0.0.0/28": {"team": "media", "pixelstream-role": "api-endpoint"},
        "10.0.64.0/18": {"team": "media", "pixelstream-role": "nodes"},
        "10.0.30.0/24": {"team": "media", "pixelstream-role": "nodes"},
        "10.0.2.0/24": {"team": "media", "pixelstream-role": "load-balancers"},
        "10.0.128.0/18": {"team": "media", "pixelstream-role": "pods"},
        "10.0.192.0/19": {"team": "media", "pixelstream-role": "stream-pods"},
    }


def test_flannel_has_no_pod_subnets_or_groups() -> None:
    plan, network = plan_network(pods_subnet_cidr=None, stream_pods_subnet_cidr=None)
    assert len(plan.of_type(SUBNET)) == 4
    assert set(network.nsg_ids) == {"api", "workers", "turn", "lb"}
    assert not any(r.nsg in ("pods", "streams") for r in network.rules)


def test_one_pod_subnet_without_the_other_is_refused() -> None:
    with pytest.raises(ValueError, match="both pods_subnet_cidr and stream_pods_subnet_cidr"):
        plan_network(stream_pods_subnet_cidr=None)


def test_no_group_gets_more_rules_than_oci_allows() -> None:
    many = [f"198.51.100.{i}/32" for i in range(0, 40)]
    with pytest.raises(ValueError, match=r"more security rules than OCI allows in one group \(120\): \{'turn': "):
        plan_network(client_cidrs=many)


def test_default_security_list_is_emptied() -> None:
    plan, _ = plan_network()
    locked = plan.named("oci:Core/defaultSecurityList:DefaultSecurityList", "net-default-security-list").inputs
    assert locked["manageDefaultResourceId"] == "ocid1.securitylist.offline..net-vcn-default"
    assert locked.get("ingressSecurityRules", []) == [] and locked.get("egressSecurityRules", []) == []


def test_each_rule_is_declared_with_oci_field_names() -> None:
    plan, network = plan_network()
    declared = {r.name.removeprefix("net-"): r.inputs for r in plan.of_type(NSG_RULE)}
    assert set(declared) == {r.key for r in network.rules}

    relay_udp = declared["turn-in-udp-49152-65535-from-0-0-0-0-0"]
    assert relay_udp == {
        "networkSecurityGroupId": "ocid1.networksecuritygroup.offline..net-turn-nsg",
        "direction": "INGRESS",
        "protocol": "17",
        "description": "players to the TURN relay range",
        "stateless": False,
        "source": "0.0.0.0/0",
        "sourceType": "CIDR_BLOCK",
        "udpOptions": {"destinationPortRange": {"min": 49152, "max": 65535}},
    }
    to_api = declared["turn-out-tcp-12250-to-api"]
    assert to_api["destination"] == "ocid1.networksecuritygroup.offline..net-api-nsg"
    assert to_api["destinationType"] == "NETWORK_SECURITY_GROUP"
    assert to_api["tcpOptions"] == {"destinationPortRange": {"min": 12250, "max": 12250}}
    icmp = declared["workers-in-icmp-3-4-from-0-0-0-0-0"]
    assert (icmp["protocol"], icmp["icmpOptions"]) == ("1", {"type": 3, "code": 4})
    osn = declared["workers-out-tcp-to-oracle-services"]
    assert (osn["destination"], osn["destinationType"]) == (
        "all-offline-services-in-oracle-services-network",
        "SERVICE_CIDR_BLOCK",
    )


def test_world_open_api_is_refused_before_any_resource_is_declared(pulumi_runtime) -> None:
    with pytest.raises(UnsafeNetworkError, match=r"api ingress TCP 6443 from 0\.0\.0\.0/0"):
        Network("net", NetworkArgs(compartment_id=COMPARTMENT, api_allowed_cidrs=["0.0.0.0/0"]))
    assert [r.type for r in pulumi_runtime.planned] == ["pulumi:pulumi:Stack"]


def test_world_open_api_with_the_explicit_flag() -> None:
    plan, _ = plan_network(api_allowed_cidrs=["0.0.0.0/0"], allow_world_api_access=True, api_endpoint_public=True)
    assert plan.named(NSG_RULE, "net-api-in-tcp-6443-from-0-0-0-0-0").inputs["source"] == "0.0.0.0/0"


@pulumi.runtime.test
def test_outputs_resolve_to_the_declared_resources(pulumi_runtime) -> pulumi.Output:
    network = Network("net", NetworkArgs(compartment_id=COMPARTMENT))

    def check(values: list) -> None:
        vcn_id, turn_subnet, lb_nsg = values
        assert vcn_id == "ocid1.vcn.offline..net-vcn"
        assert turn_subnet == "ocid1.subnet.offline..net-turn-subnet"
        assert lb_nsg == "ocid1.networksecuritygroup.offline..net-lb-nsg"

    assert network.cidrs == {
        "api": "10.0.0.0/28",
        "workers": "10.0.64.0/18",
        "turn": "10.0.30.0/24",
        "lb": "10.0.2.0/24",
        "pods": "10.0.128.0/18",
        "streams": "10.0.192.0/19",
    }
    return pulumi.Output.all(network.vcn_id, network.subnet_ids["turn"], network.nsg_ids["lb"]).apply(check)
