"""The player edge on loopback for tests: the real session service (its own process, as its image runs it),
a fake Kubernetes API that lists the stream pods and TURN nodes and records deletion-cost patches, and one
stand-in signalling server (with a streamer) per stream pod, each on an address of its own (127.0.0.N)."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Coroutine, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from conftest import ROOT, SHARED_APP, free_port
from fake_kube import FakeKube, node, serve, turn_pod
from signalling_stand_in import FakeStreamer, SignallingServer
from tools import require

from pixelstream.workloads.images import UNREAL_VERSIONS

SESSION = ROOT / "components" / "workloads" / "pixel_streaming" / "session"
PLAYER = SESSION / "player"
NAMESPACE = "pixel"
LINK_SECRET = "edge-test-launch-link-secret-0123456789abcdef"
TURN_SECRET = "edge-test-turn-secret"
AUDIENCE = "pixelstream"


def built_players() -> Path:
    """The player page bundled once per supported Unreal Engine version into dist/ue<version>/ (npm ci and the
    build, again whenever a source is newer than a bundle): what the image serves from PLAYER_ROOT. Test workers
    (pytest-xdist) build one at a time: two `npm ci` in one directory break each other."""
    out = PLAYER / "dist"
    bundles = [out / f"ue{version}" / "assets" / "player.js" for version in UNREAL_VERSIONS]
    sources = [*PLAYER.glob("src/*"), PLAYER / "index.html", PLAYER / "build.mjs", PLAYER / "package-lock.json"]
    lock = Path(tempfile.gettempdir()) / f"pixelstream-player-{hashlib.sha256(bytes(PLAYER)).hexdigest()[:16]}.lock"
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        newest = max(p.stat().st_mtime for p in sources)
        if not all(b.exists() for b in bundles) or newest > min(b.stat().st_mtime for b in bundles):
            npm = require("npm", "npm")
            for command in ([npm, "ci", "--no-audit", "--no-fund"], [npm, "run", "build"]):
                subprocess.run(command, cwd=PLAYER, check=True, capture_output=True, timeout=600)
    return out


def launch_link(subject: str, lifetime: int = 120, **claims: Any) -> str:
    now = int(time.time())
    body = {"sub": subject, "aud": AUDIENCE, "iat": now, "exp": now + lifetime, "jti": uuid.uuid4().hex, **claims}
    return jwt.encode(body, LINK_SECRET, algorithm="HS256")


class Loop:
    """An asyncio loop on a thread of its own, for the stand-ins."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=20)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


@dataclass
class StreamPod:
    name: str
    address: str
    server: SignallingServer
    streamer: FakeStreamer | None
    runners: list[web.AppRunner]
    listed: bool = True
    """Listed by the fake Kubernetes API as a Ready stream pod."""
    streamer_port: int = 0
    terminating: bool = False
    """Listed with a deletion timestamp, as while its preStop hook runs."""
    build: str = "main"


