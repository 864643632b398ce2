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
    node_provision_seconds: int = 330
    gpu_advertise_seconds: int = 30
    image_pull_seconds: int = 150
    unreal_start_seconds: int = 45
    time_sigma: float = 0.3
    player_patience_seconds: int = 300
    patience_sigma: float = 0.5
    out_of_capacity: float = 0.0
    capacity_error_seconds: int = 120
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
        if timings.hpa_tolerance >= 1 or timings.out_of_capacity >= 1:
            raise ValueError("--set hpaTolerance and outOfCapacity: need a fraction below 1")
        if timings.time_sigma > 2 or timings.patience_sigma > 2:
            raise ValueError("--set timeSigma and patienceSigma: at most 2 (a 95th percentile 27 times the median)")
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
    "nodeProvisionSeconds": "estimate, the median: launch of a GPU VM, OKE bootstrap and the kubelet registering the "
    "node (Ready); Oracle gives no figure ('a few minutes', OKE blog 'Proactive OKE cluster node scaling'); measure "
    "yours from the pool's work requests and the node's Ready condition",
    "gpuAdvertiseSeconds": "estimate, the median: node Ready to the device plugin advertising nvidia.com/gpu (its "
    "DaemonSet pod started and registered with the kubelet); the pre-pull starts at Ready, streams wait for this",
    "imagePullSeconds": "estimate, the median: a multi-GB Unreal runtime image (the reference builds on Epic's "
    "runtime-pixel-streaming image) from a remote registry; measure with the kubelet's 'Successfully pulled image' "
    "event",
    "unrealStartSeconds": "estimate, the median: container start to the stream pod being ready (the Unreal app "
    "connected to its signalling server); the stack's startupTimeoutSeconds is only the upper bound",
    "timeSigma": "assumption: node, advertise, pull and start times are log-normal around their medians with this "
    "sigma (0.3: one in twenty takes over 1.64 times the median, one in a hundred twice it); 0 makes them exact",
    "playerPatienceSeconds": "assumption, the median: how long a queued player waits before leaving; no published "
    "figure",
    "patienceSigma": "assumption: patience is log-normal around its median with this sigma (0.5: a tenth leave within "
    "0.53 times the median, a tenth stay past 1.9 times it)",
    "outOfCapacity": "assumption: the share of GPU node launches OCI refuses ('Out of host capacity'); 0 by default, "
    "since it varies by region, shape and day: set it to see what a shortage costs",
    "capacityErrorSeconds": "estimate: a refused launch to OKE reporting the node's error (NodeError), which the "
    "cluster autoscaler reads as out of resources and backs the pool off (oci_manager.go GetNodePoolNodes, "
    "cluster-autoscaler 1.34.0)",
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
