"""SignIn: players sign in with the operator's OpenID Connect provider through oauth2-proxy, which ingress-nginx
asks about every request to the player site (its external authentication: `auth-url`), and which answers with
the player's ID token (`--set-authorization-header`: `Authorization: Bearer <id_token>`,
pkg/apis/options/legacy_options.go at oauth2-proxy v7.15.3). The session service verifies that token itself.

oauth2-proxy keeps the sign-in in an encrypted cookie (no Redis); its secrets (the client secret from the stack's
secret config, a generated cookie secret) reach it through a Kubernetes Secret, never through the chart values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from ...addons.charts import CHARTS, PART_OF, Chart, ReleaseArgs, release
from .sessions import OidcSettings

OAUTH2_PROXY = "oauth2-proxy"
SIGN_IN_SECRET = "oauth2-proxy-credentials"
# What the sign-in cookie lasts, and how often oauth2-proxy refreshes the session (and so the ID token the
# session service checks) with the provider: below the usual one-hour lifetime of an ID token.
COOKIE_EXPIRE = "12h"
COOKIE_REFRESH = "50m"


@dataclass(kw_only=True)
class SignInArgs(ReleaseArgs):
    namespace: k8s.core.v1.Namespace
    oidc: OidcSettings
    host: str
    path_prefix: str = ""
    image: str
    image_pull_secrets: Sequence[str] = field(default_factory=list)
    chart: Chart = CHARTS[OAUTH2_PROXY]


def image_values(reference: str) -> dict[str, str]:
    """The chart's `image` values for a `registry/repository:tag` reference."""
    name, tag = reference.rsplit(":", 1)
    registry, repository = name.split("/", 1)
    return {"registry": registry, "repository": repository, "tag": tag}


def oauth2_proxy_values(args: SignInArgs) -> dict[str, Any]:
    prefix, oidc = f"{args.path_prefix}/oauth2", args.oidc
    extra_args: dict[str, str] = {
        "provider": "oidc",
        "oidc-issuer-url": oidc.issuer_url,
        "scope": " ".join(oidc.scopes),
        "code-challenge-method": "S256",
        "set-authorization-header": "true",
        "set-xauthrequest": "true",
        # Behind ingress-nginx: the host and scheme of the redirect come from its X-Forwarded headers.
        "reverse-proxy": "true",
        "skip-provider-button": "true",
        "proxy-prefix": prefix,
        "redirect-url": f"https://{args.host}{prefix}/callback",
        "whitelist-domain": args.host,
        "cookie-secure": "true",
        "cookie-samesite": "lax",
        "cookie-expire": COOKIE_EXPIRE,
        "cookie-refresh": COOKIE_REFRESH,
        "silence-ping-logging": "true",
    }
    if oidc.allowed_groups:
        extra_args["allowed-group"] = ",".join(oidc.allowed_groups)
    if oidc.token_issuer:
        # The provider's discovery document names another issuer than its URL, which oauth2-proxy would refuse; the
        # session service still checks every ID token's `iss` against the token issuer (and its signature).
        extra_args["insecure-oidc-skip-issuer-verification"] = "true"
    return {
        "image": image_values(args.image),
        "imagePullSecrets": [{"name": name} for name in args.image_pull_secrets],
        "config": {
            "existingSecret": SIGN_IN_SECRET,
            "cookieName": "_pixelstream_sign_in",
            "emailDomains": list(oidc.email_domains),
            # Authentication only: ingress-nginx asks /oauth2/auth; nothing is proxied through it.
            "upstreams": ["static://202"],
        },
        "extraArgs": extra_args,
        "replicaCount": 2,
        "podDisruptionBudget": {"enabled": True, "minAvailable": 1},
        "serviceAccount": {"automountServiceAccountToken": False},
        # Only for Redis sessions, and it would pull alpine:latest.
        "initContainers": {"waitForRedis": {"enabled": False}},
        "redis-ha": {"enabled": False},
        "nodeSelector": args.nodes.node_selector(),
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "128Mi"}},
    }


class SignIn(pulumi.ComponentResource):
    """Outputs: `annotations`, the ingress-nginx annotations that put a player site behind the sign-in, and
    `service` (oauth2-proxy's Service, port 80) for the sign-in pages' own route."""

    annotations: dict[str, pulumi.Input[str]]
    service: str

    def __init__(self, name: str, args: SignInArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("pixelstream:index:SignIn", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        cookie_secret = random.RandomPassword(f"{name}-cookie-secret", length=32, special=False, opts=child)
        ns_name = args.namespace.metadata["name"]
        credentials = k8s.core.v1.Secret(
            SIGN_IN_SECRET,
            metadata={"name": SIGN_IN_SECRET, "namespace": ns_name, "labels": PART_OF},
            string_data={
                "client-id": args.oidc.client_id,
                "client-secret": pulumi.Output.secret(args.oidc.client_secret),
                "cookie-secret": pulumi.Output.secret(cookie_secret.result),
            },
            opts=child,
        )
        release(self, args, args.namespace, oauth2_proxy_values(args), depends_on=[credentials])
        prefix = f"{args.path_prefix}/oauth2"
        self.annotations = {
            "nginx.ingress.kubernetes.io/auth-url": pulumi.Output.concat(
                f"http://{OAUTH2_PROXY}.", ns_name, f".svc.cluster.local{prefix}/auth"
            ),
            "nginx.ingress.kubernetes.io/auth-signin": f"https://$host{prefix}/start?rd=$escaped_request_uri",
            "nginx.ingress.kubernetes.io/auth-response-headers": "Authorization",
        }
        self.service = OAUTH2_PROXY
        self.register_outputs({"service": OAUTH2_PROXY})
