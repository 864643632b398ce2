"""The queue-driven GPU jobs' configuration (`jobs.*`) and its checks."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic.alias_generators import to_snake

from ...config_base import INT32_MAX, ConfigError, ConfigModel, Range
from ..config import (
    ContainerResourcesConfig,
    WorkloadConfig,
    check_namespace,
    check_pull_secrets,
    check_requests_and_limits,
)
from ..images import image_problem
from .component import PRODUCER, ExternalKafka
from .kafka import KafkaPool
from .scaled_jobs import Display, JobType

if TYPE_CHECKING:
    from ...config import StackConfig

# Kubernetes names the Job after the ScaledJob plus a suffix, and the pods after the Job plus another.
_JOB_TYPE = re.compile(r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$")
# A Kafka topic that is also a KafkaTopic resource's name (a DNS subdomain).
_TOPIC = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,198}[a-z0-9])?$")
_GROUP = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_BOOTSTRAP = re.compile(r"^[A-Za-z0-9.-]+:\d{1,5}(,[A-Za-z0-9.-]+:\d{1,5})*$")
_BUCKET = re.compile(r"^[A-Za-z0-9._-]{1,256}$")
_PREFIX = re.compile(r"^([A-Za-z0-9._-]+/)*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
# The environment the stack gives every job (the job contract, docs/hybrid.md): a job type's `env` may not replace it.
CONTRACT_ENV = (
    "JOB_TYPE",
    "POD_NAME",
    "KAFKA_BOOTSTRAP_SERVERS",
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_USERNAME",
    "KAFKA_PASSWORD",
    "KAFKA_CA_FILE",
    "KAFKA_TOPIC",
    "KAFKA_CONSUMER_GROUP",
    "KAFKA_RESULTS_TOPIC",
    "RESULTS_ACCESS",
    "RESULTS_BUCKET",
    "RESULTS_NAMESPACE",
    "RESULTS_PREFIX",
    "OCI_REGION",
    "NVIDIA_DRIVER_CAPABILITIES",
    "DISPLAY",
)
# A Kafka node's volume (a persistent volume claim; OCI block volumes go up to 32768 GB).
_KAFKA_VOLUME_GBS = Range(1, 32768, "GB")
ResultsAccess = Literal["workloadIdentity", "preAuthenticatedRequest"]


class KafkaPoolConfig(ContainerResourcesConfig):
    """One KRaft node pool: its nodes, their volumes and their Kafka containers' requests and limits."""

    replicas: int = 3
    """Its nodes. Brokers: 1-100, and the topics' replication factor is min(3, brokers), their minimum in-sync
    replicas one less. Controllers: 1, 3 or 5 (a KRaft quorum of an odd size; 3 survives one loss)."""
    storage_gbs: Annotated[int, _KAFKA_VOLUME_GBS] = 100
    """Each node's volume."""
    cpu: str = "500m"
    memory: str = "2Gi"
    cpu_limit: str = "2"
    memory_limit: str = "4Gi"

    def pool(self) -> KafkaPool:
        return KafkaPool(
            replicas=self.replicas,
            storage_gbs=self.storage_gbs,
            resources=self.resources(),
        )


class ControllerPoolConfig(KafkaPoolConfig):
    """KRaft controllers keep only the cluster's metadata: small volumes and memory."""

    storage_gbs: Annotated[int, _KAFKA_VOLUME_GBS] = 10
    memory: str = "1Gi"
    memory_limit: str = "2Gi"


class StrimziConfig(ConfigModel):
    """mode strimzi only: the Kafka cluster the Strimzi operator runs."""

    controllers: ControllerPoolConfig = ControllerPoolConfig()
    brokers: KafkaPoolConfig = KafkaPoolConfig()
    client_namespaces: list[str] = []
    """Namespaces besides the jobs' (and KEDA's) whose pods may reach the brokers' TLS listener (your producers'),
    by Strimzi's NetworkPolicy, where the network plugin enforces it."""


class KafkaConfig(ConfigModel):
    mode: Literal["strimzi", "external"] = "strimzi"
    """`strimzi`: a Kafka cluster run by the Strimzi operator in the jobs' namespace; `external`: one you run."""
    bootstrap_servers: str | None = None
    """`external` only (required): its listener, `host:port[,host:port...]`."""
    username: str | None = None
    """`external` only (required): the one user the jobs and KEDA sign in as."""
    password: str | None = None
    """`external` only (required): that user's password, refused in plain text: `pulumi config set --secret
    --path jobs.kafka.password <password>`."""
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    """`external` only: how they sign in, always over TLS (SASL_SSL: a task's message carries its
    pre-authenticated request)."""
    ca_certificate: str | None = None
    """`external` only: PEM of the CA that signs the brokers' certificates, when no public CA does."""
    strimzi: StrimziConfig = StrimziConfig()

    def external(self) -> ExternalKafka:
        return ExternalKafka(
            bootstrap_servers=self.bootstrap_servers or "",
            username=self.username or "",
            password=self.password or "",
            sasl_mechanism=self.sasl_mechanism,
            ca_certificate=self.ca_certificate,
        )


