"""What FLAT reads from a cascade: rank roles, binding, the two matmuls and the mask's share.

Roles come from `einsum_ir.analysis.structure.attention_problem` (structure, never letters):
the key rank (its innermost piece when the cascade tiles it), the query rank, query-group
ranks (GQA's R: packed into query rows with the positions, as kernels pack a group's heads,
so a KV head's K and V serve all its query heads) and the batch-like ranks (outer loops).

Binding follows the shape of the work, as FLAT's hardware would run it: a contraction that
works per (key, query) element -- it multiplies under a sum and iterates the key rank's
innermost piece -- runs on the 2D array; everything else (softmax phases, and a key-tiled
cascade's per-row and per-tile bookkeeping: running max, rescale factors, the rescaled
sums over key tiles) streams through the 1D array. FLAT's dataflow needs exactly two such
contractions, scores then weighted values; a key-tiled cascade's tile rank (M1) becomes an
outer array loop around them, and the values' per-tile partial sums go to the 1D array.

Masks (`skip_empty_tiles`): FLAT's tile is its row tile (p1 query rows, i.e. p1 / R query
positions with grouped heads) x its key span (the cascade's key tile M0 when it tiles the
keys, else the 2D array's columns), classified by `attention_problem(...).tiles`. With
skipping, a visited tile is computed whole: the contractions' cycles, key x query tensors
and the re-deliveries of every other tensor follow the visited share, 1D Einsums that
iterate the key rank do the dense work of the visited tiles, and partial tiles pay one
compare-select per pair on the score Einsum's array. Without skipping every tile is
computed and the warnings say so. Same semantics and wording as `fusemax` and `unfused`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from attnsim.archs.model import ComputeArray, SpatialArch
from attnsim.einsum_ir.analysis.structure import (
    AttentionProblem,
    MaskKind,
    Roles,
    StructureError,
    attention_problem,
    rank_roles,
)
from attnsim.einsum_ir.ir import Cascade, Einsum, RankName, TensorName
from attnsim.mappers.memo import by_identity
from attnsim.mappers.spatial.compute import (
    EinsumWork,
    cascade_work,
    cycles_on,
    dense_cascade,
    lower_work,
    scale_work,
    unsupported,
)
from attnsim.mappers.spatial.flat_cost import Contraction, FlatProblem, StreamPhase
from attnsim.mappers.spatial.unfused import (
    Binding,
    StreamBuffer,
    element_stream_cycles,
    group_phases,
    phase_io,
    stream_buffer_words,
)
from attnsim.mappers.spatial.view import CascadeView, MappingError


@dataclass(frozen=True, slots=True)
class MaskShare:
    """How the mask meets FLAT's tiles at one row tile (shares of the dense work).

    Attributes:
        visited: Share of tiles computed (1 without skipping or without a mask).
        selected: Share of the dense (query, key) pairs that pay a compare-select.
        warnings: What was priced, in the wording of `mappers.spatial.mask_cost.mask_cost`.
    """

    visited: float = 1.0
    selected: float = 0.0
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Contraction:
    index: int
    input: TensorName
    weight: TensorName
    output: TensorName
    ranks: tuple[RankName, ...]  # the three ranks on the array
    outer: tuple[RankName, ...]  # outer key pieces (M1)


@dataclass(frozen=True, slots=True, eq=False)
class Problem:
    """A cascade at concrete sizes as FLAT sees it; `at(p1)` gives the cost model's input.

    Unmasked, every row tile gives the same `FlatProblem` (one object); with a mask the
    visited share depends on the row tile, so each p1 has its own.
    """

    cv: CascadeView
    arch: SpatialArch
    roles: Roles
    attention: AttentionProblem | None  # None: no `where` condition, nothing masked
    skip_empty_tiles: bool
    pair: tuple[_Contraction, _Contraction]
    dense: Binding  # dense work (the masked cascade's own work when unmasked)
    _cache: dict[int, tuple[FlatProblem, Binding, MaskShare]] = field(default_factory=dict)

    @property
    def role_tensors(self) -> dict[str, TensorName]:
        """Role (Q, K, QK, A, V, AV) -> tensor."""
        qk, av = self.pair
        return {"Q": qk.input, "K": qk.weight, "QK": qk.output, "A": av.input, "V": av.weight,
                "AV": av.output}  # fmt: skip

    @property
    def query_group(self) -> int:
        """Query rows per query position (R for GQA, 1 otherwise)."""
        return math.prod(self.cv.sizes[r] for r in self.roles.query_groups)

    @property
    def query_rows(self) -> int:
        """Query rows of one instance: positions x query-group heads (R x P)."""
        return self.cv.sizes[self.roles.query] * self.query_group

    @property
    def masked(self) -> AttentionProblem | None:
        """The attention problem when its mask hides some pairs, else None."""
        ap = self.attention
        return None if ap is None or ap.mask.is_dense else ap

    @property
    def flat(self) -> FlatProblem:
        """The cost model's input at head granularity (any p1 when unmasked)."""
        return self.at(self.query_rows)

    def at(self, p1: int) -> FlatProblem:
        """The cost model's input for row tiles of `p1` query rows."""
        return self._entry(p1)[0]

    def binding(self, p1: int) -> Binding:
        """Each Einsum's array, work and cycles for row tiles of `p1` rows."""
        return self._entry(p1)[1]

    def mask(self, p1: int) -> MaskShare:
        """The mask's shares for row tiles of `p1` rows."""
        return self._entry(p1)[2]

    def _entry(self, p1: int) -> tuple[FlatProblem, Binding, MaskShare]:
        key = p1 if self.masked is not None else 0
        if key not in self._cache:
            share = _mask_share(self, p1)
            binding = _scaled_binding(self, share)
            self._cache[key] = (_flat_problem(self, binding, share), binding, share)
        return self._cache[key]


