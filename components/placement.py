"""Where each kind of pod runs: the nodes of a role (system, TURN, GPU), known by their labels and taints.

On OKE the stack's own node pools carry the labels and taints of `OKE_PLACEMENT`; an existing cluster labels
its nodes its own way and names them in config (`cluster.existing.nodes`). Every pod placed on a role's nodes
takes its node selector, affinity and tolerations from here, so one setting moves all of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .constants import DEFAULT_POOL, GPU_NODE_LABEL, GPU_TAINT, POOL_LABEL_KEY, TURN_NODE_LABEL, TURN_TAINT, Taint


@dataclass(frozen=True)
class NodePlacement:
    """The nodes of one role: every label must match; the taints are what its pods tolerate."""

    labels: Mapping[str, str]
    taints: tuple[Taint, ...] = field(default=())

    def node_selector(self) -> dict[str, str]:
        return dict(self.labels)

    def tolerations(self) -> list[dict[str, str]]:
        return [taint.toleration() for taint in self.taints]

    def required_affinity(self) -> dict[str, Any]:
        """Required node affinity for these nodes (one term, every label), as the GPU and TURN pods use it; none
        when any node will do (an empty term would match no node at all)."""
        if not self.labels:
            return {}
        expressions = [{"key": key, "operator": "In", "values": [value]} for key, value in self.labels.items()]
        term = {"matchExpressions": expressions}
        return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}

    def label_selector(self) -> str:
        """The labels as a Kubernetes label selector (`key=value,...`), for API queries."""
        return ",".join(f"{key}={value}" for key, value in self.labels.items())


@dataclass(frozen=True)
class Placement:
    """The three roles: system pods (add-ons, routing), TURN (host network, public IPs), GPU (streams, jobs)."""

    system: NodePlacement
    turn: NodePlacement
    gpu: NodePlacement


OKE_PLACEMENT = Placement(
    system=NodePlacement({POOL_LABEL_KEY: DEFAULT_POOL}),
    turn=NodePlacement(dict([TURN_NODE_LABEL]), (TURN_TAINT,)),
    gpu=NodePlacement(dict([GPU_NODE_LABEL]), (GPU_TAINT,)),
)
SYSTEM_NODES, TURN_NODES, GPU_NODES = OKE_PLACEMENT.system, OKE_PLACEMENT.turn, OKE_PLACEMENT.gpu


def parse_taint(text: str) -> Taint:
    """`key=value:Effect` or `key:Effect`, as `kubectl taint` writes them. Raises ValueError."""
    spec, separator, effect = text.rpartition(":")
    if not separator:
        raise ValueError(f"{text!r} is not a taint such as nvidia.com/gpu=present:NoSchedule")
    key, _, value = spec.partition("=")
    return Taint(key, value, effect)
