"""ICE config service: the RTCPeerConnection configuration the signalling server fetches for each connection.

    GET /         {"iceTransportPolicy": "all", "iceServers": [{"urls": [...], "username": ..., "credential": ...}]}
    GET /healthz  200 while at least one ready TURN node is known, else 503 (readiness)
    GET /livez    200 while the process serves (liveness)

The URLs name every ready TURN node's public IP; the credentials are TURN REST API credentials (coturn's
`use-auth-secret`): user `<expiry>:<id>`, password base64(HMAC-SHA1(secret, user)), valid for TTL_SECONDS.

Environment: TURN_SECRET_FILE (required: the file holding the shared secret), TURN_PORT (3478),
TTL_SECONDS (3600), NODE_SELECTOR (app.pixel/turn=true), REFRESH_SECONDS (15), PORT (8080); Kubernetes access
as in kube.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
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

    def run(self) -> None:
        while True:
            try:
                self.refresh()
            except Exception as error:
                print(f"ice-config: refreshing TURN nodes failed: {error}", file=sys.stderr, flush=True)
            time.sleep(self.refresh_seconds)


def make_handler(nodes: TurnNodes, secret: str, port: int, ttl_seconds: int) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = urllib.parse.urlparse(self.path).path
            if path == "/livez":
                return self._send(200, {"status": "ok"})
            addresses = nodes.current()
            if path == "/healthz":
                return self._send(200 if addresses else 503, {"turnNodes": len(addresses)})
            if path != "/":
                return self._send(404, {"error": "not found"})
            username, credential = turn_credentials(secret, ttl_seconds, time.time(), secrets.token_hex(8))
            return self._send(200, rtc_configuration(addresses, port, username, credential))

        def _send(self, status: int, body: dict) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "no-store")
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
    threading.Thread(target=nodes.run, daemon=True).start()
    handler = make_handler(
        nodes, secret, int(os.environ.get("TURN_PORT", "3478")), int(os.environ.get("TTL_SECONDS", "3600"))
    )
    server = ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), handler)
    server.serve_forever()


if __name__ == "__main__":
    main()
