"""The OCI layer's configuration: network, cluster and node pools, and their checks."""

from __future__ import annotations

import ipaddress
import json
import re
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel, to_snake

from ..config_base import Cidr, ConfigError, ConfigModel, Range, check_ranges, check_unique
from ..constants import (
    DEFAULT_API_ENDPOINT_SUBNET,
    DEFAULT_BASTION_SUBNET,
    DEFAULT_LOAD_BALANCER_SUBNET,
    DEFAULT_PODS_CIDR,
    DEFAULT_PODS_SUBNET,
    DEFAULT_RELAY_PORT_RANGE,
    DEFAULT_SERVICES_CIDR,
    DEFAULT_STREAM_PODS_SUBNET,
    DEFAULT_TURN_SUBNET,
    DEFAULT_VCN_CIDR,
    DEFAULT_WORKERS_SUBNET,
    PODS_PER_NODE,
    TURN_NODE_HOST_PORTS,
)
from ..placement import OKE_PLACEMENT, Placement
from .cluster import KUBERNETES_VERSIONS
from .existing_config import EXISTING_CLUSTER_CREDENTIALS, ExistingClusterConfig, check_existing_cluster
from .node_pool import MAX_EVICTION_GRACE_MINUTES
from .security import WORLD
from .shapes import FLEX_SHAPES, GPU_SHAPES, KNOWN_SHAPES, STREAMING_GPU_SHAPES, is_gpu, shape_sizing_problem
from .vpn_config import VPN_CREDENTIALS, OnPremisesConfig, check_on_premises

# The network and cluster layers' credentials (stack-file key paths).
OCI_CREDENTIALS = (*EXISTING_CLUSTER_CREDENTIALS, *VPN_CREDENTIALS)

if TYPE_CHECKING:
    from ..config import StackConfig

FAULT_DOMAINS = ("FAULT-DOMAIN-1", "FAULT-DOMAIN-2", "FAULT-DOMAIN-3")
MAX_AVAILABILITY_DOMAINS = 3
# OCI limits: nodes in one managed node pool, and in one cluster by type (OKE "Kubernetes Engine Limits").
MAX_NODES_PER_POOL = 1000
MAX_NODES_PER_CLUSTER = {"ENHANCED": 2000, "BASIC": 1000}

_K8S_VERSION = re.compile(r"^v1\.\d{1,2}\.\d{1,3}$")
_CLUSTER_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,30}[a-z0-9])?$")
_IMAGE = re.compile(r"^ocid1\.image\.oc\d+\.[a-z0-9-]*\.[a-z0-9]+$")


class SubnetsConfig(ConfigModel):
    """Each subnet lies inside network.vcnCidr, overlaps no other, and is no smaller than a /30 (OCI's
    smallest)."""

    api_endpoint: Cidr = DEFAULT_API_ENDPOINT_SUBNET
    """Private subnet of the Kubernetes API endpoint."""
    workers: Cidr = DEFAULT_WORKERS_SUBNET
    """Private subnet of the default and GPU pools' nodes."""
    turn: Cidr = DEFAULT_TURN_SUBNET
    """Public regional subnet of the TURN pool."""
    load_balancers: Cidr = DEFAULT_LOAD_BALANCER_SUBNET
    """Public subnet of the service load balancers."""
    pods: Cidr = DEFAULT_PODS_SUBNET
    """cluster.cni vcnNative only: private subnet of the default and TURN pools' pods. Every node of those pools
    (maxSize, else size) reserves 31 addresses in it, and OCI keeps 3: they must fit."""
    stream_pods: Cidr = DEFAULT_STREAM_PODS_SUBNET
    """cluster.cni vcnNative only: private subnet of the GPU pool's pods, the only addresses the TURN relay may
    reach; sized like pods."""
    bastion: Cidr = DEFAULT_BASTION_SUBNET
    """With a bastion only (cluster.endpoint.bastion): its private endpoint's subnet, which may reach the API on
    6443 and nothing else."""

    def in_use(self, cni: str, bastion: bool) -> dict[str, str]:
        """The subnets the stack creates, by config key: the pod subnets only with VCN-native pods, the bastion's
        only with a bastion."""
        subnets = {to_camel(name): cidr for name, cidr in self.model_dump().items()}
        if cni != "vcnNative":
            del subnets["pods"], subnets["streamPods"]
        if not bastion:
            del subnets["bastion"]
        return subnets


