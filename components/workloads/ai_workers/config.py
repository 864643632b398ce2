"""The AI worker pool's configuration (`aiWorkers.*`) and its checks."""

from __future__ import annotations

import posixpath
import re
from typing import TYPE_CHECKING, Annotated, Literal

from ...config_base import (
    INT32_MAX,
    WIDEST_ALLOW_LIST_PREFIX,
    Cidr,
    ConfigError,
    ConfigModel,
    Range,
    check_unique,
    world_wide,
)
from ...constants import BLOCK_VOLUME_GBS, GPU_RESOURCE
from ...oci.shapes import GPU_SHAPES
from ..config import WorkloadConfig, check_host, check_namespace, check_pull_secrets, check_requests_and_limits
from ..images import AI_WORKER_IMAGES, image_problem
from .component import ModelSpec
from .pool import PIPELINE_RUNNERS, WEIGHTS_HOST_PREFIX, RunnerSettings, WeightsSettings

if TYPE_CHECKING:
    from ...config import StackConfig

# Pipelines go-livepeer knows but a remote worker cannot run (v0.9.1 server/ai_worker.go, runAIJob), with why.
_NOT_REMOTE = {"live-video-to-video": "live video does not use remote workers"}
_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
_ADDRESS = re.compile(r"^(?P<host>[A-Za-z0-9]([-A-Za-z0-9.]{0,251}[A-Za-z0-9])?):(?P<port>\d{1,5})$")
# The shared secret guards who may take jobs (and their data) from the orchestrator.
MIN_SECRET_LENGTH = 16


class OrchestratorConfig(ConfigModel):
    mode: Literal["inCluster", "external"] = "inCluster"
    """Run go-livepeer's orchestrator in the cluster, or dial one elsewhere."""
    address: str | None = None
    """external only (required there): host:port of the orchestrator the workers dial, such as
    orch.example.com:8935."""
    secret: str | None = None
    """The orchestrator's shared secret (`-orchSecret`), at least 16 characters, as secret config: `pulumi config
    set --secret --path aiWorkers.orchestrator.secret <secret>`; external: required, inCluster: generated when
    unset."""
    host: str | None = None
    """inCluster only: publish the orchestrator on `https://<host>` through the ingress (needs
    addons.ingressNginx and addons.certManager); unset keeps it inside the cluster."""
    issuer: Literal["letsencrypt-prod", "letsencrypt-staging"] = "letsencrypt-prod"
    """The ClusterIssuer of the host's certificate."""
    gateway_cidrs: list[Cidr] = []
    """inCluster with a host (required): the networks whose gateways may send jobs; nobody else reaches the
    gateway paths, as off-chain go-livepeer takes any gateway's jobs without payment."""
    worker_cidrs: list[Cidr] = []
    """inCluster with a host: the networks of workers outside the cluster (registration and `/aiResults`); none
    keeps those paths closed, as the pool in the cluster dials the Service."""
    allow_world_access: bool = False
    """Must be true for gatewayCidrs or workerCidrs to hold a network wider than a /8; every plan then warns."""


class ModelConfig(ConfigModel):
    pipeline: str
    """What a v0.9.1 remote worker runs: text-to-image, image-to-image, image-to-video, upscale, image-to-text,
    audio-to-text, segment-anything-2, llm or text-to-speech."""
    model_id: str
    """The Hugging Face model, such as ByteDance/SDXL-Lightning."""
    image: str | None = None
    """The runner image, by its name in the image table or in aiWorkers.images; unset: the pipeline's runner."""
    gpus: int = 1
    """GPUs the model's runner holds, at least 1; on OKE all runners of a worker together at most the GPU shape's
    count."""

    def spec(self) -> ModelSpec:
        return ModelSpec(pipeline=self.pipeline, model_id=self.model_id, image=self.image, gpus=self.gpus)


