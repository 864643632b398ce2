"""What Isaac Sim needs of a GPU at the pinned image (nvcr.io/nvidia/isaac-sim:6.0.1), and a GPU pool's fit.

isaac-sim/IsaacSim README.md, "Prerequisites", at tag v6.0.1, names datacenter GPUs per tier; it gives models, not
memory, and NVIDIA's data sheets give each model's memory. Isaac Sim renders with RTX, which needs ray-tracing
cores, and streams with NVENC (its livestream page at 6.0.1: no livestreaming on an A100, which has no encoder).
"""

from __future__ import annotations

from dataclasses import dataclass

from ...oci.shapes import GPU_SHAPES, GpuShape


@dataclass(frozen=True)
class GpuTier:
    tier: str
    gpus: str
    memory_gbs: int


DATACENTER_TIERS = (
    GpuTier("minimum", "NVIDIA A40", 48),
    GpuTier("recommended", "NVIDIA L40S or L20", 48),
    GpuTier("best", "NVIDIA RTX PRO 6000 Blackwell Server Edition", 96),
)
MINIMUM_GPU_MEMORY_GBS = DATACENTER_TIERS[0].memory_gbs
RTX_SHAPES = tuple(name for name, shape in GPU_SHAPES.items() if shape.ray_tracing and shape.nvenc)
# The shapes whose whole GPU meets the minimum.
FITTING_SHAPES = tuple(n for n in RTX_SHAPES if (GPU_SHAPES[n].gpu_memory_gbs or 0) >= MINIMUM_GPU_MEMORY_GBS)


def memory_per_instance(shape: GpuShape, instances_per_gpu: int) -> float:
    """What one instance can count on: its GPU's memory, shared by time slicing (which does not divide memory:
    each instance may take it all, and the next then runs out)."""
    return (shape.gpu_memory_gbs or 0) / instances_per_gpu


def unfit_gpu(shape_name: str) -> tuple[str, str] | None:
    """(key, problem) when the GPU pool's shape cannot run Isaac Sim at all: no RT cores or no encoder."""
    shape = GPU_SHAPES[shape_name]
    if shape.ray_tracing and shape.nvenc:
        return None
    lacks = "ray-tracing cores (RTX)" if not shape.ray_tracing else "a video encoder (NVENC)"
    return (
        "nodePools.gpu.shape",
        f"{shape_name} ({shape.gpu_model}) has no {lacks}, which Isaac Sim needs to render and stream; use "
        + ", ".join(RTX_SHAPES),
    )


def below_minimum(shape_name: str, instances_per_gpu: int) -> tuple[str, str] | None:
    """(key, problem) when each instance gets less GPU memory than Isaac Sim's datacenter minimum."""
    shape = GPU_SHAPES[shape_name]
    each = memory_per_instance(shape, instances_per_gpu)
    if each >= MINIMUM_GPU_MEMORY_GBS:
        return None
    minimum = DATACENTER_TIERS[0]
    shared = f" shared by {instances_per_gpu} instances" if instances_per_gpu > 1 else ""
    key = "simulation.instancesPerGpu" if instances_per_gpu > 1 else "nodePools.gpu.shape"
    return (
        key,
        f"each instance gets {each:g} GB of an {shape.gpu_model} ({shape.gpu_memory_gbs} GB{shared}), less than "
        f"the least of the datacenter GPUs Isaac Sim 6.0.1 lists ({minimum.gpus}, {minimum.memory_gbs} GB): large "
        "scenes may run out of GPU memory",
    )
