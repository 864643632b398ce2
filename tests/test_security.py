"""The platform's security rules as data, and the world-open ingress guard."""

from __future__ import annotations

import ipaddress
import re

import pytest

from pixelstream.oci.security import (
    API,
    LOAD_BALANCERS,
    PODS,
    STREAM_PODS,
    TURN,
    WORKERS,
    WORLD,
    GpuPodFlows,
    SecurityRule,
    UnsafeNetworkError,
    check_world_ingress,
    outside,
    platform_security_rules,
    unexpected_world_ingress,
)

RELAY = (49152, 65535)
VCN = "10.0.0.0/16"
ICMP = (3, 4)


def rules(**overrides) -> list[SecurityRule]:
    args = {
        "api_allowed_cidrs": ["198.51.100.0/24"],
        "client_cidrs": [WORLD],
        "relay_ports": RELAY,
        "vcn_cidr": VCN,
        "vcn_native_pods": True,
    }
    args.update(overrides)
    return platform_security_rules(**args)


def summary(rule_list: list[SecurityRule], nsg: str) -> set[tuple]:
    return {(r.direction, r.protocol, r.ports, r.icmp, r.peer) for r in rule_list if r.nsg == nsg}


def internet(rule_list: list[SecurityRule], nsg: str) -> set[tuple]:
    """The group's egress rules to CIDRs outside the VCN, folded into one entry per protocol."""
    return {
        (r.protocol, r.peer)
        for r in rule_list
        if r.nsg == nsg and r.direction == "EGRESS" and r.peer_type == "CIDR_BLOCK" and r.peer != WORLD
    }


def test_outside_covers_every_address_but_the_vcn() -> None:
    blocks = [ipaddress.IPv4Network(c) for c in outside(VCN)]
    assert len(blocks) == 16
    assert sum(b.num_addresses for b in blocks) == 2**32 - 2**16
    assert not any(b.overlaps(ipaddress.IPv4Network(VCN)) for b in blocks)
    for address in ("8.8.8.8", "169.254.169.254", "10.1.0.1", "192.168.1.1", "255.255.255.255", "0.0.0.1"):
        assert any(ipaddress.IPv4Address(address) in b for b in blocks), address
    for address in ("10.0.0.1", "10.0.192.7", "10.0.255.255"):
        assert not any(ipaddress.IPv4Address(address) in b for b in blocks), address


def test_turn_nsg_opens_only_what_media_needs() -> None:
    all_rules = rules()
    turn = summary(all_rules, TURN) - {("EGRESS", "all", None, None, cidr) for cidr in outside(VCN)}
    assert turn == {
        # players: STUN/TURN on UDP and TCP, the relay range on UDP only (no TCP relay)
        ("INGRESS", "udp", (3478, 3478), None, WORLD),
        ("INGRESS", "tcp", (3478, 3478), None, WORLD),
        ("INGRESS", "udp", RELAY, None, WORLD),
        # into the VCN: the stream pods on UDP, cluster DNS, the API endpoint; Prometheus in
        ("EGRESS", "udp", None, None, "nsg:streams"),
        ("EGRESS", "udp", (53, 53), None, "nsg:pods"),
        ("EGRESS", "tcp", (53, 53), None, "nsg:pods"),
        ("INGRESS", "tcp", (10250, 10250), None, "nsg:pods"),
        ("INGRESS", "tcp", (9100, 9100), None, "nsg:pods"),
        ("INGRESS", "tcp", (9641, 9641), None, "nsg:pods"),
        ("EGRESS", "tcp", (6443, 6443), None, "nsg:api"),
        ("EGRESS", "tcp", (12250, 12250), None, "nsg:api"),
        ("INGRESS", "tcp", (10250, 10250), None, "nsg:api"),
        ("EGRESS", "icmp", None, ICMP, "nsg:api"),
        ("INGRESS", "icmp", None, ICMP, "nsg:api"),
        ("INGRESS", "icmp", None, ICMP, WORLD),
    }
    # Out to the internet (players, image registries, OCI services), never into the VCN as a whole.
    assert internet(all_rules, TURN) == {("all", cidr) for cidr in outside(VCN)}
    assert ("EGRESS", "all", None, None, WORLD) not in summary(all_rules, TURN)


