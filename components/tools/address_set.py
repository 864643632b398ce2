"""Sets of IP addresses as merged ranges: what a relay may reach, compared with what the network holds."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

# (IP version, first address, last address) as integers.
Interval = tuple[int, int, int]


def _merged(intervals: Iterable[Interval]) -> tuple[Interval, ...]:
    merged: list[Interval] = []
    for version, first, last in sorted(intervals):
        if merged and merged[-1][0] == version and first <= merged[-1][2] + 1:
            merged[-1] = (version, merged[-1][1], max(merged[-1][2], last))
        else:
            merged.append((version, first, last))
    return tuple(merged)


class AddressSet:
    """IPv4 and IPv6 addresses as sorted, merged inclusive ranges."""

    def __init__(self, intervals: Iterable[Interval] = ()) -> None:
        self.intervals = _merged(intervals)

    @classmethod
    def of_cidrs(cls, cidrs: Iterable[str]) -> AddressSet:
        networks = [ipaddress.ip_network(c, strict=False) for c in cidrs]
        return cls((n.version, int(n[0]), int(n[-1])) for n in networks)

    @classmethod
    def of_ranges(cls, ranges: Iterable[str]) -> AddressSet:
        """Ranges written `first-last` or as one address, as coturn's peer options take them."""
        intervals = []
        for text in ranges:
            first_text, _, last_text = text.strip().partition("-")
            first = ipaddress.ip_address(first_text.strip())
            last = ipaddress.ip_address((last_text or first_text).strip())
            if first.version != last.version or last < first:
                raise ValueError(f"{text} is not an address range")
            intervals.append((first.version, int(first), int(last)))
        return cls(intervals)

    def __or__(self, other: AddressSet) -> AddressSet:
        return AddressSet((*self.intervals, *other.intervals))

    def __sub__(self, other: AddressSet) -> AddressSet:
        remaining: list[Interval] = []
        for version, first, last in self.intervals:
            start = first
            for other_version, cut_first, cut_last in other.intervals:
                if other_version != version or cut_last < start or cut_first > last:
                    continue
                if cut_first > start:
                    remaining.append((version, start, cut_first - 1))
                start = max(start, cut_last + 1)
            if start <= last:
                remaining.append((version, start, last))
        return AddressSet(remaining)

    def __and__(self, other: AddressSet) -> AddressSet:
        return self - (self - other)

    def __bool__(self) -> bool:
        return bool(self.intervals)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AddressSet) and self.intervals == other.intervals

    def __hash__(self) -> int:
        return hash(self.intervals)

    def __repr__(self) -> str:
        return f"AddressSet({', '.join(self.describe())})"

    def describe(self) -> list[str]:
        def address(version: int, value: int) -> str:
            return str(ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value))

        return [
            address(v, first) if first == last else f"{address(v, first)}-{address(v, last)}"
            for v, first, last in self.intervals
        ]
