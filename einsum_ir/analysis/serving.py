"""Serving structure of an attention cascade: score terms, a latent K/V, projections, splits.

Read from the Einsums (never from names), for `structure.attention_problem`:

- **score terms** — the contractions that produce per (key, query) scores (QK = Q.K; MLA
  has two, the latent part QC.CKV and the RoPE part QR.KR);
- **value contractions** — those reducing the innermost key piece against a key-side
  operand (AV = A.V; MLA absorbed: OC = A.CKV);
- **latent inputs** — key-side inputs that both a score term's key operand and a value
  contraction's value operand derive from (MLA's CKV: one tensor serving as K and V);
- **projections** — contractions with a weight input (no key and no query rank): per key
  (MLA naive's K = WUK.CKV, iterating the keys but not the queries), on the query side
  (MLA absorbed's QC = Q.WUK) or on the output (AV = OC.WUV);
- **splits** — split ranks whose per-split partial states are merged (split-K's M2).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from attnsim.einsum_ir.analysis.passes import count_passes
from attnsim.einsum_ir.ir import Cascade, Einsum, RankName, TensorName

if TYPE_CHECKING:
    from attnsim.einsum_ir.analysis.structure import Roles


class ProjectionSite(enum.StrEnum):
    """Where a projection runs relative to the loop over the keys."""

    KEY = "key"  # per key, no query rank: up-projects the cache (MLA naive's K, V)
    QUERY = "query"  # before the keys, on the query side (MLA absorbed's QC = Q.WUK)
    OUTPUT = "output"  # after the keys, on the attention output (AV = OC.WUV)


@dataclass(frozen=True, slots=True)
class ScoreTerm:
    """One contraction that adds to the scores.

    Attributes:
        output: The tensor it defines (SC, SR, QK).
        query_operand: Its operand without the key rank (Q, QC, QR).
        key_operand: Its operand with the key rank (K, CKV, KR).
        dims: The ranks it contracts (E; C; R).
    """

    output: TensorName
    query_operand: TensorName
    key_operand: TensorName
    dims: tuple[RankName, ...]


@dataclass(frozen=True, slots=True)
class Projection:
    """A contraction with a weight input (neither key- nor query-indexed).

    Attributes:
        output: The tensor it defines.
        weight: The weight input (WUK, WUV).
        site: Per key, on the query side or on the output (see `ProjectionSite`).
        dims: The ranks it contracts.
        macs: Multiply-accumulates at the problem's sizes (one full sweep).
    """

    output: TensorName
    weight: TensorName
    site: ProjectionSite
    dims: tuple[RankName, ...]
    macs: int


@dataclass(frozen=True, slots=True)
class ServingStructure:
    """What `attention_problem` adds for serving cascades (all empty for plain attention)."""

    score_terms: tuple[ScoreTerm, ...] = ()
    value_operands: tuple[TensorName, ...] = ()
    latent_inputs: tuple[TensorName, ...] = ()
    latent_dims: tuple[RankName, ...] = ()
    projections: tuple[Projection, ...] = ()
    split_ranks: tuple[RankName, ...] = ()
    splits: int = 1


def serving_structure(
    cascade: Cascade,
    key: RankName,
    query: RankName,
    batch: tuple[RankName, ...],
    sizes: Mapping[str, int],
) -> ServingStructure:
    """Score terms, value operands, latent inputs, projections and splits of a cascade."""
    inner = cascade.expand(key)[-1].lower()
    key_vars = {key.lower(), inner}
    ranks = cascade.tensor_ranks
    inputs = set(cascade.input_names)

    def roots(tensor: TensorName) -> set[RankName]:
        return {cascade.root(r) for r in ranks.get(tensor, ())}

    terms: list[ScoreTerm] = []
    values: list[TensorName] = []
    projections: list[Projection] = []
    for e in cascade.einsums:
        if not e.implicit_reduced_vars:
            continue
        keyed = [a.tensor for a in e.inputs if key in roots(a.tensor)]
        unkeyed = [a.tensor for a in e.inputs if key not in roots(a.tensor)]
        out_vars = set(e.out_vars)
        weights = [t for t in unkeyed if t in inputs and query not in roots(t)]
        iterated = _iter_roots(cascade, e)
        # keys x queries work is no projection, even with no keyed operand (a relative-
        # position table R[d] read at d = p - m)
        if weights and not ((keyed or key in iterated) and query in iterated):
            projections.append(_projection(cascade, e, weights[0], key, query, sizes))
        elif key_vars & out_vars and keyed and any(query in roots(t) for t in unkeyed):
            dims = tuple(
                dict.fromkeys(cascade.root(RankName(v.upper())) for v in e.implicit_reduced_vars)
            )
            query_side = next(t for t in unkeyed if query in roots(t))
            terms.append(ScoreTerm(e.output, query_side, keyed[-1], dims))
        elif key_vars & set(e.implicit_reduced_vars) and keyed and (unkeyed or len(set(keyed)) > 1):
            values.append(keyed[-1])  # (a sum of squares K.K over the keys is a norm, not values)
    # the value operand is the key-side tensor of the value contraction that is not a score
    # intermediate (SLN x V: V); the score-derived one carries the query rank
    value_ops = [t for t in values if query not in roots(t)]
    # a per-key projection feeds the attention's output (MLA naive's K, V up-projected);
    # per-key work only another output reads (DCAL's CLS row beside its attention) is none
    if terms:
        attended = _upstream(cascade, _attention_outputs(cascade, [t.output for t in terms]))
        projections = [
            p for p in projections if p.site != ProjectionSite.KEY or p.output in attended
        ]  # fmt: skip
        value_ops = [t for t in value_ops if t in attended]
    latent = _latent(cascade, [t.key_operand for t in terms], value_ops, key)
    drop = {key, *batch}
    latent_dims = tuple(
        dict.fromkeys(
            cascade.root(r) for t in latent for r in ranks[t] if cascade.root(r) not in drop
        )
    )
    split = count_passes(cascade, key).merge_ranks
    return ServingStructure(
        score_terms=tuple(terms),
        value_operands=tuple(dict.fromkeys(value_ops)),
        latent_inputs=latent,
        latent_dims=latent_dims,
        projections=tuple(projections),
        split_ranks=split,
        splits=math.prod(sizes[r] for r in split) if split else 1,
    )


def _attention_outputs(cascade: Cascade, scores: list[TensorName]) -> list[TensorName]:
    """The cascade's outputs computed from the score terms (every output but a side one)."""
    reached = set(scores)
    for e in cascade.einsums:  # in order: producers come first
        if any(a.tensor in reached for a in e.inputs):
            reached.add(e.output)
    consumed = {a.tensor for e in cascade.einsums for a in e.inputs}
    return [e.output for e in cascade.einsums if e.output in reached and e.output not in consumed]


