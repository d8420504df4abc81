"""kernels.triton.neighborhood_layout: the neighborhood's tile order and its block-sparse lists.

Host code only. The lists are checked against an element-by-element classification of the
mask written plainly from NATTEN's window rule (`neighborhood.neighborhood_mask`), the packed
windows against the same mask, and the counts of two small cases against first principles.
"""

from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"  # must precede the first import of triton

import pytest  # noqa: E402

from attnsim.kernels.triton.neighborhood import neighborhood_mask  # noqa: E402
from attnsim.kernels.triton.neighborhood_layout import (  # noqa: E402
    Neighborhood,
    neighborhood_sparse,
    tile_shape,
)

CASES = [  # image, kernel, dilation, causal, q tile, kv tile
    ((8, 8), 3, 1, False, 16, 16),
    ((12, 10), 5, 2, False, 16, 16),
    ((12, 10), 3, 2, False, (4, 8), (4, 4)),
    ((12, 10), (3, 5), (1, 2), (True, False), (4, 4), (4, 8)),
    ((21, 20), 9, 1, False, (8, 8), (4, 4)),
    ((16, 22), (3, 1), (3, 2), (True, False), (8, 4), (8, 8)),
    ((16, 16), 7, 1, False, (2, 16), (1, 16)),  # tiles as wide as the image: row-major
    (181, 31, 1, False, 16, 16),
    (60, 5, 3, True, 32, 16),
    (263, 31, 4, False, 32, 64),
]


def listed(lay, which):
    counts = getattr(lay, f"{which}_counts")[0, 0]
    indices = getattr(lay, f"{which}_indices")[0, 0]
    out = torch.zeros(lay.query_tiles, lay.key_tiles, dtype=torch.bool)
    for t in range(lay.query_tiles):
        idx = indices[t, : counts[t]].long()
        assert idx.tolist() == sorted(set(idx.tolist()))
        out[t, idx] = True
    return out


def plain_tiles(g, lay):
    """(full, partial) from the element mask in the layout's order, tile by tile."""
    mask, n = neighborhood_mask(g), lay.seq_q
    real = torch.ones(n, dtype=torch.bool)
    if lay.is_permuted:
        order = torch.zeros(n, n, dtype=torch.bool)
        order[lay.scatter[:, None], lay.scatter[None, :]] = mask
        mask, real = order, torch.zeros(n, dtype=torch.bool)
        real[lay.scatter] = True
    bm, bn, tq, tk = lay.block_m, lay.block_n, lay.query_tiles, lay.key_tiles
    pairs = torch.zeros(tq * bm, tk * bn, dtype=torch.bool)
    pairs[:n, :n] = mask
    rows = torch.zeros(tq * bm, dtype=torch.bool)
    rows[:n] = real
    tiles = pairs.view(tq, bm, tk, bn)
    seen = tiles.any(3).any(1)
    full = (tiles | ~rows.view(tq, bm, 1, 1)).all(3).all(1) & seen
    return full, seen & ~full


@pytest.mark.parametrize("case", CASES, ids=[str(c[:4]) for c in CASES])
def test_lists_match_the_element_mask(case):
    g = Neighborhood.of(*case)
    lay = neighborhood_sparse(g)
    full, partial = plain_tiles(g, lay)
    assert torch.equal(listed(lay, "full"), full)
    assert torch.equal(listed(lay, "partial"), partial)


@pytest.mark.parametrize("case", CASES, ids=[str(c[:4]) for c in CASES])
def test_windows_and_coordinates_give_the_mask(case):
    """Within a dilation group, a key is visible iff its coordinates lie in the query's window."""
    g = Neighborhood.of(*case)
    lay = neighborhood_sparse(g)
    pos = lay.scatter if lay.is_permuted else torch.arange(g.tokens)
    w, c = lay.windows[pos], lay.coords[pos]
    y, x = (c >> 16)[None, :], (c & 0xFFFF)[None, :]
    inside = (y >= (w[:, 0] >> 16)[:, None]) & (y < (w[:, 0] & 0xFFFF)[:, None])
    inside &= (x >= (w[:, 1] >> 16)[:, None]) & (x < (w[:, 1] & 0xFFFF)[:, None])
    t = torch.arange(g.tokens)
    ty, tx = t // g.image[1], t % g.image[1]
    (dy, dx) = g.dilation
    same = (ty[:, None] % dy == ty[None, :] % dy) & (tx[:, None] % dx == tx[None, :] % dx)
    assert torch.equal(inside & same, neighborhood_mask(g))


