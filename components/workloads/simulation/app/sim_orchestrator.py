"""Simulation fleet orchestration service: the Isaac Sim instances' state and controls, over Kubernetes.

Instance <i> is StatefulSet `sim-<i>` with one pod, `sim-<i>-0`. Start and stop scale it to 1 and 0; restart
deletes its pod (the StatefulSet makes a new one); state comes from the pods and the StatefulSets.

    GET    /                                   the dashboard (dashboard.html beside this program)
    GET    /healthz                            200 while the process serves
    GET    /health                             200 {"kubernetes": "ok"}, or 503 while the API cannot be reached
    GET    /api/instances                      every instance and its state
    GET    /api/instances/<i>                  one instance
    POST   /api/instances/start    {"instance_id": <i>}   409 when it already runs (or starts)
    POST   /api/instances/stop     {"instance_id": <i>}   409 when it is already stopped
    POST   /api/instances/restart  {"instance_id": <i>}   409 when it has no pod
    DELETE /api/instances/<i>                  remove its pod (stop; the StatefulSet belongs to the stack)
    GET    /api/instances/<i>/logs?tail=<n>    the last n lines of its Isaac Sim container (text)
    POST   /api/cleanup                        stop every instance
    GET    /api/config                         the fleet as the stack declared it

Every path but /healthz asks for the operator's credential itself (HTTP basic auth, realm AUTH_REALM), whoever
calls:
the ingress controller passes the browser's Authorization header through on this route, and a pod of the cluster
that reaches the Service directly has to present it too. The service holds only the password's SHA-256 (the
password is 32 random characters, so an unsalted digest is as strong as the password).

Errors are JSON {"error": ...}: 400 a malformed request, 404 an unknown instance or path, 405 a method the
path does not take, 409 a state that does not allow the action, 413 a body over 4 KiB, 415 a POST that is not
JSON (so no cross-site form can drive it), 502 an answer of the API that is an error, 503 no answer from the API.
No page may frame the service's pages (Content-Security-Policy frame-ancestors 'none', X-Frame-Options DENY).

Environment: NAMESPACE, INSTANCES, FLEET_CONFIG (JSON), STREAMS (JSON: per instance {host, signalPort, mediaPort,
viewerUrl} or null when its stream is not published), PORT (8080),
AUTH_USER, AUTH_SHA256_FILE (a file holding the password's SHA-256, hex), AUTH_REALM; Kubernetes access as in
kube.py.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import urllib.error
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import kube

FLEET_SELECTOR = "app.kubernetes.io/name=isaac-sim"
INSTANCE_LABEL = "pixelstream/instance"
CONTAINER = "isaac-sim"
MAX_TAIL = 10000
MAX_BODY = 4096
# What the kubelet's probes ask, without a credential: whether the process serves, nothing about the fleet.
OPEN_PATHS = ("/healthz",)
# Every answer: no page may frame the dashboard (clickjacking its buttons), or give it a base URL or a form target.
SECURITY_HEADERS = {
    "Content-Security-Policy": "frame-ancestors 'none'; base-uri 'none'; form-action 'none'; object-src 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
}
# Why a container cannot run, as the kubelet reports it while it waits.
FAILED_REASONS = (
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
)
DASHBOARD = Path(__file__).with_name("dashboard.html")


class Refused(Exception):
    """A request the service answers with an error status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Operator:
    """The one credential the service accepts: a user name and the SHA-256 of the password, read from its file
    at every request (the kubelet updates the mounted Secret when the password is rotated: the old one stops
    working without a restart; an unreadable file admits nobody)."""

    def __init__(self, user: str, digest_file: Path, realm: str) -> None:
        if not user or not realm or self._digest(digest_file) is None:
            raise SystemExit("AUTH_USER, AUTH_REALM and AUTH_SHA256_FILE (the password's SHA-256, hex) are required")
        self.user, self.digest_file = user.encode(), digest_file
        self.challenge = {"WWW-Authenticate": f'Basic realm="{realm}"'}

    @staticmethod
    def _digest(path: Path) -> bytes | None:
        try:
            text = path.read_text().strip()
        except OSError:
            return None
        return bytes.fromhex(text) if re.fullmatch(r"[0-9a-f]{64}", text) else None

    def admits(self, authorization: str | None) -> bool:
        """Whether an Authorization header carries this credential (compared in constant time)."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, colon, password = base64.b64decode(token.strip(), validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return False
        digest = self._digest(self.digest_file)
        same_user = hmac.compare_digest(user, self.user)
        same_password = digest is not None and hmac.compare_digest(hashlib.sha256(password).digest(), digest)
        return bool(colon) and same_user and same_password


def statefulset_name(index: int) -> str:
    return f"sim-{index}"


def pod_name(index: int) -> str:
    return f"sim-{index}-0"


def instance_state(desired: int | None, pod: dict | None) -> tuple[str, str]:
    """(state, reason) of one instance from its StatefulSet's replicas and its pod (None when absent)."""
    if desired is None:
        return "missing", "its StatefulSet does not exist"
    if pod is None:
        return ("stopped", "") if desired == 0 else ("pending", "no pod yet")
    if desired == 0 or pod["metadata"].get("deletionTimestamp"):
        return "stopping", ""
    status = pod.get("status", {})
    for container in status.get("containerStatuses", []):
        waiting = container.get("state", {}).get("waiting", {})
        if container.get("name") == CONTAINER and waiting.get("reason") in FAILED_REASONS:
            return "failed", waiting["reason"]
    phase = status.get("phase", "Pending")
    if phase == "Running":
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", []))
        return ("running", "") if ready else ("starting", "the app has not said AppReady yet")
    if phase == "Failed":
        return "failed", status.get("reason", "the pod failed")
    return "pending", status.get("reason") or ("" if phase == "Pending" else f"pod phase {phase}")


