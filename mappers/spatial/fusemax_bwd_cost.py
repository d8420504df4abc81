"""FuseMax's fused backward: DRAM traffic per tensor and phase, global-buffer accesses, energy.

Split from `mappers.spatial.fusemax_bwd` (its module docstring states the dataflow); counts
only, priced by `mappers.spatial.cost`. Per batch-like instance, with `blocks` key blocks
and `s` the share of (query tile, key block) pairs some visible pair falls in (1 unmasked):

- pre-pass (D = rowsum(DO o O)): each input it reads once, each result written once;
- key loop: key-side inputs (K, V) read once; per-query tensors the loop reads (Q, DO, LSE
  and the pre-pass's D) once per visited key block (`blocks * s` times); key-side gradients
  (DK, DV) written once; query-side gradients (DQ) written at every visit and read at every
  visit but a query tile's first (its first key block starts the sum), i.e. written
  `max(blocks * s, 1)` and read `max(blocks * s - 1, 0)` times their size. Key x query
  tensors (S, A, DA, DS) never leave the chip.

Global buffer (words; `v` the share of (query tile, key tile) pairs computed): DRAM fills
are written into it and DRAM write-backs read from it; a loop Einsum reads a key-side
tensor once per query tile (K multicast to the array; DK, DV read-modify-written as they
accumulate) and a per-query tensor once per key tile (Q, DO, LSE, D re-read; DQ
read-modify-written), each for the computed tiles only; a key x query tensor one array
produces and the other reads is written once and read once per reading Einsum; the
pre-pass reads its inputs and writes its result once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from attnsim.einsum_ir.ir import TensorName
from attnsim.mappers.result import EnergyItem, Traffic
from attnsim.mappers.spatial import cost
from attnsim.mappers.spatial.unfused import Binding, compute_energy_items

if TYPE_CHECKING:
    from attnsim.mappers.spatial.fusemax_bwd import BwdPlan, BwdTiling


@dataclass(frozen=True, slots=True)
class PhaseTraffic:
    """DRAM (read, write) bytes per tensor of the pre-pass and of the key loop."""

    prepass: tuple[Traffic, ...]
    loop: tuple[Traffic, ...]

    @property
    def prepass_bytes(self) -> float:
        """Bytes the pre-pass moves."""
        return sum(t.total_bytes for t in self.prepass)

    @property
    def loop_bytes(self) -> float:
        """Bytes the key loop moves."""
        return sum(t.total_bytes for t in self.loop)

    def merged(self) -> tuple[Traffic, ...]:
        """One DRAM record per tensor, both phases summed, in first-seen order."""
        totals: dict[str, tuple[float, float]] = {}
        for t in (*self.prepass, *self.loop):
            r, w = totals.get(t.tensor, (0.0, 0.0))
            totals[t.tensor] = (r + t.read_bytes, w + t.write_bytes)
        return tuple(Traffic("dram", name, r, w) for name, (r, w) in totals.items())


def dram_traffic(plan: BwdPlan, tiling: BwdTiling) -> PhaseTraffic:
    """DRAM traffic of the pre-pass and the key loop (see the module docstring)."""
    bs = plan.bs
    cv = bs.cv
    c = cv.cascade
    wb = plan.arch.word_bytes

    def size(name: TensorName) -> float:
        return float(cv.words(name) * wb)

    pre_reads = dict.fromkeys(a.tensor for i in bs.prepass for a in c.einsums[i].inputs)
    prepass = [Traffic("dram", t, size(t), 0.0) for t in pre_reads]
    prepass += [Traffic("dram", t, 0.0, size(t)) for t in bs.prepass_outputs]
    visits = tiling.key_blocks * tiling.streamed_share  # key blocks per query tile
    loop = [Traffic("dram", t, size(t), 0.0) for t in bs.key_inputs]
    loop += [Traffic("dram", t, size(t) * visits, 0.0) for t in bs.streamed]
    loop += [
        Traffic("dram", t, size(t) * max(visits - 1.0, 0.0), size(t) * max(visits, 1.0))
        for t in bs.query_outputs
    ]
    loop += [Traffic("dram", t, 0.0, size(t)) for t in bs.key_outputs]
    return PhaseTraffic(tuple(prepass), tuple(loop))


def buffer_words(plan: BwdPlan, tiling: BwdTiling, traffic: PhaseTraffic) -> tuple[float, float]:
    """(read, write) words of the global buffer (see the module docstring)."""
    bs = plan.bs
    cv = bs.cv
    c = cv.cascade
    wb = plan.arch.word_bytes
    merged = traffic.merged()
    writes = sum(t.read_bytes for t in merged) / wb  # DRAM fills land in the buffer
    reads = sum(t.write_bytes for t in merged) / wb  # write-backs leave from it
    query_tiles = math.ceil(cv.query_rows / tiling.rows)
    key_tiles = math.ceil(cv.sizes[cv.key_rank] / tiling.key_tile)
    visited = plan.mask.visited
    for i in bs.prepass:
        reads += sum(cv.words(t) for t in dict.fromkeys(a.tensor for a in c.einsums[i].inputs))
        writes += cv.words(c.einsums[i].output)
    pairs = set(bs.pair_tensors)
    for i in bs.loop:
        e = c.einsums[i]
        for name in dict.fromkeys(a.tensor for a in e.inputs):
            if name in pairs:
                if name in plan.crossing and plan.units[cv.producer[name]] is not plan.units[i]:
                    reads += cv.words(name) * visited
                continue
            per = query_tiles if cv.is_key_indexed(name) else key_tiles
            reads += cv.words(name) * per * visited
        if e.output in pairs:
            writes += cv.words(e.output) * visited if e.output in plan.crossing else 0.0
        else:  # an accumulator: read-modify-written at every computed tile
            per = query_tiles if cv.is_key_indexed(e.output) else key_tiles
            reads += cv.words(e.output) * per * visited
            writes += cv.words(e.output) * per * visited
    return reads, writes


def energy(plan: BwdPlan, tiling: BwdTiling, traffic: PhaseTraffic) -> tuple[EnergyItem, ...]:
    """Compute (each array's primitive operations), DRAM and global-buffer energy."""
    arch = plan.arch
    order = sorted(plan.units)
    binding = Binding(
        tuple(plan.units[i] for i in order),
        tuple(plan.work[i] for i in order),
        tuple(plan.cycles[i] for i in order),
    )
    items = compute_energy_items(arch, binding)
    merged = traffic.merged()
    items.extend(
        cost.dram_energy(
            arch, sum(t.read_bytes for t in merged), sum(t.write_bytes for t in merged)
        )
    )
    r_words, w_words = buffer_words(plan, tiling, traffic)
    items.extend(cost.buffer_energy(arch, arch.buffer, r_words, w_words))
    return tuple(items)


__all__ = ["PhaseTraffic", "buffer_words", "dram_traffic", "energy"]
