"""GpuJobs: queue-driven GPU jobs in their namespace. Kafka (Strimzi's, or an external one), KEDA (its chart,
pinned) with a ScaledJob per job type, a service account per job type, and the results bucket.

Every Kafka client signs in. With Strimzi's Kafka, each job type, the producer and KEDA are users of their own
(kafka.py): a job type reads its task topic, commits its group and writes its results topic; the producer writes
the task topics and reads the results topics (its own groups and transactional IDs start with `producer`); KEDA
only describes the task topics and the jobs' groups. With an external Kafka, the jobs and KEDA use the one
credential given."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from ...addons.charts import CHARTS, ENGINE_NAMESPACES, PART_OF, Chart, ReleaseArgs, namespace, release
from ...constants import KAFKA_TLS_PORT, OKE_CONTROL_PLANE_PORT
from ...placement import OKE_PLACEMENT, Placement
from ..images import floating
from ..network_policies import LINK_LOCAL, addresses, deny_ingress, internet_egress, pods, reach, tcp
from .kafka import (
    CLUSTER_LABEL,
    CLUSTER_NAME,
    Acl,
    KafkaClient,
    KafkaCluster,
    KafkaClusterArgs,
    KafkaPool,
    Topic,
    credentials_secret,
)
from .results import Access, JobResults, JobResultsArgs
from .scaled_jobs import (
    JOB_POD_LABELS,
    SECURITY_PROTOCOL,
    JobContext,
    JobType,
    KafkaAccess,
    env_secret_name,
    scaled_job_spec,
)

KEDA_API_VERSION = "keda.sh/v1alpha1"
PRODUCER = "producer"
SCALER = "keda"
DESCRIBE = ("Describe",)


def service_account(job: JobType) -> str:
    return f"gpu-job-{job.name}"


def job_user(job: JobType) -> str:
    return f"job-{job.name}"


def kafka_clients(job_types: Sequence[JobType]) -> list[KafkaClient]:
    """The users of Strimzi's Kafka and their ACLs: each job type's, the producer's and KEDA's."""
    jobs = [
        KafkaClient(
            job_user(job),
            (
                Acl("topic", job.topic, ("Read", "Describe")),
                Acl("group", job.consumer_group, ("Read", "Describe")),
                Acl("topic", job.results_topic, ("Write", "Describe")),
            ),
        )
        for job in job_types
    ]
    producer = KafkaClient(
        PRODUCER,
        (
            *(Acl("topic", job.topic, ("Write", "Describe")) for job in job_types),
            *(Acl("topic", job.results_topic, ("Read", "Describe")) for job in job_types),
            Acl("group", PRODUCER, ("Read", "Describe"), pattern="prefix"),
            # A transactional producer (PAIA's is) names its transactions; ours start with `producer`.
            Acl("transactionalId", PRODUCER, ("Write", "Describe"), pattern="prefix"),
        ),
    )
    # What KEDA's kafka scaler calls (DescribeTopics, ListConsumerGroupOffsets, ListOffsets) needs Describe only.
    scaler = KafkaClient(
        SCALER,
        (
            *(Acl("topic", job.topic, DESCRIBE) for job in job_types),
            *(Acl("group", job.consumer_group, DESCRIBE) for job in job_types),
        ),
    )
    return [*jobs, producer, scaler]


@dataclass(frozen=True)
class StrimziKafka:
    """Kafka run by the Strimzi operator in the jobs' namespace."""

    controllers: KafkaPool
    brokers: KafkaPool
    client_namespaces: Sequence[str] = ()


@dataclass(frozen=True)
class ExternalKafka:
    """A Kafka you run, over TLS (its messages carry the tasks' pre-authenticated requests): where it is and the one
    credential the jobs and KEDA sign in with."""

    bootstrap_servers: str
    username: str
    password: pulumi.Input[str]
    sasl_mechanism: str = "SCRAM-SHA-512"
    ca_certificate: str | None = None
    """PEM of the CA that signs its brokers' certificates; None: a public CA does."""


@dataclass(kw_only=True)
class GpuJobsArgs:
    namespace: str
    private_cidrs: Sequence[str]
    """The cluster's own networks (media_path): the jobs reach none of them but Kafka and OCI's sign-in."""
    job_types: Sequence[JobType]
    kafka: StrimziKafka | ExternalKafka
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
    workload_identity_cidrs: Sequence[str] = ()
    """Where OKE's workload identity endpoint is (the API endpoint's subnet), with workload identity."""