class Fleet:
    """The instances of one namespace, read and driven through the Kubernetes API."""

    def __init__(self, namespace: str, instances: int, streams: list[dict | None]) -> None:
        self.namespace = namespace
        self.count = instances
        self.streams = streams

    def index(self, value: Any) -> int:
        """An instance number from a path or a body; 404 for anything that names no instance."""
        text = str(value)
        if isinstance(value, bool) or not re.fullmatch(r"\d{1,6}", text) or int(text) >= self.count:
            raise Refused(404, f"no instance {text[:32]!r}; instances are 0-{self.count - 1}")
        return int(text)

    def _api(self, method: str, path: str, body: Any = None, **options: Any) -> Any:
        try:
            return kube.call(method, path, body, **options)
        except urllib.error.HTTPError as error:
            raise Refused(502, f"the Kubernetes API answered {error.code} to {method} {path}") from None
        except (OSError, ValueError) as error:
            raise Refused(503, f"the Kubernetes API cannot be reached: {error}") from None

    def _list(self, api: str, kind: str) -> list[dict]:
        query = urllib.parse.urlencode({"labelSelector": FLEET_SELECTOR})
        return self._api("GET", f"{api}/namespaces/{self.namespace}/{kind}?{query}").get("items", [])

    def instances(self) -> list[dict]:
        replicas = {
            s["metadata"]["name"]: s.get("spec", {}).get("replicas", 1)
            for s in self._list("/apis/apps/v1", "statefulsets")
        }
        pods = {p["metadata"]["name"]: p for p in self._list("/api/v1", "pods")}
        return [self._describe(i, replicas.get(statefulset_name(i)), pods.get(pod_name(i))) for i in range(self.count)]

    def _describe(self, index: int, desired: int | None, pod: dict | None) -> dict:
        state, reason = instance_state(desired, pod)
        status = (pod or {}).get("status", {})
        restarts = sum(c.get("restartCount", 0) for c in status.get("containerStatuses", []))
        return {
            "id": index,
            "name": statefulset_name(index),
            "pod": pod_name(index) if pod else None,
            "state": state,
            "reason": reason,
            "desiredReplicas": desired,
            "node": (pod or {}).get("spec", {}).get("nodeName"),
            "podIp": status.get("podIP"),
            "startedAt": status.get("startTime"),
            "restarts": restarts,
            "stream": self.streams[index] if index < len(self.streams) else None,
        }

    def instance(self, index: int) -> dict:
        return self.instances()[index]

    def _scale(self, index: int, replicas: int) -> None:
        path = f"/apis/apps/v1/namespaces/{self.namespace}/statefulsets/{statefulset_name(index)}/scale"
        self._api("PATCH", path, {"spec": {"replicas": replicas}}, content_type="application/merge-patch+json")

    def start(self, index: int) -> dict:
        current = self.instance(index)
        if current["desiredReplicas"] == 1:
            raise Refused(409, f"instance {index} is already running ({current['state']})")
        self._scale(index, 1)
        return self.instance(index)

    def stop(self, index: int) -> dict:
        if self.instance(index)["desiredReplicas"] == 0:
            raise Refused(409, f"instance {index} is already stopped")
        self._scale(index, 0)
        return self.instance(index)

    def restart(self, index: int) -> dict:
        if self.instance(index)["pod"] is None:
            raise Refused(409, f"instance {index} has no pod to restart; start it")
        self._api("DELETE", f"/api/v1/namespaces/{self.namespace}/pods/{pod_name(index)}")
        return self.instance(index)

    def remove(self, index: int) -> dict:
        if self.instance(index)["desiredReplicas"] != 0:
            self._scale(index, 0)
        return self.instance(index)

    def cleanup(self) -> list[dict]:
        for item in self.instances():
            if item["desiredReplicas"] not in (0, None):
                self._scale(item["id"], 0)
        return self.instances()

    def logs(self, index: int, tail: int) -> str:
        if self.instance(index)["pod"] is None:
            raise Refused(409, f"instance {index} has no pod to read logs from")
        query = urllib.parse.urlencode({"container": CONTAINER, "tailLines": tail})
        return self._api("GET", f"/api/v1/namespaces/{self.namespace}/pods/{pod_name(index)}/log?{query}", text=True)

    def reachable(self) -> str | None:
        """None while the API answers, else why not."""
        try:
            self._list("/apis/apps/v1", "statefulsets")
        except Refused as refused:
            return str(refused)
        return None


