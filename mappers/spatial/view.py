"""Shared analysis for spatial mappers: how a cascade's Einsums relate to the key rank M.

Reads only the cascade's structure (ranks, partitions, recurrences, passes), never tensor
names, so a user's cascade with its own names maps the same way as the built-ins.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from archs.model import ComputeArray, SpatialArch
from einsum_ir.analysis.passes import PassReport, count_passes
from einsum_ir.check import recurrence_vars
from einsum_ir.ir import Access, Cascade, Einsum, RankName, TensorName, Var
from einsum_ir.sizes import resolve_sizes
from mappers.memo import by_identity
from mappers.result import (
    VERSION,
    EinsumCost,
    EnergyItem,
    Occupancy,
    Result,
    Scalar,
    Traffic,
    UnitCost,
    input_hash,
)
from mappers.spatial.compute import EinsumWork, cascade_work, einsum_vars, operation_counts

KEY_RANK = RankName("M")
QUERY_RANK = RankName("P")
INSTANCE_RANKS = (RankName("B"), RankName("H"))


class MappingError(ValueError):
    """A cascade/architecture/option combination the mapper cannot map (user-facing)."""


def require_spatial(arch: object, mapper: str) -> None:
    """Refuse architectures that are not spatial accelerators (e.g. GPUs), saying why."""
    if not isinstance(arch, SpatialArch):
        name = getattr(arch, "name", type(arch).__name__)
        raise MappingError(
            f"mapper {mapper!r} maps onto spatial accelerators; {name} is a "
            f"{type(arch).__name__} (use a GPU mapper such as gpu-1pass)"
        )


@dataclass(frozen=True, slots=True)
class CascadeView:
    """A cascade at concrete sizes, seen from the key rank M (lookups precomputed once)."""

    cascade: Cascade
    sizes: Mapping[RankName, int]
    passes: PassReport
    key_parts: tuple[RankName, ...]
    ranks: Mapping[TensorName, tuple[RankName, ...]]
    recur: Mapping[TensorName, str]
    producer: Mapping[TensorName, int]
    who_reads: Mapping[TensorName, tuple[int, ...]]
    key_iterating: frozenset[TensorName]
    inner_key_iterating: frozenset[TensorName]

    def is_lagged(self, e: Einsum, acc: Access) -> bool:
        """Whether `acc` reads the previous iterate of a recurrence (see check.is_lagged_read)."""
        var = self.recur.get(acc.tensor)
        if var is None or var not in e.out_vars:
            return False
        return any(isinstance(i, Var) and i.name == var and i.offset == 0 for i in acc.indices)

    @property
    def inner_key_var(self) -> str:
        """Index of the innermost piece of M (`m0`, or `m` when M is not partitioned)."""
        return self.key_parts[-1].lower()

    @property
    def instances(self) -> int:
        """Product of the batch-like ranks (B x H) that every tensor shares."""
        return math.prod(self.sizes.get(r, 1) for r in self.instance_ranks)

    @property
    def instance_ranks(self) -> tuple[RankName, ...]:
        """Batch-like ranks present in the cascade."""
        return tuple(r for r in INSTANCE_RANKS if r in self.sizes)

    @property
    def key_tiles(self) -> int:
        """Number of key tiles (M1), 1 when M is not partitioned."""
        return self.sizes[self.key_parts[0]] if len(self.key_parts) > 1 else 1

    def iterates_key(self, e: Einsum) -> bool:
        """Whether the Einsum iterates any piece of M."""
        return e.output in self.key_iterating

    def iterates_inner_key(self, e: Einsum) -> bool:
        """Whether the Einsum iterates the innermost piece of M (works inside a key tile)."""
        return e.output in self.inner_key_iterating

    def pass_of(self, index: int) -> int:
        """The pass of Einsum `index` over M."""
        return self.passes.einsum_passes[index].pass_number

    def words(self, tensor: TensorName, drop: frozenset[RankName] = frozenset()) -> int:
        """Elements of `tensor`, leaving out ranks in `drop` (iterative ranks count one iterate)."""
        ranks = self.ranks[tensor]
        recur = self.recur.get(tensor)
        total = 1
        for r in ranks:
            if r in drop or (recur is not None and r == recur.upper()):
                continue
            total *= self.sizes[r]
        return total

    def is_key_indexed(self, tensor: TensorName) -> bool:
        """Whether a tensor is indexed by M or a part of it."""
        return any(self.cascade.root(r) == KEY_RANK for r in self.ranks[tensor])

    def is_query_indexed(self, tensor: TensorName) -> bool:
        """Whether a tensor is indexed by P."""
        return QUERY_RANK in self.ranks[tensor]

    def per_query_words(self, tensor: TensorName, keep_key: bool) -> int:
        """Words of `tensor` per query row (one iterate of a recurrence; M kept or dropped)."""
        drop = {QUERY_RANK, *self.instance_ranks}
        if not keep_key:
            drop |= {r for r in self.ranks[tensor] if self.cascade.root(r) == KEY_RANK}
        return self.words(tensor, frozenset(drop))


def view(cascade: Cascade, sizes: Mapping[str, int], key_tile: int | None) -> CascadeView:
    """Resolve sizes (binding the key tile to `key_tile` unless the caller set it)."""
    return _view(cascade, tuple(sorted(sizes.items())), key_tile)


@by_identity(maxsize=256)
def _view(
    cascade: Cascade, size_items: tuple[tuple[str, int], ...], key_tile: int | None
) -> CascadeView:
    sizes = dict(size_items)
    if KEY_RANK not in cascade.all_ranks:
        raise MappingError(f"cascade {cascade.name} has no key rank M to map")
    key_parts = cascade.expand(KEY_RANK)
    given = dict(sizes)
    derived = {p.parts[0] for p in cascade.partitions}
    given = {k: v for k, v in given.items() if k not in derived}
    if len(key_parts) > 1 and key_tile and key_parts[-1] not in given:
        given[key_parts[-1]] = key_tile
    resolved = resolve_sizes(cascade, given)
    who_reads: dict[TensorName, list[int]] = {}
    for i, e in enumerate(cascade.einsums):
        for acc in e.inputs:
            entry = who_reads.setdefault(acc.tensor, [])
            if i not in entry:
                entry.append(i)
    return CascadeView(
        cascade=cascade,
        sizes=resolved,
        passes=count_passes(cascade, KEY_RANK),
        key_parts=key_parts,
        ranks=cascade.tensor_ranks,
        recur=recurrence_vars(cascade),
        producer={e.output: i for i, e in enumerate(cascade.einsums)},
        who_reads={k: tuple(v) for k, v in who_reads.items()},
        key_iterating=frozenset(
            e.output
            for e, ev in zip(cascade.einsums, einsum_vars(cascade), strict=True)
            if any(cascade.root(RankName(v.upper())) == KEY_RANK for v in ev.iteration)
        ),
        inner_key_iterating=frozenset(
            e.output
            for e, ev in zip(cascade.einsums, einsum_vars(cascade), strict=True)
            if key_parts[-1].lower() in ev.iteration
        ),
    )


def same_tile_deps(cv: CascadeView, index: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(same-tile, previous-tile) producer indices of Einsum `index`'s reads."""
    e = cv.cascade.einsums[index]
    same: list[int] = []
    lagged: list[int] = []
    for acc in e.inputs:
        j = cv.producer.get(acc.tensor)
        is_lag = cv.is_lagged(e, acc)
        if j is None or (j == index and not is_lag):
            continue
        target = lagged if is_lag else same
        if j not in target:
            target.append(j)
    return tuple(same), tuple(lagged)


