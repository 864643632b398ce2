"""The session service's rules one at a time: the broker (queue, one stream per player, timeouts), the
signalling relay (what crosses between a player and its stream), launch links and sign-in tokens, TURN
credentials per player. The service as a whole, with a browser, is in test_session_service.py."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import random
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fake_kube import node, turn_pod

from pixelstream.workloads.pixel_streaming.session.auth import OpenIdConnect, Refused, SignedLinks
from pixelstream.workloads.pixel_streaming.session.broker import (
    BUSY,
    DEFAULT_BUILD,
    FREE,
    RETIRING,
    Broker,
    BrokerSettings,
    QueueFull,
    State,
)
from pixelstream.workloads.pixel_streaming.session.metrics import Metrics
from pixelstream.workloads.pixel_streaming.session.signalling import PUBLIC_STREAMER_ID, Relay, streamer_ids
from pixelstream.workloads.pixel_streaming.session.turn import (
    TurnPool,
    TurnSettings,
    credentials,
    turn_addresses,
    turn_name,
)

T0 = 1_000_000.0
STREAMS = {"stream-a": "10.0.192.10", "stream-b": "10.0.192.11"}


def broker(**settings: float) -> Broker:
    return Broker(BrokerSettings(**settings))  # type: ignore[arg-type]


# -- the broker -----------------------------------------------------------------------------------------------


def test_an_identity_holds_one_session_and_joining_again_returns_it() -> None:
    b = broker()
    first = b.join("link:alice", T0)
    assert b.join("link:alice", T0 + 5) is first
    assert len(b.sessions) == 1 and list(b.queue) == [first.id]


def test_each_stream_goes_to_exactly_one_player_in_arrival_order() -> None:
    b = broker()
    players = [b.join(f"link:p{i}", T0 + i) for i in range(3)]
    b.set_streams(STREAMS, T0 + 10)
    holders = {s.name: s.session for s in b.streams.values()}
    assert holders == {"stream-a": players[0].id, "stream-b": players[1].id}
    assert players[2].state == State.QUEUED and b.status(players[2].id, T0 + 10).position == 1
    # A third stream goes to the one still waiting, not to anyone twice.
    b.set_streams({**STREAMS, "stream-c": "10.0.192.12"}, T0 + 11)
    assert b.streams["stream-c"].session == players[2].id
    assert len({s.session for s in b.streams.values()}) == 3


def test_a_player_reaches_only_its_own_stream() -> None:
    b = broker()
    alice, bob = b.join("link:alice", T0), b.join("link:bob", T0)
    b.set_streams(STREAMS, T0)
    assert b.connect(alice.id, T0).address == STREAMS["stream-a"]
    assert b.connect(bob.id, T0).address == STREAMS["stream-b"]


def test_a_queued_or_unknown_session_reaches_no_stream() -> None:
    from pixelstream.workloads.pixel_streaming.session.broker import NotAssigned

    b = broker()
    queued = b.join("link:alice", T0)
    for session_id in (queued.id, "made-up", ""):
        with pytest.raises(NotAssigned):
            b.connect(session_id, T0)


def test_an_unclaimed_stream_goes_to_the_next_player_after_the_claim_time() -> None:
    b = broker(claim_seconds=30)
    alice, bob = b.join("link:alice", T0), b.join("link:bob", T0)
    b.set_streams({"stream-a": STREAMS["stream-a"]}, T0)
    b.tick(T0 + 29)
    assert alice.state == State.ASSIGNED
    b.tick(T0 + 30)
    assert alice.state == State.ENDED and alice.ended_reason == "claim-expired"
    assert bob.state == State.ASSIGNED and bob.stream == "stream-a"


def test_a_disconnected_player_gets_its_stream_back_within_the_reconnect_time_and_loses_it_after() -> None:
    b = broker(reconnect_seconds=20)
    alice = b.join("link:alice", T0)
    b.set_streams({"stream-a": STREAMS["stream-a"]}, T0)
    b.connect(alice.id, T0)
    b.disconnect(alice.id, "stream-a", T0 + 100)
    b.tick(T0 + 119)
    assert b.connect(alice.id, T0 + 119).name == "stream-a"
    b.disconnect(alice.id, "stream-a", T0 + 200)
    b.tick(T0 + 220)
    assert alice.state == State.ENDED and alice.ended_reason == "disconnected"
    assert b.streams["stream-a"].session is None


def test_a_stream_that_goes_away_ends_its_session_and_the_player_can_join_again() -> None:
    b = broker()
    alice = b.join("link:alice", T0)
    b.set_streams(STREAMS, T0)
    b.connect(alice.id, T0)
    b.set_streams({"stream-b": STREAMS["stream-b"]}, T0 + 1)
    assert b.status(alice.id, T0 + 1).state == State.ENDED and alice.ended_reason == "stream-ended"
    again = b.join("link:alice", T0 + 2)
    assert again.id != alice.id and again.stream == "stream-b"


def test_a_stream_whose_address_changes_is_a_new_stream() -> None:
    b = broker()
    alice = b.join("link:alice", T0)
    b.set_streams({"stream-a": "10.0.192.10"}, T0)
    b.connect(alice.id, T0)
    b.set_streams({"stream-a": "10.0.192.99"}, T0 + 1)
    assert alice.state == State.ENDED


def test_players_whose_streams_go_before_they_connect_keep_their_places_at_the_head() -> None:
    b = broker()
    first, second, third = (b.join(f"link:{name}", T0 + i) for i, name in enumerate(("a", "b", "c")))
    b.set_streams(STREAMS, T0 + 5)
    assert (first.stream, second.stream) == ("stream-a", "stream-b")
    # One pod is deleted, the other terminates: neither assigned player had connected.
    b.set_streams({}, T0 + 6, draining={"stream-b": STREAMS["stream-b"]})
    assert list(b.queue) == [first.id, second.id, third.id] and not b.streams
    assert b.cost_changes() == {"stream-a": True, "stream-b": True}, "nothing written to pods that are going"


def test_a_refused_player_keeps_the_head_of_the_queue_and_the_stream_is_skipped_for_a_while() -> None:
    b = broker(quarantine_seconds=30)
    alice, bob = b.join("link:alice", T0), b.join("link:bob", T0)
    b.set_streams({"stream-a": STREAMS["stream-a"]}, T0)
    b.refused(alice.id, "stream-a", T0 + 1)
    assert list(b.queue) == [alice.id, bob.id] and b.streams["stream-a"].session is None
    b.set_streams(STREAMS, T0 + 2)
    assert alice.stream == "stream-b" and bob.state == State.QUEUED
    b.tick(T0 + 31)
    assert bob.stream == "stream-a"


def test_what_an_old_connection_reports_changes_nothing_for_the_session() -> None:
    """A session requeued from stream-a and given stream-b: the late close or refusal of its connection to
    stream-a neither requeues it again nor starts its reconnect clock."""
    b = broker(quarantine_seconds=30)
    alice = b.join("link:alice", T0)
    b.set_streams({"stream-a": STREAMS["stream-a"]}, T0)
    b.refused(alice.id, "stream-a", T0 + 1)
    b.set_streams(STREAMS, T0 + 2)
    b.connect(alice.id, T0 + 3)
    b.refused(alice.id, "stream-a", T0 + 4)
    b.disconnect(alice.id, "stream-a", T0 + 4)
    assert alice.state == State.CONNECTED and alice.stream == "stream-b" and b.streams["stream-b"].session == alice.id


def test_a_terminating_stream_keeps_its_player_takes_nobody_new_and_goes_when_the_session_ends() -> None:
    b = broker()
    alice, bob = b.join("link:alice", T0), b.join("link:bob", T0)
    b.set_streams({"stream-a": STREAMS["stream-a"]}, T0)
    b.connect(alice.id, T0)
    b.set_streams({}, T0 + 1, draining={"stream-a": STREAMS["stream-a"]})
    assert alice.state == State.CONNECTED and b.connect(alice.id, T0 + 1).name == "stream-a"
    # Bob needs a stream; alice holds none of the ready ones: the scaler counts her stream out.
    assert bob.state == State.QUEUED and b.counts()["streams"] == 0 and b.counts()["inUse"] == 0
    b.cost_changes()
    b.leave(alice.id, T0 + 2)
    assert "stream-a" not in b.streams and bob.state == State.QUEUED and b.cost_changes() == {}
    # A terminating pod nobody held is never a stream at all.
    b.set_streams({}, T0 + 3, draining={"stream-b": STREAMS["stream-b"]})
    assert "stream-b" not in b.streams


def test_a_queued_player_who_stops_asking_leaves_the_queue_and_one_who_asks_stays() -> None:
    b = broker(queue_idle_seconds=90)
    gone, waiting = b.join("link:gone", T0), b.join("link:waiting", T0)
    b.status(waiting.id, T0 + 60)
    b.tick(T0 + 90)
    assert gone.state == State.ENDED and gone.ended_reason == "left-queue"
    assert waiting.state == State.QUEUED and list(b.queue) == [waiting.id]
    b.join("link:waiting", T0 + 140)
    b.tick(T0 + 200)
    assert waiting.state == State.QUEUED


def test_the_session_time_limit_ends_a_session() -> None:
    b = broker(max_session_seconds=600)
    alice = b.join("link:alice", T0)
    b.set_streams({"stream-a": STREAMS["stream-a"]}, T0)
    b.connect(alice.id, T0)
    b.tick(T0 + 599)
    assert alice.state == State.CONNECTED
    b.tick(T0 + 600)
    assert alice.ended_reason == "time-limit"


def test_the_waiting_room_has_a_size_and_a_player_in_it_may_still_ask_for_its_place() -> None:
    b = broker(max_queue=2)
    b.join("link:a", T0), b.join("link:b", T0)
    assert b.full() and b.holds("link:a") and not b.holds("link:c")
    with pytest.raises(QueueFull):
        b.join("link:c", T0)
    assert b.join("link:a", T0 + 1).identity == "link:a"


def test_counts_say_who_waits_and_which_ready_streams_are_in_use_free_or_retiring() -> None:
    b = broker()
    b.join("link:a", T0)
    assert b.counts() == {"queued": 1, "playing": 0, "streams": 0, "inUse": 0, "free": 0, "retiring": 0}
    b.set_streams({**STREAMS, "stream-c": "10.0.192.12", "stream-d": "10.0.192.13"}, T0)
    b.join("link:b", T0)
    assert b.retire(DEFAULT_BUILD, 1, T0) == 1
    assert b.counts() == {"queued": 0, "playing": 2, "streams": 4, "inUse": 2, "free": 1, "retiring": 1}
    b.join("link:c", T0)
    b.join("link:d", T0)
    assert b.counts() == {"queued": 1, "playing": 3, "streams": 4, "inUse": 3, "free": 0, "retiring": 1}


def test_the_estimated_wait_follows_recent_assignments_and_falls_back_to_one_stream_start() -> None:
    b = broker(cold_start_seconds=120, claim_seconds=1000)
    waiting = [b.join(f"link:{i}", T0) for i in range(6)]
    assert b.status(waiting[0].id, T0).estimated_wait_seconds == 120
    streams: dict[str, str] = {}
    for i in range(3):  # a stream every 40 s
        streams[f"s{i}"] = f"10.0.192.{i}"
        b.set_streams(dict(streams), T0 + 40 * i)
    status = b.status(waiting[4].id, T0 + 80)
    assert status.position == 2 and status.estimated_wait_seconds == 80


def test_players_with_a_stream_starting_for_them_wait_one_start_and_those_beyond_wait_for_sessions() -> None:
    b = broker(cold_start_seconds=120, claim_seconds=1000)
    streams = {f"s{i}": f"10.0.192.{i}" for i in range(3)}
    for i in range(3):  # sessions ended, and their streams were handed out, every 40 s
        b.join(f"link:early-{i}", T0 + 40 * i)
        b.set_streams(dict(list(streams.items())[: i + 1]), T0 + 40 * i)
    waiting = [b.join(f"link:{i}", T0 + 100) for i in range(5)]
    b.starting = {DEFAULT_BUILD: 2}
    told = [b.status(w.id, T0 + 100).estimated_wait_seconds for w in waiting]
    # Positions 1-2: a stream is starting for each, one cold start; 3-5: that start, then a 40 s gap per player.
    assert told == [120, 120, 160, 200, 240]
    b.starting = {}
    assert [b.status(w.id, T0 + 100).estimated_wait_seconds for w in waiting] == [40, 80, 120, 160, 200]


def test_deletion_cost_changes_follow_who_holds_a_stream() -> None:
    b = broker()
    alice = b.join("link:alice", T0)
    b.set_streams({"stream-a": STREAMS["stream-a"]}, T0)
    assert b.cost_changes() == {"stream-a": BUSY}
    assert b.cost_changes() == {}
    b.leave(alice.id, T0 + 1)
    assert b.cost_changes() == {"stream-a": FREE}


# -- scale-in ----------------------------------------------------------------------------------------------------

NODE_OF = {"a1": "node-a", "a2": "node-a", "b1": "node-b", "b2": "node-b", "c1": "node-c"}
ON_NODES = {name: f"10.0.192.{i}" for i, name in enumerate(NODE_OF, 1)}


def test_free_streams_retire_from_the_emptiest_nodes_and_take_no_player() -> None:
    """node-a: one stream in use, one free; node-b: two free; node-c: one free. A scale-in of three takes node-c's
    stream and node-b's two (no stream in use there, then fewer streams), never node-a's in-use one, and leaves
    node-a's free stream for the next player, so that node-b and node-c empty."""
    b = broker()
    alice = b.join("link:alice", T0)
    b.set_streams({"a1": ON_NODES["a1"]}, T0, nodes=NODE_OF)
    b.set_streams(ON_NODES, T0 + 1, nodes=NODE_OF)
    assert alice.stream == "a1"
    b.cost_changes()
    assert b.retire(DEFAULT_BUILD, 3, T0) == 3
    assert {n for n, s in b.streams.items() if s.retiring} == {"c1", "b1", "b2"}
    assert b.cost_changes() == {"c1": RETIRING, "b1": RETIRING, "b2": RETIRING}
    bob, carol = b.join("link:bob", T0 + 2), b.join("link:carol", T0 + 2)
    assert bob.stream == "a2" and carol.state == State.QUEUED, "a retiring stream takes nobody"
    # More than are free: as many as there are.
    assert b.retire(DEFAULT_BUILD, 9, T0) == 3


