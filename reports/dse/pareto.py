"""Pareto fronts: the points no other point beats on every objective.

Every objective is minimized (negate a column to maximize it; `pareto_rows` does that for
"max" objectives). Point `a` dominates `b` when `a` is no worse on every objective and
strictly better on at least one. Equal points do not dominate each other, so duplicates of
a front point are all on the front, and ties on one objective are decided by the others.

`front_indices` is exact: O(n log n) for two objectives (sort, then one sweep), and a sort
plus a comparison against the front found so far for three or more.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

Direction = str  # "min" or "max"
Objective = tuple[str, Direction]


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether `a` is no worse than `b` everywhere and strictly better somewhere (minimizing)."""
    if len(a) != len(b):
        raise ValueError(f"points of different dimension: {len(a)} and {len(b)}")
    strictly = False
    for x, y in zip(a, b, strict=True):
        if x > y:
            return False
        if x < y:
            strictly = True
    return strictly


def front_indices(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices (ascending) of the non-dominated points, every objective minimized.

    Args:
        points: one tuple of objective values per point, all of the same length (at least 1).
            Values must be comparable numbers; NaN is rejected (filter such points first).

    Returns:
        The indices of the points no other point dominates, in ascending order. Duplicate
        points are all kept.
    """
    if not points:
        return []
    k = len(points[0])
    if k == 0:
        raise ValueError("points need at least one objective")
    for index, point in enumerate(points):
        if len(point) != k:
            raise ValueError(f"point {index} has {len(point)} objectives, expected {k}")
        if any(isinstance(v, float) and math.isnan(v) for v in point):
            raise ValueError(f"point {index} has a NaN objective")
    if k == 1:
        best = min(p[0] for p in points)
        return [i for i, p in enumerate(points) if p[0] == best]
    if k == 2:
        return _front_2d(points)
    return _front_kd(points)


def _front_2d(points: Sequence[Sequence[float]]) -> list[int]:
    """Two objectives: sort by (x, y), then one sweep.

    A point is on the front iff every point with smaller x has larger y and no point with
    the same x has smaller y.
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    front: list[int] = []
    best_y_left: float | None = None  # min y over points with strictly smaller x (None: none)
    start = 0
    while start < len(order):
        x = points[order[start]][0]
        end = start
        while end < len(order) and points[order[end]][0] == x:
            end += 1
        group_min_y = points[order[start]][1]  # sorted: the group's first has the least y
        # A sentinel of +inf would wrongly drop a first group whose least y is +inf itself.
        if best_y_left is None or group_min_y < best_y_left:
            front.extend(i for i in order[start:end] if points[i][1] == group_min_y)
        best_y_left = group_min_y if best_y_left is None else min(best_y_left, group_min_y)
        start = end
    return sorted(front)


def _front_kd(points: Sequence[Sequence[float]]) -> list[int]:
    """Three or more objectives: a lexicographic sweep against the front so far.

    Lexicographic order puts every dominator before the points it dominates, and dominance
    is transitive, so comparing against the front found so far is enough.
    """
    order = sorted(range(len(points)), key=lambda i: tuple(points[i]))
    front: list[int] = []
    for i in order:
        p = points[i]
        if not any(dominates(points[j], p) for j in front):
            front.append(i)
    return sorted(front)


def objective_vector(row: Mapping[str, Any], objectives: Sequence[Objective]) -> tuple[float, ...]:
    """A row's objective values as a point to minimize ("max" objectives negated).

    Raises:
        KeyError: the row lacks an objective column.
        ValueError: a value is not a finite-or-infinite number (a string, a bool, NaN).
    """
    values = []
    for column, direction in objectives:
        value = row[column]
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise ValueError(f"{column} = {value!r} is not a number")
        if direction not in ("min", "max"):
            raise ValueError(f"objective {column}: direction {direction!r} is not min or max")
        values.append(float(value) if direction == "min" else -float(value))
    return tuple(values)


def pareto_rows(
    rows: Sequence[Mapping[str, Any]], objectives: Sequence[Objective]
) -> list[Mapping[str, Any]]:
    """The rows on the Pareto front of `objectives`, sorted by the first objective.

    Rows that lack an objective or hold a non-number there are left out (they cannot be
    compared). Each objective is (column, "min" | "max").
    """
    if not objectives:
        raise ValueError("pareto_rows needs at least one objective")
    for column, direction in objectives:
        if direction not in ("min", "max"):
            raise ValueError(f"objective {column}: direction {direction!r} is not min or max")
    usable: list[Mapping[str, Any]] = []
    vectors: list[tuple[float, ...]] = []
    for row in rows:
        try:
            vector = objective_vector(row, objectives)
        except (KeyError, ValueError):
            continue
        usable.append(row)
        vectors.append(vector)
    front = front_indices(vectors)
    front.sort(key=lambda i: vectors[i])
    return [usable[i] for i in front]
