"""TURN for one player: which TURN node, and credentials that name the player and expire in minutes.

Credentials are coturn's TURN REST API ones (`use-auth-secret`): user `<expiry>:<name>`, password
base64(HMAC-SHA1(shared secret, user)). The name is derived from the player's identity (the launch link's
subject, the ID token's, or the anonymous session's), never from a cookie, so coturn's `user-quota` bounds the
allocations of one player on a node however many sessions it cycles through. A credential only opens allocations
until it expires: coturn keeps the key of an allocation it has authenticated and refreshes it with that
(ns_turn_server.c `check_stun_auth`, `hmackey_set`, coturn 4.17.1), so a running session outlives its
credential, and every new signalling connection of the session (a reconnect) gets a fresh one.

Each player is given one TURN node, the one holding the fewest players, so that its allocations (one per
URL: UDP, TCP, and TLS when configured) sit on one node instead of one per node. A node about to go is given to
nobody new: cordoned (a drain, OKE's node pool cycling), marked for deletion by the cluster autoscaler, or whose
coturn pod is terminating (it drains: its sessions go on, a new allocation would be refused) or not ready. A
player whose node went gets another at its next signalling connection.
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


def turn_name(secret: str, identity: str) -> str:
    """A player's name on the TURN servers: stable for the player, and telling nothing about who it is."""
    return hmac.new(secret.encode(), f"player:{identity}".encode(), hashlib.sha256).hexdigest()[:20]


# The cluster autoscaler's taint on a node it is deleting (cluster-autoscaler/utils/taints: ToBeDeletedTaint).
TO_BE_DELETED = "ToBeDeletedByClusterAutoscaler"


def serving_nodes(pod_list: dict) -> set[str]:
    """Nodes whose coturn pod is ready and not terminating."""
    serving = set()
    for pod in pod_list.get("items", []):
        metadata, status = pod.get("metadata", {}), pod.get("status", {})
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", []))
        if ready and not metadata.get("deletionTimestamp"):
            serving.add(pod.get("spec", {}).get("nodeName"))
    return serving


def turn_addresses(node_list: dict, pod_list: dict) -> list[str]:
    """Public IPs of the TURN nodes to give players: those Ready whose coturn is ready and not draining, and that
    are not leaving (cordoned, or being deleted by the cluster autoscaler); when every one is leaving (a one-node
    pool being cycled), those, whose coturn still takes allocations, rather than none."""
    serving = serving_nodes(pod_list)
    staying, leaving = [], []
    for node in node_list.get("items", []):
        external = kube.node_addresses(node).get("ExternalIP")
        conditions = node.get("status", {}).get("conditions", [])
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
        if not (external and ready and node["metadata"]["name"] in serving):
            continue
        spec = node.get("spec", {})
        going = spec.get("unschedulable") or any(t.get("key") == TO_BE_DELETED for t in spec.get("taints", []))
        (leaving if going else staying).append(external)
    return sorted(staying or leaving)


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
    _by_identity: dict[str, str] = field(default_factory=dict)

    def set_addresses(self, addresses: list[str]) -> None:
        self.addresses = addresses
        self._by_identity = {i: a for i, a in self._by_identity.items() if a in addresses}

    def retain(self, identities: set[str]) -> None:
        """Forgets the TURN node of every player but `identities` (the ones holding a stream)."""
        self._by_identity = {i: a for i, a in self._by_identity.items() if i in identities}

    def node_for(self, identity: str) -> str | None:
        """The player's TURN node: kept while it stays ready, else the least loaded one."""
        current = self._by_identity.get(identity)
        if current in self.addresses or not self.addresses:
            return current
        load = {address: 0 for address in self.addresses}
        for address in self._by_identity.values():
            load[address] += 1
        chosen = min(self.addresses, key=lambda a: (load[a], a))
        self._by_identity[identity] = chosen
        return chosen

    def peer_options(self, identity: str, now: float) -> dict[str, Any]:
        """The RTCConfiguration of a player: its TURN node only, relay only (the streams are reachable through
        the relay alone, and the player's own addresses stay with the player)."""
        settings = self.settings
        node = self.node_for(identity)
        urls = []
        if node:
            urls = [f"turn:{node}:{settings.port}?transport=udp", f"turn:{node}:{settings.port}?transport=tcp"]
        if settings.tls_url and urls:
            urls.append(settings.tls_url)
        servers = []
        if urls:
            username, credential = credentials(
                settings.secret, settings.ttl_seconds, now, turn_name(settings.secret, identity)
            )
            servers = [{"urls": urls, "username": username, "credential": credential}]
        return {"iceServers": servers, "iceTransportPolicy": "relay"}