def problem(
    cascade: Cascade,
    cv: CascadeView,
    arch: SpatialArch,
    sizes: Mapping[str, int],
    skip_empty_tiles: bool,
) -> Problem:
    """Read `cascade` for FLAT (see the module docstring); MappingError names what fails.

    The roles come from `rank_roles` (cached per cascade); the whole attention problem is
    derived only when some Einsum has a `where` condition (it is what prices the mask, and
    deriving it costs about half of `count_ops` per design point).
    """
    try:
        roles = rank_roles(cascade)[0]
        has_where = any(e.where for e in cascade.einsums)
        ap = attention_problem(cascade, sizes) if has_where else None
    except StructureError as exc:
        raise MappingError(f"FLAT: cascade {cascade.name}: {exc}") from None
    if not any(a.is_2d for a in arch.arrays) or all(a.is_2d for a in arch.arrays):
        raise MappingError(
            f"needs a 2D and a 1D array; {arch.name} has {[a.name for a in arch.arrays]}"
        )
    merge = cv.passes.merge_ranks
    if merge:
        raise MappingError(
            f"FLAT: cascade {cascade.name} splits the keys into {','.join(merge)} splits and "
            "merges their partial softmax states (split-K): FLAT's dataflow (two key x query "
            "matmuls with 1D phases between) has no per-split state or merge phase; map the "
            "unsplit cascade (e.g. attention-decode-gqa) or use fusemax or unfused"
        )
    found = cv.problem
    if found is not None and found.latent_inputs:
        what = ", ".join(f"{p.output} ({p.site})" for p in found.projections)
        raise MappingError(
            f"FLAT: cascade {cascade.name} is latent attention (latent "
            f"{', '.join(found.latent_inputs) or '-'}; projections {what or '-'}): FLAT's "
            "dataflow is two key x query matmuls with 1D phases between, with no place for a "
            "projection or a latent that serves as keys and values; use fusemax or unfused"
        )
    dense = _bind(cv, arch, roles, ap is not None and not ap.mask.is_dense)
    pair = _contractions(cv, roles, dense)
    if ap is not None and ap.mask.kind == MaskKind.GENERIC and skip_empty_tiles:
        einsum = next(e for e in cascade.einsums if e.where)
        raise MappingError(
            f"flat: {einsum}: the mask condition {ap.mask.text!r} is outside the band family "
            "(bounds on the query, the key and their difference), so its empty tiles cannot "
            "be found; set skip_empty_tiles=false to compute every tile"
        )
    return Problem(cv, arch, roles, ap, skip_empty_tiles, pair, dense)