ROUTES = {
    ("POST", "/api/instances/start"): Fleet.start,
    ("POST", "/api/instances/stop"): Fleet.stop,
    ("POST", "/api/instances/restart"): Fleet.restart,
}
_INSTANCE = re.compile(r"^/api/instances/([^/]+)$")
_LOGS = re.compile(r"^/api/instances/([^/]+)/logs$")


def make_handler(fleet: Fleet, config: dict, operator: Operator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # A client that stops sending holds its thread no longer than this.
        timeout = 30

        def do_GET(self) -> None:
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

        def do_DELETE(self) -> None:
            self._answer("DELETE")

        def do_HEAD(self) -> None:
            self._answer("GET")

        def do_PUT(self) -> None:
            # No route takes PUT, PATCH or OPTIONS: 405 (or 404) as JSON rather than http.server's 501 page.
            self._answer(self.command)

        do_PATCH = do_OPTIONS = do_PUT

        def _answer(self, method: str) -> None:
            url = urllib.parse.urlparse(self.path)
            if url.path not in OPEN_PATHS and not operator.admits(self.headers.get("Authorization")):
                self._send(401, {"error": "sign in as the fleet's operator"}, operator.challenge)
                return
            try:
                # A browser sends JSON cross-site only after a CORS preflight this service never grants, so a
                # page elsewhere cannot make a logged-in operator's browser start or stop anything.
                kind = (self.headers.get("Content-Type") or "").split(";")[0].strip()
                if method == "POST" and kind != "application/json":
                    raise Refused(415, "send the request as application/json")
                status, body = route(fleet, config, method, url, self._body)
            except Refused as refused:
                status, body = refused.status, {"error": str(refused)}
            self._send(status, body)

        def _body(self) -> dict:
            length = (self.headers.get("Content-Length") or "0").strip()
            if not re.fullmatch(r"\d{1,12}", length):
                raise Refused(400, "Content-Length is not a number of bytes")
            if int(length) > MAX_BODY:
                raise Refused(413, f"the body is larger than {MAX_BODY} bytes")
            raw = self.rfile.read(int(length))
            if len(raw) < int(length):
                raise Refused(400, "the body ended before its Content-Length")
            try:
                body = json.loads(raw or b"null")
            except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deep to parse
                raise Refused(400, "the body is not JSON") from None
            instance = body.get("instance_id") if isinstance(body, dict) else None
            if isinstance(instance, bool) or not isinstance(instance, (int, str)):
                raise Refused(400, 'the body names no instance: {"instance_id": <number>}')
            return body

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            if isinstance(body, bytes):
                payload, kind = body, "text/html; charset=utf-8"
            elif isinstance(body, str):
                payload, kind = body.encode(), "text/plain; charset=utf-8"
            else:
                payload, kind = json.dumps(body).encode(), "application/json"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Cache-Control", "no-store")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def end_headers(self) -> None:
            # Here, so that http.server's own error pages (a malformed request line) carry them too.
            for name, value in SECURITY_HEADERS.items():
                self.send_header(name, value)
            super().end_headers()

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def route(fleet: Fleet, config: dict, method: str, url: urllib.parse.ParseResult, read_body: Any) -> tuple[int, Any]:
    """(status, body) for one request; `read_body` reads the request's JSON body when the route takes one."""
    path = url.path
    if (method, path) in ROUTES:
        return 200, ROUTES[(method, path)](fleet, fleet.index(read_body()["instance_id"]))
    if method == "POST" and path == "/api/cleanup":
        return 200, fleet.cleanup()
    instance, logs = _INSTANCE.match(path), _LOGS.match(path)
    if method == "DELETE" and instance:
        return 200, fleet.remove(fleet.index(instance[1]))
    if method != "GET":
        raise Refused(405 if path.startswith("/api/") else 404, f"{method} {path} is not an operation of this API")
    if path == "/":
        return 200, DASHBOARD.read_bytes()
    if path == "/healthz":
        return 200, {"status": "ok"}
    if path == "/health":
        problem = fleet.reachable()
        return (503, {"kubernetes": "unavailable", "error": problem}) if problem else (200, {"kubernetes": "ok"})
    if path == "/api/instances":
        return 200, fleet.instances()
    if path == "/api/config":
        return 200, config
    if instance:
        return 200, fleet.instance(fleet.index(instance[1]))
    if logs:
        index = fleet.index(logs[1])
        tail = urllib.parse.parse_qs(url.query).get("tail", ["100"])[-1]
        if not re.fullmatch(r"\d{1,5}", tail) or not 1 <= int(tail) <= MAX_TAIL:
            raise Refused(400, f"tail must be a number of lines, 1-{MAX_TAIL}")
        return 200, fleet.logs(index, int(tail))
    raise Refused(404, f"{path} is not a page or operation of this service")


def main() -> None:
    streams = json.loads(os.environ.get("STREAMS") or "[]")
    fleet = Fleet(os.environ["NAMESPACE"], int(os.environ["INSTANCES"]), streams)
    config = json.loads(os.environ.get("FLEET_CONFIG", "{}"))
    digest_file = Path(os.environ.get("AUTH_SHA256_FILE") or "/nonexistent")
    operator = Operator(os.environ.get("AUTH_USER", ""), digest_file, os.environ.get("AUTH_REALM", ""))
    handler = make_handler(fleet, config, operator)
    server = ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), handler)
    server.serve_forever()


if __name__ == "__main__":
    main()