@dataclass
class Edge:
    url: str
    metrics_url: str
    kube: FakeKube
    loop: Loop
    signalling_port: int
    process: subprocess.Popen
    builds: dict[str, str]
    """The ConfigMap session-builds' data, as the fake API serves it."""
    pods: dict[str, StreamPod] = field(default_factory=dict)
    replicas: dict[str, int] = field(default_factory=dict)
    """Each stream Deployment's replicas, as its scale subresource holds them (the service's writes land here)."""
    state: dict[str, str] = field(default_factory=dict)
    """The Secret session-state's data, as the service last wrote it."""
    start_service: Any = None
    """Starts the service's process again, as the Deployment's next pod (the same settings and API)."""
    _next_address: int = 2

    def restart(self) -> int:
        """Stops the service as Kubernetes does (SIGTERM, then a new pod) and waits until the new one is ready; the
        old one's exit status (0: it stopped by itself, negative: it had to be killed)."""
        _stop(self.process)
        stopped = self.process.returncode
        self.process = self.start_service()
        return stopped

    def set_builds(self, builds: list[dict[str, Any]] | str, scale_down_seconds: int = 0) -> None:
        """The operator's change to the builds (a document that is not JSON, as given)."""
        self.builds["builds.json"] = builds if isinstance(builds, str) else builds_json(builds, scale_down_seconds)

    def scale_writes(self, deployment: str) -> list[int]:
        """The replicas the service wrote to `deployment`'s scale, in order."""
        path = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{deployment}/scale"
        return [c.body["spec"]["replicas"] for c in self.kube.calls if c.method == "PATCH" and c.path == path]

    def add_stream(
        self,
        name: str,
        streamer_id: str = "DefaultStreamer",
        streamers: int = 1,
        listed: bool = True,
        build: str = "main",
    ) -> StreamPod:
        """A stream pod at the next loopback address: its signalling server and its stand-in streamer(s) (none:
        connect one yourself to `streamer_port`), listed as Ready unless `listed` is false (then `list_stream`)."""
        address = f"127.0.0.{self._next_address}"
        self._next_address += 1
        server = SignallingServer()

        streamer_port = free_port()

        async def start() -> tuple[list[web.AppRunner], list[FakeStreamer]]:
            runners = []
            for app, port in ((server.player_app(), self.signalling_port), (server.streamer_app(), streamer_port)):
                runner = web.AppRunner(app, shutdown_timeout=1)
                await runner.setup()
                await web.TCPSite(runner, address, port).start()
                runners.append(runner)
            fakes = [FakeStreamer(f"ws://{address}:{streamer_port}/", streamer_id) for _ in range(streamers)]
            for fake in fakes:
                await fake.start()
            return runners, fakes

        runners, fakes = self.loop.run(start())
        pod = StreamPod(name, address, server, fakes[0] if fakes else None, runners, listed, streamer_port, build=build)
        self.pods[name] = pod
        self.kube.routes[("PATCH", f"/api/v1/namespaces/{NAMESPACE}/pods/{name}")] = lambda call: (200, {})
        return pod

    def list_stream(self, name: str) -> None:
        self.pods[name].listed = True

    def remove_stream(self, name: str) -> None:
        self.loop.run(_stop_pod(self.pods.pop(name)))

    def annotations_written(self, name: str) -> list[dict[str, str | None]]:
        """The annotation patches the service sent for stream pod `name` (merge patches)."""
        path = f"/api/v1/namespaces/{NAMESPACE}/pods/{name}"
        return [
            c.body["metadata"]["annotations"]
            for c in self.kube.calls
            if c.method == "PATCH" and c.path == path and c.content_type == "application/merge-patch+json"
        ]

    def metrics(self) -> str:
        with urllib.request.urlopen(f"{self.metrics_url}/metrics", timeout=5) as response:
            return response.read().decode()


async def _stop_pod(pod: StreamPod) -> None:
    if pod.streamer is not None:
        await pod.streamer.stop()
    for runner in pod.runners:
        await runner.cleanup()


def _stop_pods(loop: Loop, pods: dict[str, StreamPod]) -> None:
    for name in list(pods):
        loop.run(_stop_pod(pods.pop(name)))


def _pod_list(edge_pods: dict[str, StreamPod]) -> dict:
    items = []
    for pod in (p for p in edge_pods.values() if p.listed):
        metadata = {
            "name": pod.name,
            "labels": {"app.kubernetes.io/name": "stream", "pixelstream.io/build": pod.build},
            "ownerReferences": [{"kind": "ReplicaSet", "name": "stream-abc", "controller": True}],
        }
        if pod.terminating:
            metadata["deletionTimestamp"] = "2026-12-03T00:00:00Z"
        ready = "False" if pod.terminating else "True"
        items.append(
            {"metadata": metadata, "status": {"podIP": pod.address, "conditions": [{"type": "Ready", "status": ready}]}}
        )
    return {"items": items}


def build(name: str, weight: int, unreal_version: str = "5.7", buffer: int = 10, max_replicas: int = 10) -> dict:
    """A build as the plan writes it into the builds document (sessions.py builds_document). By default its buffer
    keeps it at maxReplicas: the fake API starts no pod for a scale-up and stops none for a scale-in, so a test
    that is not about scaling sees none."""
    return {
        "name": name,
        "weight": weight,
        "unrealVersion": unreal_version,
        "deployment": f"stream-{name}",
        "bufferStreams": buffer,
        "minReplicas": 0,
        "maxReplicas": max_replicas,
    }


def builds_json(builds: list[dict[str, Any]], scale_down_seconds: int = 0) -> str:
    return json.dumps({"scaleDownSeconds": scale_down_seconds, "builds": builds, "schedules": []})


ONE_BUILD = [build("main", 1)]


