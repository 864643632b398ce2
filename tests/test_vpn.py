"""network.onPremises: the hybrid stack's site-to-site VPN (DRG, attachment, CPE, IPSec with both tunnels), its
routes, and the security rules of exactly what crosses."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from conftest import ROOT
from test_addons import plan_with

from pixelstream.config import StackConfig
from pixelstream.oci.security import (
    API,
    PODS,
    STREAM_PODS,
    TURN,
    WORKERS,
    WORLD,
    OnPremisesFlows,
    outside,
    platform_security_rules,
)
from pixelstream.oci.vpn import SiteToSiteVpnArgs
from pixelstream.tools.offline import REDACTED, Plan, plan_stack
from pixelstream.tools.policies import policy_config

ON_PREMISES = "192.168.0.0/16"
NSG_RULE = "oci:Core/networkSecurityGroupSecurityRule:NetworkSecurityGroupSecurityRule"
TUNNEL = "oci:Core/ipsecConnectionTunnelManagement:IpsecConnectionTunnelManagement"
STATIC = {
    "onPremises": {
        "cidrs": [ON_PREMISES, "172.31.0.0/16"],
        "cpeIpAddress": "198.51.100.20",
        "services": [{"name": "kafka", "port": 9092, "endPort": 9094}],
    }
}


@pytest.fixture(scope="module")
def hybrid() -> Plan:
    return plan_stack("hybrid", ROOT)[0]


@pytest.fixture(scope="module")
def static(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    return plan_with(tmp_path_factory.mktemp("static"), "prod", network=STATIC)


def one(plan: Plan, type_suffix: str) -> dict:
    [resource] = [r for r in plan.resources if r.type.endswith(type_suffix)]
    return resource.inputs


def test_the_vpn_has_a_drg_attached_to_the_vcn_a_cpe_and_an_ipsec_connection(hybrid: Plan) -> None:
    drg = "ocid1.drg.offline..pixelstream-hybrid-vpn-drg"
    assert one(hybrid, "/drg:Drg")["displayName"] == "pixelstream-hybrid-vpn-drg"
    attachment = one(hybrid, "/drgAttachment:DrgAttachment")
    assert attachment["drgId"] == drg
    assert attachment["networkDetails"]["type"] == "VCN"
    assert attachment["networkDetails"]["id"] == "ocid1.vcn.offline..pixelstream-hybrid-vcn"
    assert one(hybrid, "/cpe:Cpe")["ipAddress"] == "198.51.100.20"
    ipsec = one(hybrid, "/ipsec:Ipsec")
    assert (ipsec["drgId"], ipsec["cpeId"]) == (drg, "ocid1.cpe.offline..pixelstream-hybrid-vpn-cpe")
    assert ipsec["staticRoutes"] == [ON_PREMISES]


def test_both_tunnels_run_bgp_with_their_inside_addresses_and_generated_keys(hybrid: Plan) -> None:
    tunnels = sorted((r for r in hybrid.of_type(TUNNEL)), key=lambda r: r.name)
    assert [t.inputs["tunnelId"].rsplit("-", 1)[-1] for t in tunnels] == ["1", "2"]
    sessions = [t.inputs["bgpSessionInfo"] for t in tunnels]
    assert [(s["customerBgpAsn"], s["customerInterfaceIp"], s["oracleInterfaceIp"]) for s in sessions] == [
        ("65010", "169.254.10.2/30", "169.254.10.1/30"),
        ("65010", "169.254.10.6/30", "169.254.10.5/30"),
    ]
    for tunnel in tunnels:
        assert (tunnel.inputs["routing"], tunnel.inputs["ikeVersion"]) == ("BGP", "V2")
        assert tunnel.inputs["sharedSecret"] == REDACTED
    generated = [r for r in hybrid.of_type("random:index/randomPassword:RandomPassword") if "tunnel" in r.name]
    assert [(g.inputs["length"], g.inputs["special"]) for g in generated] == [(64, False), (64, False)]


def test_outputs_say_what_to_configure_on_premises(hybrid: Plan, static: Plan) -> None:
    assert hybrid.outputs["vpnTunnelIps"] == ["192.0.2.11", "192.0.2.12"]
    assert hybrid.outputs["vpnSharedSecrets"] == REDACTED
    device = hybrid.outputs["vpnDeviceConfig"]
    assert device["routing"] == "bgp" and (device["customerBgpAsn"], device["oracleBgpAsn"]) == (65010, 31898)
    assert [t["oracleVpnIp"] for t in device["tunnels"]] == ["192.0.2.11", "192.0.2.12"]
    assert device["tunnels"][0]["customerInterfaceIp"] == "169.254.10.2/30"
    assert "Oracle Services Network" in device["oracleServices"]
    assert static.outputs["vpnDeviceConfig"]["routesThroughTunnels"] == ["10.0.0.0/16"]
    assert "oracleServices" not in static.outputs["vpnDeviceConfig"]


def test_private_subnets_route_on_premises_networks_through_the_drg(static: Plan) -> None:
    private = static.named("oci:Core/routeTable:RouteTable", "pixelstream-prod-private-routes").inputs["routeRules"]
    drg = "ocid1.drg.offline..pixelstream-prod-vpn-drg"
    assert [(r["destination"], r["networkEntityId"]) for r in private if r["networkEntityId"] == drg] == [
        (ON_PREMISES, drg),
        ("172.31.0.0/16", drg),
    ]
    public = static.named("oci:Core/routeTable:RouteTable", "pixelstream-prod-public-routes").inputs["routeRules"]
    assert [r["destination"] for r in public] == [WORLD], "public subnets do not reach on-premises"


def test_object_storage_from_on_premises_goes_through_the_service_gateway(hybrid: Plan, static: Plan) -> None:
    table = hybrid.named("oci:Core/routeTable:RouteTable", "pixelstream-hybrid-drg-ingress-routes").inputs
    assert [(r["destinationType"], r["networkEntityId"]) for r in table["routeRules"]] == [
        ("SERVICE_CIDR_BLOCK", "ocid1.servicegateway.offline..pixelstream-hybrid-sgw")
    ]
    attachment = one(hybrid, "/drgAttachment:DrgAttachment")
    assert (
        attachment["networkDetails"]["routeTableId"]
        == "ocid1.routetable.offline..pixelstream-hybrid-drg-ingress-routes"
    )
    assert "routeTableId" not in one(static, "/drgAttachment:DrgAttachment")["networkDetails"]


def _rules(plan: Plan) -> list[dict]:
    return [r.inputs for r in plan.of_type(NSG_RULE)]


def _group(inputs: dict) -> str:
    return inputs["networkSecurityGroupId"].rsplit("-", 2)[-2]


def _cidr(rule: dict) -> ipaddress.IPv4Network | None:
    """The rule's peer when it is a CIDR block (not a group or the Oracle Services Network)."""
    peer = rule.get("source") or rule.get("destination")
    kind = rule.get("sourceType") or rule.get("destinationType")
    return ipaddress.IPv4Network(peer) if kind == "CIDR_BLOCK" else None


