"""Linear conditions of point counting (`einsum_ir.analysis.points`) in normal form.

`_Cond` is `sum(coef * var) + const  op  0`; `_normalize` turns a `Condition` into one (unit
coefficients where a bound has one variable); `_le_forms` rewrites it as `<= 0` forms;
`_eliminate` projects a variable out exactly (Fourier-Motzkin with unit coefficients) and
`_substitute_equalities` drops a counted variable an equality fixes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from attnsim.einsum_ir.ir import CmpOp, Condition


@dataclass(frozen=True, slots=True)
class _Cond:
    """`sum(coef * var) + const  op  0`."""

    coeffs: tuple[tuple[str, int], ...]
    const: int
    op: CmpOp

    @property
    def vars(self) -> frozenset[str]:
        return frozenset(v for v, c in self.coeffs if c != 0)


def _normalize(cond: Condition) -> _Cond:
    coeffs: dict[str, int] = {}
    for v, c in cond.lhs.terms:
        coeffs[v] = coeffs.get(v, 0) + c
    for v, c in cond.rhs.terms:
        coeffs[v] = coeffs.get(v, 0) - c
    return _unit(_Cond(_clean(coeffs), cond.lhs.const - cond.rhs.const, cond.op))


def _unit(cond: _Cond) -> _Cond:
    """A bound on one index with its coefficient divided out: `4*m >= 2*M` -> `m >= M/2`.

    Exact for integers (the bound is rounded inward), and it keeps later elimination and
    closed forms exact when the index is split (m = m1*M0 + m0 gives m0 coefficient 1).
    """
    if len(cond.coeffs) != 1 or cond.op in (CmpOp.EQ, CmpOp.NE):
        return cond
    ((x, a),) = cond.coeffs
    if abs(a) == 1:
        return cond
    (le,) = _le_forms(cond)  # a'*x + d <= 0
    ((_, b),) = le.coeffs
    if b > 0:  # x <= floor(-d / b)
        return _Cond(((x, 1),), -((-le.const) // b), CmpOp.LE)
    return _Cond(((x, -1),), -((-le.const) // -b), CmpOp.LE)  # -x + ceil(d / -b) <= 0


def _clean(coeffs: Mapping[str, int]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted((v, c) for v, c in coeffs.items() if c != 0))


def _substitute(cond: _Cond, var: str, form: Mapping[str, int], const: int) -> _Cond:
    coeffs = dict(cond.coeffs)
    c = coeffs.pop(var, 0)
    if c == 0:
        return cond
    for v, k in form.items():
        coeffs[v] = coeffs.get(v, 0) + c * k
    return _Cond(_clean(coeffs), cond.const + c * const, cond.op)


def _substitute_equalities(
    ext: dict[str, int], visible: set[str], conds: list[_Cond]
) -> list[_Cond]:
    """Drop each counted variable that an equality with coefficient +-1 fixes.

    `x + f(others) == 0` maps the points with that x one to one onto the points of the
    others where `0 <= -f(others) < ext[x]` (and the other conditions, with x replaced by
    -f(others)): the count is unchanged, and the box loses a dimension (a relative-offset
    rank pinned by `d == p - m + M - 1` would otherwise be enumerated point by point).
    Only equalities among counted variables: one that involves a variable projected away
    (outside `visible`) is left to `_eliminate`, as replacing a counted variable by hidden
    ones would change the projection.
    """
    while True:
        found = next(
            (
                (c, x, a)
                for c in conds
                if c.op is CmpOp.EQ
                for x, a in c.coeffs
                if abs(a) == 1 and len(c.vars) > 1 and c.vars <= visible
            ),
            None,
        )
        if found is None:
            return conds
        eq, x, a = found
        # x = -(rest + const) / a, written as sub[v] (coefficients) and sub_const
        sub = {v: -c * a for v, c in eq.coeffs if v != x}
        sub_const = -eq.const * a
        out = [
            _Cond(_clean(dict(sub)), sub_const, CmpOp.GE),
            _Cond(_clean(dict(sub)), sub_const - ext[x], CmpOp.LT),
        ]
        for c in conds:
            if c is eq:
                continue
            k = dict(c.coeffs).get(x, 0)
            if not k:
                out.append(c)
                continue
            merged = {v: w for v, w in c.coeffs if v != x}
            for v, w in sub.items():
                merged[v] = merged.get(v, 0) + k * w
            out.append(_unit(_Cond(_clean(merged), c.const + k * sub_const, c.op)))
        conds = [_unit(c) for c in out]
        ext[x] = 1  # counted once: its value is fixed by the others
        visible.discard(x)


def _le_forms(cond: _Cond) -> list[_Cond]:
    """The comparison as constraints `form <= 0` (integers: `< 0` is `+ 1 <= 0`)."""
    neg = _clean({v: -c for v, c in cond.coeffs})
    return {
        CmpOp.LT: [_Cond(cond.coeffs, cond.const + 1, CmpOp.LE)],
        CmpOp.LE: [cond],
        CmpOp.GT: [_Cond(neg, 1 - cond.const, CmpOp.LE)],
        CmpOp.GE: [_Cond(neg, -cond.const, CmpOp.LE)],
        CmpOp.EQ: [_Cond(cond.coeffs, cond.const, CmpOp.LE), _Cond(neg, -cond.const, CmpOp.LE)],
        CmpOp.NE: [cond],
    }[cond.op]


def _eliminate(n_x: int, conds: list[_Cond], x: str) -> list[_Cond] | None:
    """Exact Fourier-Motzkin elimination of x when every condition on it has coefficient +-1.

    With unit coefficients the integer bounds on x need no rounding, so an x in [0, n_x)
    exists exactly when every lower bound is at most every upper bound. Returns the
    conditions without x, or None when x cannot be eliminated exactly.
    """
    keep: list[_Cond] = []
    lower: list[dict[str, int]] = [{"": 0}]  # x >= form (the "" key holds the constant)
    upper: list[dict[str, int]] = [{"": n_x - 1}]  # x <= form
    for cond in conds:
        a = dict(cond.coeffs).get(x, 0)
        if a == 0:
            keep.append(cond)
            continue
        if cond.op is CmpOp.NE or abs(a) != 1:
            return None
        for le in _le_forms(cond):
            # a*x + rest + const <= 0 with a = +-1.
            rest = {v: c for v, c in le.coeffs if v != x}
            b = dict(le.coeffs)[x]
            bound = {v: -b * c for v, c in rest.items()}
            bound[""] = -b * le.const
            (upper if b > 0 else lower).append(bound)
    for lo in lower:
        for hi in upper:
            diff = {v: lo.get(v, 0) - hi.get(v, 0) for v in set(lo) | set(hi) if v}
            keep.append(_Cond(_clean(diff), lo.get("", 0) - hi.get("", 0), CmpOp.LE))
    return keep
