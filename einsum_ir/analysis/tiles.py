"""Masks as unions of bands, and tile classification: full, partial and empty tiles.

A *band* is the set of (query p, key m) pairs with

    p_lo <= p <= p_hi,   m_lo <= m <= m_hi,   d_lo <= m - p <= d_hi

(any bound may be absent). Every mask of the linear family is a union of bands:

- none: one unbounded band;
- causal, top-left aligned (`m <= p`): d_hi = 0; bottom-right (`m <= p + M - P`, as
  FlashAttention >= 2.1 defines it for P != M): d_hi = M - P;
- sliding window of width W (`p - m < W`) on top of causal: d_lo = d_hi - W + 1;
- attention sinks (the first S keys always visible) plus a window: the union of the window
  band and the band m_hi = S - 1 (intersected with causal when the cascade says so).

A tiling cuts the (P, M) plane into query tiles of `block_q` rows and key tiles of
`block_k` keys (the last tile of each rank may be ragged). A tile is

- *empty* when no pair of it is visible: a kernel never loads it;
- *full* when every pair of its padded block_q x block_k area exists (is inside P x M)
  and lies in one band: a kernel runs it unmasked;
- *partial* otherwise (some visible pair, but masking is needed: a band edge, or the ragged
  last tile of a rank).

A tile covered by two bands together but by neither alone counts as partial: a kernel
decides "unmasked" per band, so it would mask that tile too.

All counts are exact. The work is vectorized over query tiles (never over pairs), so a
1M x 1M problem classifies in milliseconds; `points` sums exact row lengths.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]

_NO_LO = -(1 << 62)
_NO_HI = 1 << 62


@dataclass(frozen=True, slots=True)
class Band:
    """Pairs (p, m) within inclusive bounds on p, on m and on the diagonal offset m - p.

    A bound of None is absent. `Band()` is every pair (no mask).
    """

    p_lo: int | None = None
    p_hi: int | None = None
    m_lo: int | None = None
    m_hi: int | None = None
    d_lo: int | None = None
    d_hi: int | None = None

    def intersect(self, other: Band) -> Band:
        """The pairs in both bands."""
        return Band(
            _max(self.p_lo, other.p_lo),
            _min(self.p_hi, other.p_hi),
            _max(self.m_lo, other.m_lo),
            _min(self.m_hi, other.m_hi),
            _max(self.d_lo, other.d_lo),
            _min(self.d_hi, other.d_hi),
        )

    def bounds(self) -> tuple[int, int, int, int, int, int]:
        """All six bounds with absent ones replaced by +-huge sentinels."""
        return (
            _NO_LO if self.p_lo is None else self.p_lo,
            _NO_HI if self.p_hi is None else self.p_hi,
            _NO_LO if self.m_lo is None else self.m_lo,
            _NO_HI if self.m_hi is None else self.m_hi,
            _NO_LO if self.d_lo is None else self.d_lo,
            _NO_HI if self.d_hi is None else self.d_hi,
        )

    def contains(self, p: int, m: int) -> bool:
        """Whether the pair (p, m) is in the band."""
        p_lo, p_hi, m_lo, m_hi, d_lo, d_hi = self.bounds()
        return p_lo <= p <= p_hi and m_lo <= m <= m_hi and d_lo <= m - p <= d_hi


def _max(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def _min(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


@dataclass(frozen=True, slots=True)
class TileCounts:
    """How a tiling meets a mask.

    Attributes:
        block_q, block_k: The tile sizes (query rows, keys).
        query_tiles, key_tiles: Tiles along each rank (ceil division).
        full, partial, empty: Tiles of each class over the whole (P, M) plane.
        points: Visible (query, key) pairs, exactly.
        full_per_query_tile, partial_per_query_tile: The same per query tile (tuples of
            length `query_tiles`), for models that schedule query tiles separately.
    """

    block_q: int
    block_k: int
    query_tiles: int
    key_tiles: int
    full: int
    partial: int
    empty: int
    points: int
    full_per_query_tile: tuple[int, ...]
    partial_per_query_tile: tuple[int, ...]

    @property
    def tiles(self) -> int:
        """All tiles of the plane."""
        return self.query_tiles * self.key_tiles

    @property
    def visited(self) -> int:
        """Tiles a skipping kernel computes (full + partial)."""
        return self.full + self.partial


def mask_points(bands: Sequence[Band], seq_q: int, seq_k: int) -> int:
    """Visible pairs of the union of `bands` in the P x M plane (inclusion-exclusion)."""
    return _union_points(tuple(bands), seq_q, seq_k)


INCLUSION_EXCLUSION_MAX = 10  # bands summed by inclusion-exclusion (2^n terms) up to this many


@functools.lru_cache(maxsize=1024)
def _union_points(bands: tuple[Band, ...], seq_q: int, seq_k: int) -> int:
    if len(bands) > INCLUSION_EXCLUSION_MAX:
        if _disjoint(bands):  # e.g. one band per key tile (chunked forms)
            return sum(_band_points(b, seq_q, seq_k) for b in bands)
        return _swept_points(bands, seq_q, seq_k)
    total = 0
    for k in range(1, len(bands) + 1):
        sign = 1 if k % 2 else -1
        for combo in itertools.combinations(bands, k):
            both = functools.reduce(Band.intersect, combo)
            total += sign * _band_points(both, seq_q, seq_k)
    return total


def _disjoint(bands: Sequence[Band]) -> bool:
    """Whether the bands' key ranges (or else their query ranges) do not overlap."""
    for spans in (
        [(b.m_lo, b.m_hi) for b in bands],
        [(b.p_lo, b.p_hi) for b in bands],
    ):
        bounded = [(lo, hi) for lo, hi in spans if lo is not None and hi is not None]
        if len(bounded) < len(spans):
            continue
        bounded.sort()
        if all(h < lo for (_, h), (lo, _) in itertools.pairwise(bounded)):
            return True
    return False