def _touching(plan: Plan, cidr: str) -> set[tuple[str, str, str, str]]:
    """(group, direction, protocol, ports) of every rule whose peer overlaps `cidr`, but the players' rules from
    the whole internet."""
    found = set()
    network = ipaddress.ip_network(cidr)
    for rule in _rules(plan):
        peer = _cidr(rule)
        if peer is not None and peer.prefixlen > 0 and peer.overlaps(network):
            options = rule.get("tcpOptions") or rule.get("udpOptions") or {}
            ports = options.get("destinationPortRange", {})
            found.add((_group(rule), rule["direction"], rule["protocol"], f"{ports.get('min')}-{ports.get('max')}"))
    return found


def test_only_the_api_and_the_named_services_cross(hybrid: Plan, static: Plan) -> None:
    assert _touching(hybrid, ON_PREMISES) == {("api", "INGRESS", "6", "6443-6443")}
    assert _touching(static, ON_PREMISES) == {
        ("workers", "EGRESS", "6", "9092-9094"),
        ("pods", "EGRESS", "6", "9092-9094"),
    }, "the static variant keeps the API to allowedCidrs"


@pytest.mark.parametrize("group", ["workers", "pods", "streams", "turn"])
def test_egress_to_everywhere_else_leaves_the_on_premises_networks_out(static: Plan, group: str) -> None:
    destinations = [
        peer
        for r in _rules(static)
        if _group(r) == group and r["direction"] == "EGRESS" and r["protocol"] == "all"
        for peer in [_cidr(r)]
        if peer is not None
    ]
    assert destinations, group
    for excluded in (ON_PREMISES, "172.31.0.0/16"):
        assert not [d for d in destinations if d.overlaps(ipaddress.ip_network(excluded))], (group, excluded)
    assert any(d.overlaps(ipaddress.ip_network("8.8.8.8/32")) for d in destinations), "the internet stays"


