"""A whole session end to end on loopback: Epic's frontend library in chromium signs in with a launch link, waits
its turn, gets its stream through the session service, and receives the stream's video over a real coturn
with the TURN credentials the service minted for its session (relay only, as every player is told).

The streamer is a second chromium page that speaks the streamer side of the signalling protocol (identify,
endpointId, an offer per playerConnected, ICE candidates) with a canvas as its video, to a stand-in signalling
server that behaves as Epic's (signalling_stand_in.py). coturn runs a configuration of its own (the stack's
denies the private addresses a test machine has, as it must) and relays to the streamer's host candidate on this
machine's own address, as a TURN node relays to a stream pod's.
"""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port
from session_edge import (
    TURN_SECRET,
    Edge,
    built_players,
    chromium_driver,
    launch_link,
    quit_driver,
    running_edge,
    wait_for,
)
from stun import TurnClient
from tools import require

pytestmark = pytest.mark.slow

# Chromium gathers no loopback candidates and hides host addresses behind mDNS names unless told otherwise; a
# stream pod's real signalling (Unreal) announces its pod address, which these flags let loopback stand in for.
LOOPBACK_WEBRTC = ("--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns")

STREAMER = """
const done = arguments[arguments.length - 1];
const socket = new WebSocket(arguments[0]);
const canvas = document.createElement('canvas');
canvas.width = 320; canvas.height = 240;
document.body.appendChild(canvas);
const paint = canvas.getContext('2d');
let frame = 0;
setInterval(() => { paint.fillStyle = `hsl(${frame++ % 360}, 80%, 50%)`; paint.fillRect(0, 0, 320, 240); }, 33);
const video = canvas.captureStream(30);
const peers = {};
window.peerStates = () => Object.values(peers).map((p) => p.iceConnectionState);
window.candidateTypes = () => Promise.all(Object.values(peers).map(async (p) => {
  const stats = [...(await p.getStats()).values()];
  const pair = stats.find((s) => s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded');
  return pair ? stats.find((s) => s.id === pair.remoteCandidateId).candidateType : null;
}));
socket.onopen = () => done('open');
socket.onmessage = async (event) => {
  const message = JSON.parse(event.data);
  const send = (m) => socket.send(JSON.stringify(m));
  if (message.type === 'identify') {
    send({type: 'endpointId', id: 'DefaultStreamer'});
  } else if (message.type === 'playerConnected') {
    const peer = new RTCPeerConnection({iceServers: []});
    peers[message.playerId] = peer;
    video.getTracks().forEach((track) => peer.addTrack(track, video));
    peer.createDataChannel('datachannel');
    peer.onicecandidate = (e) => {
      if (e.candidate) send({type: 'iceCandidate', playerId: message.playerId, candidate: e.candidate.toJSON()});
    };
    const offer = await peer.createOffer();
    await peer.setLocalDescription(offer);
    send({type: 'offer', playerId: message.playerId, sdp: offer.sdp});
  } else if (message.type === 'answer') {
    await peers[message.playerId].setRemoteDescription({type: 'answer', sdp: message.sdp});
  } else if (message.type === 'iceCandidate' && peers[message.playerId]) {
    await peers[message.playerId].addIceCandidate(message.candidate);
  }
};
"""


