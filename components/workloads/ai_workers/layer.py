"""The AI worker pool declared from the stack config, on the platform below it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pulumi

from ...media_path import media_path
from .component import AiWorkers, AiWorkersArgs

if TYPE_CHECKING:
    from ...addons.layer import AddonLayer
    from ...config import StackConfig
    from ...oci.layer import OciLayer


def declare_ai_workers(
    config: StackConfig, infra: OciLayer, addons: AddonLayer, opts: pulumi.ResourceOptions
) -> dict[str, Any]:
    """The workload and the stack outputs it adds."""
    workers = config.ai_workers
    orchestrator = workers.orchestrator
    external = orchestrator.mode == "external"
    pool = AiWorkers(
        "ai-workers",
        AiWorkersArgs(
            models=[model.spec() for model in workers.models],
            namespace=workers.namespace,
            replicas=workers.replicas,
            external_orchestrator=orchestrator.address if external else None,
            secret=orchestrator.secret,
            host=None if external else orchestrator.host,
            cluster_issuer=orchestrator.issuer if orchestrator.host and addons.cluster_issuers else None,
            gateway_cidrs=orchestrator.gateway_cidrs,
            worker_cidrs=orchestrator.worker_cidrs,
            images=workers.images,
            image_pull_secrets=workers.image_pull_secrets,
            runner=workers.runner.settings(),
            weights=workers.weights.settings(),
            system_nodes=infra.nodes("default"),
            gpu_nodes=[*infra.nodes("gpu"), *addons.gpu_plugin],
            ingress_controller=addons.ingress_controller,
            gpu_placement=config.cluster.placement().gpu,
            storage_class=infra.storage_class,
            private_cidrs=media_path(config).private_cidrs,
        ),
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(providers=[infra.provider])),
    )
    outputs: dict[str, Any] = {
        "aiWorkersNamespace": pool.namespace,
        "aiOrchestratorAddress": pool.orchestrator_address,
    }
    if pool.orchestrator_secret is not None:
        outputs["aiOrchestratorSecret"] = pool.orchestrator_secret
    return outputs
