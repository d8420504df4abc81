"""Every built-in cascade, executed by the reference executor, equals its numpy reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from einsum_ir import builtin_names, load_cascade
from einsum_ir.execute import evaluate, random_inputs
from einsum_ir.reference import REFERENCES

LIBRARY = Path(__file__).parent.parent.parent / "einsum_ir" / "library"
NAMES = tuple(sorted(p.stem for p in LIBRARY.glob("*.yaml")))
TOLERANCE = {"rtol": 1e-12, "atol": 1e-12}

# (M, P, E, F, M0): square, M a multiple of M0, M not a multiple of M0 with P < M,
# P > M, one tile larger than M, single key / query.
SHAPES = [
    (16, 16, 4, 3, 4),
    (10, 3, 2, 5, 4),
    (7, 12, 3, 2, 4),
    (5, 5, 2, 2, 8),
    (1, 1, 1, 1, 4),
    (23, 9, 4, 4, 8),
]


def sizes_for(name: str, shape: tuple[int, ...], heads: tuple[int, int] = (2, 3)) -> dict[str, int]:
    m, p, e, f, m0 = shape
    sizes = {"M": m, "P": p, "E": e, "F": f}
    cascade = load_cascade(name)
    if any(part.rank == "M" for part in cascade.partitions):
        sizes["M0"] = m0
    if "-mh" in name:
        sizes["B"], sizes["H"] = heads
    return sizes


def check_against_reference(name: str, sizes: dict[str, int], seed: int) -> None:
    cascade = load_cascade(name)
    ref = REFERENCES[name]
    inputs = random_inputs(cascade, sizes, seed=seed)
    got = evaluate(cascade, inputs, sizes)[ref.output]
    want = ref.compute(inputs)
    assert np.all(np.isfinite(got)), f"{name} {sizes}: non-finite output"
    np.testing.assert_allclose(got, want, **TOLERANCE, err_msg=f"{name} {sizes} seed={seed}")


def test_library_is_found() -> None:
    assert NAMES == builtin_names()
    assert len(NAMES) >= 20


@pytest.mark.parametrize("name", NAMES)
def test_every_library_cascade_has_a_reference(name: str) -> None:
    assert name in REFERENCES, (
        f"library cascade {name} has no reference: add it to REFERENCES in einsum_ir/reference.py"
    )


def test_every_reference_has_a_library_cascade() -> None:
    stale = sorted(set(REFERENCES) - set(NAMES))
    assert not stale, f"REFERENCES names cascades missing from einsum_ir/library/: {stale}"


@pytest.mark.parametrize("name", NAMES)
def test_inputs_and_output_match_the_reference_layout(name: str) -> None:
    cascade = load_cascade(name)
    ref = REFERENCES[name]
    assert cascade.inputs == ref.inputs
    assert ref.output in cascade.outputs


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "M{}-P{}-E{}-F{}-M0{}".format(*s))
@pytest.mark.parametrize("name", NAMES)
def test_library_matches_reference(name: str, shape: tuple[int, ...]) -> None:
    check_against_reference(name, sizes_for(name, shape), seed=sum(shape))


@pytest.mark.parametrize("name", [n for n in NAMES if "causal" in n])
def test_causal_rows_are_finite_with_large_scores(name: str) -> None:
    # Large scores: any inf - inf or exp overflow in a masked tile would surface as NaN.
    sizes = sizes_for(name, (13, 6, 2, 2, 4))
    cascade = load_cascade(name)
    inputs = {k: 10 * v for k, v in random_inputs(cascade, sizes, seed=1).items()}
    got = evaluate(cascade, inputs, sizes)["AV"]
    if "plain" not in name:  # the plain cascade may overflow by design
        np.testing.assert_allclose(got, REFERENCES[name].compute(inputs), rtol=1e-9, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(NAMES),
    shape=st.tuples(
        st.integers(1, 20),
        st.integers(1, 20),
        st.integers(1, 4),
        st.integers(1, 4),
        st.integers(1, 8),
    ),
    heads=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    seed=st.integers(0, 2**16),
)
def test_library_matches_reference_on_random_sizes(
    name: str, shape: tuple[int, ...], heads: tuple[int, int], seed: int
) -> None:
    check_against_reference(name, sizes_for(name, shape, heads), seed)