def _upstream(cascade: Cascade, tensors: list[TensorName]) -> set[TensorName]:
    """`tensors` and every tensor they are computed from."""
    found: set[TensorName] = set()
    todo = list(tensors)
    while todo:
        t = todo.pop()
        if t in found:
            continue
        found.add(t)
        producer = cascade.producers.get(t)
        if producer is not None:
            todo.extend(a.tensor for a in producer.inputs)
    return found


def _iter_roots(cascade: Cascade, e: Einsum) -> set[RankName]:
    return {cascade.root(RankName(v.upper())) for v in e.iteration_vars}


def _projection(
    cascade: Cascade,
    e: Einsum,
    weight: TensorName,
    key: RankName,
    query: RankName,
    sizes: Mapping[str, int],
) -> Projection:
    iterated = _iter_roots(cascade, e)
    if key in iterated:
        site = ProjectionSite.KEY
    elif _feeds_scores(cascade, e.output, key):
        site = ProjectionSite.QUERY
    else:
        site = ProjectionSite.OUTPUT
    dims = tuple(dict.fromkeys(cascade.root(RankName(v.upper())) for v in e.implicit_reduced_vars))
    return Projection(e.output, weight, site, dims, math.prod(sizes[r] for r in iterated))


def _feeds_scores(cascade: Cascade, tensor: TensorName, key: RankName) -> bool:
    """Whether a key-free tensor is read by an Einsum iterating the key rank."""
    for e in cascade.einsums:
        if any(a.tensor == tensor for a in e.inputs) and key in _iter_roots(cascade, e):
            return True
    return False


def _latent(
    cascade: Cascade, score_keys: list[TensorName], value_ops: list[TensorName], key: RankName
) -> tuple[TensorName, ...]:
    """Key-side inputs both a score key operand and a value operand derive from."""

    def sources(tensor: TensorName, seen: frozenset[TensorName] = frozenset()) -> set[TensorName]:
        if tensor in cascade.input_names:
            return {tensor}
        producer = cascade.producers.get(tensor)
        if producer is None or tensor in seen:
            return set()
        found: set[TensorName] = set()
        for a in (
            producer.inputs
        ):  # per key only: a statistic over all keys (KDGQA's norms) is no latent
            if key in {cascade.root(r) for r in cascade.tensor_ranks.get(a.tensor, ())}:
                found |= sources(a.tensor, seen | {tensor})
        return found

    keyed = {t for t, rs in cascade.inputs if key in {cascade.root(r) for r in rs}}
    from_scores = set().union(*(sources(t) for t in score_keys)) if score_keys else set()
    from_values = set().union(*(sources(t) for t in value_ops)) if value_ops else set()
    both = from_scores & from_values & keyed
    return tuple(t for t in cascade.input_names if t in both)


def odd_inputs(cascade: Cascade, roles: Roles) -> str:
    """Inputs a softmax kernel has no operand for, and why ("" if none).

    An input over keys x queries is a bias or weight matrix (GPSA's positional attention);
    an input with neither key nor query rank is a per-head parameter (ALiBi's slopes)
    unless it carries a rank with no role: a second key rank's keys (K2[n]) or a table
    read through a `where` condition (a relative-position R[d] at d = p - m).
    """
    named = {*roles.batch, *roles.query_groups, *roles.score_dims, *roles.value_dims}
    grid, odd = [], []
    for name, ranks in cascade.inputs:
        roots = {cascade.root(r) for r in ranks}
        if {roles.key, roles.query} <= roots:
            grid.append(name)
        elif not {roles.key, roles.query} & roots and roots - named:
            odd.append(f"{name} over {','.join(sorted(roots - named))}")
    if grid:
        names = ", ".join(grid)
        return f"a keys x queries input ({names}: a bias or weight matrix; loads not modelled)"
    if not odd:
        return ""
    return (
        f"inputs over ranks with no attention role ({'; '.join(odd)}): a second key rank, "
        "a table read through a where condition (such as a relative offset p - m), or a "
        "selector's operands (the full memory or centroids a top-k or routing reads, work "
        "outside the attention kernels); the kernels model no such score or value term"
    )