def test_the_relay_denies_the_on_premises_networks(static: Plan) -> None:
    conf = static.manifests()["pixel.configmap.coturn.yaml"]["data"]["turnserver.conf"]
    assert "denied-peer-ip=192.168.0.0-192.168.255.255" in conf
    assert "denied-peer-ip=172.31.0.0-172.31.255.255" in conf
    settings = policy_config(StackConfig.parse({"compartmentId": "ocid1.compartment.oc1..aaaa", "network": STATIC}))
    assert settings["turn-relays-only-to-stream-pods"]["forbiddenCidrs"] == [ON_PREMISES, "172.31.0.0/16"]


def test_outside_leaves_out_every_network_it_is_given() -> None:
    blocks = [ipaddress.ip_network(c) for c in outside("10.0.0.0/16", ON_PREMISES, "10.0.128.0/17")]
    covered = sum(b.num_addresses for b in blocks)
    assert covered == 2**32 - 2**16 - 2**16
    for excluded in ("10.0.0.0/16", ON_PREMISES):
        assert not [b for b in blocks if b.overlaps(ipaddress.ip_network(excluded))]
    assert outside("10.0.0.0/16") == [
        str(n) for n in sorted(ipaddress.ip_network(WORLD).address_exclude(ipaddress.ip_network("10.0.0.0/16")))
    ]


def test_on_premises_rules_as_data() -> None:
    flows = OnPremisesFlows(cidrs=(ON_PREMISES,), kubernetes_api=True, services=(("db", "tcp", (5432, 5432)),))
    rules = platform_security_rules(
        api_allowed_cidrs=[],
        client_cidrs=[WORLD],
        relay_ports=(49152, 65535),
        vcn_cidr="10.0.0.0/16",
        vcn_native_pods=False,
        on_premises=flows,
    )
    crossing = {(r.nsg, r.direction, r.protocol, r.ports) for r in rules if r.peer == ON_PREMISES}
    # With flannel, pod traffic leaves as the node's: only the workers' group opens the service.
    assert crossing == {(API, "INGRESS", "tcp", (6443, 6443)), (WORKERS, "EGRESS", "tcp", (5432, 5432))}
    assert not [r for r in rules if r.nsg in (TURN, STREAM_PODS, PODS) and r.peer == ON_PREMISES]


def test_the_vpn_component_refuses_what_cannot_work() -> None:
    base = {"compartment_id": "c", "cpe_ip_address": "198.51.100.20", "vcn_cidr": "10.0.0.0/16"}
    with pytest.raises(ValueError, match="a VPN to nowhere"):
        SiteToSiteVpnArgs(on_premises_cidrs=[], **base).validate()
    with pytest.raises(ValueError, match="one per tunnel"):
        SiteToSiteVpnArgs(on_premises_cidrs=[ON_PREMISES], shared_secrets=["a"], **base).validate()
    with pytest.raises(ValueError, match="BGP routing needs"):
        SiteToSiteVpnArgs(on_premises_cidrs=[ON_PREMISES], routing="bgp", **base).validate()


def test_stacks_without_on_premises_networks_declare_no_vpn(tmp_path: Path) -> None:
    prod = plan_stack("prod", ROOT)[0]
    assert not [r for r in prod.resources if any(k in r.type for k in ("Drg", "drg", "Cpe", "psec"))]
    assert not [k for k in prod.outputs if k.startswith("vpn")]
