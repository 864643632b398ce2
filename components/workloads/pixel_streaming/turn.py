"""Turn: coturn on every TURN node (host network, per-session credentials, no relaying into private
networks) and the ICE config service that hands browsers and streamers their TURN servers."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from ...addons.charts import PART_OF
from ...constants import (
    COTURN_CONTAINER,
    ICE_CONFIG_SERVICE,
    TURN_DAEMONSET,
    TURN_LISTENING_PORT,
    TURN_METRICS_PORT,
)
from ...placement import TURN_NODES, NodePlacement
from ..kubernetes import (
    api_access_mount,
    api_access_volume,
    disruption_budget,
    helper_command,
    helpers_config_map,
    helpers_mount,
    helpers_volume,
    http_probe,
    image_pull_secrets,
    labels,
    pod_security_context,
    resources,
    security_context,
)

ICE_CONFIG_PORT = 8080
NOBODY = 65534

# Special-purpose and private IPv4/IPv6 ranges a relay must never reach (streaming-peers §3.1): cloud
# metadata (169.254.169.254), private networks, loopback, CGNAT, documentation, multicast; and the IPv6 forms
# that embed IPv4 addresses (IPv4-mapped, NAT64, 6to4, Teredo), which older coturn let past its IPv4 denials
# (CVE-2026-27624). The relay is IPv4 only today; these keep it closed when IPv6 is turned on. Not `::`: coturn
# reads the unspecified address as "any" and would deny every peer (and refuses it as a peer on its own).
DENIED_PEER_CIDRS = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::1/128",
    "::ffff:0:0/96",
    "64:ff9b::/96",
    "64:ff9b:1::/48",
    "100::/64",
    "2001::/23",
    "2001:db8::/32",
    "2002::/16",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
)
# Ranges no media path may ever open, whatever the configuration.
NEVER_PEERS = ("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "::1/128", "::ffff:0:0/96")

# This workload's helper programs (run by the pinned Python image from a ConfigMap).
HELPERS = Path(__file__).parent / "app"


def peer_range(cidr: str) -> str:
    """A CIDR in coturn's `first-last` form."""
    network = ipaddress.ip_network(cidr)
    return f"{network[0]}-{network[-1]}"


@dataclass
class TurnServerSettings:
    relay_ports: tuple[int, int]
    """From the network config: the same range the TURN NSG opens (UDP)."""
    media_peer_cidrs: Sequence[str]
    """The only addresses relayed media may reach: the stream pods' subnet."""
    private_cidrs: Sequence[str] = ()
    """The platform's own networks (VCN, services CIDR, pod overlay), denied even where they are not private."""
    realm: str = "pixelstream"
    user_quota: int = 10
    """Allocations per TURN user; the ICE config service makes that one stream pod (or one player connection)."""
    total_quota: int = 1000
    """Allocations per TURN server."""
    max_bytes_per_second: int = 6_250_000
    """Per session: 50 Mbit/s, above Pixel Streaming's usual encoder ceiling."""
    capacity_bytes_per_second: int = 250_000_000
    """Per TURN server: 2 Gbit/s, the bandwidth of the default TURN shape; every session reserves its
    `max_bytes_per_second` from it, so it bounds concurrent sessions per node."""

    def __post_init__(self) -> None:
        for cidr in self.media_peer_cidrs:
            network = ipaddress.ip_network(cidr)
            for never in NEVER_PEERS:
                if network.version == ipaddress.ip_network(never).version and network.overlaps(
                    ipaddress.ip_network(never)
                ):
                    raise ValueError(f"media peer range {cidr} overlaps {never}, which the relay must never reach")


