"""GpuJobs: queue-driven GPU jobs in their namespace. Kafka (Strimzi's, or an external one), KEDA (its chart,
pinned) with a ScaledJob per job type, the jobs' service account, and the results bucket."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from ...addons.charts import CHARTS, ENGINE_NAMESPACES, PART_OF, Chart, ReleaseArgs, namespace, release
from ...placement import OKE_PLACEMENT, Placement
from ..images import floating
from .kafka import KafkaCluster, KafkaClusterArgs, KafkaPool, Topic
from .results import Access, JobResults, JobResultsArgs
from .scaled_jobs import JobContext, JobType, env_secret_name, scaled_job_spec

SERVICE_ACCOUNT = "gpu-job"
KEDA_API_VERSION = "keda.sh/v1alpha1"


@dataclass(frozen=True)
class StrimziKafka:
    """Kafka run by the Strimzi operator in the jobs' namespace."""

    controllers: KafkaPool
    brokers: KafkaPool
    client_namespaces: Sequence[str] = ()


@dataclass(kw_only=True)
class GpuJobsArgs:
    namespace: str
    job_types: Sequence[JobType]
    kafka: StrimziKafka | str
    """Strimzi's Kafka, or the bootstrap servers (`host:port,...`) of an external one."""
    compartment_id: pulumi.Input[str]
    region: str
    results_bucket: str
    results_prefix: str = "results/"
    results_retention_days: int = 30
    results_access: Access = "preAuthenticatedRequest"
    cluster_id: pulumi.Input[str] | None = None
    """The OKE cluster, for workload identity; None elsewhere."""
    gpu_resource: str = "nvidia.com/gpu"
    placement: Placement = OKE_PLACEMENT
    storage_class: str | None = None
    image_pull_secrets: Sequence[str] = ()
    policy_name: str = "gpu-job-results"
    system_nodes: Sequence[pulumi.Resource] = ()
    """What the namespace and the engines wait for: the nodes the operators run on."""
    gpu_nodes: Sequence[pulumi.Resource] = ()
    """What the ScaledJobs wait for: the GPU nodes' pool and the device plugin."""
    keda_chart: Chart = field(default_factory=lambda: CHARTS["keda"])


class GpuJobs(pulumi.ComponentResource):
    """Outputs: `namespace`, `bootstrap_servers`, `results_bucket`, `results_namespace`, `topics` (by job type:
    tasks, results, consumer group)."""

    namespace: str
    bootstrap_servers: str
    results_bucket: pulumi.Output[str]
    results_namespace: pulumi.Output[str]
    topics: dict[str, dict[str, str]]

    def __init__(self, name: str, args: GpuJobsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("pixelstream:index:GpuJobs", name, None, opts)
        for job in args.job_types:
            if floating(job.image):
                pulumi.log.warn(f"job type {job.name} runs {job.image}, a moving tag; pin it", self)
        ns = namespace(args.namespace, self, depends_on=args.system_nodes)
        account = k8s.core.v1.ServiceAccount(
            SERVICE_ACCOUNT,
            metadata={
                "name": SERVICE_ACCOUNT,
                "namespace": args.namespace,
                "labels": PART_OF,
                # No Role or binding names it: its token (mounted only for workload identity) may do nothing in
                # the Kubernetes API.
                "annotations": {"pixelstream/why": "identity of the GPU jobs towards OCI; no Kubernetes role"},
            },
            automount_service_account_token=False,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[ns]),
        )
        bootstrap, engines = self._kafka(name, args, ns)
        keda = self._keda(args, ns)
        results = JobResults(
            f"{name}-results",
            JobResultsArgs(
                compartment_id=args.compartment_id,
                bucket=args.results_bucket,
                region=args.region,
                prefix=args.results_prefix,
                retention_days=args.results_retention_days,
                access=args.results_access,
                cluster_id=args.cluster_id,
                namespace=args.namespace,
                service_account=SERVICE_ACCOUNT,
                policy_name=args.policy_name,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        context = JobContext(
            bootstrap_servers=bootstrap,
            results_access=args.results_access,
            results_bucket=results.bucket,
            results_namespace=results.object_namespace,
            results_prefix=args.results_prefix,
            region=args.region,
            service_account=account.metadata["name"],
            gpu_resource=args.gpu_resource,
            nodes=args.placement.gpu,
            image_pull_secrets=args.image_pull_secrets,
        )
        for job in args.job_types:
            secrets = [self._env_secret(job, args.namespace)] if job.secret_env else []
            k8s.apiextensions.CustomResource(
                job.name,
                api_version=KEDA_API_VERSION,
                kind="ScaledJob",
                metadata={"name": job.name, "namespace": args.namespace, "labels": PART_OF},
                spec=scaled_job_spec(job, context),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[keda, *engines, *args.gpu_nodes, *secrets]),
            )
        self.namespace = args.namespace
        self.bootstrap_servers = bootstrap
        self.results_bucket = results.bucket
        self.results_namespace = results.object_namespace
        self.topics = {
            job.name: {"tasks": job.topic, "results": job.results_topic, "consumerGroup": job.consumer_group}
            for job in args.job_types
        }
        self.register_outputs({"namespace": self.namespace, "topics": self.topics})

    def _kafka(self, name: str, args: GpuJobsArgs, ns: k8s.core.v1.Namespace) -> tuple[str, list[pulumi.Resource]]:
        """The bootstrap servers, and what the ScaledJobs wait for (Strimzi's Kafka cluster, or nothing)."""
        if isinstance(args.kafka, str):
            return args.kafka, []
        topics = [Topic(topic, partitions) for job in args.job_types for topic, partitions in _topics(job)]
        kafka = KafkaCluster(
            f"{name}-kafka",
            KafkaClusterArgs(
                namespace=args.namespace,
                controllers=args.kafka.controllers,
                brokers=args.kafka.brokers,
                topics=topics,
                storage_class=args.storage_class,
                client_namespaces=args.kafka.client_namespaces,
                nodes=args.placement.system,
                depends_on=[ns, *args.system_nodes],
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        return kafka.bootstrap_servers, [kafka]

    def _env_secret(self, job: JobType, namespace: pulumi.Input[str]) -> k8s.core.v1.Secret:
        """The job type's secret variables, which its pods read by reference."""
        name = env_secret_name(job)
        values = {key: pulumi.Output.secret(job.env[key]) for key in sorted(job.secret_env)}
        return k8s.core.v1.Secret(
            name,
            metadata={"name": name, "namespace": namespace, "labels": PART_OF},
            string_data=values,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _keda(self, args: GpuJobsArgs, ns: k8s.core.v1.Namespace) -> k8s.helm.v3.Release:
        """KEDA, watching the jobs' namespace only; ScaledJobs need neither its metrics server (that serves
        HorizontalPodAutoscalers) nor any Secret (the kafka trigger needs no credentials)."""
        keda_namespace = namespace(ENGINE_NAMESPACES["keda"], self)
        system = args.placement.system
        values = {
            "watchNamespace": args.namespace,
            "nodeSelector": system.node_selector(),
            "tolerations": system.tolerations(),
            "metricsServer": {"enabled": False},
            "permissions": {"operator": {"restrict": {"secret": True}}},
        }
        chart_args = ReleaseArgs(chart=args.keda_chart, depends_on=[ns, *args.system_nodes], nodes=system)
        return release(self, chart_args, keda_namespace, values)


def _topics(job: JobType) -> list[tuple[str, int]]:
    return [(job.topic, job.partitions), (job.results_topic, job.partitions)]
