"""KafkaCluster: the Strimzi operator (its chart, pinned) and the Kafka cluster it runs for the GPU jobs: a `Kafka`
with two KRaft node pools (controllers, brokers) sized from config, a `KafkaTopic` per topic, and a `KafkaUser` per
client with exactly its ACLs (Kafka's own authorizer, `authorization: simple`).

Every client authenticates with SCRAM-SHA-512 under a password the stack generates (pulumi_random), which reaches
Kubernetes only in the client's Secret, and the KafkaUser reads it from there. Two listeners, inside the
Kubernetes cluster only:

- `tls` (9093): TLS with Strimzi's cluster CA (Secret `<cluster>-cluster-ca-cert`, `ca.crt`), for the jobs and
  the producers;
- `scaler` (9094): no TLS, for KEDA. KEDA, restricted to the Secrets of its own namespace (the resolver reads
  them there, pkg/scaling/resolver at v2.20.2), cannot read the cluster CA Strimzi writes into the jobs'
  namespace. SCRAM never sends the password, and KEDA's user may only describe the task topics and the jobs'
  groups: what KEDA sends across it in clear is topic offsets. Kafka's ACLs cannot name a listener, so any user
  could sign in here too; only the NetworkPolicy below keeps other namespaces off it (open until the cluster
  enforces NetworkPolicies, and until the stack brings its own cluster CA that KEDA can read).

Strimzi's generated NetworkPolicy admits the jobs' namespace and the producers' namespaces named in config to
`tls`, KEDA's to `scaler`, where the cluster's network plugin enforces NetworkPolicies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from ...addons.charts import CHARTS, ENGINE_NAMESPACES, PART_OF, Chart, ReleaseArgs, namespace, release
from ...constants import KAFKA_SCALER_PORT, KAFKA_TLS_PORT
from ...placement import NodePlacement

API_VERSION = "kafka.strimzi.io/v1"
CLUSTER_LABEL = "strimzi.io/cluster"
# The Kafka cluster's name: its pods carry it in CLUSTER_LABEL.
CLUSTER_NAME = "jobs"
# The Kafka version Strimzi 1.2.0 runs by default (its kafka-versions.yaml), stated so an operator upgrade does not
# change it unnoticed.
KAFKA_VERSION = "4.3.1"
NAMESPACE_LABEL = "kubernetes.io/metadata.name"
# Where Strimzi keeps the cluster CA's certificate, in the cluster's namespace (the key is in `<cluster>-cluster-ca`).
CA_SECRET_SUFFIX = "-cluster-ca-cert"
CA_KEY = "ca.crt"


@dataclass(frozen=True)
class Acl:
    """Operations allowed on one topic or group (KafkaUser `spec.authorization.acls`)."""

    resource: Literal["topic", "group", "transactionalId"]
    name: str
    operations: tuple[str, ...]
    pattern: Literal["literal", "prefix"] = "literal"

    def spec(self) -> dict[str, Any]:
        return {
            "resource": {"type": self.resource, "name": self.name, "patternType": self.pattern},
            "operations": list(self.operations),
        }


@dataclass(frozen=True)
class KafkaClient:
    """A client of the cluster: its KafkaUser (and user name) and what it may do."""

    name: str
    acls: tuple[Acl, ...]


# The User Operator writes a Secret of its own per KafkaUser (`<secretPrefix><user>`); the prefix keeps those
# apart from the stack's Secrets (`<user>-kafka-credentials`, `<type>-env`) whatever the names.
USER_SECRET_PREFIX = "kafka-user-"
# What one client may take of the brokers (KafkaUser `spec.quotas`, per broker): tasks and results are small
# messages, so a client that floods is a broken or hostile one, and it must not fill the disks of every type.
CLIENT_QUOTAS = {"producerByteRate": 1_048_576, "consumerByteRate": 4_194_304, "requestPercentage": 25}
# A topic holds at most this much per partition, and no message larger than a task or result needs.
TOPIC_RETENTION_BYTES = 1_073_741_824
MAX_MESSAGE_BYTES = 1_048_576


def credentials_secret(client: str) -> str:
    """The Secret holding a client's `username` and `password`, in the cluster's namespace."""
    return f"{client}-kafka-credentials"


@dataclass(frozen=True)
class KafkaPool:
    """One KRaft node pool: replicas, the volume of each, and the resources of its Kafka containers."""

    replicas: int
    storage_gbs: int
    resources: dict[str, Any]


@dataclass(frozen=True)
class Topic:
    name: str
    partitions: int
    retention_hours: int = 168


@dataclass(kw_only=True)
class KafkaClusterArgs(ReleaseArgs):
    """`depends_on`: the jobs' namespace first (the operator's chart binds its roles there)."""

    namespace: str
    """Where the Kafka cluster and its topics live (the jobs' namespace, which the operator watches)."""
    cluster_name: str = CLUSTER_NAME
    controllers: KafkaPool
    brokers: KafkaPool
    topics: Sequence[Topic] = ()
    storage_class: str | None = None
    """Of the pools' volumes; None: the cluster's default class."""
    client_namespaces: Sequence[str] = ()
    """Namespaces whose pods may connect to the TLS listener, besides the cluster's own."""
    clients: Sequence[KafkaClient] = ()
    """Every client: a KafkaUser each, with a generated password."""
    chart: Chart = CHARTS["strimzi-kafka-operator"]


def replication(brokers: int) -> tuple[int, int]:
    """(replication factor, min in-sync replicas) for a cluster of `brokers`: three copies where there are three
    brokers, and writes that survive losing one."""
    factor = min(3, brokers)
    return factor, max(1, factor - 1)


def pool_spec(role: str, pool: KafkaPool, storage_class: str | None, nodes: NodePlacement) -> dict[str, Any]:
    volume: dict[str, Any] = {
        "id": 0,
        "type": "persistent-claim",
        "size": f"{pool.storage_gbs}Gi",
        "deleteClaim": False,
        "kraftMetadata": "shared",
    }
    if storage_class:
        volume["class"] = storage_class
    return {
        "replicas": pool.replicas,
        "roles": [role],
        "storage": {"type": "jbod", "volumes": [volume]},
        "resources": pool.resources,
        "template": {"pod": _pod_template(nodes)},
    }


def kafka_spec(args: KafkaClusterArgs, client_namespaces: Sequence[str]) -> dict[str, Any]:
    factor, min_isr = replication(args.brokers.replicas)
    clients = [{"namespaceSelector": {"matchLabels": {NAMESPACE_LABEL: ns}}} for ns in client_namespaces]
    keda = {"namespaceSelector": {"matchLabels": {NAMESPACE_LABEL: ENGINE_NAMESPACES["keda"]}}}
    scram = {"type": "scram-sha-512"}
    return {
        "kafka": {
            "version": KAFKA_VERSION,
            "listeners": [
                # The jobs' own namespace (an empty pod selector there) and the producers'.
                {
                    "name": "tls",
                    "port": KAFKA_TLS_PORT,
                    "type": "internal",
                    "tls": True,
                    "authentication": scram,
                    "networkPolicyPeers": [{"podSelector": {}}, *clients],
                },
                {
                    "name": "scaler",
                    "port": KAFKA_SCALER_PORT,
                    "type": "internal",
                    "tls": False,
                    "authentication": scram,
                    "networkPolicyPeers": [keda],
                },
            ],
            # Kafka's StandardAuthorizer: a user may do what its KafkaUser's ACLs allow, and nothing else.
            "authorization": {"type": "simple"},
            "config": {
                "offsets.topic.replication.factor": factor,
                "transaction.state.log.replication.factor": factor,
                "transaction.state.log.min.isr": min_isr,
                "default.replication.factor": factor,
                "min.insync.replicas": min_isr,
                # Topics exist because the stack declares them, never because a client mistyped one.
                "auto.create.topics.enable": False,
            },
        },
        "entityOperator": {
            "topicOperator": {"resources": _small_resources()},
            "userOperator": {"resources": _small_resources(), "secretPrefix": USER_SECRET_PREFIX},
            "template": {"pod": _pod_template(args.nodes)},
        },
    }


def user_spec(client: KafkaClient) -> dict[str, Any]:
    """The KafkaUser: SCRAM-SHA-512 with the password from the client's Secret, and its ACLs."""
    password = {"valueFrom": {"secretKeyRef": {"name": credentials_secret(client.name), "key": "password"}}}
    return {
        "authentication": {"type": "scram-sha-512", "password": password},
        "authorization": {"type": "simple", "acls": [acl.spec() for acl in client.acls]},
        "quotas": CLIENT_QUOTAS,
    }


def _pod_template(nodes: NodePlacement) -> dict[str, Any]:
    template: dict[str, Any] = {"securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}}
    if nodes.labels:
        template["affinity"] = nodes.required_affinity()
    if nodes.taints:
        template["tolerations"] = nodes.tolerations()
    return template


def _small_resources() -> dict[str, Any]:
    return {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}


class KafkaCluster(pulumi.ComponentResource):
    """Outputs: `bootstrap_servers` (`host:port` of the TLS listener), `scaler_bootstrap_servers` (KEDA's),
    `ca_secret` (the Secret with the cluster CA's `ca.crt`), `passwords` (by client, secrets), `release` (the
    operator's)."""

    bootstrap_servers: str
    scaler_bootstrap_servers: str
    ca_secret: str
    passwords: dict[str, pulumi.Output[str]]
    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: KafkaClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("pixelstream:index:KafkaCluster", name, None, opts)
        operator_namespace = namespace(ENGINE_NAMESPACES["strimzi-kafka-operator"], self)
        values = {
            # The operator watches the jobs' namespace only (RoleBindings there, no cluster-wide watch).
            "watchNamespaces": [args.namespace],
            "nodeSelector": args.nodes.node_selector(),
            "tolerations": args.nodes.tolerations(),
        }
        self.release = release(self, args, operator_namespace, values)
        after_operator = pulumi.ResourceOptions(parent=self, depends_on=[self.release])
        labels = {**PART_OF, CLUSTER_LABEL: args.cluster_name}
        for role, pool in (("controller", args.controllers), ("broker", args.brokers)):
            k8s.apiextensions.CustomResource(
                f"{args.cluster_name}-{role}s",
                api_version=API_VERSION,
                kind="KafkaNodePool",
                metadata={"name": f"{role}s", "namespace": args.namespace, "labels": labels},
                spec=pool_spec(role, pool, args.storage_class, args.nodes),
                opts=after_operator,
            )
        kafka = k8s.apiextensions.CustomResource(
            args.cluster_name,
            api_version=API_VERSION,
            kind="Kafka",
            metadata={"name": args.cluster_name, "namespace": args.namespace, "labels": PART_OF},
            spec=kafka_spec(args, args.client_namespaces),
            opts=after_operator,
        )
        after_kafka = pulumi.ResourceOptions(parent=self, depends_on=[kafka])
        factor, _ = replication(args.brokers.replicas)
        for topic in args.topics:
            k8s.apiextensions.CustomResource(
                topic.name,
                api_version=API_VERSION,
                kind="KafkaTopic",
                metadata={"name": topic.name, "namespace": args.namespace, "labels": labels},
                spec={
                    "partitions": topic.partitions,
                    "replicas": factor,
                    "config": {
                        "retention.ms": topic.retention_hours * 3_600_000,
                        "retention.bytes": TOPIC_RETENTION_BYTES,
                        "max.message.bytes": MAX_MESSAGE_BYTES,
                    },
                },
                opts=after_kafka,
            )
        self.passwords = {client.name: self._user(args, client, labels, kafka) for client in args.clients}
        service = f"{args.cluster_name}-kafka-bootstrap.{args.namespace}.svc"
        self.bootstrap_servers = f"{service}:{KAFKA_TLS_PORT}"
        self.scaler_bootstrap_servers = f"{service}:{KAFKA_SCALER_PORT}"
        self.ca_secret = f"{args.cluster_name}{CA_SECRET_SUFFIX}"
        self.register_outputs({"bootstrap_servers": self.bootstrap_servers})

    def _user(
        self, args: KafkaClusterArgs, client: KafkaClient, labels: dict[str, str], kafka: pulumi.Resource
    ) -> pulumi.Output[str]:
        """The client's generated password, its Secret, and its KafkaUser."""
        child = pulumi.ResourceOptions(parent=self)
        password = random.RandomPassword(f"{client.name}-kafka-password", length=40, special=False, opts=child)
        secret = k8s.core.v1.Secret(
            credentials_secret(client.name),
            metadata={"name": credentials_secret(client.name), "namespace": args.namespace, "labels": PART_OF},
            string_data={"username": client.name, "password": password.result},
            opts=child,
        )
        k8s.apiextensions.CustomResource(
            f"{client.name}-kafka-user",
            api_version=API_VERSION,
            kind="KafkaUser",
            metadata={"name": client.name, "namespace": args.namespace, "labels": labels},
            spec=user_spec(client),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[kafka, secret]),
        )
        return pulumi.Output.secret(password.result)
