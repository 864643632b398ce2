"""The simulation: one second at a time, the platform as deployed by a stack, fed a player trace.

- Matchmaker: players queue in arrival order and get the first ready stream without a player (one player per
  stream, as the session service hands them out); a queued player leaves after their patience, drawn log-normal
  around `playerPatienceSeconds`. A player who has to queue is told the wait the session service would tell
  (session/broker.py estimated_wait, the same code, from the build's recent assignments).
- Stream scaler, as the session service runs it every `scalerSyncSeconds` (session/scaler.py, the same code):
  streams in use, one per waiting player and the buffer, within the bounds, down only after the scale-down
  window; a scale-in removes starting streams first, then free ones from the emptiest nodes, never one with a
  player.
- Or, for a stack describing another system's stream HPA (the reference's): `Hpa` (Kubernetes' algorithm) every
  `hpaSyncSeconds` on the players-per-ready-stream ratio (players + 1 when none is ready) scraped every
  `metricsScrapeSeconds`, and the ready pods. Removing streams follows the ReplicaSet's order with the
  deletion-cost agent: unscheduled, then not ready, then without players; a stream with a player drains for at
  most `drainSeconds` and then cuts it.
- Scheduler: streams first (their PriorityClass), on the ready node with the most free slots (Kubernetes' default
  scoring spreads), or with `scheduling="pack"` the fullest node with a free slot (a second scheduler scoring
  MostAllocated, which this project does not deploy: docs/capacity.md says why), preempting a placeholder when no
  slot is free; then placeholders. A slot is what one stream needs (GPU, share, or CPU).
- Durations: a node registers (Ready) `nodeProvisionSeconds` after its launch and takes streams
  `gpuAdvertiseSeconds` later, when the device plugin advertises its GPUs. A node holds the stream images
  `imagePullSeconds` after the pull starts: when it registers with pre-pull, else when the first stream is
  scheduled there. A stream is ready `unrealStartSeconds` after its images are. Each is drawn log-normal around
  that median with `timeSigma`, so a few take much longer.
- Cluster autoscaler (autoscaled pools) every scan interval: adds the nodes the pending pods need beyond those
  already coming, up to maxSize, unless the pool is backed off; removes a node unneeded (below half its slots
  used, its pods movable elsewhere, none with a player) for scaleDownUnneeded, not within scaleDownDelayAfterAdd
  of a scale-up, down to minSize; the unneeded clocks run on every scan, in that cooldown too
  (static_autoscaler.go RunOnce, cluster-autoscaler 1.34.0). Nodes are billed from launch to removal.
- Capacity: OCI refuses a share `outOfCapacity` of the autoscaler's launches; the node's error shows
  `capacityErrorSeconds` later, and a node not registered within the add-on's maxNodeProvisionTime has failed
  too. Either way the autoscaler removes the node and backs the pool off for 5 minutes, doubling on each failure
  after the last back-off ended up to 30, forgotten 3 hours after the last failure (the add-on's defaults:
  flags.go, utils/backoff/exponential_backoff.go, cluster-autoscaler 1.34.0).
- A release (optional): at `rollout_at` a new build takes every new player (weight 100, the old one 0): its own
  autoscaler from minReplicas, its image pulled on every node then (pre-pull) or at its first stream; players
  still waiting move to it; the old build's scaler follows its own players down and the build is removed
  once it has none. At `cycle_at` OKE cycles the GPU pool (`maxSurge` 1, `maxUnavailable` 0): for each node that
  was there, a new node first, then the old one cordoned and drained: placeholders go at once, a stream is
  evicted only while every stream is ready (the streams' PodDisruptionBudget, one unavailable), an idle one goes
  at once and a busy one drains (its player stays up to `drainSeconds`, then is cut), each replaced by its
  ReplicaSet; the node goes when empty, or at the pool's eviction grace (`nodePools.gpu.eviction.graceMinutes`),
  cutting what is left, unless `forceDeleteAfterGrace` is false (then the cycling waits for it). The run goes on
  until the release is over.
"""

from __future__ import annotations

import math
import random
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from typing import Literal

