"""What the simulator assumes that a stack file does not say: how long things take, and what GPU nodes cost.

Each default names its source. Where no one publishes a figure (node boot, image pull, Unreal start) the value
is this project's estimate, said so, and meant to be replaced by your own measurement: override any of them with
`--set name=value`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ...oci.shapes import GPU_SHAPES


@dataclass(frozen=True)
class Timings:
    scaler_sync_seconds: int = 2
    hpa_sync_seconds: int = 15
    metrics_scrape_seconds: int = 10
    hpa_tolerance: float = 0.1
    node_provision_seconds: int = 360
    image_pull_seconds: int = 150
    unreal_start_seconds: int = 45
    player_patience_seconds: int = 300
    jitter: float = 0.2
    sample_seconds: int = 10

    def overridden(self, assignments: list[str]) -> Timings:
        """These timings with `name=value` assignments (names as printed: camelCase) applied."""
        changes: dict[str, float] = {}
        by_key = {_camel(f.name): f for f in dataclasses.fields(self)}
        for assignment in assignments:
            key, _, value = assignment.partition("=")
            if key not in by_key:
                raise ValueError(f"--set {assignment}: unknown timing {key!r}; known: {', '.join(by_key)}")
            kind = float if by_key[key].type == "float" else int
            try:
                changes[by_key[key].name] = kind(value)
            except ValueError:
                expected = "a number" if kind is float else "a whole number of seconds"
                raise ValueError(f"--set {assignment}: {value!r} is not {expected}") from None
            if changes[by_key[key].name] < 0:
                raise ValueError(f"--set {assignment}: must not be negative")
        timings = dataclasses.replace(self, **changes)
        for name in ("scalerSyncSeconds", "hpaSyncSeconds", "metricsScrapeSeconds", "sampleSeconds"):
            if timings.as_dict()[name] < 1:
                raise ValueError(f"--set {name}: a period of at least 1 second is needed")
        if timings.jitter >= 1 or timings.hpa_tolerance >= 1:
            raise ValueError("--set jitter and hpaTolerance: need a fraction below 1")
        return timings

    def as_dict(self) -> dict[str, float]:
        return {_camel(f.name): getattr(self, f.name) for f in dataclasses.fields(self)}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


SOURCES: dict[str, str] = {
    "scalerSyncSeconds": "this project: the session service lists the streams and scales every "
    "STREAM_REFRESH_SECONDS, 2 s (session/app.py)",
    "hpaSyncSeconds": "the reference's HPA only; Kubernetes: kube-controller-manager "
    "--horizontal-pod-autoscaler-sync-period, 15 s by default "
    "(Horizontal Pod Autoscaling, 'How does a HorizontalPodAutoscaler work?')",
    "metricsScrapeSeconds": "the reference's HPA only: how often its ratio reaches Prometheus (the scrape_interval "
    "of this project's annotation-driven jobs, components/addons/monitoring.py)",
    "hpaTolerance": "Kubernetes: the HPA skips scaling within 0.1 of the target ratio (Horizontal Pod Autoscaling, "
    "'Algorithm details')",
    "nodeProvisionSeconds": "estimate: launch of a GPU VM, OKE bootstrap, kubelet registration and the device plugin "
    "advertising the GPU; Oracle gives no figure ('a few minutes', OKE blog 'Proactive OKE cluster node "
    "scaling'); measure yours from the pool's work requests and the node's Ready condition",
    "imagePullSeconds": "estimate: a multi-GB Unreal runtime image (the reference builds on Epic's "
    "runtime-pixel-streaming image) from a remote registry; measure with the kubelet's 'Successfully pulled image' "
    "event",
    "unrealStartSeconds": "estimate: container start to the stream pod being ready (the Unreal app connected to its "
    "signalling server); the stack's startupTimeoutSeconds is only the upper bound",
    "playerPatienceSeconds": "assumption: how long a queued player waits before leaving; no published figure",
    "jitter": "assumption: node, pull and start times vary uniformly by this fraction either way",
    "sampleSeconds": "resolution of timeline.png",
}

# USD per GPU per hour, pay-as-you-go: OCI prices GPU shapes per GPU, CPU and memory included. Figures as
# recalled from Oracle's Cloud Price List; check them there (they change, and were not re-read for this
# table) and override with --price SHAPE=USD_PER_HOUR.
GPU_HOURLY_USD: dict[str, float] = {
    "Tesla P100": 1.275,
    "Tesla V100": 2.95,
    "NVIDIA A10": 2.00,
    "NVIDIA L40S": 3.50,
}


def node_hourly_usd(shape: str, overrides: dict[str, float] | None = None) -> float:
    """What one node of `shape` costs per hour."""
    if overrides and shape in overrides:
        return overrides[shape]
    gpu = GPU_SHAPES[shape]
    if gpu.gpu_model not in GPU_HOURLY_USD:
        raise ValueError(f"no price for {shape} ({gpu.gpu_model}); pass --price {shape}=USD_PER_HOUR")
    return GPU_HOURLY_USD[gpu.gpu_model] * gpu.gpus
