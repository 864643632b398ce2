"""GpuCapacity: what makes a new stream start fast. Pod priorities (streams above the placeholders), warm
placeholders that keep GPU nodes provisioned ahead of demand, and an image pre-pull on every GPU node.

A placeholder is a pause container that requests exactly what a stream requests, on the same nodes. It keeps
the cluster autoscaler holding (or adding) that much GPU capacity; when a real stream needs the GPU, the
scheduler preempts the placeholder at once, and the evicted placeholder, pending again, makes the autoscaler
add the next node while the stream starts on the warm one. The pre-pull DaemonSet pulls the stream images when
a node joins, so a stream scheduled there later waits only for Unreal to start.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from ...addons.charts import PART_OF
from ...constants import STREAM_PREPULL, STREAM_PRIORITY, WARM_CAPACITY_PRIORITY
from ...placement import GPU_NODES, NodePlacement
from ..kubernetes import (
    gpu_node_affinity,
    image_pull_secrets,
    labels,
    pod_security_context,
    resources,
    security_context,
)
from .streaming import SIGNALLING_UID, UNREAL_UID, StreamBuild, StreamerSettings, stream_requests

WARM_CAPACITY = "warm-capacity"
PREPULL = STREAM_PREPULL
PAUSE_UID = 65535
# A pull is network and disk work; the containers themselves run one shell builtin.
PREPULL_RESOURCES = resources("10m", "16Mi", "100m", "64Mi")


@dataclass(kw_only=True)
class GpuCapacityArgs:
    namespace: pulumi.Input[str]
    images: Mapping[str, str]
    """The image table with the stack's overrides: the signalling images and `pause`."""
    builds: Sequence[StreamBuild]
    """The builds whose images every GPU node pulls as it joins."""
    streamer: StreamerSettings = field(default_factory=StreamerSettings)
    warm_streams: int = 0
    """Streams' worth of GPU kept ready by placeholders; 0 declares none."""
    pre_pull: bool = True
    image_pull_secrets: Sequence[str] = ()
    nodes: NodePlacement = GPU_NODES
    """The GPU nodes the streams run on, where the placeholders hold capacity and the images are pulled."""


def gpu_pod(spec: dict[str, Any], pull_secrets: Sequence[str], nodes: NodePlacement = GPU_NODES) -> dict[str, Any]:
    """A pod spec placed as the streams are: GPU nodes only, GPU taint tolerated, no API token, non-root."""
    return {
        "affinity": gpu_node_affinity(nodes),
        "tolerations": nodes.tolerations(),
        "automountServiceAccountToken": False,
        "imagePullSecrets": image_pull_secrets(pull_secrets),
        "securityContext": pod_security_context(),
        **spec,
    }


def placeholder_pod(args: GpuCapacityArgs, priority_class: pulumi.Input[str]) -> dict[str, Any]:
    requests = stream_requests(args.streamer)
    container = {
        "name": "placeholder",
        "image": args.images["pause"],
        "resources": {"requests": requests, "limits": requests},
        "securityContext": security_context(PAUSE_UID),
    }
    return gpu_pod(
        {
            "priorityClassName": priority_class,
            # Nothing to shut down: the GPU is free the moment the scheduler preempts the placeholder.
            "terminationGracePeriodSeconds": 0,
            "containers": [container],
        },
        args.image_pull_secrets,
        args.nodes,
    )


def prepull_images(args: GpuCapacityArgs) -> dict[str, tuple[str, int]]:
    """Init container name -> (image, its user): every build's Unreal image and each signalling image once."""
    images: dict[str, tuple[str, int]] = {}
    for build in sorted(args.builds, key=lambda b: b.unreal_version):
        name = f"pull-signalling-ue{build.unreal_version.replace('.', '-')}"
        images[name] = (build.signalling_image(args.images), SIGNALLING_UID)
    for build in args.builds:
        if build.unreal_image not in {image for image, _ in images.values()}:
            images[f"pull-build-{build.name}"] = (build.unreal_image, UNREAL_UID)
    return images


def prepull_pod(args: GpuCapacityArgs) -> dict[str, Any]:
    """One init container per stream image, each running the image's own shell with `true` (the command
    replaces the image's entrypoint, which would start the app), then a pause container holding the pod."""
    pulls = [
        {
            "name": name,
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", "true"],
            "securityContext": security_context(user),
            "resources": PREPULL_RESOURCES,
        }
        for name, (image, user) in prepull_images(args).items()
    ]
    hold = {
        "name": "hold",
        "image": args.images["pause"],
        "securityContext": security_context(PAUSE_UID),
        "resources": PREPULL_RESOURCES,
    }
    return gpu_pod({"initContainers": pulls, "containers": [hold]}, args.image_pull_secrets, args.nodes)


class GpuCapacity(pulumi.ComponentResource):
    """Outputs: `stream_priority_class`, the name of the PriorityClass the stream pods use."""

    stream_priority_class: pulumi.Output[str]

    def __init__(self, name: str, args: GpuCapacityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        if args.warm_streams < 0:
            raise ValueError(f"warm_streams must be >= 0, not {args.warm_streams}")
        super().__init__("pixelstream:index:GpuCapacity", name, None, opts)
        stream_class = self._priority_class(STREAM_PRIORITY, "PreemptLowerPriority", "Pixel streams.")
        warm_class = self._priority_class(WARM_CAPACITY_PRIORITY, "Never", "Placeholders holding GPU capacity.")
        # Nothing to wait for but the cluster: the pre-pull's pods start pulling as each GPU node registers, the
        # placeholders are scheduled once the device plugin advertises the GPUs (Pulumi waits for neither).
        child = pulumi.ResourceOptions(parent=self)
        if args.warm_streams:
            warm_labels = labels(WARM_CAPACITY)
            k8s.apps.v1.Deployment(
                WARM_CAPACITY,
                metadata=_metadata(WARM_CAPACITY, args.namespace, warm_labels),
                spec={
                    "replicas": args.warm_streams,
                    "selector": {"matchLabels": warm_labels},
                    "template": {"metadata": {"labels": warm_labels}, "spec": placeholder_pod(args, warm_class)},
                },
                opts=child,
            )
        if args.pre_pull:
            prepull_labels = labels(PREPULL)
            k8s.apps.v1.DaemonSet(
                PREPULL,
                metadata=_metadata(PREPULL, args.namespace, prepull_labels),
                spec={
                    "selector": {"matchLabels": prepull_labels},
                    "template": {"metadata": {"labels": prepull_labels}, "spec": prepull_pod(args)},
                },
                opts=child,
            )
        self.stream_priority_class = stream_class
        self.register_outputs({"stream_priority_class": self.stream_priority_class})

    def _priority_class(self, priority: tuple[str, int], preemption: str, description: str) -> pulumi.Output[str]:
        """A cluster-wide PriorityClass; its name as an output, so that pods using it wait for it."""
        class_name, value = priority
        created = k8s.scheduling.v1.PriorityClass(
            class_name,
            metadata={"name": class_name, "labels": PART_OF},
            value=value,
            preemption_policy=preemption,
            description=description,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return created.metadata["name"]


def _metadata(name: str, namespace: pulumi.Input[str], pod_labels: dict[str, str]) -> dict[str, Any]:
    # Nothing waits for these: placeholders wait on nodes the autoscaler is still adding (or stay pending on a
    # full fixed pool), and a pull of the Unreal image on every GPU node can outlast any deployment timeout.
    return {
        "name": name,
        "namespace": namespace,
        "labels": pod_labels,
        "annotations": {"pulumi.com/skipAwait": "true"},
    }
