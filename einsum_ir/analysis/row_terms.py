"""Terms after the key sum: per-row parameter terms and split value accumulators.

Read by `analysis.structure` into the score function's modifiers (`Modifier.ROW_TERM`: a
sink logit joining each row's denominator; `Modifier.SPLIT_VALUES`: ACT's sink and rest
accumulators) and by the GPU mappers, which count the row terms' operations in a warning and
refuse split accumulators (`mappers.gpu.problem`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from attnsim.einsum_ir.ir import Cascade, Einsum, RankName, Read, walk

if TYPE_CHECKING:  # structure imports this module
    from attnsim.einsum_ir.analysis.structure import Roles

__all__ = ["key_sum", "row_term", "row_terms", "value_contractions"]


def _roots(cascade: Cascade, ranks: Sequence[RankName]) -> set[RankName]:
    return {cascade.root(r) for r in ranks}


def value_contractions(cascade: Cascade, roles: Roles) -> tuple[int, ...]:
    """Indices of the weights.V Einsums: a key-side input contracted over the key rank.

    One in every softmax form; two in ACT's (its sink and rest accumulators).
    """
    key_side = {
        t
        for t in cascade.input_names
        if roles.key in _roots(cascade, cascade.tensor_ranks[t])
        and set(roles.value_dims) & _roots(cascade, cascade.tensor_ranks[t])
    }
    found = []
    for i, e in enumerate(cascade.einsums):
        out_roots = _roots(cascade, cascade.tensor_ranks.get(e.output, ()))
        reduced = set(e.iteration_vars) - {v.name for v in e.out.vars}  # key parts summed (m0)
        keyed = {cascade.root(RankName(v.upper())) for v in reduced} == {roles.key}
        reads = {a.tensor for a in e.inputs}
        if reads & key_side and keyed and set(roles.value_dims) & out_roots:
            found.append(i)
    return tuple(found)


def row_terms(cascade: Cascade, roles: Roles) -> tuple[int, ...]:
    """Indices of the Einsums that add a parameter's term to the rows after the key sum."""
    return tuple(
        i
        for i, e in enumerate(cascade.einsums)
        if not _iterates_key(cascade, e, roles) and row_term(e, cascade, roles)
    )


def _iterates_key(cascade: Cascade, e: Einsum, roles: Roles) -> bool:
    return any(cascade.root(RankName(v.upper())) == roles.key for v in e.iteration_vars)


def row_term(e: Einsum, cascade: Cascade, roles: Roles) -> bool:
    """Whether `e` (not iterating keys) reads a per-head parameter and a key sum.

    A key sum or a final iterate; a projection's weight (over latent or value dims) is no
    per-head parameter, so MLA's output projection is no row term.
    """
    reads = [r for r in walk(e.expr) if isinstance(r, Read)]
    inputs = [
        r
        for r in reads
        if r.access.tensor in cascade.input_names
        and _roots(cascade, cascade.tensor_ranks[r.access.tensor]) <= set(roles.batch)
    ]
    return bool(inputs) and any(key_sum(r, cascade, roles, 2) for r in reads)


def key_sum(read: Read, cascade: Cascade, roles: Roles, depth: int) -> bool:
    """Whether `read` is a key sum or a final iterate, or (`depth` producers up) made of one."""
    if read.access.reads_final:
        return True
    prod = cascade.producers.get(read.access.tensor)
    ranks = cascade.tensor_ranks.get(read.access.tensor, ())
    if prod is None or roles.key in _roots(cascade, ranks):
        return False
    if any(cascade.root(RankName(v.upper())) == roles.key for v in prod.iteration_vars):
        return True
    return depth > 0 and any(
        key_sum(r, cascade, roles, depth - 1) for r in walk(prod.expr) if isinstance(r, Read)
    )
