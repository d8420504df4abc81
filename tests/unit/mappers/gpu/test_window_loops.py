"""The window kernel's key loops (mappers.gpu.window_loops) against the tile classification.

`window_ranges` restates the loop bounds of `kernels.triton.attn_loop.attn_rows`; the tiles
the loops visit must be exactly the tiles `einsum_ir.analysis.tiles` classifies for the
same window, none twice; the unmasked loop runs full tiles only, the masked loops every
partial tile plus the sink tiles (masked even when every row sees them whole).
"""

from __future__ import annotations

import pytest

from attnsim.einsum_ir.analysis.tiles import Band, classify_tiles
from attnsim.kernels.spec import kernel_window
from attnsim.mappers.gpu.window_loops import (
    loops_by_profile,
    window_loops,
    window_ranges,
    window_steps,
)

CASES = [
    (seq, bm, bn, w, s)
    for seq, bm, bn in ((4096, 128, 64), (4096, 128, 128), (2048, 64, 64), (3000, 128, 64))
    for w in (1, 64, 128, 200, 512, 1024, 8192)
    for s in (0, 4, 64, 300)
]


def _bands(w: int, sinks: int) -> tuple[Band, ...]:
    window = (Band(d_lo=1 - w, d_hi=0),)
    return window + ((Band(m_hi=sinks - 1, d_hi=0),) if sinks else ())


@pytest.mark.parametrize(("seq", "bm", "bn", "w", "sinks"), CASES)
def test_loops_visit_exactly_the_classified_tiles(seq, bm, bn, w, sinks):
    bands = _bands(w, sinks)
    assert kernel_window(bands) == (w, sinks)
    padded = -(-seq // bm) * bm  # the kernel bounds its loops by the padded query tile
    tiles = classify_tiles(bands, padded, seq, bm, bn)
    ranges = window_ranges(seq, seq, bm, bn, w, sinks)
    steps = window_steps(seq, seq, bm, bn, w, sinks)
    assert len(ranges) == len(steps) == len(tiles.full_per_query_tile)
    for i, tile in enumerate(ranges):
        visited = [set(range(a // bn, -(-b // bn))) for a, b in tile if b > a]
        union = set().union(*visited) if visited else set()
        assert sum(len(v) for v in visited) == len(union), (i, tile)  # no tile twice
        full, partial = tiles.full_per_query_tile[i], tiles.partial_per_query_tile[i]
        assert len(union) == full + partial, (i, tile)  # the classified tiles, no others
        unmasked, masked = steps[i]
        assert unmasked + masked == full + partial
        # the unmasked loop runs only full tiles; the masked loops every partial tile, and
        # sink tiles every row sees whole (full by the classification) masked too, in the
        # sink loop or among the window's leading tiles
        assert unmasked <= full and masked >= partial, (i, tile)
        assert masked - partial <= -(-sinks // bn), (i, tile)  # at most the sink tiles


def test_loop_counts_and_profiles():
    # W = BLOCK_M: after the first query tile, the diagonal and the leading tiles (2 loops)
    assert window_loops(1024, 1024, 128, 64, 128, 0) == [1] + [2] * 7
    # a wider window adds the unmasked loop; sinks far enough left add a fourth
    loops = window_loops(4096, 4096, 128, 64, 512, 64)
    assert loops[0] == 1 and max(loops) == 4 and loops[-1] == 4
    per_tile = [(1, 2), (1, 2), (3, 4)]
    assert loops_by_profile(per_tile, [2, 3, 4]) == ((1, 2, 3), (3, 4, 4))
