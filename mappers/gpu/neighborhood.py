"""Neighborhood attention on the GPU model: its block-sparse layout in closed form, priced.

The kernel (`kernels.triton.neighborhood.attention_neighborhood`, family
`triton-neighborhood`) is the plain 1-pass kernel with a block-sparse layout: tokens in a tile
order (per dilation group, its sub-grid cut into 2-D query and key tiles, padded to whole
tiles), full key tiles unmasked, edge tiles masked by the windows, the rest never loaded; Q,
K, V are put in that order and O back by one copy each, unless the order is row-major.
`neighborhood_layout` gives the `TileLayout` the kernel's host builder lists, from per-axis
window bounds: along an axis a query's window [start, end) has start and end non-decreasing
in the query, so a band of query rows [a, b) reaches [start(a), end(b - 1)) and sees a key
band whole iff it lies in [start(b - 1), end(a)); a 2-D tile pair is visited (full) iff it
is along both axes, so a query tile's counts are products of its two bands' counts.
`neighborhood_result` prices the call: the kernel on the plain 1-pass plan
(`blocksparse.block_sparse_result`) plus the copies, each a pass over its bytes at the
device's HBM rates and one launch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from attnsim.archs.gpu import GpuArch
from attnsim.kernels.spec import AttnShape, TileLayout
from attnsim.mappers.gpu.blocksparse import block_sparse_result
from attnsim.mappers.gpu.model import Tiling, device_rates
from attnsim.mappers.result import Result

NEIGHBORHOOD_ASSUMPTIONS = (
    "neighborhood: priced as a block-sparse layout on the plain 1-pass plan; where the "
    "calibration has the tiling's `neighborhood` steps (kernels.calibrate.microbench_"
    "neighborhood: the layout's step with every tile tested and with none; the H200's "
    "measured on it on 2026-12-06, 0.94-1.22x the H100's used before them), unmasked "
    "steps take the measured untested step and partial tiles add the measured window test; "
    "elsewhere the window test (4 compares and 4 ands per score with the key bound) is "
    "counted on the CUDA cores; on the H200 the kernel alone ran 0.91-0.99x this (median "
    "0.96x, kernels/measurements/neighborhood/neighborhood-all-h200-2026-12-05-gather.csv; "
    "0.82-0.99x with the H100's steps, 1.05-1.26x before the window test was measured)",
    "neighborhood: the copies into and out of tile order (Q, K, V gathered, O scattered: "
    "kernels.triton.gather_rows) priced as one pass over their bytes at the device's HBM "
    "rates plus one launch each (not calibrated; on the H200 they ran 1.20x this, median); "
    "the host's time for them is not modelled",
    "neighborhood: the calibration's steps time the block-sparse key loop before 2026-12-06 "
    "(each list entry read in its own step); on an H100 the kept loop's untested step ran "
    "0.46-0.96x those and its tested step 0.98-1.13x, whole neighborhood calls 0.93-1.02x "
    "(kernels/measurements/h100/, both loops in one run); the H200 has not timed it",
)


@dataclass(frozen=True, slots=True)
class NeighborhoodPlan:
    """A neighborhood call's layout and sequence, as the kernel runs it.

    Attributes:
        layout: The kernel's tiles (one layout for every batch and head).
        tokens: Tokens of the image.
        seq: Positions the kernel runs: the tile order's (padding included), or the tokens
            when the tile order is row-major (nothing permuted).
        permuted: Whether Q, K, V and O are copied into / out of tile order.
    """

    layout: TileLayout
    tokens: int
    seq: int
    permuted: bool


def _axis_bands(
    length: int, span: int, k: int, causal: bool, tq: int, tk: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """One axis of one dilation group's sub-grid (`length` long, padded to `span`).

    Per query band of `tq` rows: how many key bands of `tk` it visits, and sees whole; and the
    axis's visible pairs (the sum of its window sizes).
    """
    y = np.arange(length)
    if causal:
        start, end = np.maximum(y - k + 1, 0), y + 1
    else:
        start = np.minimum(np.maximum(y - k // 2, 0), length - k)
        end = start + k
    a = np.arange(0, span, tq)
    last = np.minimum(a + tq, length) - 1  # the band's last real row (< a: no real row)
    real = a < length
    a, last = np.minimum(a, length - 1), np.maximum(last, 0)
    lo = np.arange(0, span, tk)
    hi = np.minimum(lo + tk, length)  # one past the band's last real key
    reach = (np.minimum(end[last][:, None], hi) > np.maximum(start[a][:, None], lo)) & real[:, None]
    whole = (hi - lo == tk)[None, :] & (start[last][:, None] <= lo) & (end[a][:, None] >= hi)
    return reach.sum(1), (whole & reach).sum(1), int((end - start).sum())


def _pair(x: int | tuple[int, int], one_d: bool) -> tuple[int, int]:
    if isinstance(x, tuple):
        return x
    return (1, x) if one_d else (x, x)


def neighborhood_layout(
    image: int | tuple[int, int],
    kernel_size: int | tuple[int, int],
    dilation: int | tuple[int, int] = 1,
    causal: bool | tuple[bool, bool] = False,
    block_q: int | tuple[int, int] = 128,
    block_k: int | tuple[int, int] = 64,
) -> NeighborhoodPlan:
    """The layout the kernel's host builder lists for a neighborhood.

    Arguments as `attention_neighborhood` takes them: `image` a 1-D length or (height, width);
    per-axis values a scalar (1-D: its axis; 2-D: both) or a pair; the query and key tiles as
    (rows, cols) shapes, one containing the other, or sizes (1-D: one row; 2-D: rows the
    largest power of two up to the square root, as the kernel cuts them: 128 -> 8 x 16).
    """
    one_d = isinstance(image, int)
    block_q, block_k = (b if isinstance(b, tuple) else (1, b) if one_d
                        else (1 << (b.bit_length() - 1) // 2, b >> (b.bit_length() - 1) // 2)
                        for b in (block_q, block_k))  # fmt: skip
    img = (1, image) if isinstance(image, int) else image
    k, d = _pair(kernel_size, one_d), _pair(dilation, one_d)
    c = causal if isinstance(causal, tuple) else ((False, causal) if one_d else (causal, causal))
    coarse = (max(block_q[0], block_k[0]), max(block_q[1], block_k[1]))
    if any(k[a] % 2 == 0 or k[a] * d[a] > img[a] or min(k[a], d[a]) < 1 for a in (0, 1)):
        raise ValueError(f"kernel {k} (odd) x dilation {d} must fit in the image {img}")
    inside = [
        all(x[a] % y[a] == 0 for a in (0, 1)) for x, y in ((block_q, block_k), (block_k, block_q))
    ]
    if not any(inside):
        raise ValueError(f"one tile must contain the other: {block_q}, {block_k}")
    longest = [-(-img[a] // d[a]) for a in (0, 1)]  # group 0's sub-grid, the longest
    bands = [-(-longest[a] // coarse[a]) for a in (0, 1)]
    full_per_tile, seen_per_tile, points = [], [], 0
    for ry in range(d[0]):
        for rx in range(d[1]):
            axes = [
                _axis_bands(-(-(img[a] - r) // d[a]), bands[a] * coarse[a], k[a], c[a],
                            block_q[a], block_k[a])
                for a, r in ((0, ry), (1, rx))
            ]  # fmt: skip
            (vy, fy, py), (vx, fx, px) = axes
            points += py * px
            # query tiles of the group in tile order: larger tiles row-major, smaller within
            per = (coarse[0] // block_q[0], coarse[1] // block_q[1])
            by = np.arange(len(vy)).reshape(bands[0], per[0])
            bx = np.arange(len(vx)).reshape(bands[1], per[1])
            order = (by[:, None, :, None], bx[None, :, None, :])
            grid = np.broadcast_arrays(*order)
            seen_per_tile.append((vy[grid[0]] * vx[grid[1]]).reshape(-1))
            full_per_tile.append((fy[grid[0]] * fx[grid[1]]).reshape(-1))
    full, seen = np.concatenate(full_per_tile), np.concatenate(seen_per_tile)
    tokens, bm, bn = img[0] * img[1], block_q[0] * block_q[1], block_k[0] * block_k[1]
    positions = len(full) * bm
    fine = (min(block_q[0], block_k[0]), min(block_q[1], block_k[1]))
    # the order is row-major when every tile is a run of one row that rows divide into (or
    # the image has one row), or the larger tiles span the image's width and the smaller ones
    # too or are one row high
    row_major = d == (1, 1) and (
        (coarse[0] == 1 and (img[0] == 1 or img[1] % coarse[1] == 0))
        or (coarse[1] == img[1] and (fine[0] == 1 or fine[1] == img[1]))
    )
    seq = tokens if row_major else positions
    tq = -(-seq // bm)
    layout = TileLayout(
        bm, bn, tuple(int(x) for x in full[:tq]), tuple(int(x) for x in (seen - full)[:tq]),
        points, -(-seq // bn), causal=False, window_bounds=4,
    )  # fmt: skip
    return NeighborhoodPlan(layout, tokens, seq, not row_major)


def neighborhood_shape(
    batch: int, heads: int, head_dim: int, plan: NeighborhoodPlan, kv_heads: int | None = None,
    dtype: str = "bf16", elem_bytes: int = 2,
) -> AttnShape:  # fmt: skip
    """The attention shape the kernel runs (the plan's sequence; GQA with `kv_heads`)."""
    group = 1 if kv_heads is None else heads // kv_heads
    return AttnShape(batch, heads, plan.seq, plan.seq, head_dim, head_dim, False, dtype,
                     elem_bytes, kv_group=group, layout=plan.layout)  # fmt: skip


def permute_time_s(shape: AttnShape, plan: NeighborhoodPlan, arch: GpuArch) -> tuple[float, float]:
    """(seconds, HBM bytes) of the copies into and out of tile order (0 when not permuted).

    Q, K, V: one gather each to the plan's positions (reads and writes a row per position);
    O: one gather back to the tokens (reads and writes a row per token).
    """
    if not plan.permuted:
        return 0.0, 0.0
    rates = device_rates(arch, shape.dtype)
    row = shape.head_dim * shape.elem_bytes
    heads = shape.batch * shape.heads
    kv_heads = heads // shape.kv_group
    copies = [heads * plan.seq, kv_heads * plan.seq, kv_heads * plan.seq, heads * plan.tokens]
    per_byte = 1.0 / rates.hbm_read_bytes_per_s + 1.0 / rates.hbm_write_bytes_per_s
    seconds = sum(rates.launch_s + n * row * per_byte for n in copies)
    return seconds, 2.0 * row * sum(copies)


def neighborhood_result(
    shape: AttnShape, plan: NeighborhoodPlan, tiling: Tiling, arch: GpuArch
) -> Result:
    """The priced call as a `Result` (mapper gpu-1pass): the kernel plus the copies.

    Its warnings say what is assumed (`NEIGHBORHOOD_ASSUMPTIONS` and the block-sparse ones).
    """
    r = block_sparse_result(shape, tiling, arch, "triton-neighborhood")
    head = 1 if r.warnings and r.warnings[0].startswith("UNCALIBRATED") else 0
    extra_s, extra_bytes = permute_time_s(shape, plan, arch)
    latency = r.latency_s + extra_s
    lay = plan.layout
    return replace(
        r,
        cascade="attention-1pass-mh (neighborhood layout)",
        latency_s=latency,
        latency_cycles=latency * arch.clock_hz,
        memory_cycles=r.memory_cycles + extra_s * arch.clock_hz,
        energy_pj=arch.board_power_w * latency * 1e12,
        dram_traffic_bytes=r.dram_traffic_bytes + extra_bytes,
        extras=(
            *r.extras,
            ("permute_us", extra_s * 1e6),
            ("tokens", float(plan.tokens)),
            ("positions", float(plan.seq)),
            (
                "visible_pairs_per_tile_pair",
                lay.points / max(1, lay.block_q * lay.block_k * (sum(lay.full) + sum(lay.partial))),
            ),
        ),  # fmt: skip
        warnings=(*r.warnings[:head], *NEIGHBORHOOD_ASSUMPTIONS, *r.warnings[head:]),
    )