class PortRange(ConfigModel):
    """UDP ports, min <= max, inside 1024-65535 and clear of 3478 (STUN/TURN) and the NodePorts."""

    min: int = DEFAULT_RELAY_PORT_RANGE[0]
    """The first port."""
    max: int = DEFAULT_RELAY_PORT_RANGE[1]
    """The last port."""

    @property
    def bounds(self) -> tuple[int, int]:
        return (self.min, self.max)


class NetworkConfig(ConfigModel):
    vcn_cidr: Cidr = DEFAULT_VCN_CIDR
    """The VCN's range, /16 to /30 (OCI's limits)."""
    subnets: SubnetsConfig = SubnetsConfig()
    relay_ports: PortRange = PortRange()
    """The TURN relay's port range: the same value opens the TURN security rules and configures coturn (on an
    existing cluster, only coturn)."""
    client_cidrs: list[Cidr] = [WORLD]
    """Where players connect from: the only sources of the 80/443 listeners and of TURN. Not empty."""
    on_premises: OnPremisesConfig = OnPremisesConfig()
    """A site-to-site VPN to on-premises networks (OKE only); no VPN while cidrs is empty."""


# The Bastion service's limits (CreateBastionDetails: clientCidrBlockAllowList 1-20, maxSessionTtlInSeconds
# 1800-10800).
MAX_BASTION_CLIENT_CIDRS = 20
BASTION_SESSION_TTL_SECONDS = (1800, 10800)


class BastionConfig(ConfigModel):
    client_cidrs: list[Cidr] = []
    """Who may open a session to the API through the OCI Bastion service (your workstation's or deploy runner's
    egress address, as /32; see [the first deploy](docs/deploying.md#the-first-deploy-of-a-private-endpoint)): at
    most 20, none wider than a /16; empty: no bastion."""
    max_session_ttl_seconds: Annotated[int, Range(*BASTION_SESSION_TTL_SECONDS, "s", "the Bastion service's range")] = (
        BASTION_SESSION_TTL_SECONDS[1]
    )
    """How long one session lasts at most."""

    @property
    def enabled(self) -> bool:
        return bool(self.client_cidrs)


class EndpointConfig(ConfigModel):
    public: bool = False
    """Give the API endpoint a public IP (reachable only from allowedCidrs)."""
    allowed_cidrs: list[Cidr] = []
    """Networks that may reach the Kubernetes API on 6443; required when public."""
    allow_world_access: bool = False
    """Must be true for allowedCidrs to contain 0.0.0.0/0."""
    bastion: BastionConfig = BastionConfig()
    """An OCI bastion in front of a private endpoint: how `pulumi up` reaches the API from outside the VCN
    (python -m pixelstream.tools.bastion)."""


