"""Who reaches each path of the published AI orchestrator, through a real nginx.

The orchestrator's Ingresses are rendered into nginx locations as ingress-nginx v1.15.1 builds them (a Prefix
path `/p` becomes `location /p/` and `location = /p`, internal/ingress/controller/location.go; a location's
`deny` of `denylist-source-range` then `allow` of `allowlist-source-range` and `deny all`, nginx.tmpl), and each
location answers with its Ingress's name. The client address, which ingress-nginx takes from the load balancer's
PROXY header, comes here from a header only 127.0.0.1 may set (ngx_http_realip_module). Then every path
go-livepeer v0.9.1 serves on the orchestrator's listener is asked from a gateway, a worker and a stranger.
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import free_port
from test_addons import plan_with
from tools import require

from pixelstream.tools.offline import Plan

GATEWAY, WORKER, STRANGER = "203.0.113.7", "192.0.2.9", "198.51.100.1"
NGINX = "nginx.ingress.kubernetes.io/"
DENIED = "403"
# Paths of go-livepeer v0.9.1's orchestrator listener (server/rpc.go StartTranscodeServer, server/ai_http.go
# startAIServer, byoc/, the lpms HLS handler for the memory storage) and the Ingress that must answer each.
PATHS = {
    "/net.Orchestrator/GetOrchestrator": "ai-orchestrator-gateways-grpc",
    "/net.Orchestrator/Ping": "ai-orchestrator-gateways-grpc",
    "/text-to-image": "ai-orchestrator-gateways",
    "/image-to-video": "ai-orchestrator-gateways",
    "/llm": "ai-orchestrator-gateways",
    "/payment": "ai-orchestrator-gateways",
    "/segment": "ai-orchestrator-gateways",
    "/live-video-to-video": "ai-orchestrator-gateways",
    "/process/request/app": "ai-orchestrator-gateways",
    "/net.AIWorker/RegisterAIWorker": "ai-orchestrator-workers-grpc",
    "/aiResults": "ai-orchestrator-workers",
    "/stream/3f9a2c1d/8b7e6f5a.tempfile": "ai-orchestrator-files",
    # Registration of kinds of worker the platform does not run: closed to everyone.
    "/capability/register": "ai-orchestrator-unused",
    "/capability/unregister": "ai-orchestrator-unused",
    "/transcodeResults": "ai-orchestrator-unused",
    "/runners/heartbeat": "ai-orchestrator-unused",
    "/runner/r1/session/s1/channels": "ai-orchestrator-unused",
    # Near misses: a prefix is a path segment, not a string.
    "/streamX": "ai-orchestrator-gateways",
    "/aiResultsX": "ai-orchestrator-gateways",
}


def locations(plan: Plan) -> str:
    blocks = []
    for manifest in plan.manifests().values():
        if manifest["kind"] != "Ingress" or not manifest["metadata"]["name"].startswith("ai-orchestrator"):
            continue
        name, annotations = manifest["metadata"]["name"], manifest["metadata"]["annotations"]
        rules = [f"deny {c};" for c in _cidrs(annotations, "denylist-source-range")]
        allowed = _cidrs(annotations, "allowlist-source-range")
        rules += [f"allow {c};" for c in allowed] + (["deny all;"] if allowed else [])
        body = " ".join([*rules, f"rewrite ^ /{name} break;"])
        for rule in manifest["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                route = path["path"]
                forms = ["/"] if route == "/" else [f"{route}/", f"= {route}"]
                blocks += [f"location {form} {{ {body} }}" for form in forms]
    return "\n".join(blocks)


def _cidrs(annotations: dict[str, str], key: str) -> list[str]:
    return [c for c in annotations.get(NGINX + key, "").split(",") if c]


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    """Two nginx servers: the committed `ai` stack's routes, and the same with workerCidrs."""
    nginx = require("nginx", "nginx")
    directory = tmp_path_factory.mktemp("nginx")
    workers = {"orchestrator": {"workerCidrs": ["192.0.2.0/24"]}}
    (directory / "workers").mkdir()
    stacks = [plan_with(directory, "ai"), plan_with(directory / "workers", "ai", aiWorkers=workers)]
    ports = [free_port(), free_port()]
    servers = []
    for port, plan in zip(ports, stacks, strict=True):
        names = {m["metadata"]["name"] for m in plan.manifests().values() if m["kind"] == "Ingress"}
        root = directory / str(port)
        root.mkdir()
        for name in names:
            (root / name).write_text(name)
        servers.append(
            f"server {{ listen 127.0.0.1:{port}; root {root}; default_type text/plain;\n"
            "set_real_ip_from 127.0.0.1; real_ip_header X-Client;\n"
            f"{locations(plan)}\n}}"
        )
    temp = "".join(
        f"{kind}_temp_path {directory}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = directory / "nginx.conf"
    # As root (CI), nginx's workers would run as nobody and could not read pytest's private directories.
    user = "user root; " if os.geteuid() == 0 else ""
    conf.write_text(
        f"{user}daemon off; worker_processes 1; pid {directory}/nginx.pid; error_log {directory}/error.log;\n"
        f"events {{}}\nhttp {{ access_log off; {temp}\n" + "\n".join(servers) + "\n}\n"
    )
    subprocess.run([nginx, "-t", "-c", str(conf), "-p", str(directory)], check=True, capture_output=True)
    process = subprocess.Popen([nginx, "-c", str(conf), "-p", str(directory)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and ask(ports[0], "/stream/x", STRANGER) == "connection refused":
            time.sleep(0.05)
        yield ports[0], ports[1]
    finally:
        process.terminate()
        process.wait(timeout=10)


def ask(port: int, path: str, client: str) -> str:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"X-Client": client})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.read().decode()
    except urllib.error.HTTPError as error:
        return str(error.code)
    except urllib.error.URLError:
        return "connection refused"


def test_the_committed_stack_answers_gateways_only_on_their_paths_and_no_worker_path(edge) -> None:
    port, _ = edge
    for path, route in PATHS.items():
        gateway = route if route.startswith("ai-orchestrator-gateways") or route.endswith("files") else DENIED
        public = route if route.endswith("files") else DENIED
        assert (ask(port, path, GATEWAY), ask(port, path, WORKER), ask(port, path, STRANGER)) == (
            gateway,
            public,
            public,
        ), path


def test_worker_networks_reach_the_worker_paths_and_nothing_of_the_gateways(edge) -> None:
    _, port = edge
    for path, route in PATHS.items():
        is_worker, is_files = "workers" in route, route.endswith("files")
        gateway = DENIED if is_worker or route.endswith("unused") else route
        worker = route if is_worker or is_files else DENIED
        stranger = route if is_files else DENIED
        assert (ask(port, path, GATEWAY), ask(port, path, WORKER), ask(port, path, STRANGER)) == (
            gateway,
            worker,
            stranger,
        ), path


def test_a_world_wide_list_warns_in_every_plan(tmp_path: Path) -> None:
    world = {"workerCidrs": ["0.0.0.0/0"], "allowWorldAccess": True}
    plan = plan_with(tmp_path, "ai", aiWorkers={"orchestrator": world})
    warned = [w for w in plan.warnings if "AI orchestrator" in w]
    assert len(warned) == 1 and "anyone may register a worker or post a result for any job" in warned[0], warned
    (tmp_path / "listed").mkdir()
    assert not [w for w in plan_with(tmp_path / "listed", "ai").warnings if "AI orchestrator" in w]
