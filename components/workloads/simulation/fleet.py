"""SimulationFleet: the Isaac Sim instances, each a StatefulSet of one pod with its own Service.

Each instance is a StatefulSet of one pod (`sim-<i>-0`: a stable name and DNS entry) so that the orchestration
service can start, stop and restart one instance without touching the others; its own ClusterIP Service is
what the ingress routes `/sim/<i>/` to.

The pods run on the pod network, not the host's. The Isaac Sim image binds its WebRTC media socket to the
address it advertises (ISAACSIM_HOST); in Docker only host networking gives the container that address. A pod
has an address of its own on its own interface (with VCN-native pods, one of the stream pod subnet's), so
ISAACSIM_HOST is the pod IP, every instance uses the same ports, and several share a node without port
clashes. That address is what the TURN relay may reach (the media path): no node address, no host port.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from ...constants import GPU_RESOURCE, ISAAC_MEDIA_PORT, ISAAC_SIGNAL_PORT, SHARED_GPU_RESOURCE
from ...placement import GPU_NODES, NodePlacement
from ..kubernetes import (
    gpu_node_affinity,
    image_pull_secrets,
    labels,
    pod_security_context,
    resources,
    security_context,
)

FLEET = "isaac-sim"
CONTAINER = "isaac-sim"
INSTANCE_LABEL = "pixelstream/instance"
# Isaac Sim's ports at 6.0.1 (tools/docker/README.md, "Ports for streaming") are ISAAC_SIGNAL_PORT (TCP) and
# ISAAC_MEDIA_PORT (UDP). Nothing serves HTTP: the streaming app (isaacsim.exp.full.streaming.kit) loads no HTTP
# server, and 8210, the README's web viewer, is a separate app Docker Compose builds.

# The image's user (tools/docker/Dockerfile: useradd --uid 1234, home /isaac-sim).
ISAAC_UID = 1234
# The image's own health check (tools/docker/Dockerfile HEALTHCHECK): ready once the newest Kit log says AppReady.
APP_READY = (
    "latest=$(ls -t /isaac-sim/.nvidia-omniverse/logs/Kit/*/*/kit_*.log 2>/dev/null | head -1) "
    '&& [ -n "$latest" ] && grep -q AppReady "$latest"'
)
PROBE_PERIOD_SECONDS = 10
# Kit's caches under the image's home, as NVIDIA's container docs mount them (tools/docker/README.md, "Run with
# volume mounts", at v6.0.1): shader, texture and package caches, the compute cache, Kit's data and packages. On
# one volume per instance, a restart (a viewer leaving, a node drained, the pod replaced) starts warm instead of
# compiling shaders again. Not the logs: the readiness check reads the newest Kit log, and a kept one from the
# last run would say AppReady before this run starts.
CACHE_VOLUME = "cache"
CACHE_ROOT = "/var/cache/isaac-sim"
CACHE_DIRS = {
    "cache": "/isaac-sim/.cache",
    "computecache": "/isaac-sim/.nv/ComputeCache",
    "data": "/isaac-sim/.local/share/ov/data",
    "pkg": "/isaac-sim/.local/share/ov/pkg",
}
# Kit quits when a viewer's session ends (`quitOnSessionEnded = true` under omni.services.livestream.session in
# source/apps/isaacsim.exp.full.streaming.kit at v6.0.1); the image's runheadless.sh passes its arguments on last,
# so this setting wins.
KEEP_RUNNING = "--/exts/omni.services.livestream.session/quitOnSessionEnded=false"
NGC_REGISTRY = "nvcr.io"
# NGC's registry login: the literal user `$oauthtoken` with the API key as password (NGC user guide).
NGC_USER = "$oauthtoken"


@dataclass(kw_only=True)
class InstanceSettings:
    cpu: str = "4"
    cpu_limit: str = "8"
    memory: str = "16Gi"
    memory_limit: str = "16Gi"
    shm_size: str = "2Gi"
    """/dev/shm: a memory-backed emptyDir of this size (it counts against memory_limit)."""
    shared_gpu: bool = False
    """One time-sliced share of a GPU (nvidia.com/gpu.shared) instead of a whole GPU."""
    startup_timeout_seconds: int = 1200
    """How long the app may take to say AppReady (first starts compile shaders) before the pod restarts."""
    cache_gbs: int = 50
    """Each instance's cache volume (a block volume: OCI's smallest is 50 GB)."""
    quit_when_viewer_leaves: bool = False
    """Kit's own default quits (and the StatefulSet restarts it) when a viewer disconnects; a fleet meant to be
    watched keeps running."""


def instance_name(index: int) -> str:
    return f"sim-{index}"


def pod_name(index: int) -> str:
    """The one pod of instance `index`: StatefulSet pods are named <statefulset>-<ordinal>."""
    return f"{instance_name(index)}-0"


def docker_config(api_key: str) -> str:
    """A `.dockerconfigjson` that logs in to NGC with `api_key`."""
    auth = base64.b64encode(f"{NGC_USER}:{api_key}".encode()).decode()
    return json.dumps({"auths": {NGC_REGISTRY: {"username": NGC_USER, "password": api_key, "auth": auth}}})


@dataclass(kw_only=True)
class SimulationFleetArgs:
    namespace: pulumi.Input[str]
    image: str
    instances: int
    settings: InstanceSettings = field(default_factory=InstanceSettings)
    image_pull_secrets: Sequence[pulumi.Input[str]] = ()
    depends_on: Sequence[pulumi.Resource] = ()
    """What the instances wait for: the GPU pool and the device plugin."""
    nodes: NodePlacement = GPU_NODES
    """The GPU nodes: their labels and taints."""
    storage_class: str | None = None
    """The cache volumes' storage class; None: the cluster's default."""
    publishing: StreamPublishing | None = None
    """How the instances' streams reach viewers outside the cluster; None: only inside it."""


