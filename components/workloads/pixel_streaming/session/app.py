"""The session service: the only way a player reaches a stream.

    GET    /               the player page with Epic's frontend library of one UE version: ?ue=<version>, else
                           the session's build's, else the heaviest build's; its assets at /ue<version>/assets/
    POST   /api/session    join: authenticate (per AUTH_MODE), then the identity's one session; sets its cookie
    DELETE /api/session    leave
    GET    /api/status     the session's state: queued (position, estimated wait), assigned, connected, ended; its
                           build and that build's UE version (the page reloads itself when they are not its own)
    GET    /ws             the session's signalling, relayed to its stream only (signalling.py checks each message)
    GET    /healthz        200 while the stream list is fresh and the builds are known (readiness); /livez 200
                           while serving
    :METRICS_PORT /metrics per build: queue, players, streams (ready, in use, free, retiring, wanted)

It scales the streams too (scaler.py): every build's Deployment to its streams in use, its waiting players and its
buffer of started streams, through the Deployment's scale subresource.

A session is a random id in an HttpOnly, SameSite=Strict cookie; a request without one, or with one the broker
does not know, gets nothing. No request parameter names a stream or an address: the broker picks the stream.

Environment (every value has a default but the secrets):
  PORT 8080, METRICS_PORT 9000, NAMESPACE, STREAM_SELECTOR, SIGNALLING_PORT 8080, STREAM_REFRESH_SECONDS 2
  TURN_SECRET_FILE, TURN_PORT 3478, TURN_TTL_SECONDS 300, TURN_NODE_SELECTOR, TURN_POD_SELECTOR (coturn's pods),
  TURN_TLS_URL, TURN_REFRESH_SECONDS 15
  AUTH_MODE none|signedLinks|oidc
    signedLinks: LINK_AUDIENCE, LINK_MAX_LIFETIME_SECONDS 300, LINK_SECRET_FILE or LINK_JWKS_URL, LINK_ISSUER
    oidc: OIDC_ISSUER (the ID tokens' `iss`), OIDC_CLIENT_ID, OIDC_JWKS_URL (else the jwks_uri of the discovery
      document at OIDC_DISCOVERY_URL, or at OIDC_ISSUER)
  CLAIM_SECONDS 30, RECONNECT_SECONDS 20, MAX_SESSION_SECONDS 0, MAX_QUEUE 500, COLD_START_SECONDS 120
  COOKIE_SECURE true, COOKIE_PATH /, PLAYER_ROOT (the built pages, one directory ue<version> per UE version)
  BUILDS_CONFIG_MAP <name>/<key> (session-builds/builds.json): JSON {"scaleDownSeconds", "builds": [{"name",
    "weight", "unrealVersion", "deployment", "bufferStreams", "minReplicas", "maxReplicas"}], "schedules": [{"name",
    "start", "end", "timeZone", "bufferStreams"}] (schedule.py)}, read every
    BUILDS_REFRESH_SECONDS (5): a new weight or buffer takes effect without a restart, which would end every
    session; until it has been read once the service is not ready and scales nothing
  Kubernetes access as in kube.py (the pod's service account).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import re
import signal
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from . import streams as kube_streams
from .auth import OpenIdConnect, Refused, SignedLinks
from .broker import HOLDING, Broker, BrokerSettings, NotAssigned, State
from .metrics import Metrics
from .scaler import BuildScale, Stabilizer, scale_step
from .schedule import MAX_SCHEDULES, SCHEDULE_NAME, CapacitySchedule, scheduled_buffer
from .signalling import MAX_MESSAGE_BYTES, Relay, encode, streamer_ids
from .turn import TurnPool, TurnSettings, turn_addresses

log = logging.getLogger("session")
# How long a graceful stop waits for the players' signalling to close (a page answers at once).
CLOSE_SECONDS = 5
# An unchanged state is written again this often: the next instance refuses one older than the broker's
# STALE_SNAPSHOT_SECONDS (its writer long gone), which a quiet state must not look like.
STATE_HEARTBEAT_SECONDS = 60
COOKIE = "pxsession"
# How long a stream's signalling server has to accept the connection and list its streamer.
STREAM_ANSWER_SECONDS = 10
# Matched whole (fullmatch): `$` alone would take a trailing newline.
_ASSET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_BUILD = re.compile(r"[a-z]([a-z0-9-]{0,18}[a-z0-9])?")
_VERSION = re.compile(r"[0-9]+\.[0-9]+")
_DEPLOYMENT = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


@dataclass(frozen=True)
class Build:
    name: str
    weight: int
    unreal_version: str
    scale: BuildScale


@dataclass(frozen=True)
class Builds:
    builds: list[Build]
    scale_down_seconds: int
    schedules: list[CapacitySchedule]


def _whole(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def read_builds(text: str) -> Builds:
    """The builds document; ValueError names what is wrong."""
    document = json.loads(text)
    entries = document.get("builds") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ValueError("no builds list")
    scale_down = document.get("scaleDownSeconds")
    if not _whole(scale_down, 0, 3600):
        raise ValueError("scaleDownSeconds is not a whole number 0-3600")
    builds = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ValueError(f"builds[{index}] is not an object")
        name, weight, version, deployment = (entry.get(k) for k in ("name", "weight", "unrealVersion", "deployment"))
        if not (isinstance(name, str) and _BUILD.fullmatch(name)):
            raise ValueError(f"builds[{index}].name is not a build name")
        if not _whole(weight, 0, 1000):
            raise ValueError(f"builds[{index}].weight is not a whole number 0-1000")
        if not (isinstance(version, str) and _VERSION.fullmatch(version)):
            raise ValueError(f"builds[{index}].unrealVersion is not a version such as 5.7")
        if not (isinstance(deployment, str) and _DEPLOYMENT.fullmatch(deployment)):
            raise ValueError(f"builds[{index}].deployment is not a Deployment name")
        for key in ("bufferStreams", "minReplicas", "maxReplicas"):
            if not _whole(entry.get(key), 0, 2**31 - 1):
                raise ValueError(f"builds[{index}].{key} is not a whole number")
        if entry["minReplicas"] > entry["maxReplicas"]:
            raise ValueError(f"builds[{index}].minReplicas is above its maxReplicas")
        scale = BuildScale(deployment, entry["bufferStreams"], entry["minReplicas"], entry["maxReplicas"])
        builds.append(Build(name, weight, version, scale))
    if len({b.name for b in builds}) != len(builds):
        raise ValueError("two builds have the same name")
    if not any(b.weight for b in builds):
        raise ValueError("every weight is 0: no build would take a player")
    return Builds(builds, scale_down, read_schedules(document.get("schedules", [])))


def read_schedules(entries: Any) -> list[CapacitySchedule]:
    """The document's schedules (none without the key); one that is not a schedule is left out and logged: the
    builds still apply. At most MAX_SCHEDULES, as the plan allows."""
    schedules = []
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        values = [entry.get(k) if isinstance(entry, dict) else None for k in ("name", "start", "end", "timeZone")]
        buffer = entry.get("bufferStreams") if isinstance(entry, dict) else None
        try:
            named = all(isinstance(v, str) for v in values) and SCHEDULE_NAME.fullmatch(values[0])
            if not (named and _whole(buffer, 0, 2**31 - 1)):
                raise ValueError("is not a schedule (name, start, end, timeZone, bufferStreams)")
            schedules.append(CapacitySchedule(*values, buffer))
        except ValueError as error:
            log.error("schedules[%d] left out: %s", index, str(error)[:200])
    return schedules[:MAX_SCHEDULES]


class PlayerGone(Exception):
    """The player's own socket failed: its connection ends, its session does not."""