def counts(lay):
    fc, pc = lay.full_counts[0, 0], lay.partial_counts[0, 0]
    return int(fc.sum()), int(pc.sum()), lay.query_tiles * lay.key_tiles - int(fc.sum() + pc.sum())


def test_1d_counts_from_first_principles():
    """64 tokens, 33 keys, tiles of 16: windows start at clamp(i - 16, 0, 31). Query tile 0
    (all start 0) sees key tiles 0-1 whole and key 32 of tile 2; tiles 1 and 2 see their own
    and one more tile whole and two in part; tile 3 (all start 31) sees 2-3 whole, 31 of tile
    1: 6 full, 6 partial, 4 empty. With 7 keys no tile is full: 10 partial, 6 empty."""
    lay = neighborhood_sparse(Neighborhood.of(64, 33, 1, False, 16, 16))
    assert not lay.is_permuted and lay.seq_q == 64
    assert lay.full_counts[0, 0].tolist() == [2, 1, 1, 2]
    assert lay.partial_counts[0, 0].tolist() == [1, 2, 2, 1]
    assert counts(lay) == (6, 6, 4)
    assert counts(neighborhood_sparse(Neighborhood.of(64, 7, 1, False, 16, 16))) == (0, 10, 6)


def test_2d_counts_from_first_principles():
    """16 x 16, 9 x 9, 4 x 4 tiles: along an axis the query bands see key bands
    F F P - / P F P - / - P F P / - P F F (F whole, P in part): 3 bands each, 2/1/1/2 whole.
    A 2-D tile pair is seen iff seen along both axes, whole iff whole along both: 16 query
    tiles x 9 seen = 144 tiles, (2+1+1+2)^2 = 36 full, 108 partial, 256 - 144 = 112 empty."""
    lay = neighborhood_sparse(Neighborhood.of((16, 16), 9, 1, False, (4, 4), (4, 4)))
    assert lay.is_permuted and lay.query_tiles == lay.key_tiles == 16
    assert counts(lay) == (36, 108, 112)
    visited = lay.full_counts[0, 0] + lay.partial_counts[0, 0]
    assert visited.tolist() == [9] * 16


def test_dilation_keeps_groups_apart_and_padding_unlisted():
    """9 x 8 at dilation 2: groups of 5 x 4 (even rows) and 4 x 4 (odd rows), all padded to two
    4 x 4 tiles; no tile of one group lists a tile of another, and the odd groups' second
    tiles (padding only) are never listed."""
    g = Neighborhood.of((9, 8), 3, 2, False, 16, 16)
    lay = neighborhood_sparse(g)
    assert lay.seq_q == g.positions == 4 * 32 and lay.query_tiles == 8
    seen = listed(lay, "full") | listed(lay, "partial")
    group = torch.arange(8) // 2
    assert not (seen & (group[:, None] != group[None, :])).any()
    real = torch.zeros(lay.seq_q, dtype=torch.bool)
    real[lay.scatter] = True
    padding_only = ~real.view(8, 16).any(1)
    assert padding_only.tolist() == [False] * 5 + [True, False, True]
    assert not seen[:, padding_only].any() and not seen[padding_only].any()


def test_tile_order_round_trip():
    g = Neighborhood.of((12, 10), 5, (1, 2), False, (4, 8), (2, 8))
    lay = neighborhood_sparse(g)
    x = torch.randn(2, 3, g.tokens, 16)
    tiled = lay.to_tiles(x)
    assert tiled.shape == (2, 3, g.positions, 16)
    assert torch.equal(lay.from_tiles(tiled), x)
    assert neighborhood_sparse(g) is lay  # cached: one object, one launch plan


def test_problems_are_refused_all_at_once():
    with pytest.raises(ValueError) as info:
        Neighborhood((8, 8), (4, 9), (1, 1), (False, False), (4, 6), (4, 4))
    text = str(info.value)
    assert "axis 0: kernel 4 (odd)" in text and "axis 1: kernel 9" in text
    assert "powers of two" in text
    with pytest.raises(ValueError, match="one tile must contain the other"):
        Neighborhood.of((16, 16), 3, 1, False, (8, 2), (2, 8))
    with pytest.raises(ValueError, match="block_m must be a power of two >= 16"):
        Neighborhood.of((16, 16), 3, 1, False, (2, 4), (4, 4))
    assert tile_shape(128, 64) == (8, 16) and tile_shape(64, 64) == (8, 8)
    assert tile_shape(32, 9) == (4, 8) and tile_shape(128) == (1, 128)
