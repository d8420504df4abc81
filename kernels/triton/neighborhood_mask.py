"""The neighborhood element mask of the 1-pass kernel's partial tiles (`@triton.jit` helpers).

`attn_loop.sparse_rows` and `attn_loop._keep` call these when the block-sparse layout is a
neighborhood (`SEGMENTS == SEGMENTS_NEIGHBORHOOD`; the layout: `neighborhood.NeighborhoodSparse`).
Positions are in the layout's tile order; coordinates are those of each position's dilation
group (its sub-grid), 16 bits per axis: a query position's table entry is its window
[y0, y1) x [x0, x1) packed as two int32 (y0 << 16 | y1, x0 << 16 | x1), a key position's its
coordinates (y << 16 | x). Padding positions carry an empty window and coordinates outside
every window.
"""

from __future__ import annotations

import triton
import triton.language as tl

SEGMENTS_IDS = 1  # the partial tiles compare segment (document) ids
SEGMENTS_NEIGHBORHOOD = 2  # the partial tiles test neighborhood windows (this module)


@triton.jit
def row_windows(windows, offs_m):
    """The query rows' windows (y0, y1, x0, x1), each a [BLOCK_M] int32 vector."""
    wy = tl.load(windows + 2 * offs_m)
    wx = tl.load(windows + 2 * offs_m + 1)
    return wy >> 16, wy & 0xFFFF, wx >> 16, wx & 0xFFFF


@triton.jit
def in_windows(win, coords, offs_n):
    """Which (row, key) pairs fall inside the row's window: bool [BLOCK_M, BLOCK_N]."""
    c = tl.load(coords + offs_n)
    y = (c >> 16)[None, :]
    x = (c & 0xFFFF)[None, :]
    return (
        (y >= win[0][:, None])
        & (y < win[1][:, None])
        & (x >= win[2][:, None])
        & (x < win[3][:, None])
    )