def _swept_points(bands: Sequence[Band], seq_q: int, seq_k: int, rows: int = 4096) -> int:
    """Visible pairs of many overlapping bands: per query row, the union of their intervals."""
    bounds = np.array([b.bounds() for b in bands], dtype=np.int64).T  # 6 x bands
    p_lo, p_hi, m_lo, m_hi, d_lo, d_hi = (x[:, None] for x in bounds)
    total = 0
    for start in range(0, seq_q, rows):
        p = np.arange(start, min(start + rows, seq_q), dtype=np.int64)[None, :]
        lo = np.maximum(np.maximum(m_lo, 0), p + d_lo)
        hi = np.minimum(np.minimum(m_hi, seq_k - 1), p + d_hi)
        dead = (p < p_lo) | (p > p_hi)
        hi = np.where(dead, lo - 1, hi)
        total += int(_union_len([(lo[i], hi[i]) for i in range(len(bands))]).sum())
    return total


def _band_points(band: Band, seq_q: int, seq_k: int) -> int:
    """Pairs of one band inside P x M: the sum over rows of a clipped interval length."""
    p_lo, p_hi, m_lo, m_hi, d_lo, d_hi = band.bounds()
    first, last = max(p_lo, 0), min(p_hi, seq_q - 1)
    if first > last:
        return 0
    lo_m, hi_m = max(m_lo, 0), min(m_hi, seq_k - 1)
    if lo_m > hi_m or d_lo > d_hi:
        return 0
    # row p sees [max(lo_m, p + d_lo), min(hi_m, p + d_hi)]: a trapezoid in p; sum it
    # piecewise between the breakpoints where a clip switches, each piece linear in p
    cuts = sorted(
        {first, last + 1, *(c for c in (lo_m - d_lo, hi_m - d_hi + 1) if first < c <= last)}
    )
    total = 0
    for a, b in itertools.pairwise(cuts):
        total += _linear_sum(a, b - 1, lo_m, hi_m, d_lo, d_hi)
    return total


def _linear_sum(a: int, b: int, lo_m: int, hi_m: int, d_lo: int, d_hi: int) -> int:
    """Sum over p in [a, b] of max(0, min(hi_m, p + d_hi) - max(lo_m, p + d_lo) + 1).

    Within [a, b] neither clip switches, so the unclipped length is linear in p; the max
    with 0 cuts it at the one row where it crosses zero.
    """
    lo_clipped = a + d_lo < lo_m  # then max(lo_m, p + d_lo) = lo_m on the whole piece
    hi_clipped = a + d_hi > hi_m
    slope = (0 if hi_clipped else 1) - (0 if lo_clipped else 1)
    const = (hi_m if hi_clipped else d_hi) - (lo_m if lo_clipped else d_lo) + 1
    # length(p) = slope * p + const (slope in {-1, 0, 1})
    if slope == 0:
        return max(0, const) * (b - a + 1)
    if slope > 0:
        a = max(a, -const + 1)  # rows with a positive length
    else:
        b = min(b, const - 1)
    if a > b:
        return 0
    n = b - a + 1
    return slope * (a + b) * n // 2 + const * n


