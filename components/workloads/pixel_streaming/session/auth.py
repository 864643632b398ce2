"""Who a player is, before any GPU is handed out: one of three modes, each giving a stable identity string.

- `oidc`: the player signed in with the operator's OpenID Connect provider through oauth2-proxy; ingress-nginx
  asks oauth2-proxy about every request (external authentication) and passes its `Authorization: Bearer <ID
  token>` answer on. The token is verified here too (signature against the provider's keys, issuer, audience,
  expiry), so a request that reaches this service some other way cannot claim an identity with a header.
- `signedLinks`: the operator's portal signs a short-lived launch token (a JWT: HS256 with the secret this stack
  generates, or RS256/ES256 against the portal's JWKS URL) and sends the player to `<site>/#launch=<token>`.
  The token must carry `sub`, `aud`, `iat`, `exp` and `jti`, live at most `max_lifetime_seconds`, and is taken
  once: its `jti` is remembered until it expires (across restarts of the service too: the snapshot keeps the
  newest SNAPSHOT_TOKEN_IDS of them, by a digest), so a replayed link is refused.
- `none`: every browser is a player of its own (the plan warns; the policy pack refuses it in production).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import jwt

LEEWAY_SECONDS = 30
REQUIRED_LINK_CLAIMS = ["exp", "iat", "sub", "aud", "jti"]
ASYMMETRIC = ["RS256", "ES256"]
# Token ids a snapshot keeps (the newest to expire first): 96-bit digests, with their expiry, fit in a Secret
# beside the sessions (Kubernetes holds an object to 1 MiB).
SNAPSHOT_TOKEN_IDS = 10_000


def _digest(token_id: str) -> str:
    return hashlib.sha256(token_id.encode()).hexdigest()[:24]


def _key_set(url: str) -> jwt.PyJWKClient:
    """The signing keys at `url`, fetched when a token names a key id not seen yet and kept five minutes."""
    return jwt.PyJWKClient(url, cache_keys=True, lifespan=300, timeout=10)


class Refused(Exception):
    """The credential does not make an identity; the message says why, without echoing the credential."""


@dataclass
class ReplayCache:
    """Token ids taken, each until its token expires."""

    max_entries: int = 200_000
    _seen: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def seen(self, token_id: str) -> bool:
        with self._lock:
            return _digest(token_id) in self._seen

    def take(self, token_id: str, expires: float, now: float) -> bool:
        """True the first time `token_id` is presented, False on every replay."""
        key = _digest(token_id)
        with self._lock:
            if key in self._seen:
                return False
            if len(self._seen) >= self.max_entries:
                self._seen = {k: v for k, v in self._seen.items() if v + LEEWAY_SECONDS > now}
                if len(self._seen) >= self.max_entries:
                    raise Refused("too many launch links in flight; try again shortly")
            self._seen[key] = expires
            return True

    def snapshot(self, now: float) -> dict[str, float]:
        """The token ids (digests) not expired yet, the latest to expire first, at most SNAPSHOT_TOKEN_IDS."""
        with self._lock:
            live = sorted(((v, k) for k, v in self._seen.items() if v + LEEWAY_SECONDS > now), reverse=True)
        return {key: expires for expires, key in live[:SNAPSHOT_TOKEN_IDS]}

    def restore(self, taken: Mapping[str, float]) -> None:
        with self._lock:
            self._seen.update(taken)


@dataclass(frozen=True)
class Link:
    """A launch link that checked out, not spent yet."""

    identity: str
    token_id: str
    expires: float


@dataclass
class SignedLinks:
    audience: str
    max_lifetime_seconds: int
    secret: str | None = None
    """HS256 key; or None with `jwks_url` for RS256/ES256."""
    jwks_url: str | None = None
    issuer: str | None = None
    replays: ReplayCache = field(default_factory=ReplayCache)

    def __post_init__(self) -> None:
        if (self.secret is None) == (self.jwks_url is None):
            raise ValueError("signed links need either a shared secret (HS256) or a JWKS URL (RS256/ES256)")
        self._jwks = (
            jwt.PyJWKClient(self.jwks_url, cache_keys=True, lifespan=300, timeout=10) if self.jwks_url else None
        )

    def spend(self, link: Link, now: float) -> None:
        """Takes the link's token id, or refuses a link taken already."""
        if not self.replays.take(link.token_id, link.expires, now):
            raise Refused("the launch link was used already")

    def check(self, token: str, now: float | None = None) -> Link:
        """The player a link names, if the link is valid (its signature, audience, lifetime, not used yet)."""
        now = time.time() if now is None else now
        try:
            if self._jwks is not None:
                key, algorithms = self._jwks.get_signing_key_from_jwt(token).key, ASYMMETRIC
            else:
                key, algorithms = self.secret, ["HS256"]
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": REQUIRED_LINK_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise Refused("the launch link has expired") from None
        except jwt.PyJWTError as error:
            raise Refused(f"the launch link is not valid: {type(error).__name__}") from None
        if not isinstance(claims["jti"], str) or not claims["jti"]:
            raise Refused("the launch link has no token id (jti)")
        if claims["exp"] - claims["iat"] > self.max_lifetime_seconds:
            raise Refused(f"the launch link lives longer than {self.max_lifetime_seconds} seconds")
        if claims["iat"] > now + LEEWAY_SECONDS:
            raise Refused("the launch link was issued in the future")
        if self.replays.seen(claims["jti"]):
            raise Refused("the launch link was used already")
        return Link(f"link:{claims['sub']}", claims["jti"], float(claims["exp"]))


@dataclass
class OpenIdConnect:
    issuer: str
    client_id: str
    jwks_url: str

    def __post_init__(self) -> None:
        self._jwks = _key_set(self.jwks_url)

    def identity(self, authorization: str | None) -> str:
        if not authorization or not authorization.startswith("Bearer "):
            raise Refused("not signed in")
        token = authorization.removeprefix("Bearer ").strip()
        try:
            key = self._jwks.get_signing_key_from_jwt(token).key
            claims = jwt.decode(
                token,
                key,
                algorithms=ASYMMETRIC,
                audience=self.client_id,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            )
        except jwt.PyJWTError as error:
            raise Refused(f"the sign-in token is not valid: {type(error).__name__}") from None
        return f"oidc:{claims['sub']}"
