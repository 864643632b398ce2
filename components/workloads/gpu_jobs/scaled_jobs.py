"""The Kubernetes Job each task becomes: a KEDA ScaledJob per job type whose kafka trigger starts one Job per
pending message (lag threshold 1), up to a maximum, on GPU nodes.

A Job's pod: the user's image with the job contract's environment (docs/hybrid.md), a GPU request, the GPU nodes'
affinity and tolerations, NVIDIA's graphics and video driver capabilities, and either an offscreen flag or an X
server sidecar (a native sidecar: it starts first and stops with the job). No Kubernetes API token unless the job
writes through OKE workload identity, whose token is the service account's (which holds no Kubernetes role).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi

from ...placement import GPU_NODES, NodePlacement
from ..kubernetes import (
    api_access_mount,
    api_access_volume,
    image_pull_secrets,
    labels,
    pod_security_context,
    security_context,
)

DISPLAY = ":99"
X11_SOCKETS = "/tmp/.X11-unix"
# NVENC needs `video`, OpenGL/Vulkan rendering `graphics`; without them the runtime injects neither library.
DRIVER_CAPABILITIES = "graphics,video,compute,utility"
JOB_LABEL = "pixelstream.dev/job-type"
# Every job's pod, whatever its type (what the jobs' NetworkPolicy selects).
JOB_POD_LABELS = labels("gpu-job")
KAFKA_CA_DIR = "/etc/kafka/ca"
# The jobs' listener is always TLS: their messages carry pre-authenticated requests (write credentials).
SECURITY_PROTOCOL = "SASL_SSL"
# KEDA's names for the SASL mechanisms (kafka_scaler.go `sasl`, v2.20.2) by their names in Kafka clients.
KEDA_SASL = {"SCRAM-SHA-512": "scram_sha512", "SCRAM-SHA-256": "scram_sha256", "PLAIN": "plaintext"}


@dataclass(frozen=True)
class KafkaAccess:
    """How the jobs and KEDA reach Kafka: where, how it authenticates them, and where their credentials are."""

    bootstrap_servers: str
    """The jobs' (and the producers') listener."""
    scaler_bootstrap_servers: str
    """KEDA's listener."""
    credentials: Mapping[str, str]
    """By job type: the Secret (in the jobs' namespace) with its `username` and `password`."""
    scaler_authentication: str
    """The ClusterTriggerAuthentication KEDA's triggers use."""
    sasl_mechanism: str = "SCRAM-SHA-512"
    scaler_tls: bool = False
    ca_secret: str | None = None
    """The Secret (in the jobs' namespace) whose `ca.crt` signs the brokers' certificates; None: public CAs."""


@dataclass(frozen=True)
class Display:
    mode: Literal["offscreen", "virtual"] = "offscreen"
    offscreen_args: Sequence[str] = ("-RenderOffScreen",)
    image: str | None = None
    """The X server sidecar's image (`virtual`); None: the job's own."""
    resolution: tuple[int, int] = (1920, 1080)


@dataclass(frozen=True)
class JobType:
    """One kind of task: its image, topics, scaling and resources."""

    name: str
    image: str
    topic: str
    results_topic: str
    consumer_group: str
    args: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    secret_env: frozenset[str] = frozenset()
    """The variables of `env` whose values are secrets: they reach the job from its Secret (`env_secret_name`),
    never as a value in the ScaledJob, Job or pod spec."""
    partitions: int = 6
    """Of its topics (when the stack declares them)."""
    lag_threshold: int = 1
    max_replicas: int = 4
    polling_interval_seconds: int = 10
    active_deadline_seconds: int = 3600
    backoff_limit: int = 0
    gpus: int = 1
    resources: Mapping[str, Mapping[str, str]] = field(
        default_factory=lambda: {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"cpu": "4", "memory": "16Gi"}}
    )
    run_as_user: int = 1000
    display: Display = field(default_factory=Display)