def classify_tiles(
    bands: Sequence[Band], seq_q: int, seq_k: int, block_q: int, block_k: int
) -> TileCounts:
    """Classify every (query tile, key tile) of the P x M plane under a union of bands.

    Args:
        bands: The mask as a union of bands (`(Band(),)` for no mask).
        seq_q: Query positions (P).
        seq_k: Key positions (M).
        block_q: Query rows per tile.
        block_k: Keys per tile.

    Returns:
        Exact full / partial / empty counts and visible points (see the module docstring).

    Raises:
        ValueError: On non-positive sizes or an empty band list.
    """
    if min(seq_q, seq_k, block_q, block_k) <= 0:
        raise ValueError("sizes and tile sizes must be positive")
    if not bands:
        raise ValueError("a mask needs at least one band")
    return _classify(tuple(bands), seq_q, seq_k, block_q, block_k)


@functools.lru_cache(maxsize=1024)
def _classify(
    bands: tuple[Band, ...], seq_q: int, seq_k: int, block_q: int, block_k: int
) -> TileCounts:
    n_q = -(-seq_q // block_q)
    n_k = -(-seq_k // block_k)
    q0 = np.arange(n_q, dtype=np.int64) * block_q
    q1 = np.minimum(q0 + block_q, seq_q) - 1  # last existing row of each query tile
    ragged_q = q0 + block_q > seq_q  # padded rows: such a tile is never full
    touched: list[tuple[IntArray, IntArray]] = []
    full: list[tuple[IntArray, IntArray]] = []
    full_k_end = (seq_k // block_k) * block_k - 1  # last key of the last whole key tile
    for band in bands:
        p_lo, p_hi, m_lo, m_hi, d_lo, d_hi = band.bounds()
        first = np.maximum(q0, p_lo)
        last = np.minimum(q1, p_hi)
        lo = np.maximum(np.maximum(m_lo, 0), first + d_lo)
        hi = np.minimum(np.minimum(m_hi, seq_k - 1), last + d_hi)
        live = (first <= last) & (lo <= hi) & (d_lo <= d_hi)
        t_lo = np.where(live, _floordiv(lo, block_k), 0)
        t_hi = np.where(live, _floordiv(hi, block_k), -1)
        touched.append((t_lo, t_hi))
        # full: every row of the padded tile is in [p_lo, p_hi] and every key m of the tile
        # satisfies the m and diagonal bounds for every row of it
        rows_ok = (q0 >= p_lo) & (q0 + block_q - 1 <= p_hi) & ~ragged_q
        f_lo_key = np.maximum(np.maximum(m_lo, 0), q0 + block_q - 1 + d_lo)
        f_hi_key = np.minimum(np.minimum(m_hi, full_k_end), q0 + d_hi)
        f_lo = _ceildiv(f_lo_key, block_k)
        f_hi = _floordiv(f_hi_key + 1, block_k) - 1
        ok = rows_ok & (f_lo <= f_hi)
        full.append((np.where(ok, f_lo, 0), np.where(ok, f_hi, -1)))
    n_touched = _union_len(touched)
    n_full = _union_len(full)
    n_partial = n_touched - n_full
    total_touched = int(n_touched.sum())
    total_full = int(n_full.sum())
    return TileCounts(
        block_q=block_q,
        block_k=block_k,
        query_tiles=n_q,
        key_tiles=n_k,
        full=total_full,
        partial=total_touched - total_full,
        empty=n_q * n_k - total_touched,
        points=_union_points(bands, seq_q, seq_k),
        full_per_query_tile=tuple(int(x) for x in n_full),
        partial_per_query_tile=tuple(int(x) for x in n_partial),
    )


def _floordiv(a: IntArray, b: int) -> IntArray:
    return np.floor_divide(a, b)


def _ceildiv(a: IntArray, b: int) -> IntArray:
    return -np.floor_divide(-a, b)


def _union_len(intervals: Sequence[tuple[IntArray, IntArray]]) -> IntArray:
    """Per query tile, the size of the union of integer intervals [lo, hi] (empty: hi < lo).

    Sorted by their starts, each interval adds what lies past the furthest end before it.
    """
    lo = np.stack([np.asarray(c[0]) for c in intervals])
    hi = np.stack([np.asarray(c[1]) for c in intervals])
    order = np.argsort(lo, axis=0, kind="stable")
    lo, hi = np.take_along_axis(lo, order, 0), np.take_along_axis(hi, order, 0)
    reach = np.maximum.accumulate(hi, axis=0)
    before = np.concatenate([np.full_like(reach[:1], np.iinfo(np.int64).min // 2), reach[:-1]])
    start = np.maximum(lo, before + 1)
    total: IntArray = np.maximum(hi - start + 1, 0).sum(axis=0)
    return total
