"""Routing: what players reach through the ingress controller, all of it the session service's, each route with
the edge's limits per client address (the address the load balancer saw: its PROXY protocol header, which
ingress-nginx reads with `use-proxy-protocol`, never a header a client can set), behind the sign-in when
players sign in with OpenID Connect. The optional pod proxy sits behind basic auth on a route of its own.

| route | what | limits per client address |
|---|---|---|
| `<prefix>/` | the player page, its assets, `api/status` | requestsPerSecond |
| `<prefix>/api/session` | joining and leaving (a session is a claim on a GPU) | joinsPerMinute |
| `<prefix>/ws` | signalling, relayed to the player's stream | signallingPerMinute, signallingConnections |
| `<prefix>/oauth2/` | the sign-in pages (oidc only) | requestsPerSecond |

ingress-nginx annotations as its controller v1.15.1 parses them (internal/ingress/annotations/ratelimit,
authreq, auth): limit-rps, limit-rpm, limit-connections, limit-burst-multiplier; auth-url, auth-signin,
auth-response-headers; auth-type, auth-secret, auth-realm.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from ...constants import SESSION_SERVICE
from ..kubernetes import (
    basic_auth,
    disruption_budget,
    http_probe,
    image_pull_secrets,
    labels,
    pod_security_context,
    regex_ingress,
    resources,
)

POD_PROXY = "podproxy"
POD_PROXY_PORT = 8080
POD_PROXY_USER = "operator"
# A websocket lives as long as its session; a session's page requests are small.
SIGNALLING_TIMEOUT_SECONDS = 3600
MAX_REQUEST_BODY = "64k"


@dataclass
class EdgeLimits:
    requests_per_second: int = 20
    joins_per_minute: int = 10
    signalling_per_minute: int = 20
    signalling_connections: int = 10
    burst_multiplier: int = 3


@dataclass(kw_only=True)
class RoutingArgs:
    namespace: pulumi.Input[str]
    images: Mapping[str, str]
    """Image references by name: podproxy, when the pod proxy is on."""
    host: str | None = None
    """Public host name; with an issuer the Ingresses get a TLS certificate for it."""
    path_prefix: str = ""
    """Serve under this path (e.g. `/pixel`) to share a host with other apps."""
    cluster_issuer: str | None = None
    limits: EdgeLimits = field(default_factory=EdgeLimits)
    sign_in: Mapping[str, pulumi.Input[str]] | None = None
    """The sign-in's ingress annotations (SignIn.annotations) when players sign in with OpenID Connect."""
    sign_in_service: str | None = None
    pod_proxy_prefix: str | None = None
    """Enable the pod proxy under this path (e.g. `/proxy`), behind generated basic-auth credentials."""
    image_pull_secrets: Sequence[str] = field(default_factory=list)
    depends_on: Sequence[pulumi.Resource] = ()
    """What the Ingresses wait for: the ingress controller, whose admission webhook validates them."""


def _limits(*, rps: int = 0, rpm: int = 0, connections: int = 0, burst: int = 1) -> dict[str, str]:
    values = {"limit-rps": rps, "limit-rpm": rpm, "limit-connections": connections}
    annotations = {f"nginx.ingress.kubernetes.io/{k}": str(v) for k, v in values.items() if v}
    return {**annotations, "nginx.ingress.kubernetes.io/limit-burst-multiplier": str(burst)}


def route_annotations(limits: EdgeLimits) -> dict[str, dict[str, str]]:
    """Each player route's ingress-nginx annotations (without the sign-in's)."""
    burst = limits.burst_multiplier
    body = {"nginx.ingress.kubernetes.io/proxy-body-size": MAX_REQUEST_BODY}
    return {
        "page": {**body, **_limits(rps=limits.requests_per_second, burst=burst)},
        "join": {**body, **_limits(rpm=limits.joins_per_minute, burst=burst)},
        "signalling": {
            **body,
            **_limits(rpm=limits.signalling_per_minute, connections=limits.signalling_connections, burst=burst),
            "nginx.ingress.kubernetes.io/proxy-read-timeout": str(SIGNALLING_TIMEOUT_SECONDS),
            "nginx.ingress.kubernetes.io/proxy-send-timeout": str(SIGNALLING_TIMEOUT_SECONDS),
        },
    }


