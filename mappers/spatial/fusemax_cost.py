"""FuseMax traffic and energy: DRAM per tensor, global-buffer accesses, energy items.

Split from `mappers.spatial.fusemax` (its module docstring states the model); the plan and
the tiling come from there.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from attnsim.einsum_ir.ir import Access, TensorName, Var
from attnsim.mappers.result import EnergyItem, Traffic
from attnsim.mappers.spatial import cost
from attnsim.mappers.spatial.compute import primitive_counts
from attnsim.mappers.spatial.loopnest import Loop, TensorShape, refills
from attnsim.mappers.spatial.mask_cost import (
    streamed_share,
)
from attnsim.mappers.spatial.view import (
    CascadeView,
)

if TYPE_CHECKING:
    from attnsim.mappers.spatial.fusemax import FuseMaxOptions, _Plan, _Tiling


# ----------------------------------------------------------------------------- traffic


def dram_traffic(plan: _Plan, tiling: _Tiling) -> tuple[Traffic, ...]:
    """DRAM reads and writes per tensor (see the `fusemax` module docstring)."""
    cv = plan.cv
    c = cv.cascade
    wb = plan.arch.word_bytes
    key_leaf = cv.key_parts[0]
    outer = tuple(Loop(r, cv.sizes[r]) for r in cv.instance_ranks) + (
        Loop(cv.query_rank, tiling.p2, "P2"),
        Loop(cv.key_rank, cv.sizes[key_leaf] if len(cv.key_parts) > 1 else 1, key_leaf),
    )
    passes_reading: dict[TensorName, set[int]] = {}
    for i, e in enumerate(c.einsums):
        for acc in e.inputs:
            passes_reading.setdefault(acc.tensor, set()).add(cv.pass_of(i))
    # With tile skipping a key tile is loaded for a query block only if the block visits
    # it; a key x query tensor (a bias, a spilled score) moves only for visited tiles.
    streamed = streamed_share(cv, plan.mask, tiling.p0 * tiling.p1)
    visited = plan.mask.visited
    items: list[Traffic] = []
    for name in c.input_names:
        shape = _loop_shape(cv, name)
        per_pass = refills(shape, outer) * shape.elements / max(1, _outer_product(shape, outer))
        n_passes = len(passes_reading.get(name, set())) if cv.is_key_indexed(name) else 1
        share = _key_share(cv, name, visited, streamed)
        items.append(Traffic("dram", name, per_pass * n_passes * wb * share, 0.0))
    for name in c.outputs:
        items.append(Traffic("dram", name, 0.0, cv.words(name) * wb))
    for name in tiling.spilled_crossing:
        later = len(passes_reading.get(name, set()))
        moved = cv.words(name) * wb * _key_share(cv, name, visited, visited)
        items.append(Traffic("dram", name, moved * later, moved))
    return tuple(items)


def _key_share(cv: CascadeView, name: TensorName, visited: float, streamed: float) -> float:
    """Share of `name`'s dense traffic that tile skipping leaves (1 without a mask)."""
    if not cv.is_key_indexed(name):
        return 1.0
    return visited if cv.is_query_indexed(name) else streamed


def _loop_shape(cv: CascadeView, name: TensorName) -> TensorShape:
    extents = []
    for r in cv.ranks[name]:
        root = cv.cascade.root(r)
        is_role = root in (cv.key_rank, cv.query_rank)
        extents.append((str(root) if is_role else str(r), cv.sizes[r]))
    merged: dict[str, int] = {}
    for rank_name, n in extents:
        merged[rank_name] = merged.get(rank_name, 1) * n
    return TensorShape(name, tuple(merged.items()))


def _outer_product(shape: TensorShape, outer: tuple[Loop, ...]) -> int:
    """Iterations of the relevant outer loops (they partition the tensor into tiles)."""
    return math.prod(loop.factor for loop in outer if loop.rank in shape.ranks)


# ----------------------------------------------------------------------------- energy


