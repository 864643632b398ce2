"""Turn: coturn on every TURN node (host network, credentials per player session, no relaying into private
networks but the stream pods). The session service mints the credentials with the shared secret this
component generates (session/turn.py), one session at a time, for the players it gave a stream."""

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
    INGRESS_CLASS,
    TURN_DAEMONSET,
    TURN_LISTENING_PORT,
    TURN_METRICS_PORT,
    TURN_TLS_PORT,
    TURNS_PUBLIC_PORT,
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
    image_pull_secrets,
    labels,
    node_reader,
    pod_security_context,
    resources,
    security_context,
)

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
    user_quota: int = 4
    """Allocations per TURN user on one node; the session service makes a user one player session."""
    total_quota: int = 1000
    """Allocations per TURN server."""
    max_bytes_per_second: int = 6_250_000
    """Per session: 50 Mbit/s, above Pixel Streaming's usual encoder ceiling."""
    capacity_bytes_per_second: int = 250_000_000
    """Per TURN server: 2 Gbit/s, the bandwidth of the default TURN shape; every session reserves its
    `max_bytes_per_second` from it, so it bounds concurrent sessions per node."""
    tls: bool = False
    """A TLS listener (TURN_TLS_PORT) with the certificate mounted at TLS_DIR, for TURN over TLS."""
    drain_seconds: int = 1800
    """How long a stopping TURN server keeps relaying its sessions (taking no new allocation) before it exits."""

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
        *_tls_lines(settings.tls),
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
        f"pidfile={PID_FILE}",
        "userdb=/var/lib/coturn/turndb",
        "prometheus",
        f"prometheus-port={TURN_METRICS_PORT}",
    ]
    denied = dict.fromkeys([*DENIED_PEER_CIDRS, *settings.private_cidrs])
    lines += [f"denied-peer-ip={peer_range(cidr)}" for cidr in denied]
    # An address both allowed and denied is allowed: this carves the media path out of the denied ranges.
    lines += [f"allowed-peer-ip={peer_range(cidr)}" for cidr in settings.media_peer_cidrs]
    return "\n".join(lines) + "\n"


# Where coturn finds its TLS certificate (the cert-manager Secret, mounted) and its process id (for the reloader).
TLS_DIR = "/etc/coturn/tls"
PID_FILE = "/var/tmp/turnserver.pid"


def _tls_lines(tls: bool) -> list[str]:
    if not tls:
        # Plain TURN only (the CLI and DTLS are off unless asked for since coturn 4.9).
        return ["no-tls"]
    # TLS 1.2 and later only; coturn re-reads the files on SIGUSR2 (mainrelay.c `reload_ssl_certs`, 4.17.1).
    return [
        f"tls-listening-port={TURN_TLS_PORT}",
        f"cert={TLS_DIR}/tls.crt",
        f"pkey={TLS_DIR}/tls.key",
        "no-tlsv1",
        "no-tlsv1_1",
        "no-dtls",
    ]


@dataclass(kw_only=True)
class TurnArgs:
    namespace: pulumi.Input[str]
    server: TurnServerSettings
    coturn_image: str
    python_image: str
    image_pull_secrets: Sequence[str] = field(default_factory=list)
    depends_on: Sequence[pulumi.Resource] = ()
    """What the DaemonSet waits for: the TURN node pool."""
    nodes: NodePlacement = TURN_NODES
    """The TURN nodes (public IPs): coturn runs on each, the session service hands out their addresses."""
    tls_host: str | None = None
    """TURN over TLS under this name (with `server.tls`): a certificate for it from `cluster_issuer`, and ingress-nginx
    passing TLS for it through to coturn (its controller runs with --enable-ssl-passthrough)."""
    cluster_issuer: str | None = None
    certificates_after: Sequence[pulumi.Resource] = ()
    """What the certificate waits for: cert-manager and its issuers."""
    ingress_controller: Sequence[pulumi.Resource] = ()
    nodes_to_hold: int = 0
    """The TURN nodes a drain hold keeps while their sessions last (a fixed pool's size; 0: no hold)."""


