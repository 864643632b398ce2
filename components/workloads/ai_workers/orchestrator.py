"""AiOrchestrator: a go-livepeer orchestrator in the cluster, in standalone mode: a broker that takes AI jobs from
gateways and hands them to the remote workers registered with it, off-chain.

It runs on the default pool behind a Service on its service port (8935: HTTPS and gRPC on one TLS listener, with a
certificate go-livepeer makes itself). With a host, the ingress controller publishes it on 443 with a certificate
from the ClusterIssuer, as the platform serves everything else: gRPC paths (the gateways' GetOrchestrator, the
workers' RegisterAIWorker stream) go to the backend as gRPC over TLS, every other path (jobs, results, inputs) as
HTTPS. No listener or NSG rule beyond the ingress's 80/443 is opened.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from ...constants import INGRESS_CLASS
from ..kubernetes import image_pull_secrets, labels, pod_security_context, resources, security_context
from .livepeer import DATA_DIR, LIVEPEER_UID, SECRET_FILE, livepeer_mounts, livepeer_status_probe, livepeer_volumes

ORCHESTRATOR = "ai-orchestrator"
SERVICE_PORT = 8935
CLI_PORT = 7935
HTTPS_PORT = 443
# The gRPC services gateways and workers call (net/lp_rpc.proto: package net); everything else is HTTP.
GRPC_SERVICES = ("net.Orchestrator", "net.AIWorker")
# Inputs to image-to-video or audio-to-text exceed nginx's default 1 MiB body.
MAX_BODY = "256m"
# A worker's job stream stays open for as long as the worker runs; it reconnects when it is cut.
STREAM_TIMEOUT_SECONDS = "3600"
# It keeps jobs' inputs and results in memory (go-livepeer's memory storage) until they are fetched.
ORCHESTRATOR_RESOURCES = resources("250m", "512Mi", "2", "4Gi")


def in_cluster_address(namespace: str) -> str:
    """Where workers in the cluster dial the orchestrator: its Service."""
    return f"{ORCHESTRATOR}.{namespace}.svc.cluster.local:{SERVICE_PORT}"


def orchestrator_arguments(service_address: str) -> list[str]:
    """Standalone (no `-transcoder`, so jobs go to remote workers), off-chain, advertising `service_address` to
    gateways; the CLI server stays on loopback."""
    return [
        "-orchestrator",
        "-network=offchain",
        f"-orchSecret={SECRET_FILE}",
        f"-serviceAddr={service_address}",
        f"-httpAddr=0.0.0.0:{SERVICE_PORT}",
        f"-cliAddr=127.0.0.1:{CLI_PORT}",
        f"-dataDir={DATA_DIR}",
    ]


@dataclass(kw_only=True)
class AiOrchestratorArgs:
    namespace: pulumi.Input[str]
    image: str
    secret_name: pulumi.Input[str]
    """The Secret holding the shared secret under `secret`."""
    in_cluster_address: str
    """Its Service's address (`in_cluster_address(namespace)`), what it advertises without a host."""
    host: str | None = None
    """Public host name: published through the ingress on 443."""
    cluster_issuer: str | None = None
    """ClusterIssuer of the host's certificate."""
    image_pull_secrets: Sequence[str] = ()
    depends_on: Sequence[pulumi.Resource] = ()
    """What the Deployment waits for: the default pool."""
    ingress_controller: Sequence[pulumi.Resource] = ()
    """What the Ingresses wait for: the controller whose admission webhook validates them."""


