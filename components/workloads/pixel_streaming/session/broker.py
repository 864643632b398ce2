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
  place at the head of the queue.
"""

from __future__ import annotations

import itertools
import math
import secrets
import statistics
from collections import deque
from dataclasses import dataclass, field
from enum import Enum


class State(str, Enum):
    QUEUED = "queued"
    ASSIGNED = "assigned"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    ENDED = "ended"


HOLDING = (State.ASSIGNED, State.CONNECTED, State.RECONNECTING)


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


@dataclass
class Stream:
    name: str
    address: str
    session: str | None = None
    quarantined_until: float = 0.0
    draining: bool = False
    """Terminating: its player may stay, nobody new comes."""


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


@dataclass
class Broker:
    settings: BrokerSettings = field(default_factory=BrokerSettings)
    sessions: dict[str, Session] = field(default_factory=dict)
    streams: dict[str, Stream] = field(default_factory=dict)
    queue: deque[str] = field(default_factory=deque)
    _by_identity: dict[str, str] = field(default_factory=dict)
    _assignments: deque[float] = field(default_factory=lambda: deque(maxlen=21))
    _cost_changes: dict[str, bool] = field(default_factory=dict)

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
        session = Session(secrets.token_urlsafe(24), identity, now, seen=now)
        self.sessions[session.id] = session
        self._by_identity[identity] = session.id
        self.queue.append(session.id)
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
            self._cost_changes[stream.name] = False
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
        position = self.queue.index(session.id) + 1
        return Status(State.QUEUED, position, self.estimated_wait(position))

    def estimated_wait(self, position: int) -> int:
        """Seconds until the player at `position` gets a stream: `position` times the recent gap between
        assignments, or one stream start when there is no history (the autoscaler starts streams in parallel)."""
        times = list(self._assignments)
        gaps = [b - a for a, b in itertools.pairwise(times) if b > a]
        if not gaps:
            return math.ceil(self.settings.cold_start_seconds)
        gap = min(statistics.median(gaps), self.settings.cold_start_seconds)
        return math.ceil(position * gap)

    # -- streams -------------------------------------------------------------------------------------------

    def set_streams(self, ready: dict[str, str], now: float, draining: dict[str, str] | None = None) -> None:
        """The streams as the Kubernetes API lists them (name -> address): those that may take players, and those
        terminating, which keep the player they have."""
        draining = draining or {}
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
        for name, address in ready.items():
            self.streams.setdefault(name, Stream(name, address))
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

    def cost_changes(self) -> dict[str, bool]:
        """Streams whose busy state changed since the last call (name -> busy): their deletion cost to set."""
        changes, self._cost_changes = self._cost_changes, {}
        return changes

    # -- what the autoscaler and the dashboards read -------------------------------------------------------

    def counts(self) -> dict[str, int]:
        holding = sum(1 for s in self.sessions.values() if s.state in HOLDING)
        ready = [s for s in self.streams.values() if not s.draining]
        free = sum(1 for s in ready if s.session is None)
        return {"queued": len(self.queue), "playing": holding, "streams": len(ready), "free": free}

    def demand_ratio(self) -> float:
        """Players (queued, and playing on a ready stream) per ready stream; with no ready stream, players + 1
        (or 0 without players), so that the autoscaler always asks for more while anyone waits (the reference
        matchmaker's contract). Players on terminating streams need no stream of the ready ones."""
        ready = [s for s in self.streams.values() if not s.draining]
        players = len(self.queue) + sum(1 for s in ready if s.session is not None)
        if not ready:
            return float(players + 1 if players else 0)
        return players / len(ready)

    # -- internals -----------------------------------------------------------------------------------------

    def _free_stream(self, now: float) -> Stream | None:
        for name in sorted(self.streams):
            stream = self.streams[name]
            if stream.session is None and not stream.draining and stream.quarantined_until <= now:
                return stream
        return None

    def _assign(self, now: float) -> None:
        while self.queue:
            stream = self._free_stream(now)
            if stream is None:
                return
            session = self.sessions[self.queue.popleft()]
            stream.session = session.id
            session.state, session.stream = State.ASSIGNED, stream.name
            session.deadline, session.assigned_at = now + self.settings.claim_seconds, now
            self._assignments.append(now)
            self._cost_changes[stream.name] = True

    def _requeue_first(self, session: Session, now: float) -> None:
        """Back to the head of the queue, as if the player had just asked for its place."""
        session.state, session.stream, session.deadline, session.assigned_at = State.QUEUED, None, None, None
        session.seen = now
        self.queue.appendleft(session.id)

    def _end(self, session: Session, now: float, reason: str) -> None:
        if session.state == State.QUEUED:
            self.queue.remove(session.id)
        stream = self.streams.get(session.stream or "")
        if stream and stream.session == session.id:
            stream.session = None
            if stream.draining:
                del self.streams[stream.name]  # its pod is going; nothing to mark
            else:
                self._cost_changes[stream.name] = False
        session.state, session.stream, session.ended_reason = State.ENDED, None, reason
        session.deadline = now + self.settings.ended_memory_seconds
