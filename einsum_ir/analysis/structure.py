"""What attention problem a cascade states, read from its Einsums (never from names).

`attention_problem(cascade, sizes)` derives the description every mapper reads:

- **rank roles** — the key rank (reduced by the weights·V contraction, after a nonlinearity:
  it indexes an intermediate tensor and is absent from the output), the query rank (an
  output rank the key-side inputs lack), query-group ranks (other output ranks only the
  query side has, e.g. the query heads R of a GQA group), batch-like ranks (output ranks
  both sides carry: B, H or the KV heads G), the contracted score dims (E) and the value
  dims (F);
- **sharing** — each input tensor and the batch-like or query-group ranks it lacks: a
  tensor absent from a rank is shared across it and is read once per sharing group;
- **head structure** — query heads per KV group and the KV-head count;
- **score function** — softmax (with its pass count), sigmoid, linear (no nonlinearity on
  the scores), plus score modifiers (bias, softcap, scale);
- **mask** — the `where` conditions of the Einsums that iterate keys x queries, as a union
  of bands (`einsum_ir.analysis.tiles.Band`) at the given sizes when the conditions are
  of the linear family, or "generic" otherwise.

Role rules, in order: the key rank is the reduced root rank that indexes an intermediate a
nonlinearity produces (exp, sigmoid, max: SN[m,p] in every softmax/sigmoid form); when none
does (linear attention is symmetric in keys and score dims), or more than one does, the
rank compared with an output rank in a `where` condition; then the rank named M. The query
rank is the output rank compared with the key in a condition, else the only output rank the
key side lacks, else P, else the innermost such rank. What a fallback decided is listed in
`AttentionProblem.notes`.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass

from attnsim.einsum_ir.analysis.masks import Mask, MaskKind, name_mask, where_bands, where_text
from attnsim.einsum_ir.analysis.passes import count_passes
from attnsim.einsum_ir.analysis.rank_reading import (
    compared_pairs,
    input_sides,
    nonlinear,
    ordered_roots,
    root_ranks,
    score_roots,
)
from attnsim.einsum_ir.analysis.recurrent import state_summary
from attnsim.einsum_ir.analysis.row_terms import key_sum, row_term, row_terms, value_contractions
from attnsim.einsum_ir.analysis.serving import Projection, ScoreTerm, serving_structure
from attnsim.einsum_ir.analysis.tiles import Band, TileCounts, classify_tiles, mask_points

__all__ = [
    "AttentionProblem",
    "BackwardCascadeError",
    "Mask",
    "MaskKind",
    "Modifier",
    "Roles",
    "ScoreFunction",
    "ScoreKind",
    "StructureError",
    "attention_problem",
    "rank_roles",
    "row_terms",
    "value_contractions",
]
from attnsim.einsum_ir.ir import (
    Binary,
    BinaryOp,
    Cascade,
    Einsum,
    Expr,
    IndexValue,
    Literal,
    RankName,
    Read,
    SizeValue,
    TensorName,
    Unary,
    UnaryOp,
    walk,
)
from attnsim.einsum_ir.sizes import resolve_sizes


class StructureError(ValueError):
    """A cascade whose attention structure cannot be read (names the reason)."""


class BackwardCascadeError(StructureError):
    """A backward (gradient) cascade: an output is indexed by the key rank (DK, DV)."""


class ScoreKind(enum.StrEnum):
    """What turns scores into weights."""

    SOFTMAX = "softmax"  # exp, normalized by a sum over the keys
    SIGMOID = "sigmoid"  # element-wise sigmoid, no normalization
    LINEAR = "linear"  # no nonlinearity between the scores and the value contraction
    OTHER = "other"  # some other element-wise function (exp without normalization, ...)


class Modifier(enum.StrEnum):
    """Changes applied to the scores before the weight function."""

    SCALE = "scale"  # multiplied by a constant or size
    BIAS = "bias"  # an additive term: another tensor (a bias matrix) or a position form
    POSITION_BIAS = "position-bias"  # an additive term computed from index values (ALiBi)
    SOFTCAP = "softcap"  # tanh capping
    # after the key reduction: a per-row term from a parameter input joins the normalizer or
    # the output (a sink logit: RD[M1] + exp(SB - RM[M1])), work on rows, not on scores
    ROW_TERM = "row-term"
    # more than one weights.V contraction per key (ACT's sink and rest accumulators)
    SPLIT_VALUES = "split-values"


@dataclass(frozen=True, slots=True)
class Roles:
    """Which rank plays which part (root ranks, i.e. unpartitioned).

    Attributes:
        key: The key/value position rank (M).
        query: The query position rank (P).
        query_groups: Other ranks only the query side carries (R: query heads of a group).
        batch: Ranks every side carries (B, H or G).
        score_dims: Ranks contracted in the score Einsum (E).
        value_dims: Output ranks that only the key side carries (F).
    """

    key: RankName
    query: RankName
    query_groups: tuple[RankName, ...]
    batch: tuple[RankName, ...]
    score_dims: tuple[RankName, ...]
    value_dims: tuple[RankName, ...]


@dataclass(frozen=True, slots=True)
class ScoreFunction:
    """How scores become weights.

    Attributes:
        kind: Softmax, sigmoid, linear or other.
        passes: Passes over the key rank the cascade needs (FuseMax's notion).
        modifiers: Score modifiers found before the weight function.
    """

    kind: ScoreKind
    passes: int
    modifiers: tuple[Modifier, ...] = ()

    def describe(self) -> str:
        """E.g. `softmax, 1 pass, +softcap`."""
        text = f"{self.kind}, {self.passes} pass{'es' if self.passes != 1 else ''}"
        return text + "".join(f", +{m}" for m in self.modifiers)


@dataclass(frozen=True, slots=True)
class AttentionProblem:
    """One attention problem as every mapper reads it (sizes resolved).

    Attributes:
        cascade: The cascade's name.
        roles: Which rank is which.
        sizes: Size of every rank and size symbol.
        seq_q, seq_k: Query and key positions (sizes of the query and key ranks).
        instances: Independent (batch-like) instances: product of the batch ranks.
        query_group: Query rows per key/value row group beyond seq_q (product of the
            query-group ranks; R = H / G for GQA, 1 for MHA).
        shared: Per input tensor, the batch or query-group ranks it lacks (shared across).
        mask: The mask.
        score: The score function.
        notes: Decisions a fallback made (shown in Results' provenance).
        score_terms: The contractions adding to the scores (QK = Q.K; MLA: the latent
            part QC.CKV and the RoPE part QR.KR), with their operands and dims.
        value_operands: Key-side operands of the value contraction (V; MLA absorbed: CKV).
        latent_inputs: Key-side inputs that both the scores and the values derive from
            (MLA's latent CKV): one tensor serving as K and as V, read once per sweep.
        latent_dims: Their ranks besides the key and batch ranks (MLA: C).
        projections: Contractions with a weight input, outside the key x query work: per
            key (MLA naive's K = WUK.CKV), on the query side (QC = Q.WUK) or on the output
            (AV = OC.WUV), each with its MACs at these sizes.
        split_ranks: Split ranks whose per-split partial softmax states are merged after
            the pass (split-K's M2); empty without splits.
        splits: Product of the split ranks' sizes (1 without splits).
    """

    cascade: str
    roles: Roles
    sizes: Mapping[str, int]
    seq_q: int
    seq_k: int
    instances: int
    query_group: int
    shared: tuple[tuple[TensorName, tuple[RankName, ...]], ...]
    mask: Mask
    score: ScoreFunction
    notes: tuple[str, ...] = ()
    score_terms: tuple[ScoreTerm, ...] = ()
    value_operands: tuple[TensorName, ...] = ()
    latent_inputs: tuple[TensorName, ...] = ()
    latent_dims: tuple[RankName, ...] = ()
    projections: tuple[Projection, ...] = ()
    split_ranks: tuple[RankName, ...] = ()
    splits: int = 1

    @property
    def query_heads(self) -> int:
        """Query heads per KV head (R; 1 without grouping)."""
        return self.query_group

    def sharing_of(self, tensor: str) -> tuple[RankName, ...]:
        """The ranks `tensor` is shared across (empty when it has every batch-like rank)."""
        return dict(self.shared).get(TensorName(tensor), ())

    def points(self) -> int:
        """Visible (query, key) pairs per instance and query group (exact)."""
        if self.mask.kind == MaskKind.GENERIC:
            raise StructureError(f"{self.cascade}: mask {self.mask.text!r} has no band form")
        return mask_points(self.mask.bands, self.seq_q, self.seq_k)

    def tiles(self, block_q: int, block_k: int) -> TileCounts:
        """Full / partial / empty tiles of one instance's (P, M) plane (see tiles.py)."""
        if self.mask.kind == MaskKind.GENERIC:
            raise StructureError(
                f"{self.cascade}: the mask {self.mask.text!r} is outside the linear family "
                "(bounds on p, m and m - p); its tiles cannot be classified"
            )
        return classify_tiles(self.mask.bands, self.seq_q, self.seq_k, block_q, block_k)

    def describe(self) -> str:
        """A few lines for `attnsim cascade show` and Result notes."""
        r = self.roles
        lines = [
            f"roles: key {r.key}, query {r.query}"
            + (f", query groups {','.join(r.query_groups)}" if r.query_groups else "")
            + (f", batch {','.join(r.batch)}" if r.batch else "")
            + f", score dims {','.join(r.score_dims) or '-'}, value dims "
            + f"{','.join(r.value_dims) or '-'}",
            f"mask: {self.mask.describe()}",
            f"score: {self.score.describe()}",
        ]
        shared = [f"{t} across {','.join(rs)}" for t, rs in self.shared if rs]
        if shared:
            lines.append("shared: " + "; ".join(shared))
        if self.latent_inputs:
            lines.append(
                f"latent: {', '.join(self.latent_inputs)} over {','.join(self.latent_dims)}, "
                "read once as both keys and values"
            )
        if len(self.score_terms) > 1:
            terms = [
                f"{t.query_operand}.{t.key_operand} over {','.join(t.dims)}"
                for t in self.score_terms
            ]
            lines.append("score terms: " + " + ".join(terms))
        for p in self.projections:
            lines.append(
                f"projection ({p.site}): {p.output} by weight {p.weight} over {','.join(p.dims)}, "
                f"{p.macs:,} MACs"
            )
        if self.split_ranks:
            lines.append(
                f"splits: {','.join(self.split_ranks)} = {self.splits}, partial states merged "
                "after the pass"
            )
        return "\n".join(lines)


def attention_problem(cascade: Cascade, sizes: Mapping[str, int]) -> AttentionProblem:
    """Derive the attention problem a cascade states, at concrete sizes.

    Args:
        cascade: Any attention cascade (built-in or user-written).
        sizes: Sizes of its ranks and size symbols (the cascade's params fill the rest).

    Raises:
        StructureError: When no key rank can be found (names what was looked for).
        SizeError: When the sizes do not bind the cascade.
    """
    return _problem(cascade, tuple(sorted(sizes.items())))


@functools.lru_cache(maxsize=512)
def _problem(cascade: Cascade, size_items: tuple[tuple[str, int], ...]) -> AttentionProblem:
    resolved: dict[str, int] = {
        str(k): v for k, v in resolve_sizes(cascade, dict(size_items)).items()
    }
    roles, notes = rank_roles(cascade)
    spread = (*roles.batch, *roles.query_groups)
    shared = []
    for name, ranks in cascade.inputs:
        roots = root_ranks(cascade, ranks)
        shared.append((name, tuple(r for r in spread if r not in roots)))
    mask, mask_notes = _mask(cascade, roles, resolved)
    score = _score(cascade, roles)
    serving = serving_structure(cascade, roles.key, roles.query, roles.batch, resolved)
    return AttentionProblem(
        cascade=cascade.name,
        roles=roles,
        sizes=resolved,
        seq_q=resolved[roles.query],
        seq_k=resolved[roles.key],
        instances=math.prod(resolved[r] for r in roles.batch),
        query_group=math.prod(resolved[r] for r in roles.query_groups),
        shared=tuple(shared),
        mask=mask,
        score=score,
        notes=tuple(notes) + tuple(mask_notes),
        score_terms=serving.score_terms,
        value_operands=serving.value_operands,
        latent_inputs=serving.latent_inputs,
        latent_dims=serving.latent_dims,
        projections=serving.projections,
        split_ranks=serving.split_ranks,
        splits=serving.splits,
    )


# ----------------------------------------------------------------------------- roles


@functools.lru_cache(maxsize=512)
def rank_roles(cascade: Cascade) -> tuple[Roles, tuple[str, ...]]:
    """The rank roles of an attention cascade and the notes of any fallback used."""
    if not cascade.outputs:
        raise StructureError(f"{cascade.name}: no output tensor")
    ranks = cascade.tensor_ranks
    out_roots = root_ranks(cascade, ranks[cascade.outputs[0]])
    input_names = set(cascade.input_names)
    input_roots = set().union(*(root_ranks(cascade, r) for _, r in cascade.inputs))
    reduced = [r for r in ordered_roots(cascade) if r in input_roots and r not in out_roots]
    inter_roots: set[RankName] = set()  # ranks of intermediates a nonlinearity produces
    for e in cascade.einsums:
        if e.output not in input_names and nonlinear(e.expr):
            inter_roots |= root_ranks(cascade, e.out.ranks)
    notes: list[str] = []
    compared = compared_pairs(cascade)
    by_inter = [r for r in reduced if r in inter_roots]
    key: RankName | None = None
    if len(by_inter) == 1:
        key = by_inter[0]
    else:
        pool = by_inter or reduced
        by_cond = [r for r in pool if any(r in pair for pair in compared)]
        if len(by_cond) == 1:
            key = by_cond[0]
            notes.append(f"key rank {key}: the one compared in a where condition")
        elif RankName("M") in pool:
            key = RankName("M")
            notes.append("key rank M: taken by its letter (the structure leaves it open)")
    if key is None:
        raise StructureError(
            f"{cascade.name}: no key rank: expected a rank that inputs carry, the output lacks "
            "and an intermediate (the scores) is indexed by"
            + (f" (candidates: {', '.join(reduced)})" if reduced else "")
        )
    keyed = [str(o) for o in cascade.outputs if key in root_ranks(cascade, ranks[o])]
    if keyed:
        raise BackwardCascadeError(
            f"{cascade.name}: output {', '.join(keyed)} is indexed by the key rank {key}, "
            "which forward attention reduces: a backward (gradient) cascade, whose attention "
            "problem is not read (see einsum_ir.analysis.training)"
        )
    query_side, key_side = input_sides(cascade, key)
    q_roots = (
        set().union(*(root_ranks(cascade, ranks[t]) for t in query_side)) if query_side else set()
    )
    k_roots = set().union(*(root_ranks(cascade, ranks[t]) for t in key_side)) if key_side else set()
    out_order = [r for r in ordered_roots(cascade) if r in out_roots]
    # a rank some key-side input lacks is a query rank (K and V lack P), even when another
    # key-side input carries it (a bias tensor over keys x queries)
    side_roots = [root_ranks(cascade, ranks[t]) for t in key_side]
    query_like = [r for r in out_order if r in q_roots and any(r not in k for k in side_roots)]
    batch = tuple(r for r in out_order if r in q_roots and all(r in k for k in side_roots))
    value_dims = tuple(r for r in out_order if r in k_roots and r not in q_roots)
    # Queries vary along the scores: an output rank a query-side weight brings in after the
    # keys (MLA's AV = OC.WUV over F) is a value dim, not a query group.
    scored = score_roots(cascade, key, k_roots)
    if scored and any(r not in scored for r in query_like):
        value_dims += tuple(r for r in query_like if r not in scored)
        query_like = [r for r in query_like if r in scored]
    score_dims = tuple(r for r in reduced if r != key and r in q_roots and r in k_roots)
    if not query_like:  # linear attention reads the keys only through its state
        why = state_summary(cascade, key) or (
            f"no query rank: expected an output rank that the inputs indexed by the key rank "
            f"{key} lack"
        )
        raise StructureError(f"{cascade.name}: {why}")
    paired = any(
        key in (roots := root_ranks(cascade, e.out.ranks)) and roots & set(query_like)
        for e in cascade.einsums
    )
    state = None if paired else state_summary(cascade, key)
    if state is not None:  # no score per (query, key) pair: the queries read only a state
        raise StructureError(f"{cascade.name}: {state}")
    with_key = [r for r in query_like if any({key, r} == set(pair) for pair in compared)]
    if len(with_key) == 1:
        query = with_key[0]
    elif len(query_like) == 1:
        query = query_like[0]
    elif RankName("P") in query_like:
        query = RankName("P")
        notes.append("query rank P: taken by its letter among " + ", ".join(query_like))
    else:
        query = query_like[-1]
        notes.append(f"query rank {query}: the innermost of " + ", ".join(query_like))
    groups = tuple(r for r in query_like if r != query)
    return (
        Roles(key, query, groups, batch, score_dims, value_dims),
        tuple(notes),
    )


# ----------------------------------------------------------------------------- the mask


def _mask(cascade: Cascade, roles: Roles, sizes: Mapping[str, int]) -> tuple[Mask, tuple[str, ...]]:
    key_var = roles.key.lower()
    query_var = roles.query.lower()
    grid = [
        e
        for e in cascade.einsums
        if _iterates(cascade, e, roles.key) and _iterates(cascade, e, roles.query)
    ]
    if not grid:
        return Mask(MaskKind.NONE, (Band(),), ""), ()
    wheres = [e.where for e in grid]
    distinct = list(dict.fromkeys(wheres))
    notes: list[str] = []
    uniform = len(distinct) == 1
    where = distinct[0]
    if not uniform:
        if () in distinct:
            where = ()
            notes.append(
                "some keys x queries Einsums are unmasked: every tile is computed "
                "(the mask only zeroes weights)"
            )
        else:
            where = grid[0].where
            notes.append(
                f"keys x queries Einsums carry different conditions; tiles follow the "
                f"score Einsum's: {where_text(where)}"
            )
    text = where_text(where)
    if not where:
        return Mask(MaskKind.NONE, (Band(),), "", uniform=uniform), tuple(notes)
    inner = cascade.expand(roles.key)
    key_tile = None
    if len(inner) > 1 and inner[-1] in sizes:  # chunked forms read m0, the key tile's part
        key_tile = (inner[-1].lower(), sizes[inner[-1]], sizes[roles.key])
    bands = where_bands(where, key_var, query_var, sizes, key_tile)
    if bands is None:
        return Mask(MaskKind.GENERIC, (), text, uniform=uniform), tuple(notes)
    mask = name_mask(bands, text, sizes[roles.query], sizes[roles.key], uniform)
    aligned = key_tile is not None and any(key_tile[0] in c.vars for c in where)
    return dataclasses.replace(mask, key_tile_aligned=aligned), tuple(notes)


def _iterates(cascade: Cascade, e: Einsum, rank: RankName) -> bool:
    """Whether `e` works per element of `rank` (its whole index or innermost part).

    A recurrence over the outer part M1 works per tile, not per element.
    """
    names = set(e.iteration_vars)
    return bool({rank.lower(), cascade.expand(rank)[-1].lower()} & names)


# ----------------------------------------------------------------------------- score function


@functools.lru_cache(maxsize=512)
def _score(cascade: Cascade, roles: Roles) -> ScoreFunction:
    passes = count_passes(cascade, roles.key).passes
    key_var_roots = {roles.key}
    unaries: set[UnaryOp] = set()
    modifiers: list[Modifier] = []
    normalized = False
    for e in cascade.einsums:
        iter_roots = {cascade.root(RankName(v.upper())) for v in e.iteration_vars}
        keyed = bool(iter_roots & key_var_roots)
        # a function of the keys alone (linear attention's feature map phi(K)) is no score
        # nonlinearity: only what works per (query, key) pair shapes the weights
        scored = keyed and bool(iter_roots & {roles.query, *roles.query_groups})
        for node in walk(e.expr):
            if isinstance(node, Unary) and scored:
                unaries.add(node.op)
        modifiers.extend(_modifiers(e.expr, keyed))
        if keyed and any(_is_score_input(cascade, a.tensor, roles) for a in e.inputs):
            modifiers.append(Modifier.BIAS)
        if _divides_by_key_sum(e, cascade, roles):
            normalized = True
        if not keyed and row_term(e, cascade, roles):
            modifiers.append(Modifier.ROW_TERM)
    if state_summary(cascade, roles.key) is not None:
        kind = ScoreKind.LINEAR  # the queries read a state, whatever the chunks compute
    elif UnaryOp.EXP in unaries and normalized:
        kind = ScoreKind.SOFTMAX
    elif UnaryOp.SIGMOID in unaries:
        kind = ScoreKind.SIGMOID
    elif not unaries - {UnaryOp.NEG}:
        kind = ScoreKind.LINEAR
    else:
        kind = ScoreKind.OTHER
    # (linear attention's chunked forms contract V twice, inside and across chunks: no split)
    if kind != ScoreKind.LINEAR and len(value_contractions(cascade, roles)) > 1:
        modifiers.append(Modifier.SPLIT_VALUES)
    return ScoreFunction(kind, passes, tuple(dict.fromkeys(modifiers)))


def _is_score_input(cascade: Cascade, tensor: TensorName, roles: Roles) -> bool:
    """Whether `tensor` is an input over keys x queries (a bias or mask matrix)."""
    if tensor not in cascade.input_names:
        return False
    roots = root_ranks(cascade, cascade.tensor_ranks[tensor])
    return roles.key in roots and roles.query in roots


def _divides_by_key_sum(e: Einsum, cascade: Cascade, roles: Roles) -> bool:
    """Whether `e` divides by a reduction over the keys anywhere in its expression.

    That is a tensor without the key rank made by an Einsum iterating it (SD[p]), or the
    final iterate of a recurrence over it (RD[M1]), anywhere in the divisor or in a
    per-row tensor made from one (RD[M1] + exp(SB - RM[M1]): a sink logit's denominator).
    """
    for node in walk(e.expr):
        if isinstance(node, Binary) and node.op == BinaryOp.DIV:
            reads = [r for r in walk(node.right) if isinstance(r, Read)]
            if any(key_sum(r, cascade, roles, 2) for r in reads):
                return True
    return False


def _modifiers(expr: Expr, keyed: bool) -> list[Modifier]:
    """Score modifiers in an Einsum that works per key (softcap, position bias, scale)."""
    if not keyed:
        return []
    found: list[Modifier] = []
    constant = (Literal, SizeValue)
    for node in walk(expr):
        if isinstance(node, Unary) and node.op == UnaryOp.TANH:
            found.append(Modifier.SOFTCAP)
        elif isinstance(node, IndexValue):
            found.append(Modifier.POSITION_BIAS)
        elif (
            isinstance(node, Binary)
            and node.op in (BinaryOp.MUL, BinaryOp.DIV)
            and (isinstance(node.left, constant) or isinstance(node.right, constant))
        ):
            found.append(Modifier.SCALE)
    return found