def test_retiring_streams_no_longer_needed_go_back_into_service() -> None:
    b = broker()
    b.set_streams(ON_NODES, T0, nodes=NODE_OF)
    b.retire(DEFAULT_BUILD, 3, T0)
    b.cost_changes()
    assert b.retire(DEFAULT_BUILD, 1, T0) == 1
    back = {name for name, cost in b.cost_changes().items() if cost == FREE}
    assert len(back) == 2 and not any(b.streams[n].retiring for n in back)
    alice = b.join("link:alice", T0 + 1)
    assert alice.stream in back
    assert b.retire(DEFAULT_BUILD, 0, T0) == 0 and not any(s.retiring for s in b.streams.values())


def test_ended_sessions_are_forgotten_after_a_while() -> None:
    b = broker(ended_memory_seconds=60)
    alice = b.join("link:alice", T0)
    b.leave(alice.id, T0)
    assert b.status(alice.id, T0 + 59).state == State.ENDED
    b.tick(T0 + 60)
    assert b.status(alice.id, T0 + 60) is None and not b._by_identity


# -- the signalling relay -------------------------------------------------------------------------------------

OPTIONS = {"iceServers": [{"urls": ["turn:203.0.113.10:3478?transport=udp"]}], "iceTransportPolicy": "relay"}


