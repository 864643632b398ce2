"""NodePool: one OKE managed node pool, with labels, register-time taints and the right OKE image."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_oci as oci

from ..constants import AUTOSCALER_NODE_LABEL, PODS_PER_NODE, POOL_LABEL_KEY, Taint
from .cluster import CNI_TYPES, Cni
from .shapes import architecture, is_gpu, shape_sizing_problem

# OKE node image names, e.g. Oracle-Linux-8.10-Gen2-GPU-2026.10.28-0-OKE-1.34.2-1130.
_OKE_IMAGE = re.compile(
    r"^Oracle-Linux-(?P<os>\d+(?:\.\d+)?)-(?:Gen2-)?(?P<gpu>GPU-)?(?P<arm>aarch64-)?"
    r"(?P<date>\d{4}\.\d{2}\.\d{2})-(?P<build>\d+)-OKE-(?P<k8s>\d+\.\d+\.\d+)-(?P<oke>\d+)$"
)

_OKE_BOOTSTRAP = """#!/bin/bash
# OKE's own node bootstrap, with the pool's taints registered by the kubelet as the node joins:
# nothing else can be scheduled there first, and no pod needs RBAC to taint nodes.
set -euo pipefail
curl --fail -H "Authorization: Bearer Oracle" -L0 \\
  http://169.254.169.254/opc/v2/instance/metadata/oke_init_script | base64 --decode >/var/run/oke-init.sh
bash /var/run/oke-init.sh --kubelet-extra-args "--register-with-taints={taints}"
"""


class NodeImageError(pulumi.RunError):
    """No OKE image matches the pool's Kubernetes version, architecture and GPU need."""


def taint_cloud_init(taints: Sequence[Taint]) -> str:
    """The node cloud-init script that bootstraps the node with the given taints."""
    if not taints:
        raise ValueError("taint_cloud_init needs at least one taint")
    return _OKE_BOOTSTRAP.format(taints=",".join(str(t) for t in taints))


def _field(source: Any, name: str) -> str:
    return source[name] if isinstance(source, Mapping) else getattr(source, name)


def select_node_image(sources: Sequence[Any], kubernetes_version: str, shape: str) -> tuple[str, str]:
    """The (image id, image name) of the newest OKE image for this Kubernetes version and shape.

    GPU shapes get the GPU image (NVIDIA driver and container toolkit), Arm shapes the aarch64 image.
    """
    version = kubernetes_version.removeprefix("v")
    want_gpu, want_arm = is_gpu(shape), architecture(shape) == "aarch64"
    ranked = []
    for source in sources:
        name = _field(source, "source_name")
        match = _OKE_IMAGE.match(name)
        if not match or match["k8s"] != version:
            continue
        if bool(match["gpu"]) != want_gpu or bool(match["arm"]) != want_arm:
            continue
        os_version = tuple(int(p) for p in match["os"].split("."))
        ranked.append(
            (
                (os_version, match["date"], int(match["build"]), int(match["oke"])),
                _field(source, "image_id"),
                name,
            )
        )
    if not ranked:
        kind = ("GPU " if want_gpu else "") + ("aarch64" if want_arm else "x86_64")
        raise NodeImageError(
            f"no OKE {kind} node image for Kubernetes {kubernetes_version} ({shape}) in this region; "
            "choose a supported kubernetesVersion or set the pool's imageId"
        )
    _, image_id, name = max(ranked)
    return image_id, name


# OKE's limit of the eviction grace (NodePoolNodeEvictionNodePoolSettingsArgs: "Min PT0M, Max: PT60M").
MAX_EVICTION_GRACE_MINUTES = 60


@dataclass(frozen=True)
class NodeCycling:
    """How OKE replaces a pool's nodes when their image, shape or Kubernetes version changes (node pool cycling):
    up to `max_surge` new nodes join before old ones are drained, and at most `max_unavailable` old ones go
    before their replacements are ready."""

    max_surge: int = 1
    max_unavailable: int = 0