def _buffer_words(
    plan: _Plan, tiling: _Tiling, traffic: tuple[Traffic, ...]
) -> tuple[float, float]:
    """(read, write) words of the global buffer; see the module docstring of `fusemax`."""
    cv = plan.cv
    c = cv.cascade
    wb = plan.arch.word_bytes
    tiles = cv.key_tiles
    q_blocks = tiling.p0 and math.ceil(cv.query_rows / tiling.p0)
    reads = writes = 0.0
    writes += sum(t.read_bytes for t in traffic) / wb  # DRAM fills land in the buffer
    recur = cv.recur
    # Per (query tile, key tile) accesses happen for visited tiles only (see MaskCost).
    visited = plan.mask.visited
    for i, e in enumerate(c.einsums):
        unit = plan.units[i]
        for acc in dict.fromkeys(e.inputs):
            name = acc.tensor
            if name in c.input_names and unit.is_2d:
                key, query = cv.is_key_indexed(name), cv.is_query_indexed(name)
                if key and not query:
                    # multicast once per query block
                    reads += cv.words(name) * q_blocks * visited
                elif query and not key:
                    reads += cv.words(name) * tiles * visited  # re-read for every key tile
            elif name in recur:
                reads += _state_reads(plan, i, acc)
        if e.recurrence_var is not None:
            writes += cv.words(e.output) * tiles * visited  # the new iterate, once per tile
    rows_words = sum(
        cv.words(t) * _key_share(cv, t, visited, visited)
        for t in (*tiling.in_tile_rows, *tiling.buffered_crossing)
    )
    return reads + rows_words, writes + rows_words


def _state_reads(plan: _Plan, i: int, acc: Access) -> float:
    """Buffer reads of recurrence state by Einsum `i`; registers serve repeated reads.

    The previous iterate is read from the buffer once per tile by the first Einsum on each
    array that needs it; the current iterate is read once per tile by Einsums on the other
    array than its producer; a final iterate is read once.
    """
    cv = plan.cv
    c = cv.cascade
    e = c.einsums[i]
    size = cv.words(acc.tensor)
    if acc.reads_final:
        return float(size)
    if cv.is_lagged(e, acc):
        earlier_on_unit = any(
            plan.units[j] is plan.units[i]
            and any(
                a.tensor == acc.tensor and cv.is_lagged(c.einsums[j], a)
                for a in c.einsums[j].inputs
            )
            for j in range(i)
        )
        return 0.0 if earlier_on_unit else size * cv.key_tiles * plan.mask.visited
    producer = cv.producer[acc.tensor]
    is_current = any(isinstance(x, Var) and x.offset == 1 for x in acc.indices)
    if is_current and plan.units[producer] is not plan.units[i]:
        return size * cv.key_tiles * plan.mask.visited
    return 0.0


def energy(
    plan: _Plan, tiling: _Tiling, traffic: tuple[Traffic, ...], opts: FuseMaxOptions
) -> tuple[EnergyItem, ...]:
    """Compute, DRAM and global-buffer energy (the artifact-compat exp quirk noted)."""
    arch = plan.arch
    items: list[EnergyItem] = []
    skip: frozenset[str] = frozenset()
    if opts.artifact_compat and opts.step == "cascade":
        skip = frozenset({"exp"})
        plan.warnings.append(
            "artifact-compat: exp energy not charged at the +Cascade step "
            "(the FuseMax artifact's exp unit name did not match its table)"
        )
    for array in arch.arrays:
        prims: dict[str, float] = {}
        for i, unit in plan.units.items():
            if unit is array:
                for op, n in primitive_counts(plan.work[i], array).items():
                    prims[op] = prims.get(op, 0.0) + n
        items.extend(cost.compute_energy(array, prims, skip))
    reads = sum(t.read_bytes for t in traffic)
    writes = sum(t.write_bytes for t in traffic)
    items.extend(cost.dram_energy(arch, reads, writes))
    r_words, w_words = _buffer_words(plan, tiling, traffic)
    items.extend(cost.buffer_energy(arch, arch.buffer, r_words, w_words))
    return tuple(items)
