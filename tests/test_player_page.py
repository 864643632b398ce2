"""The player page in a real browser: Epic's published frontend library (lib-pixelstreamingfrontend-ue5.7 from
npm, bundled by the page's own build) in Debian's headless chromium, against the real session service and
stand-in stream pods. The page's URL carries every parameter an attacker would try (?id=, ?address=,
?StreamerId=, ?ss= pointing at a pod): none of them changes where the library connects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from session_edge import (
    Edge,
    build,
    built_players,
    chromium_driver,
    launch_link,
    quit_driver,
    running_edge,
    wait_for,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[Edge]:
    with running_edge(tmp_path, PLAYER_ROOT=str(built_players())) as running:
        yield running


@pytest.fixture
def browsers(tmp_path: Path) -> Iterator[Any]:
    """Opens browsers, each with a profile (cookies) of its own."""
    opened: list[tuple[Any, Path]] = []

    def open_browser() -> Any:
        profile = tmp_path / f"profile-{len(opened)}"
        driver = chromium_driver(profile)
        opened.append((driver, profile))
        return driver

    try:
        yield open_browser
    finally:
        for driver, profile in opened:
            quit_driver(driver, profile)


def page_state(driver: Any) -> dict[str, str]:
    script = "return Object.assign({text: document.getElementById('status').textContent}, document.body.dataset)"
    return driver.execute_script(script)


def hostile_url(edge: Edge, link: str) -> str:
    """The page with every stream-choosing parameter aimed at the first stream pod, and the launch link."""
    pod = "127.0.0.2"
    query = f"?id=DefaultStreamer&address={pod}&StreamerId=DefaultStreamer&ss=ws://{pod}:{edge.signalling_port}/"
    return f"{edge.url}/{query}#launch={link}"


def test_the_library_waits_its_turn_then_plays_exactly_one_stream_through_the_service(edge: Edge, browsers) -> None:
    player = browsers()
    player.get(hostile_url(edge, launch_link("alice")))
    wait_for(lambda: page_state(player).get("state") == "queued", "the page showing the queue")
    state = page_state(player)
    assert (state["position"], state["wait"]) == ("1", "120")
    assert state["text"] == "You are number 1 in the queue. Wait: about 2 minutes."
    assert "launch=" not in player.current_url  # the link left the address bar (and the history)

    pod = edge.add_stream("stream-a")
    wait_for(lambda: pod.streamer.players_connected() == ["Player0"], "the library subscribing to its stream")
    wait_for(lambda: page_state(player).get("state") == "connecting", "the page connecting")
    # The library spoke to the stream only through the session service: the stream's signalling server never
    # saw a browser (a browser's websocket carries an Origin), and it was asked for its real streamer id.
    assert pod.server.origins == [None]
    types = [(m["type"], m.get("streamerId")) for _, m in pod.server.from_players()]
    assert types == [("listStreamers", None), ("subscribe", "DefaultStreamer")]


def test_a_second_browser_with_a_used_link_or_a_chosen_stream_gets_nothing_of_the_first(edge: Edge, browsers) -> None:
    pod = edge.add_stream("stream-a")
    link = launch_link("alice")
    alice = browsers()
    alice.get(hostile_url(edge, link))
    wait_for(lambda: pod.streamer.players_connected() == ["Player0"], "alice on the stream")

    mallory = browsers()
    mallory.get(hostile_url(edge, link))
    wait_for(lambda: page_state(mallory).get("state") == "refused", "the replayed link refused")
    assert page_state(mallory)["text"] == "the launch link was used already"

    mallory.get("about:blank")  # a new link for the same URL would be a same-document navigation otherwise
    mallory.get(hostile_url(edge, launch_link("mallory")))
    wait_for(lambda: page_state(mallory).get("state") == "queued", "mallory queued")
    assert page_state(mallory)["position"] == "1"
    # Her own websocket, with forged messages, while she waits: refused before any stream is involved.
    outcome = mallory.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const socket = new WebSocket(new URL('ws', document.baseURI).href.replace('http', 'ws'));
        socket.onopen = () => { socket.send(JSON.stringify({type: 'subscribe', streamerId: 'DefaultStreamer'})); };
        socket.onclose = (event) => done('closed ' + event.code);
        socket.onerror = () => done('refused');
        """
    )
    assert outcome in ("refused", "closed 1006")
    assert pod.streamer.players_connected() == ["Player0"]
    assert {who for who, _ in pod.server.from_players()} == {"Player0"}


def test_a_player_sent_to_a_build_of_another_engine_version_gets_that_versions_library(
    tmp_path: Path, browsers
) -> None:
    """The page is loaded with UE 5.7's library (main takes every player); promotion sends the waiting player to
    a UE 5.6 canary: the page reloads itself with 5.6's library and plays the canary's stream."""
    builds = [
        build("main", 1, "5.7"),
        build("canary", 0, "5.6"),
    ]
    with running_edge(tmp_path, builds=builds, PLAYER_ROOT=str(built_players())) as edge:
        player = browsers()
        player.get(f"{edge.url}/#launch={launch_link('alice')}")
        wait_for(lambda: page_state(player).get("state") == "queued", "the page showing the queue")
        first_page = player.execute_script("return performance.timeOrigin")
        assert page_state(player)["library"] == "5.7"
        pod = edge.add_stream("stream-canary-1", build="canary")
        edge.set_builds([{**builds[0], "weight": 0}, {**builds[1], "weight": 1}])
        wait_for(lambda: pod.streamer.players_connected() == ["Player0"], "the 5.6 library on the canary's stream")
        assert player.execute_script("return performance.timeOrigin") != first_page, "the page was reloaded"
        assert page_state(player)["library"] == "5.6", "the bundle of UE 5.6's library runs"
        assert player.current_url == f"{edge.url}/?ue=5.6", "the version rides in the URL, not on the cookie"
        assert player.execute_script("return sessionStorage.getItem('pixelstream-reloads')") is None


def test_the_page_rides_out_a_restart_of_the_service_back_to_the_same_stream(edge: Edge, browsers) -> None:
    """The service replaced (SIGTERM, a new pod) while a player is connected: the page keeps asking while nothing
    answers, then its library subscribes to the same stream again, through the new service."""
    pod = edge.add_stream("stream-a")
    player = browsers()
    player.get(f"{edge.url}/#launch={launch_link('alice')}")
    wait_for(lambda: pod.streamer.players_connected() == ["Player0"], "the library subscribing to its stream")
    edge.process.terminate()
    wait_for(lambda: page_state(player).get("state") == "service-away", "the page waiting for the service", 20)
    edge.process.wait(timeout=10)
    edge.process = edge.start_service()

    def subscribed() -> int:
        return sum(1 for _, m in pod.server.from_players() if m["type"] == "subscribe")

    wait_for(lambda: subscribed() == 2, "the library subscribing to the same stream again", 30)
    assert page_state(player)["state"] in ("connecting", "connected", "playing")