def test_stream_pods_accept_only_udp_from_turn_and_tcp_from_the_system_pods() -> None:
    streams = summary(rules(), STREAM_PODS)
    ingress = {r for r in streams if r[0] == "INGRESS"}
    assert ingress == {
        ("INGRESS", "udp", None, None, "nsg:turn"),
        ("INGRESS", "tcp", None, None, "nsg:pods"),
        ("INGRESS", "all", None, None, "nsg:workers"),
        ("INGRESS", "icmp", None, ICMP, WORLD),
    }
    egress = {r for r in streams if r[0] == "EGRESS" and not r[4][0].isdigit()}
    assert egress == {
        ("EGRESS", "tcp", (53, 53), None, "nsg:pods"),
        ("EGRESS", "udp", (53, 53), None, "nsg:pods"),
        ("EGRESS", "tcp", (6443, 6443), None, "nsg:api"),
    }


def gpu_pod_reach(rule_list: list[SecurityRule]) -> set[tuple]:
    """What the GPU pods reach in the system pods' and the control plane's groups, checked from both ends: the
    egress rule on the stream pods' group and the ingress rule on the target's must both be there."""
    out = {
        (r.protocol, r.ports, r.peer.removeprefix("nsg:"))
        for r in rule_list
        if r.nsg == STREAM_PODS and r.direction == "EGRESS"
    }
    into = {
        (r.protocol, r.ports, r.nsg) for r in rule_list if r.peer == f"nsg:{STREAM_PODS}" and r.direction == "INGRESS"
    }
    return {flow for flow in out & into if flow[2] in (PODS, API)}


def test_gpu_pods_reach_only_the_engines_their_workloads_use() -> None:
    flows = GpuPodFlows(
        system_ports=(("the AI orchestrator", 8935), ("Kafka's TLS listener", 9193)), workload_identity=True
    )
    assert gpu_pod_reach(rules(gpu_flows=flows)) == {
        ("udp", (53, 53), PODS),
        ("tcp", (53, 53), PODS),
        ("tcp", (8935, 8935), PODS),
        ("tcp", (9193, 9193), PODS),
        ("tcp", (6443, 6443), API),
        ("tcp", (12250, 12250), API),
    }
    # Nothing else of the system pods: a stream or a job cannot call the simulation orchestrator (8080), Prometheus
    # (9090), KEDA's Kafka listener (9094) or a webhook (443), and without jobs no workload identity either.
    plain = gpu_pod_reach(rules())
    assert plain == {("udp", (53, 53), PODS), ("tcp", (53, 53), PODS), ("tcp", (6443, 6443), API)}
    for port in (8080, 9090, 9094, 443, 12250):
        assert not [f for f in plain if f[0] in ("tcp", "all") and (f[1] is None or f[1][0] <= port <= f[1][1])]


def test_turn_nodes_reach_neither_workers_nor_system_pods_beyond_dns() -> None:
    all_rules = rules()
    for group in (WORKERS, PODS, API, LOAD_BALANCERS):
        from_turn = {r for r in summary(all_rules, group) if r[0] == "INGRESS" and r[4] == "nsg:turn"}
        allowed = {
            WORKERS: set(),
            PODS: {("INGRESS", "udp", (53, 53), None, "nsg:turn"), ("INGRESS", "tcp", (53, 53), None, "nsg:turn")},
            API: {
                ("INGRESS", "tcp", (6443, 6443), None, "nsg:turn"),
                ("INGRESS", "tcp", (12250, 12250), None, "nsg:turn"),
                ("INGRESS", "icmp", None, ICMP, "nsg:turn"),
            },
            LOAD_BALANCERS: set(),
        }[group]
        assert from_turn == allowed, group


def test_flannel_keeps_the_overlay_rules_and_no_pod_groups() -> None:
    flannel = rules(vcn_native_pods=False)
    assert {r.nsg for r in flannel} == {API, WORKERS, TURN, LOAD_BALANCERS}
    assert ("INGRESS", "all", None, None, "nsg:turn") in summary(flannel, WORKERS)
    assert ("EGRESS", "all", None, None, "nsg:workers") in summary(flannel, TURN)
    # Even on flannel the relay range is UDP only and TURN reaches the VCN only through explicit flows.
    assert not any(r.nsg == TURN and r.protocol == "tcp" and r.ports == RELAY for r in flannel)
    assert internet(flannel, TURN) == {("all", cidr) for cidr in outside(VCN)}


