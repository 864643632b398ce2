"""The simulation fleet's orchestration service as a real HTTP server against a fake Kubernetes API: every
endpoint, the errors (unknown instance, already running, malformed requests, API errors, API down), and the
headers that keep other pages from framing it."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT, free_port
from fake_fleet import NAMESPACE, FakeFleet
from fake_kube import Call, serve, start_program

SIM_APP = ROOT / "components" / "workloads" / "simulation" / "app"
sys.path.insert(0, str(SIM_APP))
OPERATOR, PASSWORD, REALM = "operator", "Zq3v8Lr2Xm5Tn7Wb1Kc4Hd6Jf9Gs0Pa2", "pixelstream simulation fleet"
AUTHORIZATION = "Basic " + base64.b64encode(f"{OPERATOR}:{PASSWORD}".encode()).decode()
# Instance 0 and 1 published (the second with a viewer), 2 not, as the component writes STREAMS.
STREAMS = [
    {"host": "203.0.113.10", "signalPort": 49100, "mediaPort": 47998, "viewerUrl": None},
    {"host": "203.0.113.11", "signalPort": 49100, "mediaPort": 47998, "viewerUrl": "https://v.example/?s=203.0.113.11"},
    None,
]
CONFIG = {"instances": 3, "instancesPerGpu": 2, "image": "nvcr.io/nvidia/isaac-sim:6.0.1", "shmSize": "2Gi"}


@dataclass
class Service:
    url: str
    fleet: FakeFleet
    calls: list[Call]
    process: subprocess.Popen | None = None

    def request(
        self,
        method: str,
        path: str,
        body: object = None,
        content_type: str = "application/json",
        authorization: str | None = AUTHORIZATION,
    ):
        """(status, Content-Type, body: JSON decoded, else text), signed in as the operator unless told otherwise."""
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        headers = {"Content-Type": content_type} if data is not None else {}
        if authorization is not None:
            headers["Authorization"] = authorization
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                status, kind, raw = response.status, response.headers["Content-Type"], response.read()
        except urllib.error.HTTPError as error:
            status, kind, raw = error.code, error.headers["Content-Type"], error.read()
        return status, kind, json.loads(raw) if kind == "application/json" else raw.decode()

    def raw(self, request: bytes) -> tuple[int, dict[str, str], str]:
        """(status, headers, body) of a request sent as these bytes, which urllib would not send."""
        host, port = self.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as connection:
            connection.sendall(request)
            connection.shutdown(socket.SHUT_WR)  # the request ends here, whatever its Content-Length says
            answer = b""
            while chunk := connection.recv(65536):
                answer += chunk
        head, _, body = answer.decode().partition("\r\n\r\n")
        status_line, *header_lines = head.split("\r\n")
        headers = dict(line.split(": ", 1) for line in header_lines)
        return int(status_line.split()[1]), headers, body

    def changes(self) -> list[tuple[str, str, object]]:
        """What the service asked the API to change."""
        return [(c.method, c.path.rsplit("/", 2)[-2:][0], c.body) for c in self.calls if c.method != "GET"]


def signed(request: bytes) -> bytes:
    """A raw request with the operator's credential after its request line."""
    line, _, rest = request.partition(b"\r\n")
    return line + f"\r\nAuthorization: {AUTHORIZATION}".encode() + b"\r\n" + rest


def environment(kube_env: dict[str, str]) -> dict[str, str]:
    """The service's environment; the operator's password digest beside the fake service account's files."""
    digest = Path(kube_env["SERVICE_ACCOUNT_DIR"]) / "operator-sha256"
    digest.write_text(hashlib.sha256(PASSWORD.encode()).hexdigest() + "\n")
    return {
        **kube_env,
        "AUTH_USER": OPERATOR,
        "AUTH_SHA256_FILE": str(digest),
        "AUTH_REALM": REALM,
        "NAMESPACE": NAMESPACE,
        "INSTANCES": "3",
        "STREAMS": json.dumps(STREAMS),
        "FLEET_CONFIG": json.dumps(CONFIG),
    }


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    fleet = FakeFleet(instances=3)
    with serve(fleet.routes()) as kube:
        process, url = start_program(SIM_APP / "sim_orchestrator.py", environment(kube.env(tmp_path)), "/healthz")
        try:
            yield Service(url, fleet, kube.calls, process)
        finally:
            process.terminate()
            process.wait(timeout=5)