@dataclass(frozen=True)
class JobContext:
    """What every job of the stack shares: where tasks come from and results go, and how it writes them."""

    kafka: KafkaAccess
    results_access: str
    results_bucket: pulumi.Input[str]
    results_namespace: pulumi.Input[str]
    results_prefix: str
    region: str
    service_accounts: Mapping[str, str]
    """By job type: its service account (its identity towards OCI, no Kubernetes role)."""
    gpu_resource: str = "nvidia.com/gpu"
    nodes: NodePlacement = GPU_NODES
    image_pull_secrets: Sequence[str] = ()


def trigger_metadata(job: JobType, context: JobContext) -> dict[str, str]:
    """KEDA's kafka scaler: lag of the job type's consumer group on its topic; one Job per `lagThreshold` pending
    messages. New groups start at the earliest offset, so no task that arrived first is skipped. Its credentials
    come from the ClusterTriggerAuthentication (authParams `username`, `password`, `ca`)."""
    kafka = context.kafka
    return {
        "bootstrapServers": kafka.scaler_bootstrap_servers,
        "sasl": KEDA_SASL[kafka.sasl_mechanism],
        "tls": "enable" if kafka.scaler_tls else "disable",
        "consumerGroup": job.consumer_group,
        "topic": job.topic,
        "lagThreshold": str(job.lag_threshold),
        "offsetResetPolicy": "earliest",
        "allowIdleConsumers": "false",
    }


def scaled_job_spec(job: JobType, context: JobContext) -> dict[str, Any]:
    return {
        "jobTargetRef": {
            "parallelism": 1,
            "completions": 1,
            "activeDeadlineSeconds": job.active_deadline_seconds,
            "backoffLimit": job.backoff_limit,
            "template": {
                "metadata": {"labels": {**JOB_POD_LABELS, JOB_LABEL: job.name}},
                "spec": job_pod(job, context),
            },
        },
        "pollingInterval": job.polling_interval_seconds,
        "maxReplicaCount": job.max_replicas,
        "successfulJobsHistoryLimit": 5,
        "failedJobsHistoryLimit": 5,
        # Running Jobs still hold their (uncommitted) messages in the lag: `default` subtracts them.
        "scalingStrategy": {"strategy": "default"},
        "triggers": [
            {
                "type": "kafka",
                "metadata": trigger_metadata(job, context),
                "authenticationRef": {
                    "name": context.kafka.scaler_authentication,
                    "kind": "ClusterTriggerAuthentication",
                },
            }
        ],
    }


def job_pod(job: JobType, context: JobContext) -> dict[str, Any]:
    workload_identity = context.results_access == "workloadIdentity"
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {"sizeLimit": "10Gi"}}]
    if context.kafka.ca_secret:
        ca = {"secretName": context.kafka.ca_secret, "items": [{"key": "ca.crt", "path": "ca.crt"}]}
        volumes.append({"name": "kafka-ca", "secret": ca})
    init_containers = []
    if job.display.mode == "virtual":
        volumes.append({"name": "x11", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}})
        init_containers.append(_display_sidecar(job))
    if workload_identity:
        volumes.append(api_access_volume())
    return {
        "restartPolicy": "Never",
        "serviceAccountName": context.service_accounts[job.name],
        # Only a job writing through workload identity mounts the token OKE exchanges; no pod holds one otherwise.
        "automountServiceAccountToken": False,
        "affinity": context.nodes.required_affinity(),
        "tolerations": context.nodes.tolerations(),
        "imagePullSecrets": image_pull_secrets(context.image_pull_secrets),
        "securityContext": pod_security_context(fs_group=job.run_as_user),
        "initContainers": init_containers,
        "containers": [_job_container(job, context, workload_identity)],
        "volumes": volumes,
    }