class ResultsConfig(ConfigModel):
    bucket: str | None = None
    """The OCI Object Storage bucket the stack declares (private); default `<cluster name>-job-results`."""
    prefix: str = "results/"
    """Where results go: empty, or ending in `/` (each job type under `<prefix><type>/`); the lifecycle rule
    covers it."""
    retention_days: Annotated[int, Range(1, 3650)] = 30
    """Results older than this many days are deleted by the bucket's lifecycle rule."""
    access: ResultsAccess | None = None
    """How a job writes: OKE workload identity (OKE ENHANCED clusters only; the default on OKE), or a
    pre-authenticated request the producer puts in each message (the default elsewhere)."""


class DisplayConfig(ConfigModel):
    mode: Literal["offscreen", "virtual"] = "offscreen"
    """`offscreen`: the app renders without a display (`offscreenArgs`); `virtual`: an X server sidecar."""
    offscreen_args: list[str] = ["-RenderOffScreen"]
    """`offscreen`: the app's offscreen flag, appended to its arguments."""
    image: str | None = None
    """`virtual`: the sidecar's image with an X server (Xvfb, `DISPLAY=:99`); default the job's own image."""
    resolution_width: Annotated[int, Range(320, 7680)] = 1920
    """`virtual`: the screen's width."""
    resolution_height: Annotated[int, Range(240, 4320)] = 1080
    """`virtual`: its height."""


class JobTypeConfig(ContainerResourcesConfig):
    image: str = ""
    """Required: the job's container image (yours), pinned by tag or digest."""
    args: list[str] = []
    """More arguments."""
    env: dict[str, str] = {}
    """More environment variables (not the job contract's); a `secure:` value is passed from the Secret
    `<name>-env`."""
    topic: str | None = None
    """Where its tasks arrive; default `<type>-tasks`."""
    results_topic: str | None = None
    """Where it reports its results; default `<type>-results`."""
    consumer_group: str | None = None
    """The consumer group KEDA measures; default `<type>-jobs`."""
    partitions: Annotated[int, Range(1, 1000)] = 6
    """The topics' partitions (declared with Strimzi; what the external topic has otherwise)."""
    lag_threshold: Annotated[int, Range(1, 1000)] = 1
    """Pending messages per Job: 1 starts one Job per message."""
    max_replicas: Annotated[int, Range(1, 1000)] = 4
    """Jobs at once, at most; no more than partitions (a consumer beyond them would get no message)."""
    polling_interval_seconds: Annotated[int, Range(1, 3600)] = 10
    """How often KEDA checks the lag."""
    active_deadline_seconds: Annotated[int, Range(60, 7 * 86400)] = 3600
    """A Job's deadline."""
    backoff_limit: Annotated[int, Range(0, 10)] = 0
    """A Job's retries (an unfinished task stays in the lag, so KEDA starts a new Job for it anyway)."""
    gpus: Annotated[int, Range(1, 8)] = 1
    """GPUs per Job, of the device plugin's resource (time-sliced GPUs allow 1)."""
    cpu: str = "2"
    memory: str = "8Gi"
    cpu_limit: str = "4"
    memory_limit: str = "16Gi"
    run_as_user: Annotated[int, Range(1, INT32_MAX)] = 1000
    """The (non-root) user the job runs as."""
    display: DisplayConfig = DisplayConfig()

    def topics(self, name: str) -> tuple[str, str]:
        topic = f"{name}-tasks" if self.topic is None else self.topic
        return (topic, f"{name}-results" if self.results_topic is None else self.results_topic)

    def group(self, name: str) -> str:
        return f"{name}-jobs" if self.consumer_group is None else self.consumer_group

    def settings(self, name: str, secrets: Collection[str] = ()) -> JobType:
        """The job type `name`; `secrets`: the stack's secret values (an `env` value among them stays secret)."""
        topic, results_topic = self.topics(name)
        display = self.display
        return JobType(
            name=name,
            image=self.image,
            topic=topic,
            results_topic=results_topic,
            consumer_group=self.group(name),
            args=tuple(self.args),
            env=dict(self.env),
            secret_env=frozenset(key for key, value in self.env.items() if value in secrets),
            partitions=self.partitions,
            lag_threshold=self.lag_threshold,
            max_replicas=self.max_replicas,
            polling_interval_seconds=self.polling_interval_seconds,
            active_deadline_seconds=self.active_deadline_seconds,
            backoff_limit=self.backoff_limit,
            gpus=self.gpus,
            resources=self.resources(),
            run_as_user=self.run_as_user,
            display=Display(
                mode=display.mode,
                offscreen_args=tuple(display.offscreen_args),
                image=display.image,
                resolution=(display.resolution_width, display.resolution_height),
            ),
        )


