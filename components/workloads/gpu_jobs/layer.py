"""The queue-driven GPU jobs declared from the stack config, on the platform below them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pulumi

from ...media_path import media_path
from .component import ExternalKafka, GpuJobs, GpuJobsArgs, StrimziKafka

if TYPE_CHECKING:
    from ...addons.layer import AddonLayer
    from ...config import StackConfig
    from ...oci.layer import OciLayer


def declare_gpu_jobs(
    config: StackConfig, name: str, infra: OciLayer, addons: AddonLayer, opts: pulumi.ResourceOptions
) -> dict[str, Any]:
    """The workload and the stack outputs it adds. `name`: the cluster's, the default bucket's prefix."""
    jobs = config.jobs
    kafka = jobs.kafka
    engine: StrimziKafka | ExternalKafka = kafka.external()
    if kafka.mode == "strimzi":
        strimzi = kafka.strimzi
        engine = StrimziKafka(strimzi.controllers.pool(), strimzi.brokers.pool(), tuple(strimzi.client_namespaces))
    access = jobs.results_access(config)
    workload = GpuJobs(
        "gpu-jobs",
        GpuJobsArgs(
            namespace=jobs.namespace,
            job_types=[job.settings(job_name, config.secrets) for job_name, job in jobs.types.items()],
            kafka=engine,
            compartment_id=config.compartment_id,
            region=pulumi.Config("oci").require("region"),
            results_bucket=jobs.results.bucket or f"{name}-job-results",
            results_prefix=jobs.results.prefix,
            results_retention_days=jobs.results.retention_days,
            results_access=access,
            cluster_id=infra.cluster.cluster_id if access == "workloadIdentity" else None,
            gpu_resource=addons.outputs.get("gpuResource", "nvidia.com/gpu"),
            placement=config.cluster.placement(),
            storage_class=infra.storage_class,
            image_pull_secrets=jobs.image_pull_secrets,
            policy_name=f"{name}-gpu-job-results",
            system_nodes=infra.nodes("default"),
            gpu_nodes=[*infra.nodes("gpu"), *addons.gpu_plugin],
            private_cidrs=media_path(config).private_cidrs,
            workload_identity_cidrs=(config.network.subnets.api_endpoint,) if access == "workloadIdentity" else (),
        ),
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(providers=[infra.provider])),
    )
    outputs: dict[str, Any] = {
        "jobsNamespace": workload.namespace,
        "jobsBootstrapServers": workload.bootstrap_servers,
        "jobsKafka": workload.kafka,
        "jobsTopics": workload.topics,
        "jobsResultsBucket": workload.results_bucket,
        "jobsResultsNamespace": workload.results_namespace,
    }
    if workload.producer_password is not None:
        # Your producer signs in as `producer` (jobsKafka says where and how); the password stays a secret.
        outputs["jobsProducerPassword"] = workload.producer_password
    return outputs
