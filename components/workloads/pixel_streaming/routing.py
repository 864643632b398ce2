"""Routing: the Ingress players reach, the Traefik router behind it (player pages, matchmaker websocket) and
the optional pod proxy behind generated basic-auth credentials."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from ...addons.charts import PART_OF
from ..kubernetes import (
    basic_auth,
    disruption_budget,
    http_probe,
    image_pull_secrets,
    labels,
    pod_security_context,
    regex_ingress,
    resources,
    security_context,
)
from .streaming import MATCHMAKER, PLAYER, SIGNAL_HTTP_PORT

ROUTER = "router"
POD_PROXY = "podproxy"
ROUTER_HTTP_PORT = 8888
ROUTER_ADMIN_PORT = 8080
POD_PROXY_PORT = 8080
POD_PROXY_USER = "operator"


def router_rules(proxy_prefix: str | None) -> dict[str, Any]:
    """Traefik's dynamic configuration: pages to the player, the websocket to the matchmaker with a sticky
    cookie, and (when enabled) the pod proxy behind basic auth."""
    config: dict[str, Any] = {
        "http": {
            "middlewares": {"strip-matchmaker": {"stripPrefix": {"prefixes": ["/ws", "/matchmaker"]}}},
            "routers": {
                "client": {
                    "rule": "Method(`GET`) && PathPrefix(`/`)",
                    "service": "client",
                    "entryPoints": ["http"],
                    "priority": 1,
                },
                "matchmaker": {
                    "rule": "PathPrefix(`/ws`) || PathPrefix(`/matchmaker`)",
                    "service": "matchmaker",
                    "middlewares": ["strip-matchmaker"],
                    "entryPoints": ["http"],
                },
            },
            "services": {
                "client": {"loadBalancer": {"servers": [{"url": f"http://{PLAYER}:80"}]}},
                "matchmaker": {
                    "loadBalancer": {
                        "sticky": {"cookie": {"secure": True, "httpOnly": True}},
                        "servers": [{"url": f"http://{MATCHMAKER}:{SIGNAL_HTTP_PORT}"}],
                    }
                },
            },
        }
    }
    if proxy_prefix:
        http = config["http"]
        http["middlewares"]["strip-proxy"] = {"stripPrefix": {"prefixes": [proxy_prefix]}}
        http["middlewares"]["proxy-auth"] = {"basicAuth": {"usersFile": "/auth/users"}}
        http["routers"]["pod-proxy"] = {
            "rule": f"PathPrefix(`{proxy_prefix}/`)",
            "service": "pod-proxy",
            "middlewares": ["proxy-auth", "strip-proxy"],
            "entryPoints": ["http"],
        }
        http["services"]["pod-proxy"] = {"loadBalancer": {"servers": [{"url": f"http://{POD_PROXY}:{POD_PROXY_PORT}"}]}}
    return config


@dataclass(kw_only=True)
class RoutingArgs:
    namespace: pulumi.Input[str]
    images: dict[str, str]
    """Image references by name: traefik, and podproxy when the pod proxy is on."""
    host: str | None = None
    """Public host name; with an issuer the Ingress gets a TLS certificate for it."""
    path_prefix: str = ""
    """Serve under this path (e.g. `/pixel`) to share a host with other apps."""
    cluster_issuer: str | None = None
    pod_proxy_prefix: str | None = None
    """Enable the pod proxy under this path (e.g. `/proxy`), behind generated basic-auth credentials."""
    image_pull_secrets: Sequence[str] = field(default_factory=list)
    depends_on: Sequence[pulumi.Resource] = ()
    """What the Ingress waits for: the ingress controller, whose admission webhook validates it."""


class Routing(pulumi.ComponentResource):
    """Outputs: `url`; `pod_proxy_username` and `pod_proxy_password` (secret) when the pod proxy is on."""

    url: str
    pod_proxy_username: pulumi.Output[str] | None
    pod_proxy_password: pulumi.Output[str] | None

    def __init__(self, name: str, args: RoutingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("pixelstream:index:Routing", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        ns = args.namespace
        pull_secrets = image_pull_secrets(args.image_pull_secrets)
        router_config = k8s.core.v1.ConfigMap(
            "router-config",
            metadata={"name": "router-config", "namespace": ns, "labels": PART_OF},
            data={"routes.yml": yaml.safe_dump(router_rules(args.pod_proxy_prefix), sort_keys=False)},
            opts=child,
        )
        volumes: list[dict[str, Any]] = [{"name": "config", "configMap": {"name": router_config.metadata["name"]}}]
        mounts: list[dict[str, Any]] = [{"name": "config", "mountPath": "/config", "readOnly": True}]
        self.pod_proxy_username = self.pod_proxy_password = None
        if args.pod_proxy_prefix:
            auth = basic_auth(f"{name}-pod-proxy", "pod-proxy-auth", ns, POD_PROXY_USER, "users", self)
            volumes.append({"name": "auth", "secret": {"secretName": auth.secret_name}})
            mounts.append({"name": "auth", "mountPath": "/auth", "readOnly": True})
            self.pod_proxy_username = auth.username
            self.pod_proxy_password = auth.password
            self._pod_proxy(args, pull_secrets)
        self._router(args, pull_secrets, volumes, mounts)
        self.url = f"{self._ingress(args)}{args.path_prefix}/"
        self.register_outputs({"url": self.url})

    def _router(self, args: RoutingArgs, pull_secrets: list, volumes: list, mounts: list) -> None:
        """Traefik with the routes, behind a Service, scaled on CPU."""
        child = pulumi.ResourceOptions(parent=self)
        ns = args.namespace
        router_labels = labels(ROUTER)
        router = k8s.apps.v1.Deployment(
            ROUTER,
            metadata={"name": ROUTER, "namespace": ns, "labels": router_labels},
            spec={
                "selector": {"matchLabels": router_labels},
                "template": {
                    "metadata": {
                        "labels": router_labels,
                        "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": str(ROUTER_ADMIN_PORT)},
                    },
                    "spec": {
                        "imagePullSecrets": pull_secrets,
                        "automountServiceAccountToken": False,
                        "securityContext": pod_security_context(),
                        "containers": [_traefik_container(args.images["traefik"], mounts)],
                        "volumes": volumes,
                    },
                },
            },
            opts=child,
        )
        k8s.core.v1.Service(
            ROUTER,
            metadata={"name": ROUTER, "namespace": ns, "labels": router_labels},
            spec={"selector": router_labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
            opts=child,
        )
        self._cpu_autoscaler(ROUTER, router.metadata["name"], ns)
        disruption_budget(ROUTER, ns, router_labels, self)

    def _ingress(self, args: RoutingArgs) -> str:
        """The Ingress players reach: everything under the prefix to the router, TLS when there is a host."""
        annotations = {
            # Players keep the ingress replica that holds their websocket.
            "nginx.ingress.kubernetes.io/affinity": "cookie",
            "nginx.ingress.kubernetes.io/session-cookie-name": "pxstream-ingress",
            "nginx.ingress.kubernetes.io/proxy-read-timeout": "3600",
            "nginx.ingress.kubernetes.io/proxy-send-timeout": "3600",
        }
        return regex_ingress(
            "pixelstream",
            args.namespace,
            [(f"{args.path_prefix}/(.*)", ROUTER, 80)],
            annotations,
            args.host,
            args.cluster_issuer,
            pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )

    def _pod_proxy(self, args: RoutingArgs, pull_secrets: list) -> None:
        child = pulumi.ResourceOptions(parent=self)
        ns = args.namespace
        proxy_labels = labels(POD_PROXY)
        proxy = k8s.apps.v1.Deployment(
            POD_PROXY,
            metadata={"name": POD_PROXY, "namespace": ns, "labels": proxy_labels},
            spec={
                "selector": {"matchLabels": proxy_labels},
                "template": {
                    "metadata": {"labels": proxy_labels},
                    "spec": {
                        "imagePullSecrets": pull_secrets,
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
        self._cpu_autoscaler(POD_PROXY, proxy.metadata["name"], ns)

    def _cpu_autoscaler(self, name: str, deployment: pulumi.Input[str], namespace: pulumi.Input[str]) -> None:
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-autoscaler",
            metadata={"name": f"{name}-autoscaler", "namespace": namespace, "labels": labels(f"{name}-autoscaler")},
            spec={
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
                "minReplicas": 1,
                "maxReplicas": 10,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}},
                    }
                ],
            },
            opts=pulumi.ResourceOptions(parent=self),
        )


def _traefik_container(image: str, mounts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": "traefik",
        "image": image,
        "args": [
            f"--entrypoints.http.address=:{ROUTER_HTTP_PORT}",
            f"--entrypoints.traefik.address=:{ROUTER_ADMIN_PORT}",
            "--ping=true",
            # Dashboard and metrics only on the internal entrypoint (port-forward to see it).
            "--api.dashboard=true",
            "--api.insecure=true",
            "--metrics.prometheus=true",
            "--metrics.prometheus.entrypoint=traefik",
            "--providers.file.directory=/config",
            "--accesslog=true",
            "--global.checknewversion=false",
            "--global.sendanonymoususage=false",
        ],
        "ports": [
            {"name": "http", "containerPort": ROUTER_HTTP_PORT},
            {"name": "admin", "containerPort": ROUTER_ADMIN_PORT},
        ],
        "readinessProbe": http_probe("/ping", "admin", period=10),
        "livenessProbe": http_probe("/ping", "admin", period=20),
        "volumeMounts": mounts,
        "securityContext": security_context(65532),
        "resources": resources("100m", "64Mi", "1", "256Mi"),
    }