# ----------------------------------------------------------------------------- binding


def _key_parts(cv: CascadeView, roles: Roles) -> tuple[RankName, ...]:
    return cv.cascade.expand(roles.key)


@by_identity(maxsize=64)
def _iterates(cv: CascadeView, e: Einsum, ranks: tuple[RankName, ...]) -> bool:
    return any(r.lower() in e.iteration_vars for r in ranks)


def _bind(cv: CascadeView, arch: SpatialArch, roles: Roles, masked: bool) -> Binding:
    """Per-element key x query contractions on the 2D array, the rest on the 1D array.

    Work is the dense work (every pair) when the cascade is masked: a visited tile is
    computed whole; `_scaled_binding` takes the visited share of it.
    """
    two_d, one_d = arch.array_2d, arch.array_1d
    cascade = dense_cascade(cv.cascade) if masked else cv.cascade
    on = {a.name: cascade_work(cascade, cv.sizes, a) for a in (two_d, one_d)}
    key_parts = _key_parts(cv, roles)
    units: list[ComputeArray] = []
    works: list[EinsumWork] = []
    cycles: list[float] = []
    notes: list[str] = []
    for i, e in enumerate(cv.cascade.einsums):
        is_mac = on[two_d.name][i].count("mac") > 0
        if is_mac and not _iterates(cv, e, key_parts):
            raise MappingError(
                f"FLAT: {e}: a contraction that does not iterate the key rank {roles.key} "
                "(a projection) has no place in FLAT's softmax dataflow (two key x query "
                "matmuls with 1D phases between)"
            )
        on_2d = is_mac and _iterates(cv, e, key_parts[-1:])
        unit = two_d if on_2d else one_d
        work, lowered = lower_work(on[unit.name][i], unit)
        notes.extend(lowered)
        missing = unsupported(work, unit)
        if missing:
            raise MappingError(
                f"FLAT: {e}: {unit.name} of {arch.name} cannot perform {', '.join(missing)}"
            )
        units.append(unit)
        works.append(work)
        cycles.append(cycles_on(work, unit) if on_2d else element_stream_cycles(work, unit))
    return Binding(tuple(units), tuple(works), tuple(cycles), tuple(notes))


def _select_op(unit: ComputeArray) -> str:
    return "max" if unit.supports("max") else "add"


def _selects(pb: Problem, share: MaskShare) -> int:
    """Compare-selects of the mask: the selected share of the dense pairs."""
    ap = pb.masked
    if ap is None:
        return 0
    return round(ap.instances * pb.query_rows * ap.seq_k * share.selected)


def _scaled_binding(pb: Problem, share: MaskShare) -> Binding:
    """The dense binding's visited share, the selects on the score contraction."""
    if pb.masked is None:
        return pb.dense
    cv, dense = pb.cv, pb.dense
    key_parts = _key_parts(cv, pb.roles)
    score = pb.pair[0].index
    works, cycles = list(dense.work), list(dense.cycles)
    for i, e in enumerate(cv.cascade.einsums):
        if not _iterates(cv, e, key_parts):
            continue
        unit = dense.units[i]
        extra = {_select_op(unit): _selects(pb, share)} if i == score and share.selected else {}
        works[i] = scale_work(dense.work[i], share.visited, extra)
        is_2d = unit.is_2d
        cycles[i] = cycles_on(works[i], unit) if is_2d else element_stream_cycles(works[i], unit)
    return Binding(dense.units, tuple(works), tuple(cycles), dense.notes)


# ----------------------------------------------------------------------------- the matmuls


