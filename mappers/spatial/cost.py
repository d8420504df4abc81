"""The physics shared by every spatial mapper: action counts -> energy, and latency bounds.

Mappers produce counts (DRAM bytes, buffer words read/written, PE operations per array);
this module prices them with the architecture's energy table and combines compute and
memory time. Leakage is not modelled (energy does not depend on latency).
"""

from __future__ import annotations

from collections.abc import Mapping

from attnsim.archs.model import ComputeArray, SpatialArch, StorageLevel
from attnsim.mappers.result import EnergyItem


def dram_energy(arch: SpatialArch, read_bytes: float, write_bytes: float) -> tuple[EnergyItem, ...]:
    """DRAM energy: accesses of `access_bytes` each at `energy_pj_per_access`."""
    items = []
    for action, n_bytes in (("read", read_bytes), ("write", write_bytes)):
        accesses = n_bytes / arch.dram.access_bytes
        items.append(
            EnergyItem("dram", action, accesses, accesses * arch.dram.energy_pj_per_access)
        )
    return tuple(items)


def buffer_energy(
    arch: SpatialArch, level: StorageLevel, read_words: float, write_words: float
) -> tuple[EnergyItem, ...]:
    """Buffer energy: words grouped into rows of `row_bytes`, priced per row read/written."""
    words_per_row = level.row_bytes / arch.word_bytes
    reads = read_words / words_per_row
    writes = write_words / words_per_row
    return (
        EnergyItem(level.name, "read", reads, reads * level.read_energy_pj_per_row),
        EnergyItem(level.name, "write", writes, writes * level.write_energy_pj_per_row),
    )


def compute_energy(
    array: ComputeArray, primitive_counts: Mapping[str, float], skip: frozenset[str] = frozenset()
) -> tuple[EnergyItem, ...]:
    """Energy of primitive PE operations on `array` (operations in `skip` are not charged)."""
    items = []
    for op in sorted(primitive_counts):
        n = primitive_counts[op]
        energy = 0.0 if op in skip else n * array.operation(op).energy_pj
        items.append(EnergyItem(array.name, op, n, energy))
    return tuple(items)


def memory_cycles(arch: SpatialArch, dram_bytes: float) -> float:
    """Cycles to move `dram_bytes` at the DRAM bandwidth."""
    return dram_bytes / arch.dram.bandwidth_bytes_per_s * arch.clock_hz


def bound_latency(compute_cycles: float, mem_cycles: float) -> tuple[float, str]:
    """Latency as the max of compute and memory time, and which one bounds it."""
    if mem_cycles > compute_cycles:
        return mem_cycles, "memory:dram"
    return compute_cycles, "compute"