@dataclass(frozen=True)
class StreamPublishing:
    """Each instance's stream on a load balancer of its own, at a known address: the instance advertises it."""

    hosts: Sequence[pulumi.Input[str]]
    """Instance i's address, in order (a reserved public IP on OKE; the cluster's load balancer's otherwise)."""
    viewer_cidrs: Sequence[str]
    annotations: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """The cloud controller's (OCI's network load balancer); none on an existing cluster."""


class SimulationFleet(pulumi.ComponentResource):
    """Outputs: `instances`, the StatefulSet names (`sim-<i>`), and `services`, each instance's Service name."""

    instances: list[str]
    services: list[str]

    def __init__(self, name: str, args: SimulationFleetArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        if args.instances < 1:
            raise ValueError("a fleet has at least one instance")
        super().__init__("pixelstream:index:SimulationFleet", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        fleet_labels = labels(FLEET)
        k8s.core.v1.Service(
            FLEET,
            metadata={"name": FLEET, "namespace": args.namespace, "labels": fleet_labels},
            # Headless: the StatefulSets' governing Service, giving each pod a stable DNS name.
            spec={"clusterIP": "None", "selector": fleet_labels, "ports": _service_ports()},
            opts=child,
        )
        self.instances, self.services = [], []
        for index in range(args.instances):
            self._instance(index, args)
        self.register_outputs({"instances": self.instances, "services": self.services})

    def _instance(self, index: int, args: SimulationFleetArgs) -> None:
        name = instance_name(index)
        selector = {**labels(FLEET), INSTANCE_LABEL: str(index)}
        k8s.apps.v1.StatefulSet(
            name,
            metadata={
                "name": name,
                "namespace": args.namespace,
                "labels": selector,
                # Pulling the image and the first start take long, and an instance may be stopped on purpose: the
                # dashboard follows its state, a deployment does not wait for it.
                "annotations": {"pulumi.com/skipAwait": "true"},
            },
            spec={
                # No replicas: the API server starts the instance (1), then the orchestration service owns it.
                "serviceName": FLEET,
                "selector": {"matchLabels": selector},
                "template": {
                    # A running simulation keeps its node: the cluster autoscaler may not drain it away.
                    "metadata": {
                        "labels": selector,
                        "annotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
                    },
                    "spec": _pod_spec(args, index),
                },
                "volumeClaimTemplates": [_cache_claim(args)],
                # The cache outlives the StatefulSet: stopping an instance (scaling to 0) keeps it, and so does a
                # replacement of the StatefulSet (its claim templates cannot change in place), whose new pod finds
                # the same claim (cache-sim-<i>-0) again.
                "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )
        k8s.core.v1.Service(
            name,
            metadata={"name": name, "namespace": args.namespace, "labels": selector, **_annotations(args)},
            spec={"selector": selector, "ports": _service_ports(), **_published(args, index)},
            # OCI's cloud controller refuses to move a load balancer to another address (load_balancer.go at
            # v1.34.2): a new address is a new load balancer.
            opts=pulumi.ResourceOptions(
                parent=self, replace_on_changes=["spec.loadBalancerIP"], delete_before_replace=True
            ),
        )
        self.instances.append(name)
        self.services.append(name)


def _service_ports() -> list[dict[str, Any]]:
    return [
        {"name": "signal", "port": ISAAC_SIGNAL_PORT, "targetPort": "signal", "protocol": "TCP"},
        {"name": "stream", "port": ISAAC_MEDIA_PORT, "targetPort": "stream", "protocol": "UDP"},
    ]


def _annotations(args: SimulationFleetArgs) -> dict[str, Any]:
    return {"annotations": dict(args.publishing.annotations)} if args.publishing and args.publishing.annotations else {}


def _published(args: SimulationFleetArgs, index: int) -> dict[str, Any]:
    """A load balancer of the instance's own (its ports are the instance's), at its address, for the viewers'
    networks; `Local`: only the node that runs the instance answers the load balancer's health check, and nothing
    is forwarded through another node."""
    if args.publishing is None:
        return {}
    return {
        "type": "LoadBalancer",
        "externalTrafficPolicy": "Local",
        "loadBalancerIP": args.publishing.hosts[index],
        "loadBalancerSourceRanges": list(args.publishing.viewer_cidrs),
    }


def _cache_claim(args: SimulationFleetArgs) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": f"{args.settings.cache_gbs}Gi"}},
    }
    if args.storage_class:
        spec["storageClassName"] = args.storage_class
    return {"metadata": {"name": CACHE_VOLUME, "labels": labels(FLEET)}, "spec": spec}


def _cache_directories(image: str) -> dict[str, Any]:
    """Makes the cache's directories as the image's user before Kit starts: the kubelet would make a missing
    subPath directory itself, owned by root and not writable by that user."""
    return {
        "name": "cache-directories",
        "image": image,
        "command": ["mkdir", "-p", *(f"{CACHE_ROOT}/{d}" for d in CACHE_DIRS)],
        "volumeMounts": [{"name": CACHE_VOLUME, "mountPath": CACHE_ROOT}],
        "securityContext": security_context(ISAAC_UID),
        "resources": resources("10m", "16Mi", "100m", "64Mi"),
    }


def _pod_spec(args: SimulationFleetArgs, index: int) -> dict[str, Any]:
    return {
        "imagePullSecrets": image_pull_secrets(args.image_pull_secrets),
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "affinity": gpu_node_affinity(args.nodes),
        "tolerations": args.nodes.tolerations(),
        "securityContext": pod_security_context(fs_group=ISAAC_UID),
        "initContainers": [_cache_directories(args.image)],
        "containers": [_isaac_sim_container(args.image, args.settings, _advertised(args, index))],
        "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": args.settings.shm_size}}],
    }


