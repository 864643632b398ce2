"""What may cross between a player and its stream's signalling server (Epic's Wilbur), message by message.

The player speaks Epic's signalling protocol (lib-pixelstreamingcommon, SignallingProtocol 1.3) to the session
service, which relays it to the one signalling server of the stream the broker gave this player. Every message
is checked here; anything not listed is dropped and counted:

- The player sees one streamer, `stream`: its `listStreamers` is answered here, and `subscribe` reaches the
  signalling server only for that name, translated to the streamer's real id. No message lets a player name,
  list or reach another stream, and the signalling server's own view (player counts, other streamers' ids,
  renames) never reaches the player.
- The `config` message carries this session's TURN servers and credentials (relay only) in place of the
  signalling server's peer options.
- A message is a JSON object with a known string `type`, at most MAX_MESSAGE_BYTES long.

Message names and directions: Wilbur's PlayerConnection handlers (Signalling/src/PlayerConnection.ts at
signalling-webserver-UE5.7-3.1.0) and the frontend library's WebRtcPlayerController (ue5.7 0.3.1).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# An Unreal offer is a few kilobytes; nothing a player sends is larger.
MAX_MESSAGE_BYTES = 64 * 1024
# The protocol's message names (lib-pixelstreamingcommon MessageRegistry): what a dropped message is counted as;
# any other name counts as `other`, so a player cannot make up metric series.
KNOWN_TYPES = frozenset(
    {
        *("answer", "config", "disconnectPlayer", "endpointId", "endpointIdConfirm", "iceCandidate", "identify"),
        *("listStreamers", "offer", "ping", "playerConnected", "playerCount", "playerDisconnected", "pong"),
        *("stats", "streamerDisconnected", "streamerList", "subscribe", "unsubscribe", "layerPreference"),
        *("dataChannelRequest", "peerDataChannels", "peerDataChannelsReady", "streamerDataChannels"),
        *("startStreaming", "stopStreaming", "subscribeFailed", "streamerIdChanged"),
    }
)
# The only streamer name a player ever sees.
PUBLIC_STREAMER_ID = "stream"

# Player -> signalling server, passed through unchanged (the server stamps its own player id on them).
PLAYER_PASSTHROUGH = frozenset(
    {
        "offer",
        "answer",
        "iceCandidate",
        "dataChannelRequest",
        "peerDataChannelsReady",
        "layerPreference",
        "ping",
        "pong",
        "unsubscribe",
    }
)
# Signalling server -> player, passed through unchanged (`config` is rewritten, the rest dropped).
STREAM_PASSTHROUGH = frozenset(
    {"offer", "answer", "iceCandidate", "ping", "pong", "subscribeFailed", "peerDataChannels"}
)


def parse(text: str | bytes) -> dict[str, Any] | None:
    """A signalling message, or None for anything that is not one."""
    if isinstance(text, bytes) or len(text.encode()) > MAX_MESSAGE_BYTES:
        return None
    try:
        message = json.loads(text)
    except ValueError:
        return None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return None
    return message


def encode(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


@dataclass
class Relay:
    """The checks of one player's connection. `streamer_id` is the streamer's id on its signalling server,
    learnt before the player's messages are relayed; `peer_options` the session's RTCConfiguration."""

    streamer_id: str
    peer_options: dict[str, Any]
    dropped: dict[str, int] = field(default_factory=dict)

    def from_player(self, text: str | bytes) -> tuple[str | None, str | None]:
        """(what to send the signalling server, what to answer the player) for one player message."""
        message = parse(text)
        kind = message["type"] if message else "invalid"
        if message is None:
            return self._drop(kind)
        if kind == "listStreamers":
            return None, encode({"type": "streamerList", "ids": [PUBLIC_STREAMER_ID]})
        if kind == "subscribe":
            if message.get("streamerId") != PUBLIC_STREAMER_ID:
                self._drop(kind)
                return None, encode({"type": "subscribeFailed", "message": "no such stream"})
            return encode({"type": "subscribe", "streamerId": self.streamer_id}), None
        if kind in PLAYER_PASSTHROUGH:
            return encode(message), None
        return self._drop(kind)

    def from_stream(self, text: str | bytes) -> str | None:
        """What to send the player for one message of the signalling server."""
        message = parse(text)
        if message is None:
            return None
        kind = message["type"]
        if kind == "config":
            return encode({**message, "peerConnectionOptions": self.peer_options})
        if kind in STREAM_PASSTHROUGH:
            return encode(message)
        return None

    def _drop(self, kind: str) -> tuple[None, None]:
        label = kind if kind in KNOWN_TYPES or kind == "invalid" else "other"
        self.dropped[label] = self.dropped.get(label, 0) + 1
        return None, None


def streamer_ids(text: str | bytes) -> list[str] | None:
    """The ids of a signalling server's `streamerList` answer, or None when `text` is another message."""
    message = parse(text)
    if message is None or message["type"] != "streamerList" or not isinstance(message.get("ids"), list):
        return None
    return [str(i) for i in message["ids"]]
