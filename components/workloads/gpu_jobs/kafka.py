"""KafkaCluster: the Strimzi operator (its chart, pinned) and the Kafka cluster it runs for the GPU jobs: a `Kafka`
with two KRaft node pools (controllers, brokers) sized from config, and a `KafkaTopic` per topic.

The cluster listens inside the Kubernetes cluster only (plain, port 9092). Strimzi's generated NetworkPolicy
admits the jobs' namespace, KEDA's and the producers' namespaces named in config, where the cluster's network
plugin enforces NetworkPolicies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from ...addons.charts import CHARTS, ENGINE_NAMESPACES, PART_OF, Chart, ReleaseArgs, namespace, release
from ...placement import NodePlacement

API_VERSION = "kafka.strimzi.io/v1"
CLUSTER_LABEL = "strimzi.io/cluster"
# The Kafka version Strimzi 1.2.0 runs by default (its kafka-versions.yaml), stated so an operator upgrade does not
# change it unnoticed.
KAFKA_VERSION = "4.3.1"
PLAIN_PORT = 9092
NAMESPACE_LABEL = "kubernetes.io/metadata.name"


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
    cluster_name: str = "jobs"
    controllers: KafkaPool
    brokers: KafkaPool
    topics: Sequence[Topic] = ()
    storage_class: str | None = None
    """Of the pools' volumes; None: the cluster's default class."""
    client_namespaces: Sequence[str] = ()
    """Namespaces whose pods may connect, besides the cluster's own and KEDA's."""
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


def kafka_spec(args: KafkaClusterArgs, peer_namespaces: Sequence[str]) -> dict[str, Any]:
    factor, min_isr = replication(args.brokers.replicas)
    peers = [{"namespaceSelector": {"matchLabels": {NAMESPACE_LABEL: ns}}} for ns in peer_namespaces]
    return {
        "kafka": {
            "version": KAFKA_VERSION,
            "listeners": [
                {
                    "name": "plain",
                    "port": PLAIN_PORT,
                    "type": "internal",
                    "tls": False,
                    # The jobs' own namespace (an empty pod selector there), KEDA's and the producers'.
                    "networkPolicyPeers": [{"podSelector": {}}, *peers],
                }
            ],
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
            "template": {"pod": _pod_template(args.nodes)},
        },
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
    """Outputs: `bootstrap_servers` (`host:port` of the plain listener), `release` (the operator's)."""

    bootstrap_servers: str
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
        peers = [ENGINE_NAMESPACES["keda"], *args.client_namespaces]
        kafka = k8s.apiextensions.CustomResource(
            args.cluster_name,
            api_version=API_VERSION,
            kind="Kafka",
            metadata={"name": args.cluster_name, "namespace": args.namespace, "labels": PART_OF},
            spec=kafka_spec(args, peers),
            opts=after_operator,
        )
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
                    "config": {"retention.ms": topic.retention_hours * 3_600_000},
                },
                opts=pulumi.ResourceOptions(parent=self, depends_on=[kafka]),
            )
        self.bootstrap_servers = f"{args.cluster_name}-kafka-bootstrap.{args.namespace}.svc:{PLAIN_PORT}"
        self.register_outputs({"bootstrap_servers": self.bootstrap_servers})
