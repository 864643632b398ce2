"""The session broker: one queue of players, one stream per player, no player's choice about which.

Pure state (no I/O, the clock is passed in), so that every rule is tested directly:
- an identity (an authenticated player) holds at most one session; joining again returns the same one;
- players are served in arrival order; a stream is given to exactly one session at a time;
- an assigned player must connect within `claim_seconds`, a disconnected one may come back within
  `reconnect_seconds`; after that, or after `max_session_seconds`, the session ends and the stream is free; a
  queued player who stops asking for its place for `queue_idle_seconds` leaves the queue;
- a stream that is terminating keeps a connected player until the session ends (the pod's preStop hooks wait
  for it) but takes no new one; a player it was assigned who has not connected yet goes back to the head of the
  queue (the hooks wait for connected players only), as it does when its stream goes away; a stream that goes
  away ends the session of a player who had connected to it;
- what a signalling connection reports (it closed, its stream refused it) counts only for the stream that
  connection was made to: a connection the session has since left behind changes nothing;
- a stream whose signalling refused a player is skipped for `quarantine_seconds` and the player keeps its
  place at the head of the queue;
- every stream belongs to a build (a version of the Unreal app); a new session is sent to a build at random in
  proportion to the builds' weights and gets a stream of that build only; a build at weight 0 takes no new
  session, and a session still waiting for a build whose weight went to 0 (or which went away) is sent to
  another, keeping its place in the queue. Players queue in one arrival order; a player whose build has no free
  stream does not hold up a player behind it whose build has one;
- the broker's players outlive the service (snapshot, restore): a restored session that was connected waits
  `reconnect_seconds` from the restore for its player to come back, one not yet connected its claim (each at
  least RESTORED_WINDOW_SECONDS), and each gets back the stream it held once the streams are listed again (or,
  if that stream went away meanwhile, goes back to the head of the queue or ends, as when its stream goes away);
- a stream retired for a scale-in takes no player: the ReplicaSet removes it first (its deletion cost is the
  lowest), so that a scale-in never takes a stream a player was given meanwhile. Free streams retire from the
  nodes with the fewest streams in use first, so that the emptiest nodes empty and the cluster autoscaler can
  remove them.
"""

from __future__ import annotations

import itertools
import math
import random
import secrets
import statistics
import typing
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

from .scaler import emptiest_nodes_first


class State(str, Enum):
    QUEUED = "queued"
    ASSIGNED = "assigned"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    ENDED = "ended"


HOLDING = (State.ASSIGNED, State.CONNECTED, State.RECONNECTING)

# A stream's pod deletion cost: the ReplicaSet removes the lowest first (streams.py writes it).
BUSY, FREE, RETIRING = 1, 0, -1


class QueueFull(Exception):
    """The waiting room holds `max_queue` players already."""


class NotAssigned(Exception):
    """The session holds no stream (still queued, or ended)."""


@dataclass
class Session:
    id: str
    identity: str
    created: float
    seen: float = 0.0
    """When the player last asked for the session (joined, or polled its status)."""
    state: State = State.QUEUED
    stream: str | None = None
    deadline: float | None = None
    """When an assigned session must have connected, or a reconnecting one must be back."""
    assigned_at: float | None = None
    ended_reason: str | None = None
    build: str = ""
    """The build whose streams the session may get."""


@dataclass
class Stream:
    name: str
    address: str
    build: str = ""
    session: str | None = None
    quarantined_until: float = 0.0
    draining: bool = False
    """Terminating: its player may stay, nobody new comes."""
    retiring: bool = False
    """Chosen for a scale-in: nobody new comes."""
    node: str = ""


@dataclass
class Status:
    state: State
    position: int | None = None
    """1 for the next player to get a stream."""
    estimated_wait_seconds: int | None = None
    reason: str | None = None


