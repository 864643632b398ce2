"""The stream scaler: each build keeps exactly its streams in use, one per waiting player and its buffer, and a
scale-in removes only starting streams and streams retired for it, never one a player holds.

The rules are pure (session/scaler.py), tested directly; the session service's round (list, settle, scale) is
tested with a fake Kubernetes API in memory, in the order the service writes: retired streams marked first, the
Deployment's scale after."""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass, field
from typing import Any

import pytest

from pixelstream.tools.capacity.hpa import usage_replicas
from pixelstream.workloads.pixel_streaming.session.app import SessionService, Settings
from pixelstream.workloads.pixel_streaming.session.broker import BUSY, RETIRING, Broker
from pixelstream.workloads.pixel_streaming.session.scaler import BuildScale, Stabilizer, scale_step
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
    assert stabilizer.target("main", 5, T0) == 5
    assert stabilizer.target("main", 8, T0 + 1) == 8, "up at once"
    assert stabilizer.target("main", 2, T0 + 2) == 8
    assert stabilizer.target("main", 2, T0 + 31) == 8, "8 was wanted 30 s ago"
    assert stabilizer.target("main", 2, T0 + 32) == 2
    assert stabilizer.target("canary", 1, T0 + 32) == 1, "each build its own window"
    assert Stabilizer(0).target("main", 1, T0) == 1


def test_a_scale_in_removes_no_more_than_the_starting_and_the_retired_streams() -> None:
    rng = random.Random(7)
    for _ in range(20_000):
        current, target = rng.randint(0, 30), rng.randint(0, 30)
        starting = rng.randint(0, current)
        retirable = rng.randint(0, current - starting)
        step = scale_step(current, target, starting, retirable)
        if target >= current:
            assert (step.replicas, step.retire) == (target, 0)
            continue
        removed = current - step.replicas
        assert step.replicas >= target and 0 <= step.retire <= retirable
        assert removed <= starting + step.retire, "the ReplicaSet takes starting pods, then the retired ones"
        assert removed == min(current - target, starting + retirable), "as far as it safely can"
        assert step.retire == min(max(current - target - starting, 0), retirable), "no stream retired needlessly"


# -- the service's round ------------------------------------------------------------------------------------


