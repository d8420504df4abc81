"""Hardware as data: spatial accelerators and GPUs, one YAML preset per design."""

from archs.load import load_arch, load_arch_text, preset_names, preset_path
from archs.model import (
    ComputeArray,
    Dram,
    Operation,
    RegisterFile,
    SpatialArch,
    StorageLevel,
    interpolate_area,
)

__all__ = [
    "ComputeArray",
    "Dram",
    "Operation",
    "RegisterFile",
    "SpatialArch",
    "StorageLevel",
    "interpolate_area",
    "load_arch",
    "load_arch_text",
    "preset_names",
    "preset_path",
]