@dataclass
class BrokerSettings:
    claim_seconds: float = 30
    reconnect_seconds: float = 20
    max_session_seconds: float = 0
    """0: a session lasts as long as its player stays."""
    max_queue: int = 500
    quarantine_seconds: float = 30
    cold_start_seconds: float = 120
    """What a player at the head of the queue waits when there is no history to go by: one new stream's start."""
    ended_memory_seconds: float = 120
    """How long an ended session still answers its status (so the page can say why it ended)."""
    queue_idle_seconds: float = 90
    """A queued player who has not asked for its place this long has gone (a background tab's timers still run
    at least once a minute)."""


DEFAULT_BUILD = "main"
# The snapshot's format: an instance refuses one it does not know (and starts empty) rather than misread it.
SNAPSHOT_VERSION = 1
# The least a restored player has to come back: its page asks every 2-4 s while the service is away, and the
# ingress learns the new pod's address within seconds; the outage was the service's, not the player's.
RESTORED_WINDOW_SECONDS = 30
# A snapshot older than this is refused: its players are long gone (a replacement takes seconds; writes that
# failed for longer, or a namespace restored from a backup, would hand their streams to strangers' old sessions).
STALE_SNAPSHOT_SECONDS = 600


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _numbers(values: Any) -> list[float]:
    if not isinstance(values, list) or not all(_number(v) for v in values):
        raise ValueError("the snapshot's assignment times are not numbers")
    return [float(v) for v in values]


def _restored_session(fields: Any, now: float) -> Session:
    """A session as a snapshot holds it: Session's fields and no other, each of its type (a state as its name, a
    number perhaps an int in JSON, `seen` left out), seen now."""
    hints = typing.get_type_hints(Session)
    if not isinstance(fields, dict) or set(fields) != set(hints):
        raise ValueError("a session of the snapshot does not have the fields this broker writes")
    for name, kind in hints.items():
        value = fields[name]
        if name == "seen" or (value is None and type(None) in typing.get_args(kind)):
            if name == "seen" and value is not None:
                raise ValueError("a session of the snapshot has a seen, which snapshots leave out")
            continue
        expected = next(k for k in (*typing.get_args(kind), kind) if k is not type(None) and isinstance(k, type))
        expected = str if expected is State else expected
        if not (_number(value) if expected is float else isinstance(value, expected)):
            raise ValueError(f"a session of the snapshot has a {name} that is not a {expected.__name__}")
    return Session(**{**fields, "state": State(fields["state"]), "seen": now})


ASSIGNMENT_HISTORY = 21
"""How many of a build's last assignments the wait estimate goes by (20 gaps)."""


def estimated_wait(position: int, assignments: Sequence[float], cold_start_seconds: float, starting: int = 0) -> int:
    """Seconds until the player at `position` of a build's queue gets a stream.

    The first `starting` players have a stream starting for them already (the scaler starts one per waiting player
    up to maxReplicas): one cold start. Players beyond them wait for sessions to end: after the starting streams'
    cold start if there are any, one median gap between the build's recent `assignments` (times) each, at most a
    cold start per player; with no history, one cold start. The capacity simulator tells its players the same and
    reports how far it was from their wait (pixelstream.tools.capacity, toldWaitError)."""
    if position <= starting:
        return math.ceil(cold_start_seconds)
    gaps = [b - a for a, b in itertools.pairwise(assignments) if b > a]
    if not gaps:
        return math.ceil(cold_start_seconds)
    gap = min(statistics.median(gaps), cold_start_seconds)
    return math.ceil((cold_start_seconds if starting else 0) + (position - starting) * gap)