def relay() -> Relay:
    return Relay("DefaultStreamer", OPTIONS)


def test_the_player_sees_one_streamer_by_a_name_that_is_not_the_real_one() -> None:
    to_stream, to_player = relay().from_player('{"type":"listStreamers"}')
    assert to_stream is None and json.loads(to_player) == {"type": "streamerList", "ids": [PUBLIC_STREAMER_ID]}
    to_stream, to_player = relay().from_player(json.dumps({"type": "subscribe", "streamerId": PUBLIC_STREAMER_ID}))
    assert json.loads(to_stream) == {"type": "subscribe", "streamerId": "DefaultStreamer"} and to_player is None


@pytest.mark.parametrize("wanted", ["DefaultStreamer", "DefaultStreamer1", "*", "", None, 7])
def test_subscribing_to_any_other_name_reaches_nothing(wanted: object) -> None:
    r = relay()
    to_stream, to_player = r.from_player(json.dumps({"type": "subscribe", "streamerId": wanted}))
    assert to_stream is None and json.loads(to_player)["type"] == "subscribeFailed"
    assert r.dropped == {"subscribe": 1}


@pytest.mark.parametrize(
    "message",
    [
        {"type": "disconnectPlayer", "playerId": "Player0"},
        {"type": "endpointId", "id": "DefaultStreamer"},
        {"type": "playerConnected", "playerId": "Player0"},
        {"type": "kick"},
        {"type": "startStreaming"},
        {"type": "identify"},
        {"type": "config", "peerConnectionOptions": {}},
        ["offer"],
        {"sdp": "no type"},
    ],
)
def test_messages_a_player_has_no_business_sending_are_dropped(message: object) -> None:
    r = relay()
    assert r.from_player(json.dumps(message)) == (None, None)
    assert sum(r.dropped.values()) == 1


def test_a_dropped_message_of_a_made_up_type_is_counted_as_other() -> None:
    """The drop counter's label is the message type; a player inventing types must not invent series."""
    r = relay()
    for i in range(50):
        r.from_player(json.dumps({"type": f"made-up-{i}"}))
    r.from_player(json.dumps({"type": "disconnectPlayer"}))
    assert r.dropped == {"other": 50, "disconnectPlayer": 1}


def test_garbage_binary_and_oversized_messages_are_dropped() -> None:
    r = relay()
    assert r.from_player("not json") == (None, None)
    assert r.from_player(b'{"type":"offer"}') == (None, None)
    assert r.from_player(json.dumps({"type": "offer", "sdp": "x" * 70_000})) == (None, None)
    assert r.dropped == {"invalid": 3}


def test_webrtc_negotiation_passes_both_ways() -> None:
    r = relay()
    for kind in ("offer", "answer", "iceCandidate", "ping", "pong", "unsubscribe", "layerPreference"):
        message = {"type": kind, "sdp": "v=0"}
        assert json.loads(r.from_player(json.dumps(message))[0]) == message
    for kind in ("offer", "answer", "iceCandidate", "subscribeFailed"):
        message = {"type": kind, "playerId": "Player0", "sdp": "v=0"}
        assert json.loads(r.from_stream(json.dumps(message))) == message


