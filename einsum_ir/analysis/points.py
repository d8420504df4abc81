"""Counting the integer points of a box that satisfy linear `where` conditions, fast.

Never enumerates the whole box: variables in no condition are factored out, split indices
(m1, m0) are merged back into m where possible, conditions are grouped into independent
components, and in each component all variables but the widest are enumerated with numpy
while the widest is counted analytically as the length of an interval.

Disjunctions (`AnyOf`) are counted by inclusion-exclusion over their options, each term a
plain conjunction counted as above; projections of a disjunction are the union of the
options' projections, each eliminated exactly to conditions on the kept variables where
possible. Only beyond `_MAX_TERMS` inclusion-exclusion terms, or when a projection cannot
be eliminated exactly, are the box's points enumerated (in chunks).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from attnsim.einsum_ir.analysis.point_arith import (
    compare,
    count_last,
    inclusion_exclusion,
    sum_positive,
)
from attnsim.einsum_ir.analysis.point_conds import (
    _clean,
    _Cond,
    _eliminate,
    _le_forms,
    _normalize,
    _substitute,
    _substitute_equalities,
)
from attnsim.einsum_ir.ir import AnyOf, CmpOp, Condition, where_symbols

IntArray = npt.NDArray[np.int64]

# Rows of the enumerated sub-box handled at once; bounds memory to a few tens of MiB.
_CHUNK_ROWS = 1 << 20
# Most inclusion-exclusion terms counted before falling back to enumeration.
_MAX_TERMS = 4096


@dataclass(frozen=True, slots=True)
class Split:
    """An index written as a mixed-radix number of iterated parts, with a bound on its value.

    `Split("m", (("m1", 256), ("m0", 1)), 1000)` says m = m1 * 256 + m0 and only points with
    m < 1000 exist (the padded tail of the last tile is outside the space).

    Attributes:
        whole: The unsplit index (it may appear in conditions).
        parts: (index, stride) pairs, outermost first.
        extent: The size of the unsplit rank.
    """

    whole: str
    parts: tuple[tuple[str, int], ...]
    extent: int


def count_points(
    extents: Mapping[str, int],
    conditions: Sequence[Condition | AnyOf] = (),
    splits: Sequence[Split] = (),
    keep: Collection[str] | None = None,
) -> int:
    """Count points of the box `0 <= v < extents[v]` satisfying every condition.

    Args:
        extents: Extent of every index variable of the box.
        conditions: Linear comparisons and disjunctions (`AnyOf`), all of which must hold
            (an `and`). Size symbols must already be bound (`einsum_ir.ir.bind_where`).
        splits: Indices made of parts of the box (innermost partitions first); conditions may
            use their `whole` index, and points whose whole is >= its extent are excluded.
        keep: If given, count the projections onto these variables instead: the points of
            the sub-box over `keep` that extend to at least one valid point of the full box.

    Returns:
        The number of points (or projected points).

    Raises:
        ValueError: If a condition uses an index that is neither in the box nor a split, or a
            size symbol that is not bound.
    """
    symbols = where_symbols(tuple(conditions))
    if symbols:
        raise ValueError(
            f"conditions use unbound size symbols {', '.join(symbols)}; bind them first "
            "(einsum_ir.ir.bind_where)"
        )
    plain = tuple(c for c in conditions if isinstance(c, Condition))
    choices = [c.options for c in conditions if isinstance(c, AnyOf)]
    if not choices:
        return _count_conjunction(extents, plain, splits, keep)
    if any(n <= 0 for n in extents.values()):
        return 0
    if keep is None or set(extents) <= set(keep):
        return _count_disjunction(extents, plain, choices, splits, keep)
    return _count_disjunction_projection(extents, plain, choices, splits, keep)


def _count_conjunction(
    extents: Mapping[str, int],
    conditions: Sequence[Condition],
    splits: Sequence[Split],
    keep: Collection[str] | None,
) -> int:
    ext = dict(extents)
    if any(n <= 0 for n in ext.values()):
        return 0
    visible = set(ext) if keep is None else set(keep) & set(ext)
    conds = [_normalize(c) for c in conditions]
    conds = _apply_splits(ext, conds, splits, visible)
    return _count_prepared(ext, visible, conds)


def _count_prepared(ext: dict[str, int], visible: set[str], conds: list[_Cond]) -> int:
    """Count (or project onto `visible`) a conjunction over box variables only."""
    unknown = {v for c in conds for v in c.vars} - set(ext)
    if unknown:
        raise ValueError(f"condition uses unbound index {', '.join(sorted(unknown))}")
    conds = _substitute_equalities(ext, visible, conds)
    for var in sorted(set(ext) - visible, key=lambda v: -ext[v]):
        reduced = _eliminate(ext[var], conds, var)
        if reduced is not None:
            # The projection no longer depends on var: it ranges freely over one value.
            conds = reduced
            ext[var] = 1
    constant = [c for c in conds if not c.vars]
    if any(not compare(np.array([c.const], dtype=np.int64), c.op)[0] for c in constant):
        return 0
    total = 1
    for component, comp_conds in _components(ext, [c for c in conds if c.vars]):
        shown = [v for v in component if v in visible]
        hidden = [v for v in component if v not in visible]
        if not comp_conds:
            total *= math.prod(ext[v] for v in shown)
        elif not hidden:
            total *= _count_component(ext, shown, comp_conds)
        elif not shown:
            total *= 1 if _count_component(ext, hidden, comp_conds) > 0 else 0
        else:
            total *= _count_projection(ext, shown, hidden, comp_conds)
        if total == 0:
            return 0
    return total


# ----------------------------------------------------------------------------- disjunctions

_Options = tuple[tuple[Condition, ...], ...]


def _count_disjunction(
    extents: Mapping[str, int],
    plain: tuple[Condition, ...],
    choices: list[_Options],
    splits: Sequence[Split],
    keep: Collection[str] | None,
) -> int:
    """Inclusion-exclusion: |C and (a1 or a2) and ...| over non-empty subsets of each AnyOf."""
    if len(choices) == 1:  # one disjunction: prune the subsets whose options never meet

        def meet(group: tuple[int, ...]) -> int:
            conds = plain + tuple(c for k in group for c in choices[0][k])
            return _count_conjunction(extents, sorted(set(conds), key=repr), splits, keep)

        pruned = inclusion_exclusion(len(choices[0]), meet, _MAX_TERMS)
        if pruned is not None:
            return pruned
        return _enumerate_union(extents, _dnf(plain, choices), splits, set(extents))
    n_terms = math.prod(2 ** len(options) - 1 for options in choices)
    if n_terms > _MAX_TERMS:
        return _enumerate_union(extents, _dnf(plain, choices), splits, set(extents))
    memo: dict[frozenset[Condition], int] = {}
    total = 0
    per_choice = [_subsets(options) for options in choices]
    for combo in itertools.product(*per_choice):
        sign = 1
        conds = set(plain)
        for size, subset in combo:
            sign *= 1 if size % 2 else -1
            conds.update(subset)
        key = frozenset(conds)
        if key not in memo:
            memo[key] = _count_conjunction(extents, sorted(key, key=repr), splits, keep)
        total += sign * memo[key]
    return total


def _subsets(options: _Options) -> list[tuple[int, tuple[Condition, ...]]]:
    """Every non-empty subset of the options: (how many options, their conditions)."""
    result = []
    for size in range(1, len(options) + 1):
        for group in itertools.combinations(options, size):
            result.append((size, tuple(c for opt in group for c in opt)))
    return result


def _dnf(plain: tuple[Condition, ...], choices: list[_Options]) -> list[tuple[Condition, ...]]:
    """The conditions as a list of alternative conjunctions (one option of each AnyOf)."""
    return [plain + tuple(c for opt in pick for c in opt) for pick in itertools.product(*choices)]


def _count_disjunction_projection(
    extents: Mapping[str, int],
    plain: tuple[Condition, ...],
    choices: list[_Options],
    splits: Sequence[Split],
    keep: Collection[str],
) -> int:
    """Points of `keep` that extend to a point of any alternative: a union of projections.

    Each alternative's projection is eliminated exactly to conditions on the kept variables
    (when every hidden variable has unit coefficients); the union is then counted by
    inclusion-exclusion over those conjunctions. Otherwise the box is enumerated.
    """
    terms = _dnf(plain, choices)
    ext = dict(extents)
    visible = set(keep) & set(ext)
    used = {v for term in terms for c in term for v in _normalize(c).vars}
    prepared: list[list[_Cond]] = []
    for term in terms:
        ext_t, visible_t = dict(extents), set(visible)
        prepared.append(
            _apply_splits(ext_t, [_normalize(c) for c in term], splits, visible_t, used)
        )
    ext, visible = ext_t, visible_t
    unknown = {v for conds in prepared for c in conds for v in c.vars} - set(ext)
    if unknown:
        raise ValueError(f"condition uses unbound index {', '.join(sorted(unknown))}")
    hidden = sorted(set(ext) - visible, key=lambda v: -ext[v])
    projected: list[list[_Cond]] = []
    for conds in prepared:
        for var in hidden:
            reduced = _eliminate(ext[var], conds, var)
            if reduced is None:
                return _enumerate_union(extents, terms, splits, set(keep))
            conds = reduced
        projected.append(conds)
    shown = {v: ext[v] for v in visible}

    def meet(group: tuple[int, ...]) -> int:
        conds = [c for k in group for c in projected[k]]
        return _count_prepared(dict(shown), set(shown), conds)

    total = inclusion_exclusion(len(projected), meet, _MAX_TERMS)
    if total is None:
        return _enumerate_union(extents, terms, splits, set(keep))
    return total


def _enumerate_union(
    extents: Mapping[str, int],
    terms: list[tuple[Condition, ...]],
    splits: Sequence[Split],
    keep: set[str],
) -> int:
    """Brute force in chunks: points (projected onto `keep`) meeting any alternative."""
    shown = [v for v in extents if v in keep]
    hidden = [v for v in extents if v not in keep]
    names = shown + hidden
    per_point = math.prod(extents[v] for v in hidden)
    n_shown = math.prod(extents[v] for v in shown)
    step = max(1, _CHUNK_ROWS // max(per_point, 1))
    shape = tuple(extents[v] for v in names)
    forms = [[_normalize(c) for c in term] for term in terms]
    total = 0
    for start in range(0, n_shown, step):
        stop = min(n_shown, start + step)
        flat = np.arange(start * per_point, stop * per_point, dtype=np.int64)
        coords = np.unravel_index(flat, shape) if shape else ()
        vals = {v: np.asarray(c, dtype=np.int64) for v, c in zip(names, coords, strict=True)}
        inside = np.ones(len(flat), dtype=np.bool_)
        for split in splits:
            whole = np.zeros(len(flat), dtype=np.int64)
            for part, stride in split.parts:
                whole += stride * vals[part]
            vals[split.whole] = whole
            inside &= whole < split.extent
        hit = np.zeros(len(flat), dtype=np.bool_)
        for conds in forms:
            ok = inside.copy()
            for cond in conds:
                value = np.full(len(flat), cond.const, dtype=np.int64)
                for v, c in cond.coeffs:
                    if v not in vals:
                        raise ValueError(f"condition uses unbound index {v}")
                    value += c * vals[v]
                ok &= compare(value, cond.op)
            hit |= ok
        total += int(hit.reshape(stop - start, -1).any(axis=1).sum())
    return total


# ----------------------------------------------------------------------------- preparation


def _apply_splits(
    ext: dict[str, int],
    conds: list[_Cond],
    splits: Sequence[Split],
    visible: set[str],
    used_anywhere: set[str] | None = None,
) -> list[_Cond]:
    """Merge each split into one index when nothing tells its parts apart, else substitute.

    `used_anywhere` adds variables used by other alternatives of a disjunction, so that
    every alternative makes the same merge decisions.
    """
    defs: dict[str, dict[str, int]] = {}  # substituted wholes, as forms over box variables
    for split in splits:
        if split.whole in ext:
            raise ValueError(f"index {split.whole} is iterated together with its parts")
        names = [p for p, _ in split.parts]
        missing = [p for p in names if p not in ext and p not in defs]
        if missing:
            raise ValueError(f"split {split.whole}: parts {missing} are neither iterated nor split")
        used = {v for c in conds for v in c.vars} | (used_anywhere or set())
        if all(p in ext for p in names) and not used & set(names):
            radix = all(
                stride == math.prod(ext[q] for q in names[i + 1 :])
                for i, (_, stride) in enumerate(split.parts)
            )
            sides = {p in visible for p in names}
            if radix and len(sides) == 1:
                top = sum(stride * (ext[p] - 1) for p, stride in split.parts)
                for p in names:
                    del ext[p]
                ext[split.whole] = min(split.extent, top + 1)
                if sides == {True}:
                    visible.difference_update(names)
                    visible.add(split.whole)
                continue
        form: dict[str, int] = {}
        for p, stride in split.parts:
            for v, c in defs.get(p, {p: 1}).items():
                form[v] = form.get(v, 0) + stride * c
        defs[split.whole] = form
        conds = [_substitute(c, split.whole, form, 0) for c in conds]
        if sum(c * (ext[v] - 1) for v, c in form.items()) >= split.extent:
            conds.append(_Cond(_clean(form), -split.extent, CmpOp.LT))
    return conds


def _components(
    ext: Mapping[str, int], conds: list[_Cond]
) -> Iterator[tuple[list[str], list[_Cond]]]:
    """Groups of variables linked by conditions (a lone unconstrained variable is a group)."""
    parent = {v: v for v in ext}

    def find(v: str) -> str:
        while parent[v] != v:
            parent[v] = parent[parent[v]]
            v = parent[v]
        return v

    for c in conds:
        first, *rest = sorted(c.vars)
        for v in rest:
            parent[find(v)] = find(first)
    groups: dict[str, list[str]] = {}
    for v in ext:
        groups.setdefault(find(v), []).append(v)
    for members in groups.values():
        member_set = set(members)
        yield members, [c for c in conds if c.vars & member_set]


# ----------------------------------------------------------------------------- counting


def _rows(
    ext: Mapping[str, int], names: Sequence[str]
) -> Iterator[tuple[int, dict[str, IntArray]]]:
    """The points of the sub-box over `names` in row-major chunks: (row count, values)."""
    shape = tuple(ext[v] for v in names)
    total = math.prod(shape)
    for start in range(0, total, _CHUNK_ROWS):
        flat = np.arange(start, min(total, start + _CHUNK_ROWS), dtype=np.int64)
        coords = np.unravel_index(flat, shape) if shape else ()
        yield (
            len(flat),
            {v: np.asarray(c, dtype=np.int64) for v, c in zip(names, coords, strict=True)},
        )


def _count_component(ext: Mapping[str, int], names: Sequence[str], conds: list[_Cond]) -> int:
    if len(names) == 2:
        for x, y in sorted([names, names[::-1]], key=lambda pair: -ext[pair[0]]):
            exact = _count_pair(ext[x], ext[y], x, y, conds)
            if exact is not None:
                return exact
    x = max(names, key=lambda v: ext[v])
    rest = [v for v in names if v != x]
    return sum(int(count_last(x, ext[x], conds, n, vals).sum()) for n, vals in _rows(ext, rest))


Affine = tuple[int, int]  # (slope, intercept): slope * y + intercept


def _count_pair(n_x: int, n_y: int, x: str, y: str, conds: list[_Cond]) -> int | None:
    """Closed-form count for two variables when x has coefficients +-1 and no `!=` occurs.

    For each y the valid x form the interval [max L_i(y), min U_j(y)] with affine bounds, so
    the count is max(0, min over (i, j) of U_j(y) - L_i(y) + 1): piecewise affine in y. It is
    summed as arithmetic series between the points where two of these affine pieces cross.
    Returns None when the conditions do not have that form.
    """
    lower: list[Affine] = [(0, 0)]
    upper: list[Affine] = [(0, n_x - 1)]
    y_lo, y_hi = 0, n_y - 1
    for cond in conds:
        if cond.op is CmpOp.NE:
            return None
        for le in _le_forms(cond):
            coeffs = dict(le.coeffs)
            b, c, k = coeffs.get(x, 0), coeffs.get(y, 0), le.const
            if b == 0:  # c*y + k <= 0
                if c > 0:
                    y_hi = min(y_hi, (-k) // c)
                elif c < 0:
                    y_lo = max(y_lo, -((-k) // -c))
                elif k > 0:
                    return 0
            elif abs(b) != 1:
                return None
            elif b > 0:  # x <= -c*y - k
                upper.append((-c, -k))
            else:  # x >= c*y + k
                lower.append((c, k))
    pieces = sorted({(us - ls, uk - lk + 1) for us, uk in upper for ls, lk in lower})
    cuts = {y_lo, y_hi + 1}
    for i, (s1, k1) in enumerate(pieces):
        if s1 != 0:
            cuts.add((-k1) // s1 + 1)  # just past the zero of this piece
        for s2, k2 in pieces[i + 1 :]:
            if s1 != s2:
                cuts.add((k2 - k1) // (s1 - s2) + 1)  # just past where the pieces cross
    bounds = sorted(c for c in cuts if y_lo <= c <= y_hi + 1)
    total = 0
    for start, stop in itertools.pairwise(bounds):
        slope, icpt = min(pieces, key=lambda g: (g[0] * start + g[1], g[0] * (stop - 1) + g[1]))
        total += sum_positive(slope, icpt, start, stop)
    return total


def _count_projection(
    ext: Mapping[str, int], shown: Sequence[str], hidden: Sequence[str], conds: list[_Cond]
) -> int:
    x = max(hidden, key=lambda v: ext[v])
    rest = [v for v in hidden if v != x]
    per_point = math.prod(ext[v] for v in rest)
    total = 0
    # Chunks of whole visible points so that `any` over the hidden rows stays in one chunk.
    names = list(shown) + rest
    step = max(1, _CHUNK_ROWS // per_point)
    shown_total = math.prod(ext[v] for v in shown)
    for start in range(0, shown_total, step):
        stop = min(shown_total, start + step)
        flat = np.arange(start * per_point, stop * per_point, dtype=np.int64)
        coords = np.unravel_index(flat, tuple(ext[v] for v in names))
        vals = {v: np.asarray(c, dtype=np.int64) for v, c in zip(names, coords, strict=True)}
        exists = count_last(x, ext[x], conds, len(flat), vals) > 0
        total += int(exists.reshape(stop - start, per_point).any(axis=1).sum())
    return total
