"""reports.dse.pareto: fronts agree with the O(n^2) definition, with ties and duplicates."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnsim.reports.dse.pareto import dominates, front_indices, objective_vector, pareto_rows


def brute_force(points: list[tuple[float, ...]]) -> list[int]:
    """The definition: i is on the front iff no j is <= everywhere and < somewhere."""
    return [
        i
        for i, p in enumerate(points)
        if not any(
            all(a <= b for a, b in zip(q, p, strict=True))
            and any(a < b for a, b in zip(q, p, strict=True))
            for q in points
        )
    ]


# Few distinct values, so ties on one objective and exact duplicates are common.
small = st.integers(min_value=0, max_value=6).map(float)
wide = st.floats(allow_nan=False) | st.sampled_from([0.0, -0.0, 1.0])


def point_lists(k: int, values: st.SearchStrategy[float]) -> st.SearchStrategy[list]:
    return st.lists(st.tuples(*[values] * k), max_size=60)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_front_matches_brute_force(k: int, data: st.DataObject) -> None:
    values = data.draw(st.sampled_from([small, wide]))
    points = data.draw(point_lists(k, values))
    front = front_indices(points)
    assert front == brute_force(points)
    on_front = set(front)
    # No dominated point on the front ...
    for i in front:
        assert not any(dominates(q, points[i]) for q in points)
    # ... and no non-dominated point missing from it.
    for i, p in enumerate(points):
        if i not in on_front:
            assert any(dominates(points[j], p) for j in front)


@settings(max_examples=100, deadline=None)
@given(points=point_lists(2, small), copies=st.integers(min_value=2, max_value=4))
def test_duplicates_are_all_kept_or_all_dropped(
    points: list[tuple[float, float]], copies: int
) -> None:
    doubled = [p for p in points for _ in range(copies)]
    front = set(front_indices(doubled))
    for i in range(len(points)):
        group = {i * copies + c for c in range(copies)}
        assert group <= front or not group & front


def test_ties_and_duplicates_by_hand() -> None:
    points = [(1.0, 5.0), (1.0, 5.0), (1.0, 6.0), (2.0, 3.0), (3.0, 3.0), (0.5, 9.0)]
    # (1,6) is beaten by (1,5) on y alone; (3,3) by (2,3) on x alone.
    assert front_indices(points) == [0, 1, 3, 5]
    assert front_indices([(2.0, 2.0)] * 3) == [0, 1, 2]
    assert front_indices([]) == []
    assert front_indices([(3.0,), (1.0,), (1.0,)]) == [1, 2]


def test_dominates() -> None:
    assert dominates((1, 2), (1, 3))
    assert not dominates((1, 2), (1, 2))
    assert not dominates((1, 3), (2, 2))
    with pytest.raises(ValueError):
        dominates((1,), (1, 2))


def test_bad_points_are_rejected() -> None:
    with pytest.raises(ValueError, match="NaN"):
        front_indices([(1.0, math.nan)])
    with pytest.raises(ValueError, match="objectives"):
        front_indices([(1.0, 2.0), (1.0,)])


def test_pareto_rows_max_objectives_and_unusable_rows() -> None:
    rows = [
        {"id": "a", "latency_s": 1.0, "util": 0.5},
        {"id": "b", "latency_s": 2.0, "util": 0.9},
        {"id": "c", "latency_s": 2.0, "util": 0.4},  # slower and less utilized than a
        {"id": "d", "latency_s": "n/a", "util": 1.0},  # not a number: left out
        {"id": "e", "util": 1.0},  # no latency: left out
        {"id": "f", "latency_s": math.nan, "util": 1.0},
    ]
    front = pareto_rows(rows, [("latency_s", "min"), ("util", "max")])
    assert [row["id"] for row in front] == ["a", "b"]
    assert objective_vector(rows[1], [("util", "max")]) == (-0.9,)
    with pytest.raises(ValueError, match="direction"):
        pareto_rows(rows, [("latency_s", "lowest")])


def test_infinite_objective_alone_is_on_the_front() -> None:
    # Found by hypothesis: a +inf sentinel dropped a lone point whose second objective is inf.
    from attnsim.reports.dse.pareto import front_indices

    assert front_indices([(0.0, float("inf"))]) == [0]
    assert front_indices([(0.0, float("inf")), (1.0, 2.0)]) == [0, 1]
    assert front_indices([(0.0, float("inf")), (0.0, 2.0)]) == [1]
