"""The order a grid's programs are issued in, for kernels whose programs differ in length.

A (tiles, heads) grid is issued in linear order, tile index fastest. When a tile's work
depends on its index (causal attention: the longest rows or key tiles at one end), issuing
head-major leaves the last head's longest program for the final wave, where it runs alone.
`launch_order` instead walks groups of HEAD_GROUP heads tile-major, so the longest programs
of a group's heads go first and only short ones are left for the end.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def launch_order(HEAD_GROUP: tl.constexpr):
    """(rank, head) of this program of a (tiles, heads) grid: rank 0 is issued first.

    HEAD_GROUP 1: head-major, as the grid is (rank = program_id(0)). Otherwise the linear
    launch order walks groups of HEAD_GROUP heads (the last group may be smaller), and within
    a group goes rank-major: rank 0 of each of its heads, then rank 1, ...
    """
    rank = tl.program_id(0)
    head = tl.program_id(1)
    if HEAD_GROUP > 1:
        tiles = tl.num_programs(0)
        lin = head * tiles + rank
        group = lin // (HEAD_GROUP * tiles)
        size = tl.minimum(HEAD_GROUP, tl.num_programs(1) - group * HEAD_GROUP)
        r = lin - group * HEAD_GROUP * tiles
        rank = r // size
        head = group * HEAD_GROUP + r % size
    return rank, head
