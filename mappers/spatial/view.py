"""Shared analysis for spatial mappers: how a cascade's Einsums relate to its key rank.

Reads only the cascade's structure (ranks, partitions, recurrences, passes), never tensor
or rank names: the key, query, query-group and batch-like ranks come from
`einsum_ir.analysis.structure.attention_problem`, so a user's cascade with its own names
and letters maps the same way as the built-ins.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from attnsim.archs.model import ComputeArray, SpatialArch
from attnsim.einsum_ir.analysis.masks import where_text
from attnsim.einsum_ir.analysis.passes import PassReport, count_passes
from attnsim.einsum_ir.analysis.structure import (
    AttentionProblem,
    BackwardCascadeError,
    Roles,
    StructureError,
    attention_problem,
)
from attnsim.einsum_ir.check import recurrence_vars
from attnsim.einsum_ir.ir import (
    Access,
    AnyOf,
    Cascade,
    Condition,
    Einsum,
    RankName,
    TensorName,
    Var,
)
from attnsim.einsum_ir.sizes import resolve_sizes
from attnsim.mappers.memo import by_identity
from attnsim.mappers.result import (
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
from attnsim.mappers.spatial.compute import EinsumWork, cascade_work, einsum_vars, operation_counts

# The built-ins' letters, kept for modules that still address ranks by name (flat) and as
# the fallback roles of a cascade that states no attention problem (a lone matmul), which
# only `flat` accepts far enough to refuse it itself; fusemax and unfused read every role
# from `CascadeView.attention` (structure, not letters).
KEY_RANK = RankName("M")
QUERY_RANK = RankName("P")
_LETTER_BATCH = (RankName("B"), RankName("H"))


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
    """A cascade at concrete sizes, seen from its key rank (lookups precomputed once).

    Attributes:
        roles: Which rank is the key, the query, a query group, batch-like.
        problem: The attention problem the cascade states (roles, sharing, mask, score),
            None when the structure states none (`structure_error` says why).
        backward: A gradient cascade (dK, dV indexed by the key rank): ranks by letter;
            fusemax and flat map it with their fused backward (`fusemax_bwd`, `flat_bwd`,
            which check the letters against the structure), unfused prices it Einsum by
            Einsum.
        key_parts: The key rank's pieces, outermost first (`M1, M0`, or just the key).
    """

    cascade: Cascade
    sizes: Mapping[RankName, int]
    roles: Roles
    problem: AttentionProblem | None
    structure_error: str
    passes: PassReport
    key_parts: tuple[RankName, ...]
    ranks: Mapping[TensorName, tuple[RankName, ...]]
    recur: Mapping[TensorName, str]
    producer: Mapping[TensorName, int]
    who_reads: Mapping[TensorName, tuple[int, ...]]
    key_iterating: frozenset[TensorName]
    inner_key_iterating: frozenset[TensorName]
    key_indexed: frozenset[TensorName]
    backward: bool = False  # a gradient cascade (its outputs indexed by the key rank)

    def is_lagged(self, e: Einsum, acc: Access) -> bool:
        """Whether `acc` reads the previous iterate of a recurrence (see check.is_lagged_read)."""
        var = self.recur.get(acc.tensor)
        if var is None or var not in e.out_vars:
            return False
        return any(isinstance(i, Var) and i.name == var and i.offset == 0 for i in acc.indices)

    @property
    def attention(self) -> AttentionProblem:
        """The attention problem; MappingError when the cascade states none."""
        if self.problem is None:
            raise MappingError(
                f"cascade {self.cascade.name} cannot be mapped: {self.structure_error}"
            )
        return self.problem

    @property
    def key_rank(self) -> RankName:
        """The key/value position rank (reduced by the weights x V contraction)."""
        return self.roles.key

    @property
    def query_rank(self) -> RankName:
        """The query position rank."""
        return self.roles.query

    @property
    def group_ranks(self) -> tuple[RankName, ...]:
        """Query-group ranks (the R query heads of a GQA group), packed into query rows."""
        return tuple(r for r in self.roles.query_groups if r in self.sizes)

    @property
    def query_group(self) -> int:
        """Query rows per query position (R for GQA, 1 otherwise)."""
        return math.prod(self.sizes[r] for r in self.group_ranks)

    @property
    def query_rows(self) -> int:
        """Query rows of one instance: positions x query-group heads (R x P)."""
        return self.sizes[self.query_rank] * self.query_group

    @property
    def inner_key_var(self) -> str:
        """Index of the innermost piece of M (`m0`, or `m` when M is not partitioned)."""
        return self.key_parts[-1].lower()

    @property
    def instances(self) -> int:
        """Product of the batch-like ranks (B x H, or B x G with grouped heads)."""
        return math.prod(self.sizes.get(r, 1) for r in self.instance_ranks)

    @property
    def instance_ranks(self) -> tuple[RankName, ...]:
        """Batch-like ranks (carried by the query and the key side alike), outer loops."""
        return tuple(r for r in self.roles.batch if r in self.sizes)

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

    def pins_key(self, e: Einsum) -> bool:
        """Whether `e`'s conditions pin its key (each band one diagonal m == p + c, or one key).

        Then it reads one key per query (or one per key tile), so its own pairs, not the
        mask's tiles, are its work. The chunked linear forms write a query's per-chunk terms
        this way (Lightning-2's `QD ... where m == p + M - P`), CCA its pooled core tokens
        (`m0 == M0 - 1`: the last key of each group).
        """
        from attnsim.einsum_ir.analysis.masks import where_bands

        if not e.where:
            return False
        sizes = {str(k): v for k, v in self.sizes.items()}
        inner = self.key_parts[-1]
        tile = (inner.lower(), self.sizes[inner], self.sizes[self.key_rank])
        bands = where_bands(e.where, self.key_rank.lower(), self.query_rank.lower(), sizes,
                            tile if len(self.key_parts) > 1 else None)  # fmt: skip
        return bool(bands) and all(
            (b.d_lo is not None and b.d_lo == b.d_hi) or (b.m_lo is not None and b.m_lo == b.m_hi)
            for b in bands  # type: ignore[union-attr]
        )

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
        """Whether a tensor is indexed by the key rank or a part of it."""
        return tensor in self.key_indexed

    def is_query_indexed(self, tensor: TensorName) -> bool:
        """Whether a tensor is indexed by the query rank."""
        return self.query_rank in self.ranks[tensor]

    def per_query_words(self, tensor: TensorName, keep_key: bool) -> int:
        """Words of `tensor` per query row (one iterate of a recurrence; keys kept or dropped).

        A query row is one (query-group head, query position) pair: the query-group ranks
        are packed into the rows with the positions, as kernels pack a GQA group's heads.
        """
        drop = {self.query_rank, *self.group_ranks, *self.instance_ranks}
        if not keep_key:
            drop |= {r for r in self.ranks[tensor] if self.cascade.root(r) == self.key_rank}
        return self.words(tensor, frozenset(drop))


def pinned_note(e: Einsum) -> str:
    """The warning of an Einsum priced at its own pairs (`CascadeView.pins_key`)."""
    return (
        f"{e.output}: its condition pins the key ({where_text(e.where)}): one key per query "
        "or per key tile, priced at its own pairs rather than per computed tile of the mask"
    )


def _flat_where(where: Sequence[Condition | AnyOf]) -> list[Condition]:
    out: list[Condition] = []
    for c in where:
        out.extend([c] if isinstance(c, Condition) else [x for opt in c.options for x in opt])
    return out


def reads_key_chunk(cascade: Cascade, key_parts: Sequence[RankName]) -> bool:
    """Whether the cascade's conditions read the position inside its innermost key part.

    Then that part is a chunk the cascade computes with (Lightning Attention-2's M0, a
    group), not a tiling a mapper may choose.
    """
    inner = key_parts[-1].lower()
    return len(key_parts) > 1 and any(
        inner in c.vars for e in cascade.einsums for c in _flat_where(e.where)
    )


def view(cascade: Cascade, sizes: Mapping[str, int], key_tile: int | None) -> CascadeView:
    """Resolve sizes, binding the key tile to `key_tile` unless the caller set it.

    When the cascade's conditions read the position inside the key tile (a chunk, a group),
    the tile is part of what it computes: its own size stays.
    """
    return _view(cascade, tuple(sorted(sizes.items())), key_tile)


@by_identity(maxsize=256)
def _view(
    cascade: Cascade, size_items: tuple[tuple[str, int], ...], key_tile: int | None
) -> CascadeView:
    sizes = dict(size_items)
    derived = {p.parts[0] for p in cascade.partitions}
    given = {k: v for k, v in sizes.items() if k not in derived}
    problem: AttentionProblem | None = None
    error = ""
    backward = False
    try:
        problem = attention_problem(cascade, given)
        roles = problem.roles
    except BackwardCascadeError as exc:
        # a gradient cascade: no forward attention problem; the ranks by letter, checked
        # against the structure by the fused backward mappers (`fusemax_bwd_structure`)
        error, backward = str(exc), True
        batch = tuple(r for r in _LETTER_BATCH if r in cascade.all_ranks)
        roles = Roles(KEY_RANK, QUERY_RANK, (), batch, (), ())
    except StructureError as exc:
        if KEY_RANK not in cascade.all_ranks or QUERY_RANK not in cascade.all_ranks:
            raise MappingError(f"cascade {cascade.name} cannot be mapped: {exc}") from None
        error = str(exc)
        batch = tuple(r for r in _LETTER_BATCH if r in cascade.all_ranks)
        roles = Roles(KEY_RANK, QUERY_RANK, (), batch, (), ())
    key_rank = roles.key
    key_parts = cascade.expand(key_rank)
    # a condition on the position inside the key tile (a chunk, a group) fixes the tile: it
    # is part of what the cascade computes, so the mapper keeps the cascade's own size
    tied = reads_key_chunk(cascade, key_parts)
    if len(key_parts) > 1 and key_tile and key_parts[-1] not in given and not tied:
        given[key_parts[-1]] = key_tile
        if problem is not None:
            problem = attention_problem(cascade, given)
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
        roles=roles,
        problem=problem,
        structure_error=error,
        backward=backward,
        passes=count_passes(cascade, key_rank),
        key_parts=key_parts,
        ranks=cascade.tensor_ranks,
        recur=recurrence_vars(cascade),
        producer={e.output: i for i, e in enumerate(cascade.einsums)},
        who_reads={k: tuple(v) for k, v in who_reads.items()},
        key_iterating=frozenset(
            e.output
            for e, ev in zip(cascade.einsums, einsum_vars(cascade), strict=True)
            if any(cascade.root(RankName(v.upper())) == key_rank for v in ev.iteration)
        ),
        inner_key_iterating=frozenset(
            e.output
            for e, ev in zip(cascade.einsums, einsum_vars(cascade), strict=True)
            if key_parts[-1].lower() in ev.iteration
        ),
        key_indexed=frozenset(
            t
            for t, ranks in cascade.tensor_ranks.items()
            if any(cascade.root(r) == key_rank for r in ranks)
        ),
    )


def score_index(cv: CascadeView) -> int | None:
    """The first Einsum working per (key, query) pair: it applies the mask to the scores."""
    for i, e in enumerate(cv.cascade.einsums):
        if cv.iterates_inner_key(e) and cv.query_rank.lower() in e.iteration_vars:
            return i
    return None


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


def _unshared_reads(
    cv: CascadeView, traffic: Sequence[Traffic], word_bytes: int
) -> tuple[str, ...]:
    """Say when a shared input (GQA's K/V) is read from DRAM once per sharing head anyway.

    A tensor absent from a rank is shared by that rank's heads; a mapping that keeps it on
    chip for the whole group reads it once. When this mapping's DRAM reads of it reach its
    size times the group (it re-reads it per block of query rows), sharing saved no traffic,
    and the Result says so rather than look like a mapper that ignored the sharing.
    """
    if cv.problem is None:
        return ()
    notes = []
    for name in cv.cascade.input_names:
        ranks = cv.problem.sharing_of(name)
        if not ranks:
            continue
        group = math.prod(cv.sizes[r] for r in ranks)
        size = cv.words(name) * word_bytes
        read = sum(t.read_bytes for t in traffic if t.level == "dram" and t.tensor == name)
        if group > 1 and read >= group * size * (1 - 1e-9):
            notes.append(
                f"{name} is shared by the {group} query heads of a group ({', '.join(ranks)}) "
                f"but read {read / size:.3g}x its size from DRAM: this mapping re-reads it for "
                "every block of query rows, so the sharing saves no DRAM traffic here"
            )
    return tuple(notes)


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
        warnings=tuple(warnings)
        + (
            (f"rank roles by letter (key M, query P): {cv.structure_error}",)
            if cv.problem is None
            else ()
        )
        + _unshared_reads(cv, traffic, arch.word_bytes)
        + _bound_note(cv, traffic, compute_cycles, memory_cycles, sum(ops.values())),
        provenance=(
            ("version", VERSION),
            ("schedule", schedule),
            ("input_hash", input_hash(c, arch, sorted(cv.sizes.items()), identity)),
            ("passes over", str(cv.passes.rank)),
        ),
    )


def _bound_note(
    cv: CascadeView, traffic: Sequence[Traffic], compute: float, memory: float, flops: float
) -> tuple[str, ...]:
    """Say why DRAM bounds the latency: the biggest tensors and the reuse per element."""
    dram = sum(t.total_bytes for t in traffic if t.level == "dram")
    if memory <= compute or not dram:
        return ()
    top = sorted(((t.total_bytes, t.tensor) for t in traffic if t.level == "dram"), reverse=True)
    big = ", ".join(f"{name} {b / dram:.0%}" for b, name in top[:3])
    decode = ", decode" if cv.sizes[cv.query_rank] == 1 else ""
    return (
        f"bandwidth-bound: DRAM {memory:,.0f} cycles vs compute {compute:,.0f} "
        f"({memory / max(compute, 1e-9):.1f}x): {flops / dram:.1f} operations per DRAM byte, "
        f"{cv.query_rows} query row(s) per key/value element (positions x packed heads"
        f"{decode}); DRAM bytes: {big}",
    )


# An array with no absorbing operations: counts every scalar operation (for Result.ops).
_SCALAR_OPS = ComputeArray("scalar-ops", 1, 1, ())