class RunnerConfig(ConfigModel):
    """Each runner's container."""

    cpu: str = RunnerSettings.cpu
    """Each runner's CPU request, at most cpuLimit."""
    memory: str = RunnerSettings.memory
    """Its memory request, at most memoryLimit."""
    cpu_limit: str = RunnerSettings.cpu_limit
    """Its CPU limit."""
    memory_limit: str = RunnerSettings.memory_limit
    """Its memory limit."""
    startup_timeout_seconds: Annotated[int, Range(60, 7200)] = RunnerSettings.startup_timeout_seconds
    """How long a runner may take to load (and download) its model."""

    def settings(self) -> RunnerSettings:
        return RunnerSettings(**self.model_dump())


class WeightsConfig(ConfigModel):
    volume: Literal["blockVolume", "hostPath"] = "blockVolume"
    """The model weights on one OCI block volume (a PVC of class `oci-bv`; one node at a time, so replicas 1), or
    in a directory of each GPU node."""
    size_gbs: Annotated[int, Range(*BLOCK_VOLUME_GBS, "GB", "an OCI block volume's sizes")] = WeightsSettings.size_gbs
    """blockVolume only: the volume's size."""
    path: str = WeightsSettings.path
    """hostPath only: the directory on each GPU node, under /var/lib/pixelstream/ (no other node directory is
    accepted)."""
    download: bool = True
    """Before the runners start, download what their models load from Hugging Face onto the volume (a
    `weights-<i>` init container per model); false: the weights must be there already. Runners themselves never
    download (`HF_HUB_OFFLINE=1`) and mount the weights read-only."""

    def settings(self) -> WeightsSettings:
        return WeightsSettings(volume=self.volume, size_gbs=self.size_gbs, path=self.path, download=self.download)


class AiWorkersConfig(WorkloadConfig):
    """The AI worker pool ([remote workers that dial out](docs/ai-workers.md)), off by default."""

    enabled: bool = False
    namespace: str = "ai"
    replicas: Annotated[int, Range(0, INT32_MAX)] = 1
    """Worker pods. Each holds the GPUs of all its runners on one node, and on OKE no more than the GPU pool holds
    at its largest (maxSize, else size, x the workers a node's GPUs fit)."""
    images: dict[str, str] = {}
    """Override one image of the image table (livepeer, ai-runner, ai-runner-audio-to-text, ai-runner-llm,
    ai-runner-segment-anything-2, ai-runner-text-to-speech, python) with `repo:tag` or `repo@sha256:...`, or name
    a runner image of your own that a model uses."""
    image_pull_secrets: list[str] = []
    """Existing docker-registry Secrets in the namespace, on every pod."""
    orchestrator: OrchestratorConfig = OrchestratorConfig()
    models: list[ModelConfig] = []
    """The models the runners serve, at least one."""
    runner: RunnerConfig = RunnerConfig()
    weights: WeightsConfig = WeightsConfig()
    CREDENTIALS = (("orchestrator", "secret"),)

    def check(self, config: StackConfig) -> None:
        check_namespace(config, "aiWorkers")
        check_pull_secrets("aiWorkers", self.image_pull_secrets)
        _check_orchestrator(config)
        _check_models(config)
        check_requests_and_limits("aiWorkers.runner", self.runner)
        _check_weights(self)
        _check_pool_fit(config)


def _check_orchestrator(config: StackConfig) -> None:
    orchestrator = config.ai_workers.orchestrator
    path = "aiWorkers.orchestrator"
    if orchestrator.secret is not None:
        secret = orchestrator.secret
        # The value is never repeated: it is a secret.
        if len(secret) < MIN_SECRET_LENGTH or secret != secret.strip():
            raise ConfigError(
                f"{path}.secret",
                f"needs at least {MIN_SECRET_LENGTH} characters and no surrounding spaces (go-livepeer trims them "
                "from the file the workers read)",
            )
    if orchestrator.mode == "external":
        _check_external(orchestrator)
        return
    if orchestrator.address is not None:
        raise ConfigError(f"{path}.address", "is for mode: external; an orchestrator in the cluster has its own")
    check_host(f"{path}.host", orchestrator.host)
    _check_sources(orchestrator)
    if orchestrator.host is None:
        return
    if orchestrator.host == config.streaming.ingress.host and config.streaming.enabled:
        raise ConfigError(f"{path}.host", f"{orchestrator.host} is streaming.ingress.host too; give each its own name")
    needs = (
        ("ingressNginx", config.addons.ingress_nginx.enabled, "publishes it"),
        ("certManager", config.addons.cert_manager.enabled, "gives it the certificate its clients need"),
    )
    for addon, enabled, why in needs:
        if not enabled:
            raise ConfigError(
                f"{path}.host",
                f"{orchestrator.host} needs addons.{addon}, which {why}: enable it, or remove the host to keep "
                "the orchestrator inside the cluster",
            )