def pod(name: str, node: str, ready: bool = True, build: str = "main") -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "labels": {"app.kubernetes.io/name": "stream", "pixelstream.io/build": build},
            "ownerReferences": [{"kind": "ReplicaSet", "name": f"stream-{build}-1", "controller": True}],
        },
        "spec": {"nodeName": node},
        "status": {
            "podIP": f"10.0.192.{abs(hash(name)) % 250}",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


@dataclass
class FakeApi:
    """The stream pods, one Deployment's replicas, and every write in order."""

    pods: list[dict[str, Any]]
    replicas: int
    writes: list[tuple[str, str, int]] = field(default_factory=list)
    failing_costs: bool = False

    async def list_streams(self) -> StreamList:
        return stream_pods({"items": self.pods})

    async def set_cost(self, stream: str, cost: int) -> None:
        if self.failing_costs:
            raise ConnectionError("the API server is unreachable")
        self.writes.append(("cost", stream, cost))

    async def read_scale(self, deployment: str) -> int:
        return self.replicas

    async def write_scale(self, deployment: str, replicas: int) -> None:
        self.writes.append(("scale", deployment, replicas))
        self.replicas = replicas


def service(api: FakeApi, buffer: int, scale_down_seconds: int = 0, weight: int = 1) -> SessionService:
    document = {
        "scaleDownSeconds": scale_down_seconds,
        "builds": [
            {
                "name": "main",
                "weight": 1,
                "unrealVersion": "5.7",
                "deployment": "stream-main",
                "bufferStreams": buffer,
                "minReplicas": 0,
                "maxReplicas": 10,
            }
        ],
    }

    async def read_builds() -> str:
        return json.dumps(document)

    async def nothing(*_: object) -> Any:
        return []

    now = [T0]
    built = SessionService(
        Settings(),
        Broker(),
        TurnPool(TurnSettings("s")),
        None,
        api.list_streams,
        read_builds,
        nothing,
        api.set_cost,
        api.read_scale,
        api.write_scale,
        clock=lambda: now[0],
    )
    asyncio.run(built.refresh_builds())
    return built


def round_of(svc: SessionService) -> None:
    asyncio.run(svc._refresh_streams())


def test_a_scale_in_marks_the_streams_it_removes_before_it_writes_the_scale() -> None:
    """Four ready streams, two per node, one player on node-a, buffer 1: two to go. The service retires node-b's
    two (no player there: the node empties), writes their cost, then the scale; the player's stream is untouched
    and node-a's free stream stays for the next player."""
    api = FakeApi([pod("a1", "node-a"), pod("a2", "node-a"), pod("b1", "node-b"), pod("b2", "node-b")], replicas=4)
    svc = service(api, buffer=1)
    alice = svc.broker.join("link:alice", T0)
    round_of(svc)
    held = alice.stream
    assert ("cost", held, BUSY) in api.writes
    retired = [w for w in api.writes if w[0] == "cost" and w[2] == RETIRING]
    assert {w[1] for w in retired} == {"b1", "b2"}
    assert api.writes[-1] == ("scale", "stream-main", 2), "the scale comes after the marks"
    assert all(api.writes.index(w) < len(api.writes) - 1 for w in retired)
    assert svc.broker.join("link:bob", T0).stream not in ("b1", "b2", held), "bob gets the free one, node-a's"


def test_starting_streams_go_first_and_a_ready_stream_is_retired_only_beyond_them() -> None:
    api = FakeApi([pod("a1", "node-a"), pod("a2", "node-a", ready=False), pod("b1", "node-b", ready=False)], 3)
    svc = service(api, buffer=1)
    round_of(svc)
    assert api.writes == [("scale", "stream-main", 1)], "two starting pods go; the ready one is the buffer"
    api.pods, api.replicas, api.writes = [pod("a1", "node-a"), pod("a2", "node-a", ready=False)], 2, []
    svc = service(api, buffer=0)
    round_of(svc)
    assert api.writes == [("cost", "a1", RETIRING), ("scale", "stream-main", 0)]


def test_no_scale_in_while_a_mark_is_not_written_and_a_scale_up_is_never_held() -> None:
    api = FakeApi([pod("a1", "node-a"), pod("a2", "node-a")], replicas=2, failing_costs=True)
    svc = service(api, buffer=0)
    round_of(svc)
    assert api.writes == [] and api.replicas == 2, "the streams to remove are not marked: nothing removed"
    api.failing_costs = False
    round_of(svc)
    assert api.writes == [("cost", "a1", RETIRING), ("cost", "a2", RETIRING), ("scale", "stream-main", 0)]
    api.pods, api.failing_costs, api.writes = [], True, []
    for index in range(3):
        svc.broker.join(f"link:{index}", T0)
    round_of(svc)
    assert api.writes == [("scale", "stream-main", 3)], "players wait: streams start whatever else fails"


def test_retired_streams_go_back_to_players_when_the_scale_in_is_no_longer_wanted() -> None:
    api = FakeApi([pod("a1", "node-a"), pod("a2", "node-a"), pod("a3", "node-a")], replicas=3)
    svc = service(api, buffer=0, scale_down_seconds=60)
    players = [svc.broker.join(f"link:{index}", T0) for index in range(3)]
    round_of(svc)
    assert api.writes == [("cost", f"a{i}", BUSY) for i in (1, 2, 3)]
    for player in players:
        svc.broker.leave(player.id, T0 + 1)
    svc.clock = lambda: T0 + 60
    round_of(svc)
    assert not [w for w in api.writes if w[0] == "scale"], "within the scale-down window: nothing yet"
    svc.clock = lambda: T0 + 61
    round_of(svc)
    assert api.replicas == 0 and svc.broker.counts("main")["retiring"] == 3
    api.writes = []
    for index in range(2):
        svc.broker.join(f"link:{index}", T0)
    round_of(svc)  # the pods are still there (the ReplicaSet is slow): two players want them
    assert ("scale", "stream-main", 2) in api.writes
    assert svc.broker.counts("main")["retiring"] == 0 and svc.broker.counts("main")["inUse"] == 2


@pytest.mark.parametrize("field", ["deployment", "bufferStreams", "maxReplicas", "scaleDownSeconds"])
def test_a_builds_document_without_its_scaling_is_refused_and_changes_nothing(field: str) -> None:
    from pixelstream.workloads.pixel_streaming.session.app import read_builds

    entry = {
        "name": "main",
        "weight": 1,
        "unrealVersion": "5.7",
        "deployment": "stream-main",
        "bufferStreams": 1,
        "minReplicas": 0,
        "maxReplicas": 10,
    }
    document: dict[str, Any] = {"scaleDownSeconds": 30, "builds": [entry]}
    assert read_builds(json.dumps(document)).builds[0].scale == BuildScale("stream-main", 1, 0, 10)
    if field == "scaleDownSeconds":
        del document[field]
    else:
        del entry[field]
    with pytest.raises(ValueError, match=field):
        read_builds(json.dumps(document))