class AiOrchestrator(pulumi.ComponentResource):
    """Outputs: `address`, what it advertises to gateways and what workers outside the cluster dial: host:443, or
    without a host the Service's address (`in_cluster_address`)."""

    address: str

    def __init__(self, name: str, args: AiOrchestratorArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("pixelstream:index:AiOrchestrator", name, None, opts)
        self.address = f"{args.host}:{HTTPS_PORT}" if args.host else args.in_cluster_address
        self._deployment(args)
        k8s.core.v1.Service(
            ORCHESTRATOR,
            metadata={"name": ORCHESTRATOR, "namespace": args.namespace, "labels": labels(ORCHESTRATOR)},
            spec={
                "selector": labels(ORCHESTRATOR),
                "ports": [{"name": "https", "port": SERVICE_PORT, "targetPort": "https"}],
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        if args.host:
            self._ingresses(args, args.host)
        self.register_outputs({"address": self.address})

    def _deployment(self, args: AiOrchestratorArgs) -> None:
        pod_labels = labels(ORCHESTRATOR)
        container = {
            "name": "orchestrator",
            "image": args.image,
            "args": orchestrator_arguments(self.address),
            "ports": [{"name": "https", "containerPort": SERVICE_PORT}],
            "volumeMounts": livepeer_mounts(),
            "readinessProbe": {"tcpSocket": {"port": "https"}, "periodSeconds": 10},
            "livenessProbe": livepeer_status_probe(CLI_PORT, period=30),
            "securityContext": security_context(LIVEPEER_UID),
            "resources": ORCHESTRATOR_RESOURCES,
        }
        k8s.apps.v1.Deployment(
            ORCHESTRATOR,
            metadata={"name": ORCHESTRATOR, "namespace": args.namespace, "labels": pod_labels},
            spec={
                # Workers register with one orchestrator and it keeps them, and every job, in memory: exactly one,
                # replaced rather than doubled.
                "replicas": 1,
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": pod_labels},
                "template": {
                    "metadata": {"labels": pod_labels},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "imagePullSecrets": image_pull_secrets(args.image_pull_secrets),
                        "securityContext": pod_security_context(fs_group=LIVEPEER_UID),
                        "containers": [container],
                        "volumes": livepeer_volumes(args.secret_name),
                    },
                },
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )

    def _ingresses(self, args: AiOrchestratorArgs, host: str) -> None:
        """Two Ingresses for the one host, as ingress-nginx sets the backend protocol per Ingress: gRPC paths and
        the rest. The certificate is requested once, by the second; both serve it."""
        tls = [{"hosts": [host], "secretName": f"{ORCHESTRATOR}-tls"}] if args.cluster_issuer else []
        timeouts = {
            "nginx.ingress.kubernetes.io/proxy-read-timeout": STREAM_TIMEOUT_SECONDS,
            "nginx.ingress.kubernetes.io/proxy-send-timeout": STREAM_TIMEOUT_SECONDS,
        }
        routes: list[tuple[str, list[str], dict[str, str]]] = [
            (f"{ORCHESTRATOR}-grpc", [f"/{service}" for service in GRPC_SERVICES], {"backend-protocol": "GRPCS"}),
            (
                ORCHESTRATOR,
                ["/"],
                {"backend-protocol": "HTTPS", "proxy-body-size": MAX_BODY},
            ),
        ]
        for name, paths, settings in routes:
            annotations = {**timeouts, **{f"nginx.ingress.kubernetes.io/{k}": v for k, v in settings.items()}}
            if name == ORCHESTRATOR and args.cluster_issuer:
                annotations["cert-manager.io/cluster-issuer"] = args.cluster_issuer
            k8s.networking.v1.Ingress(
                name,
                metadata={
                    "name": name,
                    "namespace": args.namespace,
                    "labels": labels(name),
                    "annotations": annotations,
                },
                spec=_ingress_spec(host, paths, tls),
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.ingress_controller)),
            )


def _ingress_spec(host: str, paths: list[str], tls: list[dict[str, Any]]) -> dict[str, Any]:
    backend = {"service": {"name": ORCHESTRATOR, "port": {"number": SERVICE_PORT}}}
    rule = {"host": host, "http": {"paths": [{"path": p, "pathType": "Prefix", "backend": backend} for p in paths]}}
    return {"ingressClassName": INGRESS_CLASS, "rules": [rule], **({"tls": tls} if tls else {})}
