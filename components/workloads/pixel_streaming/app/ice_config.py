"""ICE config service: the RTCPeerConnection configuration the signalling server fetches for each connection.

    GET /[?player=<id>]  {"iceTransportPolicy": "all", "iceServers": [{"urls", "username", "credential"}]}
                         429 with Retry-After once the caller has used up its credentials for now
    GET /healthz         200 while at least one ready TURN node is known, else 503 (readiness)
    GET /livez           200 while the process serves (liveness)

The URLs name every ready TURN node's public IP; the credentials are TURN REST API credentials (coturn's
`use-auth-secret`): user `<expiry>:<identity>`, password base64(HMAC-SHA1(secret, user)), valid for TTL_SECONDS.

The identity is the caller (the signalling server's pod address, keyed so it does not show the address), or
`<caller>.<player>` when the signalling server names the player connection. coturn counts `user-quota`
per identity, so one stream pod (or one player connection) holds at most that many allocations per TURN node;
each caller gets at most CREDENTIALS_PER_MINUTE credentials a minute (a token bucket of that size).

Environment: TURN_SECRET_FILE (required: the file holding the shared secret), TURN_PORT (3478),
TTL_SECONDS (3600), CREDENTIALS_PER_MINUTE (30), NODE_SELECTOR (app.pixel/turn=true), REFRESH_SECONDS (15),
PORT (8080); Kubernetes access as in kube.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import kube


def turn_credentials(secret: str, ttl_seconds: int, now: float, identity: str) -> tuple[str, str]:
    username = f"{int(now) + ttl_seconds}:{identity}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


PLAYER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def caller_identity(secret: str, address: str, player: str | None) -> str:
    """The TURN identity of one caller (and player connection): stable, and not the caller's address."""
    caller = hmac.new(secret.encode(), address.encode(), hashlib.sha256).hexdigest()[:12]
    return f"{caller}.{player}" if player else caller


class RateLimit:
    """A token bucket per caller: `per_minute` credentials at once, refilled at `per_minute` a minute."""

    def __init__(self, per_minute: int) -> None:
        self.capacity = float(per_minute)
        self.refill_per_second = per_minute / 60
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, caller: str, now: float) -> float:
        """0 when `caller` may have a credential now, else the seconds until it may."""
        with self._lock:
            tokens, then = self._buckets.get(caller, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - then) * self.refill_per_second)
            if tokens >= 1:
                self._buckets[caller] = (tokens - 1, now)
                return 0.0
            self._buckets[caller] = (tokens, now)
            return (1 - tokens) / self.refill_per_second

    def forget_idle(self, now: float) -> None:
        """Drop callers whose bucket is full again, so the table stays as small as the active callers."""
        with self._lock:
            full = now - self.capacity / self.refill_per_second
            self._buckets = {c: (t, then) for c, (t, then) in self._buckets.items() if then > full}


def turn_addresses(node_list: dict) -> list[str]:
    """Public IPs of the listed nodes that are Ready and schedulable."""
    addresses = []
    for node in node_list.get("items", []):
        external = kube.node_addresses(node).get("ExternalIP")
        if external and kube.node_ready(node):
            addresses.append(external)
    return sorted(addresses)


def rtc_configuration(addresses: list[str], port: int, username: str, credential: str) -> dict:
    urls = []
    for address in addresses:
        urls += [
            f"stun:{address}:{port}",
            f"turn:{address}:{port}?transport=udp",
            f"turn:{address}:{port}?transport=tcp",
        ]
    servers = [{"urls": urls, "username": username, "credential": credential}] if urls else []
    return {"iceTransportPolicy": "all", "iceServers": servers}


class TurnNodes:
    """The ready TURN nodes' public IPs, refreshed from the Kubernetes API in the background."""

    def __init__(self, selector: str, refresh_seconds: float) -> None:
        self.selector = selector
        self.refresh_seconds = refresh_seconds
        self.addresses: list[str] = []
        self._lock = threading.Lock()

    def refresh(self) -> None:
        query = urllib.parse.urlencode({"labelSelector": self.selector})
        addresses = turn_addresses(kube.call("GET", f"/api/v1/nodes?{query}"))
        with self._lock:
            self.addresses = addresses

    def current(self) -> list[str]:
        with self._lock:
            return list(self.addresses)

    def run(self, limit: RateLimit) -> None:
        while True:
            try:
                self.refresh()
            except Exception as error:
                print(f"ice-config: refreshing TURN nodes failed: {error}", file=sys.stderr, flush=True)
            limit.forget_idle(time.time())
            time.sleep(self.refresh_seconds)


def make_handler(
    nodes: TurnNodes, secret: str, port: int, ttl_seconds: int, limit: RateLimit
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urllib.parse.urlparse(self.path)
            if url.path == "/livez":
                return self._send(200, {"status": "ok"})
            addresses = nodes.current()
            if url.path == "/healthz":
                return self._send(200 if addresses else 503, {"turnNodes": len(addresses)})
            if url.path != "/":
                return self._send(404, {"error": "not found"})
            player = urllib.parse.parse_qs(url.query, keep_blank_values=True).get("player", [None])[-1]
            if player is not None and not PLAYER_ID.match(player):
                return self._send(400, {"error": "player must be 1-64 letters, digits, '-' or '_'"})
            now = time.time()
            wait = limit.take(self.client_address[0], now)
            if wait:
                return self._send(429, {"error": "too many credentials for this caller"}, retry_after=wait)
            identity = caller_identity(secret, self.client_address[0], player)
            username, credential = turn_credentials(secret, ttl_seconds, now, identity)
            return self._send(200, rtc_configuration(addresses, port, username, credential))

        def _send(self, status: int, body: dict, retry_after: float | None = None) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "no-store")
            if retry_after is not None:
                self.send_header("Retry-After", str(max(1, round(retry_after))))
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def main() -> None:
    secret = Path(os.environ["TURN_SECRET_FILE"]).read_text().strip()
    nodes = TurnNodes(
        os.environ.get("NODE_SELECTOR", "app.pixel/turn=true"), float(os.environ.get("REFRESH_SECONDS", "15"))
    )
    limit = RateLimit(int(os.environ.get("CREDENTIALS_PER_MINUTE", "30")))
    threading.Thread(target=nodes.run, args=(limit,), daemon=True).start()
    handler = make_handler(
        nodes, secret, int(os.environ.get("TURN_PORT", "3478")), int(os.environ.get("TTL_SECONDS", "3600")), limit
    )
    server = ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), handler)
    server.serve_forever()


if __name__ == "__main__":
    main()