class ClusterConfig(ConfigModel):
    target: Literal["oke", "existing"] = "oke"
    """`oke`: the stack creates the network, the OKE cluster and its pools; `existing`: the in-cluster layers
    deploy onto a cluster the stack did not create, which cluster.existing describes. There the keys that
    configure OCI are refused: network.vcnCidr, .subnets, .clientCidrs and .onPremises, nodePools,
    cluster.type, .cni and .endpoint, addons.clusterAutoscaler, addons.gpuPlugin.owner okeAddon and .addonVersion,
    and addons.ingressNginx's load balancer and bandwidth (network.relayPorts still configures coturn)."""
    existing: ExistingClusterConfig = ExistingClusterConfig()
    """With target existing only: what the stack must know about the cluster."""
    name: str | None = None
    """The cluster's name and the prefix of the network resources' names: 1-32 lowercase letters, digits and
    dashes, starting with a letter; default `pixelstream-<stack>`."""
    type: Literal["ENHANCED", "BASIC"] = "ENHANCED"
    """The OKE cluster type."""
    kubernetes_version: str = "v1.34.2"
    """The Kubernetes version of the cluster and all its pools: on OKE one of the versions OKE offers, on an
    existing cluster its own (the charts are rendered and validated for it); see Kubernetes versions, below."""
    cni: Literal["flannel", "vcnNative"] = "vcnNative"
    """Pod networking, fixed when the cluster is created. vcnNative: pods take OCI VCN addresses from
    network.subnets.pods and .streamPods, so the relay can reach only the stream pods; flannel: an overlay that
    hides which pod is which, so streaming there needs streaming.turn.allowRelayToAllPods."""
    pods_cidr: Cidr = DEFAULT_PODS_CIDR
    """The pod overlay range, outside the VCN: flannel only on OKE; on an existing cluster, its pod range."""
    services_cidr: Cidr = DEFAULT_SERVICES_CIDR
    """The Service range, outside the VCN and the pod range; on an existing cluster, its own (kubeadm's default
    is 10.96.0.0/12)."""
    endpoint: EndpointConfig = EndpointConfig()
    """The Kubernetes API endpoint: private by default."""

    @field_validator("kubernetes_version")
    @classmethod
    def _valid_version(cls, value: str) -> str:
        if not _K8S_VERSION.match(value):
            raise ValueError(f"{value} is not a Kubernetes version such as v1.34.2")
        return value

    @property
    def oke(self) -> bool:
        return self.target == "oke"

    def placement(self) -> Placement:
        """Which nodes run system, TURN and GPU pods: this stack's pools on OKE, the configured labels otherwise."""
        if self.oke:
            return OKE_PLACEMENT
        nodes = self.existing.nodes
        return Placement(system=nodes.system.placement(), turn=nodes.turn.placement(), gpu=nodes.gpu.placement())


class NodeCyclingConfig(ConfigModel):
    """How OKE replaces the pool's nodes when their image, shape or Kubernetes version changes (node pool
    cycling, always on). Each is 0 to the pool's size, and not both 0."""

    max_surge: int = 1
    """New nodes that may join before old ones go; the TURN pool: at most 1 (one node at a time)."""
    max_unavailable: int = 0
    """Old nodes that may go before their replacements are ready: 0 for the GPU pool (never below the sessions in
    use), at most 1 for the TURN pool."""


class NodeEvictionConfig(ConfigModel):
    grace_minutes: Annotated[int, Range(0, MAX_EVICTION_GRACE_MINUTES, "min", "OKE's limit")] = (
        MAX_EVICTION_GRACE_MINUTES
    )
    """How long OKE drains a node it removes (cycling, scale-in) before giving up: on the GPU pool, at least
    streaming.streamer.drainSeconds + 30 s; on the TURN pool, at least streaming.turn.drainSeconds + 10 s."""
    force_delete_after_grace: bool = True
    """Delete the node after the grace even if pods remain (false: keep it, and the cycling waits for you)."""