def host_address() -> str:
    """This machine's own address on its outbound interface (no packet is sent): where chromium's host candidates
    are, and so where the relay must send from."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))
        return probe.getsockname()[0]


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A coturn listening on loopback with the session service's TURN secret, relaying from this machine's own
    address to the streamer's host candidate there."""
    binary = require("turnserver", "coturn")
    port, relay = free_port(), free_port()
    config = tmp_path / "coturn.conf"
    config.write_text(
        "\n".join(
            [
                f"listening-port={port}",
                "listening-ip=127.0.0.1",
                f"relay-ip={host_address()}",
                f"min-port={relay}",
                f"max-port={relay + 40}",
                "realm=pixelstream",
                "use-auth-secret",
                f"static-auth-secret={TURN_SECRET}",
                "fingerprint",
                "no-tls",
                "no-dtls",
                "no-cli",
                "no-tcp-relay",
                "allow-loopback-peers",
                "log-file=stdout",
                "verbose",
                f"pidfile={tmp_path / 'coturn.pid'}",
                f"userdb={tmp_path / 'turndb'}",
            ]
        )
        + "\n"
    )
    log = tmp_path / "coturn.log"
    with log.open("w") as output:
        process = subprocess.Popen([binary, "-c", str(config)], stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            probe = TurnClient(("127.0.0.1", port), "probe", "probe")
            try:
                probe.socket.settimeout(0.3)
                probe.allocate()
                break
            except OSError:
                assert time.monotonic() < deadline and process.poll() is None, log.read_text()[-2000:]
                time.sleep(0.2)
            finally:
                probe.close()
        yield port, log
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def blank_page() -> Iterator[str]:
    """An empty page on loopback for the streamer to run in: a loopback origin may open websockets to other
    loopback addresses (chromium's local network access checks refuse that to about:blank)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<!doctype html><title>streamer</title><body></body>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.fixture
def edge(tmp_path: Path, coturn: tuple[int, Path]) -> Iterator[Edge]:
    port, _ = coturn
    player = built_players()
    with running_edge(tmp_path, turn_address="127.0.0.1", PLAYER_ROOT=str(player), TURN_PORT=str(port)) as running:
        yield running


def test_a_player_plays_its_stream_through_the_relay_with_its_sessions_credentials(
    edge: Edge, coturn: tuple[int, Path], blank_page: str, tmp_path: Path
) -> None:
    _, coturn_log = coturn
    pod = edge.add_stream("stream-a", streamers=0, listed=False)
    drivers: list[tuple[Any, Path]] = []
    try:
        streamer = chromium_driver(tmp_path / "streamer", *LOOPBACK_WEBRTC)
        drivers.append((streamer, tmp_path / "streamer"))
        streamer.get(blank_page)
        opened = streamer.execute_async_script(STREAMER, f"ws://{pod.address}:{pod.streamer_port}/")
        assert opened == "open"
        wait_for(lambda: [s.id for s in pod.server.streamers if s.streaming] == ["DefaultStreamer"], "the streamer")
        edge.list_stream("stream-a")

        player = chromium_driver(tmp_path / "player", *LOOPBACK_WEBRTC)
        drivers.append((player, tmp_path / "player"))
        player.get(f"{edge.url}/#launch={launch_link('alice')}")

        def state() -> str:
            return player.execute_script("return document.body.dataset.state")

        wait_for(lambda: state() in ("connected", "playing"), "the player's WebRTC connection", seconds=45)
        wait_for(
            lambda: player.execute_script("const v = document.querySelector('video'); return v && v.videoWidth") == 320,
            "the stream's frames in the player's video element",
            seconds=30,
        )
        assert streamer.execute_script("return window.peerStates()") in (["connected"], ["completed"])
        # The streamer saw the player only as a relayed candidate: the player spoke through coturn.
        # (The nominated pair shows in the stats a moment after the connection state: asked until it does.)
        candidates = "window.candidateTypes().then(arguments[arguments.length - 1])"
        wait_for(lambda: streamer.execute_async_script(candidates) != [None], "the nominated candidate pair")
        assert streamer.execute_async_script(candidates) == ["relay"]
        usernames = set(_usernames(coturn_log.read_text()))
        assert len(usernames) == 1, usernames
        [username] = usernames
        expiry, identity = username.split(":")
        assert 0 < int(expiry) - time.time() <= 300 and len(identity) == 20, "minutes, and the session's identity"
    finally:
        for driver, profile in drivers:
            quit_driver(driver, profile)


def _usernames(log: str) -> list[str]:
    """The TURN users coturn authenticated (its log: `session ...: new, realm=<...>, username=<user>`)."""
    return re.findall(r"username=<([^>]+)>", log)
