"""AiWorkerPool: go-livepeer remote AI workers on the GPU pool, each pod one worker and one AI runner per model.

The worker dials out to its orchestrator over gRPC (`-aiWorker -orchAddr`), registers what its runners serve, takes
jobs down that stream and posts results back over HTTPS, with the shared secret read from a mounted file. It opens
no port: the pod has no Service and no containerPort, and nothing in it listens on the pod's address.

Each runner (livepeer/ai-runner) is a container of the pod that holds the model's GPUs, serves one pipeline and
model on 127.0.0.1, and is named in the worker's aiModels.json by `url` (go-livepeer's external-runner mode): the
worker starts no container and needs no Docker socket. go-livepeer still lists containers at start, so a
stand-in for the Docker Engine API answers it with none (app/docker_api_stand_in.py).

The runners and the stand-in are sidecars (init containers that keep running): the worker starts only once each
has passed its startup probe. Runners mount the weights read-only and never download: with downloads on, a
`weights-<i>` init container of the runner's image fills the volume first (app/weights_preload.py), before any
runner takes a job. go-livepeer waits two minutes for an external runner's /health and exits if it has
not answered by then (ai/worker/docker.go, externalContainerTimeout), which a first model load from a cold volume
outlasts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s

from ...addons.charts import PART_OF
from ...constants import GPU_RESOURCE, OKE_STORAGE_CLASS
from ...placement import GPU_NODES, NodePlacement
from ..kubernetes import (
    disruption_budget,
    gpu_node_affinity,
    helper_command,
    helpers_config_map,
    helpers_mount,
    helpers_volume,
    image_pull_secrets,
    labels,
    pod_security_context,
    resources,
    security_context,
)
from .livepeer import DATA_DIR, LIVEPEER_UID, SECRET_FILE, livepeer_mounts, livepeer_status_probe, livepeer_volumes

WORKER = "ai-worker"
# The batch pipelines a v0.9.1 remote worker can run (server/ai_worker.go, runAIJob), each with the runner image
# (a name in the image table) that serves it: the base runner, or the pipeline's own image.
PIPELINE_RUNNERS: dict[str, str] = {
    "text-to-image": "ai-runner",
    "image-to-image": "ai-runner",
    "image-to-video": "ai-runner",
    "upscale": "ai-runner",
    "image-to-text": "ai-runner",
    "audio-to-text": "ai-runner-audio-to-text",
    "segment-anything-2": "ai-runner-segment-anything-2",
    "llm": "ai-runner-llm",
    "text-to-speech": "ai-runner-text-to-speech",
}
# Runner i serves on 127.0.0.1:(RUNNER_FIRST_PORT + i); go-livepeer's own runners use 8000 and up too.
RUNNER_FIRST_PORT = 8000
# livepeer/ai-runner's CMD (runner/docker/Dockerfile) without its host and port, which each runner sets.
RUNNER_SERVER = (
    *("uv", "run", "--frozen", "uvicorn", "runner.main:app"),
    *("--log-config", "src/runner/cfg/uvicorn_logging_config.json"),
)
# Where runners find model weights: the image's HUGGINGFACE_HUB_CACHE and MODEL_DIR, as go-livepeer mounts them.
MODELS_DIR = "/models"
# The only node directory the weights may live in (a hostPath volume): the platform's own, under /var/lib.
WEIGHTS_HOST_PREFIX = "/var/lib/pixelstream/"
MODELS_FILE = "/etc/livepeer/models/aiModels.json"
DOCKER_API_DIR = "/run/docker-api"
DOCKER_API_SOCKET = f"{DOCKER_API_DIR}/docker.sock"
# The worker's CLI server (status only), on loopback: go-livepeer's default for an AI worker (AIWorkerCliPort).
WORKER_CLI_PORT = 4935
# On SIGTERM the worker closes its stream to the orchestrator and finishes the jobs it holds before it exits.
WORKER_DRAIN_SECONDS = 300
WORKER_RESOURCES = resources("100m", "256Mi", "1", "2Gi")
STAND_IN_RESOURCES = resources("10m", "32Mi", "100m", "64Mi")
HELPERS = Path(__file__).parent / "app"


@dataclass(frozen=True)
class RunnerModel:
    """One model a worker serves: a runner container holding `gpus` GPUs."""

    pipeline: str
    model_id: str
    image: str
    """The runner image reference."""
    gpus: int = 1


@dataclass
class RunnerSettings:
    """Resources of each runner container, and how long its first model load may take."""

    cpu: str = "2"
    memory: str = "16Gi"
    cpu_limit: str = "8"
    memory_limit: str = "32Gi"
    startup_timeout_seconds: int = 1800


@dataclass
class WeightsSettings:
    """Where runners keep model weights: one block volume (a PVC, on OKE of the `oci-bv` class; one node at a
    time) or a directory on each GPU node. With `download` off, runners load only what is already there."""

    volume: Literal["blockVolume", "hostPath"] = "blockVolume"
    size_gbs: int = 200
    path: str = "/var/lib/pixelstream/ai-models"
    download: bool = True


def models_file(models: Sequence[RunnerModel]) -> str:
    """The worker's aiModels.json: each model served by its runner on loopback. `url` makes it external (the worker
    starts nothing); warm, because a runner loads its model before it answers; capacity 1, the jobs a runner
    takes at a time (one uvicorn worker)."""
    entries = [
        {
            "pipeline": model.pipeline,
            "model_id": model.model_id,
            "url": f"http://127.0.0.1:{RUNNER_FIRST_PORT + index}",
            "warm": True,
            "capacity": 1,
        }
        for index, model in enumerate(models)
    ]
    return json.dumps(entries, indent=2) + "\n"


@dataclass(kw_only=True)
class AiWorkerPoolArgs:
    namespace: pulumi.Input[str]
    livepeer_image: str
    python_image: str
    models: Sequence[RunnerModel]
    orchestrator_address: str
    """host:port the workers dial."""
    secret_name: pulumi.Input[str]
    """The Secret holding the shared secret under `secret`."""
    replicas: int = 1
    runner: RunnerSettings = field(default_factory=RunnerSettings)
    weights: WeightsSettings = field(default_factory=WeightsSettings)
    image_pull_secrets: Sequence[str] = ()
    depends_on: Sequence[pulumi.Resource] = ()
    """What the Deployment waits for: the GPU pool and the device plugin."""
    nodes: NodePlacement = GPU_NODES
    """The GPU nodes: their labels and taints."""
    storage_class: str | None = OKE_STORAGE_CLASS
    """The weights volume's storage class; None: the cluster's default."""


class AiWorkerPool(pulumi.ComponentResource):
    """Outputs: `deployment`, the name of the workers' Deployment."""

    deployment: pulumi.Output[str]

    def __init__(self, name: str, args: AiWorkerPoolArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("pixelstream:index:AiWorkerPool", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        ns = args.namespace
        models = k8s.core.v1.ConfigMap(
            f"{WORKER}-models",
            metadata={"name": f"{WORKER}-models", "namespace": ns, "labels": PART_OF},
            data={"aiModels.json": models_file(args.models)},
            opts=child,
        )
        scripts = [HELPERS / "docker_api_stand_in.py", HELPERS / "weights_preload.py"]
        helpers = helpers_config_map(f"{WORKER}-helpers", ns, scripts, self)
        volumes = [
            *livepeer_volumes(args.secret_name),
            {"name": "models-config", "configMap": {"name": models.metadata["name"]}},
            helpers_volume(helpers),
            {"name": "docker-api", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
            self._weights_volume(args),
        ]
        worker_labels = labels(WORKER)
        deployment = k8s.apps.v1.Deployment(
            WORKER,
            metadata={
                "name": WORKER,
                "namespace": ns,
                "labels": worker_labels,
                # Workers wait for GPU nodes the autoscaler may still be adding and for weights that may still be
                # downloading: `pulumi up` does not wait for them (kubectl -n <namespace> get pods shows them).
                "annotations": {"pulumi.com/skipAwait": "true"},
            },
            spec={
                "replicas": args.replicas,
                "selector": {"matchLabels": worker_labels},
                # No surge: a new worker would need GPUs beyond the old one's, and a block volume attaches to one
                # node at a time.
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
                "template": {"metadata": {"labels": worker_labels}, "spec": _pod_spec(args, volumes)},
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )
        # One worker at a time during node drains; the others keep taking jobs.
        disruption_budget(WORKER, ns, worker_labels, self)
        self.deployment = deployment.metadata["name"]
        self.register_outputs({"deployment": self.deployment})

    def _weights_volume(self, args: AiWorkerPoolArgs) -> dict[str, Any]:
        weights = args.weights
        if weights.volume == "hostPath":
            return {"name": "weights", "hostPath": {"path": weights.path, "type": "DirectoryOrCreate"}}
        claim = k8s.core.v1.PersistentVolumeClaim(
            f"{WORKER}-weights",
            metadata={
                "name": f"{WORKER}-weights",
                "namespace": args.namespace,
                "labels": PART_OF,
                # It binds when the first worker is scheduled (oci-bv waits for its consumer), on a GPU node the
                # autoscaler may still be adding: `pulumi up` does not wait for it (nor on another cluster's class).
                "annotations": {"pulumi.com/skipAwait": "true"},
            },
            spec={
                **({"storageClassName": args.storage_class} if args.storage_class else {}),
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": f"{weights.size_gbs}Gi"}},
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        return {"name": "weights", "persistentVolumeClaim": {"claimName": claim.metadata["name"]}}


def _pod_spec(args: AiWorkerPoolArgs, volumes: list[dict[str, Any]]) -> dict[str, Any]:
    # Runners run as root (see runner_container): the pod cannot demand non-root, each other container does.
    context = {**pod_security_context(fs_group=LIVEPEER_UID, non_root=False), "fsGroupChangePolicy": "OnRootMismatch"}
    return {
        "affinity": gpu_node_affinity(args.nodes),
        "tolerations": args.nodes.tolerations(),
        # Nothing in the pod calls the Kubernetes API.
        "automountServiceAccountToken": False,
        "imagePullSecrets": image_pull_secrets(args.image_pull_secrets),
        "terminationGracePeriodSeconds": WORKER_DRAIN_SECONDS,
        "securityContext": context,
        "initContainers": [
            _stand_in_container(args.python_image),
            # One after another, each done before the next starts and before any runner: the pod needs no more
            # GPUs than its runners do.
            *(preload_container(i, model, args.runner) for i, model in enumerate(args.models) if args.weights.download),
            *(runner_container(i, model, args.runner) for i, model in enumerate(args.models)),
        ],
        "containers": [_worker_container(args)],
        "volumes": volumes,
    }


def worker_arguments(orchestrator_address: str) -> list[str]:
    """The worker's flags: an AI worker of the orchestrator at `orchestrator_address`, secret from its file
    (`-orchSecret` takes a value or a file's path), models from the ConfigMap. No `-nvidia`: the worker holds no
    GPU (go-livepeer logs that it found none), its runners do."""
    return [
        "-aiWorker",
        f"-orchAddr={orchestrator_address}",
        f"-orchSecret={SECRET_FILE}",
        f"-aiModels={MODELS_FILE}",
        f"-dataDir={DATA_DIR}",
        f"-cliAddr=127.0.0.1:{WORKER_CLI_PORT}",
    ]


def _worker_container(args: AiWorkerPoolArgs) -> dict[str, Any]:
    return {
        "name": "worker",
        "image": args.livepeer_image,
        "args": worker_arguments(args.orchestrator_address),
        "env": [{"name": "DOCKER_HOST", "value": f"unix://{DOCKER_API_SOCKET}"}],
        "volumeMounts": [
            *livepeer_mounts(),
            {"name": "models-config", "mountPath": str(Path(MODELS_FILE).parent), "readOnly": True},
            {"name": "docker-api", "mountPath": DOCKER_API_DIR},
        ],
        # The worker serves nothing; its status answers on loopback while the process runs.
        "readinessProbe": livepeer_status_probe(WORKER_CLI_PORT, period=10),
        "livenessProbe": livepeer_status_probe(WORKER_CLI_PORT, period=30),
        "securityContext": security_context(LIVEPEER_UID),
        "resources": WORKER_RESOURCES,
    }


def _stand_in_container(image: str) -> dict[str, Any]:
    probe = {"exec": {"command": [*helper_command("docker_api_stand_in.py"), "--probe"]}, "timeoutSeconds": 3}
    return {
        "name": "docker-api-stand-in",
        "image": image,
        "restartPolicy": "Always",
        "command": helper_command("docker_api_stand_in.py"),
        "env": [{"name": "DOCKER_API_SOCKET", "value": DOCKER_API_SOCKET}],
        "volumeMounts": [helpers_mount(), {"name": "docker-api", "mountPath": DOCKER_API_DIR}],
        "startupProbe": {**probe, "periodSeconds": 1, "failureThreshold": 30},
        "readinessProbe": {**probe, "periodSeconds": 30},
        "livenessProbe": {**probe, "periodSeconds": 30},
        # The worker's user, so that the socket can stay 0600.
        "securityContext": security_context(LIVEPEER_UID),
        "resources": STAND_IN_RESOURCES,
    }


def runner_health_probe(port: int, period: int, failures: int = 3) -> dict[str, Any]:
    """The runner's own /health on loopback, with the image's Python: healthy unless it answers ERROR (what
    go-livepeer accepts from an external runner, ai/worker/container.go)."""
    check = (
        "import json, sys, urllib.request\n"
        f"status = json.load(urllib.request.urlopen('http://127.0.0.1:{port}/health', timeout=4))['status']\n"
        "sys.exit(status == 'ERROR')\n"
    )
    return {
        "exec": {"command": ["python", "-c", check]},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": 5,
    }


def _runner_env(model: RunnerModel) -> list[dict[str, str]]:
    return [
        {"name": "PIPELINE", "value": model.pipeline},
        {"name": "MODEL_ID", "value": model.model_id},
        {"name": "HUGGINGFACE_HUB_CACHE", "value": MODELS_DIR},
        {"name": "MODEL_DIR", "value": MODELS_DIR},
    ]


def _runner_resources(model: RunnerModel, settings: RunnerSettings) -> dict[str, Any]:
    gpus = {GPU_RESOURCE: str(model.gpus)}
    return {
        "requests": {"cpu": settings.cpu, "memory": settings.memory, **gpus},
        "limits": {"cpu": settings.cpu_limit, "memory": settings.memory_limit, **gpus},
    }


# The image runs its Python from /root (uv python install under root's home, mode 0700): runners run as root,
# with no privilege escalation and every capability dropped (so a read-only mount holds for them too).
RUNNER_SECURITY_CONTEXT = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def runner_server(port: int) -> list[str]:
    return [*RUNNER_SERVER, "--host", "127.0.0.1", "--port", str(port)]


def preload_container(index: int, model: RunnerModel, settings: RunnerSettings) -> dict[str, Any]:
    """Runner `index`'s server, started once with the weights writable to download its model, then stopped."""
    port = RUNNER_FIRST_PORT + index
    timeout = str(settings.startup_timeout_seconds)
    return {
        "name": f"weights-{index}",
        "image": model.image,
        "command": [*helper_command("weights_preload.py"), str(port), timeout, "--", *runner_server(port)],
        "env": _runner_env(model),
        "volumeMounts": [{"name": "weights", "mountPath": MODELS_DIR}, helpers_mount()],
        "securityContext": RUNNER_SECURITY_CONTEXT,
        "resources": _runner_resources(model, settings),
    }


def runner_container(index: int, model: RunnerModel, settings: RunnerSettings) -> dict[str, Any]:
    """Runner `index`: the image's own server on loopback only, its weights read-only and downloads off
    (huggingface_hub's HF_HUB_OFFLINE: load from the cache, fetch nothing)."""
    port = RUNNER_FIRST_PORT + index
    return {
        "name": f"runner-{index}",
        "image": model.image,
        "restartPolicy": "Always",
        "args": runner_server(port),
        "env": [*_runner_env(model), {"name": "HF_HUB_OFFLINE", "value": "1"}],
        "volumeMounts": [{"name": "weights", "mountPath": MODELS_DIR, "readOnly": True}],
        # The model loads before the server answers.
        "startupProbe": runner_health_probe(port, 10, math.ceil(settings.startup_timeout_seconds / 10)),
        "readinessProbe": runner_health_probe(port, 10),
        "livenessProbe": runner_health_probe(port, 30),
        "securityContext": RUNNER_SECURITY_CONTEXT,
        "resources": _runner_resources(model, settings),
    }
