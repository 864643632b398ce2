"""The platform's security rules as data, and the world-open ingress guard."""

from __future__ import annotations

import pytest

from pixelstream.security import (
    API,
    LOAD_BALANCERS,
    TURN,
    WORKERS,
    WORLD,
    SecurityRule,
    UnsafeNetworkError,
    check_world_ingress,
    platform_security_rules,
    unexpected_world_ingress,
)

RELAY = (49152, 65535)


def rules(**overrides) -> list[SecurityRule]:
    args = {
        "api_allowed_cidrs": ["198.51.100.0/24"],
        "client_cidrs": [WORLD],
        "relay_ports": RELAY,
        "pods_on_vcn": False,
    }
    args.update(overrides)
    return platform_security_rules(**args)


def summary(rule_list: list[SecurityRule], nsg: str) -> set[tuple]:
    return {(r.direction, r.protocol, r.ports, r.icmp, r.peer) for r in rule_list if r.nsg == nsg}


def test_turn_nsg_has_exactly_the_reference_rules_and_the_oke_node_rules() -> None:
    icmp = (3, 4)
    assert summary(rules(), TURN) == {
        # players: STUN/TURN and the relay range, TCP and UDP, from anywhere
        ("INGRESS", "udp", (3478, 3478), None, WORLD),
        ("INGRESS", "tcp", (3478, 3478), None, WORLD),
        ("INGRESS", "udp", RELAY, None, WORLD),
        ("INGRESS", "tcp", RELAY, None, WORLD),
        # TURN <-> workers and TURN <-> TURN
        ("INGRESS", "all", None, None, "nsg:workers"),
        ("EGRESS", "all", None, None, "nsg:workers"),
        ("INGRESS", "all", None, None, "nsg:turn"),
        ("EGRESS", "all", None, None, "nsg:turn"),
        # TURN -> API endpoint 6443/12250, control plane -> kubelet, path discovery
        ("EGRESS", "tcp", (6443, 6443), None, "nsg:api"),
        ("EGRESS", "tcp", (12250, 12250), None, "nsg:api"),
        ("INGRESS", "tcp", (10250, 10250), None, "nsg:api"),
        ("EGRESS", "icmp", None, icmp, "nsg:api"),
        ("INGRESS", "icmp", None, icmp, "nsg:api"),
        ("INGRESS", "icmp", None, icmp, WORLD),
        # relayed media and image pulls go out through the internet gateway
        ("EGRESS", "all", None, None, WORLD),
    }


def test_api_endpoint_accepts_nodes_and_only_the_configured_admin_networks() -> None:
    api = summary(rules(api_allowed_cidrs=["198.51.100.0/24", "203.0.113.7/32"]), API)
    ingress_6443 = {
        peer for direction, proto, ports, _, peer in api if direction == "INGRESS" and ports == (6443, 6443)
    }
    assert ingress_6443 == {"nsg:workers", "nsg:turn", "198.51.100.0/24", "203.0.113.7/32"}
    assert ("INGRESS", "tcp", (12250, 12250), None, "nsg:workers") in api
    assert ("EGRESS", "tcp", (10250, 10250), None, "nsg:workers") in api
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
    } <= workers
    # workers take no traffic from the internet other than path discovery
    assert {r for r in workers if r[0] == "INGRESS" and r[4] == WORLD} == {("INGRESS", "icmp", None, (3, 4), WORLD)}
    lb = summary(all_rules, LOAD_BALANCERS)
    assert {r for r in lb if r[0] == "INGRESS"} == {
        ("INGRESS", "tcp", (80, 80), None, WORLD),
        ("INGRESS", "tcp", (443, 443), None, WORLD),
    }
    assert ("EGRESS", "tcp", (30000, 32767), None, "nsg:workers") in lb
    # load balancers never reach the TURN nodes: those are not ingress backends
    assert not any(peer == "nsg:turn" for *_, peer in lb)


def test_client_cidrs_narrow_every_player_facing_rule() -> None:
    narrowed = rules(client_cidrs=["192.0.2.0/24"])
    player_facing = [
        r
        for r in narrowed
        if r.nsg in (TURN, LOAD_BALANCERS) and r.direction == "INGRESS" and r.peer_type == "CIDR_BLOCK"
    ]
    assert {r.peer for r in player_facing if r.protocol != "icmp"} == {"192.0.2.0/24"}


def test_the_relay_range_comes_from_one_value() -> None:
    custom = rules(relay_ports=(40000, 40999))
    relay = [r for r in custom if r.nsg == TURN and r.ports == (40000, 40999)]
    assert {r.protocol for r in relay} == {"tcp", "udp"}
    assert not any(r.ports == RELAY for r in custom)


def test_vcn_native_pods_let_the_control_plane_reach_pod_webhooks() -> None:
    flannel = summary(rules(), WORKERS)
    native = summary(rules(pods_on_vcn=True), WORKERS)
    assert native - flannel == {("INGRESS", "tcp", None, None, "nsg:api")}


def test_rule_keys_are_unique_and_readable() -> None:
    all_rules = rules()
    assert len({r.key for r in all_rules}) == len(all_rules)
    assert "turn-in-udp-49152-65535-from-0-0-0-0-0" in {r.key for r in all_rules}


def test_guard_accepts_the_platform_rules() -> None:
    check_world_ingress(rules(), relay_ports=RELAY, allow_world_api=False)


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