def test_api_endpoint_accepts_nodes_pods_and_only_the_configured_admin_networks() -> None:
    api = summary(rules(api_allowed_cidrs=["198.51.100.0/24", "203.0.113.7/32"]), API)
    ingress_6443 = {
        peer for direction, proto, ports, _, peer in api if direction == "INGRESS" and ports == (6443, 6443)
    }
    assert ingress_6443 == {"nsg:workers", "nsg:turn", "nsg:pods", "nsg:streams", "198.51.100.0/24", "203.0.113.7/32"}
    assert ("INGRESS", "tcp", (12250, 12250), None, "nsg:workers") in api
    assert ("EGRESS", "tcp", (10250, 10250), None, "nsg:workers") in api
    assert ("EGRESS", "tcp", None, None, "nsg:pods") in api  # webhooks and API services
    assert ("EGRESS", "tcp", None, None, "nsg:streams") not in api
    assert ("EGRESS", "tcp", None, None, "oracle-services") in api
    assert not any(peer == WORLD for *_, peer in api)


def test_workers_and_load_balancers_have_the_oke_rules() -> None:
    all_rules = rules()
    workers = summary(all_rules, WORKERS)
    assert {
        ("EGRESS", "tcp", (6443, 6443), None, "nsg:api"),
        ("EGRESS", "tcp", (12250, 12250), None, "nsg:api"),
        ("INGRESS", "tcp", (10250, 10250), None, "nsg:api"),
        ("INGRESS", "all", None, None, "nsg:workers"),
        ("EGRESS", "all", None, None, "nsg:workers"),
        ("INGRESS", "tcp", (30000, 32767), None, "nsg:lb"),
        ("INGRESS", "udp", (30000, 32767), None, "nsg:lb"),
        ("INGRESS", "tcp", (10256, 10256), None, "nsg:lb"),
        ("INGRESS", "icmp", None, (3, 4), WORLD),
        ("EGRESS", "tcp", None, None, "oracle-services"),
        ("INGRESS", "all", None, None, "nsg:pods"),
        ("EGRESS", "all", None, None, "nsg:streams"),
    } <= workers
    # workers take no traffic from the internet other than path discovery
    assert {r for r in workers if r[0] == "INGRESS" and r[4] == WORLD} == {("INGRESS", "icmp", None, (3, 4), WORLD)}
    lb = summary(all_rules, LOAD_BALANCERS)
    assert {r for r in lb if r[0] == "INGRESS"} == {
        ("INGRESS", "tcp", (80, 80), None, WORLD),
        ("INGRESS", "tcp", (443, 443), None, WORLD),
    }
    assert ("EGRESS", "tcp", (30000, 32767), None, "nsg:workers") in lb
    # load balancers never reach the TURN nodes or pods directly: those are not ingress backends
    assert not any(peer in ("nsg:turn", "nsg:pods", "nsg:streams") for *_, peer in lb)


def test_client_cidrs_narrow_every_player_facing_rule() -> None:
    narrowed = rules(client_cidrs=["192.0.2.0/24"])
    player_facing = [
        r
        for r in narrowed
        if r.nsg in (TURN, LOAD_BALANCERS) and r.direction == "INGRESS" and r.peer_type == "CIDR_BLOCK"
    ]
    assert {r.peer for r in player_facing if r.protocol != "icmp"} == {"192.0.2.0/24"}


def test_a_client_cidr_listed_twice_opens_its_rules_once() -> None:
    twice = rules(client_cidrs=["192.0.2.0/24", "192.0.2.0/24"], api_allowed_cidrs=["198.51.100.0/24"] * 2)
    assert twice == rules(client_cidrs=["192.0.2.0/24"])


def test_the_relay_range_comes_from_one_value() -> None:
    custom = rules(relay_ports=(40000, 40999))
    relay = [r for r in custom if r.nsg == TURN and r.ports == (40000, 40999)]
    assert {r.protocol for r in relay} == {"udp"}
    assert not any(r.ports == RELAY for r in custom)


def test_the_vcn_cidr_shapes_the_internet_egress() -> None:
    other = rules(vcn_cidr="172.20.0.0/20")
    assert internet(other, TURN) == {("all", c) for c in outside("172.20.0.0/20")}
    assert internet(other, STREAM_PODS) == {("all", c) for c in outside("172.20.0.0/20")}


def test_rule_keys_are_unique_and_readable() -> None:
    for vcn_native in (True, False):
        all_rules = rules(vcn_native_pods=vcn_native)
        assert len({r.key for r in all_rules}) == len(all_rules)
    assert "turn-in-udp-49152-65535-from-0-0-0-0-0" in {r.key for r in rules()}
    assert "turn-out-udp-to-streams" in {r.key for r in rules()}


def test_guard_accepts_the_platform_rules() -> None:
    for vcn_native in (True, False):
        check_world_ingress(rules(vcn_native_pods=vcn_native), relay_ports=RELAY, allow_world_api=False)