def is_carry_only(cv: CascadeView, index: int) -> bool:
    """Whether an Einsum's output is read only as a previous or final iterate (a carry).

    Such an update can be deferred to overlap the next tile's work.
    """
    e = cv.cascade.einsums[index]
    if e.recurrence_var is None:
        return False
    for j in cv.who_reads.get(e.output, ()):
        other = cv.cascade.einsums[j]
        for acc in other.inputs:
            if acc.tensor == e.output and not acc.reads_final and not cv.is_lagged(other, acc):
                return False
    return True


def einsum_costs(
    cv: CascadeView,
    units: Sequence[ComputeArray],
    works: Sequence[EinsumWork],
    cycles: Sequence[float],
    latency_cycles: float,
) -> tuple[EinsumCost, ...]:
    """Per-Einsum records: bound unit, pass, PE operations, cycles, share of the latency."""
    return tuple(
        EinsumCost(
            e.output,
            units[i].name,
            cv.pass_of(i),
            float(sum(n for _, n in works[i].actions)),
            cycles[i],
            cycles[i] / latency_cycles if latency_cycles else 0.0,
        )
        for i, e in enumerate(cv.cascade.einsums)
    )


def spatial_result(
    cv: CascadeView,
    arch: SpatialArch,
    mapper: str,
    options: Sequence[tuple[str, Scalar]],
    *,
    latency_cycles: float,
    compute_cycles: float,
    memory_cycles: float,
    bound: str,
    traffic: tuple[Traffic, ...],
    energy: tuple[EnergyItem, ...],
    occupancy: tuple[Occupancy, ...],
    per_einsum: tuple[EinsumCost, ...],
    units: tuple[UnitCost, ...],
    schedule: str,
    identity: object,
    extras: tuple[tuple[str, float], ...] = (),
    warnings: Sequence[str] = (),
) -> Result:
    """The `Result` of a spatial mapping: totals, operation counts and provenance filled in.

    Operation counts are every scalar operation of the cascade at these sizes (a MAC is a
    multiply and an add), the same for every mapper. `identity` (usually the options record)
    enters the input hash with the cascade, the architecture and the sizes.
    """
    c = cv.cascade
    ops = operation_counts(cascade_work(c, cv.sizes, _SCALAR_OPS))
    return Result(
        cascade=c.name,
        arch=arch.name,
        mapper=mapper,
        options=tuple(options),
        sizes=tuple((str(k), int(v)) for k, v in sorted(cv.sizes.items())),
        passes=cv.passes.passes,
        latency_cycles=latency_cycles,
        latency_s=latency_cycles / arch.clock_hz,
        compute_cycles=compute_cycles,
        memory_cycles=memory_cycles,
        bound=bound,
        energy_pj=sum(e.energy_pj for e in energy),
        dram_traffic_bytes=sum(t.total_bytes for t in traffic),
        area_um2=arch.area_um2,
        flops=float(sum(ops.values())),
        traffic=traffic,
        energy=energy,
        occupancy=occupancy,
        per_einsum=per_einsum,
        units=units,
        ops=tuple(sorted(ops.items())),
        extras=extras,
        warnings=tuple(warnings),
        provenance=(
            ("version", VERSION),
            ("schedule", schedule),
            ("input_hash", input_hash(c, arch, sorted(cv.sizes.items()), identity)),
        ),
    )


# An array with no absorbing operations: counts every scalar operation (for Result.ops).
_SCALAR_OPS = ComputeArray("scalar-ops", 1, 1, ())
