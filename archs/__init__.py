"""Hardware as data: spatial accelerators and GPUs, one YAML preset per design."""

from attnsim.archs.load import load_arch, load_arch_text, preset_names, preset_path
from attnsim.archs.model import (
    ComputeArray,
    Dram,
    Operation,
    RegisterFile,
    SpatialArch,
    StorageLevel,
    interpolate_area,
)
from attnsim.archs.overrides import OVERRIDES, Override, apply_overrides, override_names

__all__ = [
    "OVERRIDES",
    "ComputeArray",
    "Dram",
    "Operation",
    "Override",
    "RegisterFile",
    "SpatialArch",
    "StorageLevel",
    "apply_overrides",
    "interpolate_area",
    "load_arch",
    "load_arch_text",
    "override_names",
    "preset_names",
    "preset_path",
]