def _check_external(orchestrator: OrchestratorConfig) -> None:
    path = "aiWorkers.orchestrator"
    if orchestrator.address is None:
        raise ConfigError(
            f"{path}.address",
            "is required with mode: external: the orchestrator's host:port, such as orch.example.com:8935",
        )
    match = _ADDRESS.match(orchestrator.address)
    if not match or not 1 <= int(match["port"]) <= 65535:
        raise ConfigError(f"{path}.address", f"{orchestrator.address} is not host:port, such as orch.example.com:8935")
    if orchestrator.secret is None:
        raise ConfigError(
            f"{path}.secret",
            "is required with mode: external (the orchestrator's -orchSecret): "
            "pulumi config set --secret --path aiWorkers.orchestrator.secret <secret>",
        )
    for key, value in _published(orchestrator).items():
        if value:
            raise ConfigError(
                f"{path}.{key}", "is for mode: inCluster; an external orchestrator is published by its owner"
            )


def _published(orchestrator: OrchestratorConfig) -> dict[str, object]:
    """The keys that publish an orchestrator in the cluster, by their names in the stack file."""
    return {
        "host": orchestrator.host,
        "gatewayCidrs": orchestrator.gateway_cidrs,
        "workerCidrs": orchestrator.worker_cidrs,
        "allowWorldAccess": orchestrator.allow_world_access,
    }


def _check_sources(orchestrator: OrchestratorConfig) -> None:
    """Who reaches a published orchestrator's gateway and worker paths: named networks, gateways required."""
    path = "aiWorkers.orchestrator"
    lists = {"gatewayCidrs": orchestrator.gateway_cidrs, "workerCidrs": orchestrator.worker_cidrs}
    if orchestrator.host is None:
        for key, cidrs in lists.items():
            if cidrs:
                raise ConfigError(
                    f"{path}.{key}", "needs aiWorkers.orchestrator.host: without one nothing is published"
                )
        return
    if not orchestrator.gateway_cidrs:
        raise ConfigError(
            f"{path}.gatewayCidrs",
            "is empty: list the networks of the gateways that send jobs (off-chain, the orchestrator takes any "
            "gateway's jobs without payment, so nobody else may reach the gateway paths)",
        )
    for key, cidrs in lists.items():
        check_unique(f"{path}.{key}", cidrs)
        for index, cidr in enumerate(cidrs):
            if world_wide(cidr) and not orchestrator.allow_world_access:
                raise ConfigError(
                    f"{path}.{key}[{index}]",
                    f"{cidr} is wider than a /{WIDEST_ALLOW_LIST_PREFIX}, the internet in all but name; list the "
                    "networks you mean, or set aiWorkers.orchestrator.allowWorldAccess: true to accept that",
                )