def _contractions(
    cv: CascadeView, roles: Roles, binding: Binding
) -> tuple[_Contraction, _Contraction]:
    c = cv.cascade
    ranks_of = cv.ranks
    query_side = {roles.query, *roles.query_groups}
    spread = {*roles.batch, *roles.query_groups}
    key_parts = _key_parts(cv, roles)
    found = []
    for i, e in enumerate(c.einsums):
        if not binding.is_contraction(i):
            continue
        names = list(dict.fromkeys(a.tensor for a in e.inputs))
        query = [t for t in names if query_side & {c.root(r) for r in ranks_of[t]}]
        other = [t for t in names if t not in query]
        if len(names) == 2 and len(query) == 2:
            carried = {t: sorted(query_side & {c.root(r) for r in ranks_of[t]}) for t in names}
            listed = "; ".join(f"{t} over {', '.join(rs)}" for t, rs in carried.items())
            raise MappingError(
                f"FLAT: {e}: both operands carry query ranks ({listed}); FLAT multiplies a "
                "query-side operand by a key-side one, so a key/value tensor shared across "
                "only some of the query heads (K and V grouped differently) is not modelled"
            )
        if len(names) != 2 or len(query) != 1:
            raise MappingError(
                f"FLAT: {e}: must multiply a query-indexed operand by another "
                f"(operands {', '.join(names)})"
            )
        iterated = tuple(RankName(v.upper()) for v in e.iteration_vars)
        ranks = tuple(r for r in iterated if c.root(r) not in spread)
        outer = tuple(r for r in ranks if r in key_parts[:-1])
        core = tuple(r for r in ranks if r not in outer)
        if len(core) != 3:
            raise MappingError(
                f"FLAT: {e}: iterates {', '.join(core)} besides the batch-like, query-group "
                "and key-tile ranks; FLAT's array nest takes three (query, key, one head dim)"
            )
        found.append(_Contraction(i, query[0], other[0], e.output, core, outer))
    if len(found) != 2:
        listed = "; ".join(str(c.einsums[f.index]) for f in found) or "none"
        raise MappingError(
            f"FLAT maps two key x query contractions (scores, weighted values); {c.name} "
            f"has {len(found)}: {listed}"
        )
    qk, av = found
    if key_parts[-1] not in ranks_of[qk.output] or key_parts[-1] in ranks_of[av.output]:
        raise MappingError(
            f"FLAT: {c.einsums[qk.index]} must produce scores over the key rank and "
            f"{c.einsums[av.index]} reduce it"
        )
    return qk, av


# ----------------------------------------------------------------------------- the mask


