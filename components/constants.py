"""Shared facts of the platform: ports, labels and taints.

Every number or label that appears both in a security rule and in a Kubernetes object comes from here
(or from stack config), so the two can never drift apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Kubernetes control plane and node ports (OKE documentation, terraform-oci-oke modules/network/locals.tf).
KUBE_API_PORT = 6443
OKE_CONTROL_PLANE_PORT = 12250
KUBELET_PORT = 10250
KUBE_PROXY_HEALTH_PORT = 10256
NODE_PORT_RANGE = (30000, 32767)
DNS_PORT = 53
# Metrics Prometheus scrapes on the nodes themselves: the node exporter (kube-prometheus-stack's DaemonSet, host
# network) and coturn's exporter on the TURN nodes.
NODE_EXPORTER_PORT = 9100
TURN_METRICS_PORT = 9641
# The system pods' ports the GPU pods may reach: the AI orchestrator's service port (HTTPS and gRPC), and Kafka's
# TLS listener for the jobs. An NSG rule opens its port on every pod of the system pods' subnet, so each is one no
# other system pod listens on: not Kafka's usual 9093, which is Alertmanager's (kube-prometheus-stack); Strimzi
# takes any listener port from 9092 but 9404 and 9999 (ListenersValidator.java at 1.2.0). KEDA's listener is
# for KEDA alone, a system pod.
# Isaac Sim's WebRTC livestream (source/apps/isaacsim.exp.full.streaming.kit at isaac-sim/IsaacSim v6.0.1:
# primaryStream.signalPort, primaryStream.streamPort): signalling over TCP, media over UDP. The simulation
# fleet's viewers reach them through a network load balancer per instance.
ISAAC_SIGNAL_PORT = 49100
ISAAC_MEDIA_PORT = 47998
AI_ORCHESTRATOR_PORT = 8935
KAFKA_TLS_PORT = 9193
KAFKA_SCALER_PORT = 9094

# Player-facing ports. TURN over TLS reaches players on the load balancer's 443 (ingress-nginx passes it through by
# server name to coturn's TLS listener on the TURN nodes, which only the system pods reach).
TURN_LISTENING_PORT = 3478
TURN_TLS_PORT = 5349
TURNS_PUBLIC_PORT = 443
DEFAULT_RELAY_PORT_RANGE = (49152, 65535)
LOAD_BALANCER_LISTENER_PORTS = (80, 443)

# What listens on a TURN node's own addresses (host network): the relay range must stay clear of all of it,
# or the NSG rule that opens the range to players would open these too.
TURN_NODE_HOST_PORTS: dict[str, tuple[int, int]] = {
    "sshd": (22, 22),
    "STUN/TURN": (TURN_LISTENING_PORT, TURN_LISTENING_PORT),
    "TURN over TLS (from the ingress controller)": (TURN_TLS_PORT, TURN_TLS_PORT),
    "node exporter": (NODE_EXPORTER_PORT, NODE_EXPORTER_PORT),
    "coturn's exporter": (TURN_METRICS_PORT, TURN_METRICS_PORT),
    "kubelet health": (10248, 10248),
    "kube-proxy metrics": (10249, 10249),
    "kubelet": (KUBELET_PORT, KUBELET_PORT),
    "kube-proxy health": (KUBE_PROXY_HEALTH_PORT, KUBE_PROXY_HEALTH_PORT),
    "NodePorts": NODE_PORT_RANGE,
}

# ICMP "destination unreachable / fragmentation needed": path MTU discovery.
PATH_DISCOVERY_ICMP = (3, 4)

TURN_NODE_LABEL = ("app.pixel/turn", "true")
# The TURN DaemonSet and its coturn container (components/turn.py), as alerts and dashboard queries name them.
TURN_DAEMONSET = "turn"
COTURN_CONTAINER = "coturn"
# The stream pods' name label, and the prefix of each build's stream Deployment and autoscaler (`stream-<build>`),
# as the alerts and dashboards match them; the session service (Deployment and Service).
STREAM_DEPLOYMENT = "stream"
STREAM_BUILD_DEPLOYMENTS = f"{STREAM_DEPLOYMENT}-.+"
"""A PromQL regular expression matching every build's stream Deployment and autoscaler (and their pods, but for
the image pre-pull's, which are named like them)."""
STREAM_PREPULL = f"{STREAM_DEPLOYMENT}-image-prepull"
# The label naming a stream pod's build (the session service reads it: session/streams.py), and the label of the
# session service's per-build series (session/metrics.py) that each build's autoscaler selects.
BUILD_LABEL = "pixelstream.io/build"
BUILD_METRIC_LABEL = "build"
# A stream pod's termination grace beyond its drain: the drain's last check and Unreal's own shutdown. What a node
# being removed must wait for, too (the GPU pool's eviction grace).
STREAM_TERMINATION_MARGIN_SECONDS = 30
SESSION_SERVICE = "session"
GPU_NODE_LABEL = ("app.pixel/gpu", "true")
AUTOSCALER_NODE_LABEL = ("oke.oraclecloud.com/cluster_autoscaler", "managed")

