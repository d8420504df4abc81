"""Block-sparse attention on the GPU model: layouts classified exactly, priced tile by tile.

The 1-pass kernel with a layout (`kernels.triton.attn_fwd(block_sparse=)`, family
`triton-blocksparse`) visits, per query tile, the full key tiles of a list (unmasked steps)
and then the partial ones (masked steps: keys past seq_k, causal, segment ids); other tiles
are never loaded. `layout_of` classifies every tile of a mask the way the kernel's layout
builders do (`kernels.triton.blocksparse._classify`), in numpy from per-row key intervals,
and `evaluate_block_sparse` prices the call with the GPU model's 1-pass plan on those tiles
(`AttnShape.layout`; `mappers.gpu.kernels.kernel_tiles`).

What the model does not read, and says so in `BLOCK_SPARSE_ASSUMPTIONS`: a listed tile costs
the plain kernel's measured step (the list entry's load is not priced: the key loop reads the
next entry a step ahead, so K/V load two tiles ahead as in the dense loop); a partial tile
adds its mask arithmetic; the partial tiles' second key loop pays the window kernel's
measured cost of entering one more loop. On an H100 (the H200 model; these calls are bound by
their steps, the same there), `kernels/measurements/h100/blocksparse-suite-h100-2026-12-06.csv`:
MAPE 3.0% (validation) / 2.6% (holdout), worst 8.2%.

The loop before 2026-12-06 read each entry in the step that used it. In its sm_90 SASS
(Triton 3.6, compiled on a CPU host with `kernels.triton.sm90.compile_fwd`) the pipeliner
staged that load through shared memory (cp.async, then one more CTA barrier a step) and
loaded K/V one tile ahead (three TMA loads before the first wgmma instead of five). Its calls
ran 7-26% a tile over the dense kernel's, priced 8-23% fast (H200 suite, `kernels/measurements/
blocksparse/superseded/`): about 0.15-0.18 us a step at head dim 128 on 128 x 64 tiles under
random layouts, twice that under documents, whose query tiles wait together for each
first-touch K/V tile. The kept loop ran those suites in 0.89x the time (geomean; documents
0.87x, down to 0.76x) on the H100, the two builds in one run.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from attnsim.archs.gpu import GpuArch
from attnsim.kernels.spec import AttnShape, TileLayout
from attnsim.mappers.gpu.model import Tiling, device_rates
from attnsim.mappers.gpu.tiling import Evaluated, evaluate
from attnsim.mappers.result import Result

BLOCK_SPARSE_ASSUMPTIONS = (
    "block-sparse: a listed tile costs the plain 1-pass kernel's step (the list entry's load, "
    "read a step ahead, unpriced); a partial tile adds its mask arithmetic (key bound, causal, "
    "segment ids) on the CUDA cores; a second key loop (the partial tiles) pays the window "
    "kernel's loop entry where the calibration measured one",
    "block-sparse: checked on an H100 with this model (suites of random blocks and packed "
    "documents: MAPE 2.6-3.0%, worst 8.2%); the H200 has timed only the earlier key loop",
)


def _row_intervals(
    seq_q: int, seq_k: int, causal: bool, documents: Sequence[int] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Per query row, its visible keys as one interval [lo, hi] (hi < lo: none)."""
    i = np.arange(seq_q, dtype=np.int64)
    lo = np.zeros(seq_q, dtype=np.int64)
    hi = np.full(seq_q, seq_k - 1, dtype=np.int64)
    if documents is not None:
        lens = np.asarray([int(n) for n in documents], dtype=np.int64)
        if lens.size == 0 or lens.min() < 1 or lens.sum() != seq_q or seq_q != seq_k:
            raise ValueError(
                f"documents must be lengths >= 1 summing to seq_q = seq_k; got {list(lens)} "
                f"for {seq_q} x {seq_k}"
            )
        ends = np.cumsum(lens)
        doc = np.searchsorted(ends, i, side="right")
        lo = ends[doc] - lens[doc]
        hi = ends[doc] - 1
    if causal:
        hi = np.minimum(hi, i)
    return lo, hi


RANDOM_BLOCK = 128  # the random masks' granularity (FlexAttention's default block size)


