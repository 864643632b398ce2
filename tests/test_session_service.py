"""The session service as its image runs it (its own process), with players speaking HTTP and websockets to it,
stream pods standing in with Wilbur's behaviour (signalling_stand_in.py) and a fake Kubernetes API.

What a player may do (join with a valid launch link, get exactly one free stream, negotiate with it) and what
no player can do (join without a link or with a used one, choose a stream with ?id= or ?address=, reach
another player's stream with a forged message, learn another stream's name or a pod address from the service).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from session_edge import TURN_SECRET, Edge, build, builds_json, launch_link, running_edge, wait_for
from signalling_stand_in import OWN_PEER_OPTIONS

from pixelstream.workloads.pixel_streaming.session.turn import turn_name

pytestmark = pytest.mark.slow

# What every status of a session tells its page: its build (the one build, `main`) and its Unreal Engine version.
MAIN = {"build": "main", "unrealVersion": "5.7"}


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[Edge]:
    with running_edge(tmp_path) as running:
        yield running


class Player:
    """One browser's worth of HTTP: its own cookie jar."""

    def __init__(self, edge: Edge) -> None:
        self.edge = edge
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def join(self, link: str | None = None, query: str = "") -> tuple[int, dict[str, Any]]:
        body = {"launch": link} if link else {}
        async with self.http.post(f"{self.edge.url}/api/session{query}", json=body) as response:
            return response.status, await response.json()

    async def status(self) -> tuple[int, dict[str, Any]]:
        async with self.http.get(f"{self.edge.url}/api/status") as response:
            return response.status, await response.json()

    async def signalling(self, query: str = "", **kw: Any) -> aiohttp.ClientWebSocketResponse:
        return await self.http.ws_connect(f"{self.edge.url.replace('http', 'ws')}/ws{query}", **kw)

    async def close(self) -> None:
        await self.http.close()


async def receive(socket: aiohttp.ClientWebSocketResponse, kind: str, seconds: float = 5) -> dict[str, Any]:
    async def next_of_kind() -> dict[str, Any]:
        async for frame in socket:
            message = json.loads(frame.data)
            if message["type"] == kind:
                return message
        raise AssertionError(f"the connection closed before a {kind} message ({socket.close_code})")

    return await asyncio.wait_for(next_of_kind(), seconds)