_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def label_problem(key: str, value: str) -> str | None:
    """Why `key=value` is not a Kubernetes node label, or None when it is one."""
    if not _LABEL_KEY.match(key):
        return f"{key!r} is not a Kubernetes label key (an optional DNS prefix and a name of up to 63 characters)"
    if not _LABEL_VALUE.match(value):
        return f"{value!r} is not a Kubernetes label value (up to 63 letters, digits, '-', '_', '.')"
    return None


@dataclass(frozen=True)
class Taint:
    """A node taint applied by the kubelet when the node registers."""

    key: str
    value: str
    effect: str = "NoSchedule"

    def __post_init__(self) -> None:
        if not _LABEL_KEY.match(self.key):
            raise ValueError(f"taint key {self.key!r} is not a valid Kubernetes label key")
        if not _LABEL_VALUE.match(self.value):
            raise ValueError(f"taint value {self.value!r} is not a valid Kubernetes label value")
        if self.effect not in TAINT_EFFECTS:
            raise ValueError(f"taint effect {self.effect!r} is not one of {', '.join(TAINT_EFFECTS)}")

    def __str__(self) -> str:
        return f"{self.key}={self.value}:{self.effect}"

    def toleration(self) -> dict[str, str]:
        """The pod toleration that lets a workload run despite this taint."""
        return {"key": self.key, "operator": "Exists", "effect": self.effect}


TURN_TAINT = Taint(*TURN_NODE_LABEL, "NoSchedule")
GPU_TAINT = Taint("nvidia.com/gpu", "present", "NoSchedule")

# Every node carries the name of its pool; add-ons and load balancers use it to pick the default pool.
POOL_LABEL_KEY = "app.pixel/pool"
DEFAULT_POOL = "default"

# GPU resources advertised by the device plugin: whole GPUs, or time-sliced shares of one.
GPU_RESOURCE = "nvidia.com/gpu"
SHARED_GPU_RESOURCE = "nvidia.com/gpu.shared"

# Pod priorities on GPU nodes (PriorityClass name, value). Streams preempt the warm-capacity placeholders the
# moment they need a GPU; at 0 they preempt nothing else (every other pod's default is 0 too). The placeholders
# stay above the cluster autoscaler's expendable cutoff: pods below it never make it add a node, and the
# placeholders exist to do exactly that (OKE Cluster Autoscaler add-on, expendablePodsPriorityCutoff, -10).
STREAM_PRIORITY = ("pixelstream-stream", 0)
WARM_CAPACITY_PRIORITY = ("pixelstream-warm-capacity", -5)
AUTOSCALER_EXPENDABLE_CUTOFF = -10

# What a stack declares itself (pixelstream:environment): the policy pack is strictest with production.
ENVIRONMENTS = ("development", "staging", "production")

INGRESS_CLASS = "nginx"
# The AI orchestrator's Service, and its one path the world may reach: the memory storage's randomly named files
# (workloads/ai_workers/orchestrator.py says why).
AI_ORCHESTRATOR = "ai-orchestrator"
AI_ORCHESTRATOR_FILES = "/stream"
# OKE's block-volume storage class: persistent volumes on OKE (an existing cluster names its own in config).
OKE_STORAGE_CLASS = "oci-bv"
# An OCI block volume's size in GB, smallest to largest.
BLOCK_VOLUME_GBS = (50, 32768)
# ConfigMaps with this label are loaded by Grafana's dashboard sidecar.
GRAFANA_DASHBOARD_LABEL = ("grafana_dashboard", "1")

# Default address plan: a /16 VCN with room to grow every subnet, and overlay ranges outside it.
DEFAULT_VCN_CIDR = "10.0.0.0/16"
DEFAULT_API_ENDPOINT_SUBNET = "10.0.0.0/28"
DEFAULT_BASTION_SUBNET = "10.0.0.16/28"
DEFAULT_LOAD_BALANCER_SUBNET = "10.0.2.0/24"
DEFAULT_TURN_SUBNET = "10.0.30.0/24"
DEFAULT_WORKERS_SUBNET = "10.0.64.0/18"
# VCN-native pod networking: the system pods (default and TURN pools) and the stream pods (GPU pool) in subnets
# of their own, so the TURN relay can be allowed to reach exactly the stream pods.
DEFAULT_PODS_SUBNET = "10.0.128.0/18"
DEFAULT_STREAM_PODS_SUBNET = "10.0.192.0/19"
# OKE's VCN-native CNI gives every node this many pod addresses in its pod subnet (its default maxPodsPerNode).
PODS_PER_NODE = 31
DEFAULT_PODS_CIDR = "10.244.0.0/16"
DEFAULT_SERVICES_CIDR = "10.96.0.0/16"
