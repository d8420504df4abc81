"""Integer and array helpers of point counting (`einsum_ir.analysis.points`).

Inclusion-exclusion with pruning, a closed-form sum of a clipped line, and the per-row count
of one index meeting linear conditions (vectorized over the other indices' values).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from attnsim.einsum_ir.ir import CmpOp

if TYPE_CHECKING:
    from attnsim.einsum_ir.analysis.point_conds import _Cond

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def inclusion_exclusion(
    n: int, count: Callable[[tuple[int, ...]], int], max_terms: int
) -> int | None:
    """Size of the union of n sets from `count(group)`, the size of a group's intersection.

    Subsets are visited depth first; a group whose intersection is empty has no non-empty
    superset, so its extensions are skipped (disjoint blocks cost n + n(n-1)/2 counts, not
    2^n - 1). None when more than `max_terms` intersections would be counted.
    """
    total = 0
    evaluated = 0
    stack: list[tuple[int, ...]] = [(k,) for k in reversed(range(n))]
    while stack:
        group = stack.pop()
        evaluated += 1
        if evaluated > max_terms:
            return None
        size = count(group)
        if size == 0:
            continue
        total += size if len(group) % 2 else -size
        stack.extend((*group, k) for k in reversed(range(group[-1] + 1, n)))
    return total


def sum_positive(slope: int, icpt: int, start: int, stop: int) -> int:
    """Sum of max(0, slope*y + icpt) over integers start <= y < stop."""
    if slope > 0:
        start = max(start, -((icpt) // slope))  # y >= ceil(-icpt / slope)
    elif slope < 0:
        stop = min(stop, icpt // -slope + 1)  # y <= floor(icpt / -slope)
    elif icpt < 0:
        return 0
    if stop <= start:
        return 0
    first, last = slope * start + icpt, slope * (stop - 1) + icpt
    return (first + last) * (stop - start) // 2


def compare(value: IntArray, op: CmpOp) -> BoolArray:
    """Elementwise `value op 0`."""
    ufunc = {
        CmpOp.LT: np.less,
        CmpOp.LE: np.less_equal,
        CmpOp.GT: np.greater,
        CmpOp.GE: np.greater_equal,
        CmpOp.EQ: np.equal,
        CmpOp.NE: np.not_equal,
    }[op]
    return np.asarray(ufunc(value, 0), dtype=np.bool_)


def count_last(
    x: str, n_x: int, conds: list[_Cond], n_rows: int, vals: Mapping[str, IntArray]
) -> IntArray:
    """For each row of the other variables, the number of x in [0, n_x) meeting all conds."""
    lo = np.zeros(n_rows, dtype=np.int64)
    hi = np.full(n_rows, n_x - 1, dtype=np.int64)
    mask = np.ones(n_rows, dtype=np.bool_)
    excluded: list[tuple[int, IntArray]] = []  # (a, r): a*x + r != 0
    for cond in conds:
        a = dict(cond.coeffs).get(x, 0)
        r = np.full(n_rows, cond.const, dtype=np.int64)
        for v, c in cond.coeffs:
            if v != x:
                r += c * vals[v]
        if a == 0:
            mask &= compare(r, cond.op)
            continue
        # Each comparison becomes one or two constraints `k*x + s <= 0`.
        if cond.op is CmpOp.NE:
            excluded.append((a, r))
            continue
        forms = {
            CmpOp.LT: [(a, r + 1)],
            CmpOp.LE: [(a, r)],
            CmpOp.GT: [(-a, 1 - r)],
            CmpOp.GE: [(-a, -r)],
            CmpOp.EQ: [(a, r), (-a, -r)],
        }[cond.op]
        for k, s in forms:
            if k > 0:
                hi = np.minimum(hi, (-s) // k)  # k*x <= -s  <=>  x <= floor(-s / k)
            else:
                lo = np.maximum(lo, -((-s) // -k))  # -k*x >= s  <=>  x >= ceil(s / -k)
    count = np.where(mask, np.maximum(hi - lo + 1, 0), 0)
    seen: list[tuple[BoolArray, IntArray]] = []
    for a, r in excluded:
        cand = (-r) // a
        valid = ((-r) % a == 0) & (cand >= lo) & (cand <= hi) & mask
        fresh = valid.copy()
        for other_valid, other_cand in seen:
            fresh &= ~(other_valid & (other_cand == cand))
        count -= fresh.astype(np.int64)
        seen.append((valid, cand))
    return count