from ...workloads.pixel_streaming.session.broker import ASSIGNMENT_HISTORY, estimated_wait
from ...workloads.pixel_streaming.session.scaler import BuildScale, Stabilizer, emptiest_nodes_first, scale_step
from ...workloads.pixel_streaming.session.schedule import scheduled_buffer
from .hpa import Hpa, HpaSettings
from .stack import SimulatedStack
from .timings import Timings
from .traces import Trace

# A GPU node is unneeded below half its GPUs requested: --scale-down-gpu-utilization-threshold, 0.5 (eligibility.go,
# cluster-autoscaler 1.34.0), which OKE's add-on has no key for.
UTILIZATION_THRESHOLD = 0.5
# The cluster autoscaler's node-group back-off, its flags' defaults (config/flags/flags.go, cluster-autoscaler
# 1.34.0), which this project leaves as they are: --initial-node-group-backoff-duration,
# --max-node-group-backoff-duration, --node-group-backoff-reset-timeout.
BACKOFF_INITIAL_SECONDS = 300
BACKOFF_MAX_SECONDS = 1800
BACKOFF_RESET_SECONDS = 3 * 3600
# How streams are placed on GPU nodes: Kubernetes' default scoring spreads them; "pack" fills the fullest node first.
Scheduling = Literal["spread", "pack"]
# The wall-clock time of a trace's second 0, for the stack's capacity schedules: Monday 5 January 2026, 00:00 UTC.
DEFAULT_STARTS_AT = 1_767_571_200


@dataclass(eq=False)
class Player:
    arrival: float
    duration: float
    patience: float = math.inf
    matched: float | None = None
    gave_up: float | None = None
    interrupted: bool = False
    build: int = 0
    warned: float | None = None
    """When its stream was asked to go (it drains from then); None if it never was."""
    cut: float | None = None
    told: int | None = None
    """The wait the session service told it as it joined the queue; None if it never queued."""


@dataclass(eq=False)
class Node:
    index: int
    ready: float
    """When the device plugin advertises its GPUs: streams may be scheduled there from then."""
    slots: int
    registered: float = 0.0
    """When it joined the cluster (Ready): the pre-pull starts then."""
    launched: float = 0.0
    fails: float | None = None
    """When its launch is seen to have failed (OCI's error, or the autoscaler's provisioning timeout); None: it
    does not fail."""
    refused: bool = False
    """OCI refused the launch: no instance, nothing billed."""
    images: dict[int, float] = field(default_factory=dict)
    """When each build's stream images are on the node; a build is missing until its pull starts."""
    pods: list = field(default_factory=list)
    unneeded_since: float | None = None
    cordoned: bool = False


@dataclass(eq=False)
class Stream:
    index: int
    build: int = 0
    node: Node | None = None
    ready: float | None = None
    player: Player | None = None
    draining_since: float | None = None

    def is_ready(self, now: float) -> bool:
        return self.ready is not None and self.ready <= now and self.draining_since is None


@dataclass(eq=False)
class Placeholder:
    node: Node | None = None


@dataclass(frozen=True)
class Sample:
    time: int
    waiting: int
    playing: int
    ready_streams: int
    nodes: int


@dataclass
class Outcome:
    players: list[Player]
    horizon: int
    gpu_seconds: float = 0.0
    busy_gpu_seconds: float = 0.0
    node_seconds: float = 0.0
    max_streams: int = 0
    max_nodes: int = 0
    samples: list[Sample] = field(default_factory=list)
    cycle_ended: float | None = None
    """When the GPU pool's cycling replaced its last node (with a release that cycles it)."""
    old_build_removed: float | None = None
    failed_launches: int = 0
    backoff_seconds: float = 0.0
    """How long the autoscaler held the GPU pool backed off, in all."""


@dataclass(frozen=True)
class Release:
    """What a release does during a run (seconds from its start); None: not that part."""

    rollout_at: int | None = None
    cycle_at: int | None = None


@dataclass
class BuildPool:
    """One build's stream scaler (the session service's, or another system's HPA) and what it last read."""

    replicas: int
    scale: BuildScale | None = None
    stabilizer: Stabilizer | None = None
    hpa: Hpa | None = None
    metric: float = 0.0


@dataclass
class Backoff:
    """The autoscaler's back-off of the GPU pool (exponential_backoff.go Backoff)."""

    until: float
    duration: float
    last_failure: float


@dataclass
class Cycling:
    """OKE replacing the GPU pool's nodes, one at a time, a new node first."""

    old: deque[Node]
    surge: Node | None = None
    draining: Node | None = None
    draining_since: float = 0.0