class NodePoolConfig(ConfigModel):
    shape: str
    """The compute shape, one of the known shapes (Shapes, below): the GPU pool needs a GPU with a video encoder
    (NVENC), the other pools must not be GPU shapes."""
    ocpus: float | None = None
    """Flexible shapes only: the OCPUs of each node, 1 to the shape's most."""
    memory_gbs: float | None = None
    """Flexible shapes only: the memory of each node, 1-64 GB per OCPU (within the shape's own bounds)."""
    size: int = 1
    """Node count (the initial count when autoscaled): at least 1, 0 allowed for the GPU pool; at most 1000 (OCI's
    limit per pool), and every pool's maxSize, else size, together within the cluster's limit (ENHANCED 2000,
    BASIC 1000)."""
    min_size: int | None = None
    """With maxSize: the pool is autoscaled by the cluster autoscaler (addons.clusterAutoscaler), minSize <= size
    <= maxSize (prod's GPU pool: 1-5)."""
    max_size: int | None = None
    """With minSize: the most nodes the autoscaler may make, at least 1."""
    boot_volume_gbs: Annotated[int, Range(50, 32768, "GB")] = 100
    """Each node's boot volume."""
    availability_domains: list[int] = [1]
    """1-based availability domain indexes of the region (1-3) to spread the nodes over: at least one, none
    twice."""
    fault_domains: list[str] = []
    """FAULT-DOMAIN-1, -2 or -3 within each availability domain, none twice; empty: all."""
    image_id: str | None = None
    """A node image OCID (for the GPU pool, one built by pixelstream.tools.nodeimage); unset: the newest OKE image
    for the Kubernetes version and shape."""
    cycling: NodeCyclingConfig = NodeCyclingConfig()
    eviction: NodeEvictionConfig = NodeEvictionConfig()
    """How OKE drains a node it removes."""

    @property
    def largest_size(self) -> int:
        """The most nodes the pool ever has: maxSize when autoscaled, else size."""
        return self.size if self.max_size is None else self.max_size

    @model_validator(mode="before")
    @classmethod
    def _no_flex_defaults_on_fixed_shapes(cls, data: Any) -> Any:
        """A pool switched to a fixed shape drops the pool's default ocpus/memoryGbs instead of failing on them."""
        if isinstance(data, dict) and isinstance(data.get("shape"), str) and data["shape"] not in FLEX_SHAPES:
            data = {"ocpus": None, "memoryGbs": None, **data}
        return data

    @field_validator("shape")
    @classmethod
    def _known_shape(cls, value: str) -> str:
        if value not in KNOWN_SHAPES:
            raise ValueError(f"{value} is not a known shape; known shapes: {', '.join(KNOWN_SHAPES)}")
        return value

    @field_validator("image_id")
    @classmethod
    def _valid_image(cls, value: str | None) -> str | None:
        if value is not None and not _IMAGE.match(value):
            raise ValueError(f"{value} is not an image OCID (ocid1.image.oc1..<id>)")
        return value


class DefaultPoolConfig(NodePoolConfig):
    shape: str = "VM.Standard.E4.Flex"
    ocpus: float | None = 2
    memory_gbs: float | None = 32
    size: int = 2


class TurnPoolConfig(NodePoolConfig):
    shape: str = "VM.Standard.E4.Flex"
    ocpus: float | None = 2
    memory_gbs: float | None = 16


class GpuPoolConfig(NodePoolConfig):
    shape: str = "VM.GPU.A10.1"


class NodePoolsConfig(ConfigModel):
    default: DefaultPoolConfig = DefaultPoolConfig()
    turn: TurnPoolConfig = TurnPoolConfig()
    gpu: GpuPoolConfig = GpuPoolConfig()

    def items(self) -> list[tuple[str, NodePoolConfig]]:
        return [("default", self.default), ("turn", self.turn), ("gpu", self.gpu)]


def check_oci(config: StackConfig) -> None:
    """The network, cluster and node pools, and how they fit together (pod subnets hold the pools' pods); or,
    with an existing cluster, what the stack needs to know about it."""
    _check_relay_and_clients(config)
    _check_cluster_name(config)
    if not config.cluster.oke:
        check_existing_cluster(config)
        return
    if config.cluster.existing.model_fields_set:
        key = to_camel(sorted(config.cluster.existing.model_fields_set)[0])
        raise ConfigError(f"cluster.existing.{key}", "is only used with cluster.target: existing")
    check_ranges(config.cluster.endpoint, "cluster.endpoint")
    check_ranges(config.node_pools, "nodePools")
    _check_network(config)
    _check_cluster(config)
    _check_node_pools(config)
    _check_cycling(config)
    _check_pod_subnets(config)
    check_on_premises(config)


