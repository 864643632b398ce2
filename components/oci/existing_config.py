"""`cluster.target: existing`: what the stack needs to know about a Kubernetes cluster it did not create (how to
reach it, its own network facts, how it labels its nodes), and the keys that only mean something on OKE."""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Any

import yaml
from pydantic.alias_generators import to_camel, to_snake

from ..config_base import Cidr, ConfigError, ConfigModel, KeyPattern, check_unique
from ..constants import GPU_NODE_LABEL, GPU_TAINT, TURN_NODE_LABEL, TURN_TAINT, label_problem
from ..placement import NodePlacement, parse_taint

if TYPE_CHECKING:
    from ..config import StackConfig

# Kubernetes minors an existing cluster may run: 1.30 is the first that serves ValidatingAdmissionPolicy (GA; the
# session service's pod patches are held by one) and has sidecar containers on by default (the jobs' virtual
# display, since 1.29); 1.34 the newest this program is rendered and validated against.
EXISTING_MINORS = range(30, 35)
# The existing cluster's credentials: `secure:` in the stack file, never repeated in a message.
EXISTING_CLUSTER_CREDENTIALS: tuple[KeyPattern, ...] = (("cluster", "existing", "kubeconfig"),)
_VERSION = re.compile(r"^v1\.(\d+)\.\d+$")
# A Pulumi stack name: `stack`, `project/stack` or `organization/project/stack`.
_STACK_NAME = re.compile(r"^([A-Za-z0-9_.-]+/){0,2}[A-Za-z0-9_.-]+$")
_OUTPUT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
_STORAGE_CLASS = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")

# Keys of this namespace that configure OKE, its network or its add-ons, by the config model that holds them.
OKE_ONLY_KEYS = {
    # clientCidrs: on OKE the NSGs admit players from these only; an existing cluster has no NSG to hold them.
    "network": ("vcn_cidr", "subnets", "on_premises", "client_cidrs"),
    "cluster": ("type", "cni", "endpoint"),
    "addons.ingressNginx": ("load_balancer", "min_bandwidth_mbps", "max_bandwidth_mbps"),
    "addons.gpuPlugin": ("addon_version",),
}


class NodeRoleConfig(ConfigModel):
    labels: dict[str, str] = {}
    """The labels that pick the role's nodes (all must match), used by every pod placed there: add-ons and
    engines (system; empty: any node); TURN and the session service's list of TURN nodes (turn); streams, warm
    capacity, the pre-pull, dcgm-exporter, the device plugin and GPU jobs (gpu). TURN and GPU need at least
    one."""
    taints: list[str] = []
    """Taints the role's nodes carry, as `key=value:Effect` or `key:Effect`, tolerated by its pods."""

    def placement(self) -> NodePlacement:
        return NodePlacement(dict(self.labels), tuple(parse_taint(t) for t in self.taints))


class TurnNodesConfig(NodeRoleConfig):
    labels: dict[str, str] = dict([TURN_NODE_LABEL])
    taints: list[str] = [str(TURN_TAINT)]


class GpuNodesConfig(NodeRoleConfig):
    labels: dict[str, str] = dict([GPU_NODE_LABEL])
    taints: list[str] = [str(GPU_TAINT)]


class ExistingNodesConfig(ConfigModel):
    """How the cluster labels its nodes. The defaults are this project's OKE labels and taints, for a cluster
    labelled the same way; a cluster with labels of its own (`nvidia.com/gpu.present=true`, ...) names them."""

    system: NodeRoleConfig = NodeRoleConfig()
    turn: TurnNodesConfig = TurnNodesConfig()
    gpu: GpuNodesConfig = GpuNodesConfig()


class ExistingClusterConfig(ConfigModel):
    kubeconfig: str | None = None
    """A kubeconfig for the cluster, set as a secret: `pulumi config set --secret --path cluster.existing.kubeconfig
    "$(cat kubeconfig)"`. Exactly one of kubeconfig and stackReference."""
    stack_reference: str | None = None
    """Or another stack whose output holds the kubeconfig (`organization/project/stack`)."""
    stack_output: str = "kubeconfig"
    """That stack's output."""
    node_cidrs: list[Cidr] = []
    """Required: the networks of the cluster's nodes, which the TURN relay never reaches; they may not overlap
    cluster.podsCidr or .servicesCidr."""
    stream_pod_cidrs: list[Cidr] = []
    """Pod addresses only the GPU nodes' pods get (an IP pool of their own, inside cluster.podsCidr): the only
    addresses the TURN relay may reach. Empty: streaming needs streaming.turn.allowRelayToAllPods: true, and the
    relay then reaches every pod (the plan warns)."""
    storage_class: str | None = None
    """Storage class of Prometheus's and Kafka's volumes (on OKE, `oci-bv`); unset: the cluster's default
    class."""
    nodes: ExistingNodesConfig = ExistingNodesConfig()


