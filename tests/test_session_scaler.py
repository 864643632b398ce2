"""The stream scaler: each build keeps exactly its streams in use, one per waiting player and its buffer, and a
scale-in removes only starting streams and streams retired for it, never one a player holds.

The rules are pure (session/scaler.py), tested directly; the session service's round (list, settle, scale) is
tested with a fake Kubernetes API in memory, in the order the service writes: retired streams marked first, the
Deployment's scale after."""

from __future__ import annotations

import asyncio
import json
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import pytest
from session_edge import build, builds_json

from pixelstream.tools.capacity.hpa import usage_replicas
from pixelstream.workloads.pixel_streaming.session.app import SessionService, Settings
from pixelstream.workloads.pixel_streaming.session.broker import (
    ASSIGNMENT_HISTORY,
    BUSY,
    HOLDING,
    RETIRING,
    Broker,
    BrokerSettings,
)
from pixelstream.workloads.pixel_streaming.session.scaler import BuildScale, ScaleStep, Stabilizer, scale_step
from pixelstream.workloads.pixel_streaming.session.streams import StreamList, stream_pods
from pixelstream.workloads.pixel_streaming.session.turn import TurnPool, TurnSettings

T0 = 1_000_000.0


def test_the_scaler_keeps_exactly_in_use_plus_waiting_plus_the_buffer() -> None:
    scale = BuildScale("stream-main", buffer=2, min_replicas=1, max_replicas=40)
    for in_use in range(39):
        for queued in range(3):
            assert scale.wanted(in_use, queued) == min(in_use + queued + 2, 40)
    assert BuildScale("stream-old", 0, 0, 10).wanted(0, 0) == 0, "a retired build goes to no stream"
    assert BuildScale("stream-main", 0, 3, 10).wanted(0, 0) == 3, "never below minReplicas"


def test_an_hpa_on_the_pool_ratio_cannot_keep_the_buffer_from_ten_streams_on() -> None:
    """What the HPA the project no longer deploys did: a ratio target meant to keep 2 spare streams over n in use
    (n / (n + 2)). One more player moves the ratio by (n + 1) / n, inside the HPA's 10% tolerance from n = 10 on:
    the HPA keeps its count and the buffer shrinks to one. The scaler adds the stream for every n."""
    kept = []
    for n in range(1, 40):
        ready = n + 2
        target = n / ready
        usage = ((n + 1) / ready) / target
        if usage_replicas(ready, ready, usage) == ready:
            kept.append(n)
        assert BuildScale("s", 2, 0, 100).wanted(n + 1, 0) == n + 3
    assert kept == list(range(10, 40))


def test_scale_up_is_at_once_and_scale_down_waits_for_the_window() -> None:
    stabilizer = Stabilizer(scale_down_seconds=30)
    assert stabilizer.target("main", 5, T0, current=1) == 5
    assert stabilizer.target("main", 8, T0 + 1, current=5) == 8, "up at once"
    assert stabilizer.target("main", 2, T0 + 2, current=8) == 8
    assert stabilizer.target("main", 2, T0 + 31, current=8) == 8, "8 was wanted 30 s ago"
    assert stabilizer.target("main", 2, T0 + 32, current=8) == 2
    assert stabilizer.target("canary", 1, T0 + 32, current=1) == 1, "each build its own window"
    assert Stabilizer(0).target("main", 1, T0, current=6) == 1


def test_a_build_first_seen_keeps_its_count_for_a_window() -> None:
    """A session service that just started (its sessions gone, players about to rejoin) does not drop the streams
    it finds at once: what the Deployment has counts as wanted for a whole window. A longer window keeps the
    history it has."""
    stabilizer = Stabilizer(scale_down_seconds=600)
    assert stabilizer.target("main", 1, T0, current=6) == 6
    assert stabilizer.target("main", 1, T0 + 600, current=6) == 6
    assert stabilizer.target("main", 1, T0 + 601, current=6) == 1
    stabilizer.target("main", 4, T0 + 602, current=1)
    stabilizer.scale_down_seconds = 900
    assert stabilizer.target("main", 1, T0 + 1000, current=4) == 4, "the window grew: 4 is still in it"