async def _to_player(player: web.WebSocketResponse, text: str) -> None:
    try:
        await player.send_str(text)
    except (ConnectionError, RuntimeError) as error:
        raise PlayerGone() from error


@dataclass
class Connection:
    """A player's signalling connection and the stream it was made to."""

    socket: web.WebSocketResponse
    stream: str


@dataclass
class MessageBudget:
    """What one session may send on its signalling, across its reconnects: `per_second` messages a second,
    `burst` at once. A negotiation is a few dozen messages; a player's input travels on the WebRTC data channel,
    not here."""

    per_second: float = 20
    burst: float = 100
    _tokens: float = 100
    _then: float | None = None

    def take(self, now: float) -> bool:
        if self._then is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._then) * self.per_second)
        self._then = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


@dataclass
class Settings:
    namespace: str = "pixel"
    stream_selector: str = f"app.kubernetes.io/name=stream,{kube_streams.BUILD_LABEL}"
    signalling_port: int = 8080
    stream_refresh_seconds: float = 2
    turn_node_selector: str = "app.pixel/turn=true"
    turn_pod_selector: str = "app.kubernetes.io/name=turn"
    turn_refresh_seconds: float = 15
    cookie_secure: bool = True
    cookie_path: str = "/"
    player_root: Path | None = None
    builds_refresh_seconds: float = 5
    state_save_seconds: float = 1
    """How often the players' state is written when it changed (and once more at a graceful stop)."""

    @classmethod
    def from_env(cls) -> Settings:
        player_root = os.environ.get("PLAYER_ROOT")
        return cls(
            namespace=os.environ.get("NAMESPACE", "pixel"),
            stream_selector=os.environ.get("STREAM_SELECTOR", cls.stream_selector),
            signalling_port=_env_int("SIGNALLING_PORT", 8080),
            stream_refresh_seconds=float(os.environ.get("STREAM_REFRESH_SECONDS", "2")),
            turn_node_selector=os.environ.get("TURN_NODE_SELECTOR", cls.turn_node_selector),
            turn_pod_selector=os.environ.get("TURN_POD_SELECTOR", cls.turn_pod_selector),
            turn_refresh_seconds=float(os.environ.get("TURN_REFRESH_SECONDS", "15")),
            cookie_secure=os.environ.get("COOKIE_SECURE", "true") == "true",
            cookie_path=os.environ.get("COOKIE_PATH", "/"),
            player_root=Path(player_root) if player_root else None,
            builds_refresh_seconds=float(os.environ.get("BUILDS_REFRESH_SECONDS", "5")),
            state_save_seconds=float(os.environ.get("STATE_SAVE_SECONDS", "1")),
        )