def test_the_config_message_carries_the_sessions_turn_servers_only() -> None:
    own = {"type": "config", "protocolVersion": "1.3.0", "peerConnectionOptions": {"iceServers": [{"urls": ["x"]}]}}
    forwarded = json.loads(relay().from_stream(json.dumps(own)))
    assert forwarded == {"type": "config", "protocolVersion": "1.3.0", "peerConnectionOptions": OPTIONS}


@pytest.mark.parametrize("kind", ["streamerList", "playerCount", "streamerIdChanged", "identify", "endpointIdConfirm"])
def test_the_signalling_servers_own_view_never_reaches_the_player(kind: str) -> None:
    assert relay().from_stream(json.dumps({"type": kind, "ids": ["DefaultStreamer", "Other"], "count": 3})) is None


def test_the_streamer_list_answer_is_recognised() -> None:
    assert streamer_ids('{"type":"streamerList","ids":["DefaultStreamer"]}') == ["DefaultStreamer"]
    assert streamer_ids('{"type":"config"}') is None


# -- launch links (signedLinks) -------------------------------------------------------------------------------

SECRET = "launch-link-test-secret-with-enough-length-0123456789"


def link(now: float | None = None, **claims: object) -> str:
    now = time.time() if now is None else now
    body = {"sub": "player-1", "aud": "pixelstream", "iat": int(now), "exp": int(now) + 120, "jti": "j-1", **claims}
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, SECRET, algorithm="HS256")


def links(**kw: object) -> SignedLinks:
    return SignedLinks(audience="pixelstream", max_lifetime_seconds=300, secret=SECRET, **kw)


def admit(verifier: SignedLinks, token: str) -> str:
    """What the service does for a player it lets in: check the link, then spend it."""
    checked = verifier.check(token)
    verifier.spend(checked, time.time())
    return checked.identity


def test_a_valid_link_gives_its_subject_once() -> None:
    verifier = links()
    assert admit(verifier, link()) == "link:player-1"
    with pytest.raises(Refused, match="used already"):
        verifier.check(link())


def test_a_link_only_checked_may_be_used_again_and_one_link_is_spent_once() -> None:
    verifier = links()
    first, again = verifier.check(link()), verifier.check(link())
    assert first == again
    verifier.spend(first, time.time())
    with pytest.raises(Refused, match="used already"):
        verifier.spend(again, time.time())


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (lambda: link(exp=int(time.time()) - 60, iat=int(time.time()) - 120), "expired"),
        (lambda: link(aud="another-game"), "InvalidAudience"),
        (lambda: link(jti=None), "MissingRequiredClaim"),
        (lambda: link(sub=None), "MissingRequiredClaim"),
        (lambda: link(exp=int(time.time()) + 3600), "longer than 300"),
        (lambda: link(iat=int(time.time()) + 600, exp=int(time.time()) + 700), "ImmatureSignature|future"),
        (
            lambda: jwt.encode({"sub": "x", "aud": "pixelstream"}, "another-secret-of-enough-length-0123456789"),
            "Invalid",
        ),
        (lambda: link() + "x", "Invalid"),
        (lambda: "not-a-token", "DecodeError"),
    ],
)
def test_a_bad_link_is_refused_with_a_reason_that_does_not_echo_it(token, reason: str) -> None:
    value = token()
    with pytest.raises(Refused, match=reason) as refusal:
        admit(links(), value)
    assert value not in str(refusal.value)


def test_an_unsigned_link_is_refused() -> None:
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    now = int(time.time())
    claims = {"sub": "x", "aud": "pixelstream", "iat": now, "exp": now + 60, "jti": "n"}
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(Refused):
        admit(links(), f"{header}.{payload}.")


@pytest.fixture(scope="module")
def key_set() -> Iterator[tuple[rsa.RSAPrivateKey, str]]:
    """An RSA key and a JWKS URL on loopback that serves its public half, as a portal or an IdP would."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    document = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield key, f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    server.shutdown()


def rs256(key: rsa.RSAPrivateKey, **claims: object) -> str:
    now = int(time.time())
    body = {"sub": "player-2", "aud": "pixelstream", "iat": now, "exp": now + 60, "jti": "r-1", **claims}
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": "k1"})


def test_a_link_signed_by_the_portals_key_is_accepted(key_set) -> None:
    key, url = key_set
    assert admit(SignedLinks(audience="pixelstream", max_lifetime_seconds=300, jwks_url=url), rs256(key)) == (
        "link:player-2"
    )


def test_a_link_signed_with_the_public_key_as_an_hmac_secret_is_refused(key_set) -> None:
    key, url = key_set
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    now = int(time.time())
    claims = {"sub": "x", "aud": "pixelstream", "iat": now, "exp": now + 60, "jti": "c"}

    # PyJWT will not sign this itself; an attacker would, by hand.
    def part(document: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(document).encode()).rstrip(b"=").decode()

    signing_input = f"{part({'alg': 'HS256', 'typ': 'JWT', 'kid': 'k1'})}.{part(claims)}"
    signature = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    forged = f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
    with pytest.raises(Refused):
        admit(SignedLinks(audience="pixelstream", max_lifetime_seconds=300, jwks_url=url), forged)


def test_a_link_signed_by_another_key_is_refused(key_set) -> None:
    _, url = key_set
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(Refused):
        admit(SignedLinks(audience="pixelstream", max_lifetime_seconds=300, jwks_url=url), rs256(other))


def test_a_sign_in_token_gives_its_subject_and_a_bare_header_gives_nothing(key_set) -> None:
    key, url = key_set
    now = int(time.time())
    idp = OpenIdConnect("https://idp.example", "game-client", url)
    token = jwt.encode(
        {"sub": "u-9", "aud": "game-client", "iss": "https://idp.example", "iat": now, "exp": now + 300},
        key,
        algorithm="RS256",
        headers={"kid": "k1"},
    )
    assert idp.identity(f"Bearer {token}") == "oidc:u-9"
    for header in (None, "", "Bearer", "Basic dXNlcjpwYXNz", f"Bearer {token}x"):
        with pytest.raises(Refused):
            idp.identity(header)
    wrong_issuer = jwt.encode(
        {"sub": "u-9", "aud": "game-client", "iss": "https://evil.example", "iat": now, "exp": now + 300},
        key,
        algorithm="RS256",
        headers={"kid": "k1"},
    )
    with pytest.raises(Refused, match="InvalidIssuer"):
        idp.identity(f"Bearer {wrong_issuer}")


def test_the_service_finds_the_providers_keys_through_its_discovery_document(key_set, monkeypatch) -> None:
    """As for an OCI IAM identity domain: discovery at the domain's URL, tokens issued as another issuer."""
    from pixelstream.workloads.pixel_streaming.session import app

    key, jwks_url = key_set
    seen = []
    monkeypatch.setattr(app, "_discover_jwks", lambda url: seen.append(url) or jwks_url)
    monkeypatch.setenv("AUTH_MODE", "oidc")
    monkeypatch.setenv("OIDC_ISSUER", "https://identity.oraclecloud.com/")
    monkeypatch.setenv("OIDC_DISCOVERY_URL", "https://idcs-0123.identity.oraclecloud.com")
    monkeypatch.setenv("OIDC_CLIENT_ID", "game")
    verifier = app.verifier_from_env()
    assert seen == ["https://idcs-0123.identity.oraclecloud.com"]
    now = int(time.time())
    claims = {"sub": "u", "aud": "game", "iat": now, "exp": now + 60}
    signed = jwt.encode(
        {**claims, "iss": "https://identity.oraclecloud.com/"}, key, algorithm="RS256", headers={"kid": "k1"}
    )
    assert verifier.identity(f"Bearer {signed}") == "oidc:u"
    other = jwt.encode(
        {**claims, "iss": "https://idcs-0123.identity.oraclecloud.com"}, key, algorithm="RS256", headers={"kid": "k1"}
    )
    with pytest.raises(Refused, match="InvalidIssuer"):
        verifier.identity(f"Bearer {other}")


