"""The ICE config service as a real HTTP server against a fake Kubernetes API."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import APP
from fake_kube import Call, node, secret_file, serve, start_program

SECRET = "test-static-auth-secret"
NODES = {
    "kind": "NodeList",
    "items": [
        node("turn-a", "203.0.113.10"),
        node("turn-b", "203.0.113.11"),
        node("turn-not-ready", "203.0.113.12", ready=False),
        node("turn-cordoned", "203.0.113.13", unschedulable=True),
        node("turn-no-public-ip", None),
    ],
}


def get(url: str) -> tuple[int, dict]:
    return get_with_headers(url)[:2]


def get_with_headers(url: str) -> tuple[int, dict, dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.load(response), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error), dict(error.headers)


@pytest.fixture
def service(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, list[Call], dict]]:
    """The service on loopback; a test may pass extra environment with `@pytest.mark.env(NAME=value)`."""
    state = {"nodes": NODES}
    marker = request.node.get_closest_marker("env")
    with serve({("GET", "/api/v1/nodes"): lambda call: (200, state["nodes"])}) as kube:
        env = {
            **kube.env(tmp_path),
            "TURN_SECRET_FILE": secret_file(tmp_path, SECRET),
            "TTL_SECONDS": "600",
            "REFRESH_SECONDS": "0.2",
            **(marker.kwargs if marker else {}),
        }
        process, url = start_program(APP / "ice_config.py", env)
        try:
            deadline = time.monotonic() + 10
            while get(f"{url}/healthz")[0] != 200 and time.monotonic() < deadline:
                time.sleep(0.1)
            yield url, kube.calls, state
        finally:
            process.terminate()
            process.wait(timeout=5)


def test_serves_the_reference_shape_with_only_ready_turn_nodes(service) -> None:
    url, _, _ = service
    status, body = get(url + "/")
    assert status == 200
    assert set(body) == {"iceTransportPolicy", "iceServers"}
    assert body["iceTransportPolicy"] == "all"
    [server] = body["iceServers"]
    assert server["urls"] == [
        f"{scheme}:{ip}:3478{suffix}"
        for ip in ("203.0.113.10", "203.0.113.11")
        for scheme, suffix in (("stun", ""), ("turn", "?transport=udp"), ("turn", "?transport=tcp"))
    ]


def test_credentials_are_time_limited_turn_rest_credentials_of_the_caller(service) -> None:
    url, _, _ = service
    before = time.time()
    first = get(url + "/")[1]["iceServers"][0]
    expiry, identity = first["username"].split(":", 1)
    assert before + 600 - 2 <= int(expiry) <= time.time() + 600 + 1
    expected = base64.b64encode(hmac.new(SECRET.encode(), first["username"].encode(), hashlib.sha1).digest()).decode()
    assert first["credential"] == expected
    assert SECRET not in json.dumps(first)
    # One identity per caller, so coturn's user-quota bounds what one signalling server (one stream) holds;
    # the identity does not show the caller's address.
    second = get(url + "/")[1]["iceServers"][0]
    assert second["username"].split(":", 1)[1] == identity
    assert "127.0.0.1" not in identity and len(identity) == 12


def test_a_named_player_connection_gets_its_own_identity(service) -> None:
    url, _, _ = service
    caller = get(url + "/")[1]["iceServers"][0]["username"].split(":", 1)[1]
    player = get(url + "/?player=conn-42")[1]["iceServers"][0]["username"].split(":", 1)[1]
    assert player == f"{caller}.conn-42"
    for bad in ("a:b", "x" * 65, "../etc", ""):
        status, body = get(url + "/?" + urllib.parse.urlencode({"player": bad}))
        assert status == 400 and "player" in body["error"], bad


@pytest.mark.env(CREDENTIALS_PER_MINUTE="3")
def test_a_caller_gets_a_bounded_number_of_credentials(service) -> None:
    url, _, _ = service
    statuses = [get(url + f"/?player=p{i}")[0] for i in range(3)]
    assert statuses == [200, 200, 200]
    status, body, headers = get_with_headers(url + "/?player=p4")
    assert status == 429 and "too many" in body["error"]
    assert 1 <= int(headers["Retry-After"]) <= 20
    assert get(url + "/healthz")[0] == 200, "health checks are not rate limited"


def test_unit_rate_limit_refills_per_caller() -> None:
    import ice_config

    limit = ice_config.RateLimit(per_minute=2)
    assert [limit.take("a", 0.0), limit.take("a", 0.0)] == [0.0, 0.0]
    assert limit.take("a", 0.0) == pytest.approx(30.0)
    assert limit.take("b", 0.0) == 0.0, "another caller has its own bucket"
    assert limit.take("a", 30.0) == 0.0, "one credential back after half a minute"
    assert limit.take("a", 31.0) > 0
    limit.forget_idle(200.0)
    assert limit.take("a", 200.0) == 0.0 and limit.take("a", 200.0) == 0.0


def test_reads_turn_nodes_by_label_with_its_token(service) -> None:
    _, calls, _ = service
    assert calls, "the service asked the API"
    assert all(c.query == {"labelSelector": ["app.pixel/turn=true"]} for c in calls)


def test_health_follows_the_turn_nodes(service) -> None:
    url, _, state = service
    assert get(url + "/healthz") == (200, {"turnNodes": 2})
    state["nodes"] = {"kind": "NodeList", "items": [node("turn-not-ready", "203.0.113.12", ready=False)]}
    deadline = time.monotonic() + 5
    while get(url + "/healthz")[0] != 503 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert get(url + "/healthz") == (503, {"turnNodes": 0})
    assert get(url + "/") == (200, {"iceTransportPolicy": "all", "iceServers": []})
    assert get(url + "/livez")[0] == 200
    assert get(url + "/nothing-here")[0] == 404


def test_unit_credentials_match_coturns_formula() -> None:
    import ice_config

    username, password = ice_config.turn_credentials("s3cret", 60, 1_000_000.0, "abc")
    assert username == "1000060:abc"
    assert password == base64.b64encode(hmac.new(b"s3cret", b"1000060:abc", hashlib.sha1).digest()).decode()