@dataclass
class Broker:
    settings: BrokerSettings = field(default_factory=BrokerSettings)
    weights: dict[str, int] = field(default_factory=lambda: {DEFAULT_BUILD: 1})
    """Build name -> weight: a new session goes to a build with the chance weight / sum of weights."""
    choose: random.Random = field(default_factory=random.SystemRandom)
    sessions: dict[str, Session] = field(default_factory=dict)
    streams: dict[str, Stream] = field(default_factory=dict)
    queue: deque[str] = field(default_factory=deque)
    _by_identity: dict[str, str] = field(default_factory=dict)
    _assignments: dict[str, deque[float]] = field(default_factory=dict)
    starting: Mapping[str, int] = field(default_factory=dict)
    """Build -> its streams starting (listed, not yet ready), as the service last listed them."""
    _cost_changes: dict[str, int] = field(default_factory=dict)
    _queued: Counter[str] = field(default_factory=Counter)
    """Build -> players of it in the queue: an assignment scans the queue only for builds with a free stream."""
    _restored: set[str] = field(default_factory=set)
    """Restored sessions that held a stream, until the streams are listed again (set_streams gives it back)."""

    # -- outliving the service -----------------------------------------------------------------------------

    def snapshot(self, now: float) -> dict[str, Any]:
        """The players' state (sessions, the queue's order, the recent assignments) at `now`, as JSON-ready data;
        the streams are the Kubernetes API's to list again. When a player last asked is left out: it changes with
        every poll, and a restore counts from the restore."""
        return {
            "version": SNAPSHOT_VERSION,
            "savedAt": now,
            "sessions": [{**asdict(s), "state": s.state.value, "seen": None} for s in self.sessions.values()],
            "queue": list(self.queue),
            "assignments": {build: list(times) for build, times in self._assignments.items()},
        }

    def restore(self, data: Mapping[str, Any], now: float) -> None:
        """Takes the players of a snapshot another instance of the service wrote. Their signalling connections
        closed with that instance: a connected session waits `reconnect_seconds` from now for its player, an
        assigned one its claim (each at least RESTORED_WINDOW_SECONDS), a queued one counts its idle time from
        now; the streams they hold are theirs again at the next set_streams. A snapshot of another format, older
        than STALE_SNAPSHOT_SECONDS or that does not hold together (types, the queue against the queued sessions,
        a stream held twice) raises ValueError and leaves the broker as it was."""
        if data.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"snapshot version {data.get('version')!r} is not {SNAPSHOT_VERSION}")
        if not _number(data.get("savedAt")) or now - data["savedAt"] > STALE_SNAPSHOT_SECONDS:
            raise ValueError(f"the snapshot is older than {STALE_SNAPSHOT_SECONDS} s")
        sessions = {}
        for fields in data["sessions"]:
            session = _restored_session(fields, now)
            if session.state in (State.CONNECTED, State.RECONNECTING):
                back_by = now + max(self.settings.reconnect_seconds, RESTORED_WINDOW_SECONDS)
                session.state, session.deadline = State.RECONNECTING, max(session.deadline or 0, back_by)
            elif session.state == State.ASSIGNED:
                claim_by = now + max(self.settings.claim_seconds, RESTORED_WINDOW_SECONDS)
                session.deadline = max(session.deadline or 0, claim_by)
            sessions[session.id] = session
        queue = deque(data["queue"])
        queued = sorted(i for i, s in sessions.items() if s.state == State.QUEUED)
        held = [s.stream for s in sessions.values() if s.state in HOLDING]
        if sorted(queue) != queued or None in held or len(set(held)) != len(held):
            raise ValueError("the snapshot's queue, sessions and streams do not hold together")
        assignments = {
            str(build): deque(_numbers(times), maxlen=ASSIGNMENT_HISTORY)
            for build, times in data["assignments"].items()
        }
        self.sessions.update(sessions)
        self._by_identity.update((s.identity, s.id) for s in sessions.values())
        self._restored = {s.id for s in sessions.values() if s.state in HOLDING}
        self.queue, self._queued = queue, Counter(sessions[i].build for i in queue)
        self._assignments.update(assignments)

    def _reclaim(
        self, draining: Mapping[str, str], builds: Mapping[str, str], nodes: Mapping[str, str], now: float
    ) -> None:
        """Gives restored sessions their streams back, as listed now: a terminating one too if the player had
        connected (it keeps its player); a stream gone since goes the way set_streams sends its holders."""
        # The last served first: those requeued go to the head in the order they were served, as in set_streams.
        for session in sorted(
            (self.sessions[i] for i in self._restored if i in self.sessions),
            key=lambda s: (s.assigned_at or 0, s.created),
            reverse=True,
        ):
            if session.state not in HOLDING or session.stream is None:
                continue
            name = session.stream
            if name not in self.streams and session.state != State.ASSIGNED and name in draining:
                build, node = builds.get(name, session.build), nodes.get(name, "")
                self.streams[name] = Stream(name, draining[name], build, node=node, draining=True)
            stream = self.streams.get(name)
            if stream is not None and stream.session in (None, session.id):
                stream.session = session.id
                if not stream.draining:
                    self._cost_changes[name] = BUSY
            elif session.state == State.ASSIGNED:
                self._requeue_first(session, now)
            else:
                self._end(session, now, "stream-ended")
        self._restored = set()

    # -- players -------------------------------------------------------------------------------------------

    def holds(self, identity: str) -> bool:
        """Whether `identity` has a session that has not ended."""
        existing = self._by_identity.get(identity)
        return bool(existing) and self.sessions[existing].state != State.ENDED

    def full(self) -> bool:
        return len(self.queue) >= self.settings.max_queue

    def join(self, identity: str, now: float) -> Session:
        """The identity's session: the one it holds, or a new one at the end of the queue."""
        existing = self._by_identity.get(identity)
        if existing and self.sessions[existing].state != State.ENDED:
            self.sessions[existing].seen = now
            return self.sessions[existing]
        if self.full():
            raise QueueFull()
        session = Session(secrets.token_urlsafe(24), identity, now, seen=now, build=self._pick_build())
        self.sessions[session.id] = session
        self._by_identity[identity] = session.id
        self.queue.append(session.id)
        self._queued[session.build] += 1
        self._assign(now)
        return session

    def leave(self, session_id: str, now: float, reason: str = "left") -> None:
        session = self.sessions.get(session_id)
        if session and session.state != State.ENDED:
            self._end(session, now, reason)
            self._assign(now)

    def connect(self, session_id: str, now: float) -> Stream:
        """The player's signalling connection opens: the stream it may reach, the only one."""
        session = self.sessions.get(session_id)
        if session is None or session.state not in HOLDING or session.stream not in self.streams:
            raise NotAssigned()
        session.state, session.deadline, session.seen = State.CONNECTED, None, now
        return self.streams[session.stream]

    def disconnect(self, session_id: str, stream: str, now: float) -> None:
        """The player's signalling connection to `stream` closed: the stream waits `reconnect_seconds` for it."""
        session = self.sessions.get(session_id)
        if session and session.state == State.CONNECTED and session.stream == stream:
            session.state, session.deadline = State.RECONNECTING, now + self.settings.reconnect_seconds

    def refused(self, session_id: str, stream: str, now: float) -> None:
        """`stream`'s signalling could not take the player: quarantine the stream, requeue the player first."""
        session = self.sessions.get(session_id)
        if session is None or session.state not in HOLDING or session.stream != stream:
            return
        stream = self.streams.get(session.stream or "")
        if stream:
            stream.session, stream.quarantined_until = None, now + self.settings.quarantine_seconds
            self._cost_changes[stream.name] = FREE
        self._requeue_first(session, now)
        self._assign(now)

    def status(self, session_id: str, now: float) -> Status | None:
        session = self.sessions.get(session_id)
        if session is None:
            return None
        session.seen = now
        if session.state == State.ENDED:
            return Status(State.ENDED, reason=session.ended_reason)
        if session.state != State.QUEUED:
            return Status(session.state)
        ahead = itertools.takewhile(lambda queued: queued != session.id, self.queue)
        position = 1 + sum(1 for queued in ahead if self.sessions[queued].build == session.build)
        return Status(State.QUEUED, position, self.estimated_wait(position, session.build))

    def estimated_wait(self, position: int, build: str = DEFAULT_BUILD) -> int:
        """Seconds until the player at `position` of `build`'s players gets a stream (estimated_wait)."""
        history = self._assignments.get(build, ())
        return estimated_wait(position, history, self.settings.cold_start_seconds, self.starting.get(build, 0))

    # -- streams -------------------------------------------------------------------------------------------

    def set_streams(
        self,
        ready: dict[str, str],
        now: float,
        draining: dict[str, str] | None = None,
        builds: Mapping[str, str] | None = None,
        nodes: Mapping[str, str] | None = None,
    ) -> None:
        """The streams as the Kubernetes API lists them (name -> address): those that may take players, and those
        terminating, which keep the player they have; `builds` says each one's build (unnamed: the first of the
        weights), `nodes` each one's node."""
        draining, builds, nodes = draining or {}, builds or {}, nodes or {}
        unclaimed: list[Session] = []
        for name in list(self.streams):
            stream = self.streams[name]
            if ready.get(name) == stream.address:
                continue
            holder = self.sessions.get(stream.session or "")
            if holder is None or holder.state not in HOLDING:
                del self.streams[name]
            elif holder.state != State.ASSIGNED and draining.get(name) == stream.address:
                stream.draining = True  # its player stays until the session ends
            else:
                del self.streams[name]  # its pod is gone or going: nothing to mark
                if holder.state == State.ASSIGNED:
                    unclaimed.append(holder)  # never connected: back to the head of the queue
                else:
                    self._end(holder, now, "stream-ended")
        # In the order they were served, the first served ending up first in the queue.
        for session in reversed(sorted(unclaimed, key=lambda s: (s.assigned_at or 0, s.created))):
            self._requeue_first(session, now)
        default = next(iter(self.weights), DEFAULT_BUILD)
        for name, address in ready.items():
            self.streams.setdefault(name, Stream(name, address, builds.get(name, default), node=nodes.get(name, "")))
        if self._restored:
            self._reclaim(draining, builds, nodes, now)
        self._assign(now)

    def set_weights(self, weights: Mapping[str, int], now: float) -> None:
        """The builds and their weights, as the operator last set them. Waiting players of a build that takes no
        new players any more are sent to another (they keep their place); nobody holding a stream moves."""
        if not any(weight > 0 for weight in weights.values()):
            raise ValueError("at least one build must have a weight above 0")
        self.weights = dict(weights)
        for session_id in self.queue:
            session = self.sessions[session_id]
            if self.weights.get(session.build, 0) <= 0:
                self._queued[session.build] -= 1
                session.build = self._pick_build()
                self._queued[session.build] += 1
        self._assign(now)

    def tick(self, now: float) -> None:
        """Ends what ran out: claims, reconnect windows, session lengths, and forgets old ended sessions."""
        limit = self.settings.max_session_seconds
        for session in list(self.sessions.values()):
            if session.state == State.ENDED:
                if session.deadline is not None and now >= session.deadline:
                    del self.sessions[session.id]
                    if self._by_identity.get(session.identity) == session.id:
                        del self._by_identity[session.identity]
            elif session.deadline is not None and now >= session.deadline:
                self._end(session, now, "claim-expired" if session.state == State.ASSIGNED else "disconnected")
            elif session.state == State.QUEUED and now - session.seen >= self.settings.queue_idle_seconds:
                self._end(session, now, "left-queue")
            elif limit and session.assigned_at is not None and now - session.assigned_at >= limit:
                self._end(session, now, "time-limit")
        self._assign(now)

    def cost_changes(self) -> dict[str, int]:
        """Streams whose deletion cost changed since the last call (name -> BUSY, FREE or RETIRING)."""
        changes, self._cost_changes = self._cost_changes, {}
        return changes

    # -- scale-in ------------------------------------------------------------------------------------------

    def retire(self, build: str, count: int, now: float) -> int:
        """Keeps `count` of `build`'s streams out of service for a scale-in (as many as are free, if fewer): more
        are taken from the nodes with the fewest streams in use first (then the fewest streams, of every build),
        so that a node empties; those no longer needed go back into service, from the fullest nodes, to waiting
        players first. Returns how many are retiring now."""
        live = [s for s in self.streams.values() if not s.draining]
        emptiest = emptiest_nodes_first((s.node, s.session is not None) for s in live)
        mine = sorted((s for s in live if s.build == build), key=lambda s: (*emptiest(s.node), s.node, s.name))
        retiring = [s for s in mine if s.retiring]
        for stream in retiring[count:]:  # those kept are on the emptiest nodes
            stream.retiring = False
            self._cost_changes[stream.name] = FREE
        if len(retiring) > count:
            self._assign(now)
        free = [s for s in mine if s.session is None and not s.retiring]
        for stream in free[: max(count - len(retiring), 0)]:
            stream.retiring = True
            self._cost_changes[stream.name] = RETIRING
        return sum(1 for s in mine if s.retiring)

    # -- what the scaler and the dashboards read -----------------------------------------------------------

    def builds(self) -> list[str]:
        """Every build the broker knows of: those with a weight, and those a stream or a session still has."""
        known = set(self.weights) | {s.build for s in self.streams.values()}
        known |= {s.build for s in self.sessions.values() if s.state != State.ENDED}
        return sorted(known)

    def counts(self, build: str | None = None) -> dict[str, int]:
        """Of `build`, or of all builds: players queued and holding a stream; streams ready (not terminating), in
        use (a player holds it), free (it may take one) and retiring (chosen for a scale-in)."""

        def mine(item: Session | Stream) -> bool:
            return build is None or item.build == build

        holding = sum(1 for s in self.sessions.values() if s.state in HOLDING and mine(s))
        ready = [s for s in self.streams.values() if not s.draining and mine(s)]
        in_use = sum(1 for s in ready if s.session is not None)
        retiring = sum(1 for s in ready if s.retiring)
        queued = sum(1 for i in self.queue if mine(self.sessions[i]))
        return {
            "queued": queued,
            "playing": holding,
            "streams": len(ready),
            "inUse": in_use,
            "free": len(ready) - in_use - retiring,
            "retiring": retiring,
        }

    # -- internals -----------------------------------------------------------------------------------------

    def _pick_build(self) -> str:
        names = [name for name, weight in self.weights.items() if weight > 0]
        return self.choose.choices(names, weights=[self.weights[name] for name in names])[0]

    def _free_streams(self, now: float) -> dict[str, list[Stream]]:
        """Build -> its streams that may take a player now, in name order."""
        free: dict[str, list[Stream]] = {}
        for name in sorted(self.streams):
            stream = self.streams[name]
            if stream.session is None and not (stream.draining or stream.retiring) and stream.quarantined_until <= now:
                free.setdefault(stream.build, []).append(stream)
        return free

    def _assign(self, now: float) -> None:
        free = {build: streams for build, streams in self._free_streams(now).items() if self._queued[build]}
        served: set[str] = set()
        for session_id in self.queue:
            if not free:
                break
            session = self.sessions[session_id]
            streams = free.get(session.build)
            if not streams:
                continue
            stream = streams.pop(0)
            self._queued[session.build] -= 1
            if not streams or not self._queued[session.build]:
                del free[session.build]
            served.add(session_id)
            stream.session = session.id
            session.state, session.stream = State.ASSIGNED, stream.name
            session.deadline, session.assigned_at = now + self.settings.claim_seconds, now
            self._assignments.setdefault(session.build, deque(maxlen=ASSIGNMENT_HISTORY)).append(now)
            self._cost_changes[stream.name] = BUSY
        if served:
            self.queue = deque(i for i in self.queue if i not in served)

    def _requeue_first(self, session: Session, now: float) -> None:
        """Back to the head of the queue, as if the player had just asked for its place."""
        session.state, session.stream, session.deadline, session.assigned_at = State.QUEUED, None, None, None
        session.seen = now
        if self.weights.get(session.build, 0) <= 0:
            session.build = self._pick_build()
        self.queue.appendleft(session.id)
        self._queued[session.build] += 1

    def _end(self, session: Session, now: float, reason: str) -> None:
        if session.state == State.QUEUED:
            self.queue.remove(session.id)
            self._queued[session.build] -= 1
        stream = self.streams.get(session.stream or "")
        if stream and stream.session == session.id:
            stream.session = None
            if stream.draining:
                del self.streams[stream.name]  # its pod is going; nothing to mark
            else:
                self._cost_changes[stream.name] = FREE
        session.state, session.stream, session.ended_reason = State.ENDED, None, reason
        session.deadline = now + self.settings.ended_memory_seconds