def _advertised(args: SimulationFleetArgs, index: int) -> dict[str, Any]:
    """ISAACSIM_HOST: the address the viewer dials for signalling and media. Published, the load balancer's (NVIDIA's
    Docker README sets it to a cloud VM's public address); otherwise the pod's own, on its own interface."""
    if args.publishing is not None:
        return {"name": "ISAACSIM_HOST", "value": args.publishing.hosts[index]}
    return {"name": "ISAACSIM_HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}


def _isaac_sim_container(image: str, settings: InstanceSettings, advertised: dict[str, Any]) -> dict[str, Any]:
    gpu = {SHARED_GPU_RESOURCE if settings.shared_gpu else GPU_RESOURCE: "1"}
    sized = resources(settings.cpu, settings.memory, settings.cpu_limit, settings.memory_limit)
    app_ready = {"exec": {"command": ["bash", "-c", APP_READY]}, "timeoutSeconds": 10}
    return {
        "name": CONTAINER,
        "image": image,
        # Appended to the image's runheadless.sh: what a viewer's leaving does.
        "args": [] if settings.quit_when_viewer_leaves else [KEEP_RUNNING],
        "env": [
            {"name": "ACCEPT_EULA", "value": "Y"},
            advertised,
            {"name": "ISAACSIM_SIGNAL_PORT", "value": str(ISAAC_SIGNAL_PORT)},
            {"name": "ISAACSIM_STREAM_PORT", "value": str(ISAAC_MEDIA_PORT)},
        ],
        "ports": [
            {"name": "signal", "containerPort": ISAAC_SIGNAL_PORT, "protocol": "TCP"},
            {"name": "stream", "containerPort": ISAAC_MEDIA_PORT, "protocol": "UDP"},
        ],
        "startupProbe": {
            **app_ready,
            "periodSeconds": PROBE_PERIOD_SECONDS,
            "failureThreshold": -(-settings.startup_timeout_seconds // PROBE_PERIOD_SECONDS),
        },
        "readinessProbe": {"tcpSocket": {"port": "signal"}, "periodSeconds": 10, "failureThreshold": 3},
        "livenessProbe": {"tcpSocket": {"port": "signal"}, "periodSeconds": 30, "failureThreshold": 3},
        "volumeMounts": [
            {"name": "dshm", "mountPath": "/dev/shm"},
            *({"name": CACHE_VOLUME, "mountPath": path, "subPath": d} for d, path in CACHE_DIRS.items()),
        ],
        # Kit writes its caches, logs and settings under its home (/isaac-sim): the root stays writable.
        "securityContext": security_context(ISAAC_UID, read_only=False),
        "resources": {
            "requests": {**sized["requests"], **gpu},
            "limits": {**sized["limits"], **gpu},
        },
    }


def fleet_config(image: str, instances: int, instances_per_gpu: int, settings: InstanceSettings) -> Mapping[str, Any]:
    """What the orchestration service reports at /api/config: the fleet as declared."""
    return {
        "instances": instances,
        "instancesPerGpu": instances_per_gpu,
        "image": image,
        "cpuLimit": settings.cpu_limit,
        "memoryLimit": settings.memory_limit,
        "shmSize": settings.shm_size,
        "startupTimeoutSeconds": settings.startup_timeout_seconds,
        "cacheGbs": settings.cache_gbs,
        "quitWhenViewerLeaves": settings.quit_when_viewer_leaves,
        "ports": {"signal": ISAAC_SIGNAL_PORT, "stream": ISAAC_MEDIA_PORT},
    }