async def until(ask: Any, expected: dict[str, Any], what: str, seconds: float = 10) -> None:
    """Polls `ask()` (a player's status) until it answers (200, expected)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while await ask() != (200, expected):
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"{what}: no {expected} within {seconds} s")
        await asyncio.sleep(0.1)


async def close_code(socket: aiohttp.ClientWebSocketResponse, seconds: float = 10) -> int | None:
    """How the service closes `socket`, reading what comes until then."""

    async def drain() -> None:
        async for _ in socket:
            pass

    await asyncio.wait_for(drain(), seconds)
    return socket.close_code


async def flood(socket: aiohttp.ClientWebSocketResponse, count: int) -> int | None:
    """Sends `count` pings as fast as it can while reading, so the service's close frame is read when it comes
    (a client that only writes may see its connection reset instead)."""
    closed = asyncio.create_task(close_code(socket))
    with contextlib.suppress(ConnectionError):
        for _ in range(count):
            if closed.done():
                break
            await socket.send_str(json.dumps({"type": "ping", "time": 0}))
            await asyncio.sleep(0)
    return await closed


async def refused_status(player: Player, query: str = "", **kw: Any) -> int:
    try:
        socket = await player.signalling(query, **kw)
    except aiohttp.WSServerHandshakeError as refusal:
        return refusal.status
    await socket.close()
    return 101


def test_no_link_no_session_no_stream(edge: Edge) -> None:
    pod = edge.add_stream("stream-a")

    async def scenario() -> None:
        player = Player(edge)
        try:
            assert (await player.join())[0] == 401
            assert (await player.join("not-a-token"))[0] == 401
            assert (await player.status())[0] == 404
            assert await refused_status(player) == 401
        finally:
            await player.close()

    asyncio.run(scenario())
    assert pod.server.from_players() == [] and pod.streamer.players_connected() == []
    assert 'pixelstream_session_refused_total{reason="auth"} 2' in edge.metrics()


def test_a_player_with_a_link_gets_exactly_one_free_stream_and_the_sessions_turn_servers(edge: Edge) -> None:
    pods = [edge.add_stream("stream-a"), edge.add_stream("stream-b")]
    wait_for(lambda: 'pixelstream_session_streams_ready{build="main"} 2' in edge.metrics(), "both streams listed")

    async def scenario() -> dict[str, Any]:
        player = Player(edge)
        try:
            status, body = await player.join(launch_link("alice"))
            assert (status, body) == (200, {"state": "assigned", **MAIN})
            socket = await player.signalling()
            config = await receive(socket, "config")
            await socket.send_str(json.dumps({"type": "listStreamers"}))
            assert (await receive(socket, "streamerList"))["ids"] == ["stream"]
            await socket.send_str(json.dumps({"type": "subscribe", "streamerId": "stream"}))
            wait_for(lambda: sum(len(p.streamer.players_connected()) for p in pods) == 1, "the stream's player")
            await socket.close()
            return config
        finally:
            await player.close()

    config = asyncio.run(scenario())
    options = config["peerConnectionOptions"]
    assert options != OWN_PEER_OPTIONS and options["iceTransportPolicy"] == "relay"
    (server,) = options["iceServers"]
    assert server["urls"] == ["turn:203.0.113.10:3478?transport=udp", "turn:203.0.113.10:3478?transport=tcp"]
    expiry, identity = server["username"].split(":")
    assert 290 <= int(expiry) - time.time() <= 300, "credentials for minutes (TURN_TTL_SECONDS, 300 by default)"
    assert len(identity) == 20 and identity != turn_name(TURN_SECRET, "")
    # One stream got the player, the other nothing; the busy one was given a deletion cost.
    served = [p for p in pods if p.streamer.players_connected()]
    assert len(served) == 1 and all(not p.server.from_players() for p in pods if p is not served[0])
    busy = {
        "controller.kubernetes.io/pod-deletion-cost": "1",
        "cluster-autoscaler.kubernetes.io/safe-to-evict": "false",
    }
    wait_for(lambda: edge.annotations_written(served[0].name)[:1] == [busy], "the busy stream's annotations")
    # The player left: after the reconnect window the stream is free again, and marked so.
    free = {"controller.kubernetes.io/pod-deletion-cost": "0", "cluster-autoscaler.kubernetes.io/safe-to-evict": None}
    wait_for(lambda: edge.annotations_written(served[0].name)[1:] == [free], "the freed stream's annotations")
    # The configuration the service sent names no pod address (and its streamer list only "stream", above).
    assert not any(p.address in json.dumps(config) for p in pods)


def test_a_second_player_never_reaches_the_first_players_stream(edge: Edge) -> None:
    first_pod = edge.add_stream("stream-a")
    wait_for(lambda: 'pixelstream_session_streams_ready{build="main"} 1' in edge.metrics(), "the stream listed")

    async def scenario() -> None:
        alice, mallory = Player(edge), Player(edge)
        try:
            await alice.join(launch_link("alice"))
            alice_socket = await alice.signalling()
            await alice_socket.send_str(json.dumps({"type": "subscribe", "streamerId": "stream"}))
            wait_for(lambda: first_pod.streamer.players_connected() == ["Player0"], "alice on her stream")

            # Mallory asks for alice's stream by id and by address: she is queued like anyone.
            choose = f"?id=DefaultStreamer&address={first_pod.address}&StreamerId=DefaultStreamer"
            status, body = await mallory.join(launch_link("mallory"), query=choose)
            assert status == 200 and body["state"] == "queued" and body["position"] == 1
            assert await refused_status(mallory, choose) == 409
            # A session id someone makes up is nothing.
            stranger = Player(edge)
            assert await refused_status(stranger, headers={"Cookie": "pxsession=guessed"}) == 401
            await stranger.close()

            # A stream of her own: whatever she sends, only that stream hears it.
            second_pod = edge.add_stream("stream-b")
            await until(lambda: mallory.status(), {"state": "assigned", **MAIN}, "mallory's own stream")
            socket = await mallory.signalling(choose)
            await receive(socket, "config")
            forged = [
                {"type": "subscribe", "streamerId": "DefaultStreamer"},
                {"type": "subscribe", "streamerId": "*"},
                {"type": "disconnectPlayer", "playerId": "Player0"},
                {"type": "offer", "sdp": "v=0", "playerId": "Player0"},
                {"type": "listStreamers"},
            ]
            for message in forged:
                await socket.send_str(json.dumps(message))
            await receive(socket, "streamerList")
            # Her offer, not only the service's own listStreamers (which reaches the stream first).
            wait_for(
                lambda: any(m["type"] == "offer" for _, m in second_pod.server.from_players()),
                "mallory's offer at her own stream",
            )
            await socket.close()
            await alice_socket.close()
        finally:
            await alice.close()
            await mallory.close()

    asyncio.run(scenario())
    # Alice's stream heard only alice's connection (the service's own listStreamers, then her subscribe);
    # mallory's stream only her offer: the subscribes, the kick and her listStreamers went nowhere.
    assert {who for who, _ in first_pod.server.from_players()} == {"Player0"}
    assert [m["type"] for _, m in first_pod.server.from_players()] == ["listStreamers", "subscribe"]
    second = edge.pods["stream-b"].server.from_players()
    assert [m["type"] for _, m in second] == ["listStreamers", "offer"]
    assert 'pixelstream_session_dropped_total{type="disconnectPlayer"} 1' in edge.metrics()
    assert 'pixelstream_session_dropped_total{type="subscribe"} 2' in edge.metrics()


def test_a_launch_link_is_taken_once(edge: Edge) -> None:
    link = launch_link("alice")

    async def scenario() -> None:
        first, replay = Player(edge), Player(edge)
        try:
            assert (await first.join(link))[0] == 200
            status, body = await replay.join(link)
            assert status == 401 and body == {"error": "the launch link was used already"}
        finally:
            await first.close()
            await replay.close()

    asyncio.run(scenario())


def test_waiting_players_learn_their_place_and_the_expected_wait(tmp_path: Path) -> None:
    with running_edge(tmp_path, builds=[build("main", 1, buffer=0)]) as edge:
        waiting_players_learn_their_place(edge)


def waiting_players_learn_their_place(edge: Edge) -> None:
    async def scenario() -> list[dict[str, Any]]:
        players = [Player(edge) for _ in range(3)]
        try:
            return [(await p.join(launch_link(f"p{i}")))[1] for i, p in enumerate(players)]
        finally:
            for p in players:
                await p.close()

    answers = asyncio.run(scenario())
    assert answers == [
        {"state": "queued", **MAIN, "position": i, "estimatedWaitSeconds": 120} for i in (1, 2, 3)
    ]  # no history yet: one stream start (COLD_START_SECONDS)
    metrics = edge.metrics()
    assert 'pixelstream_session_queue{build="main"} 3\n' in metrics
    # The service scales the build itself: a stream for each of the three (no buffer in this build).
    wait_for(lambda: edge.scale_writes("stream-main")[-1:] == [3], "stream-main scaled to the 3 waiting players")
    assert 'pixelstream_session_streams_wanted{build="main"} 3\n' in edge.metrics()


def test_a_signalling_server_with_two_streamers_is_skipped_and_the_player_keeps_its_place(edge: Edge) -> None:
    crowded = edge.add_stream("stream-a", streamers=2)
    wait_for(lambda: 'pixelstream_session_streams_ready{build="main"} 1' in edge.metrics(), "the stream listed")

    async def scenario() -> tuple[int | None, dict[str, Any]]:
        player = Player(edge)
        try:
            await player.join(launch_link("alice"))
            socket = await player.signalling()
            return await close_code(socket), (await player.status())[1]
        finally:
            await player.close()

    code, status = asyncio.run(scenario())
    assert code == 4001 and status == {"state": "queued", **MAIN, "position": 1, "estimatedWaitSeconds": 120}
    assert crowded.streamer.players_connected() == []


def test_cross_site_signalling_is_refused(edge: Edge) -> None:
    edge.add_stream("stream-a")
    wait_for(lambda: 'pixelstream_session_streams_ready{build="main"} 1' in edge.metrics(), "the stream listed")

    async def scenario() -> int:
        player = Player(edge)
        try:
            await player.join(launch_link("alice"))
            return await refused_status(player, headers={"Origin": "https://attacker.example"})
        finally:
            await player.close()

    assert asyncio.run(scenario()) == 403


def test_a_join_must_be_json_so_a_cross_site_form_cannot_make_one(edge: Edge) -> None:
    async def scenario() -> int:
        async with aiohttp.ClientSession() as http:
            form = {"launch": launch_link("alice")}
            async with http.post(f"{edge.url}/api/session", data=form) as response:
                return response.status

    assert asyncio.run(scenario()) == 415


def test_a_full_waiting_room_refuses_a_player_without_spending_the_launch_link(tmp_path: Path) -> None:
    """MAX_QUEUE players wait already: the next link is refused with 503 and may be used once there is room."""
    with running_edge(tmp_path, MAX_QUEUE="1") as small:

        async def scenario() -> list[int]:
            first, second = Player(small), Player(small)
            link = launch_link("bob")
            try:
                statuses = [(await first.join(launch_link("alice")))[0], (await second.join(link))[0]]
                async with first.http.delete(f"{small.url}/api/session") as response:
                    statuses.append(response.status)
                statuses.append((await second.join(link))[0])
                statuses.append((await Player(small).join(link))[0])
                return statuses
            finally:
                await first.close()
                await second.close()

        assert asyncio.run(scenario()) == [200, 503, 200, 200, 401]
        assert 'pixelstream_session_refused_total{reason="queue-full"} 1' in small.metrics()


def test_a_request_that_is_no_websocket_changes_nothing_about_the_session(edge: Edge) -> None:
    edge.add_stream("stream-a")
    wait_for(lambda: 'pixelstream_session_streams_ready{build="main"} 1' in edge.metrics(), "the stream listed")

    async def scenario() -> tuple[int, dict[str, Any]]:
        player = Player(edge)
        try:
            await player.join(launch_link("alice"))
            async with player.http.get(f"{edge.url}/ws") as response:
                code = response.status
            return code, (await player.status())[1]
        finally:
            await player.close()

    assert asyncio.run(scenario()) == (400, {"state": "assigned", **MAIN})


def test_a_player_that_drops_its_connection_keeps_its_stream_and_the_stream_is_not_blamed(edge: Edge) -> None:
    pod = edge.add_stream("stream-a")
    wait_for(lambda: 'pixelstream_session_streams_ready{build="main"} 1' in edge.metrics(), "the stream listed")

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        player = Player(edge)
        try:
            await player.join(launch_link("alice"))
            for _ in range(3):  # gone before, during and after the service asks the stream for its streamers
                socket = await player.signalling()
                await socket.close()
            dropped = (await player.status())[1]
            socket = await player.signalling()
            await receive(socket, "config")
            back = (await player.status())[1]
            await socket.close()
            return dropped, back
        finally:
            await player.close()

    dropped, back = asyncio.run(scenario())
    assert dropped["state"] in ("reconnecting", "connected") and back == {"state": "connected", **MAIN}
    assert 'reason="stream-unavailable"' not in edge.metrics() and pod.streamer.players_connected() == []


def test_a_terminating_stream_keeps_its_player_and_takes_no_new_one(edge: Edge) -> None:
    pod = edge.add_stream("stream-a")
    wait_for(lambda: 'pixelstream_session_streams_ready{build="main"} 1' in edge.metrics(), "the stream listed")

    async def scenario() -> tuple[dict[str, Any], int | None]:
        alice, bob = Player(edge), Player(edge)
        try:
            await alice.join(launch_link("alice"))
            socket = await alice.signalling()
            await receive(socket, "config")
            pod.terminating = True
            wait_for(
                lambda: 'pixelstream_session_streams_ready{build="main"} 0' in edge.metrics(), "the stream draining"
            )
            assert (await bob.join(launch_link("bob")))[1]["state"] == "queued"
            await socket.send_str(json.dumps({"type": "listStreamers"}))
            assert (await receive(socket, "streamerList"))["ids"] == ["stream"]
            playing = (await alice.status())[1]
            pod.listed = False  # the pod is gone
            return playing, await close_code(socket)
        finally:
            await alice.close()
            await bob.close()

    playing, code = asyncio.run(scenario())
    assert playing == {"state": "connected", **MAIN} and code == 4003


def test_a_player_flooding_its_signalling_is_cut_off_and_reconnecting_gives_it_no_fresh_budget(edge: Edge) -> None:
    pod = edge.add_stream("stream-a")
    wait_for(lambda: 'pixelstream_session_streams_ready{build="main"} 1' in edge.metrics(), "the stream listed")

    def pings() -> int:
        return sum(1 for _, m in pod.server.from_players() if m["type"] == "ping")

    async def scenario() -> tuple[int | None, int | None]:
        player = Player(edge)
        try:
            await player.join(launch_link("alice"))
            socket = await player.signalling()
            await receive(socket, "config")
            for _ in range(95):  # within the burst (100), all relayed
                await socket.send_str(json.dumps({"type": "ping", "time": 0}))
            await asyncio.to_thread(wait_for, lambda: pings() == 95, "the pings at the stream")
            await socket.close()
            socket = await player.signalling()
            await receive(socket, "config")
            # 70 more at once: a fresh connection's burst would take them; the session has 5 left (and 20 a second).
            refilled = await flood(socket, 70)
            socket = await player.signalling()
            await receive(socket, "config")
            return refilled, await flood(socket, 300)
        finally:
            await player.close()

    assert asyncio.run(scenario()) == (4008, 4008)


# -- builds side by side ---------------------------------------------------------------------------------------

CANARY_UE56 = build("canary", 0, "5.6")
MAIN_UE57 = build("main", 1, "5.7")


@pytest.fixture
def two_builds(tmp_path: Path) -> Iterator[Edge]:
    """main (UE 5.7) takes every new player, the canary (UE 5.6) none yet; a page of each version to serve."""
    root = tmp_path / "player"
    for version in ("5.6", "5.7"):
        (root / f"ue{version}" / "assets").mkdir(parents=True)
        (root / f"ue{version}" / "index.html").write_text(f"page of UE {version}")
        (root / f"ue{version}" / "assets" / "player.js").write_text(f"library of UE {version}")
    (tmp_path / "secret.txt").write_text("not for players")
    with running_edge(tmp_path, builds=[MAIN_UE57, CANARY_UE56], PLAYER_ROOT=str(root)) as running:
        yield running


async def page(player: Player, path: str = "/") -> tuple[int, str]:
    async with player.http.get(f"{player.edge.url}{path}") as response:
        return response.status, await response.text()


def test_a_player_waits_for_its_builds_stream_and_promotion_moves_the_waiting_without_a_restart(
    two_builds: Edge,
) -> None:
    edge = two_builds
    edge.add_stream("stream-canary-1", build="canary")
    wait_for(lambda: 'pixelstream_session_streams_free{build="canary"} 1' in edge.metrics(), "the canary listed")

    async def scenario() -> None:
        player = Player(edge)
        try:
            status, body = await player.join(launch_link("alice"))
            assert (status, body["state"], body["build"]) == (200, "queued", "main"), "weight 0 takes nobody"
            assert 'pixelstream_session_queue{build="main"} 1' in edge.metrics()
            assert edge.annotations_written("stream-canary-1") == []
            assert await page(player) == (200, "page of UE 5.7")
            # Promotion: the canary takes every new player; alice, still waiting, is sent there in her place.
            edge.set_builds([{**MAIN_UE57, "weight": 0}, {**CANARY_UE56, "weight": 1}])
            expected = {"state": "assigned", "build": "canary", "unrealVersion": "5.6"}
            await until(player.status, expected, "alice on the canary")
            # The page follows her session's build, or the version the page asks for when it reloads itself.
            assert await page(player) == (200, "page of UE 5.6")
            assert await page(player, "/?ue=5.7") == (200, "page of UE 5.7")
            assert await page(player, "/ue5.6/assets/player.js") == (200, "library of UE 5.6")
            stranger = Player(edge)
            assert (await page(stranger))[1] == "page of UE 5.6", "a new player gets the heaviest build's page"
            await stranger.close()
        finally:
            await player.close()

    asyncio.run(scenario())
    assert edge.annotations_written("stream-canary-1")[-1]["controller.kubernetes.io/pod-deletion-cost"] == "1"
    assert edge.process.poll() is None, "the same process throughout"


def test_broken_builds_change_nothing_and_no_path_leaves_the_pages(two_builds: Edge, tmp_path: Path) -> None:
    edge = two_builds
    edge.set_builds([build("main", 0)])

    async def scenario() -> None:
        player = Player(edge)
        try:
            await asyncio.sleep(1)  # five rounds of the builds refresh
            status, body = await player.join(launch_link("bob"))
            assert (status, body["build"]) == (200, "main"), "the weights before the broken file still hold"
            bad = ("/ue5.7/assets/..%2f..%2fsecret.txt", "/ue5.7/assets/.hidden", "/ue5.7/assets/nothing.js")
            for path in (*bad, "/ue..%2f..%2f/assets/secret.txt", "/ue5.8/assets/player.js", "/assets/player.js"):
                assert (await page(player, path))[0] == 404, path
            assert await page(player, "/?ue=..%2f..") == (200, "page of UE 5.7"), "a bad ?ue= is ignored"
        finally:
            await player.close()

    asyncio.run(scenario())
    log = (tmp_path / "session.log").read_text()
    assert "builds not applied, they stay as they were: every weight is 0" in log


def test_the_service_is_not_ready_until_it_knows_the_builds() -> None:
    """No player is served before the builds are read: the ConfigMap missing (Pulumi replacing it, or RBAC wrong)
    keeps the service unready; once read, it is ready, and a later failure keeps the builds it has."""
    from pixelstream.workloads.pixel_streaming.session.app import SessionService, Settings
    from pixelstream.workloads.pixel_streaming.session.broker import Broker
    from pixelstream.workloads.pixel_streaming.session.turn import TurnPool, TurnSettings

    document: list[str | None] = [None]

    async def read() -> str:
        if document[0] is None:
            raise ConnectionError('configmaps "session-builds" not found')
        return document[0]

    async def nothing(*_: object) -> Any:
        return None

    service = SessionService(
        Settings(), Broker(), TurnPool(TurnSettings("s")), None, nothing, read, nothing, nothing, nothing, nothing
    )
    service.streams_fresh_at = time.time()

    async def scenario() -> list[int]:
        statuses = []
        with contextlib.suppress(ConnectionError):
            await service.refresh_builds()
        statuses.append((await service.healthz(None)).status)
        document[0] = builds_json([MAIN_UE57, {**CANARY_UE56, "weight": 3}])
        await service.refresh_builds()
        statuses.append((await service.healthz(None)).status)
        document[0] = None
        with contextlib.suppress(ConnectionError):
            await service.refresh_builds()
        statuses.append((await service.healthz(None)).status)
        return statuses

    assert asyncio.run(scenario()) == [503, 200, 200]
    assert service.broker.weights == {"main": 1, "canary": 3}


def test_a_restart_of_the_service_keeps_every_player_its_stream_its_place_and_its_spent_link(edge: Edge) -> None:
    """An update or a drain of the service (SIGTERM, a new pod): the player who was playing reconnects to the
    same stream, the waiting one keeps its place, and a launch link spent before still cannot be used again."""
    pod = edge.add_stream("stream-a")
    wait_for(lambda: 'pixelstream_session_streams_ready{build="main"} 1' in edge.metrics(), "the stream listed")
    alice_link = launch_link("alice")

    async def scenario() -> None:
        alice, bob, mallory, carol = Player(edge), Player(edge), Player(edge), Player(edge)
        try:
            assert (await alice.join(alice_link))[0] == 200
            socket = await alice.signalling()
            await receive(socket, "config")
            assert (await bob.join(launch_link("bob")))[1]["position"] == 1
            closed = asyncio.create_task(close_code(socket))  # her page reads on, as a browser does
            assert await asyncio.to_thread(edge.restart) == 0, "a graceful stop, within Kubernetes' grace"
            # Her signalling closed with the old instance (Going Away); the new one waits for her on the same stream.
            assert await closed == aiohttp.WSCloseCode.GOING_AWAY
            assert await alice.status() == (200, {"state": "reconnecting", **MAIN})
            socket = await alice.signalling()
            await receive(socket, "config")
            assert await alice.status() == (200, {"state": "connected", **MAIN})
            status, waiting = await bob.status()
            assert status == 200 and waiting["state"] == "queued" and waiting["position"] == 1
            assert (await mallory.join(alice_link))[0] == 401, "spent before the restart"
            assert (await carol.join(launch_link("carol")))[1]["position"] == 2
            await socket.close()
        finally:
            for player in (alice, bob, mallory, carol):
                await player.close()

    asyncio.run(scenario())
    asked = [message["type"] for _, message in pod.server.from_players()]
    assert asked == ["listStreamers", "listStreamers"], "her connection before the restart, and again after it"


def test_without_its_state_a_restarted_service_knows_nobody(edge: Edge) -> None:
    """The state is what keeps the players: the same restart with the Secret emptied ends every session."""
    edge.add_stream("stream-a")
    wait_for(lambda: 'pixelstream_session_streams_ready{build="main"} 1' in edge.metrics(), "the stream listed")

    async def scenario() -> tuple[int, dict[str, Any]]:
        alice = Player(edge)
        try:
            await alice.join(launch_link("alice"))
            wait_for(lambda: edge.state.get("state"), "the state written")
            edge.process.kill()  # no graceful stop: what the periodic writes saved is what there is
            edge.state.clear()
            edge.process = edge.start_service()
            return await alice.status()
        finally:
            await alice.close()

    status, body = asyncio.run(scenario())
    assert status == 404 and "state" not in body