def broker_settings_from_env() -> BrokerSettings:
    return BrokerSettings(
        claim_seconds=_env_int("CLAIM_SECONDS", 30),
        reconnect_seconds=_env_int("RECONNECT_SECONDS", 20),
        max_session_seconds=_env_int("MAX_SESSION_SECONDS", 0),
        max_queue=_env_int("MAX_QUEUE", 500),
        cold_start_seconds=_env_int("COLD_START_SECONDS", 120),
    )


def _read(path: str) -> str:
    return Path(path).read_text().strip()


def _discover_jwks(issuer: str) -> str:
    url = f"{issuer.rstrip('/')}/.well-known/openid-configuration"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)["jwks_uri"]


def verifier_from_env() -> SignedLinks | OpenIdConnect | None:
    """The verifier of AUTH_MODE; None for `none`."""
    mode = os.environ.get("AUTH_MODE", "none")
    if mode == "none":
        return None
    if mode == "signedLinks":
        secret_file, jwks_url = os.environ.get("LINK_SECRET_FILE"), os.environ.get("LINK_JWKS_URL")
        return SignedLinks(
            audience=os.environ["LINK_AUDIENCE"],
            max_lifetime_seconds=_env_int("LINK_MAX_LIFETIME_SECONDS", 300),
            secret=_read(secret_file) if secret_file else None,
            jwks_url=jwks_url or None,
            issuer=os.environ.get("LINK_ISSUER") or None,
        )
    if mode == "oidc":
        issuer = os.environ["OIDC_ISSUER"]
        discovery = os.environ.get("OIDC_DISCOVERY_URL") or issuer
        jwks_url = os.environ.get("OIDC_JWKS_URL") or _discover_jwks(discovery)
        return OpenIdConnect(issuer, os.environ["OIDC_CLIENT_ID"], jwks_url)
    raise ValueError(f"AUTH_MODE {mode!r} is not one of none, signedLinks, oidc")