def test_a_scale_in_waits_for_the_replica_set_and_for_a_single_one() -> None:
    # settled: 4 ready, none starting, the count 4: two retired streams go
    assert scale_step(4, 2, ready=4, starting=0, retirable=3, rolling=False) == ScaleStep(2, 2)
    # two pods not created yet and one starting: a scale-in still goes by retired streams only (the ReplicaSet may
    # take the starting one first; the retired one left over goes back into service next round)
    assert scale_step(6, 3, ready=3, starting=1, retirable=2, rolling=False) == ScaleStep(4, 2)
    # never further than the retired streams allow (the rest hold players)
    assert scale_step(5, 0, ready=5, starting=0, retirable=2, rolling=False) == ScaleStep(3, 2)
    # the last scale-in not done yet (6 pods for a count of 4): nothing more, and no retired stream goes back
    assert scale_step(4, 2, ready=6, starting=0, retirable=3, rolling=False) == ScaleStep(4, None)
    assert scale_step(4, 5, ready=6, starting=0, retirable=3, rolling=False) == ScaleStep(5, None)
    # settled again: a scale-up puts the retired streams back
    assert scale_step(4, 5, ready=4, starting=0, retirable=3, rolling=False) == ScaleStep(5, 0)
    # rolling out (two ReplicaSets): no scale-in at all
    assert scale_step(4, 2, ready=4, starting=0, retirable=3, rolling=True) == ScaleStep(4, 0)


# -- the service's round against a ReplicaSet that ranks as Kubernetes does ------------------------------------


@dataclass(eq=False)
class FakePod:
    name: str
    node: str
    created: int
    ready_at: int
    """The round from which its streamer is connected."""
    cost: int = 0
    phase: str = "Running"
    replica_set: str = "stream-main-1"

    def ready(self, now: int) -> bool:
        return self.phase == "Running" and now >= self.ready_at


@dataclass
class FakeCluster:
    """One Deployment's pods as the API server holds them, and its ReplicaSet controller: a scale-in deletes the
    pods ranked first by ActivePodsWithRanks.Less (Kubernetes pkg/controller/controller_utils.go): unscheduled,
    then pending, then not ready, then the lowest pod-deletion-cost, then the most pods of the ReplicaSet on the
    same node, then ready for the shortest time, then the newest. Failed pods count for nothing."""

    nodes: tuple[str, ...]
    replicas: int = 0
    pods: list[FakePod] = field(default_factory=list)
    now: int = 0
    created: int = 100
    start_rounds: int = 3
    deleted: list[FakePod] = field(default_factory=list)
    writes: list[tuple[str, str, int]] = field(default_factory=list)
    failing_costs: bool = False

    def active(self) -> list[FakePod]:
        return [p for p in self.pods if p.phase not in ("Failed", "Succeeded")]

    def reconcile(self, rng: random.Random) -> list[FakePod]:
        active = self.active()
        if len(active) < self.replicas:
            for _ in range(self.replicas - len(active)):
                self.created += 1
                node = rng.choice(self.nodes)
                self.pods.append(FakePod(f"s{self.created}", node, self.created, self.now + self.start_rounds))
            return []
        on_node = {n: sum(1 for p in active if p.node == n) for n in self.nodes}

        def rank(p: FakePod) -> tuple:
            ready = p.ready(self.now)
            return (ready, p.cost, -on_node[p.node], -(p.ready_at if ready else 0), -p.created)

        gone = sorted(active, key=rank)[: len(active) - self.replicas]
        self.pods = [p for p in self.pods if p not in gone]
        self.deleted += gone
        return gone

    def listing(self) -> dict[str, Any]:
        return {
            "items": [
                {
                    "metadata": {
                        "name": p.name,
                        "labels": {"app.kubernetes.io/name": "stream", "pixelstream.io/build": "main"},
                        "ownerReferences": [{"kind": "ReplicaSet", "name": p.replica_set, "controller": True}],
                    },
                    "spec": {"nodeName": p.node},
                    "status": {
                        "phase": p.phase,
                        "podIP": f"10.0.{p.created // 250}.{p.created % 250}",
                        "conditions": [{"type": "Ready", "status": "True" if p.ready(self.now) else "False"}],
                    },
                }
                for p in self.pods
            ]
        }

    async def list_streams(self) -> StreamList:
        return stream_pods(self.listing())

    async def set_cost(self, stream: str, cost: int) -> None:
        if self.failing_costs:
            raise ConnectionError("the API server is unreachable")
        self.writes.append(("cost", stream, cost))
        for pod in self.pods:
            if pod.name == stream:
                pod.cost = cost

    async def read_scale(self, deployment: str) -> int:
        return self.replicas

    async def write_scale(self, deployment: str, replicas: int) -> None:
        self.writes.append(("scale", deployment, replicas))
        self.replicas = replicas