def _check_network(config: StackConfig) -> None:
    network, cluster = config.network, config.cluster
    vcn = ipaddress.IPv4Network(network.vcn_cidr)
    if not 16 <= vcn.prefixlen <= 30:
        raise ConfigError("network.vcnCidr", f"{vcn} must be between /16 and /30 (OCI VCN limits)")
    in_use = network.subnets.in_use(cluster.cni, cluster.endpoint.bastion.enabled)
    unused = sorted(set(network.subnets.model_fields_set) - {to_snake(k) for k in in_use})
    if unused:
        needs = "cluster.endpoint.bastion.clientCidrs" if unused[0] == "bastion" else "cluster.cni: vcnNative"
        raise ConfigError(f"network.subnets.{to_camel(unused[0])}", f"is only used with {needs}")
    subnets = {key: ipaddress.IPv4Network(cidr) for key, cidr in in_use.items()}
    seen: dict[str, ipaddress.IPv4Network] = {}
    for key, subnet in subnets.items():
        if subnet.prefixlen > 30:
            raise ConfigError(f"network.subnets.{key}", f"{subnet} is smaller than /30, the smallest OCI subnet")
        if not subnet.subnet_of(vcn):
            raise ConfigError(f"network.subnets.{key}", f"{subnet} is not inside the VCN {vcn}")
        for other_key, other in seen.items():
            if subnet.overlaps(other):
                raise ConfigError(f"network.subnets.{key}", f"{subnet} overlaps network.subnets.{other_key} ({other})")
        seen[key] = subnet

    overlays = [("servicesCidr", cluster.services_cidr)]
    if cluster.cni == "flannel":
        overlays.insert(0, ("podsCidr", cluster.pods_cidr))
    elif "pods_cidr" in cluster.model_fields_set:
        raise ConfigError(
            "cluster.podsCidr",
            "is only used with cluster.cni: flannel; VCN-native pods take network.subnets.pods and .streamPods",
        )
    for key, cidr in overlays:
        if ipaddress.IPv4Network(cidr).overlaps(vcn):
            raise ConfigError(f"cluster.{key}", f"{cidr} overlaps the VCN {vcn}; pick a range outside it")
    if cluster.cni == "flannel" and ipaddress.IPv4Network(cluster.pods_cidr).overlaps(
        ipaddress.IPv4Network(cluster.services_cidr)
    ):
        raise ConfigError(
            "cluster.servicesCidr", f"{cluster.services_cidr} overlaps cluster.podsCidr ({cluster.pods_cidr})"
        )


def _check_relay_and_clients(config: StackConfig) -> None:
    """The relay range and the players' networks, which the TURN servers use on any cluster."""
    network = config.network
    low, high = network.relay_ports.bounds
    if not 1024 <= low <= high <= 65535:
        raise ConfigError("network.relayPorts", f"{low}-{high} is not a port range within 1024-65535 with min <= max")
    for what, (first, last) in TURN_NODE_HOST_PORTS.items():
        if low <= last and first <= high:
            ports = str(first) if first == last else f"{first}-{last}"
            raise ConfigError(
                "network.relayPorts",
                f"{low}-{high} contains {ports} ({what}, listening on every TURN node), which would open it to "
                f"players; the default is {DEFAULT_RELAY_PORT_RANGE[0]}-{DEFAULT_RELAY_PORT_RANGE[1]}",
            )
    if not network.client_cidrs:
        raise ConfigError("network.clientCidrs", "[] leaves players no way in; use [0.0.0.0/0] or your client networks")
    check_unique("network.clientCidrs", network.client_cidrs)


def _check_cluster_name(config: StackConfig) -> None:
    name = config.cluster.name
    if name is not None and not _CLUSTER_NAME.match(name):
        raise ConfigError(
            "cluster.name",
            f"{name!r} is not a cluster name: 1-32 lowercase letters, digits and dashes, starting with a letter (it "
            "prefixes the names of the stack's resources)",
        )