def job_env(job: JobType, context: JobContext) -> list[dict[str, Any]]:
    """The job contract's environment (docs/hybrid.md, "The job contract"), then the job type's own variables."""
    env: list[dict[str, Any]] = [
        {"name": "JOB_TYPE", "value": job.name},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        *kafka_env(job, context.kafka),
        {"name": "KAFKA_TOPIC", "value": job.topic},
        {"name": "KAFKA_CONSUMER_GROUP", "value": job.consumer_group},
        {"name": "KAFKA_RESULTS_TOPIC", "value": job.results_topic},
        {"name": "RESULTS_ACCESS", "value": context.results_access},
        {"name": "RESULTS_BUCKET", "value": context.results_bucket},
        {"name": "RESULTS_NAMESPACE", "value": context.results_namespace},
        {"name": "RESULTS_PREFIX", "value": f"{context.results_prefix}{job.name}/"},
        {"name": "OCI_REGION", "value": context.region},
        {"name": "NVIDIA_DRIVER_CAPABILITIES", "value": DRIVER_CAPABILITIES},
    ]
    if job.display.mode == "virtual":
        env.append({"name": "DISPLAY", "value": DISPLAY})
    for key, value in sorted(job.env.items()):
        if key in job.secret_env:
            env.append({"name": key, "valueFrom": {"secretKeyRef": {"name": env_secret_name(job), "key": key}}})
        else:
            env.append({"name": key, "value": value})
    return env


def kafka_env(job: JobType, kafka: KafkaAccess) -> list[dict[str, Any]]:
    """Where the job's Kafka is and how it signs in (the job contract, docs/hybrid.md)."""
    credentials = kafka.credentials[job.name]
    env: list[dict[str, Any]] = [
        {"name": "KAFKA_BOOTSTRAP_SERVERS", "value": kafka.bootstrap_servers},
        {"name": "KAFKA_SECURITY_PROTOCOL", "value": SECURITY_PROTOCOL},
        {"name": "KAFKA_SASL_MECHANISM", "value": kafka.sasl_mechanism},
        {"name": "KAFKA_USERNAME", "valueFrom": {"secretKeyRef": {"name": credentials, "key": "username"}}},
        {"name": "KAFKA_PASSWORD", "valueFrom": {"secretKeyRef": {"name": credentials, "key": "password"}}},
    ]
    if kafka.ca_secret:
        env.append({"name": "KAFKA_CA_FILE", "value": f"{KAFKA_CA_DIR}/ca.crt"})
    return env


def env_secret_name(job: JobType) -> str:
    return f"{job.name}-env"


def _job_container(job: JobType, context: JobContext, workload_identity: bool) -> dict[str, Any]:
    gpu = {context.gpu_resource: str(job.gpus)}
    args = [*job.args, *(job.display.offscreen_args if job.display.mode == "offscreen" else ())]
    mounts = [{"name": "tmp", "mountPath": "/tmp"}]
    if context.kafka.ca_secret:
        mounts.append({"name": "kafka-ca", "mountPath": KAFKA_CA_DIR, "readOnly": True})
    if job.display.mode == "virtual":
        mounts.append({"name": "x11", "mountPath": X11_SOCKETS})
    if workload_identity:
        mounts.append(api_access_mount())
    return {
        "name": "job",
        "image": job.image,
        **({"args": args} if args else {}),
        "env": job_env(job, context),
        "volumeMounts": mounts,
        # Game and render engines write next to themselves: the root filesystem stays writable, nothing else.
        "securityContext": security_context(job.run_as_user, read_only=False),
        "resources": {
            "requests": {**job.resources["requests"], **gpu},
            "limits": {**job.resources["limits"], **gpu},
        },
    }


def _display_sidecar(job: JobType) -> dict[str, Any]:
    """Xvfb on display :99 as a native sidecar: it starts before the job (when its socket exists) and is stopped
    when the job's container ends, so the Job completes."""
    width, height = job.display.resolution
    socket = f"{X11_SOCKETS}/X{DISPLAY.lstrip(':')}"
    return {
        "name": "display",
        "image": job.display.image or job.image,
        "restartPolicy": "Always",
        "command": ["Xvfb", DISPLAY, "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp"],
        "startupProbe": {"exec": {"command": ["test", "-S", socket]}, "periodSeconds": 1, "failureThreshold": 30},
        "volumeMounts": [{"name": "x11", "mountPath": X11_SOCKETS}],
        "securityContext": security_context(job.run_as_user, read_only=False),
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
    }
