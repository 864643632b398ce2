"""Address sets: the arithmetic the relay policy relies on, checked against Python's ipaddress."""

from __future__ import annotations

import ipaddress
import random

import pytest

from pixelstream.tools.address_set import AddressSet


def test_ranges_merge_and_describe() -> None:
    merged = AddressSet.of_ranges(["10.0.0.0-10.0.0.255", "10.0.1.0-10.0.1.9", "10.0.0.7", "::1"])
    assert merged.describe() == ["10.0.0.0-10.0.1.9", "::1"]
    assert AddressSet.of_cidrs(["10.0.0.0/24", "10.0.1.0/24"]) == AddressSet.of_cidrs(["10.0.0.0/23"])


def test_difference_and_intersection() -> None:
    vcn = AddressSet.of_cidrs(["10.0.0.0/16"])
    streams = AddressSet.of_cidrs(["10.0.192.0/19"])
    assert (vcn - streams).describe() == ["10.0.0.0-10.0.191.255", "10.0.224.0-10.0.255.255"]
    assert (streams - vcn).describe() == []
    assert (vcn & streams) == streams
    assert not (streams & AddressSet.of_cidrs(["10.0.64.0/18"]))


def test_versions_never_mix() -> None:
    v4 = AddressSet.of_cidrs(["0.0.0.0/0"])
    mapped = AddressSet.of_cidrs(["::ffff:0:0/96"])
    assert not (v4 & mapped)
    assert (v4 | mapped) - v4 == mapped


@pytest.mark.parametrize("text", ["10.0.0.9-10.0.0.1", "10.0.0.1-::1", "not-an-address"])
def test_bad_ranges_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        AddressSet.of_ranges([text])


def test_matches_ipaddress_on_random_sets() -> None:
    rng = random.Random(7)
    universe = ipaddress.IPv4Network("10.0.0.0/24")

    def random_cidrs() -> list[str]:
        return [f"10.0.0.{rng.randrange(0, 256, 8)}/{rng.choice([29, 30, 31, 32])}" for _ in range(rng.randint(0, 5))]

    def members(cidrs: list[str]) -> set[int]:
        return {int(a) for c in cidrs for a in ipaddress.IPv4Network(c, strict=False)}

    def addresses(s: AddressSet) -> set[int]:
        return {a for _, first, last in s.intervals for a in range(first, last + 1)}

    for _ in range(200):
        a, b = random_cidrs(), random_cidrs()
        left, right = AddressSet.of_cidrs(a), AddressSet.of_cidrs(b)
        assert addresses(left - right) == members(a) - members(b)
        assert addresses(left & right) == members(a) & members(b)
        assert addresses(left | right) == members(a) | members(b)
    assert addresses(AddressSet.of_cidrs([str(universe)])) == {int(x) for x in universe}