# -- TURN for a player ----------------------------------------------------------------------------------------


def test_a_player_gets_one_turn_node_relay_only_with_credentials_that_name_it_and_expire() -> None:
    pool = TurnPool(TurnSettings(secret="s", ttl_seconds=300, tls_url="turns:turn.play.example:443?transport=tcp"))
    pool.set_addresses(["203.0.113.10", "203.0.113.11"])
    options = pool.peer_options("link:player-1", T0)
    assert options["iceTransportPolicy"] == "relay"
    (server,) = options["iceServers"]
    assert server["urls"] == [
        "turn:203.0.113.10:3478?transport=udp",
        "turn:203.0.113.10:3478?transport=tcp",
        "turns:turn.play.example:443?transport=tcp",
    ]
    expiry, identity = server["username"].split(":")
    assert int(expiry) == T0 + 300 and identity == turn_name("s", "link:player-1") and "player-1" not in identity
    assert (server["username"], server["credential"]) == credentials("s", 300, T0, identity)
    # The next player goes to the other node; a player keeps its node, and its name, in every session.
    assert pool.peer_options("link:player-2", T0)["iceServers"][0]["urls"][0].startswith("turn:203.0.113.11")
    again = pool.peer_options("link:player-1", T0 + 60)["iceServers"][0]
    assert again["urls"][0].startswith("turn:203.0.113.10") and again["username"].endswith(f":{identity}")


def test_without_turn_nodes_a_player_gets_no_servers() -> None:
    assert TurnPool(TurnSettings(secret="s")).peer_options("x", T0)["iceServers"] == []


# -- the service's own bookkeeping of signalling connections ------------------------------------------------


class UnansweredSocket:
    """A player's websocket whose player never answers the close frame (aiohttp would wait for it)."""

    def __init__(self) -> None:
        self.close_code: int | None = None

    async def close(self, code: int, message: bytes) -> None:
        self.close_code = code
        await asyncio.Event().wait()


def test_settling_closes_left_behind_connections_without_waiting_and_keeps_the_current_ones() -> None:
    """A settle round decides and takes out in one step: nothing made while it would wait for a slow player is
    closed for another connection's reasons, and no player that never answers holds it up."""
    from pixelstream.workloads.pixel_streaming.session.app import Connection, SessionService, Settings

    async def nothing(*_: object) -> None:
        return None

    async def scenario() -> None:
        b = broker()
        service = SessionService(
            Settings(),
            b,
            TurnPool(TurnSettings("s")),
            None,
            nothing,
            nothing,
            nothing,
            nothing,
            nothing,
            nothing,
            clock=lambda: T0,
        )
        gone, moved, staying = (b.join(f"link:{name}", T0) for name in ("gone", "moved", "staying"))
        b.set_streams({**STREAMS, "stream-c": "10.0.192.12", "stream-d": "10.0.192.13"}, T0)
        sockets = {s.id: UnansweredSocket() for s in (gone, moved, staying)}
        for session in (gone, moved, staying):
            service.connections[session.id] = Connection(sockets[session.id], b.connect(session.id, T0).name)
        b.leave(gone.id, T0)
        b.refused(moved.id, "stream-b", T0)  # requeued, and at once given another stream
        assert moved.state == State.ASSIGNED and moved.stream not in (None, "stream-b")
        await asyncio.wait_for(service._settle(), 1)
        await asyncio.sleep(0)
        assert set(service.connections) == {staying.id}
        assert [sockets[s.id].close_code for s in (gone, moved, staying)] == [4003, 4003, None]
        for task in list(service._tasks):
            task.cancel()

    asyncio.run(scenario())


# -- builds side by side -------------------------------------------------------------------------------------

BUILD_STREAMS = {"stream-main-1": "10.0.192.20", "stream-canary-1": "10.0.192.21"}
BUILD_OF = {"stream-main-1": "main", "stream-canary-1": "canary"}


def builds_broker(weights: dict[str, int], seed: int = 7) -> Broker:
    return Broker(BrokerSettings(max_queue=100_000), weights=weights, choose=random.Random(seed))