def check_existing_cluster(config: StackConfig) -> None:
    """How to reach the cluster, its network facts and node roles; nothing set that only OKE would use."""
    _check_oke_only_keys_unset(config)
    existing = config.cluster.existing
    path = "cluster.existing"
    if (existing.kubeconfig is None) == (existing.stack_reference is None):
        raise ConfigError(
            f"{path}.kubeconfig",
            "set exactly one of kubeconfig (as a secret: pulumi config set --secret --path "
            "cluster.existing.kubeconfig ...) and stackReference (the stack whose output holds it)",
        )
    if existing.kubeconfig is not None and not _is_kubeconfig(existing.kubeconfig):
        # A secret: the message never repeats it.
        raise ConfigError(
            f"{path}.kubeconfig", "(secret, not shown) is not a kubeconfig: a YAML mapping with clusters and users"
        )
    if existing.stack_reference is not None and not _STACK_NAME.match(existing.stack_reference):
        raise ConfigError(
            f"{path}.stackReference",
            f"{existing.stack_reference} is not a stack name (organization/project/stack, e.g. my-org/platform/prod)",
        )
    if not _OUTPUT_NAME.match(existing.stack_output):
        raise ConfigError(f"{path}.stackOutput", f"{existing.stack_output} is not a stack output name")
    version = _VERSION.match(config.cluster.kubernetes_version)
    if not version or int(version[1]) not in EXISTING_MINORS:
        raise ConfigError(
            "cluster.kubernetesVersion",
            f"{config.cluster.kubernetes_version} is not a version this program supports on an existing cluster: "
            f"v1.{EXISTING_MINORS.start}.x to v1.{EXISTING_MINORS.stop - 1}.x (set the cluster's own version)",
        )
    if existing.storage_class is not None and not _STORAGE_CLASS.match(existing.storage_class):
        raise ConfigError(f"{path}.storageClass", f"{existing.storage_class} is not a storage class name")
    _check_network_facts(config)
    _check_node_roles(config)


def _check_oke_only_keys_unset(config: StackConfig) -> None:
    for where, fields in OKE_ONLY_KEYS.items():
        model: Any = config
        for part in where.split("."):
            model = getattr(model, to_snake(part))
        for field in fields:
            if field in model.model_fields_set:
                raise ConfigError(
                    f"{where}.{to_camel(field)}",
                    "configures OKE, which cluster.target: existing does not create or use; remove it",
                )
    if "node_pools" in config.model_fields_set:
        raise ConfigError(
            "nodePools", "are OKE node pools, which cluster.target: existing does not create; remove them"
        )
    if config.addons.gpu_plugin.owner == "okeAddon":
        raise ConfigError(
            "addons.gpuPlugin.owner", "okeAddon configures OKE, which cluster.target: existing does not use; use chart"
        )
    if config.addons.cluster_autoscaler.model_fields_set:
        raise ConfigError(
            "addons.clusterAutoscaler",
            "is OKE's add-on for the stack's own node pools; an existing cluster scales its nodes itself",
        )


def _is_kubeconfig(text: str) -> bool:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    if not isinstance(document, dict):
        return False
    return all(isinstance(document.get(key), list) and document[key] for key in ("clusters", "users"))


def _check_network_facts(config: StackConfig) -> None:
    existing, cluster = config.cluster.existing, config.cluster
    path = "cluster.existing"
    if not existing.node_cidrs:
        raise ConfigError(
            f"{path}.nodeCidrs",
            "[] is empty; list the networks of the cluster's nodes (the relay must never reach them)",
        )
    check_unique(f"{path}.nodeCidrs", existing.node_cidrs)
    check_unique(f"{path}.streamPodCidrs", existing.stream_pod_cidrs)
    pods, services = ipaddress.IPv4Network(cluster.pods_cidr), ipaddress.IPv4Network(cluster.services_cidr)
    if pods.overlaps(services):
        raise ConfigError("cluster.servicesCidr", f"{services} overlaps cluster.podsCidr ({pods})")
    for index, cidr in enumerate(existing.node_cidrs):
        for key, other in (("podsCidr", pods), ("servicesCidr", services)):
            if ipaddress.IPv4Network(cidr).overlaps(other):
                raise ConfigError(f"{path}.nodeCidrs[{index}]", f"{cidr} overlaps cluster.{key} ({other})")
    for index, cidr in enumerate(existing.stream_pod_cidrs):
        if not ipaddress.IPv4Network(cidr).subnet_of(pods):
            raise ConfigError(
                f"{path}.streamPodCidrs[{index}]", f"{cidr} is not inside cluster.podsCidr ({pods}), where pods live"
            )


def _check_node_roles(config: StackConfig) -> None:
    nodes = config.cluster.existing.nodes
    for role in ("system", "turn", "gpu"):
        spec: NodeRoleConfig = getattr(nodes, role)
        path = f"cluster.existing.nodes.{role}"
        if role != "system" and not spec.labels:
            raise ConfigError(
                f"{path}.labels", f"{{}} would put {role.upper()} pods on any node; name the labels its nodes carry"
            )
        for key, value in spec.labels.items():
            problem = label_problem(key, value)
            if problem:
                raise ConfigError(f"{path}.labels", problem)
        for index, taint in enumerate(spec.taints):
            try:
                parse_taint(taint)
            except ValueError as error:
                raise ConfigError(f"{path}.taints[{index}]", f"{error} (key=value:Effect or key:Effect)") from None
