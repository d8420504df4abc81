"""Tile classification and band point counts against brute force on random small masks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnsim.einsum_ir.analysis.tiles import Band, classify_tiles, mask_points


def brute(bands: list[Band], seq_q: int, seq_k: int, bq: int, bk: int) -> tuple[int, ...]:
    """(full, partial, empty, points) by visiting every pair of every tile."""
    per = [
        np.array([[b.contains(p, m) for m in range(seq_k)] for p in range(seq_q)], dtype=bool)
        for b in bands
    ]
    visible = np.logical_or.reduce(per)
    full = partial = empty = 0
    for i in range(-(-seq_q // bq)):
        for j in range(-(-seq_k // bk)):
            rows, cols = slice(i * bq, (i + 1) * bq), slice(j * bk, (j + 1) * bk)
            block = visible[rows, cols]
            if not block.any():
                empty += 1
            elif block.shape == (bq, bk) and any(v[rows, cols].all() for v in per):
                full += 1
            else:
                partial += 1
    return full, partial, empty, int(visible.sum())


def maybe(lo: int, hi: int) -> st.SearchStrategy[int | None]:
    return st.one_of(st.none(), st.integers(lo, hi))


bands_st = st.builds(
    Band, maybe(-3, 12), maybe(0, 30), maybe(-3, 12), maybe(0, 30), maybe(-25, 6), maybe(-6, 25)
)


@settings(max_examples=400, deadline=None)
@given(
    bands=st.lists(bands_st, min_size=1, max_size=3),
    seq_q=st.integers(1, 28),
    seq_k=st.integers(1, 28),
    bq=st.integers(1, 9),
    bk=st.integers(1, 9),
)
def test_classification_matches_brute_force(
    bands: list[Band], seq_q: int, seq_k: int, bq: int, bk: int
) -> None:
    tc = classify_tiles(bands, seq_q, seq_k, bq, bk)
    assert (tc.full, tc.partial, tc.empty, tc.points) == brute(bands, seq_q, seq_k, bq, bk)
    assert sum(tc.full_per_query_tile) == tc.full
    assert sum(tc.partial_per_query_tile) == tc.partial
    assert tc.full + tc.partial + tc.empty == tc.tiles


def test_named_masks_closed_forms() -> None:
    n = 1000
    assert mask_points([Band()], n, 700) == n * 700
    assert mask_points([Band(d_hi=0)], n, n) == n * (n + 1) // 2
    # bottom-right causal with P < M: query p sees keys m <= p + (M - P)
    seq_q, seq_k = 100, 400
    assert mask_points([Band(d_hi=seq_k - seq_q)], seq_q, seq_k) == sum(
        p + seq_k - seq_q + 1 for p in range(seq_q)
    )
    # window W, causal: min(p + 1, W) keys per row
    w = 64
    assert mask_points([Band(d_lo=-w + 1, d_hi=0)], n, n) == sum(min(p + 1, w) for p in range(n))
    # sinks S plus window: the union, counted once
    s = 4
    expect = sum(min(p + 1, w) + max(0, min(s, p + 1 - w)) for p in range(n))
    assert mask_points([Band(d_lo=-w + 1, d_hi=0), Band(m_hi=s - 1, d_hi=0)], n, n) == expect


def test_causal_tiles_square() -> None:
    tc = classify_tiles([Band(d_hi=0)], 1024, 1024, 128, 128)
    assert (tc.full, tc.partial) == (8 * 7 // 2, 8)
    assert tc.full_per_query_tile == tuple(range(8))
    assert tc.partial_per_query_tile == (1,) * 8


def test_million_tokens() -> None:
    # vectorized over query tiles: a 1M x 1M sinks + window mask classifies without visiting
    # pairs (speed is measured in benchmarks/, not here)
    bands = [Band(d_lo=-1023, d_hi=0), Band(m_hi=3, d_hi=0)]
    tc = classify_tiles(bands, 1 << 20, 1 << 20, 64, 64)
    assert tc.points == mask_points(bands, 1 << 20, 1 << 20)
    # query tile 100 (rows 6400..6463) sees keys 5377..6463: the diagonal tile and the
    # window's far-edge tile are partial, 15 whole tiles between them are full, and the sink
    # tile (keys 0..3 of tile 0) is partial
    assert tc.full_per_query_tile[100] == 15
    assert tc.partial_per_query_tile[100] == 3
    assert tc.full_per_query_tile[:3] == (0, 1, 2)


def test_bad_sizes() -> None:
    with pytest.raises(ValueError, match="positive"):
        classify_tiles([Band()], 0, 4, 1, 1)
    with pytest.raises(ValueError, match="band"):
        classify_tiles([], 4, 4, 1, 1)
