"""Conditions on the position inside the key tile (m0) as one band per tile, and many bands.

Against brute force: every (query, key) pair of a small plane tested with the conditions
as written (m = m1 M0 + m0), the bands' pair count and tile classification, and the union
of many overlapping bands (the sweep that replaced inclusion-exclusion).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from attnsim.einsum_ir.analysis.masks import where_bands
from attnsim.einsum_ir.analysis.tiles import Band, classify_tiles, mask_points
from attnsim.einsum_ir.parse import parse_einsum

# (condition as written, the same as a predicate on p, m, m0 and sizes s)
CASES = [
    (
        "m <= p + M - P and p - m + m0 + M - P < M0",
        lambda p, m, m0, s: m <= p + s["M"] - s["P"] and p - m + m0 + s["M"] - s["P"] < s["M0"],
    ),
    (
        "m <= p and p - m + m0 < M0 + W - 1",
        lambda p, m, m0, s: m <= p and p - m + m0 < s["M0"] + s["W"] - 1,
    ),
    ("m0 == M0 - 1 and m + W <= p", lambda p, m, m0, s: m0 == s["M0"] - 1 and m + s["W"] <= p),
    ("m0 >= 2 or m == p", lambda p, m, m0, s: m0 >= 2 or m == p),
]


@pytest.mark.parametrize(("text", "keep"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize(("seq_q", "seq_k", "tile", "window"), [(23, 23, 4, 5), (9, 20, 6, 3)])
def test_key_tile_conditions_are_exact(text, keep, seq_q, seq_k, tile, window) -> None:
    einsum = parse_einsum(f"X[m1,m0,p] = A[m1,m0,p] where {text}")
    sizes = {"M": seq_k, "P": seq_q, "M0": tile, "W": window}
    bands = where_bands(einsum.where, "m", "p", sizes, ("m0", tile, seq_k))
    assert bands is not None
    brute = np.array(
        [[keep(p, m, m % tile, sizes) for m in range(seq_k)] for p in range(seq_q)]
    )  # fmt: skip
    assert mask_points(bands, seq_q, seq_k) == int(brute.sum())
    counts = classify_tiles(bands, seq_q, seq_k, 3, tile)
    assert counts.points == int(brute.sum())
    visited = sum(
        brute[q0:q0 + 3, k0:k0 + tile].any()
        for q0 in range(0, seq_q, 3) for k0 in range(0, seq_k, tile)
    )  # fmt: skip
    assert counts.visited == visited
    # without the key tile the condition reading m0 is outside the family
    if "m0" in text:
        assert where_bands(einsum.where, "m", "p", sizes) is None


def test_many_overlapping_bands_by_sweep() -> None:
    rng = np.random.default_rng(4)
    seq_q, seq_k = 37, 41
    bands = []
    for _ in range(14):  # more than inclusion-exclusion takes: the per-row sweep
        lo, hi = sorted(rng.integers(-10, 45, size=2))
        p_lo, d_lo, d_hi = (int(rng.integers(a, b)) for a, b in ((0, 20), (-30, 0), (0, 30)))
        bands.append(Band(p_lo=p_lo, m_lo=int(lo), m_hi=int(hi), d_lo=d_lo, d_hi=d_hi))
    brute = sum(
        any(b.contains(p, m) for b in bands)
        for p, m in itertools.product(range(seq_q), range(seq_k))
    )
    assert mask_points(tuple(bands), seq_q, seq_k) == brute
    counts = classify_tiles(tuple(bands), seq_q, seq_k, 5, 7)
    assert counts.points == brute