def _check_cluster(config: StackConfig) -> None:
    cluster = config.cluster
    if cluster.kubernetes_version not in KUBERNETES_VERSIONS:
        raise ConfigError(
            "cluster.kubernetesVersion",
            f"{cluster.kubernetes_version} is not a version OKE offers; use one of {', '.join(KUBERNETES_VERSIONS)}",
        )
    endpoint = cluster.endpoint
    check_unique("cluster.endpoint.allowedCidrs", endpoint.allowed_cidrs)
    for cidr in endpoint.allowed_cidrs:
        if ipaddress.IPv4Network(cidr).prefixlen == 0 and not endpoint.allow_world_access:
            raise ConfigError(
                "cluster.endpoint.allowedCidrs",
                f"{cidr} opens the Kubernetes API to the whole internet; list your admin networks instead, "
                "or set cluster.endpoint.allowWorldAccess: true to accept that",
            )
    if endpoint.public and not endpoint.allowed_cidrs:
        raise ConfigError(
            "cluster.endpoint.allowedCidrs",
            "[] with a public endpoint leaves the API reachable by nobody outside the VCN; "
            "list the CIDRs of your administrators or CI",
        )
    _check_bastion(endpoint.bastion)


def _check_bastion(bastion: BastionConfig) -> None:
    key = "cluster.endpoint.bastion"
    check_unique(f"{key}.clientCidrs", bastion.client_cidrs)
    if len(bastion.client_cidrs) > MAX_BASTION_CLIENT_CIDRS:
        raise ConfigError(f"{key}.clientCidrs", f"lists {len(bastion.client_cidrs)}; the Bastion service takes 20")
    for cidr in bastion.client_cidrs:
        if ipaddress.IPv4Network(cidr).prefixlen < 16:
            raise ConfigError(
                f"{key}.clientCidrs",
                f"{cidr} is wider than a /16: list your own egress addresses (a workstation's or a runner's, as /32)",
            )


def _check_cycling(config: StackConfig) -> None:
    """Per pool, how its nodes are replaced: the GPU pool never below the sessions in use; the TURN pool one node
    at a time; every pool able to make progress. (The streaming workload holds the GPU pool's eviction grace to
    its streams' drain.)"""
    for pool, spec in config.node_pools.items():
        path, cycling = f"nodePools.{pool}", spec.cycling
        for key, value in (("maxSurge", cycling.max_surge), ("maxUnavailable", cycling.max_unavailable)):
            # OKE takes 0 to the pool's size (its default surge, 1, even for an empty pool).
            most = max(spec.largest_size, 1)
            if not 0 <= value <= most:
                raise ConfigError(f"{path}.cycling.{key}", f"{value} is outside 0-{most} (0 to the pool's size)")
        if cycling.max_surge == cycling.max_unavailable == 0:
            raise ConfigError(
                f"{path}.cycling.maxSurge", "0 with maxUnavailable 0 lets OKE replace no node; allow a surge of 1"
            )
        if pool == "gpu" and cycling.max_unavailable:
            raise ConfigError(
                f"{path}.cycling.maxUnavailable",
                f"{cycling.max_unavailable} would take GPU nodes away before their replacements run, cutting the "
                "sessions on them; use 0 (the new nodes surge in first)",
            )
        if pool == "turn" and max(cycling.max_surge, cycling.max_unavailable) > 1:
            raise ConfigError(
                f"{path}.cycling", "replaces more than one TURN node at a time; players' relays move one node at a time"
            )


