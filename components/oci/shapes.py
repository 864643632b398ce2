"""The OCI compute shapes this project knows, and what each one can do.

GPU facts follow the OCI Compute Shapes page and NVIDIA's NVENC support matrix: the datacenter training
parts (A100, H100, H200, B200, GB200) have no hardware video encoder, so they cannot serve pixel streams. Memory
per GPU and ray-tracing (RT) cores follow NVIDIA's data sheets: only the A10 (Ampere) and the L40S (Ada) among
these have RT cores, which RTX renderers such as Isaac Sim's need; None where this project states none.
OCPUs and memory of the fixed GPU shapes are the Compute Shapes page's tables (the capacity simulator packs
streams by them); None where the page lists none.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GpuShape:
    name: str
    gpu_model: str
    gpus: int
    nvenc: bool
    ocpus: int | None = None
    memory_gbs: int | None = None
    arch: str = "x86_64"
    gpu_memory_gbs: int | None = None
    """Memory of one GPU."""
    ray_tracing: bool = False
    """RT cores (RTX rendering)."""


@dataclass(frozen=True)
class FlexShape:
    name: str
    max_ocpus: int
    max_memory_gbs: int
    max_memory_per_ocpu_gbs: int = 64
    min_memory_per_ocpu_gbs: int = 1
    arch: str = "x86_64"


GPU_SHAPES: dict[str, GpuShape] = {
    s.name: s
    for s in (
        GpuShape("VM.GPU2.1", "Tesla P100", 1, True, 12, 72, gpu_memory_gbs=16),
        GpuShape("BM.GPU2.2", "Tesla P100", 2, True, 28, 192, gpu_memory_gbs=16),
        GpuShape("VM.GPU3.1", "Tesla V100", 1, True, 6, 90, gpu_memory_gbs=16),
        GpuShape("VM.GPU3.2", "Tesla V100", 2, True, 12, 180, gpu_memory_gbs=16),
        GpuShape("VM.GPU3.4", "Tesla V100", 4, True, 24, 360, gpu_memory_gbs=16),
        GpuShape("BM.GPU3.8", "Tesla V100", 8, True, 52, 768, gpu_memory_gbs=16),
        GpuShape("VM.GPU.A10.1", "NVIDIA A10", 1, True, 15, 240, gpu_memory_gbs=24, ray_tracing=True),
        GpuShape("VM.GPU.A10.2", "NVIDIA A10", 2, True, 30, 480, gpu_memory_gbs=24, ray_tracing=True),
        GpuShape("BM.GPU.A10.4", "NVIDIA A10", 4, True, 64, 1024, gpu_memory_gbs=24, ray_tracing=True),
        GpuShape("BM.GPU.L40S.4", "NVIDIA L40S", 4, True, 112, 1024, gpu_memory_gbs=48, ray_tracing=True),
        GpuShape("BM.GPU4.8", "NVIDIA A100 40GB", 8, False, 64, 2048, gpu_memory_gbs=40),
        GpuShape("BM.GPU.A100-v2.8", "NVIDIA A100 80GB", 8, False, 128, 2048, gpu_memory_gbs=80),
        GpuShape("VM.GPU.A100.80G.1", "NVIDIA A100 80GB", 1, False, gpu_memory_gbs=80),
        GpuShape("BM.GPU.H100.8", "NVIDIA H100", 8, False, 112, 2048, gpu_memory_gbs=80),
        GpuShape("BM.GPU.H200.8", "NVIDIA H200", 8, False, 112, 3072, gpu_memory_gbs=141),
        GpuShape("BM.GPU.B200.8", "NVIDIA B200", 8, False),
        GpuShape("BM.GPU.GB200.4", "NVIDIA GB200", 4, False, arch="aarch64"),
    )
}

FLEX_SHAPES: dict[str, FlexShape] = {
    s.name: s
    for s in (
        FlexShape("VM.Standard.E3.Flex", max_ocpus=64, max_memory_gbs=1024),
        FlexShape("VM.Standard.E4.Flex", max_ocpus=64, max_memory_gbs=1024),
        FlexShape("VM.Standard.E5.Flex", max_ocpus=94, max_memory_gbs=1049),
        FlexShape("VM.Standard3.Flex", max_ocpus=32, max_memory_gbs=512),
        FlexShape("VM.Optimized3.Flex", max_ocpus=18, max_memory_gbs=256),
        FlexShape("VM.Standard.A1.Flex", max_ocpus=80, max_memory_gbs=512, arch="aarch64"),
    )
}

KNOWN_SHAPES = (*FLEX_SHAPES, *GPU_SHAPES)
STREAMING_GPU_SHAPES = tuple(name for name, s in GPU_SHAPES.items() if s.nvenc)


def is_flex(shape: str) -> bool:
    return shape in FLEX_SHAPES


def is_gpu(shape: str) -> bool:
    return shape in GPU_SHAPES


def architecture(shape: str) -> str:
    known = FLEX_SHAPES.get(shape) or GPU_SHAPES.get(shape)
    if known is None:
        raise KeyError(f"unknown shape {shape!r}; known shapes: {', '.join(KNOWN_SHAPES)}")
    return known.arch


def shape_sizing_problem(shape: str, ocpus: float | None, memory_gbs: float | None) -> tuple[str, str] | None:
    """Why ocpus/memory do not fit the shape, as (the config key at fault, the reason), or None when they do."""
    flex = FLEX_SHAPES.get(shape)
    if flex is None:
        if ocpus is not None or memory_gbs is not None:
            key = "ocpus" if ocpus is not None else "memoryGbs"
            return key, f"{shape} is a fixed shape; remove ocpus and memoryGbs (they are set by the shape)"
        return None
    if ocpus is None or memory_gbs is None:
        key = "shape" if ocpus is None and memory_gbs is None else ("ocpus" if ocpus is None else "memoryGbs")
        return key, f"{shape} is a flexible shape and needs both ocpus and memoryGbs"
    if not 1 <= ocpus <= flex.max_ocpus:
        return "ocpus", f"ocpus {ocpus:g} is outside 1-{flex.max_ocpus} for {shape}"
    low, high = (
        ocpus * flex.min_memory_per_ocpu_gbs,
        min(ocpus * flex.max_memory_per_ocpu_gbs, flex.max_memory_gbs),
    )
    if not low <= memory_gbs <= high:
        return "memoryGbs", (
            f"memoryGbs {memory_gbs:g} is outside {low:g}-{high:g} for {ocpus:g} OCPUs of {shape} "
            f"({flex.min_memory_per_ocpu_gbs}-{flex.max_memory_per_ocpu_gbs} GB per OCPU, "
            f"at most {flex.max_memory_gbs} GB)"
        )
    return None
