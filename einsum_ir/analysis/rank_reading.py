"""Reading rank roles off a cascade's inputs, outputs and conditions (`structure.rank_roles`).

Which inputs carry the key rank, which ranks conditions compare, which key-indexed
intermediates a nonlinearity produces (the scores, not a feature map of the keys alone).
"""

from __future__ import annotations

from collections.abc import Sequence

from attnsim.einsum_ir.ir import (
    AnyOf,
    Binary,
    BinaryOp,
    Cascade,
    Condition,
    Expr,
    RankName,
    Reduce,
    TensorName,
    Unary,
    UnaryOp,
    walk,
)


def score_roots(
    cascade: Cascade, key: RankName, key_side: set[RankName] | None = None
) -> set[RankName]:
    """Root ranks of the key-indexed intermediates a nonlinearity produces (the scores).

    Not a feature map of the keys alone (linear attention's phi(K), indexed only by ranks
    the key-side inputs carry): it does not vary with the queries, so it is no score.
    """
    found: set[RankName] = set()
    for e in cascade.einsums:
        roots = root_ranks(cascade, e.out.ranks)
        if key_side is not None and roots <= key_side:
            continue
        if key in roots and e.output not in cascade.input_names and nonlinear(e.expr):
            found |= roots
    return found


def nonlinear(expr: Expr) -> bool:
    """Whether an expression applies a function other than +, -, *, / (exp, max, ...)."""
    for node in walk(expr):
        if isinstance(node, Unary) and node.op != UnaryOp.NEG:
            return True
        if isinstance(node, Binary) and node.op in (BinaryOp.MAX, BinaryOp.MIN):
            return True
        if isinstance(node, Reduce):
            return True
    return False


def root_ranks(cascade: Cascade, ranks: Sequence[RankName]) -> set[RankName]:
    """The unpartitioned ranks of `ranks` (M for M1 and M0)."""
    return {cascade.root(r) for r in ranks}


def ordered_roots(cascade: Cascade) -> list[RankName]:
    """Root ranks in first-declaration order."""
    return list(dict.fromkeys(cascade.root(r) for r in cascade.all_ranks))


def input_sides(cascade: Cascade, key: RankName) -> tuple[list[TensorName], list[TensorName]]:
    """Input tensors without / with the key rank."""
    q: list[TensorName] = []
    k: list[TensorName] = []
    for name, ranks in cascade.inputs:
        (k if key in root_ranks(cascade, ranks) else q).append(name)
    return q, k


def compared_pairs(cascade: Cascade) -> list[tuple[RankName, ...]]:
    """Root-rank pairs that `where` conditions relate (both sides of one comparison)."""
    pairs: list[tuple[RankName, ...]] = []
    for e in cascade.einsums:
        for cond in flat_conditions(e.where):
            vs = tuple(dict.fromkeys(cascade.root(RankName(v.upper())) for v in cond.vars))
            if len(vs) == 2:
                pairs.append(vs)
    return pairs


def flat_conditions(where: Sequence[Condition | AnyOf]) -> list[Condition]:
    """Every comparison of a `where`, disjunctions' options included."""
    out: list[Condition] = []
    for c in where:
        if isinstance(c, Condition):
            out.append(c)
        else:  # a disjunction: options of conjunctions
            for option in c.options:
                out.extend(option)
    return out