class Scripted(random.Random):
    """Sends the next players to these builds, in order, as the weights might have."""

    def __init__(self, *builds: str) -> None:
        super().__init__(0)
        self.builds = list(builds)

    def choices(self, population, weights=None, *, cum_weights=None, k=1):  # type: ignore[no-untyped-def]
        return [self.builds.pop(0)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_new_players_go_to_builds_in_proportion_to_their_weights(seed: int) -> None:
    """10 000 joins at weights 80/20/0: each build's share within 4 standard deviations of its weight's share
    (binomial: 40 players for 20%), and a build at weight 0 gets nobody."""
    b = builds_broker({"main": 80, "canary": 20, "retired": 0}, seed)
    joins = 10_000
    for index in range(joins):
        b.join(f"player-{index}", T0)
    shares = {name: sum(1 for s in b.sessions.values() if s.build == name) for name in ("main", "canary", "retired")}
    spread = 4 * (joins * 0.2 * 0.8) ** 0.5
    assert abs(shares["canary"] - 0.2 * joins) <= spread, shares
    assert shares["main"] + shares["canary"] == joins and shares["retired"] == 0


def test_a_player_gets_a_stream_of_its_build_only_and_does_not_hold_up_another_builds_player() -> None:
    b = Broker(weights={"main": 1, "canary": 1}, choose=Scripted("main", "canary"))
    first, second = b.join("alice", T0), b.join("bob", T0 + 1)
    b.set_streams({"stream-canary-1": BUILD_STREAMS["stream-canary-1"]}, T0 + 2, builds=BUILD_OF)
    assert (first.state, second.state) == (State.QUEUED, State.ASSIGNED), "bob is served past alice"
    assert second.stream == "stream-canary-1"
    assert b.status(first.id, T0 + 2).position == 1, "alice is first of main's players"
    b.set_streams(BUILD_STREAMS, T0 + 3, builds=BUILD_OF)
    assert first.stream == "stream-main-1"


def test_a_build_at_weight_zero_keeps_its_players_and_sends_its_waiting_ones_elsewhere_in_place() -> None:
    b = Broker(weights={"main": 1, "canary": 1}, choose=Scripted(*["canary"] * 7, *["main"] * 6))
    playing = b.join("alice", T0)
    waiting = [b.join(f"player-{i}", T0 + 2) for i in range(6)]
    assert {s.build for s in (playing, *waiting)} == {"canary"}
    b.set_streams({"stream-canary-1": BUILD_STREAMS["stream-canary-1"]}, T0 + 2, builds=BUILD_OF)
    b.connect(playing.id, T0 + 2)
    b.set_weights({"main": 1, "canary": 0}, T0 + 3)
    assert [s.build for s in waiting] == ["main"] * 6 and list(b.queue) == [s.id for s in waiting]
    assert (playing.state, playing.stream) == (State.CONNECTED, "stream-canary-1"), "nobody playing moves"
    assert b.counts("canary") == {"queued": 0, "playing": 1, "streams": 1, "inUse": 1, "free": 0, "retiring": 0}
    assert b.counts("main")["queued"] == 6
    b.leave(playing.id, T0 + 4)
    assert b.counts("canary")["inUse"] == 0 and b.counts("canary")["free"] == 1
    assert all(s.build == "main" for s in waiting), "its free stream takes nobody new"
    assert [s.state for s in waiting] == [State.QUEUED] * 6


def test_weights_must_leave_some_build_taking_players() -> None:
    b = builds_broker({"main": 1})
    with pytest.raises(ValueError, match="weight above 0"):
        b.set_weights({"main": 0, "canary": 0}, T0)
    assert b.weights == {"main": 1}


def test_a_stream_whose_build_is_unknown_serves_only_sessions_of_that_build() -> None:
    """A build removed from the list still has its streams until they go: nobody new is sent to them."""
    b = builds_broker({"main": 1})
    b.set_streams({"stream-old-1": "10.0.192.30"}, T0, builds={"stream-old-1": "old"})
    session = b.join("alice", T0)
    assert session.build == "main" and session.state == State.QUEUED
    assert b.builds() == ["main", "old"] and b.counts("old")["free"] == 1


# -- TURN nodes about to go -------------------------------------------------------------------------------------


def test_a_turn_node_about_to_go_is_given_to_nobody_new() -> None:
    tainted = node("turn-d", "203.0.113.4")
    tainted["spec"]["taints"] = [{"key": "ToBeDeletedByClusterAutoscaler", "value": "1", "effect": "NoSchedule"}]
    nodes = {
        "items": [
            node("turn-a", "203.0.113.1"),
            node("turn-b", "203.0.113.2"),
            node("turn-c", "203.0.113.3", unschedulable=True),  # cordoned: a drain, OKE's node cycling
            tainted,  # the cluster autoscaler is deleting it
            node("turn-e", "203.0.113.5"),
            node("turn-f", "203.0.113.6"),
        ]
    }
    pods = {
        "items": [
            turn_pod("turn-a"),
            turn_pod("turn-b", terminating=True),  # coturn draining: its DaemonSet is updated
            turn_pod("turn-c"),
            turn_pod("turn-d"),
            turn_pod("turn-e", ready=False),
            # turn-f: no coturn at all
        ]
    }
    assert turn_addresses(nodes, pods) == ["203.0.113.1"]
    # every node leaving (a one-node pool cycled): the leaving ones whose coturn still takes allocations, not none
    leaving = {"items": [n for n in nodes["items"] if n["metadata"]["name"] in ("turn-b", "turn-c", "turn-d")]}
    assert turn_addresses(leaving, pods) == ["203.0.113.3", "203.0.113.4"], "never a draining coturn"
    # the same nodes, nothing going: every one with a ready coturn is offered
    calm = {"items": [node(f"turn-{n}", f"203.0.113.{i}") for i, n in enumerate("abc", 1)]}
    assert turn_addresses(calm, {"items": [turn_pod(f"turn-{n}") for n in "abc"]}) == [
        "203.0.113.1",
        "203.0.113.2",
        "203.0.113.3",
    ]


def test_a_player_whose_turn_node_goes_gets_another_at_its_next_connection() -> None:
    pool = TurnPool(TurnSettings(secret="s"))
    pool.set_addresses(["203.0.113.1", "203.0.113.2"])
    first = pool.node_for("alice")
    pool.set_addresses([a for a in ["203.0.113.1", "203.0.113.2"] if a != first])
    assert pool.node_for("alice") not in (first, None)


# -- metrics --------------------------------------------------------------------------------------------------


def test_metrics_render_the_broker_counts_and_counters() -> None:
    metrics = Metrics()
    metrics.count("refused", "auth")
    metrics.count("dropped", 'sub"scribe', 2)
    counts = {"queued": 3, "playing": 2, "streams": 4, "inUse": 2, "free": 1, "retiring": 1, "wanted": 6, "max": 8}
    text = metrics.render({"main": counts, "canary": {**counts, "queued": 0, "wanted": 3}})
    assert 'pixelstream_session_queue{build="main"} 3\n' in text
    assert 'pixelstream_session_streams_wanted{build="main"} 6\n' in text
    assert 'pixelstream_session_streams_retiring{build="main"} 1\n' in text
    assert 'pixelstream_session_streams_max{build="main"} 8\n' in text
    assert 'pixelstream_session_queue{build="canary"} 0\n' in text
    assert 'pixelstream_session_streams_wanted{build="canary"} 3\n' in text
    assert 'pixelstream_session_refused_total{reason="auth"} 1' in text
    assert 'pixelstream_session_dropped_total{type="sub\\"scribe"} 2' in text


def test_an_assignment_does_not_scan_the_queue_for_a_build_nobody_waits_for() -> None:
    """20 000 players waiting for main, a free stream of a canary nobody waits for: every tick and join stays
    cheap (the broker knows how many wait for each build)."""
    b = Broker(BrokerSettings(max_queue=100_000), weights={"main": 1, "canary": 0})
    for index in range(20_000):
        b.join(f"player-{index}", T0)
    b.set_streams({"stream-canary-1": "10.0.192.21"}, T0, builds={"stream-canary-1": "canary"})
    started = time.perf_counter()
    for second in range(50):
        b.tick(T0 + second / 1000)
        b.join(f"late-{second}", T0)
    assert time.perf_counter() - started < 1.0
    assert b.counts("main")["queued"] == 20_050 and b.counts("canary")["free"] == 1


def test_the_session_images_copies_of_shared_facts_match_the_platforms() -> None:
    """The session service's image cannot import the platform: its build label, build-name rule and default build
    are copies, held equal here."""
    from pixelstream.constants import BUILD_LABEL
    from pixelstream.workloads.pixel_streaming import config as streaming_config
    from pixelstream.workloads.pixel_streaming.session import app, broker, streams

    assert streams.BUILD_LABEL == BUILD_LABEL
    assert app._BUILD.pattern == streaming_config.BUILD_NAME.pattern
    assert broker.DEFAULT_BUILD == streaming_config.DEFAULT_BUILD


# -- outliving a restart of the service ---------------------------------------------------------------------------


def _restarted(old: Broker, now: float, **settings: float) -> Broker:
    """A new broker (the next instance of the service) from `old`'s snapshot, through JSON as the Secret keeps it."""
    new = broker(**settings)
    new.restore(json.loads(json.dumps(old.snapshot(now - 1))), now)
    return new


def test_a_restart_gives_each_player_its_stream_back_and_keeps_the_queue_in_order() -> None:
    old = broker(reconnect_seconds=20, claim_seconds=30)
    old.set_streams(STREAMS, T0)
    alice, bob = old.join("alice", T0), old.join("bob", T0 + 1)
    old.connect(alice.id, T0 + 2)
    carol, dave = old.join("carol", T0 + 3), old.join("dave", T0 + 4)
    new = _restarted(old, T0 + 100, reconnect_seconds=20, claim_seconds=30)
    # Connected before: its signalling closed with the old instance, so it has reconnect_seconds from the restore.
    assert new.status(alice.id, T0 + 100).state == State.RECONNECTING
    assert new.sessions[alice.id].deadline == T0 + 130 and new.sessions[bob.id].deadline == T0 + 130, "30 s at least"
    assert [new.status(s.id, T0 + 100).position for s in (carol, dave)] == [1, 2]
    new.set_streams(STREAMS, T0 + 101)
    assert new.connect(alice.id, T0 + 102).name == alice.stream and new.connect(bob.id, T0 + 102).name == bob.stream
    assert new.streams[alice.stream].session == alice.id and new.streams[bob.stream].session == bob.id
    assert new.cost_changes() == {alice.stream: BUSY, bob.stream: BUSY}
    assert new.status(carol.id, T0 + 102).state == State.QUEUED, "a held stream is never handed to the queue"
    assert new.join("alice", T0 + 103).id == alice.id, "an identity still holds its one session"


def test_a_restored_player_whose_stream_went_away_is_requeued_or_ended() -> None:
    old = broker()
    old.set_streams(STREAMS, T0)
    alice, bob = old.join("alice", T0), old.join("bob", T0 + 1)
    old.connect(alice.id, T0 + 2)
    new = _restarted(old, T0 + 50)
    new.set_streams({}, T0 + 51)  # both pods went while the service was away
    assert new.status(alice.id, T0 + 51) is not None and new.sessions[alice.id].ended_reason == "stream-ended"
    assert new.status(bob.id, T0 + 51).state == State.QUEUED and new.status(bob.id, T0 + 51).position == 1
    new.set_streams({"stream-c": "10.0.192.12"}, T0 + 52)
    assert new.sessions[bob.id].stream == "stream-c"


def test_a_restored_connected_player_keeps_a_terminating_stream_and_a_late_one_loses_it() -> None:
    old = broker(reconnect_seconds=20)
    old.set_streams(STREAMS, T0)
    alice = old.join("alice", T0)
    old.connect(alice.id, T0 + 1)
    new = _restarted(old, T0 + 10, reconnect_seconds=20)
    new.set_streams({}, T0 + 11, draining={alice.stream: STREAMS[alice.stream]})
    assert new.connect(alice.id, T0 + 12).draining, "its pod's preStop hook waits for this player"
    late = _restarted(old, T0 + 10, reconnect_seconds=20)
    late.tick(T0 + 41)
    late.set_streams(STREAMS, T0 + 42)
    assert late.sessions[alice.id].state == State.ENDED and late.streams[alice.stream].session is None


def test_a_restore_requeues_the_players_it_cannot_give_a_stream_in_the_order_they_were_served() -> None:
    old = broker()
    old.set_streams(STREAMS, T0)
    first, second = old.join("alice", T0), old.join("bob", T0 + 1)
    waiting = old.join("carol", T0 + 2)
    new = _restarted(old, T0 + 10)
    new.set_streams({}, T0 + 11)  # neither had connected; both streams went away
    assert list(new.queue) == [first.id, second.id, waiting.id]


def test_queued_players_count_their_idle_time_from_the_restore() -> None:
    """An outage longer than queue_idle_seconds is the service's, not the player's: the place is kept."""
    old = broker(queue_idle_seconds=90)
    alice = old.join("alice", T0)
    new = _restarted(old, T0 + 200, queue_idle_seconds=90)
    new.tick(T0 + 201)
    assert new.status(alice.id, T0 + 201).position == 1
    new.tick(T0 + 300)
    assert new.sessions[alice.id].ended_reason == "left-queue", "then idle as before"


def _snapshot(**changes: Any) -> dict[str, Any]:
    old = broker()
    old.set_streams(STREAMS, T0)
    old.join("alice", T0)
    old.join("bob", T0 + 1)
    old.join("carol", T0 + 2)
    data = json.loads(json.dumps(old.snapshot(T0 + 3)))
    for key, change in changes.items():
        data[key] = change(data[key])
    return data


def _first(change: dict[str, Any]) -> Any:
    return lambda sessions: [{**sessions[0], **change}, *sessions[1:]]


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"version": lambda _: 0}, "snapshot version"),
        ({"savedAt": lambda saved: saved - 3600}, "older than 600 s"),
        ({"sessions": _first({"deadline": "soon"})}, "deadline that is not a float"),
        ({"sessions": _first({"admin": True})}, "fields this broker writes"),
        ({"sessions": _first({"state": "owner"})}, "'owner' is not a valid State"),
        ({"queue": lambda queue: []}, "do not hold together"),
        ({"sessions": lambda s: [s[0], {**s[1], "stream": s[0]["stream"]}, *s[2:]]}, "do not hold together"),
        ({"assignments": lambda a: {"main": ["x"]}}, "not numbers"),
    ],
)
def test_a_snapshot_that_is_stale_or_does_not_hold_together_is_refused_and_takes_nothing(changes, words) -> None:
    new = broker()
    with pytest.raises(ValueError, match=words):
        new.restore(_snapshot(**changes), T0 + 10)
    assert (new.sessions, list(new.queue), new._by_identity) == ({}, [], {})