@dataclass(frozen=True)
class NodeEviction:
    """What OKE does to a node it removes (cycling, scale-in, deletion): it cordons and drains it for
    `grace_minutes` (pods' PodDisruptionBudgets and termination grace honoured), then deletes it anyway when
    `force_delete_after_grace`, or leaves it (and the cycling waits) when not."""

    grace_minutes: int = MAX_EVICTION_GRACE_MINUTES
    force_delete_after_grace: bool = True


@dataclass
class NodePoolArgs:
    cluster_id: pulumi.Input[str]
    compartment_id: pulumi.Input[str]
    kubernetes_version: str
    subnet_id: pulumi.Input[str]
    availability_domains: Sequence[str]
    """Availability domain names; nodes are spread over them."""
    shape: str
    size: int = 1
    """Node count, or the initial count when `min_size`/`max_size` make the pool autoscaled."""
    min_size: int | None = None
    max_size: int | None = None
    ocpus: float | None = None
    """Flexible shapes only."""
    memory_gbs: float | None = None
    """Flexible shapes only."""
    boot_volume_gbs: int = 100
    fault_domains: Sequence[str] = ()
    """Fault domains in every availability domain; empty lets OCI spread nodes over all of them."""
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: Sequence[Taint] = ()
    """Registered by the kubelet when a node joins (OKE node pools have no taint field)."""
    nsg_ids: Sequence[pulumi.Input[str]] = ()
    cni: Cni = "flannel"
    pod_subnet_id: pulumi.Input[str] | None = None
    """VCN-native pod networking: subnet of the pods (default: the node subnet)."""
    pod_nsg_ids: Sequence[pulumi.Input[str]] = ()
    image_id: str | None = None
    """Pin a node image instead of the newest OKE image for the version and shape."""
    freeform_tags: dict[str, str] = field(default_factory=dict)
    cycling: NodeCycling = field(default_factory=NodeCycling)
    eviction: NodeEviction = field(default_factory=NodeEviction)

    @property
    def autoscaled(self) -> bool:
        return self.min_size is not None or self.max_size is not None

    def validate(self) -> None:
        problem = shape_sizing_problem(self.shape, self.ocpus, self.memory_gbs)
        if problem:
            raise ValueError(problem[1])
        if self.autoscaled:
            if self.min_size is None or self.max_size is None:
                raise ValueError("an autoscaled pool needs both min_size and max_size")
            if not 0 <= self.min_size <= self.size <= self.max_size:
                raise ValueError(
                    f"need 0 <= min_size ({self.min_size}) <= size ({self.size}) <= max_size ({self.max_size})"
                )
        if not self.availability_domains:
            raise ValueError("a node pool needs at least one availability domain")
        if self.cycling.max_surge < 0 or self.cycling.max_unavailable < 0:
            raise ValueError("node cycling counts are 0 or more")
        if self.cycling.max_surge == self.cycling.max_unavailable == 0:
            raise ValueError("node cycling needs a surge or an unavailable node: with neither, no node is replaced")
        if not 0 <= self.eviction.grace_minutes <= MAX_EVICTION_GRACE_MINUTES:
            raise ValueError(f"the eviction grace is 0-{MAX_EVICTION_GRACE_MINUTES} minutes")


