"""The stream scaler: each build's Deployment keeps exactly the streams in use, one per waiting player, and a
buffer of started, unassigned streams, within the build's bounds.

An HPA cannot hold that count: it leaves the replicas alone while metric / target is within its 10% tolerance,
so from ten streams on, one more player changes nothing (Kubernetes' horizontal pod autoscaler, "Algorithm
details"). The session service knows the count exactly, so it writes it: the Deployment's scale subresource,
which its Role may get and patch for the stream Deployments only, and an admission policy holds at the build's
maxReplicas.

Scaling up is at once. Scaling down waits until the count has been lower for the whole window (the highest count
wanted within `scale_down_seconds`, as an HPA's scale-down stabilization does), so that a stream a player leaves
is not stopped just before the next one arrives; a build first seen (the service just started) counts what its
Deployment has as wanted for a whole window. A scale-in removes the streams the session service retired for it
(broker.py retire: free streams, off the emptiest nodes): the ReplicaSet removes unscheduled, pending and unready
pods first, then the lowest pod deletion cost (Kubernetes pkg/controller/controller_utils.go,
ActivePodsWithRanks.Less: its fourth rule, ahead of spreading and age), which retired streams have. No scale-in
is written, and no retired stream goes back to players, until the ReplicaSet has removed what the last one
asked (its pods no more than the count); none while the Deployment rolls out (two ReplicaSets: the deployment
controller splits a scale-in between them in proportion, whatever each holds). Pure: no I/O.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class BuildScale:
    """One build's scaling, as the builds document gives it."""

    deployment: str
    buffer: int
    """Started streams kept free for the next players; 0 for a build that takes no new player."""
    min_replicas: int
    max_replicas: int

    def wanted(self, in_use: int, queued: int, scheduled: int = 0) -> int:
        """Streams in use, one per waiting player and the buffer (a scheduled one, if larger), within the bounds."""
        return max(self.min_replicas, min(self.max_replicas, in_use + queued + max(self.buffer, scheduled)))


@dataclass(frozen=True)
class ScaleStep:
    replicas: int
    """What to write to the Deployment's scale (its current count: nothing to write)."""
    retire: int | None
    """Ready streams to keep retired, so that the ReplicaSet removes them and no other; None: leave those retired
    as they are (the ReplicaSet has yet to remove some)."""


def scale_step(current: int, target: int, ready: int, starting: int, retirable: int, rolling: bool) -> ScaleStep:
    """The step from `current` replicas towards `target`. The build's pods, as just listed: `ready` streams (of
    which `retirable` have no player: retiring already, or free) and `starting` ones (not ready, not terminating,
    not ended); `rolling`: they belong to two ReplicaSets. A scale-in goes no further than the streams retired for
    it: the ReplicaSet removes pods that are not ready first, then those, so a starting pod may go in a retired
    stream's place (which then goes back into service), but it is never counted on to go: one that became ready
    meanwhile could have been handed to a player, and would then rank behind the free and retired streams only."""
    settled = ready + starting <= current
    if target >= current:
        return ScaleStep(target, 0 if settled else None)
    if not settled:
        return ScaleStep(current, None)  # the ReplicaSet has not yet removed what the last scale-in asked
    if rolling:
        return ScaleStep(current, 0)
    retire = min(current - target, retirable)
    return ScaleStep(current - retire, retire)


@dataclass
class Stabilizer:
    """Per build: up at once, down only to the highest count wanted within the last `scale_down_seconds`."""

    scale_down_seconds: float
    _wanted: dict[str, deque[tuple[float, int]]] = field(default_factory=dict)

    def target(self, build: str, wanted: int, now: float, current: int) -> int:
        """`current`: the Deployment's count, wanted for a whole window when the build is first seen."""
        history = self._wanted.setdefault(build, deque([(now, current)] if self.scale_down_seconds else []))
        history.append((now, wanted))
        while history[0][0] < now - self.scale_down_seconds:
            history.popleft()
        return max(count for _, count in history)


def emptiest_nodes_first(streams: Iterable[tuple[Hashable, bool]]) -> Callable[[Hashable], tuple[int, int]]:
    """A sort key on nodes, from every (node, in use) stream: the fewest streams in use first, then the fewest
    streams. Free streams retire in this order, so that scale-ins empty nodes the cluster autoscaler can remove,
    where the ReplicaSet's own order would spread them (it prefers pods on nodes with more of its pods)."""
    in_use: Counter[Hashable] = Counter()
    on_node: Counter[Hashable] = Counter()
    for node, busy in streams:
        on_node[node] += 1
        in_use[node] += busy
    return lambda node: (in_use[node], on_node[node])