def test_the_untouched_snapshot_is_taken() -> None:
    new = broker()
    new.restore(_snapshot(), T0 + 10)
    assert len(new.sessions) == 3 and len(new.queue) == 1


def test_spent_launch_links_stay_spent_across_a_restart_and_expired_ones_are_dropped() -> None:
    old = SignedLinks("pixelstream", 300, secret="k" * 32)
    assert old.replays.take("link-1", T0 + 100, T0) and old.replays.take("link-2", T0 - 60, T0 - 200)
    kept = old.replays.snapshot(T0)
    assert len(kept) == 1 and "link-1" not in json.dumps(kept), "a digest, not the token id"
    new = SignedLinks("pixelstream", 300, secret="k" * 32)
    new.replays.restore(kept)
    assert new.replays.seen("link-1") and not new.replays.take("link-1", T0 + 100, T0 + 1)
    assert not new.replays.seen("link-2")


def _service_with_state(read: Any, written: list[bytes]) -> Any:
    from pixelstream.workloads.pixel_streaming.session.app import SessionService, Settings

    async def nothing(*_: object) -> None:
        return None

    async def write(state: bytes) -> None:
        written.append(state)

    return SessionService(
        Settings(),
        broker(),
        TurnPool(TurnSettings("s")),
        SignedLinks("pixelstream", 300, secret="k" * 32),
        *(nothing,) * 6,
        read_state=read,
        write_state=write,
        clock=lambda: T0,
    )