def service(
    cluster: FakeCluster, buffer: int, scale_down_seconds: int = 0, clock: list[float] | None = None
) -> SessionService:
    document = builds_json([build("main", 1, buffer=buffer, max_replicas=20)], scale_down_seconds)

    async def read_builds() -> str:
        return document

    async def nothing(*_: object) -> Any:
        return []

    now = clock if clock is not None else [T0]
    built = SessionService(
        Settings(),
        Broker(BrokerSettings(claim_seconds=10_000, reconnect_seconds=10_000)),
        TurnPool(TurnSettings("s")),
        None,
        cluster.list_streams,
        read_builds,
        nothing,
        cluster.set_cost,
        cluster.read_scale,
        cluster.write_scale,
        clock=lambda: now[0],
    )
    asyncio.run(built.refresh_builds())
    return built


def round_of(svc: SessionService) -> None:
    asyncio.run(svc._refresh_streams())


def join(svc: SessionService, identity: str) -> str:
    """A join as the service's handler makes it: the session, and its stream's busy mark written at once."""
    session = svc.broker.join(identity, svc.clock())

    async def marked() -> None:
        await svc._write_costs()

    asyncio.run(marked())
    return session.id


def held(svc: SessionService) -> set[str]:
    return {s.stream for s in svc.broker.sessions.values() if s.state in HOLDING and s.stream}


@pytest.mark.parametrize("seed", range(12))
def test_the_replica_set_never_removes_a_stream_a_player_holds(seed: int) -> None:
    """Players join and leave at random over 300 rounds; the ReplicaSet acts right after the service's round, or
    only every second or third round (a slow controller), a new pod takes three rounds to start, and now and then a
    pod fails (evicted). Whatever the ReplicaSet deletes, no player holds it, and the streams come down with the
    players."""
    rng = random.Random(seed)
    cluster = FakeCluster(nodes=("node-a", "node-b", "node-c"), replicas=2)
    clock = [T0]
    buffer = rng.choice([0, 1, 2])
    svc = service(cluster, buffer=buffer, scale_down_seconds=rng.choice([0, 4]), clock=clock)
    players: list[str] = []
    lag = rng.choice([1, 2, 3])  # the ReplicaSet acts every `lag` rounds
    for turn in range(300):
        cluster.now, clock[0] = turn, T0 + turn
        arriving = turn < 150  # a busy half, then a quiet one
        for _ in range(rng.choice([0, 0, 1, 2] if arriving else [0, 0, 0, 1])):
            players.append(join(svc, f"link:{seed}-{turn}-{rng.random()}"))
        if players and rng.random() < (0.4 if arriving else 0.8):
            svc.broker.leave(players.pop(rng.randrange(len(players))), clock[0])
        if cluster.pods and rng.random() < 0.02:
            rng.choice(cluster.pods).phase = "Failed"
        # The ReplicaSet acts at any moment: here before the service's next round (players just given streams),
        # or after it.
        before = rng.random() < 0.5
        for moment in ("before", "after"):
            if moment == "after":
                round_of(svc)
            if turn % lag == 0 and before == (moment == "before"):
                gone = cluster.reconcile(rng)
                assert not {p.name for p in gone} & held(svc), f"round {turn}: a stream a player holds was deleted"
    assert cluster.deleted, "scale-ins happened"
    wanted = len(held(svc)) + len(svc.broker.queue) + buffer
    for turn in range(300, 330):  # nobody new: the count settles on what is wanted
        cluster.now, clock[0] = turn, T0 + turn
        round_of(svc)
        cluster.reconcile(rng)
    assert cluster.replicas == min(len(held(svc)) + len(svc.broker.queue) + buffer, 20) <= wanted


def test_retired_streams_stay_retired_until_the_replica_set_has_removed_them() -> None:
    """Four ready streams, two held, no buffer: two retired, the count 2. The ReplicaSet is slow: the next round
    still lists all four. Nothing changes then; the retired streams take no new player, who waits, and when the
    ReplicaSet acts it removes exactly the retired two."""
    cluster = FakeCluster(nodes=("node-a",), replicas=4)
    cluster.pods = [FakePod(f"a{i}", "node-a", i, 0) for i in range(1, 5)]
    svc = service(cluster, buffer=0)
    for name in ("alice", "bob"):
        join(svc, f"link:{name}")
    round_of(svc)
    retired = {w[1] for w in cluster.writes if w[0] == "cost" and w[2] == RETIRING}
    assert len(retired) == 2 and cluster.replicas == 2
    cluster.writes = []
    round_of(svc)  # the ReplicaSet has not acted
    assert [w for w in cluster.writes if w[0] == "scale"] == [] and svc.broker.counts("main")["retiring"] == 2
    carol = join(svc, "link:carol")
    assert svc.broker.sessions[carol].state.value == "queued", "a retired stream takes nobody"
    assert {p.name for p in cluster.reconcile(random.Random(0))} == retired
    round_of(svc)
    assert cluster.replicas == 3, "then carol's stream starts"