class JobsConfig(WorkloadConfig):
    """Queue-driven GPU jobs ([the job contract](docs/hybrid.md#the-job-contract)), off by default; they need
    addons.gpuPlugin and
    oci:region, where the results bucket lives."""

    enabled: bool = False
    namespace: str = "gpu-jobs"
    kafka: KafkaConfig = KafkaConfig()
    results: ResultsConfig = ResultsConfig()
    image_pull_secrets: list[str] = []
    """Existing docker-registry Secrets in the namespace, on every job pod."""
    types: dict[str, JobTypeConfig] = {}
    """The job types by name (1-40 lowercase letters, digits and dashes, starting with a letter), at least one:
    each a ScaledJob with its topics and consumer group."""
    CREDENTIALS = (("kafka", "password"),)

    def check(self, config: StackConfig) -> None:
        check_jobs(config)

    def results_access(self, config: StackConfig) -> ResultsAccess:
        if self.results.access is not None:
            return self.results.access
        return "workloadIdentity" if config.cluster.oke else "preAuthenticatedRequest"


def check_jobs(config: StackConfig) -> None:
    jobs = config.jobs
    check_namespace(config, "jobs")
    check_pull_secrets("jobs", jobs.image_pull_secrets)
    _check_kafka(jobs)
    _check_results(config)
    if not jobs.types:
        raise ConfigError("jobs.types", "{} has no job type; add one (jobs.types.<name>.image) or disable jobs")
    plugin = config.addons.gpu_plugin
    if not plugin.enabled:
        raise ConfigError(
            "addons.gpuPlugin.enabled", "false leaves the GPU jobs no GPU to request; enable it or disable jobs"
        )
    seen: dict[str, str] = {}
    for name, job in jobs.types.items():
        _check_job_type(config, name, job)
        for key, topic in zip(("topic", "resultsTopic"), job.topics(name), strict=True):
            if topic in seen:
                raise ConfigError(f"jobs.types.{name}.{key}", f"{topic} is already {seen[topic]}'s topic")
            seen[topic] = f"jobs.types.{name}.{key}"