def random_blocks(seq_q: int, seq_k: int, density: float, seed: int) -> np.ndarray:
    """A random block mask at RANDOM_BLOCK x RANDOM_BLOCK blocks (the diagonal always kept).

    Each block is kept with probability `density` (numpy's default generator, `seed`). The
    suites' random masks (benchmarks/blocksparse_suite.py) are drawn the same way on the GPU
    machine and here, so the model prices the very layout that was timed.
    """
    tq, tk = -(-seq_q // RANDOM_BLOCK), -(-seq_k // RANDOM_BLOCK)
    blocks = np.random.default_rng(seed).random((tq, tk)) < density
    diag = np.arange(min(tq, tk))
    blocks[diag, diag] = True
    return blocks


def expand_blocks(
    blocks: np.ndarray, block: int, seq_q: int, seq_k: int, block_q: int, block_k: int
) -> np.ndarray:
    """A block mask of `block` x `block` blocks as the allowed tiles of a finer tiling.

    The tiles must divide the blocks (a tile then lies in one block: the same element mask).
    """
    if block % block_q or block % block_k:
        raise ValueError(f"tiles {block_q}x{block_k} must divide the mask's {block} blocks")
    rows = np.repeat(blocks, block, 0)[:seq_q]
    keep = np.repeat(rows, block, 1)[:, :seq_k]
    tq, tk = -(-seq_q // block_q), -(-seq_k // block_k)
    keep = np.pad(keep, ((0, tq * block_q - seq_q), (0, tk * block_k - seq_k)))
    return np.asarray(keep.reshape(tq, block_q, tk, block_k).any(axis=(1, 3)), dtype=bool)


def layout_of(
    seq_q: int,
    seq_k: int,
    block_q: int,
    block_k: int,
    *,
    causal: bool = False,
    allowed: np.ndarray | None = None,
    documents: Sequence[int] | None = None,
) -> TileLayout:
    """The tiles a block-sparse call visits, classified exactly.

    `allowed`: a bool (Tq, Tk) block mask (None: every tile); `documents`: lengths of the
    documents packed back to back (segment ids; seq_q = seq_k = their sum); `causal`: key
    j <= query i. A tile is visited when one of its pairs is visible and it is allowed, full
    when every pair of its real query rows is visible (keys past seq_k never are: a ragged
    last key tile is partial), as `kernels.triton.blocksparse` lists them.
    """
    if min(seq_q, seq_k, block_q, block_k) < 1:
        raise ValueError("sizes and tile sizes must be >= 1")
    tq, tk = -(-seq_q // block_q), -(-seq_k // block_k)
    lo, hi = _row_intervals(seq_q, seq_k, causal, documents)
    j0 = np.arange(tk, dtype=np.int64) * block_k
    j1 = j0 + block_k - 1
    seen = np.minimum(hi[:, None], j1[None, :]) - np.maximum(lo[:, None], j0[None, :]) + 1
    seen = np.maximum(seen, 0)  # (seq_q, tk): visible keys of each row in each key tile
    pad = tq * block_q - seq_q
    seen = np.pad(seen, ((0, pad), (0, 0))).reshape(tq, block_q, tk).sum(1)
    rows = np.minimum(block_q, seq_q - np.arange(tq) * block_q)[:, None]
    visited = seen > 0
    full = seen == rows * block_k
    if allowed is not None:
        allowed = np.asarray(allowed, dtype=bool)
        if allowed.shape != (tq, tk):
            raise ValueError(f"allowed must be a ({tq}, {tk}) bool block mask, got {allowed.shape}")
        visited &= allowed
        full &= allowed
    return TileLayout(
        block_q, block_k,
        tuple(int(x) for x in full.sum(1)),
        tuple(int(x) for x in (visited & ~full).sum(1)),
        int(seen[visited].sum()), tk, causal=causal, segments=documents is not None,
    )  # fmt: skip


def block_sparse_shape(
    batch: int, heads: int, seq_q: int, seq_k: int, head_dim: int, layout: TileLayout,
    value_dim: int | None = None, dtype: str = "bf16", elem_bytes: int = 2,
) -> AttnShape:  # fmt: skip
    """The attention shape of a block-sparse call (one layout for every batch and head)."""
    f = head_dim if value_dim is None else value_dim
    return AttnShape(batch, heads, seq_q, seq_k, head_dim, f, False, dtype, elem_bytes,
                     layout=layout)  # fmt: skip


def evaluate_block_sparse(shape: AttnShape, tiling: Tiling, arch: GpuArch) -> Evaluated:
    """The GPU model's time of one block-sparse call (its tiling must match the layout's)."""
    if shape.layout is None:
        raise ValueError("evaluate_block_sparse needs a shape with a layout")
    if (tiling.block_m, tiling.block_n) != (shape.layout.block_q, shape.layout.block_k):
        raise ValueError(
            f"tiling {tiling.block_m}x{tiling.block_n} does not match the layout's "
            f"{shape.layout.block_q}x{shape.layout.block_k} tiles"
        )
    if tiling.schedule != "plain":
        raise ValueError("block-sparse layouts run on the plain 1-pass kernel only")
    return evaluate("1pass", shape, tiling, device_rates(arch, shape.dtype))


def block_sparse_result(
    shape: AttnShape, tiling: Tiling, arch: GpuArch, family: str = "triton-blocksparse"
) -> Result:
    """`evaluate_block_sparse` as a `Result` (mapper gpu-1pass), the assumptions in warnings.

    `family`: the kernel family whose datasheet-mode error an uncalibrated GPU's headline
    states (the neighborhood call passes its own).
    """
    from attnsim.mappers.gpu.kernels import kernel_plans

    ev = evaluate_block_sparse(shape, tiling, arch)
    rates = device_rates(arch, shape.dtype)
    main = max(ev.kernels, key=lambda k: k.time_s)
    plans = kernel_plans(
        "1pass", shape, tiling, arch.sm_count * main.blocks_per_sm, arch.l2_bytes,
        arch.calibration, arch.sm_count, arch.hbm_latency_s,
    )  # fmt: skip
    reads = sum(p.hbm_read_bytes for p in plans)
    writes = sum(p.hbm_write_bytes for p in plans)
    lay = shape.layout
    assert lay is not None
    clock, latency = arch.clock_hz, ev.time_s
    problem = [f"tiling {tiling} cannot run as modelled: {ev.problem}"] if ev.problem else []
    headline, notes = rates.headline_and_notes(family)
    return Result(
        cascade="attention-1pass-mh (block-sparse layout)",
        arch=arch.name,
        mapper="gpu-1pass",
        options=(
            ("block_m", tiling.block_m),
            ("block_n", tiling.block_n),
            ("num_warps", tiling.num_warps),
            ("num_stages", tiling.num_stages),
            ("schedule", tiling.schedule),
            ("dtype", shape.dtype),
        ),  # fmt: skip
        sizes=(
            ("B", shape.batch),
            ("E", shape.head_dim),
            ("F", shape.value_dim),
            ("H", shape.heads),
            ("M", shape.seq_k),
            ("P", shape.seq_q),
        ),  # fmt: skip
        passes=1,
        latency_cycles=latency * clock,
        latency_s=latency,
        compute_cycles=sum(k.scheduled_s for k in ev.kernels) * clock,
        memory_cycles=sum(k.hbm_s for k in ev.kernels) * clock,
        bound="host launch" if ev.host_bound else main.bound,
        energy_pj=arch.board_power_w * latency * 1e12,
        dram_traffic_bytes=reads + writes,
        flops=shape.flops,
        extras=(
            ("tiles_full", float(sum(lay.full))),
            ("tiles_partial", float(sum(lay.partial))),
            (
                "tiles_empty",
                float(len(lay.full) * lay.key_tiles - sum(lay.full) - sum(lay.partial)),
            ),
            ("mask_points", float(lay.points)),
            ("hbm_read_bytes", reads),
            ("hbm_write_bytes", writes),
            ("grid_blocks", float(main.blocks)),
            ("blocks_per_sm", float(main.blocks_per_sm)),
        ),
        warnings=(
            *headline,
            *BLOCK_SPARSE_ASSUMPTIONS,
            *problem,
            *notes,
            "energy: board power x latency (no per-component GPU energy model)",
        ),  # fmt: skip
    )