def test_a_starting_stream_is_never_counted_on_to_go_first() -> None:
    """Four ready streams, three held, and one starting; nobody waits. A scale-in counting the starting pod as the
    first to go would retire one stream and write 3; the pod becomes ready, the next player gets it, and the slow
    ReplicaSet then removes it. Counted on only for retired streams, the pod is never in danger."""
    cluster = FakeCluster(nodes=("node-a",), replicas=5)
    cluster.pods = [FakePod(f"a{i}", "node-a", i, 0) for i in range(1, 5)] + [FakePod("s5", "node-a", 5, 2)]
    clock = [T0]
    svc = service(cluster, buffer=0, clock=clock)
    for name in ("p1", "p2", "p3"):
        join(svc, f"link:{name}")
    round_of(svc)
    assert cluster.replicas == 4, "only the retired stream's worth"
    cluster.now, clock[0] = 2, T0 + 2  # s5 is ready; the ReplicaSet has not acted
    round_of(svc)
    join(svc, "link:p4")
    gone = cluster.reconcile(random.Random(0))
    assert gone and not {p.name for p in gone} & held(svc)


def test_a_scale_in_marks_the_streams_it_removes_before_it_writes_the_scale() -> None:
    """Four ready streams, two per node, one player, buffer 1: two to go. The service retires the two on the node
    without a player (it empties), writes their cost, then the scale; the player's stream is untouched and the free
    one beside it stays for the next player."""
    cluster = FakeCluster(nodes=("node-a", "node-b"), replicas=4)
    names = [("a1", "node-a"), ("a2", "node-a"), ("b1", "node-b"), ("b2", "node-b")]
    cluster.pods = [FakePod(name, node, index, 0) for index, (name, node) in enumerate(names)]
    svc = service(cluster, buffer=1)
    alice = svc.broker.join("link:alice", T0)
    round_of(svc)
    assert alice.stream == "a1" and ("cost", "a1", BUSY) in cluster.writes
    retired = [w for w in cluster.writes if w[0] == "cost" and w[2] == RETIRING]
    assert {w[1] for w in retired} == {"b1", "b2"}
    assert cluster.writes[-1] == ("scale", "stream-main", 2), "the scale comes after the marks"
    assert {p.name for p in cluster.reconcile(random.Random(0))} == {"b1", "b2"}
    assert svc.broker.join("link:bob", T0).stream == "a2"


def test_no_scale_in_while_a_mark_is_not_written_and_a_scale_up_is_never_held() -> None:
    cluster = FakeCluster(nodes=("node-a",), replicas=2, failing_costs=True)
    cluster.pods = [FakePod("a1", "node-a", 1, 0), FakePod("a2", "node-a", 2, 0)]
    svc = service(cluster, buffer=0)
    round_of(svc)
    assert cluster.writes == [] and cluster.replicas == 2, "the streams to remove are not marked: nothing removed"
    cluster.failing_costs = False
    round_of(svc)
    assert cluster.writes == [("cost", "a1", RETIRING), ("cost", "a2", RETIRING), ("scale", "stream-main", 0)]
    cluster.reconcile(random.Random(0))
    cluster.failing_costs, cluster.writes = True, []
    for index in range(3):
        svc.broker.join(f"link:{index}", T0)
    round_of(svc)
    assert cluster.writes == [("scale", "stream-main", 3)], "players wait: streams start whatever else fails"


def test_failed_pods_and_a_rollout_hold_no_stream_a_player_has() -> None:
    cluster = FakeCluster(nodes=("node-a",), replicas=3)
    cluster.pods = [FakePod(f"a{i}", "node-a", i, 0) for i in range(1, 4)]
    cluster.pods.append(FakePod("evicted", "node-a", 9, 0, phase="Failed"))
    svc = service(cluster, buffer=0)
    for index in range(2):
        svc.broker.join(f"link:{index}", T0)
    round_of(svc)
    assert cluster.writes[-2:] == [("cost", "a3", RETIRING), ("scale", "stream-main", 2)], (
        "the failed pod is no starting pod that would go first: a free stream is retired for the scale-in"
    )
    assert [p.name for p in cluster.reconcile(random.Random(0))] == ["a3"]
    cluster.pods.append(FakePod("next", "node-a", 10, 0, replica_set="stream-main-2"))
    cluster.replicas, cluster.writes = 3, []
    svc.broker.leave(next(iter(svc.broker.sessions)), T0)
    round_of(svc)
    assert not [w for w in cluster.writes if w[0] == "scale"], "two ReplicaSets: no scale-in while it rolls"
    metrics = asyncio.run(svc._metrics(None)).text
    assert 'pixelstream_session_scale_in_held{build="main"} 1\n' in metrics, "and the hold shows"


