"""Stand-ins for one stream pod's signalling, for the session service's tests: a signalling server that behaves
as Epic's Wilbur does towards players and streamers, and a streamer that speaks the streamer side.

The server follows Wilbur at signalling-webserver-UE5.7-3.1.0 (EpicGamesExt/PixelStreamingInfrastructure):
- Signalling/src/SignallingServer.ts: a `config` message (protocolVersion, peerConnectionOptions from
  --peer_options) to every new player and streamer;
- Signalling/src/StreamerRegistry.ts: a new streamer is sent `identify`, answers `endpointId`, is confirmed with
  `endpointIdConfirm`; a colliding id gets a numeric suffix;
- Signalling/src/PlayerConnection.ts: `listStreamers` -> `streamerList` of the streaming streamers; `subscribe`
  -> `playerConnected` to the streamer (or `subscribeFailed` for an unknown id or a full streamer: --max_players);
  offer/answer/iceCandidate/dataChannelRequest/peerDataChannelsReady/layerPreference go to the subscribed
  streamer with the server's player id stamped on, and a player that sends one without subscribing is subscribed
  to the first streamer; `ping` -> `pong`;
- Signalling/src/StreamerConnection.ts: the streamer's offer/answer/iceCandidate go to the player they name;
- SignallingWebServer/src/paths/status.ts: GET /api/status -> {uptime, streamer_count, player_count, version}.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

PROTOCOL_VERSION = "1.3.0"
PLAYER_TO_STREAMER = {
    "offer",
    "answer",
    "iceCandidate",
    "dataChannelRequest",
    "peerDataChannelsReady",
    "layerPreference",
}
# What the stand-in's own peer options carry, so a test can see that a player never gets them.
OWN_PEER_OPTIONS = {"iceServers": [{"urls": ["turn:signalling-server-own.invalid:3478"], "username": "u"}]}


@dataclass
class Streamer:
    socket: web.WebSocketResponse
    id: str = ""
    streaming: bool = False
    subscribers: set[str] = field(default_factory=set)


@dataclass
class Player:
    id: str
    socket: web.WebSocketResponse
    subscribed: Streamer | None = None


@dataclass
class SignallingServer:
    """Players on `/` of the player app, streamers on `/` of the streamer app. `log` records every message
    the server received, as (`player:<id>` or `streamer:<id>`, message)."""

    max_players: int = 1
    streamers: list[Streamer] = field(default_factory=list)
    players: dict[str, Player] = field(default_factory=dict)
    log: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    origins: list[str | None] = field(default_factory=list)
    """The Origin header of each player connection (a browser sends one; the session service does not)."""
    _next_player: int = 0

    def from_players(self) -> list[tuple[str, dict[str, Any]]]:
        """What players sent this server: (player id, message)."""
        return [(who.removeprefix("player:"), m) for who, m in self.log if who.startswith("player:")]

    def player_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._player)
        app.router.add_get("/api/status", self._status)
        return app

    def streamer_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._streamer)
        return app

    async def _status(self, _: web.Request) -> web.Response:
        return web.json_response(
            {"uptime": 1, "streamer_count": len(self.streamers), "player_count": len(self.players), "version": "3.1.0"}
        )

    @staticmethod
    async def _send(socket: web.WebSocketResponse, message: dict[str, Any]) -> None:
        if not socket.closed:
            await socket.send_str(json.dumps(message))

    def _config(self) -> dict[str, Any]:
        return {"type": "config", "protocolVersion": PROTOCOL_VERSION, "peerConnectionOptions": OWN_PEER_OPTIONS}

    async def _player(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self.origins.append(request.headers.get("Origin"))
        player = Player(f"Player{self._next_player}", socket)
        self._next_player += 1
        self.players[player.id] = player
        await self._send(socket, self._config())
        try:
            async for frame in socket:
                if frame.type == aiohttp.WSMsgType.TEXT:
                    await self._from_player(player, json.loads(frame.data))
        finally:
            del self.players[player.id]
            await self._unsubscribe(player)
        return socket

    async def _from_player(self, player: Player, message: dict[str, Any]) -> None:
        self.log.append((f"player:{player.id}", message))
        kind = message.get("type")
        if kind == "listStreamers":
            ids = [s.id for s in self.streamers if s.streaming]
            await self._send(player.socket, {"type": "streamerList", "ids": ids})
        elif kind == "subscribe":
            await self._subscribe(player, message.get("streamerId", ""))
        elif kind == "unsubscribe":
            await self._unsubscribe(player)
        elif kind == "ping":
            await self._send(player.socket, {"type": "pong", "time": message.get("time")})
        elif kind in PLAYER_TO_STREAMER:
            if player.subscribed is None and self.streamers:
                await self._subscribe(player, self.streamers[0].id)
            if player.subscribed is not None:
                await self._send(player.subscribed.socket, {**message, "playerId": player.id})

    async def _subscribe(self, player: Player, streamer_id: str) -> None:
        streamer = next((s for s in self.streamers if s.id == streamer_id), None)
        if streamer is None:
            await self._send(
                player.socket, {"type": "subscribeFailed", "message": f"Streamer {streamer_id} does not exist."}
            )
            return
        await self._unsubscribe(player)
        if self.max_players and len(streamer.subscribers) >= self.max_players:
            await self._send(player.socket, {"type": "subscribeFailed", "message": f"Streamer {streamer_id} is full."})
            return
        player.subscribed = streamer
        streamer.subscribers.add(player.id)
        await self._send(
            streamer.socket, {"type": "playerConnected", "playerId": player.id, "dataChannel": True, "sfu": False}
        )

    async def _unsubscribe(self, player: Player) -> None:
        streamer, player.subscribed = player.subscribed, None
        if streamer is not None:
            streamer.subscribers.discard(player.id)
            await self._send(streamer.socket, {"type": "playerDisconnected", "playerId": player.id})

    async def _streamer(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        streamer = Streamer(socket, self._unique_id("DefaultStreamer"))
        self.streamers.append(streamer)
        await self._send(socket, {"type": "identify"})
        await self._send(socket, self._config())
        try:
            async for frame in socket:
                if frame.type == aiohttp.WSMsgType.TEXT:
                    await self._from_streamer(streamer, json.loads(frame.data))
        finally:
            self.streamers.remove(streamer)
            for player_id in list(streamer.subscribers):
                if player_id in self.players:
                    await self.players[player_id].socket.close()
        return socket

    async def _from_streamer(self, streamer: Streamer, message: dict[str, Any]) -> None:
        self.log.append((f"streamer:{streamer.id}", message))
        kind = message.get("type")
        if kind == "endpointId":
            streamer.id, streamer.streaming = (
                self._unique_id(str(message.get("id") or "DefaultStreamer"), streamer),
                True,
            )
            await self._send(streamer.socket, {"type": "endpointIdConfirm", "committedId": streamer.id})
        elif kind in ("offer", "answer", "iceCandidate") and message.get("playerId") in self.players:
            await self._send(self.players[message["playerId"]].socket, message)
        elif kind == "ping":
            await self._send(streamer.socket, {"type": "pong", "time": message.get("time")})

    def _unique_id(self, wanted: str, own: Streamer | None = None) -> str:
        taken = {s.id for s in self.streamers if s is not own}
        if wanted not in taken:
            return wanted
        suffix = 1
        while f"{wanted}{suffix}" in taken:
            suffix += 1
        return f"{wanted}{suffix}"


@dataclass
class FakeStreamer:
    """A streamer that identifies itself and records what reaches it (no media: the browser tests use a real
    WebRTC streamer page for that)."""

    url: str
    id: str = "DefaultStreamer"
    received: list[dict[str, Any]] = field(default_factory=list)
    _task: asyncio.Task | None = None

    async def start(self) -> None:
        ready = asyncio.Event()
        self._task = asyncio.create_task(self._run(ready))
        await asyncio.wait_for(ready.wait(), 5)

    async def _run(self, ready: asyncio.Event) -> None:
        async with aiohttp.ClientSession() as client, client.ws_connect(self.url) as socket:
            async for frame in socket:
                message = json.loads(frame.data)
                self.received.append(message)
                if message["type"] == "identify":
                    await socket.send_str(json.dumps({"type": "endpointId", "id": self.id}))
                elif message["type"] == "endpointIdConfirm":
                    ready.set()

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
                await self._task

    def players_connected(self) -> list[str]:
        return [m["playerId"] for m in self.received if m["type"] == "playerConnected"]
