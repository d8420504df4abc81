"""Every built-in cascade, executed by the reference executor, equals its numpy reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnsim.einsum_ir import builtin_names, load_cascade
from attnsim.einsum_ir.execute import evaluate, random_inputs
from attnsim.einsum_ir.reference import REFERENCES, reference_for
from attnsim.einsum_ir.sizes import resolve_sizes

NAMES = builtin_names()
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


def sizes_for(
    name: str,
    shape: tuple[int, ...],
    heads: tuple[int, int] = (2, 3),
    window: tuple[int, int, int] = (5, 2, 3),
) -> dict[str, int]:
    """Sizes for the ranks and params the cascade has; `window` is (W, S, C)."""
    m, p, e, f, m0 = shape
    w, s, c = window
    b, h = heads
    wanted = {"M": m, "P": p, "E": e, "F": f, "M0": m0, "B": b, "H": h, "G": h, "R": 2}
    wanted |= {"W": w, "S": s, "C": c}
    symbols = set(load_cascade(name).size_symbols)
    return {k: v for k, v in wanted.items() if k in symbols}


def check_against_reference(name: str, sizes: dict[str, int], seed: int, scale: float = 1) -> None:
    cascade = load_cascade(name)
    ref = REFERENCES[name]
    inputs = {k: scale * v for k, v in random_inputs(cascade, sizes, seed=seed).items()}
    got = evaluate(cascade, inputs, sizes)[ref.output]
    resolved = {str(k): v for k, v in resolve_sizes(cascade, sizes).items()}
    want = ref.compute(inputs, resolved)
    assert np.all(np.isfinite(got)), f"{name} {sizes}: non-finite output"
    tolerance = TOLERANCE if scale == 1 else {"rtol": 1e-9, "atol": 1e-9}
    np.testing.assert_allclose(got, want, **tolerance, err_msg=f"{name} {sizes} seed={seed}")


def test_library_is_found() -> None:
    assert len(NAMES) >= 20
    assert len(set(NAMES)) == len(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_every_library_cascade_has_a_reference(name: str) -> None:
    assert name in REFERENCES, (
        f"library cascade {name} has no reference: add it to einsum_ir/reference.py"
    )


def test_every_reference_has_a_library_cascade() -> None:
    stale = sorted(set(REFERENCES) - set(NAMES))
    assert not stale, f"REFERENCES names cascades that are not built-ins: {stale}"
    assert reference_for("attention-nope") is None


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


@pytest.mark.parametrize("name", [n for n in NAMES if "plain" not in n])
def test_masked_rows_are_finite_with_large_scores(name: str) -> None:
    # Large scores: any inf - inf or exp overflow in a masked tile would surface as NaN.
    # The plain cascade may overflow by design.
    check_against_reference(name, sizes_for(name, (13, 6, 2, 2, 4)), seed=1, scale=10)


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
    window=st.tuples(st.integers(1, 12), st.integers(1, 4), st.integers(1, 4)),
    seed=st.integers(0, 2**16),
)
def test_library_matches_reference_on_random_sizes(
    name: str,
    shape: tuple[int, ...],
    heads: tuple[int, int],
    window: tuple[int, int, int],
    seed: int,
) -> None:
    check_against_reference(name, sizes_for(name, shape, heads, window), seed)