def test_lists_every_instance_with_its_state_from_pods(service: Service) -> None:
    status, kind, instances = service.request("GET", "/api/instances")
    assert (status, kind) == (200, "application/json")
    assert [(i["id"], i["name"], i["state"], i["desiredReplicas"]) for i in instances] == [
        (0, "sim-0", "running", 1),
        (1, "sim-1", "stopped", 0),
        (2, "sim-2", "stopped", 0),
    ]
    running = instances[0]
    assert running["pod"] == "sim-0-0" and running["podIp"] == "10.0.192.10" and running["node"] == "gpu-node-0"
    assert [i["stream"] for i in instances] == STREAMS
    assert instances[1]["pod"] is None and instances[1]["podIp"] is None


def test_status_of_one_instance_and_of_none(service: Service) -> None:
    status, _, instance = service.request("GET", "/api/instances/1")
    assert status == 200 and instance["state"] == "stopped"
    for unknown in ("3", "abc", "-1", "1.0", "0x1", "99999999"):
        status, _, body = service.request("GET", f"/api/instances/{unknown}")
        assert status == 404 and "instances are 0-2" in body["error"], unknown


def test_start_scales_the_instance_to_one(service: Service) -> None:
    status, _, instance = service.request("POST", "/api/instances/start", {"instance_id": 1})
    assert status == 200 and instance["state"] == "running" and instance["pod"] == "sim-1-0"
    assert service.changes() == [("PATCH", "sim-1", {"spec": {"replicas": 1}})]
    scale = next(c for c in service.calls if c.method == "PATCH")
    assert scale.path == f"/apis/apps/v1/namespaces/{NAMESPACE}/statefulsets/sim-1/scale"


def test_starting_a_running_or_starting_instance_is_a_conflict(service: Service) -> None:
    status, _, body = service.request("POST", "/api/instances/start", {"instance_id": 0})
    assert status == 409 and body == {"error": "instance 0 is already running (running)"}
    service.fleet.set(2, running=True, ready=False)
    status, _, body = service.request("POST", "/api/instances/start", {"instance_id": 2})
    assert status == 409 and "(starting)" in body["error"]
    assert service.changes() == [], "nothing was scaled"


def test_stop_scales_to_zero_once(service: Service) -> None:
    status, _, instance = service.request("POST", "/api/instances/stop", {"instance_id": 0})
    assert status == 200 and instance["state"] == "stopped" and instance["pod"] is None
    status, _, body = service.request("POST", "/api/instances/stop", {"instance_id": 0})
    assert status == 409 and body["error"] == "instance 0 is already stopped"
    assert service.changes() == [("PATCH", "sim-0", {"spec": {"replicas": 0}})]


def test_restart_deletes_the_pod_and_the_statefulset_makes_it_again(service: Service) -> None:
    before = service.fleet.pods["sim-0-0"]["metadata"]["uid"]
    status, _, instance = service.request("POST", "/api/instances/restart", {"instance_id": 0})
    assert status == 200 and instance["state"] == "running"
    assert service.fleet.pods["sim-0-0"]["metadata"]["uid"] != before
    assert [(c.method, c.path) for c in service.calls if c.method != "GET"] == [
        ("DELETE", f"/api/v1/namespaces/{NAMESPACE}/pods/sim-0-0")
    ]
    status, _, body = service.request("POST", "/api/instances/restart", {"instance_id": 1})
    assert status == 409 and "no pod to restart" in body["error"]


def test_remove_stops_and_may_be_repeated(service: Service) -> None:
    for _ in range(2):
        status, _, instance = service.request("DELETE", "/api/instances/0")
        assert status == 200 and instance["state"] == "stopped"
    assert service.changes() == [("PATCH", "sim-0", {"spec": {"replicas": 0}})], "scaled once"
    assert service.request("DELETE", "/api/instances/5")[0] == 404