@contextmanager
def running_edge(
    tmp_path: Path, turn_address: str = "203.0.113.10", builds: list[dict[str, Any]] = ONE_BUILD, **env: str
) -> Iterator[Edge]:
    """The session service with signed launch links (or the auth mode `env` names), the `builds` and no stream
    yet; the TURN node's public address is `turn_address`."""
    builds_data = {"builds.json": builds_json(builds)}
    replicas: dict[str, int] = {}

    def scale_route(deployment: str) -> dict:
        path = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{deployment}/scale"

        def read(call: Any) -> tuple[int, dict]:
            return 200, {"kind": "Scale", "spec": {"replicas": replicas.setdefault(deployment, 1)}}

        def write(call: Any) -> tuple[int, dict]:
            replicas[deployment] = call.body["spec"]["replicas"]
            return read(call)

        return {("GET", path): read, ("PATCH", path): write}

    (tmp_path / "link-secret").write_text(LINK_SECRET)
    (tmp_path / "turn-secret").write_text(TURN_SECRET)
    pods: dict[str, StreamPod] = {}

    def namespace_pods(call: Any) -> tuple[int, dict]:
        if call.query.get("labelSelector") == ["app.kubernetes.io/name=turn"]:
            return 200, {"items": [turn_pod("turn-a")]}
        return 200, _pod_list(pods)

    state: dict[str, str] = {}
    state_path = f"/api/v1/namespaces/{NAMESPACE}/secrets/session-state"

    def write_state(call: Any) -> tuple[int, dict]:
        state.update(call.body["data"])
        return 200, {"data": state}

    routes = {
        ("GET", state_path): lambda call: (200, {"data": dict(state)}),
        ("PATCH", state_path): write_state,
        ("GET", f"/api/v1/namespaces/{NAMESPACE}/pods"): namespace_pods,
        ("GET", "/api/v1/nodes"): lambda call: (200, {"items": [node("turn-a", turn_address)]}),
        ("GET", f"/api/v1/namespaces/{NAMESPACE}/configmaps/session-builds"): lambda call: (200, {"data": builds_data}),
        **{key: route for name in ("main", "canary") for key, route in scale_route(f"stream-{name}").items()},
    }
    with ExitStack() as stack:
        kube = stack.enter_context(serve(routes))
        loop = Loop()
        stack.callback(loop.stop)
        stack.callback(_stop_pods, loop, pods)
        port, metrics_port, signalling_port = free_port(), free_port(), free_port()
        variables = {
            **os.environ,
            **kube.env(tmp_path),
            "PYTHONPATH": os.pathsep.join([str(SESSION.parent), str(SHARED_APP)]),
            "PORT": str(port),
            "METRICS_PORT": str(metrics_port),
            "NAMESPACE": NAMESPACE,
            "SIGNALLING_PORT": str(signalling_port),
            "STREAM_REFRESH_SECONDS": "0.2",
            "TURN_REFRESH_SECONDS": "0.2",
            "TURN_SECRET_FILE": str(tmp_path / "turn-secret"),
            "AUTH_MODE": "signedLinks",
            "LINK_AUDIENCE": AUDIENCE,
            "LINK_SECRET_FILE": str(tmp_path / "link-secret"),
            "COOKIE_SECURE": "false",
            "COLD_START_SECONDS": "120",
            "RECONNECT_SECONDS": "2",
            "BUILDS_REFRESH_SECONDS": "0.2",
            "STATE_SECRET": "session-state/state",
            "STATE_SAVE_SECONDS": "0.2",
            **env,
        }
        log = (tmp_path / "session.log").open("a")
        stack.callback(log.close)
        url = f"http://127.0.0.1:{port}"

        def start_service() -> subprocess.Popen:
            command = [sys.executable, "-m", "session"]
            process = subprocess.Popen(command, env=variables, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
            try:
                _wait_until_ready(url, process, tmp_path / "session.log")
            except BaseException:
                _stop(process)
                raise
            return process

        edge = Edge(
            url,
            f"http://127.0.0.1:{metrics_port}",
            kube,
            loop,
            signalling_port,
            start_service(),
            builds_data,
            pods,
            replicas,
            state,
            start_service,
        )
        stack.callback(lambda: _stop(edge.process))
        yield edge


def _wait_until_ready(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the session service exited:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=2).close()
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    pytest.fail(f"the session service did not become ready:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_for(condition: Any, what: str, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {seconds} s")
        time.sleep(0.05)


def chromium_driver(profile: Path, *extra_flags: str) -> Any:
    """Debian's chromium through its chromedriver, headless, with nothing fetched in the background."""
    chromium = require("chromium", "chromium")
    driver_path = require("chromedriver", "chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    flags = (
        *("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"),
        *("--disable-background-networking", "--disable-component-update", "--disable-sync"),
        *("--autoplay-policy=no-user-gesture-required", "--window-size=1280,720", f"--user-data-dir={profile}"),
        *extra_flags,
    )
    for flag in flags:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=DriverService(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    return driver


def quit_driver(driver: Any, profile: Path) -> None:
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)
