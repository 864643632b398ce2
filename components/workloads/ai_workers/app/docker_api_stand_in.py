"""A stand-in for the Docker Engine API, for go-livepeer's AI worker when every runner is external.

go-livepeer v0.9.1 creates its container manager even when every model in aiModels.json names an external
runner (`url`): at start it lists the containers an earlier run left behind (ai/worker/docker.go,
NewDockerManager -> RemoveExistingContainers), and it exits when that list cannot be read. It asks the Docker API
for nothing else that matters: for each model it checks whether the runner image is present and tries to pull
it, and only logs a failure (cmd/livepeer/starter/starter.go, EnsureImageAvailable). livepeer/ai-runner#386
(open) would make the manager optional.

This program answers those requests, and only those, with nothing to report: no containers, no images. Every
other request, a pull included, is refused. The worker therefore starts without any access to the node's
container runtime: there is no Docker socket in the pod, and nothing here can start a container.

    HEAD|GET /_ping                   200, API version 1.41
    GET /v<version>/containers/json   200 []
    GET /v<version>/images/<ref>/json 404 "no such image"
    anything else                     403 "refused by the stand-in"

It listens on a Unix socket (DOCKER_API_SOCKET, default /run/docker-api/docker.sock) that only the worker's
container shares, with mode 0600: both run as the same user. `--probe` asks the running stand-in for /_ping and
exits 0 when it answers, for the container's startup and liveness probes.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import socketserver
import sys
from http.server import BaseHTTPRequestHandler
from pathlib import Path

SOCKET = os.environ.get("DOCKER_API_SOCKET", "/run/docker-api/docker.sock")
# The oldest API version that has every endpoint the worker calls in the form it calls them; the client
# negotiates down to it.
API_VERSION = "1.41"
_VERSIONED = re.compile(r"^/v\d+\.\d+(?P<path>/.*)$")
_IMAGE_INSPECT = re.compile(r"^/images/(?P<reference>.+)/json$")


def route(method: str, target: str) -> tuple[int, object]:
    """(status, JSON body) for one request."""
    path = target.split("?", 1)[0]
    versioned = _VERSIONED.match(path)
    path = versioned["path"] if versioned else path
    if path == "/_ping" and method in ("GET", "HEAD"):
        return 200, "OK"
    if path == "/containers/json" and method == "GET":
        return 200, []
    image = _IMAGE_INSPECT.match(path)
    if image and method == "GET":
        return 404, {"message": f"No such image: {image['reference']} (runner images run in their own containers)"}
    return 403, {"message": f"{method} {path} refused by the Docker API stand-in: it starts and pulls nothing"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        status, body = route(self.command, self.path)
        payload = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Api-Version", API_VERSION)
        self.send_header("Ostype", "linux")
        self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _answer

    def address_string(self) -> str:
        # A Unix socket peer has no address; the worker is the only one that can reach it.
        return "worker"

    def log_message(self, *args: object) -> None:
        pass


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def serve(path: str) -> Server:
    """Bind the socket (replacing one a previous run left) with mode 0600."""
    Path(path).unlink(missing_ok=True)
    old = os.umask(0o177)
    try:
        server = Server(path, Handler)
    finally:
        os.umask(old)
    return server


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=3)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(3)
        self.sock.connect(self.unix_path)


def probe(path: str) -> bool:
    """Whether a stand-in answers /_ping on `path`."""
    connection = _UnixConnection(path)
    try:
        connection.request("GET", "/_ping")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def main(argv: list[str]) -> int:
    if argv[1:] == ["--probe"]:
        return 0 if probe(SOCKET) else 1
    serve(SOCKET).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