def test_logs_are_the_containers_last_lines(service: Service) -> None:
    status, kind, text = service.request("GET", "/api/instances/0/logs?tail=5")
    assert status == 200 and kind.startswith("text/plain")
    assert text.splitlines() == [f"sim-0 [{n}s] [Info] line {n}" for n in range(295, 300)]
    log_call = [c for c in service.calls if c.path.endswith("/log")][-1]
    assert log_call.query == {"container": ["isaac-sim"], "tailLines": ["5"]}
    assert len(service.request("GET", "/api/instances/0/logs")[2].splitlines()) == 100, "100 lines by default"
    for bad in ("0", "10001", "x", "-3"):
        status, _, body = service.request("GET", f"/api/instances/0/logs?tail={bad}")
        assert status == 400 and "tail" in body["error"], bad
    status, _, body = service.request("GET", "/api/instances/1/logs")
    assert status == 409 and "no pod" in body["error"]
    assert service.request("GET", "/api/instances/9/logs")[0] == 404


def test_cleanup_stops_only_what_runs(service: Service) -> None:
    service.request("POST", "/api/instances/start", {"instance_id": 2})
    status, _, instances = service.request("POST", "/api/cleanup", {})
    assert status == 200 and {i["state"] for i in instances} == {"stopped"}
    stopped = [name for _, name, body in service.changes() if body == {"spec": {"replicas": 0}}]
    assert sorted(stopped) == ["sim-0", "sim-2"]


def test_config_is_the_fleet_as_declared(service: Service) -> None:
    status, _, config = service.request("GET", "/api/config")
    assert status == 200 and config == CONFIG


def test_states_follow_the_pods(service: Service) -> None:
    service.fleet.set(1, running=True, ready=False)
    service.fleet.set(2, running=True, ready=False, waiting="ImagePullBackOff")
    states = {i["id"]: (i["state"], i["reason"]) for i in service.request("GET", "/api/instances")[2]}
    assert states[1] == ("starting", "the app has not said AppReady yet")
    assert states[2] == ("failed", "ImagePullBackOff")