class GpuJobs(pulumi.ComponentResource):
    """Outputs: `namespace`, `bootstrap_servers`, `kafka` (what a producer needs besides its password: listener,
    protocol, mechanism, the CA's Secret), `producer_password` (a secret; None with an external Kafka),
    `results_bucket`, `results_namespace`, `topics` (by job type: tasks, results, consumer group)."""

    namespace: str
    bootstrap_servers: str
    kafka: dict[str, str | None]
    producer_password: pulumi.Output[str] | None
    results_bucket: pulumi.Output[str]
    results_namespace: pulumi.Output[str]
    topics: dict[str, dict[str, str]]

    def __init__(self, name: str, args: GpuJobsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("pixelstream:index:GpuJobs", name, None, opts)
        for job in args.job_types:
            if floating(job.image):
                pulumi.log.warn(f"job type {job.name} runs {job.image}, a moving tag; pin it", self)
        ns = namespace(args.namespace, self, depends_on=args.system_nodes)
        identities = [self._service_account(job, args.namespace, ns) for job in args.job_types]
        accounts = {job.name: service_account(job) for job in args.job_types}
        keda_namespace = namespace(ENGINE_NAMESPACES["keda"], self)
        keda = self._keda(args, ns, keda_namespace)
        access, engines = self._kafka(name, args, ns, keda)
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
                service_accounts=accounts,
                policy_name=args.policy_name,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        context = JobContext(
            kafka=access,
            results_access=args.results_access,
            results_bucket=results.bucket,
            results_namespace=results.object_namespace,
            results_prefix=args.results_prefix,
            region=args.region,
            service_accounts=accounts,
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
                opts=pulumi.ResourceOptions(
                    parent=self, depends_on=[keda, *engines, *identities, *args.gpu_nodes, *secrets]
                ),
            )
        self._network_policies(args)
        self.namespace = args.namespace
        self.bootstrap_servers = access.bootstrap_servers
        self.kafka = {
            "bootstrapServers": access.bootstrap_servers,
            "securityProtocol": SECURITY_PROTOCOL,
            "saslMechanism": access.sasl_mechanism,
            "caSecret": access.ca_secret,
        }
        self.results_bucket = results.bucket
        self.results_namespace = results.object_namespace
        self.topics = {
            job.name: {"tasks": job.topic, "results": job.results_topic, "consumerGroup": job.consumer_group}
            for job in args.job_types
        }
        self.register_outputs({"namespace": self.namespace, "topics": self.topics})

    def _network_policies(self, args: GpuJobsArgs) -> None:
        """Nothing in the namespace takes a connection that no policy names: the jobs take none, and Strimzi's
        own NetworkPolicies open each Kafka listener to its clients only (`networkPolicyPeers`). The jobs, which
        run what producers send, reach DNS, Kafka's TLS listener (or the external Kafka's ports), OKE's workload
        identity endpoint when they sign in with it, and the internet (Object Storage, models): never the
        cluster's other networks nor the node's metadata service."""
        deny_ingress(args.namespace, self)
        if isinstance(args.kafka, ExternalKafka):
            ports = sorted({int(server.rsplit(":", 1)[1]) for server in args.kafka.bootstrap_servers.split(",")})
            # Its brokers may be anywhere (across the VPN too): their ports at any address but the metadata service.
            kafka = reach([{"ipBlock": {"cidr": "0.0.0.0/0", "except": [LINK_LOCAL]}}], tcp(*ports))
        else:
            brokers = {CLUSTER_LABEL: CLUSTER_NAME, "strimzi.io/kind": "Kafka"}
            kafka = reach([pods(brokers)], tcp(KAFKA_TLS_PORT))
        services = [kafka]
        if args.workload_identity_cidrs:
            services.append(reach(addresses(args.workload_identity_cidrs), tcp(OKE_CONTROL_PLANE_PORT)))
        internet_egress("job-egress", args.namespace, JOB_POD_LABELS, args.private_cidrs, services, self)

    def _service_account(self, job: JobType, namespace: str, ns: k8s.core.v1.Namespace) -> k8s.core.v1.ServiceAccount:
        """The job type's identity towards OCI (workload identity): no Role or binding names it."""
        return k8s.core.v1.ServiceAccount(
            service_account(job),
            metadata={
                "name": service_account(job),
                "namespace": namespace,
                "labels": PART_OF,
                "annotations": {"pixelstream/why": f"identity of {job.name} jobs towards OCI; no Kubernetes role"},
            },
            automount_service_account_token=False,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[ns]),
        )

    def _kafka(
        self, name: str, args: GpuJobsArgs, ns: k8s.core.v1.Namespace, keda: k8s.helm.v3.Release
    ) -> tuple[KafkaAccess, list[pulumi.Resource]]:
        """How the jobs and KEDA reach Kafka, and what the ScaledJobs wait for (Strimzi's Kafka cluster, or
        nothing)."""
        if isinstance(args.kafka, ExternalKafka):
            return self._external_kafka(args, args.kafka, ns, keda), []
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
                clients=kafka_clients(args.job_types),
                nodes=args.placement.system,
                depends_on=[ns, *args.system_nodes],
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.producer_password = kafka.passwords[PRODUCER]
        scaler = self._scaler_authentication(args.namespace, keda, SCALER, kafka.passwords[SCALER], None)
        access = KafkaAccess(
            bootstrap_servers=kafka.bootstrap_servers,
            scaler_bootstrap_servers=kafka.scaler_bootstrap_servers,
            credentials={job.name: credentials_secret(job_user(job)) for job in args.job_types},
            scaler_authentication=scaler,
            ca_secret=kafka.ca_secret,
        )
        return access, [kafka]

    def _external_kafka(
        self, args: GpuJobsArgs, kafka: ExternalKafka, ns: k8s.core.v1.Namespace, keda: k8s.helm.v3.Release
    ) -> KafkaAccess:
        """The given credential, as a Secret the jobs read (and the CA's certificate, when given)."""
        self.producer_password = None
        secret = "kafka-credentials"
        k8s.core.v1.Secret(
            secret,
            metadata={"name": secret, "namespace": args.namespace, "labels": PART_OF},
            string_data={"username": kafka.username, "password": pulumi.Output.secret(kafka.password)},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[ns]),
        )
        ca_secret = None
        if kafka.ca_certificate:
            ca_secret = "kafka-ca"
            k8s.core.v1.Secret(
                ca_secret,
                metadata={"name": ca_secret, "namespace": args.namespace, "labels": PART_OF},
                string_data={"ca.crt": kafka.ca_certificate},
                opts=pulumi.ResourceOptions(parent=self, depends_on=[ns]),
            )
        scaler = self._scaler_authentication(args.namespace, keda, kafka.username, kafka.password, kafka.ca_certificate)
        return KafkaAccess(
            bootstrap_servers=kafka.bootstrap_servers,
            scaler_bootstrap_servers=kafka.bootstrap_servers,
            credentials={job.name: secret for job in args.job_types},
            scaler_authentication=scaler,
            sasl_mechanism=kafka.sasl_mechanism,
            scaler_tls=True,
            ca_secret=ca_secret,
        )

    def _scaler_authentication(
        self,
        jobs_namespace: str,
        keda: k8s.helm.v3.Release,
        username: str,
        password: pulumi.Input[str],
        ca_certificate: str | None,
    ) -> str:
        """KEDA's credential, in a Secret of KEDA's own namespace (the only Secrets it may read: restrict.secret),
        and the ClusterTriggerAuthentication that hands it to the kafka scaler."""
        name = f"{jobs_namespace}-kafka-scaler"
        data: dict[str, pulumi.Input[str]] = {"username": username, "password": pulumi.Output.secret(password)}
        if ca_certificate:
            data["ca"] = ca_certificate
        k8s.core.v1.Secret(
            name,
            metadata={"name": name, "namespace": ENGINE_NAMESPACES["keda"], "labels": PART_OF},
            string_data=data,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[keda]),
        )
        k8s.apiextensions.CustomResource(
            f"{name}-authentication",
            api_version=KEDA_API_VERSION,
            kind="ClusterTriggerAuthentication",
            metadata={"name": name, "labels": PART_OF},
            spec={"secretTargetRef": [{"parameter": key, "name": name, "key": key} for key in sorted(data)]},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[keda]),
        )
        return name

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

    def _keda(
        self, args: GpuJobsArgs, ns: k8s.core.v1.Namespace, keda_namespace: k8s.core.v1.Namespace
    ) -> k8s.helm.v3.Release:
        """KEDA, watching the jobs' namespace only, reading Secrets of its own namespace only; ScaledJobs need no
        metrics server (that serves HorizontalPodAutoscalers)."""
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