def _mask_share(pb: Problem, p1: int) -> MaskShare:
    """The mask at row tiles of `p1` rows x FLAT's key span (module docstring)."""
    ap = pb.masked
    if ap is None:
        return MaskShare()
    mask = ap.mask
    key_parts = _key_parts(pb.cv, pb.roles)
    span = pb.cv.sizes[key_parts[-1]] if len(key_parts) > 1 else pb.arch.array_2d.cols
    block_q = max(1, min(p1 // ap.query_group, ap.seq_q))
    block_k = max(1, min(span, ap.seq_k))
    notes = tuple(f"mask: {n}" for n in ap.notes if "keys x queries" in n)
    if mask.kind == MaskKind.GENERIC:  # refused with skipping in `problem`
        return MaskShare(
            1.0,
            1.0,
            (
                *notes,
                f"mask [{mask.text}] (generic) computed densely (skip_empty_tiles=false): "
                "every tile computed, every pair masked with a compare-select",
            ),
        )
    tiles = ap.tiles(block_q, block_k)
    visible = tiles.points / (ap.seq_q * ap.seq_k)
    layout = f"tiles of {block_q} queries x {block_k} keys"
    if pb.skip_empty_tiles:
        text = (
            f"mask {mask.describe()}: {tiles.visited} of {tiles.tiles} {layout} computed "
            f"({tiles.partial} partial, one compare-select per pair), {tiles.empty} empty "
            f"skipped; {visible:.2%} of (query, key) pairs visible"
        )
        return MaskShare(tiles.visited / tiles.tiles, tiles.partial / tiles.tiles, (*notes, text))
    text = (
        f"masked tiles computed (skip_empty_tiles=false): mask {mask.describe()} leaves "
        f"{visible:.2%} of (query, key) pairs visible, yet all {tiles.tiles} {layout} are "
        f"computed ({tiles.empty} empty, {tiles.partial} partial)"
    )
    return MaskShare(1.0, (tiles.partial + tiles.empty) / tiles.tiles, (*notes, text))


# ----------------------------------------------------------------------------- the problem


def _flat_problem(pb: Problem, binding: Binding, share: MaskShare) -> FlatProblem:
    """The cost model's explicit sizes and roles (the one place roles meet FLAT's nests)."""
    cv, roles = pb.cv, pb.roles
    c = cv.cascade
    tensor_ranks = cv.ranks
    qk, av = pb.pair
    groups = set(roles.query_groups)
    query, key = roles.query, roles.key
    phase_groups = [p for p in group_phases(binding) if not binding.is_contraction(p[0])]
    phases = tuple(
        StreamPhase(*phase_io(cv, p), sum(binding.cycles[i] for i in p)) for p in phase_groups
    )
    v = share.visited

    def is_key_query(t: TensorName) -> bool:
        roots = {c.root(r) for r in tensor_ranks[t]}
        return key in roots and bool(roots & {query, *groups})

    operands = (qk.input, qk.weight, qk.output, av.input, av.weight, av.output)
    moved = {*operands, *(n for ph in phases for n in (*ph.inputs, *ph.outputs))}
    key_query = frozenset(t for t in moved if is_key_query(t))
    memo: dict[tuple[int, frozenset[TensorName], frozenset[TensorName]], StreamBuffer] = {}

    def words(t: TensorName) -> float:
        return cv.words(t) * v if v != 1.0 and t in key_query else cv.words(t)

    def stream_buffer(
        k: int, from_dram: frozenset[TensorName], kept: frozenset[TensorName]
    ) -> StreamBuffer:
        if (k, from_dram, kept) not in memo:
            sb = stream_buffer_words(cv, phase_groups[k], from_dram, kept)
            if v != 1.0:  # key x query rows move for the visited tiles only
                fill = sum(words(t) for t in from_dram)
                sb = StreamBuffer(
                    fill, sb.row_reads * v, sb.row_writes * v, sb.vector_reads, sb.vector_writes
                )
            memo[(k, from_dram, kept)] = sb
        return memo[(k, from_dram, kept)]

    def own(t: TensorName) -> tuple[RankName, ...]:
        """`t`'s ranks in the nests: query groups packed away, a split key in its pieces."""
        return tuple(p for r in tensor_ranks[t] if r not in groups for p in c.expand(r))

    def reduced(con: _Contraction) -> str:
        return next(r for r in con.ranks if r not in tensor_ranks[con.output])

    batch = tuple(r for r in roles.batch if r in cv.sizes)
    rank_sizes: dict[str, int] = {r: cv.sizes[r] for t in operands for r in own(t)}
    rank_sizes[query] = pb.query_rows
    instances = math.prod(cv.sizes[r] for r in batch)
    score_row = cv.words(qk.output) // (instances * pb.query_rows)
    selects = _selects(pb, share)
    return FlatProblem(
        query_rank=query,
        key_rank=reduced(av),
        qk_head_rank=reduced(qk),
        v_head_rank=next(r for r in av.ranks if r != query and r in tensor_ranks[av.output]),
        batch_ranks=batch,
        rank_sizes=rank_sizes,
        tensor_ranks={t: own(t) for t in operands},
        tensor_words={t: words(t) for t in moved},
        scores=Contraction(qk.input, qk.weight, qk.output, qk.ranks, qk.outer),
        values=Contraction(av.input, av.weight, av.output, av.ranks, av.outer),
        phases=phases,
        inputs=frozenset(c.input_names),
        outputs=frozenset(c.outputs),
        score_row_words=score_row,
        stream_buffer=stream_buffer,
        visited=v,
        key_query=key_query if v != 1.0 else frozenset(),
        select_cycles=selects / pb.arch.array_2d.lanes if selects else 0.0,
    )
