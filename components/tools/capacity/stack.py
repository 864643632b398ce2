"""A stack file read for the simulator: the GPU pool, how many streams fit on one of its nodes, how the streams
scale, warm capacity and pre-pull, and the cluster autoscaler's timings. The file is validated exactly as
`make plan` validates it, so a simulated stack is one that deploys.

The streams scale as the session service scales them (its buffer, bounds and scale-down window), unless the file
describes another system's stream HPA under `simulator:streamHpa` (the reference's, which this project does not
deploy): then they scale as that HPA would."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic.alias_generators import to_snake

from ...addons.cluster_autoscaler import AutoscalerTimings
from ...config import ConfigError, StackConfig
from ...oci.shapes import GPU_SHAPES
from ...stack_file import read_stack_config
from ...workloads.kubernetes import cpu_millis, memory_bytes
from ...workloads.pixel_streaming.session.scaler import BuildScale
from ...workloads.pixel_streaming.session.schedule import CapacitySchedule
from ...workloads.pixel_streaming.streaming import StreamerSettings, stream_requests
from .hpa import HpaSettings

PACKAGED = Path(__file__).parent
REFERENCE_STACK = PACKAGED / "Pulumi.reference.yaml"
# Kept back on every GPU node for the kubelet, the system and the DaemonSets (device plugin, exporter, TURN is
# elsewhere): an estimate in the range OKE reserves, used only to pack CPU-bound (cpuPacked) streams.
NODE_RESERVED_MILLICPU = 1000
NODE_RESERVED_BYTES = 4 * 2**30


@dataclass(frozen=True)
class GpuPool:
    shape: str
    gpus: int
    slots: int
    """Streams (or placeholders) one node holds."""
    size: int
    min_size: int
    max_size: int
    autoscaled: bool
    """Resized by the cluster autoscaler (the pool has min/max and the add-on is on)."""


@dataclass(frozen=True)
class BufferScaling:
    """The session service's scaler (session/scaler.py): in use + waiting + buffer, within the bounds."""

    scale: BuildScale
    scale_down_seconds: int


@dataclass(frozen=True)
class SimulatedStack:
    name: str
    pool: GpuPool
    scaling: BufferScaling | HpaSettings
    warm_streams: int
    pre_pull: bool
    drain_seconds: int
    autoscaler: AutoscalerTimings
    eviction_grace_seconds: int = 3600
    """How long OKE drains a GPU node it replaces before deleting it anyway (nodePools.gpu.eviction)."""
    force_delete_after_grace: bool = True
    schedules: tuple[CapacitySchedule, ...] = ()
    """Larger buffers between two times (streaming.capacity.schedules), replayed on the trace's clock."""
    cold_start_seconds: int = 120
    """What the session service tells a queued player when it has no history (streaming.players.queue)."""


def slots_per_node(shape: str, streamer: StreamerSettings, streams_per_gpu: int) -> int:
    """How many stream pods the scheduler fits on one node: GPUs (or time-sliced shares) in the GPU modes, and
    never more than the node's CPU and memory hold."""
    gpu = GPU_SHAPES[shape]
    requests = stream_requests(streamer)
    by_cpu = (gpu.ocpus * 2 * 1000 - NODE_RESERVED_MILLICPU) // cpu_millis(requests["cpu"])
    by_memory = (gpu.memory_gbs * 10**9 - NODE_RESERVED_BYTES) // memory_bytes(requests["memory"])
    fits = min(by_cpu, by_memory)
    if streamer.gpu_mode == "whole":
        return min(gpu.gpus, fits)
    if streamer.gpu_mode == "timeSliced":
        return min(gpu.gpus * streams_per_gpu, fits)
    return fits


def stack_name(path: Path) -> str:
    return path.name.removeprefix("Pulumi.").removesuffix(".yaml")


def load_stack(path: Path) -> SimulatedStack:
    """Read and validate a stack file (ConfigError names the bad key)."""
    config = StackConfig.from_stack_file(path)
    if not config.cluster.oke:
        raise ConfigError(
            "cluster.target",
            "existing: the simulator models the stack's own OKE GPU pool and its autoscaler; an existing cluster's "
            "nodes are not in the stack file",
        )
    spec = config.node_pools.gpu
    streamer = config.streaming.streamer.settings()
    autoscaler = config.addons.cluster_autoscaler
    autoscaled = spec.max_size is not None and autoscaler.enabled
    pool = GpuPool(
        shape=spec.shape,
        gpus=GPU_SHAPES[spec.shape].gpus,
        slots=slots_per_node(spec.shape, streamer, config.addons.gpu_plugin.streams_per_gpu),
        size=spec.size,
        min_size=spec.min_size if autoscaled else spec.size,
        max_size=spec.max_size if autoscaled else spec.size,
        autoscaled=autoscaled,
    )
    return SimulatedStack(
        name=stack_name(path),
        pool=pool,
        scaling=_stream_hpa(path) or _buffer_scaling(config),
        warm_streams=config.streaming.capacity.warm_streams,
        pre_pull=config.streaming.capacity.pre_pull,
        drain_seconds=streamer.drain_seconds,
        autoscaler=autoscaler.timings(),
        eviction_grace_seconds=spec.eviction.grace_minutes * 60,
        force_delete_after_grace=spec.eviction.force_delete_after_grace,
        schedules=tuple(schedule.schedule() for schedule in config.streaming.capacity.schedules),
        cold_start_seconds=config.streaming.players.queue.cold_start_seconds,
    )


def _buffer_scaling(config: StackConfig) -> BufferScaling:
    [build] = config.streaming.stream_builds()[:1]
    scale = BuildScale(build.deployment, build.buffer_streams, build.min_replicas, build.max_replicas)
    return BufferScaling(scale, config.streaming.autoscaling.scale_down.stabilization_seconds)


def _stream_hpa(path: Path) -> HpaSettings | None:
    """Another system's stream HPA, when the file describes one (`simulator:streamHpa`, keys in camelCase)."""
    raw = read_stack_config(path, "simulator").values.get("simulator:streamHpa")
    if raw is None:
        return None
    try:
        return HpaSettings(**{to_snake(key): value for key, value in json.loads(raw).items()})
    except TypeError as error:
        raise ConfigError("streamHpa", f"is not an HPA description: {error}", namespace="simulator") from None


def resolve(stack: str, project_dir: Path = Path(".")) -> Path:
    """A stack name (`stacks/Pulumi.<name>.yaml`, or `reference`, shipped with the simulator) or a file path."""
    candidate = Path(stack)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        return candidate
    named = project_dir / "stacks" / f"Pulumi.{stack}.yaml"
    if named.exists():
        return named
    if stack == "reference":
        return REFERENCE_STACK
    known = ["reference", *sorted(stack_name(p) for p in (project_dir / "stacks").glob("Pulumi.*.yaml"))]
    raise FileNotFoundError(f"no stack {stack!r} ({named} does not exist); known: {', '.join(known)}")
