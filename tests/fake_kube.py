"""A fake Kubernetes API server on loopback for the helper programs' tests: canned answers per route, every
request recorded, the service-account token checked. A route answers JSON, or plain text when it returns a
string (a pod's log)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import SHARED_APP, free_port

TOKEN = "fake-service-account-token"


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str | None
    body: Any


Route = Callable[[Call], tuple[int, Any]]


@dataclass
class FakeKube:
    routes: dict[tuple[str, str], Route]
    calls: list[Call] = field(default_factory=list)
    url: str = ""

    def env(self, directory: Path) -> dict[str, str]:
        """Environment that points kube.py at this server with a service-account token."""
        (directory / "token").write_text(TOKEN)
        # The helper programs import the shared kube.py, which the pods have beside them in /helpers.
        return {"KUBERNETES_API": self.url, "SERVICE_ACCOUNT_DIR": str(directory), "PYTHONPATH": str(SHARED_APP)}


def secret_file(directory: Path, secret: str) -> str:
    """The TURN shared secret as the pods see it: a file from the mounted Secret."""
    path = directory / "static-auth-secret"
    path.write_text(secret)
    return str(path)


def node(
    name: str, external: str | None, ready: bool = True, unschedulable: bool = False, internal: str | None = None
) -> dict:
    internal = internal or f"10.0.30.{len(name)}"
    addresses = [{"type": "InternalIP", "address": internal}, {"type": "Hostname", "address": name}]
    if external:
        addresses.append({"type": "ExternalIP", "address": external})
    return {
        "metadata": {"name": name, "labels": {"app.pixel/turn": "true"}},
        "spec": {"unschedulable": True} if unschedulable else {},
        "status": {"addresses": addresses, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def turn_pod(node_name: str, ready: bool = True, terminating: bool = False) -> dict:
    """The TURN DaemonSet's pod on `node_name`."""
    metadata: dict = {"name": f"turn-{node_name}", "labels": {"app.kubernetes.io/name": "turn"}}
    if terminating:
        metadata["deletionTimestamp"] = "2026-12-04T00:00:00Z"
    status = {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    return {"metadata": metadata, "spec": {"nodeName": node_name}, "status": status}


@contextmanager
def serve(routes: dict[tuple[str, str], Route]) -> Iterator[FakeKube]:
    fake = FakeKube(routes)

    class Handler(BaseHTTPRequestHandler):
        def _handle(self, method: str) -> None:
            parsed = urllib.parse.urlparse(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            call = Call(
                method,
                parsed.path,
                urllib.parse.parse_qs(parsed.query),
                self.headers.get("Content-Type"),
                json.loads(raw) if raw else None,
            )
            fake.calls.append(call)
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                status, body = 401, {"kind": "Status", "code": 401}
            elif (method, parsed.path) in routes:
                status, body = routes[(method, parsed.path)](call)
            else:
                status, body = 404, {"kind": "Status", "code": 404}
            text = isinstance(body, str)
            payload = body.encode() if text else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain" if text else "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            self._handle("GET")

        def do_PATCH(self) -> None:
            self._handle("PATCH")

        def do_DELETE(self) -> None:
            self._handle("DELETE")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield fake
    finally:
        server.shutdown()


def start_program(program: Path, env: dict[str, str], probe: str = "/livez") -> tuple[subprocess.Popen, str]:
    """A helper program serving HTTP on a free loopback port, once `probe` answers; (process, base URL)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(program)],
        env={**os.environ, **env, "PORT": str(port)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + probe, timeout=5).close()
            return process, url
        except urllib.error.HTTPError:
            return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    pytest.fail(f"{program.name} did not start: {process.stderr.read().decode()}")
