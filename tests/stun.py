"""A small TURN client (RFC 8489 STUN, RFC 8656 TURN, RFC 6062 TCP allocations) for tests: Allocate and
CreatePermission over UDP or TCP with long-term credentials, enough to see what a real coturn grants and
refuses."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import os
import socket
import ssl
import struct
import zlib
from dataclasses import dataclass, field

MAGIC_COOKIE = 0x2112A442
ALLOCATE, REFRESH, CREATE_PERMISSION = 0x003, 0x004, 0x008
SUCCESS, ERROR = 0x100, 0x110
USERNAME, MESSAGE_INTEGRITY, ERROR_CODE, LIFETIME, XOR_PEER_ADDRESS = 0x0006, 0x0008, 0x0009, 0x000D, 0x0012
REALM, NONCE, XOR_RELAYED_ADDRESS, REQUESTED_TRANSPORT = 0x0014, 0x0015, 0x0016, 0x0019
SOFTWARE, FINGERPRINT = 0x8022, 0x8028
UDP_TRANSPORT, TCP_TRANSPORT = 17, 6
HEADER = 20


@dataclass
class Response:
    success: bool
    error: int | None
    attributes: dict[int, bytes] = field(default_factory=dict)


def _attribute(kind: int, value: bytes) -> bytes:
    padding = (4 - len(value) % 4) % 4
    return struct.pack("!HH", kind, len(value)) + value + b"\0" * padding


def xor_address(address: str, port: int) -> bytes:
    packed = int(ipaddress.IPv4Address(address)) ^ MAGIC_COOKIE
    return struct.pack("!BBHI", 0, 1, port ^ (MAGIC_COOKIE >> 16), packed)


def encode(method: int, attributes: list[tuple[int, bytes]], key: bytes | None) -> tuple[bytes, bytes]:
    transaction = os.urandom(12)
    body = b"".join(_attribute(k, v) for k, v in attributes)

    def header(length: int) -> bytes:
        return struct.pack("!HHI", method, length, MAGIC_COOKIE) + transaction

    if key is not None:
        integrity = hmac.new(key, header(len(body) + 24) + body, hashlib.sha1).digest()
        body += _attribute(MESSAGE_INTEGRITY, integrity)
    crc = zlib.crc32(header(len(body) + 8) + body) ^ 0x5354554E
    body += _attribute(FINGERPRINT, struct.pack("!I", crc))
    return header(len(body)) + body, transaction


def decode(message: bytes, transaction: bytes) -> Response:
    kind, length, cookie = struct.unpack("!HHI", message[:8])
    if cookie != MAGIC_COOKIE or message[8:20] != transaction:
        raise ValueError("not the answer to this request")
    attributes: dict[int, bytes] = {}
    offset = 20
    while offset < 20 + length:
        attribute, size = struct.unpack("!HH", message[offset : offset + 4])
        attributes[attribute] = message[offset + 4 : offset + 4 + size]
        offset += 4 + size + (4 - size % 4) % 4
    error = None
    if ERROR_CODE in attributes:
        raw = attributes[ERROR_CODE]
        error = (raw[2] & 0x7) * 100 + raw[3]
    return Response(success=kind & 0x110 == SUCCESS, error=error, attributes=attributes)


class TurnClient:
    """One 5-tuple to a TURN server, as a browser would hold it: UDP, or TCP (`tcp=True`) as for
    `turn:...?transport=tcp` and RFC 6062 TCP allocations."""

    def __init__(
        self,
        server: tuple[str, int],
        username: str,
        password: str,
        tcp: bool = False,
        tls: ssl.SSLContext | None = None,
        server_name: str | None = None,
    ) -> None:
        self.server = server
        self.username = username
        self.password = password
        self.realm = b""
        self.nonce = b""
        self.tcp = tcp or tls is not None
        self.allocated = False
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM if self.tcp else socket.SOCK_DGRAM)
        self.socket.settimeout(3)
        if self.tcp:
            self.socket.connect(server)
        if tls is not None:
            # TURN over TLS (`turns:`): the server's certificate checked for `server_name`, as a browser checks it.
            self.socket = tls.wrap_socket(self.socket, server_hostname=server_name)

    def peer_certificate(self) -> dict:
        return self.socket.getpeercert()

    def close(self) -> None:
        """Releases this 5-tuple's allocation (a Refresh with lifetime 0, as a closing browser does), then the
        socket. Over UDP the server would keep the allocation for its lifetime, and a later client given the same
        ephemeral port would meet it (437, allocation mismatch); a TCP allocation goes with its connection."""
        if self.allocated and not self.tcp:
            with contextlib.suppress(OSError):
                self.refresh(0)
        self.socket.close()

    def _key(self) -> bytes:
        return hashlib.md5(f"{self.username}:{self.realm.decode()}:{self.password}".encode()).digest()

    def _exchange(self, method: int, attributes: list[tuple[int, bytes]], authenticated: bool) -> Response:
        if authenticated:
            attributes = [*attributes, (USERNAME, self.username.encode()), (REALM, self.realm), (NONCE, self.nonce)]
        message, transaction = encode(method, attributes, self._key() if authenticated else None)
        if self.tcp:
            self.socket.sendall(message)
            return self._answer(transaction)
        # Over UDP a client retransmits (RFC 8489 §6.2.1): a server may drop a request, e.g. when it rate-limits.
        timeout = self.socket.gettimeout() or 3.0
        for rto in (0.25, 0.5, 1.0, 2.0):
            self.socket.sendto(message, self.server)
            self.socket.settimeout(min(rto, timeout))
            try:
                return self._answer(transaction)
            except TimeoutError:
                continue
            finally:
                self.socket.settimeout(timeout)
        raise TimeoutError(f"no answer from {self.server} after 4 transmissions")

    def _answer(self, transaction: bytes) -> Response:
        while True:
            reply = self._receive()
            try:
                return decode(reply, transaction)
            except ValueError:
                continue

    def _receive(self) -> bytes:
        if not self.tcp:
            return self.socket.recvfrom(4096)[0]
        header = self._read_exactly(HEADER)
        return header + self._read_exactly(struct.unpack("!H", header[2:4])[0])

    def _read_exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.socket.recv(size - len(data))
            if not chunk:
                raise ConnectionError("the TURN server closed the connection")
            data += chunk
        return data

    def _request(self, method: int, attributes: list[tuple[int, bytes]]) -> Response:
        if not self.nonce:
            # The first, unauthenticated request is answered 401 with the realm and a nonce.
            challenge = self._exchange(method, attributes, authenticated=False)
            if challenge.error != 401:
                return challenge
            self.realm, self.nonce = challenge.attributes[REALM], challenge.attributes[NONCE]
        response = self._exchange(method, attributes, authenticated=True)
        if response.error == 438:  # stale nonce: retry once with the new one
            self.nonce = response.attributes[NONCE]
            response = self._exchange(method, attributes, authenticated=True)
        return response

    def allocate(self, transport: int = UDP_TRANSPORT) -> Response:
        response = self._request(ALLOCATE, [(REQUESTED_TRANSPORT, struct.pack("!B3x", transport))])
        self.allocated = self.allocated or response.success
        return response

    def refresh(self, lifetime: int = 600) -> Response:
        """Keeps the allocation of this 5-tuple for `lifetime` more seconds (0 releases it), as browsers do."""
        return self._request(REFRESH, [(LIFETIME, struct.pack("!I", lifetime))])

    def create_permission(self, peer: str) -> Response:
        return self._request(CREATE_PERMISSION, [(XOR_PEER_ADDRESS, xor_address(peer, 0))])