def _check_kafka(jobs: JobsConfig) -> None:
    kafka = jobs.kafka
    if kafka.mode == "external":
        if kafka.bootstrap_servers is None or not _BOOTSTRAP.match(kafka.bootstrap_servers):
            raise ConfigError(
                "jobs.kafka.bootstrapServers",
                f"{kafka.bootstrap_servers} is not host:port[,host:port] (required with mode: external)",
            )
        if "strimzi" in kafka.model_fields_set:
            raise ConfigError("jobs.kafka.strimzi", "is only used with mode: strimzi")
        _check_external_credentials(kafka)
        return
    if kafka.bootstrap_servers is not None:
        raise ConfigError("jobs.kafka.bootstrapServers", "is only used with mode: external (Strimzi's is known)")
    for key in ("username", "password", "saslMechanism", "caCertificate"):
        if to_snake(key) in kafka.model_fields_set:
            raise ConfigError(
                f"jobs.kafka.{key}",
                "is only used with mode: external (Strimzi's users and their passwords are the stack's)",
            )
    strimzi = kafka.strimzi
    if strimzi.controllers.replicas not in (1, 3, 5):
        raise ConfigError(
            "jobs.kafka.strimzi.controllers.replicas",
            f"{strimzi.controllers.replicas} is not 1, 3 or 5 (a KRaft quorum of an odd size; 3 survives one loss)",
        )
    if not 1 <= strimzi.brokers.replicas <= 100:
        raise ConfigError("jobs.kafka.strimzi.brokers.replicas", f"{strimzi.brokers.replicas} is outside 1-100")
    for pool in ("controllers", "brokers"):
        spec: KafkaPoolConfig = getattr(strimzi, pool)
        check_requests_and_limits(f"jobs.kafka.strimzi.{pool}", spec)
    for index, namespace in enumerate(strimzi.client_namespaces):
        if not re.match(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", namespace):
            raise ConfigError(f"jobs.kafka.strimzi.clientNamespaces[{index}]", f"{namespace} is not a namespace name")


def _check_external_credentials(kafka: KafkaConfig) -> None:
    """An external Kafka is signed in to, never open, and always over TLS (SASL_SSL): a task's message carries its
    pre-authenticated request, a write credential."""
    if not kafka.username:
        raise ConfigError(
            "jobs.kafka.username", "is required with mode: external: the user the jobs and KEDA sign in as"
        )
    if not kafka.password:
        raise ConfigError(
            "jobs.kafka.password",
            "is required with mode: external: pulumi config set --secret --path jobs.kafka.password <password>",
        )
    if kafka.ca_certificate is not None and not kafka.ca_certificate.strip().startswith("-----BEGIN CERTIFICATE-----"):
        raise ConfigError("jobs.kafka.caCertificate", "is not a PEM certificate (-----BEGIN CERTIFICATE----- ...)")


def _check_results(config: StackConfig) -> None:
    results = config.jobs.results
    if results.bucket is not None and not _BUCKET.match(results.bucket):
        raise ConfigError(
            "jobs.results.bucket", f"{results.bucket} is not a bucket name (letters, digits, '-', '_', '.')"
        )
    if not _PREFIX.match(results.prefix) or len(results.prefix) > 512:
        raise ConfigError("jobs.results.prefix", f"{results.prefix!r} is not a prefix such as results/ (ending in /)")
    if results.access == "workloadIdentity" and not (config.cluster.oke and config.cluster.type == "ENHANCED"):
        raise ConfigError(
            "jobs.results.access",
            "workloadIdentity needs an OKE ENHANCED cluster (OKE's workload identity); use preAuthenticatedRequest",
        )


def _check_job_type(config: StackConfig, name: str, job: JobTypeConfig) -> None:
    path = f"jobs.types.{name}"
    if not _JOB_TYPE.match(name):
        raise ConfigError(path, f"{name!r} is not a job type name (1-40 lowercase letters, digits, dashes)")
    problem = image_problem(job.image) if job.image else "is required: your job's image, by tag or digest"
    if problem:
        raise ConfigError(f"{path}.image", problem)
    for key, topic in zip(("topic", "resultsTopic"), job.topics(name), strict=True):
        if not _TOPIC.match(topic):
            raise ConfigError(f"{path}.{key}", f"{topic!r} is not a topic name (lowercase letters, digits, '-', '.')")
    if not _GROUP.match(job.group(name)):
        raise ConfigError(f"{path}.consumerGroup", f"{job.group(name)!r} is not a consumer group name")
    if job.group(name).startswith(PRODUCER):
        # The producer's ACL covers groups starting with its name: it could consume this group and swallow tasks.
        raise ConfigError(
            f"{path}.consumerGroup",
            f"{job.group(name)} starts with {PRODUCER!r}, the producer's own groups; give the job type another group",
        )
    if job.max_replicas > job.partitions:
        raise ConfigError(
            f"{path}.maxReplicas",
            f"{job.max_replicas} is above partitions ({job.partitions}): consumers beyond the topic's partitions "
            "get no message (KEDA stops at the partitions)",
        )
    if job.gpus > 1 and config.addons.gpu_plugin.streams_per_gpu > 1:
        raise ConfigError(
            f"{path}.gpus", f"{job.gpus} cannot be scheduled while GPUs are time-sliced (one share per pod at most)"
        )
    check_requests_and_limits(path, job)
    _check_job_arguments(path, job)


def _check_job_arguments(path: str, job: JobTypeConfig) -> None:
    for key, values in (("args", job.args), ("display.offscreenArgs", job.display.offscreen_args)):
        for index, argument in enumerate(values):
            if not argument or any(c in argument for c in "\n\r\0"):
                raise ConfigError(f"{path}.{key}[{index}]", f"{argument!r} is not a command-line argument")
    for variable in job.env:
        if not _ENV_NAME.match(variable) or variable in CONTRACT_ENV:
            raise ConfigError(
                f"{path}.env.{variable}",
                "is not an environment variable name of your own (the stack sets " + ", ".join(CONTRACT_ENV) + ")",
            )
    display = job.display
    if display.image is not None:
        problem = image_problem(display.image)
        if problem:
            raise ConfigError(f"{path}.display.image", problem)