class Simulation:
    def __init__(
        self,
        stack: SimulatedStack,
        trace: Trace,
        timings: Timings,
        seed: int,
        duration: int,
        release: Release | None = None,
        starts_at: float = DEFAULT_STARTS_AT,
        scheduling: Scheduling = "spread",
    ) -> None:
        self.stack, self.timings, self.seed, self.duration = stack, timings, seed, duration
        self.starts_at, self.scheduling = starts_at, scheduling
        self._scheduled: dict[int, int] = {}
        self.release = release or Release()
        self.pool = stack.pool
        self.counts: Counter[str] = Counter()
        self.arrivals = deque(
            Player(s.arrival, s.duration, self._drawn("patience", timings.player_patience_seconds))
            for s in trace.sessions
        )
        self.outcome = Outcome(list(self.arrivals), 0)
        self.queue: deque[Player] = deque()
        self.assignments: dict[int, deque[float]] = {}
        """Each build's last assignment times, as the session service keeps them for its wait estimate."""
        self.playing: list[Stream] = []
        self.nodes: list[Node] = []
        self.streams: list[Stream] = []
        self.placeholders = [Placeholder() for _ in range(stack.warm_streams)]
        self.builds = {0: self._build_pool()}
        self.current_build = 0
        self.cycling: Cycling | None = None
        self.last_scale_up = -math.inf
        self.backoff: Backoff | None = None
        self._start()

    def _build_pool(self) -> BuildPool:
        """A build's scaler at rest: the HPA at its minimum, or the session service's at its buffer."""
        scaling = self.stack.scaling
        if isinstance(scaling, HpaSettings):
            return BuildPool(scaling.min_replicas, hpa=Hpa.from_settings(scaling, self.timings.hpa_tolerance))
        scale = scaling.scale
        return BuildPool(scale.wanted(0, 0), scale=scale, stabilizer=Stabilizer(scaling.scale_down_seconds))

    def _drawn(self, kind: str, median: float) -> float:
        """A log-normal draw around `median` (sigma: `patienceSigma` for patience, else `timeSigma`), one random
        stream per kind and object so that runs with one seed repeat exactly."""
        sigma = self.timings.patience_sigma if kind == "patience" else self.timings.time_sigma
        return median * math.exp(sigma * self._random(kind).gauss(0, 1))

    def _random(self, kind: str) -> random.Random:
        self.counts[kind] += 1
        return random.Random(f"{self.seed}:{kind}:{self.counts[kind]}")

    def _start(self) -> None:
        """An idle platform at rest: the streams its scaler keeps idle and the placeholders, on as many nodes as they
        take (within the pool's bounds). A node holds the stream images if it ran a stream or pre-pulled them."""
        replicas = self.builds[0].replicas
        wanted = math.ceil((replicas + len(self.placeholders)) / self.pool.slots)
        count = min(max(wanted, self.pool.min_size), self.pool.max_size) if self.pool.autoscaled else self.pool.size
        for _ in range(count):
            self._launch(0, at_rest=True).images = {0: 0} if self.stack.pre_pull else {}
        self.streams = [Stream(self._next("stream")) for _ in range(replicas)]
        self._schedule(0)
        for stream in self.streams:
            if stream.node is not None:
                stream.ready = stream.node.images[0] = 0

    def _next(self, kind: str) -> int:
        self.counts[kind] += 1
        return self.counts[kind]

    def _launch(self, now: float, at_rest: bool = False, refusable: bool = False) -> Node:
        """A new GPU node (one there from the start: `at_rest`). One the autoscaler asks for (`refusable`) may be
        refused for want of capacity, or fail to register within the add-on's maxNodeProvisionTime."""
        node = Node(self._next("node-index"), 0, self.pool.slots, launched=now)
        self.nodes.append(node)
        if at_rest:
            return node
        node.registered = now + self._drawn("node", self.timings.node_provision_seconds)
        node.ready = node.registered + self._drawn("advertise", self.timings.gpu_advertise_seconds)
        if not refusable:
            return node
        if self._random("capacity").random() < self.timings.out_of_capacity:
            node.fails, node.refused = now + self.timings.capacity_error_seconds, True
        elif node.registered - now > self.stack.autoscaler.max_node_provision_seconds:
            node.fails = now + self.stack.autoscaler.max_node_provision_seconds
        if node.fails is not None:
            node.registered = node.ready = math.inf
        return node

    def run(self) -> Outcome:
        now = 0
        limit = self.duration + 10 * 86400
        while now < limit and (now < self.duration or self.arrivals or self.queue or self.playing or self._releasing()):
            self._step(now)
            now += 1
        self.outcome.horizon = now
        return self.outcome

    def _releasing(self) -> bool:
        """A release still under way: the pool's cycling, or the old build not yet removed."""
        return self.cycling is not None or (self.current_build == 1 and 0 in self.builds)

    def _step(self, now: int) -> None:
        timings = self.timings
        while self.arrivals and self.arrivals[0].arrival <= now:
            player = self.arrivals.popleft()
            player.build = self.current_build
            self.queue.append(player)
        if now == self.release.rollout_at:
            self._roll_out(now)
        if now == self.release.cycle_at:
            # A launch not yet seen to fail is not a node OKE replaces: the autoscaler removes it.
            self.cycling = Cycling(deque(sorted((n for n in self.nodes if n.fails is None), key=lambda n: n.index)))
        self._sessions_end(now)
        self._nodes_join(now)
        self._match(now)
        self._tell_waits(now)
        for build, pool in self.builds.items():
            if pool.hpa is not None and now % timings.metrics_scrape_seconds == 0:
                pool.metric = self._ratio(now, build)
            if pool.hpa is not None and now % timings.hpa_sync_seconds == 0:
                self._hpa_step(now, build, pool)
            elif pool.scale is not None and now % timings.scaler_sync_seconds == 0:
                self._scaler_step(now, build, pool)
        self._retire_old_build(now)
        if self.cycling is not None:
            self._cycle(now)
        self._schedule(now)
        if self.pool.autoscaled and now % self.stack.autoscaler.scan_interval_seconds == 0:
            self._autoscale_nodes(now)
        self._account(now)

    def _sessions_end(self, now: int) -> None:
        for stream in list(self.playing):
            player = stream.player
            drained = stream.draining_since is not None and now >= stream.draining_since + self.stack.drain_seconds
            if now >= player.matched + player.duration or drained:
                self._end_session(stream, now)
                if stream.draining_since is not None:
                    self._remove(stream)
        for player in [p for p in self.queue if now >= p.arrival + p.patience]:
            self.queue.remove(player)
            player.gave_up = now

    def _end_session(self, stream: Stream, now: int) -> None:
        player = stream.player
        player.interrupted = now < player.matched + player.duration
        if player.interrupted:
            player.cut = now
        stream.player = None
        self.playing.remove(stream)

    def _nodes_join(self, now: int) -> None:
        if not self.stack.pre_pull:
            return
        for node in self.nodes:
            for build in self.builds:
                if build not in node.images and node.registered <= now:
                    node.images[build] = now + self._drawn("pull", self.timings.image_pull_seconds)

    def _match(self, now: int) -> None:
        free = {
            build: (s for s in self.streams if s.build == build and s.player is None and s.is_ready(now))
            for build in self.builds
        }
        for player in list(self.queue):
            stream = next(free[player.build], None)
            if stream is None:
                if len(self.builds) == 1:
                    return
                continue
            self.queue.remove(player)
            player.matched, stream.player = now, player
            self.playing.append(stream)
            self.assignments.setdefault(player.build, deque(maxlen=ASSIGNMENT_HISTORY)).append(now)

    def _tell_waits(self, now: int) -> None:
        """Players who joined the queue this second are told their wait, as the session service would."""
        ahead: Counter[int] = Counter()
        # As the service lists them: pods not ready, Failed ones aside (none here), draining ones not counted.
        starting = Counter(s.build for s in self.streams if s.draining_since is None and not s.is_ready(now))
        for player in self.queue:
            ahead[player.build] += 1
            if player.told is None and player.arrival > now - 1:
                history = self.assignments.get(player.build, ())
                player.told = estimated_wait(
                    ahead[player.build], history, self.stack.cold_start_seconds, starting[player.build]
                )

    def _ratio(self, now: int, build: int) -> float:
        players = sum(p.build == build for p in self.queue) + sum(s.build == build for s in self.playing)
        ready = sum(s.build == build and s.is_ready(now) for s in self.streams)
        if ready == 0:
            return players + 1 if players else 0
        return players / ready

    def _hpa_step(self, now: int, build: int, pool: BuildPool) -> None:
        mine = [s for s in self.streams if s.build == build]
        ready = sum(s.is_ready(now) for s in mine)
        desired = pool.hpa.sync(now, pool.replicas, ready, pool.metric)
        live = [s for s in mine if s.draining_since is None]
        for _ in range(desired - len(live)):
            self.streams.append(Stream(self._next("stream"), build))
        # The ReplicaSet's order, with pod-deletion-cost = players: unscheduled, not ready, idle, newest first.
        ranked = sorted(live, key=lambda s: (s.node is not None, s.is_ready(now), s.player is not None, -s.index))
        for stream in ranked[: max(len(live) - desired, 0)]:
            if stream.player is None:
                self._remove(stream)
            else:
                self._warn(stream, now)
        pool.replicas = desired

    def _scaler_step(self, now: int, build: int, pool: BuildPool) -> None:
        """The session service's round: the wanted count, then a step to it (scaler.py scale_step): a scale-in of
        as many free streams as it retired from the emptiest nodes, of which the ReplicaSet takes starting streams
        first (unscheduled first, newest first: its order), then the retired ones."""
        live = [s for s in self.streams if s.build == build and s.draining_since is None]
        in_use = sum(s.player is not None for s in live)
        queued = sum(p.build == build for p in self.queue)
        scheduled = self._scheduled_buffer(now) if build == self.current_build else 0
        target = pool.stabilizer.target(str(build), pool.scale.wanted(in_use, queued, scheduled), now, len(live))
        starting = sorted((s for s in live if not s.is_ready(now)), key=lambda s: (s.node is not None, -s.index))
        every = [s for s in self.streams if s.node is not None and s.draining_since is None]
        emptiest = emptiest_nodes_first((s.node.index, s.player is not None) for s in every)
        free = [s for s in live if s.is_ready(now) and s.player is None]
        free.sort(key=lambda s: (*emptiest(s.node.index), s.node.index, s.index))
        ready = len(live) - len(starting)
        step = scale_step(len(live), target, ready, len(starting), len(free), rolling=False)
        for _ in range(step.replicas - len(live)):
            self.streams.append(Stream(self._next("stream"), build))
        for stream in [*starting, *free[: step.retire or 0]][: max(len(live) - step.replicas, 0)]:
            self._remove(stream)
        pool.replicas = step.replicas

    def _scheduled_buffer(self, now: int) -> int:
        """The schedules' buffer at the trace's `now`, as the session service reckons it (cron minutes)."""
        minute = int(self.starts_at + now) // 60
        if minute not in self._scheduled:
            self._scheduled[minute] = scheduled_buffer(self.stack.schedules, minute * 60)
        return self._scheduled[minute]

    def _warn(self, stream: Stream, now: int) -> None:
        """The stream is asked to go: its player may stay for the drain."""
        stream.draining_since = now
        if stream.player is not None:
            stream.player.warned = now

    # -- a release ------------------------------------------------------------------------------------------

    def _roll_out(self, now: int) -> None:
        """The new build takes every new player; those waiting move to it in their place."""
        self.current_build = 1
        old = self.builds[0]
        if old.hpa is not None:  # one player per stream, down to the HPA's floor
            old.hpa.min_replicas, old.hpa.target = 1, 1.0
        else:  # a build at weight 0: no buffer, no floor (config.py stream_builds)
            old.scale = replace(old.scale, buffer=0, min_replicas=0)
        self.builds[1] = self._build_pool()
        for player in self.queue:
            player.build = 1
        for _ in range(self.builds[1].replicas):
            self.streams.append(Stream(self._next("stream"), 1))

    def _retire_old_build(self, now: int) -> None:
        """The old build goes (its Deployment removed from the stack) once nobody plays or waits for it."""
        if self.current_build == 0 or 0 not in self.builds:
            return
        if any(s.build == 0 for s in self.playing) or any(p.build == 0 for p in self.queue):
            return
        for stream in [s for s in self.streams if s.build == 0]:
            self._remove(stream)
        del self.builds[0]
        self.outcome.old_build_removed = now

    def _cycle(self, now: int) -> None:
        """One step of OKE's node pool cycling with maxSurge 1, maxUnavailable 0."""
        cycling = self.cycling
        if cycling.draining is None:
            cycling.old = deque(n for n in cycling.old if n in self.nodes)  # the autoscaler may have taken some
            if not cycling.old:
                self.cycling, self.outcome.cycle_ended = None, now
                return
            if cycling.surge is None:
                cycling.surge = self._launch(now)
            if cycling.surge.ready > now:
                return
            cycling.surge, cycling.draining, cycling.draining_since = None, cycling.old.popleft(), now
            cycling.draining.cordoned = True
        self._drain(cycling.draining, now)
        node = cycling.draining
        grace_over = now - cycling.draining_since >= self.stack.eviction_grace_seconds
        forced = grace_over and self.stack.force_delete_after_grace
        if node.pods and not forced:
            return
        for stream in [p for p in node.pods if isinstance(p, Stream)]:
            if stream.player is not None:
                self._end_session(stream, now)
            self._remove(stream)
            if stream.draining_since is None:
                self.streams.append(Stream(self._next("stream"), stream.build))
        for placeholder in [p for p in node.pods if isinstance(p, Placeholder)]:
            placeholder.node = None
        node.pods.clear()
        self.nodes.remove(node)
        cycling.draining = None

    def _drain(self, node: Node, now: int) -> None:
        """Evictions on a cordoned node: placeholders freely, streams while the disruption budget allows."""
        for placeholder in [p for p in node.pods if isinstance(p, Placeholder)]:
            node.pods.remove(placeholder)
            placeholder.node = None
        for stream in [p for p in node.pods if isinstance(p, Stream) and p.draining_since is None]:
            if not self._disruption_allowed(now):
                return
            self.streams.append(Stream(self._next("stream"), stream.build))  # its ReplicaSet replaces it
            if stream.player is None:
                self._remove(stream)
            else:
                self._warn(stream, now)

    def _disruption_allowed(self, now: int) -> bool:
        """The streams' PodDisruptionBudget (maxUnavailable 1): every stream the autoscalers want is ready."""
        wanted = sum(pool.replicas for pool in self.builds.values())
        healthy = sum(s.is_ready(now) for s in self.streams)
        return healthy >= wanted

    def _remove(self, stream: Stream) -> None:
        self.streams.remove(stream)
        if stream.node is not None:
            stream.node.pods.remove(stream)

    def _schedule(self, now: float) -> None:
        ready_nodes = [n for n in self.nodes if n.ready <= now and not n.cordoned]
        for stream in self.streams:
            if stream.node is None:
                node = self._fit(ready_nodes) or self._preempt(ready_nodes)
                if node is not None:
                    self._bind(stream, node, now)
        for placeholder in self.placeholders:
            if placeholder.node is None:
                node = self._fit(ready_nodes)
                if node is not None:
                    placeholder.node = node
                    node.pods.append(placeholder)

    def _fit(self, nodes: list[Node]) -> Node | None:
        """A node with a free slot, if any: the one with the most (spread), or the fewest (pack)."""
        open_nodes = [n for n in nodes if len(n.pods) < n.slots]
        if self.scheduling == "pack":
            return min(open_nodes, key=lambda n: (n.slots - len(n.pods), n.index), default=None)
        return max(open_nodes, key=lambda n: (n.slots - len(n.pods), -n.index), default=None)

    @staticmethod
    def _preempt(nodes: list[Node]) -> Node | None:
        for node in nodes:
            for pod in node.pods:
                if isinstance(pod, Placeholder):
                    node.pods.remove(pod)
                    pod.node = None
                    return node
        return None

    def _bind(self, stream: Stream, node: Node, now: float) -> None:
        stream.node = node
        node.pods.append(stream)
        if stream.build not in node.images:
            node.images[stream.build] = now + self._drawn("pull", self.timings.image_pull_seconds)
        start = max(now, node.images[stream.build])
        stream.ready = start + self._drawn("start", self.timings.unreal_start_seconds)

    def _autoscale_nodes(self, now: int) -> None:
        self._remove_failed_nodes(now)
        pending = sum(s.node is None for s in self.streams) + sum(p.node is None for p in self.placeholders)
        coming = sum(n.slots for n in self.nodes if n.ready > now)
        room = self.pool.max_size - len(self.nodes)
        backed_off = self.backoff is not None and self.backoff.until > now
        if pending > coming and room > 0 and not backed_off:
            for _ in range(min(math.ceil((pending - coming) / self.pool.slots), room)):
                self._launch(now, refusable=True)
            self.last_scale_up = now
        removable = self._unneeded_for_long(now)
        if now - self.last_scale_up >= self.stack.autoscaler.scale_down_delay_after_add_seconds:
            # Every empty node at once, at most one that still has pods, never below minSize.
            chosen = [n for n in removable if not n.pods] + [n for n in removable if n.pods][:1]
            for node in chosen[: max(len(self.nodes) - self.pool.min_size, 0)]:
                self._drain_node(node)

    def _remove_failed_nodes(self, now: int) -> None:
        """Launches seen to have failed go, and each backs the pool off (exponential_backoff.go Backoff)."""
        for node in [n for n in self.nodes if n.fails is not None and n.fails <= now]:
            self.nodes.remove(node)
            self.outcome.failed_launches += 1
            backoff = self.backoff
            if backoff is not None and now - backoff.last_failure > BACKOFF_RESET_SECONDS:
                backoff = None  # RemoveStaleBackoffData
            if backoff is None:
                duration = BACKOFF_INITIAL_SECONDS
            elif backoff.until < now:
                duration = min(2 * backoff.duration, BACKOFF_MAX_SECONDS)
            else:
                duration = backoff.duration
            self.backoff = Backoff(now + duration, duration, now)

    def _unneeded_for_long(self, now: int) -> list[Node]:
        """The nodes unneeded for scaleDownUnneeded, each node's clock kept on this scan."""
        removable = []
        for node in self.nodes:
            if node.ready > now or node.cordoned or not self._unneeded(node, now):
                node.unneeded_since = None
                continue
            node.unneeded_since = node.unneeded_since if node.unneeded_since is not None else now
            if now - node.unneeded_since >= self.stack.autoscaler.scale_down_unneeded_seconds:
                removable.append(node)
        return removable

    def _unneeded(self, node: Node, now: float) -> bool:
        if len(node.pods) >= UTILIZATION_THRESHOLD * node.slots:
            return False
        if any(isinstance(p, Stream) and p.player is not None for p in node.pods):
            return False  # safe-to-evict: false while a player is connected
        free_elsewhere = sum(
            n.slots - len(n.pods) for n in self.nodes if n is not node and n.ready <= now and not n.cordoned
        )
        return len(node.pods) <= free_elsewhere

    def _drain_node(self, node: Node) -> None:
        for pod in list(node.pods):
            pod.node = None
            if isinstance(pod, Stream):
                self.streams.remove(pod)
                self.streams.append(Stream(self._next("stream"), pod.build))  # the ReplicaSet replaces it
        node.pods.clear()
        self.nodes.remove(node)

    def _account(self, now: int) -> None:
        out = self.outcome
        alive = sum(not n.refused for n in self.nodes)
        out.gpu_seconds += alive * self.pool.gpus
        out.node_seconds += alive
        out.busy_gpu_seconds += len(self.playing) * self.pool.gpus / self.pool.slots
        ready = sum(s.is_ready(now) for s in self.streams)
        out.max_streams = max(out.max_streams, ready)
        out.max_nodes = max(out.max_nodes, alive)
        if self.backoff is not None and self.backoff.until > now:
            out.backoff_seconds += 1
        if now % self.timings.sample_seconds == 0:
            out.samples.append(Sample(now, len(self.queue), len(self.playing), ready, alive))


def simulate(
    stack: SimulatedStack,
    trace: Trace,
    timings: Timings,
    seed: int = 0,
    duration: int | None = None,
    release: Release | None = None,
    starts_at: float = DEFAULT_STARTS_AT,
    scheduling: Scheduling = "spread",
) -> Outcome:
    """Run `trace` through `stack`, with `release` during it; the trace's second 0 is `starts_at` (seconds since
    the epoch) for the stack's schedules. The run lasts `duration` seconds (default: until the trace's last session
    would end) and then until every player has played or left."""
    horizon = trace.end_seconds if duration is None else duration
    return Simulation(stack, trace, timings, seed, horizon, release, starts_at, scheduling).run()
