"""The streams, as the Kubernetes API lists them: nothing registers itself with the session service.

A stream may take a player when its pod carries the stream labels, was created by a ReplicaSet (the stream
Deployment's; a pod made by hand has no controller), is Ready (its signalling server has a streamer: the
readiness probe asks it), is not terminating, and has an address. A terminating pod's player keeps it until
the pod is gone; nobody new is sent there. The session service marks the busy ones so that capacity goes
where nobody plays: a pod deletion cost (1 with a player, 0 free, -1 retired for a scale-in), so that a scale-in
removes the retired streams and never one with a player (the ReplicaSet controller deletes the ready pods with the
lowest `controller.kubernetes.io/pod-deletion-cost` first), and
`cluster-autoscaler.kubernetes.io/safe-to-evict: "false"`, so that the cluster autoscaler never takes the node
of a stream with a player; both are lifted when the stream is free again. Each stream pod names its build (the
version of the Unreal app it runs) in the label BUILD_LABEL; a pod without one takes no player.
"""

from __future__ import annotations

import urllib.parse
from collections import Counter
from dataclasses import dataclass, field

import kube

DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"
BUILD_LABEL = "pixelstream.io/build"


@dataclass
class StreamList:
    ready: dict[str, str] = field(default_factory=dict)
    """Pod name -> pod IP of the streams that may take a player."""
    draining: dict[str, str] = field(default_factory=dict)
    """Those terminating: their player stays while the pod's preStop hook waits for it; nobody new comes."""
    builds: dict[str, str] = field(default_factory=dict)
    """Pod name -> its build, for both."""
    nodes: dict[str, str] = field(default_factory=dict)
    """Pod name -> its node, for both."""
    starting: Counter[str] = field(default_factory=Counter)
    """Build -> its pods that are neither ready nor terminating (nor ended): what a scale-in removes first."""
    replica_sets: dict[str, set[str]] = field(default_factory=dict)
    """Build -> the ReplicaSets owning its pods that are not terminating: two while its Deployment rolls."""


def stream_pods(pod_list: dict) -> StreamList:
    found = StreamList()
    ready, draining = found.ready, found.draining
    for pod in pod_list.get("items", []):
        metadata, status = pod.get("metadata", {}), pod.get("status", {})
        owners = metadata.get("ownerReferences", [])
        build = metadata.get("labels", {}).get(BUILD_LABEL)
        owner = next((o for o in owners if o.get("controller") and o.get("kind") == "ReplicaSet"), None)
        # A Failed or Succeeded pod (evicted, refused by the kubelet) counts for nobody: its ReplicaSet ignores it.
        if not build or owner is None or status.get("phase") in ("Failed", "Succeeded"):
            continue
        conditions = status.get("conditions", [])
        is_ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
        terminating = bool(metadata.get("deletionTimestamp"))
        if not terminating:
            found.replica_sets.setdefault(build, set()).add(owner.get("name", ""))
        if not status.get("podIP") or not (is_ready or terminating):
            if not terminating:
                found.starting[build] += 1
            continue
        name = metadata["name"]
        found.builds[name], found.nodes[name] = build, pod.get("spec", {}).get("nodeName", "")
        if terminating:
            draining[name] = status["podIP"]
        else:
            ready[name] = status["podIP"]
    return found


def list_streams(namespace: str, selector: str) -> StreamList:
    query = urllib.parse.urlencode({"labelSelector": selector})
    return stream_pods(kube.call("GET", f"/api/v1/namespaces/{namespace}/pods?{query}"))


def cost_annotations(cost: int) -> dict[str, str | None]:
    """The annotations of a stream with a player (cost 1), free (0) or retiring (-1): None removes one, as a merge
    patch does. Only a stream with a player is kept from the cluster autoscaler."""
    return {DELETION_COST: str(cost), SAFE_TO_EVICT: "false" if cost > 0 else None}


def set_deletion_cost(namespace: str, pod: str, cost: int) -> None:
    patch = {"metadata": {"annotations": cost_annotations(cost)}}
    kube.call("PATCH", f"/api/v1/namespaces/{namespace}/pods/{pod}", patch, "application/merge-patch+json")


def deployment_scale(namespace: str, deployment: str) -> int:
    """The Deployment's replicas, through its scale subresource (all the Role allows on it besides patch)."""
    scale = kube.call("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/{deployment}/scale")
    return int(scale.get("spec", {}).get("replicas", 0))


def set_deployment_scale(namespace: str, deployment: str, replicas: int) -> None:
    patch = {"spec": {"replicas": replicas}}
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments/{deployment}/scale"
    kube.call("PATCH", path, patch, "application/merge-patch+json")