def test_a_session_service_that_restarts_keeps_the_streams_it_finds_for_a_window() -> None:
    cluster = FakeCluster(nodes=("node-a",), replicas=3)
    cluster.pods = [FakePod(f"a{i}", "node-a", i, 0) for i in range(1, 4)]
    clock = [T0]
    svc = service(cluster, buffer=0, scale_down_seconds=60, clock=clock)
    round_of(svc)
    assert cluster.writes == [] and svc.targets["main"] == 3
    clock[0] = T0 + 61
    round_of(svc)
    assert cluster.writes[-1] == ("scale", "stream-main", 0)


@pytest.mark.parametrize("field", ["deployment", "bufferStreams", "maxReplicas", "scaleDownSeconds"])
def test_a_builds_document_without_its_scaling_is_refused_and_changes_nothing(field: str) -> None:
    from pixelstream.workloads.pixel_streaming.session.app import read_builds

    document: dict[str, Any] = json.loads(builds_json([build("main", 1, buffer=1)], 30))
    [entry] = document["builds"]
    assert read_builds(json.dumps(document)).builds[0].scale == BuildScale("stream-main", 1, 0, 10)
    if field in document:
        del document[field]
    else:
        del entry[field]
    with pytest.raises(ValueError, match=field):
        read_builds(json.dumps(document))


def test_a_schedule_the_service_cannot_read_is_left_out_and_the_builds_apply() -> None:
    from pixelstream.workloads.pixel_streaming.session.app import read_builds

    launch = {"name": "launch", "start": "0 18 * * 5", "end": "0 22 * * 5", "timeZone": "Europe/Paris"}
    document = {
        **json.loads(builds_json([build("main", 1, buffer=1)], 30)),
        "schedules": [{**launch, "bufferStreams": 6}],
    }
    [schedule] = read_builds(json.dumps(document)).schedules
    assert (schedule.name, schedule.buffer, schedule.time_zone) == ("launch", 6, "Europe/Paris")
    for broken in (
        {**launch, "bufferStreams": "6"},
        {**launch, "timeZone": "Mars/Olympus", "bufferStreams": 6},
        {**launch, "start": "0 18 * *", "bufferStreams": 6},
        {**launch, "name": "a name\nwith a line", "bufferStreams": 6},
    ):
        read = read_builds(json.dumps({**document, "schedules": [broken, {**launch, "bufferStreams": 2}]}))
        assert [s.buffer for s in read.schedules] == [2] and read.builds[0].name == "main"
    unscheduled = {k: v for k, v in document.items() if k != "schedules"}
    assert read_builds(json.dumps(unscheduled)).schedules == [], "an older document: no schedules"


def test_the_wait_a_queued_player_is_told_counts_the_streams_starting_for_it() -> None:
    """The service hands the broker its build's starting streams with every listing: the first queued players
    are told one cold start (their streams are coming), not the gap between past assignments."""
    cluster = FakeCluster(nodes=("node-a",), replicas=3)
    cluster.pods = [FakePod("a1", "node-a", 1, 0), FakePod("s2", "node-a", 2, 9), FakePod("s3", "node-a", 3, 9)]
    svc = service(cluster, buffer=0)
    join(svc, "link:p1")
    waiting = [svc.broker.join(f"link:q{i}", svc.clock()) for i in range(3)]
    # Earlier streams handed out 40 s apart; p1 gets a1 at this round, 40 s after the last.
    svc.broker._assignments["main"] = deque([T0 - 80, T0 - 40], maxlen=ASSIGNMENT_HISTORY)
    round_of(svc)
    assert svc.broker.starting == {"main": 2}
    told = [svc.broker.status(w.id, svc.clock()).estimated_wait_seconds for w in waiting]
    # Without the starting streams it would be 40, 80, 120 (a place per 40 s gap).
    assert told == [120, 120, 160], "a stream is starting for each of the first two; the third waits a gap more"
