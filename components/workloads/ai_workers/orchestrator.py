"""AiOrchestrator: a go-livepeer orchestrator in the cluster, in standalone mode: a broker that takes AI jobs from
gateways and hands them to the remote workers registered with it, off-chain.

It runs on the default pool behind a Service on its service port (8935: HTTPS and gRPC on one TLS listener, with a
certificate go-livepeer makes itself). With a host, the ingress controller publishes it on 443 with a certificate
from the ClusterIssuer, as the platform serves everything else, and each path answers only its own callers:

- gateway paths (the `net.Orchestrator` gRPC service and every HTTP path not named below: jobs, payments) only
  from `gateway_cidrs`: off-chain, go-livepeer takes any gateway's jobs without payment;
- worker paths (`net.AIWorker` registration and `/aiResults`) only from `worker_cidrs`, and from nobody when there
  are none (the pool in the cluster dials the Service): go-livepeer v0.9.1 answers a wrong secret on `/aiResults`
  but goes on to deliver the result (server/ai_http.go, `AIResults`, no return after `respondWithError`), and task
  IDs count up from 0 (core/ai_orchestrator.go, `taskCount`), so the secret does not guard that path;
- `/stream/` from anywhere: the files the orchestrator keeps in memory for a job (its inputs, which workers fetch,
  and its results, which gateways fetch) under `https://<host>:443/stream/<request>/<name>`, both parts random
  (core.RandomManifestID), as go-livepeer's memory storage names them from `-serviceAddr` (starter.go,
  NewMemoryDriver(n.GetServiceURI())). Workers in the cluster fetch them through the load balancer too.

Mutual TLS at the ingress cannot stand in for the allow-lists: ingress-nginx verifies client certificates per host
(`ssl_verify_client` in the server block, nginx.tmpl at controller v1.15.1), workers share the host with gateways
(the gateways send jobs to the `-serviceAddr` the workers' files are named after), and go-livepeer's worker
presents no certificate. No listener or NSG rule beyond the ingress's 80/443 is opened.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from ...config_base import world_wide
from ...constants import AI_ORCHESTRATOR, AI_ORCHESTRATOR_FILES, AI_ORCHESTRATOR_PORT, INGRESS_CLASS
from ..kubernetes import image_pull_secrets, labels, pod_security_context, resources, security_context
from .livepeer import DATA_DIR, LIVEPEER_UID, SECRET_FILE, livepeer_mounts, livepeer_status_probe, livepeer_volumes

ORCHESTRATOR = AI_ORCHESTRATOR
CLI_PORT = 7935
HTTPS_PORT = 443
# The gRPC services (net/lp_rpc.proto: package net) gateways and workers call; everything else is HTTP.
GATEWAY_GRPC = "/net.Orchestrator"
WORKER_GRPC = "/net.AIWorker"
# Where workers post results (server/rpc.go, with -orchestrator and remote AI workers accepted).
WORKER_RESULTS = "/aiResults"
# Registration and result paths of kinds of worker this platform does not run (BYOC capabilities, remote
# transcoders, live runners: byoc/byoc.go, server/rpc.go, server/ai_http.go), each guarded by the secret alone.
UNUSED_WORKER_PATHS = ("/capability", "/transcodeResults", "/runners", "/runner")
# The memory storage's files (lpms HandleHLSPlay on the same mux): named at random, fetched by gateways and workers.
FILES = AI_ORCHESTRATOR_FILES
# What a denylist holds to refuse everyone, of either address family (an existing cluster may be dual-stack).
EVERYONE = "0.0.0.0/0,::/0"
# Inputs to image-to-video or audio-to-text exceed nginx's default 1 MiB body.
MAX_BODY = "256m"
# A worker's job stream stays open for as long as the worker runs; it reconnects when it is cut.
STREAM_TIMEOUT_SECONDS = "3600"
# It keeps jobs' inputs and results in memory (go-livepeer's memory storage) until they are fetched.
ORCHESTRATOR_RESOURCES = resources("250m", "512Mi", "2", "4Gi")


def in_cluster_address(namespace: str) -> str:
    """Where workers in the cluster dial the orchestrator: its Service."""
    return f"{ORCHESTRATOR}.{namespace}.svc.cluster.local:{AI_ORCHESTRATOR_PORT}"


def check_published(host: str | None, gateway_cidrs: Sequence[str]) -> None:
    """ValueError unless a published orchestrator names the networks of its gateways."""
    if host and not gateway_cidrs:
        raise ValueError("a published orchestrator needs gateway_cidrs: the networks of the gateways it serves")


def orchestrator_arguments(service_address: str) -> list[str]:
    """Standalone (no `-transcoder`, so jobs go to remote workers), off-chain, advertising `service_address` to
    gateways; the CLI server stays on loopback."""
    return [
        "-orchestrator",
        "-network=offchain",
        f"-orchSecret={SECRET_FILE}",
        f"-serviceAddr={service_address}",
        f"-httpAddr=0.0.0.0:{AI_ORCHESTRATOR_PORT}",
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
    gateway_cidrs: Sequence[str] = ()
    """With a host: the only networks that reach the gateway paths (required)."""
    worker_cidrs: Sequence[str] = ()
    """With a host: the only networks that reach the worker paths; none: nobody (workers in the cluster dial the
    Service)."""
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
        check_published(args.host, args.gateway_cidrs)
        super().__init__("pixelstream:index:AiOrchestrator", name, None, opts)
        self.address = f"{args.host}:{HTTPS_PORT}" if args.host else args.in_cluster_address
        self._deployment(args)
        k8s.core.v1.Service(
            ORCHESTRATOR,
            metadata={"name": ORCHESTRATOR, "namespace": args.namespace, "labels": labels(ORCHESTRATOR)},
            spec={
                "selector": labels(ORCHESTRATOR),
                "ports": [{"name": "https", "port": AI_ORCHESTRATOR_PORT, "targetPort": "https"}],
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        if args.host:
            self._ingresses(args, args.host)
            self._warn(args)
        self.register_outputs({"address": self.address})

    def _warn(self, args: AiOrchestratorArgs) -> None:
        open_to = {
            "gateway paths: anyone may send jobs for free": args.gateway_cidrs,
            "worker paths: anyone may register a worker or post a result for any job (go-livepeer v0.9.1 does not "
            "hold /aiResults to the secret)": args.worker_cidrs,
        }
        for what, cidrs in open_to.items():
            if any(world_wide(cidr) for cidr in cidrs):
                pulumi.log.warn(f"the AI orchestrator's {what}", self)

    def _deployment(self, args: AiOrchestratorArgs) -> None:
        pod_labels = labels(ORCHESTRATOR)
        container = {
            "name": "orchestrator",
            "image": args.image,
            "args": orchestrator_arguments(self.address),
            "ports": [{"name": "https", "containerPort": AI_ORCHESTRATOR_PORT}],
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
        """An Ingress per kind of path and backend protocol (ingress-nginx sets both the protocol and the source
        lists per Ingress, each location its own `allow`/`deny`). The certificate is requested once, by the files'
        Ingress; all serve it."""
        tls = [{"hosts": [host], "secretName": f"{ORCHESTRATOR}-tls"}] if args.cluster_issuer else []
        grpc = {"backend-protocol": "GRPCS"}
        https = {"backend-protocol": "HTTPS", "proxy-body-size": MAX_BODY}
        routes: list[tuple[str, tuple[str, ...], dict[str, str]]] = [
            (f"{ORCHESTRATOR}-gateways-grpc", (GATEWAY_GRPC,), {**grpc, **_only(args.gateway_cidrs)}),
            (f"{ORCHESTRATOR}-gateways", ("/",), {**https, **_only(args.gateway_cidrs)}),
            (f"{ORCHESTRATOR}-workers-grpc", (WORKER_GRPC,), {**grpc, **_only(args.worker_cidrs)}),
            (f"{ORCHESTRATOR}-workers", (WORKER_RESULTS,), {**https, **_only(args.worker_cidrs)}),
            (f"{ORCHESTRATOR}-unused", UNUSED_WORKER_PATHS, {**https, **_only(())}),
            (f"{ORCHESTRATOR}-files", (FILES,), {"backend-protocol": "HTTPS"}),
        ]
        for name, paths, settings in routes:
            annotations = {
                "nginx.ingress.kubernetes.io/proxy-read-timeout": STREAM_TIMEOUT_SECONDS,
                "nginx.ingress.kubernetes.io/proxy-send-timeout": STREAM_TIMEOUT_SECONDS,
                **{f"nginx.ingress.kubernetes.io/{k}": v for k, v in settings.items()},
            }
            if paths == (FILES,) and args.cluster_issuer:
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


def _only(cidrs: Sequence[str]) -> dict[str, str]:
    """ingress-nginx's source lists (annotations/ipallowlist and ipdenylist, controller v1.15.1): only `cidrs`, or
    nobody when there are none (an empty allow-list would let everyone in)."""
    if cidrs:
        return {"allowlist-source-range": ",".join(cidrs)}
    return {"denylist-source-range": EVERYONE}


def _ingress_spec(host: str, paths: Sequence[str], tls: list[dict[str, Any]]) -> dict[str, Any]:
    backend = {"service": {"name": ORCHESTRATOR, "port": {"number": AI_ORCHESTRATOR_PORT}}}
    rule = {"host": host, "http": {"paths": [{"path": p, "pathType": "Prefix", "backend": backend} for p in paths]}}
    return {"ingressClassName": INGRESS_CLASS, "rules": [rule], **({"tls": tls} if tls else {})}