class NodePool(pulumi.ComponentResource):
    """An OKE managed node pool.

    Outputs: `node_pool_id`; `image_id` and `image_name` (the chosen node image); `autoscaler_nodes`,
    the cluster-autoscaler `--nodes` entry `min:max:<pool id>` (None for a fixed-size pool).
    """

    node_pool_id: pulumi.Output[str]
    image_id: pulumi.Output[str]
    image_name: pulumi.Output[str]
    autoscaler_nodes: pulumi.Output[str] | None

    def __init__(self, name: str, args: NodePoolArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        args.validate()
        super().__init__("pixelstream:index:NodePool", name, None, opts)
        if args.image_id:
            image = pulumi.Output.from_input((args.image_id, "pinned by imageId"))
        else:
            sources = oci.containerengine.get_node_pool_option_output(
                node_pool_option_id="all",
                compartment_id=args.compartment_id,
                node_pool_k8s_version=args.kubernetes_version,
            ).sources
            image = sources.apply(lambda s: select_node_image(s, args.kubernetes_version, args.shape))

        labels = {POOL_LABEL_KEY: name, **args.labels}
        if args.autoscaled:
            labels[AUTOSCALER_NODE_LABEL[0]] = AUTOSCALER_NODE_LABEL[1]
        vcn_native = args.cni == "vcnNative"
        pod_network = oci.containerengine.NodePoolNodeConfigDetailsNodePoolPodNetworkOptionDetailsArgs(
            cni_type=CNI_TYPES[args.cni],
            pod_subnet_ids=[args.pod_subnet_id or args.subnet_id] if vcn_native else None,
            pod_nsg_ids=list(args.pod_nsg_ids) if vcn_native else None,
            # Explicit, because pod subnets are sized by it (see the config's pod-subnet capacity check).
            max_pods_per_node=PODS_PER_NODE if vcn_native else None,
        )
        node_metadata = None
        if args.taints:
            node_metadata = {"user_data": base64.b64encode(taint_cloud_init(args.taints).encode()).decode()}

        pool = oci.containerengine.NodePool(
            name,
            name=name,
            cluster_id=args.cluster_id,
            compartment_id=args.compartment_id,
            kubernetes_version=args.kubernetes_version,
            node_shape=args.shape,
            node_shape_config=(
                oci.containerengine.NodePoolNodeShapeConfigArgs(ocpus=args.ocpus, memory_in_gbs=args.memory_gbs)
                if args.ocpus is not None
                else None
            ),
            node_source_details=oci.containerengine.NodePoolNodeSourceDetailsArgs(
                source_type="IMAGE", image_id=image[0], boot_volume_size_in_gbs=str(args.boot_volume_gbs)
            ),
            node_config_details=oci.containerengine.NodePoolNodeConfigDetailsArgs(
                size=args.size,
                nsg_ids=list(args.nsg_ids),
                placement_configs=[
                    oci.containerengine.NodePoolNodeConfigDetailsPlacementConfigArgs(
                        availability_domain=ad,
                        subnet_id=args.subnet_id,
                        fault_domains=list(args.fault_domains) or None,
                    )
                    for ad in args.availability_domains
                ],
                node_pool_pod_network_option_details=pod_network,
                freeform_tags=args.freeform_tags,
            ),
            initial_node_labels=[
                oci.containerengine.NodePoolInitialNodeLabelArgs(key=k, value=v) for k, v in labels.items()
            ],
            node_metadata=node_metadata,
            freeform_tags=args.freeform_tags,
            node_pool_cycling_details=oci.containerengine.NodePoolNodePoolCyclingDetailsArgs(
                is_node_cycling_enabled=True,
                maximum_surge=str(args.cycling.max_surge),
                maximum_unavailable=str(args.cycling.max_unavailable),
            ),
            node_eviction_node_pool_settings=oci.containerengine.NodePoolNodeEvictionNodePoolSettingsArgs(
                eviction_grace_duration=f"PT{args.eviction.grace_minutes}M",
                is_force_delete_after_grace_duration=args.eviction.force_delete_after_grace,
            ),
            # The cluster autoscaler owns the node count of an autoscaled pool.
            opts=pulumi.ResourceOptions(
                parent=self, ignore_changes=["nodeConfigDetails.size"] if args.autoscaled else None
            ),
        )
        self.node_pool_id = pool.id
        self.image_id = image[0]
        self.image_name = image[1]
        self.autoscaler_nodes = (
            pool.id.apply(lambda pool_id: f"{args.min_size}:{args.max_size}:{pool_id}") if args.autoscaled else None
        )
        self.register_outputs(
            {"node_pool_id": self.node_pool_id, "image_id": self.image_id, "image_name": self.image_name}
        )