@dataclass
class SessionService:
    settings: Settings
    broker: Broker
    turn: TurnPool
    verifier: SignedLinks | OpenIdConnect | None
    list_streams: Callable[[], Awaitable[kube_streams.StreamList]]
    read_builds: Callable[[], Awaitable[str]]
    """The builds document, as the operator last set it."""
    list_turn_nodes: Callable[[], Awaitable[list[str]]]
    set_deletion_cost: Callable[[str, int], Awaitable[None]]
    read_scale: Callable[[str], Awaitable[int]]
    """A Deployment's replicas."""
    write_scale: Callable[[str, int], Awaitable[None]]
    read_state: Callable[[], Awaitable[bytes | None]] | None = None
    """The players' state the last instance of the service left (None: it keeps none)."""
    write_state: Callable[[bytes], Awaitable[None]] | None = None
    clock: Callable[[], float] = time.time
    metrics: Metrics = field(default_factory=Metrics)
    connections: dict[str, Connection] = field(default_factory=dict)
    budgets: dict[str, MessageBudget] = field(default_factory=dict)
    streams_fresh_at: float = 0.0
    versions: dict[str, str] = field(default_factory=dict)
    """Build -> its Unreal Engine version, as the builds file says."""
    scales: dict[str, BuildScale] = field(default_factory=dict)
    """Build -> its Deployment, buffer and bounds, as the builds file says."""
    schedules: list[CapacitySchedule] = field(default_factory=list)
    """Larger buffers between two times, as the builds file says."""
    scheduled: int = 0
    """The buffer the schedules ask for now (0: none is active)."""
    _scheduled_minute: int | None = None
    stabilizer: Stabilizer = field(default_factory=lambda: Stabilizer(0))
    targets: dict[str, int] = field(default_factory=dict)
    """Build -> the streams the scaler last wanted for it."""
    held: dict[str, int] = field(default_factory=dict)
    """Build -> 1 while it has more streams than it wants and the scaler cannot remove them yet."""
    listed: kube_streams.StreamList = field(default_factory=kube_streams.StreamList)
    """The stream pods as last listed."""
    _builds_text: str | None = None
    _unwritten_costs: dict[str, int] = field(default_factory=dict)
    _cost_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _tasks: set[asyncio.Future] = field(default_factory=set)
    _state_content: str | None = None
    """What the state last written says, apart from when it was taken (a digest)."""
    _state_saved_at: float = 0.0
    _state_read: bool = False
    """Whether the state the last instance left was read (or found absent): only then is it written."""
    stopping: bool = False
    """A graceful stop began: no new signalling."""

    # -- HTTP ----------------------------------------------------------------------------------------------

    def application(self) -> web.Application:
        app = web.Application(middlewares=[_security_headers], client_max_size=64 * 1024)
        app.router.add_post("/api/session", self.join)
        app.router.add_get("/api/status", self.status)
        app.router.add_delete("/api/session", self.leave)
        app.router.add_get("/ws", self.signalling)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/livez", lambda _: web.json_response({"status": "ok"}))
        if self.settings.player_root:
            app.router.add_get("/", self.page)
            app.router.add_get("/ue{version}/assets/{name}", self.asset)
        app.on_startup.append(self._start_background)
        app.on_shutdown.append(self._close_signalling)
        return app

    def metrics_application(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        return app

    async def join(self, request: web.Request) -> web.Response:
        if request.content_type != "application/json":
            return _error(415, "send JSON")
        try:
            identity, spend = await self._identity(request)
        except Refused as refusal:
            self.metrics.count("refused", "auth")
            return _error(401, str(refusal))
        if self.broker.full() and not self.broker.holds(identity):
            # Refused before the launch link is spent: the player may use it again in a minute.
            self.metrics.count("refused", "queue-full")
            return _error(503, "the waiting room is full; try again in a minute", retry_after=60)
        try:
            spend()
        except Refused as refusal:
            self.metrics.count("refused", "auth")
            return _error(401, str(refusal))
        known = len(self.broker.sessions)
        session = self.broker.join(identity, self.clock())
        if session.state != State.QUEUED:
            # Marked busy at once, not at the next settle: a scale-in under way must not take it.
            self._background(self._write_costs())
        self.metrics.count("joined", "new" if len(self.broker.sessions) > known else "existing")
        response = self._status_response(session.id)
        response.set_cookie(
            COOKIE,
            session.id,
            httponly=True,
            secure=self.settings.cookie_secure,
            samesite="Strict",
            path=self.settings.cookie_path,
        )
        return response

    async def status(self, request: web.Request) -> web.Response:
        session_id = request.cookies.get(COOKIE, "")
        if self.broker.status(session_id, self.clock()) is None:
            return _error(404, "no session: join first")
        return self._status_response(session_id)

    async def leave(self, request: web.Request) -> web.Response:
        session_id = request.cookies.get(COOKIE, "")
        self.broker.leave(session_id, self.clock())
        await self._settle()
        return web.json_response({"state": State.ENDED.value})

    def page_version(self, request: web.Request) -> str | None:
        """The UE version of the page this request gets: the one it asks for (?ue=, what the page reloads itself
        with), else its session's build's, else the heaviest build's."""
        asked = request.query.get("ue", "")
        if _VERSION.fullmatch(asked) and self._player_file(asked, "index.html"):
            return asked
        session = self.broker.sessions.get(request.cookies.get(COOKIE, ""))
        if session is not None and session.build in self.versions:
            return self.versions[session.build]
        heaviest = max(self.broker.weights, key=lambda b: self.broker.weights[b], default=None)
        return self.versions.get(heaviest or "")

    def _player_file(self, version: str, *path: str) -> Path | None:
        root = self.settings.player_root
        file = root.joinpath(f"ue{version}", *path) if root else None
        return file if file is not None and file.is_file() else None

    async def page(self, request: web.Request) -> web.StreamResponse:
        version = self.page_version(request)
        file = self._player_file(version, "index.html") if version else None
        if file is None:
            return _error(503, "no player page: the builds are not known yet")
        # Which page depends on the session's cookie: no cache may hand one player's page to another.
        return web.FileResponse(file, headers={"Cache-Control": "no-cache", "Vary": "Cookie"})

    async def asset(self, request: web.Request) -> web.StreamResponse:
        version, name = request.match_info["version"], request.match_info["name"]
        wellformed = _VERSION.fullmatch(version) and _ASSET.fullmatch(name)
        file = self._player_file(version, "assets", name) if wellformed else None
        if file is None:
            return _error(404, "no such file")
        return web.FileResponse(file, headers={"Cache-Control": "no-cache"})

    async def healthz(self, _: web.Request) -> web.Response:
        """Ready while the stream list is fresh and the builds are known (no player is served before)."""
        fresh = self.clock() - self.streams_fresh_at < 3 * self.settings.stream_refresh_seconds + 5
        known = bool(self.versions)
        body = {"streamsListed": fresh, "buildsKnown": known}
        return web.json_response(body, status=200 if fresh and known else 503)

    async def _metrics(self, _: web.Request) -> web.Response:
        builds = {b: self.broker.counts(b) for b in self.broker.builds()}
        for build, scale in self.scales.items():
            builds.setdefault(build, self.broker.counts(build))
            builds[build] |= {
                "wanted": self.targets.get(build, 0),
                "max": scale.max_replicas,
                "held": self.held.get(build, 0),
            }
        text = self.metrics.render(builds)
        return web.Response(text=text, content_type="text/plain", charset="utf-8")

    async def _identity(self, request: web.Request) -> tuple[str, Callable[[], None]]:
        """Who the request's player is, and what to do once it may join (spend its launch link)."""
        if self.verifier is None:
            # `none`: a browser's own session, or a new anonymous player.
            known = self.broker.sessions.get(request.cookies.get(COOKIE, ""))
            return (known.identity if known else f"anonymous:{os.urandom(16).hex()}"), _nothing
        if isinstance(self.verifier, OpenIdConnect):
            header = request.headers.get("Authorization")
            return await asyncio.to_thread(self.verifier.identity, header), _nothing
        try:
            body = await request.json()
        except ValueError:
            body = None
        token = body.get("launch") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise Refused("no launch link: open the link your portal gave you")
        link = await asyncio.to_thread(self.verifier.check, token)
        return link.identity, lambda: self.verifier.spend(link, self.clock())

    def _status_response(self, session_id: str) -> web.Response:
        status = self.broker.status(session_id, self.clock())
        assert status is not None
        body: dict[str, Any] = {"state": status.state.value}
        session = self.broker.sessions[session_id]
        if status.state != State.ENDED and session.build in self.versions:
            body |= {"build": session.build, "unrealVersion": self.versions[session.build]}
        if status.position is not None:
            body |= {"position": status.position, "estimatedWaitSeconds": status.estimated_wait_seconds}
        if status.reason:
            body["reason"] = status.reason
        return web.json_response(body, headers={"Cache-Control": "no-store"})

    # -- signalling ----------------------------------------------------------------------------------------

    async def signalling(self, request: web.Request) -> web.StreamResponse:
        session_id = request.cookies.get(COOKIE, "")
        origin = request.headers.get("Origin")
        if origin and urllib.parse.urlsplit(origin).netloc != request.host:
            return _error(403, "cross-site signalling is refused")
        if self.stopping:
            return _error(503, "the service is restarting", retry_after=2)
        session = self.broker.sessions.get(session_id)
        if session is None:
            return _error(401, "no session: join first")
        if isinstance(self.verifier, OpenIdConnect):
            try:
                identity = await asyncio.to_thread(self.verifier.identity, request.headers.get("Authorization"))
            except Refused as refusal:
                return _error(401, str(refusal))
            if identity != session.identity:
                return _error(403, "this session belongs to another player")
        if session.state not in HOLDING:
            return _error(409, "no stream for this session yet: wait for your turn")
        player = web.WebSocketResponse(heartbeat=30, max_msg_size=MAX_MESSAGE_BYTES)
        if not player.can_prepare(request).ok:
            return _error(400, "a websocket upgrade is expected here")
        # The handshake first: nothing about the session changes for a request that is no websocket.
        await player.prepare(request)
        try:
            stream = self.broker.connect(session_id, self.clock())
        except NotAssigned:
            await player.close(code=4009, message=b"no stream for this session")
            return player
        connection = Connection(player, stream.name)
        previous = self.connections.get(session_id)
        self.connections[session_id] = connection
        if previous is not None:
            self._close_soon(previous.socket, 4000, "replaced by a newer connection")
        try:
            await self._relay(session_id, stream.address, connection)
        finally:
            if self.connections.get(session_id) is connection:
                del self.connections[session_id]
                self.broker.disconnect(session_id, stream.name, self.clock())
            await self._settle()
        return player

    async def _relay(self, session_id: str, address: str, connection: Connection) -> None:
        """Relays one player's signalling to its stream. Only a failure of the stream's signalling server before
        it took the player requeues the session (and only for the connection still current); the player's own
        socket failing, or either side closing later, ends this connection and nothing else."""
        url = f"http://{address}:{self.settings.signalling_port}/"
        player = connection.socket
        identity = self.broker.sessions[session_id].identity
        relay = Relay("", self.turn.peer_options(identity, self.clock()))
        try:
            async with aiohttp.ClientSession() as client:
                try:
                    upstream, ids = await asyncio.wait_for(
                        self._open(client, url, player, relay), STREAM_ANSWER_SECONDS
                    )
                    if len(ids) != 1:
                        log.warning("stream at %s offered %d streamers, not one: skipping it", address, len(ids))
                        raise ConnectionError("not exactly one streamer")
                except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError, OSError):
                    if self.connections.get(session_id) is connection:
                        self.metrics.count("refused", "stream-unavailable")
                        self.broker.refused(session_id, connection.stream, self.clock())
                    await player.close(code=4001, message=b"the stream was not ready; you keep your place")
                    return
                relay.streamer_id = ids[0]
                budget = self.budgets.setdefault(session_id, MessageBudget())
                async with upstream:
                    await self._pump(upstream, player, relay, budget)
        except PlayerGone:
            pass
        finally:
            for kind, count in relay.dropped.items():
                self.metrics.count("dropped", kind, count)

    @staticmethod
    async def _open(
        client: aiohttp.ClientSession, url: str, player: web.WebSocketResponse, relay: Relay
    ) -> tuple[aiohttp.ClientWebSocketResponse, list[str]]:
        """Connects to the stream's signalling server and reads it until it answers our `listStreamers`,
        passing on what the player may see meanwhile (its `config`, rewritten)."""
        upstream = await client.ws_connect(
            url, max_msg_size=MAX_MESSAGE_BYTES, heartbeat=30, timeout=aiohttp.ClientWSTimeout(ws_close=5)
        )
        await upstream.send_str(encode({"type": "listStreamers"}))
        async for message in upstream:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            ids = streamer_ids(message.data)
            if ids is not None:
                return upstream, ids
            forward = relay.from_stream(message.data)
            if forward is not None:
                await _to_player(player, forward)
        raise ConnectionError("the signalling server closed before listing its streamers")

    @staticmethod
    async def _pump(
        upstream: aiohttp.ClientWebSocketResponse, player: web.WebSocketResponse, relay: Relay, budget: MessageBudget
    ) -> None:
        """Relays both ways until either side ends, then closes both: here, after both directions stopped, so
        that no close is cut short by the other direction's end."""
        ending = (4002, b"the stream ended")

        async def player_to_stream() -> None:
            nonlocal ending
            async for message in player:
                if not budget.take(asyncio.get_running_loop().time()):
                    ending = (4008, b"too many signalling messages")
                    return
                if message.type != aiohttp.WSMsgType.TEXT:
                    continue
                to_stream, to_player = relay.from_player(message.data)
                if to_stream is not None:
                    await upstream.send_str(to_stream)
                if to_player is not None:
                    await _to_player(player, to_player)

        async def stream_to_player() -> None:
            async for message in upstream:
                if message.type == aiohttp.WSMsgType.TEXT:
                    forward = relay.from_stream(message.data)
                    if forward is not None:
                        await _to_player(player, forward)

        tasks = [asyncio.create_task(player_to_stream()), asyncio.create_task(stream_to_player())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await upstream.close()
        await player.close(code=ending[0], message=ending[1])

    # -- background ----------------------------------------------------------------------------------------

    async def _start_background(self, app: web.Application) -> None:
        if await self.restore_state():
            # The restored players get their streams back before the first request (they reconnect at once).
            for first in (self.refresh_builds, self._refresh_streams):
                try:
                    await first()
                except Exception as error:  # the loops below try again
                    log.warning("%s failed: %s", first.__name__, error)
        app["tasks"] = [
            asyncio.create_task(self._every(self.settings.state_save_seconds, self.save_state)),
            asyncio.create_task(self._every(self.settings.builds_refresh_seconds, self.refresh_builds)),
            asyncio.create_task(self._every(self.settings.stream_refresh_seconds, self._refresh_streams)),
            asyncio.create_task(self._every(self.settings.turn_refresh_seconds, self._refresh_turn)),
            asyncio.create_task(self._every(1, self._settle)),
        ]

    async def _close_signalling(self, app: web.Application) -> None:
        """A graceful stop: no new signalling, the players' signalling closed at once (Going Away) rather than
        waited for, the loops stopped (no tick ends a session the next instance should keep), and the state saved,
        all well within Kubernetes' grace. The pages start asking for the next instance."""
        self.stopping = True
        closing = [
            c.socket.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"restarting")
            for c in self.connections.values()
        ]
        try:
            await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True), CLOSE_SECONDS)
        except TimeoutError:
            log.warning("some signalling did not close within %s s; the server drops it", CLOSE_SECONDS)
        for task in app["tasks"]:
            task.cancel()
        try:
            await self.save_state(final=True)  # what the next instance starts from
        except Exception as error:
            log.error("the players' state was not saved: %s", error)

    # -- outliving a restart -------------------------------------------------------------------------------

    async def state(self) -> tuple[str, bytes]:
        """The players' state, compressed: the broker's sessions and queue, and the launch links spent (taken on
        the loop, encoded beside it); and a digest of what it says apart from when it was taken."""
        now = self.clock()
        links = self.verifier.replays.snapshot(now) if isinstance(self.verifier, SignedLinks) else {}
        document = {"broker": self.broker.snapshot(now), "linkTokens": links}
        return await asyncio.to_thread(_encode_state, document)

    async def save_state(self, final: bool = False) -> None:
        """Writes the state when it says something new, at least every STATE_HEARTBEAT_SECONDS (so that a quiet
        state is not taken for a stale one), and at the stop."""
        if self.write_state is None or not self._state_read:
            return  # never over a state that could not be read: it may hold the players
        content, state = await self.state()
        now = self.clock()
        if final or content != self._state_content or now - self._state_saved_at >= STATE_HEARTBEAT_SECONDS:
            await self.write_state(state)
            self._state_content, self._state_saved_at = content, now

    async def restore_state(self) -> bool:
        """Takes the players the last instance left, before any request is served. A state that cannot be
        fetched (the API away, a 5xx, no permission) stops the start (Kubernetes starts the pod again), so that
        it is never written over; one that is absent, of another format, stale or broken is logged and left,
        and the service starts empty. Whether it took any players."""
        if self.read_state is None:
            return False
        state = await self.read_state()  # raises when it cannot tell
        self._state_read = True
        if not state:
            return False
        try:
            document = json.loads(zlib.decompress(state))
            spent = {str(token): float(expires) for token, expires in document["linkTokens"].items()}
            self.broker.restore(document["broker"], self.clock())
        except Exception as error:
            log.error("the players' state was left, the service starts empty: %s", error)
            return False
        if isinstance(self.verifier, SignedLinks):
            self.verifier.replays.restore(spent)
        counts = self.broker.counts()
        log.info("restored %d players holding a stream and %d queued", counts["playing"], counts["queued"])
        return True

    @staticmethod
    async def _every(seconds: float, work: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await work()
            except Exception as error:  # one failed round must not stop the loop
                log.warning("%s failed: %s", work.__name__, error)
            await asyncio.sleep(seconds)

    async def refresh_builds(self) -> None:
        """Applies the builds document when it changed; one that does not parse leaves the builds as they were."""
        text = await self.read_builds()
        if text == self._builds_text:
            return
        self._builds_text = text
        try:
            builds = read_builds(text)
        except (ValueError, AttributeError, TypeError) as error:
            log.error("builds not applied, they stay as they were: %s", error)
            return
        self.versions = {b.name: b.unreal_version for b in builds.builds}
        self.scales = {b.name: b.scale for b in builds.builds}
        self.schedules = builds.schedules
        self._scheduled_minute = None  # the schedules changed: reckon them again
        self.stabilizer.scale_down_seconds = builds.scale_down_seconds  # each build's history is kept
        self.broker.set_weights({b.name: b.weight for b in builds.builds}, self.clock())
        described = (
            f"{b.name} (weight {b.weight}, UE {b.unreal_version}, buffer {b.scale.buffer}, "
            f"{b.scale.min_replicas}-{b.scale.max_replicas} streams)"
            for b in builds.builds
        )
        log.info("builds: %s; scale-down after %d s", ", ".join(described), builds.scale_down_seconds)
        await self._settle()

    async def _refresh_streams(self) -> None:
        found = await self.list_streams()
        self.streams_fresh_at = self.clock()
        self.broker.set_streams(found.ready, self.clock(), found.draining, found.builds, found.nodes)
        self.broker.starting = found.starting
        self.listed = found
        await self._settle()
        await self.scale()

    async def scale(self) -> None:
        """Each build's Deployment to its streams in use, its waiting players and its buffer (scaler.py). Runs
        right after the streams are listed and settled: the pods it counts are those of that list, and the broker
        gives none of the starting ones to a player before the next one. A scale-in is written only once the
        streams it removes are marked retiring on their pods. One build's failure holds up no other."""
        minute = int(self.clock()) // 60
        if minute != self._scheduled_minute:  # crons fire on minutes: once a minute is enough
            self._scheduled_minute = minute
            scheduled = scheduled_buffer(self.schedules, minute * 60)
            if scheduled != self.scheduled:  # names reckoned only when it changes
                active = ", ".join(s.name for s in self.schedules if s.active(minute * 60)) or "none"
                log.info("scheduled buffer %d (schedules active: %s)", scheduled, active)
                self.scheduled = scheduled
        for build, scale in self.scales.items():
            try:
                await self._scale_build(build, scale)
            except Exception as error:
                self.metrics.count("scale_errors", build)
                log.warning("%s not scaled: %s", scale.deployment, error)

    async def _scale_build(self, build: str, scale: BuildScale) -> None:
        now = self.clock()
        counts = self.broker.counts(build)
        current = await self.read_scale(scale.deployment)
        scheduled = self.scheduled if self.broker.weights.get(build, 0) > 0 else 0  # none for a retiring build
        wanted = scale.wanted(counts["inUse"], counts["queued"], scheduled)
        target = self.stabilizer.target(build, wanted, now, current)
        self.targets[build] = target
        rolling = len(self.listed.replica_sets.get(build, ())) > 1
        starting = self.listed.starting.get(build, 0)
        step = scale_step(current, target, counts["streams"], starting, counts["free"] + counts["retiring"], rolling)
        self.held[build] = int(step.replicas > target)  # a rollout, the ReplicaSet behind, or nothing to retire
        retiring = self.broker.retire(build, step.retire, now) if step.retire is not None else None
        written = await self._write_costs()
        if step.replicas < current and not (written and retiring == step.retire):
            return  # the streams it would remove are not all marked yet: next round
        if step.replicas != current:
            await self.write_scale(scale.deployment, step.replicas)
            log.info("%s: %d -> %d streams (wanted %d)", scale.deployment, current, step.replicas, target)

    async def _refresh_turn(self) -> None:
        self.turn.set_addresses(await self.list_turn_nodes())

    async def _settle(self) -> None:
        """Applies the clock, closes the signalling of sessions that ended, writes deletion costs."""
        self.broker.tick(self.clock())
        holding = {s.id: s for s in self.broker.sessions.values() if s.state in HOLDING}
        self.turn.retain({s.identity for s in holding.values()})
        self.budgets = {i: b for i, b in self.budgets.items() if i in holding}
        # Decided and taken out in one step (no await in between): a connection made meanwhile is never the
        # one closed for its predecessor's reasons.
        for session_id, connection in list(self.connections.items()):
            session = holding.get(session_id)
            if session is None or session.stream != connection.stream:
                # Ended, or moved to another stream: this connection's stream is not the session's any more.
                del self.connections[session_id]
                ended = self.broker.sessions.get(session_id)
                reason = (ended.ended_reason if ended else None) or "ended"
                self._close_soon(connection.socket, 4003, f"session ended: {reason}")
        await self._write_costs()

    async def _write_costs(self) -> bool:
        """Writes the deletion costs that changed, again those not written before; whether all are written."""
        async with self._cost_lock:
            self._unwritten_costs |= self.broker.cost_changes()
            for stream, cost in list(self._unwritten_costs.items()):
                if stream not in self.broker.streams:
                    del self._unwritten_costs[stream]  # its pod is gone
                    continue
                try:
                    await self.set_deletion_cost(stream, cost)
                except Exception as error:
                    log.warning("deletion cost of %s not written: %s", stream, error)
                    continue
                if self._unwritten_costs.get(stream) == cost:
                    del self._unwritten_costs[stream]
            return not self._unwritten_costs

    def _close_soon(self, socket: web.WebSocketResponse, code: int, message: str) -> None:
        """Closes `socket` in the background: a player that never answers the close frame holds up nobody."""
        self._background(socket.close(code=code, message=message.encode()))

    def _background(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _nothing() -> None:
    pass


@web.middleware
async def _security_headers(request: web.Request, handler: Callable) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; connect-src 'self'; media-src 'self' blob:; img-src 'self' data: blob:; "
        "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
    )
    return response


def _error(status: int, message: str, retry_after: int | None = None) -> web.Response:
    headers = {"Cache-Control": "no-store"}
    if retry_after:
        headers["Retry-After"] = str(retry_after)
    return web.json_response({"error": message}, status=status, headers=headers)


def service_from_env() -> SessionService:
    settings = Settings.from_env()
    turn_settings = TurnSettings(
        secret=_read(os.environ["TURN_SECRET_FILE"]),
        port=_env_int("TURN_PORT", 3478),
        ttl_seconds=_env_int("TURN_TTL_SECONDS", 300),
        tls_url=os.environ.get("TURN_TLS_URL") or None,
    )
    namespace = settings.namespace

    async def list_streams() -> kube_streams.StreamList:
        return await asyncio.to_thread(kube_streams.list_streams, namespace, settings.stream_selector)

    config_map, _, key = os.environ.get("BUILDS_CONFIG_MAP", "session-builds/builds.json").partition("/")

    async def read_builds_document() -> str:
        import kube

        path = f"/api/v1/namespaces/{namespace}/configmaps/{config_map}"
        return (await asyncio.to_thread(kube.call, "GET", path))["data"][key]

    async def list_turn_nodes() -> list[str]:
        import kube

        nodes = urllib.parse.urlencode({"labelSelector": settings.turn_node_selector})
        pods = urllib.parse.urlencode({"labelSelector": settings.turn_pod_selector})
        node_list = await asyncio.to_thread(kube.call, "GET", f"/api/v1/nodes?{nodes}")
        pod_list = await asyncio.to_thread(kube.call, "GET", f"/api/v1/namespaces/{namespace}/pods?{pods}")
        return turn_addresses(node_list, pod_list)

    async def set_cost(pod: str, cost: int) -> None:
        await asyncio.to_thread(kube_streams.set_deletion_cost, namespace, pod, cost)

    async def read_scale(deployment: str) -> int:
        return await asyncio.to_thread(kube_streams.deployment_scale, namespace, deployment)

    async def write_scale(deployment: str, replicas: int) -> None:
        await asyncio.to_thread(kube_streams.set_deployment_scale, namespace, deployment, replicas)

    # The players' state in a Secret the stack declares (the session ids in it are the players' cookies).
    state_secret, _, state_key = os.environ.get("STATE_SECRET", "").partition("/")
    state_path = f"/api/v1/namespaces/{namespace}/secrets/{state_secret}"

    async def read_state() -> bytes | None:
        import kube

        try:
            secret = await asyncio.to_thread(kube.call, "GET", state_path)
        except urllib.error.HTTPError as error:
            if error.code == 404:  # not declared yet: nothing was kept
                return None
            raise
        encoded = (secret.get("data") or {}).get(state_key)
        return base64.b64decode(encoded) if encoded else None

    async def write_state(state: bytes) -> None:
        import kube

        body = {"data": {state_key: base64.b64encode(state).decode()}}
        await asyncio.to_thread(kube.call, "PATCH", state_path, body, "application/merge-patch+json")

    return SessionService(
        settings=settings,
        broker=Broker(broker_settings_from_env()),
        turn=TurnPool(turn_settings),
        verifier=verifier_from_env(),
        list_streams=list_streams,
        read_builds=read_builds_document,
        list_turn_nodes=list_turn_nodes,
        set_deletion_cost=set_cost,
        read_scale=read_scale,
        write_scale=write_scale,
        read_state=read_state if state_secret else None,
        write_state=write_state if state_secret else None,
    )


def _encode_state(document: dict[str, Any]) -> tuple[str, bytes]:
    """A digest of what the state says apart from when it was taken (a write is skipped on it), and the state."""
    timeless = {**document, "broker": {k: v for k, v in document["broker"].items() if k != "savedAt"}}
    content = hashlib.sha256(json.dumps(timeless, sort_keys=True).encode()).hexdigest()
    return content, zlib.compress(json.dumps(document, sort_keys=True, separators=(",", ":")).encode())


async def serve(service: SessionService, port: int, metrics_port: int) -> None:
    runners = []
    for app, listen_port in ((service.application(), port), (service.metrics_application(), metrics_port)):
        # The signalling is closed at the stop (on_shutdown): the server need not wait long for what is left
        # (BaseRunner's shutdown_timeout, 60 s by default at aiohttp 3.14, past Kubernetes' 30 s grace).
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=CLOSE_SECONDS)
        await runner.setup()
        await web.TCPSite(runner, "0.0.0.0", listen_port).start()
        runners.append(runner)
    stopping = asyncio.Event()
    # Kubernetes stops the pod with SIGTERM: a graceful stop closes the connections and saves the players' state.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    try:
        await stopping.wait()
    finally:
        for runner in runners:
            await runner.cleanup()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(service_from_env(), _env_int("PORT", 8080), _env_int("METRICS_PORT", 9000)))