def turnserver_conf(settings: TurnServerSettings) -> str:
    """coturn's configuration, without the per-node lines the bootstrap adds (addresses, secret)."""
    lines = [
        f"listening-port={TURN_LISTENING_PORT}",
        f"min-port={settings.relay_ports[0]}",
        f"max-port={settings.relay_ports[1]}",
        f"realm={settings.realm}",
        "use-auth-secret",
        "fingerprint",
        # Plain TURN only (the CLI and DTLS are off unless asked for since coturn 4.9).
        "no-tls",
        # Media is UDP: no RFC 6062 TCP relay, which would let a player open TCP connections to the peers.
        "no-tcp-relay",
        "no-multicast-peers",
        "no-rfc5780",
        # At most 10 401 answers a second to one source address: no reflection amplifier for spoofed requests.
        "unauthorized-ratelimit",
        # Off by default since coturn 4.17 (and deprecated there); kept so older images stay quiet too.
        "no-software-attribute",
        "stale-nonce=600",
        f"user-quota={settings.user_quota}",
        f"total-quota={settings.total_quota}",
        f"max-bps={settings.max_bytes_per_second}",
        f"bps-capacity={settings.capacity_bytes_per_second}",
        "log-file=stdout",
        "pidfile=/var/tmp/turnserver.pid",
        "userdb=/var/lib/coturn/turndb",
        "prometheus",
        f"prometheus-port={TURN_METRICS_PORT}",
    ]
    denied = dict.fromkeys([*DENIED_PEER_CIDRS, *settings.private_cidrs])
    lines += [f"denied-peer-ip={peer_range(cidr)}" for cidr in denied]
    # An address both allowed and denied is allowed: this carves the media path out of the denied ranges.
    lines += [f"allowed-peer-ip={peer_range(cidr)}" for cidr in settings.media_peer_cidrs]
    return "\n".join(lines) + "\n"


@dataclass(kw_only=True)
class TurnArgs:
    namespace: pulumi.Input[str]
    server: TurnServerSettings
    coturn_image: str
    python_image: str
    credential_ttl_seconds: int = 3600
    credentials_per_minute: int = 30
    """TURN credentials the ICE config service hands one caller (a signalling server) per minute."""
    ice_config_replicas: int = 2
    image_pull_secrets: Sequence[str] = field(default_factory=list)
    depends_on: Sequence[pulumi.Resource] = ()
    """What the DaemonSet waits for: the TURN node pool."""
    nodes: NodePlacement = TURN_NODES
    """The TURN nodes (public IPs): coturn runs on each, the ICE config service hands out their addresses."""