def _check_models(config: StackConfig) -> None:
    workers = config.ai_workers
    if not workers.models:
        raise ConfigError(
            "aiWorkers.models", "is empty: list at least one {pipeline, modelId} for the runners to serve"
        )
    # Runner images: the table's and those of your own; not go-livepeer's or the stand-in's.
    table_runners = [name for name in AI_WORKER_IMAGES if name.startswith("ai-runner")]
    runners = {*table_runners, *(name for name in workers.images if name not in AI_WORKER_IMAGES)}
    for name, reference in workers.images.items():
        problem = image_problem(reference)
        if problem:
            raise ConfigError(f"aiWorkers.images.{name}", problem)
        if name not in AI_WORKER_IMAGES and name not in {m.image for m in workers.models}:
            raise ConfigError(
                f"aiWorkers.images.{name}",
                f"is not an image of the workload ({', '.join(AI_WORKER_IMAGES)}) and no model names it",
            )
    shape = config.node_pools.gpu.shape
    gpus_per_node = GPU_SHAPES[shape].gpus
    total = 0
    for index, model in enumerate(workers.models):
        path = f"aiWorkers.models[{index}]"
        if model.pipeline not in PIPELINE_RUNNERS:
            why = _NOT_REMOTE.get(model.pipeline, "not a pipeline")
            raise ConfigError(
                f"{path}.pipeline", f"{model.pipeline}: {why}; a remote worker runs {', '.join(PIPELINE_RUNNERS)}"
            )
        if not _MODEL_ID.match(model.model_id) or len(model.model_id) > 200:
            raise ConfigError(
                f"{path}.modelId", f"{model.model_id!r} is not a model ID such as ByteDance/SDXL-Lightning"
            )
        if model.image is not None and model.image not in runners:
            raise ConfigError(
                f"{path}.image",
                f"{model.image} is not a runner image: define it in aiWorkers.images.{model.image} or use one of "
                f"{', '.join(table_runners)}",
            )
        if model.gpus < 1:
            raise ConfigError(f"{path}.gpus", f"{model.gpus} is below 1: a runner holds at least one GPU")
        total += model.gpus
        # An existing cluster's GPU nodes are its own: the stack does not know how many GPUs each has.
        if config.cluster.oke and total > gpus_per_node:
            raise ConfigError(
                f"{path}.gpus",
                f"{model.gpus} makes {total} GPUs in one worker pod; a {shape} node (nodePools.gpu.shape) has "
                f"{gpus_per_node}, and a pod runs on one node",
            )
    plugin = config.addons.gpu_plugin
    if plugin.enabled and plugin.streams_per_gpu > 1:
        raise ConfigError(
            "aiWorkers.enabled",
            f"true needs whole GPUs ({GPU_RESOURCE}), which the device plugin does not offer while "
            f"addons.gpuPlugin.streamsPerGpu is {plugin.streams_per_gpu}: set it to 1, or aiWorkers.enabled: false",
        )


def _check_pool_fit(config: StackConfig) -> None:
    """On OKE, no more workers than the GPU pool holds at its largest (an existing cluster's nodes are its own)."""
    workers, pool = config.ai_workers, config.node_pools.gpu
    per_worker = sum(model.gpus for model in workers.models)
    if not config.cluster.oke or per_worker < 1:
        return
    nodes = pool.largest_size
    gpus = GPU_SHAPES[pool.shape].gpus
    most = nodes * (gpus // per_worker)
    if workers.replicas > most:
        raise ConfigError(
            "aiWorkers.replicas",
            f"{workers.replicas} do not fit the GPU pool, which holds at most {most}: {nodes} node(s) of {pool.shape} "
            f"({gpus} GPU(s) each) at {per_worker} GPU(s) per worker (nodePools.gpu, aiWorkers.models)",
        )


def _check_weights(workers: AiWorkersConfig) -> None:
    weights = workers.weights
    path = "aiWorkers.weights"
    if weights.volume == "blockVolume":
        if "path" in weights.model_fields_set:
            raise ConfigError(f"{path}.path", "is for volume: hostPath")
        if workers.replicas > 1:
            raise ConfigError(
                "aiWorkers.replicas",
                f"{workers.replicas} workers cannot share one block volume (it attaches to one node): use "
                "aiWorkers.weights.volume: hostPath, or replicas: 1",
            )
        return
    if "size_gbs" in weights.model_fields_set:
        raise ConfigError(f"{path}.sizeGbs", "is for volume: blockVolume")
    directory = weights.path
    # Only a directory of the platform's own: a node's other directories hold what its kubelet, runtime and
    # system trust, and a pod that writes there (the weights' download) would reach them.
    clean = directory.startswith("/") and posixpath.normpath(directory) == directory
    if not clean or not directory.startswith(WEIGHTS_HOST_PREFIX) or len(directory) <= len(WEIGHTS_HOST_PREFIX):
        raise ConfigError(
            f"{path}.path",
            f"{directory} is not a directory under {WEIGHTS_HOST_PREFIX}, the only node directory the weights may "
            f"use; such as {WeightsSettings.path}",
        )