def _check_node_pools(config: StackConfig) -> None:
    for pool, spec in config.node_pools.items():
        path = f"nodePools.{pool}"
        if pool == "gpu":
            gpu = GPU_SHAPES.get(spec.shape)
            if gpu is None:
                raise ConfigError(
                    f"{path}.shape",
                    f"{spec.shape} is not a GPU shape; use one with a video encoder: {', '.join(STREAMING_GPU_SHAPES)}",
                )
            if not gpu.nvenc:
                raise ConfigError(
                    f"{path}.shape",
                    f"{spec.shape} ({gpu.gpu_model}) has no hardware video encoder (NVENC); pixel streaming needs "
                    f"one: use {', '.join(STREAMING_GPU_SHAPES)}",
                )
        elif is_gpu(spec.shape):
            raise ConfigError(f"{path}.shape", f"{spec.shape} is a GPU shape; GPU nodes belong in nodePools.gpu")
        sizing = shape_sizing_problem(spec.shape, spec.ocpus, spec.memory_gbs)
        if sizing:
            raise ConfigError(f"{path}.{sizing[0]}", sizing[1])
        for key in ("size", "min_size", "max_size"):
            count = getattr(spec, key)
            if count is not None and count > MAX_NODES_PER_POOL:
                raise ConfigError(
                    f"{path}.{to_camel(key)}", f"{count} is above {MAX_NODES_PER_POOL}, OCI's limit of nodes per pool"
                )

        smallest = 0 if pool == "gpu" else 1
        if spec.size < smallest:
            raise ConfigError(f"{path}.size", f"{spec.size} is below {smallest}, the smallest {pool} pool")
        if (spec.min_size is None) != (spec.max_size is None):
            missing = "maxSize" if spec.max_size is None else "minSize"
            raise ConfigError(f"{path}.{missing}", "is missing; an autoscaled pool needs both minSize and maxSize")
        autoscaled = spec.min_size is not None and spec.max_size is not None
        if autoscaled and spec.max_size < 1:
            raise ConfigError(f"{path}.maxSize", f"{spec.max_size} leaves the autoscaler no node to add; use 1 or more")
        if autoscaled and not smallest <= spec.min_size <= spec.size <= spec.max_size:
            raise ConfigError(
                f"{path}.size",
                f"{spec.size} must satisfy {smallest} <= minSize ({spec.min_size}) <= size <= maxSize "
                f"({spec.max_size})",
            )

        ads = spec.availability_domains
        if not ads:
            raise ConfigError(f"{path}.availabilityDomains", "[] is empty; list at least one index, e.g. [1]")
        for index in ads:
            if not 1 <= index <= MAX_AVAILABILITY_DOMAINS:
                raise ConfigError(
                    f"{path}.availabilityDomains",
                    f"{index} is not an availability domain index; allowed: 1-{MAX_AVAILABILITY_DOMAINS}",
                )
        if len(set(ads)) != len(ads):
            raise ConfigError(f"{path}.availabilityDomains", f"{json.dumps(ads)} lists a domain twice")
        for fault_domain in spec.fault_domains:
            if fault_domain not in FAULT_DOMAINS:
                raise ConfigError(
                    f"{path}.faultDomains",
                    f"{fault_domain} is not a fault domain; allowed: {', '.join(FAULT_DOMAINS)}",
                )
        if len(set(spec.fault_domains)) != len(spec.fault_domains):
            raise ConfigError(f"{path}.faultDomains", f"{json.dumps(spec.fault_domains)} lists a fault domain twice")
    _check_cluster_size(config)


def _check_cluster_size(config: StackConfig) -> None:
    most = sum(spec.largest_size for _, spec in config.node_pools.items())
    limit = MAX_NODES_PER_CLUSTER[config.cluster.type]
    if most > limit:
        raise ConfigError(
            "nodePools",
            f"{most} nodes at most (size or maxSize of every pool) is above {limit}, OCI's limit for a "
            f"{config.cluster.type} cluster",
        )


def _check_pod_subnets(config: StackConfig) -> None:
    """Every node of a pool reserves PODS_PER_NODE addresses in its pod subnet; OCI keeps three per subnet."""
    if not config.vcn_native_pods:
        return
    subnets = config.network.subnets
    pools = dict(config.node_pools.items())
    for key, cidr, users in (
        ("pods", subnets.pods, ("default", "turn")),
        ("streamPods", subnets.stream_pods, ("gpu",)),
    ):
        nodes = sum(pools[p].largest_size for p in users)
        usable = ipaddress.IPv4Network(cidr).num_addresses - 3
        if nodes * PODS_PER_NODE > usable:
            raise ConfigError(
                f"network.subnets.{key}",
                f"{cidr} holds {usable} pod addresses, fewer than the {nodes * PODS_PER_NODE} that "
                f"{nodes} node(s) of the {'/'.join(users)} pool(s) reserve ({PODS_PER_NODE} each); use a larger subnet",
            )