class Routing(pulumi.ComponentResource):
    """Outputs: `url`; `pod_proxy_username` and `pod_proxy_password` (secret) when the pod proxy is on."""

    url: str
    pod_proxy_username: pulumi.Output[str] | None
    pod_proxy_password: pulumi.Output[str] | None

    def __init__(self, name: str, args: RoutingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("pixelstream:index:Routing", name, None, opts)
        prefix = args.path_prefix
        sign_in = dict(args.sign_in or {})
        routes = {
            "pixelstream": ("page", f"{prefix}/(.*)"),
            "pixelstream-join": ("join", f"{prefix}/(api/session)$"),
            "pixelstream-signalling": ("signalling", f"{prefix}/(ws)$"),
        }
        annotations = route_annotations(args.limits)
        url = ""
        for ingress, (route, path) in routes.items():
            url = self._ingress(args, ingress, [(path, SESSION_SERVICE, 80)], {**annotations[route], **sign_in})
        if args.sign_in_service:
            # The sign-in pages, outside the sign-in, their path kept whole: oauth2-proxy serves them under its
            # proxy prefix (<prefix>/oauth2).
            keep_path = {"nginx.ingress.kubernetes.io/rewrite-target": f"{prefix}/$1"}
            route = [(f"{prefix}/(oauth2/.*)", args.sign_in_service, 80)]
            self._ingress(args, "pixelstream-sign-in", route, {**annotations["page"], **keep_path})
        self.pod_proxy_username = self.pod_proxy_password = None
        if args.pod_proxy_prefix:
            self._pod_proxy(args)
        self.url = f"{url}{prefix}/"
        self.register_outputs({"url": self.url})

    def _ingress(
        self, args: RoutingArgs, name: str, routes: list[tuple[str, str, int]], annotations: Mapping[str, Any]
    ) -> str:
        return regex_ingress(
            name,
            args.namespace,
            routes,
            annotations,
            args.host,
            args.cluster_issuer,
            pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )

    def _pod_proxy(self, args: RoutingArgs) -> None:
        """The reference's pod proxy (an operator's way to a pod's HTTP port, e.g. Unreal's REST API), behind
        ingress-nginx basic auth with a generated password."""
        child = pulumi.ResourceOptions(parent=self)
        ns = args.namespace
        auth = basic_auth(f"{self._name}-pod-proxy", "pod-proxy-auth", ns, POD_PROXY_USER, "auth", self)
        self.pod_proxy_username, self.pod_proxy_password = auth.username, auth.password
        proxy_labels = labels(POD_PROXY)
        k8s.apps.v1.Deployment(
            POD_PROXY,
            metadata={"name": POD_PROXY, "namespace": ns, "labels": proxy_labels},
            spec={
                "selector": {"matchLabels": proxy_labels},
                "template": {
                    "metadata": {"labels": proxy_labels},
                    "spec": {
                        "imagePullSecrets": image_pull_secrets(args.image_pull_secrets),
                        "automountServiceAccountToken": False,
                        "securityContext": pod_security_context(non_root=False),
                        "containers": [
                            {
                                "name": "proxy",
                                "image": args.images["podproxy"],
                                "env": [{"name": "NS_RESOLVER", "value": "kube-dns.kube-system.svc.cluster.local"}],
                                "ports": [{"name": "http", "containerPort": POD_PROXY_PORT}],
                                "readinessProbe": http_probe("/healthz", "http", period=10),
                                "livenessProbe": http_probe("/healthz", "http", period=20),
                                # The image renders its nginx config as root at start, then nginx drops to its
                                # own user: root is needed, nothing more.
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "capabilities": {"drop": ["ALL"], "add": ["CHOWN", "SETGID", "SETUID"]},
                                    "seccompProfile": {"type": "RuntimeDefault"},
                                },
                                "resources": resources("50m", "32Mi", "250m", "128Mi"),
                            }
                        ],
                    },
                },
            },
            opts=child,
        )
        k8s.core.v1.Service(
            POD_PROXY,
            metadata={"name": POD_PROXY, "namespace": ns, "labels": proxy_labels},
            spec={"selector": proxy_labels, "ports": [{"name": "http", "port": POD_PROXY_PORT, "targetPort": "http"}]},
            opts=child,
        )
        disruption_budget(POD_PROXY, ns, proxy_labels, self)
        self._ingress(
            args,
            "pixelstream-pod-proxy",
            [(f"{args.pod_proxy_prefix}/(.*)", POD_PROXY, POD_PROXY_PORT)],
            {
                "nginx.ingress.kubernetes.io/auth-type": "basic",
                "nginx.ingress.kubernetes.io/auth-secret": auth.secret_name,
                "nginx.ingress.kubernetes.io/auth-realm": "pixelstream pod proxy",
            },
        )