def test_guard_refuses_a_world_open_api_unless_explicitly_allowed() -> None:
    world_api = rules(api_allowed_cidrs=[WORLD])
    with pytest.raises(UnsafeNetworkError, match=r"api ingress TCP 6443 from 0\.0\.0\.0/0"):
        check_world_ingress(world_api, relay_ports=RELAY, allow_world_api=False)
    check_world_ingress(world_api, relay_ports=RELAY, allow_world_api=True)


@pytest.mark.parametrize(
    "rule",
    [
        SecurityRule(WORKERS, "INGRESS", "tcp", WORLD, "ssh", (22, 22)),
        SecurityRule(TURN, "INGRESS", "tcp", WORLD, "turn admin", (5766, 5766)),
        SecurityRule(TURN, "INGRESS", "udp", WORLD, "a wider relay range", (1024, 65535)),
        SecurityRule(TURN, "INGRESS", "tcp", WORLD, "the relay range over TCP (RFC 6062)", RELAY),
        SecurityRule(STREAM_PODS, "INGRESS", "udp", WORLD, "streams straight from the internet", RELAY),
        SecurityRule(LOAD_BALANCERS, "INGRESS", "tcp", WORLD, "alt listener", (8443, 8443)),
        SecurityRule(API, "INGRESS", "tcp", WORLD, "kubelet", (10250, 10250)),
        SecurityRule(WORKERS, "INGRESS", "icmp", WORLD, "echo", icmp=(8, 0)),
        SecurityRule(WORKERS, "INGRESS", "all", WORLD, "everything"),
    ],
    ids=lambda r: r.key,
)
def test_guard_refuses_other_world_open_ingress(rule: SecurityRule) -> None:
    with pytest.raises(UnsafeNetworkError, match=r"unexpected ingress open to 0\.0\.0\.0/0"):
        check_world_ingress([*rules(), rule], relay_ports=RELAY, allow_world_api=True)


def test_guard_ignores_egress_and_narrow_ingress() -> None:
    extra = [
        SecurityRule(WORKERS, "EGRESS", "all", WORLD, "egress is not ingress"),
        SecurityRule(WORKERS, "INGRESS", "tcp", "10.20.0.0/16", "a peered network", (22, 22)),
    ]
    assert unexpected_world_ingress(extra, relay_ports=RELAY, allow_world_api=False) == []


def test_viewers_reach_only_the_simulation_stream_ports_of_the_load_balancers() -> None:
    viewers = ["198.51.100.0/24", "203.0.113.0/28"]
    published = rules(viewer_cidrs=viewers)
    added = {(r.nsg, r.direction, r.protocol, r.ports, r.peer) for r in published} - {
        (r.nsg, r.direction, r.protocol, r.ports, r.peer) for r in rules()
    }
    from_viewers = {(cidr, proto, (port, port)) for cidr in viewers for proto, port in (("tcp", 49100), ("udp", 47998))}
    assert added == {(LOAD_BALANCERS, "INGRESS", p, ports, cidr) for cidr, p, ports in from_viewers} | {
        (LOAD_BALANCERS, "EGRESS", "tcp", (49100, 49100), "nsg:streams"),
        (LOAD_BALANCERS, "EGRESS", "udp", (47998, 47998), "nsg:streams"),
        (STREAM_PODS, "INGRESS", "tcp", (49100, 49100), "nsg:lb"),
        (STREAM_PODS, "INGRESS", "udp", (47998, 47998), "nsg:lb"),
    }
    # The world only with its own permission, and that permission opens nothing else.
    world = rules(viewer_cidrs=[WORLD])
    with pytest.raises(UnsafeNetworkError, match=re.escape("lb ingress TCP 49100 from 0.0.0.0/0")):
        check_world_ingress(world, relay_ports=RELAY, allow_world_api=False)
    check_world_ingress(world, relay_ports=RELAY, allow_world_api=False, allow_world_viewers=True)
    sneaky = [*world, SecurityRule(LOAD_BALANCERS, "INGRESS", "tcp", WORLD, "x", (8080, 8080))]
    assert (
        len(unexpected_world_ingress(sneaky, relay_ports=RELAY, allow_world_api=False, allow_world_viewers=True)) == 1
    )
    # Flannel: the load balancers reach the pods through the NodePorts, which their rules already open.
    assert not [r for r in rules(vcn_native_pods=False, viewer_cidrs=viewers) if r.peer == f"nsg:{STREAM_PODS}"]
