"""AiWorkers: a pool of Livepeer remote AI workers on the GPU nodes, in their namespace, dialing out to an
orchestrator in the cluster (AiOrchestrator) or outside it, with the shared secret both ends hold."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from ...addons.charts import PART_OF, namespace
from ...constants import AI_ORCHESTRATOR_PORT, OKE_STORAGE_CLASS
from ...placement import GPU_NODES, NodePlacement
from ..images import AI_WORKER_IMAGES
from ..kubernetes import labels
from ..network_policies import (
    INGRESS_CONTROLLER,
    allow_certificate_challenges,
    allow_ingress,
    deny_ingress,
    internet_egress,
    pods,
    reach,
    tcp,
)
from .livepeer import SECRET_KEY
from .orchestrator import (
    ORCHESTRATOR,
    AiOrchestrator,
    AiOrchestratorArgs,
    check_published,
    in_cluster_address,
)
from .pool import PIPELINE_RUNNERS, WORKER, AiWorkerPool, AiWorkerPoolArgs, RunnerModel, RunnerSettings, WeightsSettings

SECRET = "ai-orchestrator-secret"


@dataclass(frozen=True)
class ModelSpec:
    """A model the workers serve: the pipeline, the model, its runner image (a name in the image table or the
    `images` given; the pipeline's runner when None) and the GPUs its runner holds."""

    pipeline: str
    model_id: str
    image: str | None = None
    gpus: int = 1


@dataclass(kw_only=True)
class AiWorkersArgs:
    models: Sequence[ModelSpec]
    private_cidrs: Sequence[str]
    """The cluster's own networks (the VCN or node networks, pods, services, on-premises): with an orchestrator in
    the cluster, the workers reach none of them but the orchestrator (NetworkPolicy)."""
    namespace: str = "ai"
    replicas: int = 1
    external_orchestrator: str | None = None
    """host:port of an orchestrator outside the cluster; None runs one in the cluster."""
    secret: pulumi.Input[str] | None = None
    """The orchestrator's shared secret; None generates one (an orchestrator in the cluster only)."""
    host: str | None = None
    """The in-cluster orchestrator's public host name, published through the ingress."""
    cluster_issuer: str | None = None
    gateway_cidrs: Sequence[str] = ()
    """With a host: the networks whose gateways may send jobs (required); nobody else reaches the gateway paths."""
    worker_cidrs: Sequence[str] = ()
    """With a host: the networks of workers outside the cluster; none keeps the worker paths closed."""
    images: Mapping[str, str] = field(default_factory=dict)
    """Overrides of the image table (`pixelstream.workloads.images.AI_WORKER_IMAGES`), and runner images of
    your own that models name."""
    image_pull_secrets: Sequence[str] = ()
    runner: RunnerSettings = field(default_factory=RunnerSettings)
    weights: WeightsSettings = field(default_factory=WeightsSettings)
    system_nodes: Sequence[pulumi.Resource] = ()
    """What the namespace and the orchestrator wait for: the default pool."""
    gpu_nodes: Sequence[pulumi.Resource] = ()
    """What the workers wait for: the GPU pool and the device plugin."""
    ingress_controller: Sequence[pulumi.Resource] = ()
    gpu_placement: NodePlacement = GPU_NODES
    """Where the workers run: the GPU nodes' labels and taints (OKE's pool unless given)."""
    storage_class: str | None = OKE_STORAGE_CLASS
    """The block volume's storage class (`weights.volume: blockVolume`); None: the cluster's default."""


def resolve_models(models: Sequence[ModelSpec], images: Mapping[str, str]) -> list[RunnerModel]:
    """Each model with its runner image reference; ValueError for a pipeline or an image name nobody defines."""
    resolved = []
    for model in models:
        if model.pipeline not in PIPELINE_RUNNERS:
            raise ValueError(f"unknown pipeline {model.pipeline}; known: {', '.join(PIPELINE_RUNNERS)}")
        name = model.image or PIPELINE_RUNNERS[model.pipeline]
        if name not in images:
            raise ValueError(f"model {model.model_id} names runner image {name}, which is not defined")
        resolved.append(RunnerModel(model.pipeline, model.model_id, images[name], model.gpus))
    return resolved


class AiWorkers(pulumi.ComponentResource):
    """Outputs: `namespace`, `orchestrator_address` (what the workers dial, or with an orchestrator in the cluster
    what gateways and workers elsewhere dial) and `orchestrator_secret` (a secret; None when the orchestrator is
    outside, whose secret you hold)."""

    namespace: str
    orchestrator_address: str
    orchestrator_secret: pulumi.Output[str] | None

    def __init__(self, name: str, args: AiWorkersArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        if args.external_orchestrator is not None and args.secret is None:
            raise ValueError("an orchestrator outside the cluster needs its secret")
        check_published(args.host, args.gateway_cidrs)
        images = {**AI_WORKER_IMAGES, **args.images}
        models = resolve_models(args.models, images)
        super().__init__("pixelstream:index:AiWorkers", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        ns = namespace(args.namespace, self, depends_on=args.system_nodes)
        secret_value = args.secret
        if secret_value is None:
            generated = random.RandomPassword(f"{name}-orchestrator-secret", length=48, special=False, opts=child)
            secret_value = generated.result
        secret = k8s.core.v1.Secret(
            SECRET,
            metadata={"name": SECRET, "namespace": ns.metadata["name"], "labels": PART_OF},
            string_data={SECRET_KEY: pulumi.Output.secret(secret_value)},
            opts=child,
        )
        dial = args.external_orchestrator or in_cluster_address(args.namespace)
        self.orchestrator_secret = None
        self.orchestrator_address = dial
        if args.external_orchestrator is None:
            orchestrator = AiOrchestrator(
                f"{name}-orchestrator",
                AiOrchestratorArgs(
                    namespace=ns.metadata["name"],
                    in_cluster_address=dial,
                    image=images["livepeer"],
                    secret_name=secret.metadata["name"],
                    host=args.host,
                    cluster_issuer=args.cluster_issuer,
                    gateway_cidrs=args.gateway_cidrs,
                    worker_cidrs=args.worker_cidrs,
                    image_pull_secrets=args.image_pull_secrets,
                    depends_on=args.system_nodes,
                    ingress_controller=args.ingress_controller,
                ),
                opts=child,
            )
            self.orchestrator_address = orchestrator.address
            self.orchestrator_secret = pulumi.Output.secret(secret_value)
        AiWorkerPool(
            f"{name}-pool",
            AiWorkerPoolArgs(
                namespace=ns.metadata["name"],
                livepeer_image=images["livepeer"],
                python_image=images["python"],
                models=models,
                orchestrator_address=dial,
                secret_name=secret.metadata["name"],
                replicas=args.replicas,
                runner=args.runner,
                weights=args.weights,
                image_pull_secrets=args.image_pull_secrets,
                depends_on=args.gpu_nodes,
                nodes=args.gpu_placement,
                storage_class=args.storage_class,
            ),
            opts=child,
        )
        self._network_policies(args, ns.metadata["name"])
        self.namespace = args.namespace
        self.register_outputs({"namespace": self.namespace, "orchestrator_address": self.orchestrator_address})

    def _network_policies(self, args: AiWorkersArgs, namespace: pulumi.Input[str]) -> None:
        """Nothing in the namespace takes a connection but the orchestrator, from the ingress controller and the
        workers (so no other pod can post forged results to it); the workers, which run what gateways send,
        reach DNS, their orchestrator and the internet, not the cluster's networks nor the node's metadata. With
        an orchestrator elsewhere (perhaps across the VPN), they reach any address but the metadata service."""
        deny_ingress(namespace, self)
        allow_certificate_challenges(namespace, self)
        in_cluster = args.external_orchestrator is None
        if in_cluster:
            allow_ingress(
                f"{ORCHESTRATOR}-callers",
                namespace,
                labels(ORCHESTRATOR),
                tcp(AI_ORCHESTRATOR_PORT),
                [INGRESS_CONTROLLER, pods(labels(WORKER))],
                self,
            )
        to_orchestrator = [reach([pods(labels(ORCHESTRATOR))], tcp(AI_ORCHESTRATOR_PORT))] if in_cluster else []
        internet_egress(
            f"{WORKER}-egress",
            namespace,
            labels(WORKER),
            args.private_cidrs if in_cluster else (),
            to_orchestrator,
            self,
        )