def test_a_state_that_cannot_be_fetched_stops_the_start_and_is_never_written_over() -> None:
    """The API away, a 5xx or a 403 at the start: the state may hold every player, so the service does not start
    empty and save an empty state over it; Kubernetes starts it again."""

    async def unreachable() -> bytes | None:
        raise TimeoutError("the API did not answer")

    written: list[bytes] = []
    service = _service_with_state(unreachable, written)
    service.broker.join("link:alice", T0)
    with pytest.raises(TimeoutError):
        asyncio.run(service.restore_state())
    asyncio.run(service.save_state())
    assert written == []


def test_an_absent_or_broken_state_starts_empty_and_is_then_written() -> None:
    async def absent() -> bytes | None:
        return None

    async def broken() -> bytes | None:
        return b"not zlib"

    for read in (absent, broken):
        written: list[bytes] = []
        service = _service_with_state(read, written)
        assert asyncio.run(service.restore_state()) is False and service.broker.sessions == {}
        service.broker.join("link:alice", T0)
        asyncio.run(service.save_state())
        assert len(written) == 1, read.__name__


def test_a_saved_state_comes_back_and_only_news_or_the_heartbeat_rewrite_it() -> None:
    from pixelstream.workloads.pixel_streaming.session.app import STATE_HEARTBEAT_SECONDS

    written: list[bytes] = []
    clock = [T0]
    old = _service_with_state(None, written)
    old.clock, old._state_read = (lambda: clock[0]), True
    alice = old.broker.join("link:alice", T0)
    asyncio.run(old.save_state())
    clock[0] += 1
    old.broker.status(alice.id, clock[0])  # a poll: when it last asked is not the state
    asyncio.run(old.save_state())
    assert len(written) == 1
    old.broker.join("link:bob", clock[0])
    asyncio.run(old.save_state())
    assert len(written) == 2, "news"
    clock[0] += STATE_HEARTBEAT_SECONDS
    asyncio.run(old.save_state())
    assert len(written) == 3, "a quiet state written again, so that it never looks stale"

    async def saved() -> bytes | None:
        return written[-1]

    new = _service_with_state(saved, [])
    new.clock = lambda: clock[0] + 5
    assert asyncio.run(new.restore_state()) is True and new.broker.status(alice.id, clock[0]).position == 1


def test_a_stopping_service_takes_no_new_signalling() -> None:
    """Once a graceful stop began, a page's signalling is told to come back (503), not let in to be cut."""
    from aiohttp.test_utils import make_mocked_request

    from pixelstream.workloads.pixel_streaming.session.app import COOKIE

    service = _service_with_state(None, [])
    alice = service.broker.join("link:alice", T0)
    request = make_mocked_request("GET", "/ws", headers={"Cookie": f"{COOKIE}={alice.id}"})
    service.stopping = True
    response = asyncio.run(service.signalling(request))
    assert (response.status, response.headers["Retry-After"]) == (503, "2")
    service.stopping = False
    assert asyncio.run(service.signalling(request)).status != 503, "the same request before the stop"
