"""The streams, as the Kubernetes API lists them: nothing registers itself with the session service.

A stream may take a player when its pod carries the stream labels, was created by a ReplicaSet (the stream
Deployment's; a pod made by hand has no controller), is Ready (its signalling server has a streamer: the
readiness probe asks it), is not terminating, and has an address. A terminating pod's player keeps it until
the pod is gone; nobody new is sent there. The session service marks the busy ones so that capacity goes
where nobody plays: a pod deletion cost, so that a scale-in removes idle streams first (the ReplicaSet controller
deletes the pods with the lowest `controller.kubernetes.io/pod-deletion-cost` first), and
`cluster-autoscaler.kubernetes.io/safe-to-evict: "false"`, so that the cluster autoscaler never takes the node
of a stream with a player; both are lifted when the stream is free again. Each stream pod names its build (the
version of the Unreal app it runs) in the label BUILD_LABEL; a pod without one takes no player.
"""

from __future__ import annotations

import urllib.parse
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


def stream_pods(pod_list: dict) -> StreamList:
    found = StreamList()
    ready, draining = found.ready, found.draining
    for pod in pod_list.get("items", []):
        metadata, status = pod.get("metadata", {}), pod.get("status", {})
        owners = metadata.get("ownerReferences", [])
        build = metadata.get("labels", {}).get(BUILD_LABEL)
        if not status.get("podIP") or not build:
            continue
        if not any(o.get("controller") and o.get("kind") == "ReplicaSet" for o in owners):
            continue
        found.builds[metadata["name"]] = build
        if metadata.get("deletionTimestamp"):
            draining[metadata["name"]] = status["podIP"]
            continue
        conditions = status.get("conditions", [])
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            ready[metadata["name"]] = status["podIP"]
    return found


def list_streams(namespace: str, selector: str) -> StreamList:
    query = urllib.parse.urlencode({"labelSelector": selector})
    return stream_pods(kube.call("GET", f"/api/v1/namespaces/{namespace}/pods?{query}"))


def busy_annotations(busy: bool) -> dict[str, str | None]:
    """The annotations of a stream with a player (or without: None removes one, as a merge patch does)."""
    return {DELETION_COST: "1" if busy else "0", SAFE_TO_EVICT: "false" if busy else None}


def set_deletion_cost(namespace: str, pod: str, busy: bool) -> None:
    patch = {"metadata": {"annotations": busy_annotations(busy)}}
    kube.call("PATCH", f"/api/v1/namespaces/{namespace}/pods/{pod}", patch, "application/merge-patch+json")
