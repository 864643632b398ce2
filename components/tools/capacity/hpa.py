"""The HorizontalPodAutoscaler's algorithm, as Kubernetes' controller runs it for one Object metric with a
`Value` target: how the reference system scales its streams (players per ready stream, `player_stream_pool_ratio`),
which the simulator compares this project's scaler against. The project itself deploys no HPA for streams.

Each sync: the usage ratio is metric / target; within the tolerance (0.1) the count stays, otherwise the
proposal is ceil(ratio x ready pods). The proposal is then stabilized (scale-up takes the lowest, scale-down
the highest recommendation within each direction's window) and limited by the direction's policies (Pods or
Percent per period, counted from the replicas at the start of the period; `selectPolicy` Max takes the policy
allowing the largest change, Min the smallest, Disabled none), then kept within min/max replicas.
Sources: the Kubernetes documentation "Horizontal Pod Autoscaling" (algorithm details, configurable scaling
behaviour, default behaviour) and the controller's replica calculator and behaviour normalization.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

TOLERANCE = 0.1


@dataclass(frozen=True)
class HpaSettings:
    """A stream HPA on the pool ratio, as the reference declares it (deploy/base/streaming/stream-hpa.yaml)."""

    min_replicas: int = 1
    max_replicas: int = 10
    target_pool_ratio: float = 0.9
    """Players per ready stream it aims for; below 1 keeps spare streams."""
    scale_up_stabilization_seconds: int = 0
    scale_up_pods: int = 2
    scale_up_percent: int = 10
    scale_up_period_seconds: int = 15
    scale_down_stabilization_seconds: int = 30


@dataclass(frozen=True)
class Policy:
    kind: Literal["Pods", "Percent"]
    value: int
    period_seconds: int


@dataclass(frozen=True)
class Rules:
    """One direction's behaviour: stabilization window, policies and how to pick among them."""

    stabilization_seconds: int
    policies: tuple[Policy, ...]
    select: Literal["Max", "Min", "Disabled"] = "Max"


# The API's defaults for fields a behaviour leaves out (Kubernetes docs, "Default Behavior").
DEFAULT_SCALE_UP = Rules(0, (Policy("Percent", 100, 15), Policy("Pods", 4, 15)))
DEFAULT_SCALE_DOWN = Rules(300, (Policy("Percent", 100, 15),))


def usage_replicas(current: int, ready: int, usage_ratio: float, tolerance: float = TOLERANCE) -> int:
    """The replica count a ratio of metric to target proposes: the current count within the tolerance."""
    if current == 0:
        return math.ceil(usage_ratio)
    if abs(1.0 - usage_ratio) <= tolerance:
        return current
    return math.ceil(usage_ratio * ready)


def _changed_within(events: list[tuple[float, int]], now: float, period: int) -> int:
    return sum(change for at, change in events if at > now - period)


@dataclass
class Hpa:
    """One HPA's state across syncs: its recommendations and scale events, in seconds of simulated time."""

    min_replicas: int
    max_replicas: int
    target: float
    scale_up: Rules = DEFAULT_SCALE_UP
    scale_down: Rules = DEFAULT_SCALE_DOWN
    tolerance: float = TOLERANCE
    recommendations: list[tuple[float, int]] = field(default_factory=list)
    up_events: list[tuple[float, int]] = field(default_factory=list)
    down_events: list[tuple[float, int]] = field(default_factory=list)

    @classmethod
    def from_settings(cls, settings: HpaSettings, tolerance: float = TOLERANCE) -> Hpa:
        """The HPA of `settings` (scale-down policies left to the API's default)."""
        period = settings.scale_up_period_seconds
        up = Rules(
            settings.scale_up_stabilization_seconds,
            (Policy("Pods", settings.scale_up_pods, period), Policy("Percent", settings.scale_up_percent, period)),
        )
        down = Rules(settings.scale_down_stabilization_seconds, DEFAULT_SCALE_DOWN.policies)
        return cls(settings.min_replicas, settings.max_replicas, settings.target_pool_ratio, up, down, tolerance)

    def sync(self, now: float, current: int, ready: int, metric: float) -> int:
        """One controller sync: the replica count to set, recorded as a scale event when it changes."""
        if current > self.max_replicas:
            desired = self.max_replicas
        elif current < self.min_replicas:
            desired = self.min_replicas
        else:
            # Custom metric values travel as milli-quantities.
            ratio = round(metric * 1000) / round(self.target * 1000)
            proposal = usage_replicas(current, ready, ratio, self.tolerance)
            desired = self._rate_limited(now, current, self._stabilized(now, current, proposal))
        if desired > current:
            self.up_events.append((now, desired - current))
        elif desired < current:
            self.down_events.append((now, current - desired))
        return desired

    def _stabilized(self, now: float, current: int, proposal: int) -> int:
        up_floor, down_ceiling = proposal, proposal
        for at, recommendation in self.recommendations:
            if at > now - self.scale_up.stabilization_seconds:
                up_floor = min(up_floor, recommendation)
            if at > now - self.scale_down.stabilization_seconds:
                down_ceiling = max(down_ceiling, recommendation)
        longest = max(self.scale_up.stabilization_seconds, self.scale_down.stabilization_seconds)
        self.recommendations = [(at, r) for at, r in self.recommendations if at > now - longest]
        self.recommendations.append((now, proposal))
        return min(max(current, up_floor), down_ceiling)

    def _rate_limited(self, now: float, current: int, desired: int) -> int:
        if desired > current:
            ceiling = max(self._limit(now, current, self.scale_up, +1), current)
            return min(desired, ceiling, self.max_replicas)
        if desired < current:
            floor = min(self._limit(now, current, self.scale_down, -1), current)
            return max(desired, floor, self.min_replicas)
        return desired

    def _limit(self, now: float, current: int, rules: Rules, direction: int) -> int:
        """The furthest count the policies allow from `current` in `direction` (+1 up, -1 down)."""
        if rules.select == "Disabled" or not rules.policies:
            return current
        proposals = []
        for policy in rules.policies:
            added = _changed_within(self.up_events, now, policy.period_seconds)
            removed = _changed_within(self.down_events, now, policy.period_seconds)
            start = current - added + removed
            if policy.kind == "Pods":
                proposals.append(start + direction * policy.value)
            elif direction > 0:
                proposals.append(math.ceil(start * (1 + policy.value / 100)))
            else:
                proposals.append(int(start * (1 - policy.value / 100)))
        largest_change = max(proposals) if direction > 0 else min(proposals)
        smallest_change = min(proposals) if direction > 0 else max(proposals)
        return largest_change if rules.select == "Max" else smallest_change