class Turn(pulumi.ComponentResource):
    """Outputs: `secret_name` and `secret_key`: the Secret holding the shared secret of the TURN REST API
    credentials, for the session service; `tls_url`: the players' TURN-over-TLS URL, when it is on."""

    secret_name: pulumi.Output[str]
    secret_key: str
    tls_url: str | None

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
        programs = [HELPERS / "turn_bootstrap.py", HELPERS / "tls_reloader.py", HELPERS / "turn_drain_hold.py"]
        helpers = helpers_config_map("turn-helpers", ns, programs, self)
        self.tls_url = None
        if args.server.tls:
            if not (args.tls_host and args.cluster_issuer):
                raise ValueError("TURN over TLS needs a host name and a cluster issuer for its certificate")
            self._tls_route(args)
            self.tls_url = f"turns:{args.tls_host}:{TURNS_PUBLIC_PORT}?transport=tcp"
        self._daemonset(args, helpers_volume(helpers), _secret_volume(secret), config.metadata["name"])
        if args.nodes_to_hold and args.server.drain_seconds:
            self._drain_hold(args, helpers_volume(helpers))
        self.secret_name = secret.metadata["name"]
        self.secret_key = AUTH_SECRET_KEY
        self.register_outputs({"secret_name": self.secret_name, "tls_url": self.tls_url})

    def _tls_route(self, args: TurnArgs) -> None:
        """The certificate of the TURN-over-TLS name, a Service over every TURN node's TLS listener, and the Ingress
        by which ingress-nginx passes TLS for that name through to it (annotation `ssl-passthrough`, controller
        v1.15.1 internal/ingress/annotations/sslpassthrough; the controller dials the Service's cluster IP)."""
        ns, child = args.namespace, pulumi.ResourceOptions(parent=self)
        k8s.apiextensions.CustomResource(
            TLS_SECRET,
            api_version="cert-manager.io/v1",
            kind="Certificate",
            metadata={"name": TLS_SECRET, "namespace": ns, "labels": PART_OF},
            spec={
                "secretName": TLS_SECRET,
                "dnsNames": [args.tls_host],
                "issuerRef": {"kind": "ClusterIssuer", "name": args.cluster_issuer},
                "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.certificates_after)),
        )
        k8s.core.v1.Service(
            TLS_SECRET,
            metadata={"name": TLS_SECRET, "namespace": ns, "labels": labels(TLS_SECRET)},
            spec={
                "selector": labels(TURN_DAEMONSET),
                "ports": [{"name": "turns", "port": TURNS_PUBLIC_PORT, "targetPort": TURN_TLS_PORT}],
            },
            opts=child,
        )
        k8s.networking.v1.Ingress(
            TLS_SECRET,
            metadata={
                "name": TLS_SECRET,
                "namespace": ns,
                "labels": labels(TLS_SECRET),
                "annotations": {"nginx.ingress.kubernetes.io/ssl-passthrough": "true"},
            },
            spec={
                "ingressClassName": INGRESS_CLASS,
                "rules": [
                    {
                        "host": args.tls_host,
                        "http": {
                            "paths": [
                                {
                                    "path": "/",
                                    "pathType": "Prefix",
                                    "backend": {"service": {"name": TLS_SECRET, "port": {"number": TURNS_PUBLIC_PORT}}},
                                }
                            ]
                        },
                    }
                ],
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.ingress_controller)),
        )

    def _daemonset(
        self, args: TurnArgs, helpers: dict[str, Any], secret: dict[str, Any], template: pulumi.Input[str]
    ) -> None:
        """coturn on every TURN node, on the host network, its config completed by the bootstrap."""
        ns, tls = args.namespace, args.server.tls
        why = "the TURN bootstrap reads its own node's addresses"
        account = node_reader(TURN_DAEMONSET, ns, ["get"], why, self)
        turn_labels = labels(TURN_DAEMONSET)
        # An update replaces one node's coturn at a time, each draining its sessions first: Pulumi waits that long.
        rollout = max(args.nodes_to_hold, 1) * (args.server.drain_seconds + TURN_TERMINATION_MARGIN_SECONDS) + 600
        k8s.apps.v1.DaemonSet(
            TURN_DAEMONSET,
            metadata={
                "name": TURN_DAEMONSET,
                "namespace": ns,
                "labels": turn_labels,
                "annotations": {"pulumi.com/timeoutSeconds": str(rollout)},
            },
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
                        "terminationGracePeriodSeconds": args.server.drain_seconds + TURN_TERMINATION_MARGIN_SECONDS,
                        "securityContext": pod_security_context(fs_group=NOBODY),
                        # The TLS reloader signals coturn when cert-manager renews the certificate.
                        **({"shareProcessNamespace": True} if tls else {}),
                        "initContainers": [_bootstrap_container(args.python_image)],
                        "containers": [
                            _coturn_container(args.coturn_image, tls, args.server.drain_seconds),
                            *([_reloader_container(args.python_image)] if tls else []),
                        ],
                        "volumes": [
                            helpers,
                            api_access_volume(),
                            secret,
                            {"name": "template", "configMap": {"name": template}},
                            # Holds the rendered config with the shared secret: memory only.
                            {"name": "runtime", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
                            {"name": "state", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
                            {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
                            *([_tls_volume()] if tls else []),
                        ],
                    },
                },
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )

    def _drain_hold(self, args: TurnArgs, helpers: dict[str, Any]) -> None:
        """One pod per TURN node that a node drain evicts and that waits for the node's relayed sessions
        (app/turn_drain_hold.py): what keeps OKE from deleting a TURN node under them. At most one at a time."""
        hold_labels = labels(DRAIN_HOLD)
        one_per_node = {"labelSelector": {"matchLabels": hold_labels}, "topologyKey": "kubernetes.io/hostname"}
        container = {
            "name": DRAIN_HOLD,
            "image": args.python_image,
            "command": helper_command("turn_drain_hold.py"),
            "env": [
                {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
                {"name": "METRICS_PORT", "value": str(TURN_METRICS_PORT)},
            ],
            "volumeMounts": [helpers_mount()],
            "securityContext": security_context(NOBODY),
            "resources": resources("5m", "24Mi", "50m", "64Mi"),
        }
        k8s.apps.v1.Deployment(
            DRAIN_HOLD,
            metadata={
                "name": DRAIN_HOLD,
                "namespace": args.namespace,
                "labels": hold_labels,
                # Its pods wait for TURN nodes; nothing needs them to be ready to go on.
                "annotations": {"pulumi.com/skipAwait": "true"},
            },
            spec={
                "replicas": args.nodes_to_hold,
                # One per node, every node taken: a new pod can only come once an old one has gone (each old one
                # waits for its node's sessions first, up to the drain).
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
                "selector": {"matchLabels": hold_labels},
                "template": {
                    "metadata": {"labels": hold_labels},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "imagePullSecrets": image_pull_secrets(args.image_pull_secrets),
                        "affinity": {
                            **args.nodes.required_affinity(),
                            "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [one_per_node]},
                        },
                        "tolerations": args.nodes.tolerations(),
                        "terminationGracePeriodSeconds": args.server.drain_seconds + TURN_TERMINATION_MARGIN_SECONDS,
                        "securityContext": pod_security_context(),
                        "containers": [container],
                        "volumes": [helpers],
                    },
                },
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )
        disruption_budget(DRAIN_HOLD, args.namespace, hold_labels, self)


DRAIN_HOLD = "turn-drain-hold"

# The shared secret reaches the programs as a file (not an environment variable, which /proc shows).
AUTH_SECRET = "turn-auth"
AUTH_SECRET_KEY = "static-auth-secret"
_SECRET_DIR = "/secrets/turn"
_SECRET_ENV = {"name": "TURN_SECRET_FILE", "value": f"{_SECRET_DIR}/{AUTH_SECRET_KEY}"}
_SECRET_MOUNT = {"name": AUTH_SECRET, "mountPath": _SECRET_DIR, "readOnly": True}


def _secret_volume(secret: k8s.core.v1.Secret) -> dict[str, Any]:
    return {"name": AUTH_SECRET, "secret": {"secretName": secret.metadata["name"], "defaultMode": 0o440}}


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


TLS_SECRET = "turn-tls"


def _tls_volume() -> dict[str, Any]:
    return {"name": TLS_SECRET, "secret": {"secretName": TLS_SECRET, "defaultMode": 0o440}}


def _tls_mount() -> dict[str, Any]:
    return {"name": TLS_SECRET, "mountPath": TLS_DIR, "readOnly": True}


def _reloader_container(python_image: str) -> dict[str, Any]:
    """Tells coturn (SIGUSR2) to read its certificate again whenever cert-manager renews it."""
    return {
        "name": "tls-reloader",
        "image": python_image,
        "command": helper_command("tls_reloader.py"),
        "env": [{"name": "CERT_DIR", "value": TLS_DIR}, {"name": "PID_FILE", "value": PID_FILE}],
        "volumeMounts": [helpers_mount(), _tls_mount(), {"name": "tmp", "mountPath": "/var/tmp", "readOnly": True}],
        "securityContext": security_context(NOBODY),
        "resources": resources("5m", "24Mi", "50m", "64Mi"),
    }


# A stopping coturn drains: SIGUSR1 puts it in drain mode (mainrelay.c `drain_handler`, coturn 4.6.3 and later;
# read at 4.17.1, the image pins 4.17.2), where every new allocation is refused with 403 "Server is draining"
# (ns_turn_server.c) while the running ones go on, and it exits by itself once none is left (netengine.c,
# `drain-min-allocations`, 0 by default). The hook waits for that exit: the kubelet sends SIGTERM (coturn's
# immediate stop) only when the hook returns, or when the pod's termination grace runs out. When coturn is the
# container's PID 1 (no TLS), its exit ends the hook too, which the kubelet records as a FailedPreStopHook event:
# expected, coturn has drained. Arguments: the pid file.
DRAIN_SCRIPT = """pid=$(cat "$1" 2>/dev/null) || exit 0
kill -USR1 "$pid" 2>/dev/null || exit 0
while kill -0 "$pid" 2>/dev/null; do sleep 1; done"""
# What coturn needs after its drain: nothing but to exit.
TURN_TERMINATION_MARGIN_SECONDS = 10


def _coturn_container(image: str, tls: bool, drain_seconds: int) -> dict[str, Any]:
    return {
        "name": COTURN_CONTAINER,
        "image": image,
        "args": ["-c", "/run/coturn/turnserver.conf"],
        **(
            {"lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", DRAIN_SCRIPT, "drain", PID_FILE]}}}}
            if drain_seconds
            else {}
        ),
        "ports": [
            _host_port("turn-udp", TURN_LISTENING_PORT, "UDP"),
            _host_port("turn-tcp", TURN_LISTENING_PORT, "TCP"),
            *([_host_port("turns", TURN_TLS_PORT, "TCP")] if tls else []),
            _host_port("metrics", TURN_METRICS_PORT, "TCP"),
        ],
        "readinessProbe": {"tcpSocket": {"port": TURN_LISTENING_PORT}, "periodSeconds": 10},
        "livenessProbe": {"tcpSocket": {"port": TURN_LISTENING_PORT}, "periodSeconds": 20, "failureThreshold": 3},
        "volumeMounts": [
            {"name": "runtime", "mountPath": "/run/coturn", "readOnly": True},
            {"name": "state", "mountPath": "/var/lib/coturn"},
            {"name": "tmp", "mountPath": "/var/tmp"},
            *([_tls_mount()] if tls else []),
        ],
        "securityContext": security_context(NOBODY),
        "resources": resources("500m", "256Mi", "4", "1Gi"),
    }