def test_unit_instance_state() -> None:
    from fake_fleet import pod
    from sim_orchestrator import instance_state

    assert instance_state(None, None)[0] == "missing"
    assert instance_state(0, None) == ("stopped", "")
    assert instance_state(1, None) == ("pending", "no pod yet")
    assert instance_state(0, pod(0, 1))[0] == "stopping", "scaled to zero, the pod still terminating"
    terminating = pod(0, 1)
    terminating["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert instance_state(1, terminating)[0] == "stopping"
    assert instance_state(1, pod(0, 1, phase="Pending", ready=False))[0] == "pending"
    assert instance_state(1, pod(0, 1, waiting="CrashLoopBackOff")) == ("failed", "CrashLoopBackOff")
    assert instance_state(1, pod(0, 1, phase="Failed", ready=False))[0] == "failed"
    assert instance_state(1, pod(0, 1)) == ("running", "")


def test_malformed_requests_change_nothing(service: Service) -> None:
    cases = [
        (("POST", "/api/instances/start", None), 415),
        (("POST", "/api/instances/start", b"{not json"), 400),
        (("POST", "/api/instances/start", {"id": 1}), 400),
        (("POST", "/api/instances/start", [1]), 400),
        (("POST", "/api/instances/start", {"instance_id": True}), 400),
        (("POST", "/api/instances/start", {"instance_id": 1.0}), 400),
        (("POST", "/api/instances/start", {"instance_id": None}), 400),
        (("POST", "/api/instances/start", {"instance_id": [1]}), 400),
        (("POST", "/api/instances/start", {"instance_id": {"id": 1}}), 400),
        (("POST", "/api/instances/start", b"[" * 4000), 400),
        (("POST", "/api/instances/start", b'{"instance_id": "\xff"}'), 400),
        (("POST", "/api/instances/start", {"instance_id": 3}), 404),
        (("POST", "/api/instances/start", {"instance_id": "sim-1"}), 404),
        (("POST", "/api/instances/start", {"instance_id": 10**30}), 404),
        (("POST", "/api/instances/stop", {"instance_id": "x", "padding": "x" * 5000}), 413),
        (("PUT", "/api/instances/start", {"instance_id": 1}), 405),
        (("PATCH", "/api/instances/1", {"instance_id": 1}), 405),
        (("OPTIONS", "/api/instances/start", None), 405),
        (("POST", "/api/instances/start", b"instance_id=1", "application/x-www-form-urlencoded"), 415),
        (("POST", "/api/cleanup", b"", "text/plain"), 415),
        (("POST", "/api/instances/0/logs", {}), 405),
        (("DELETE", "/api/instances", None), 405),
        (("GET", "/nothing-here", None), 404),
    ]
    for (method, path, body, *kind), expected in cases:
        status, content, answer = service.request(method, path, body, *kind)
        assert status == expected and content == "application/json" and answer["error"], (method, path, body)
    assert service.changes() == []


# A request http.server refuses itself (it takes at most 100 header lines).
TOO_MANY_HEADERS = b"GET / HTTP/1.0\r\n" + b"X-Filler: x\r\n" * 101 + b"\r\n"


def test_a_malformed_length_or_header_is_a_client_error_never_a_traceback(service: Service) -> None:
    post = f"POST /api/instances/start HTTP/1.0\r\nAuthorization: {AUTHORIZATION}\r\nContent-Type: application/json\r\n"
    for length, expected in (("-5", 400), ("abc", 400), ("1e3", 400), ("99999999", 413), ("10" * 20, 400)):
        status, _, body = service.raw(f"{post}Content-Length: {length}\r\n\r\n".encode())
        assert status == expected and json.loads(body)["error"], length
    status, _, body = service.raw(f'{post}Content-Length: 20\r\n\r\n{{"instance_id": 1}}'.encode())
    assert status == 400 and "ended before its Content-Length" in body, "JSON, but not the whole body announced"
    assert service.raw(TOO_MANY_HEADERS)[0] == 431, "http.server's own answer"
    assert service.raw(signed(b"HEAD / HTTP/1.0\r\n\r\n"))[:3:2] == (200, ""), "the page's headers, no body"
    assert service.changes() == []
    assert service.process is not None
    service.process.terminate()
    _, errors = service.process.communicate(timeout=5)
    assert b"Traceback" not in errors, errors.decode()[-2000:]


def test_no_page_may_frame_any_answer(service: Service) -> None:
    requests = [
        b"GET / HTTP/1.0\r\n\r\n",
        b"GET /api/instances HTTP/1.0\r\n\r\n",
        b"GET /api/instances/7 HTTP/1.0\r\n\r\n",
        b"POST /api/cleanup HTTP/1.0\r\nContent-Type: text/plain\r\n\r\n",
        TOO_MANY_HEADERS,
    ]
    # Signed in or not (a refusal is a page too), and http.server's own error page.
    for request in [*requests, *map(signed, requests)]:
        _, headers, _ = service.raw(request)
        policy = [d.strip() for d in headers["Content-Security-Policy"].split(";")]
        assert "frame-ancestors 'none'" in policy, request
        assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff", request


def test_an_api_error_is_a_bad_gateway(tmp_path: Path) -> None:
    fleet = FakeFleet(instances=3)
    routes = {**fleet.routes(), ("GET", f"/apis/apps/v1/namespaces/{NAMESPACE}/statefulsets"): lambda c: (403, {})}
    with serve(routes) as kube:
        process, url = start_program(SIM_APP / "sim_orchestrator.py", environment(kube.env(tmp_path)), "/healthz")
        try:
            status, _, body = Service(url, fleet, kube.calls).request("GET", "/api/instances")
        finally:
            process.terminate()
            process.wait(timeout=5)
    assert status == 502 and "answered 403" in body["error"]


def test_without_the_api_it_says_so_and_still_serves_the_page(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("token")
    env = {
        **environment({"SERVICE_ACCOUNT_DIR": str(tmp_path)}),
        "KUBERNETES_API": f"http://127.0.0.1:{free_port()}",  # nothing listens there
        "PYTHONPATH": str(ROOT / "components" / "workloads" / "app"),
    }
    process, url = start_program(SIM_APP / "sim_orchestrator.py", env, "/healthz")
    service = Service(url, FakeFleet(instances=3), [])
    try:
        for method, path, body in (
            ("GET", "/api/instances", None),
            ("GET", "/api/instances/0", None),
            ("POST", "/api/instances/start", {"instance_id": 0}),
            ("GET", "/api/instances/0/logs", None),
            ("POST", "/api/cleanup", {}),
        ):
            status, _, answer = service.request(method, path, body)
            assert status == 503 and "cannot be reached" in answer["error"], path
        status, _, health = service.request("GET", "/health")
        assert status == 503 and health["kubernetes"] == "unavailable"
        assert service.request("GET", "/healthz")[0] == 200
        status, kind, page = service.request("GET", "/")
        assert status == 200 and kind.startswith("text/html") and "<title>Simulation fleet</title>" in page
    finally:
        process.terminate()
        process.wait(timeout=5)


def test_health_reports_the_api(service: Service) -> None:
    assert service.request("GET", "/health")[:3:2] == (200, {"kubernetes": "ok"})


def test_every_path_but_the_probe_asks_for_the_operator(service: Service) -> None:
    """Whoever calls (a pod of the cluster that reaches the Service directly included) signs in: no credential, a
    wrong password or user, another scheme or a malformed header are all 401 with the realm's challenge, and
    nothing changes; the kubelet's probe path alone answers without one."""
    other = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
    wrong = "Basic " + base64.b64encode(f"{OPERATOR}:{PASSWORD[:-1]}x".encode()).decode()
    no_colon = "Basic " + base64.b64encode(f"{OPERATOR}{PASSWORD}".encode()).decode()
    bearer = AUTHORIZATION.replace("Basic", "Bearer")
    refused = [None, other, wrong, no_colon, bearer, "Basic !!!", "Basic", ""]
    paths = [
        ("GET", "/", None),
        ("GET", "/health", None),
        ("GET", "/api/instances", None),
        ("GET", "/api/instances/0/logs", None),
        ("GET", "/api/config", None),
        ("POST", "/api/instances/start", {"instance_id": 1}),
        ("POST", "/api/cleanup", {}),
        ("DELETE", "/api/instances/0", None),
    ]
    for method, path, body in paths:
        for authorization in refused:
            status, _, answer = service.request(method, path, body, authorization=authorization)
            assert status == 401 and answer == {"error": "sign in as the fleet's operator"}, (path, authorization)
    _, headers, _ = service.raw(b"GET /api/instances HTTP/1.0\r\n\r\n")
    assert headers["WWW-Authenticate"] == f'Basic realm="{REALM}"'
    assert service.changes() == []
    assert service.request("GET", "/healthz", authorization=None)[0] == 200
    # The control: the operator's credential opens the same paths.
    assert service.request("GET", "/api/instances")[0] == 200
    assert service.request("POST", "/api/instances/start", {"instance_id": 1})[0] == 200


def test_without_its_credential_it_does_not_start(tmp_path: Path) -> None:
    """A service with no operator configured would answer everyone: it refuses to start, with one line."""
    env = {
        **environment({"SERVICE_ACCOUNT_DIR": str(tmp_path)}),
        "PORT": str(free_port()),
        "PYTHONPATH": str(ROOT / "components" / "workloads" / "app"),
    }
    for missing in ("AUTH_USER", "AUTH_SHA256_FILE", "AUTH_REALM"):
        broken = {k: v for k, v in env.items() if k != missing}
        result = subprocess.run(
            [sys.executable, str(SIM_APP / "sim_orchestrator.py")], env=broken, capture_output=True, timeout=10
        )
        assert result.returncode != 0, missing
        assert result.stderr.decode().strip().splitlines() == [
            "AUTH_USER, AUTH_REALM and AUTH_SHA256_FILE (the password's SHA-256, hex) are required"
        ], missing


def test_a_rotated_password_replaces_the_old_one_without_a_restart(service: Service, tmp_path: Path) -> None:
    """The kubelet rewrites the mounted Secret when the stack rotates the password: the service reads it at every
    request, so the old password stops working at once; an unreadable digest admits nobody."""
    digest = next(tmp_path.rglob("operator-sha256"))
    new_password = "Nw4Zt7Yq1Bp8Lm3Vr6Hs9Dc2Kf5Gx0Ja"
    fresh = "Basic " + base64.b64encode(f"{OPERATOR}:{new_password}".encode()).decode()
    digest.write_text(hashlib.sha256(new_password.encode()).hexdigest())
    assert service.request("GET", "/api/instances")[0] == 401, "the old password"
    assert service.request("GET", "/api/instances", authorization=fresh)[0] == 200
    digest.write_text("not a digest")
    assert service.request("GET", "/api/instances", authorization=fresh)[0] == 401
    digest.unlink()
    assert service.request("GET", "/api/instances", authorization=fresh)[0] == 401
