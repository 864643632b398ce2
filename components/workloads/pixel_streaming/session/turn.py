"""TURN for one session: which TURN node, and credentials that name the session and expire in minutes.

Credentials are coturn's TURN REST API ones (`use-auth-secret`): user `<expiry>:<identity>`, password
base64(HMAC-SHA1(shared secret, user)). The identity is derived from the session (never its cookie value), so
coturn's `user-quota` bounds the allocations of one session on a node. A credential only opens allocations
until it expires: coturn keeps the key of an allocation it has authenticated and refreshes it with that
(ns_turn_server.c `check_stun_auth`, `hmackey_set`, coturn 4.17.1), so a running session outlives its
credential, and every new signalling connection of the session (a reconnect) gets a fresh one.

Each session is given one TURN node, the one holding the fewest sessions, so that its allocations (one per
URL: UDP, TCP, and TLS when configured) sit on one node instead of one per node.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any

import kube


def credentials(secret: str, ttl_seconds: int, now: float, identity: str) -> tuple[str, str]:
    username = f"{int(now) + ttl_seconds}:{identity}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def turn_identity(secret: str, session_id: str) -> str:
    """A session's name on the TURN servers: stable for the session, and not the session's cookie."""
    return hmac.new(secret.encode(), f"session:{session_id}".encode(), hashlib.sha256).hexdigest()[:20]


def turn_addresses(node_list: dict) -> list[str]:
    """Public IPs of the listed nodes that are Ready and schedulable."""
    addresses = []
    for node in node_list.get("items", []):
        external = kube.node_addresses(node).get("ExternalIP")
        if external and kube.node_ready(node):
            addresses.append(external)
    return sorted(addresses)


@dataclass
class TurnSettings:
    secret: str
    port: int = 3478
    ttl_seconds: int = 300
    tls_url: str | None = None
    """`turns:<host>:443?transport=tcp` when TURN over TLS is on."""


@dataclass
class TurnPool:
    settings: TurnSettings
    addresses: list[str] = field(default_factory=list)
    _by_session: dict[str, str] = field(default_factory=dict)

    def set_addresses(self, addresses: list[str]) -> None:
        self.addresses = addresses
        self._by_session = {s: a for s, a in self._by_session.items() if a in addresses}

    def retain(self, session_ids: set[str]) -> None:
        """Forgets the TURN node of every session but `session_ids` (the ones holding a stream)."""
        self._by_session = {s: a for s, a in self._by_session.items() if s in session_ids}

    def node_for(self, session_id: str) -> str | None:
        """The session's TURN node: kept while it stays ready, else the least loaded one."""
        current = self._by_session.get(session_id)
        if current in self.addresses or not self.addresses:
            return current
        load = {address: 0 for address in self.addresses}
        for address in self._by_session.values():
            load[address] += 1
        chosen = min(self.addresses, key=lambda a: (load[a], a))
        self._by_session[session_id] = chosen
        return chosen

    def peer_options(self, session_id: str, now: float) -> dict[str, Any]:
        """The RTCConfiguration of the session's player: its TURN node only, relay only (the streams are
        reachable through the relay alone, and the player's own addresses stay with the player)."""
        settings = self.settings
        node = self.node_for(session_id)
        urls = []
        if node:
            urls = [f"turn:{node}:{settings.port}?transport=udp", f"turn:{node}:{settings.port}?transport=tcp"]
        if settings.tls_url and urls:
            urls.append(settings.tls_url)
        servers = []
        if urls:
            username, credential = credentials(
                settings.secret, settings.ttl_seconds, now, turn_identity(settings.secret, session_id)
            )
            servers = [{"urls": urls, "username": username, "credential": credential}]
        return {"iceServers": servers, "iceTransportPolicy": "relay"}
