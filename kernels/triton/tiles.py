"""Tile I/O of the fused kernels' loops (`@triton.jit` helpers).

A head's (seq, head_dim) rows come through tensor descriptors (TMA) or block pointers; the
constexpr USE_TMA picks which (`TILES_*`). `attn_loop` loads K/V tiles with `load_tile`; the
1-pass and 2-pass launchers build the sources (`head_source`, `make_tile_source`) and write
their outputs (`store_tile`).

Layout everywhere: (batch, heads, seq, head_dim), last dimension contiguous.
"""

from __future__ import annotations

import triton
import triton.language as tl

# USE_TMA modes of the tile helpers
TILES_POINTERS = 0  # block pointers (any layout; the interpreter's default)
TILES_DEVICE_TMA = 1  # tensor descriptors built in the kernel, one per (batch, head)
TILES_HOST_TMA = 2  # tensor descriptors built on the host over the (B*H*S, D) view


@triton.jit
def make_tile_source(
    base, seq, stride_s, ROWS: tl.constexpr, HEAD_DIM: tl.constexpr, USE_TMA: tl.constexpr
):
    """A (seq, HEAD_DIM) view of one head: a tensor descriptor (TMA) or the base pointer."""
    if USE_TMA:
        return tl.make_tensor_descriptor(
            base, shape=[seq, HEAD_DIM], strides=[stride_s, 1], block_shape=[ROWS, HEAD_DIM]
        )
    else:
        return base


@triton.jit
def head_source(
    X,
    off_b,
    off_h,
    off_bh,
    stride_b,
    stride_h,
    seq,
    stride_s,
    ROWS: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    USE_TMA: tl.constexpr,
):
    """The tile source of head (off_b, off_h) of kernel argument X.

    TILES_HOST_TMA: X is a host-built descriptor over the (B*H*S, HEAD_DIM) view and the
    source is (X, first row of the head); otherwise X is a pointer (`make_tile_source`).
    """
    if USE_TMA == 2:
        return (X, off_bh * seq)
    else:
        return make_tile_source(
            X + off_b * stride_b + off_h * stride_h, seq, stride_s, ROWS, HEAD_DIM, USE_TMA
        )


@triton.jit
def load_tile(
    src, row, seq, stride_s, ROWS: tl.constexpr, HEAD_DIM: tl.constexpr, USE_TMA: tl.constexpr
):
    """Load rows [row, row + ROWS) of a head; rows past `seq` read as zero.

    (TILES_HOST_TMA reads the next head's rows there instead: its launcher keeps seq_q a
    multiple of BLOCK_M, and keys past seq_k are masked by the caller.)
    """
    if USE_TMA == 2:
        return src[0].load([src[1] + row, 0])
    elif USE_TMA:
        return src.load([row, 0])
    else:
        ptr = tl.make_block_ptr(
            src,
            shape=(seq, HEAD_DIM),
            strides=(stride_s, 1),
            offsets=(row, 0),
            block_shape=(ROWS, HEAD_DIM),
            order=(1, 0),
        )
        return tl.load(ptr, boundary_check=(0,), padding_option="zero")


@triton.jit
def store_tile(
    dst,
    row,
    seq,
    stride_s,
    value,
    ROWS: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    USE_TMA: tl.constexpr,
):
    """Store rows [row, row + ROWS) of a head in its dtype; rows past `seq` are dropped."""
    if USE_TMA == 2:
        dst[0].store([dst[1] + row, 0], value.to(dst[0].dtype))
    elif USE_TMA:
        dst.store([row, 0], value.to(dst.dtype))
    else:
        ptr = tl.make_block_ptr(
            dst,
            shape=(seq, HEAD_DIM),
            strides=(stride_s, 1),
            offsets=(row, 0),
            block_shape=(ROWS, HEAD_DIM),
            order=(1, 0),
        )
        tl.store(ptr, value.to(dst.dtype.element_ty), boundary_check=(0,))