class Turn(pulumi.ComponentResource):
    """Outputs: `ice_config_url` (what the signalling server fetches), `secret_name`."""

    ice_config_url: str
    secret_name: str

    def __init__(self, name: str, args: TurnArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("pixelstream:index:Turn", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        ns = args.namespace
        auth_secret = random.RandomPassword(f"{name}-auth-secret", length=48, special=False, opts=child)
        secret = k8s.core.v1.Secret(
            AUTH_SECRET,
            metadata={"name": AUTH_SECRET, "namespace": ns, "labels": PART_OF},
            string_data={AUTH_SECRET_KEY: pulumi.Output.secret(auth_secret.result)},
            opts=child,
        )
        config = k8s.core.v1.ConfigMap(
            "coturn",
            metadata={"name": "coturn", "namespace": ns, "labels": PART_OF},
            data={"turnserver.conf": turnserver_conf(args.server)},
            opts=child,
        )
        programs = [HELPERS / "turn_bootstrap.py", HELPERS / "ice_config.py"]
        helpers = helpers_config_map("turn-helpers", ns, programs, self)
        volumes = _Volumes(helpers_volume(helpers), _secret_volume(secret), config.metadata["name"])
        self._daemonset(args, volumes)
        self._ice_config(args, volumes)
        self.ice_config_url = f"http://{ICE_CONFIG_SERVICE}"
        self.secret_name = AUTH_SECRET
        self.register_outputs({"ice_config_url": self.ice_config_url})

    def _daemonset(self, args: TurnArgs, volumes: _Volumes) -> None:
        """coturn on every TURN node, on the host network, its config completed by the bootstrap."""
        ns = args.namespace
        account = self._node_reader("turn", ns, ["get"], "the TURN bootstrap reads its own node's addresses")
        turn_labels = labels(TURN_DAEMONSET)
        k8s.apps.v1.DaemonSet(
            TURN_DAEMONSET,
            metadata={"name": TURN_DAEMONSET, "namespace": ns, "labels": turn_labels},
            spec={
                "selector": {"matchLabels": turn_labels},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
                "template": {
                    "metadata": {
                        "labels": turn_labels,
                        "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": str(TURN_METRICS_PORT)},
                    },
                    "spec": {
                        # Relay ports are a whole range on the node's own addresses: only host networking works.
                        "hostNetwork": True,
                        "dnsPolicy": "ClusterFirstWithHostNet",
                        "serviceAccountName": account,
                        # Only the bootstrap reads the API; coturn, facing the internet, holds no token.
                        "automountServiceAccountToken": False,
                        "imagePullSecrets": image_pull_secrets(args.image_pull_secrets),
                        "affinity": args.nodes.required_affinity(),
                        "tolerations": args.nodes.tolerations(),
                        "terminationGracePeriodSeconds": 30,
                        "securityContext": pod_security_context(fs_group=NOBODY),
                        "initContainers": [_bootstrap_container(args.python_image)],
                        "containers": [_coturn_container(args.coturn_image)],
                        "volumes": [
                            volumes.helpers,
                            api_access_volume(),
                            volumes.secret,
                            {"name": "template", "configMap": {"name": volumes.template}},
                            # Holds the rendered config with the shared secret: memory only.
                            {"name": "runtime", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
                            {"name": "state", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
                            {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
                        ],
                    },
                },
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )

    def _ice_config(self, args: TurnArgs, volumes: _Volumes) -> None:
        """The ICE config service: a Deployment behind a Service, with a disruption budget."""
        child = pulumi.ResourceOptions(parent=self)
        ns = args.namespace
        account = self._node_reader(
            ICE_CONFIG_SERVICE, ns, ["list"], "the ICE config service lists the TURN nodes and their public IPs"
        )
        ice_labels = labels(ICE_CONFIG_SERVICE)
        k8s.apps.v1.Deployment(
            ICE_CONFIG_SERVICE,
            metadata={"name": ICE_CONFIG_SERVICE, "namespace": ns, "labels": ice_labels},
            spec={
                "replicas": args.ice_config_replicas,
                "selector": {"matchLabels": ice_labels},
                "template": {
                    "metadata": {"labels": ice_labels},
                    "spec": {
                        "serviceAccountName": account,
                        "automountServiceAccountToken": False,
                        "securityContext": pod_security_context(fs_group=NOBODY),
                        "imagePullSecrets": image_pull_secrets(args.image_pull_secrets),
                        "containers": [_ice_config_container(args)],
                        "volumes": [volumes.helpers, volumes.secret, api_access_volume()],
                    },
                },
            },
            opts=child,
        )
        k8s.core.v1.Service(
            ICE_CONFIG_SERVICE,
            metadata={"name": ICE_CONFIG_SERVICE, "namespace": ns, "labels": ice_labels},
            spec={"selector": ice_labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
            opts=child,
        )
        disruption_budget(ICE_CONFIG_SERVICE, ns, ice_labels, self)

    def _node_reader(self, name: str, namespace: pulumi.Input[str], verbs: list[str], why: str) -> pulumi.Output[str]:
        """A service account in the app namespace with read-only access to Node objects (nodes are cluster-scoped,
        hence a ClusterRole); returns the account's name."""
        child = pulumi.ResourceOptions(parent=self)
        account = k8s.core.v1.ServiceAccount(
            name, metadata={"name": name, "namespace": namespace, "labels": PART_OF}, opts=child
        )
        role_name = pulumi.Output.concat("pixelstream-", namespace, f"-{name}-nodes")
        role = k8s.rbac.v1.ClusterRole(
            f"{name}-nodes",
            metadata={"name": role_name, "labels": PART_OF, "annotations": {"pixelstream/why": why}},
            rules=[{"apiGroups": [""], "resources": ["nodes"], "verbs": verbs}],
            opts=child,
        )
        k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-nodes",
            metadata={"name": role_name, "labels": PART_OF},
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role.metadata["name"]},
            subjects=[{"kind": "ServiceAccount", "name": account.metadata["name"], "namespace": namespace}],
            opts=child,
        )
        return account.metadata["name"]


# The shared secret reaches the programs as a file (not an environment variable, which /proc shows).
AUTH_SECRET = "turn-auth"
AUTH_SECRET_KEY = "static-auth-secret"
_SECRET_DIR = "/secrets/turn"
_SECRET_ENV = {"name": "TURN_SECRET_FILE", "value": f"{_SECRET_DIR}/{AUTH_SECRET_KEY}"}
_SECRET_MOUNT = {"name": AUTH_SECRET, "mountPath": _SECRET_DIR, "readOnly": True}


@dataclass
class _Volumes:
    """The volumes the TURN pods share: the helper programs, the shared secret, coturn's config template."""

    helpers: dict[str, Any]
    secret: dict[str, Any]
    template: pulumi.Input[str]


def _secret_volume(secret: k8s.core.v1.Secret) -> dict[str, Any]:
    return {"name": AUTH_SECRET, "secret": {"secretName": secret.metadata["name"], "defaultMode": 0o440}}


def _pull_secrets(args: TurnArgs) -> list[dict[str, str]]:
    return image_pull_secrets(args.image_pull_secrets)


def _bootstrap_container(python_image: str) -> dict[str, Any]:
    return {
        "name": "bootstrap",
        "image": python_image,
        "command": helper_command("turn_bootstrap.py"),
        "env": [
            {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            _SECRET_ENV,
            {"name": "TEMPLATE", "value": "/template/turnserver.conf"},
            {"name": "OUTPUT", "value": "/run/coturn/turnserver.conf"},
        ],
        "volumeMounts": [
            helpers_mount(),
            {"name": "template", "mountPath": "/template", "readOnly": True},
            {"name": "runtime", "mountPath": "/run/coturn"},
            _SECRET_MOUNT,
            api_access_mount(),
        ],
        "securityContext": security_context(NOBODY),
        "resources": resources("10m", "32Mi", "100m", "64Mi"),
    }


def _host_port(name: str, port: int, protocol: str) -> dict[str, Any]:
    return {"name": name, "containerPort": port, "hostPort": port, "protocol": protocol}


def _coturn_container(image: str) -> dict[str, Any]:
    return {
        "name": COTURN_CONTAINER,
        "image": image,
        "args": ["-c", "/run/coturn/turnserver.conf"],
        "ports": [
            _host_port("turn-udp", TURN_LISTENING_PORT, "UDP"),
            _host_port("turn-tcp", TURN_LISTENING_PORT, "TCP"),
            _host_port("metrics", TURN_METRICS_PORT, "TCP"),
        ],
        "readinessProbe": {"tcpSocket": {"port": TURN_LISTENING_PORT}, "periodSeconds": 10},
        "livenessProbe": {"tcpSocket": {"port": TURN_LISTENING_PORT}, "periodSeconds": 20, "failureThreshold": 3},
        "volumeMounts": [
            {"name": "runtime", "mountPath": "/run/coturn", "readOnly": True},
            {"name": "state", "mountPath": "/var/lib/coturn"},
            {"name": "tmp", "mountPath": "/var/tmp"},
        ],
        "securityContext": security_context(NOBODY),
        "resources": resources("500m", "256Mi", "4", "1Gi"),
    }


def _ice_config_container(args: TurnArgs) -> dict[str, Any]:
    return {
        "name": ICE_CONFIG_SERVICE,
        "image": args.python_image,
        "command": helper_command("ice_config.py"),
        "env": [
            _SECRET_ENV,
            {"name": "TURN_PORT", "value": str(TURN_LISTENING_PORT)},
            {"name": "TTL_SECONDS", "value": str(args.credential_ttl_seconds)},
            {"name": "CREDENTIALS_PER_MINUTE", "value": str(args.credentials_per_minute)},
            {"name": "NODE_SELECTOR", "value": args.nodes.label_selector()},
            {"name": "PORT", "value": str(ICE_CONFIG_PORT)},
        ],
        "ports": [{"name": "http", "containerPort": ICE_CONFIG_PORT}],
        "readinessProbe": http_probe("/healthz", "http", period=10),
        "livenessProbe": http_probe("/livez", "http", period=20),
        "volumeMounts": [helpers_mount(), _SECRET_MOUNT, api_access_mount()],
        "securityContext": security_context(NOBODY),
        "resources": resources("20m", "48Mi", "200m", "128Mi"),
    }
