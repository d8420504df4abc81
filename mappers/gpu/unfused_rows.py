"""The unfused family's middle kernel: the row softmax (or sigmoid), one program per row.

`mappers.gpu.kernels._unfused` plans the QK^T and P.V tile kernels around it; this module
holds the row kernel's plan (`row_kernel`), the lanes it steps through (`softmax_lane_blocks`)
and the compiled path a row length takes (`softmax_path`), whose calibration entries give its
rate (`kernels._with_measured`).
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np

from attnsim.einsum_ir.analysis.tiles import Band
from attnsim.kernels.spec import SOFTMAX_MAX_BLOCK, AttnShape
from attnsim.mappers.gpu.assumptions import BASE_REGISTERS_PER_THREAD
from attnsim.mappers.gpu.model import (
    BlockGroup,
    KernelPlan,
    StepWork,
    Tiling,
)
from attnsim.mappers.gpu.scores import SIGMOID_ROW_OPS, ScoreCost

SOFTMAX_OPS = 4.0  # max, subtract, sum, normalize (+ conversions)


def registers(elements_fp32: float, warps: int) -> int:
    """Registers per thread holding `elements_fp32` values over `warps` warps, plus the base."""
    return math.ceil(elements_fp32 / (32 * warps)) + BASE_REGISTERS_PER_THREAD


def row_kernel(s: AttnShape, score_elems: float, score: ScoreCost) -> KernelPlan:
    """The unfused middle kernel: one program per row, over its visible keys in BLOCKs.

    Softmax: rows within one block in one step, longer rows a max/sum loop then a normalize
    loop. Sigmoid (no kernel yet): one element-wise loop (tanh on the SFU, an FMA, convert).
    """
    b = s.elem_bytes
    heads = s.batch * s.heads
    block = min(2 ** math.ceil(math.log2(s.seq_k)), SOFTMAX_MAX_BLOCK)
    single = s.seq_k <= block
    lanes = softmax_lane_blocks(s, block) * block  # lanes a row program steps through
    warps = 8 if block >= 4096 else 4 if block >= 1024 else 2 if block >= 256 else 1
    rows = heads * s.seq_q
    mean_valid = s.seq_k if s.is_dense else s.points / s.seq_q  # visible keys per row
    if score.sigmoid:
        steps = math.ceil(mean_valid / block)
        return KernelPlan(
            name="sigmoid",
            tiling=Tiling(1, block, warps, 1),
            smem_bytes=0,
            registers_per_thread=registers(block, warps),
            step=StepWork((), block, SIGMOID_ROW_OPS * block, min(mean_valid, block) * b),
            masked_step=StepWork(),
            fixed=StepWork(),
            round_trips=2,
            groups=(BlockGroup(rows, steps, 0),),
            hbm_read_bytes=heads * score_elems * b,
            hbm_write_bytes=heads * score_elems * b,
            flops=0.0,
            work=heads * lanes * b * 2.0,
            longest=math.ceil(s.seq_k / block) * block * b * 2.0,
        )
    # one step per row (SINGLE) or, for long rows, a max/sum loop then a normalize loop
    steps = 1 if single else 2 * math.ceil(mean_valid / block)
    exps_per_step = block if single else 1.5 * block  # loop 1 also rescales (exp2 per lane)
    soft_step = StepWork((), exps_per_step, SOFTMAX_OPS * block, min(mean_valid, block) * b)
    return KernelPlan(
        name="softmax",
        tiling=Tiling(1, block, warps, 1),
        smem_bytes=0,
        registers_per_thread=registers(2 * block, warps),
        step=soft_step,
        masked_step=StepWork(),
        fixed=StepWork((), 0.0, 0.0, 0.0),
        round_trips=2 if single else 3,
        groups=(BlockGroup(rows, steps, 0),),
        hbm_read_bytes=heads * score_elems * b * (1 if single else 2),
        hbm_write_bytes=heads * score_elems * b,
        flops=0.0,
        # one block: the lanes' loads, max, exp and store (masked lanes cost their issue);
        # two loops: a fixed cost per row (its loop set-up and the reductions between the
        # loops): masked lanes of a causal row load nothing, and on the H200 the long causal
        # rows' time was their visible bytes at HBM speed plus ~16 ns a row (12K-37K keys,
        # kernels/measurements/unfused/unfused-kernels-causal-*), not a time per lane
        work=heads * lanes * b * 2.0 if single else float(rows),
        longest=math.ceil(s.seq_k / block) * block * b * 2.0 if single else 1.0,
    )


def softmax_lane_blocks(s: AttnShape, block: int) -> int:
    """BLOCK-wide steps over all rows of one head (a row visits ceil(visible keys / BLOCK)).

    The kernel's work goes by lanes, not by visible keys: a causal row of 9000 keys steps
    through two 8192-lane blocks, masked loads or not.
    """
    if s.is_dense:
        return s.seq_q * math.ceil(s.seq_k / block)
    return row_blocks(s.bands, s.seq_q, s.seq_k, block)


@functools.lru_cache(maxsize=256)
def row_blocks(bands: tuple[Band, ...], seq_q: int, seq_k: int, block: int) -> int:
    """Sum over the rows of ceil(visible keys / block) (per-row counts, vectorized)."""
    p = np.arange(seq_q, dtype=np.int64)
    visible = np.zeros(seq_q, dtype=np.int64)
    reach = seq_q + seq_k  # clips absent diagonal bounds (no overflow, same rows)
    for k in range(1, len(bands) + 1):  # inclusion-exclusion over the bands
        for combo in itertools.combinations(bands, k):
            both = functools.reduce(Band.intersect, combo)
            p_lo, p_hi, m_lo, m_hi, d_lo, d_hi = both.bounds()
            lo = np.maximum(max(m_lo, 0), p + max(d_lo, -reach))
            hi = np.minimum(min(m_hi, seq_k - 1), p + min(d_hi, reach))
            rows = (p >= p_lo) & (p <= p_hi)
            visible += (1 if k % 2 else -1) * np.where(rows, np.maximum(hi - lo + 1, 0), 0)
    return int(((visible + block - 1) // block).sum())


def softmax_path(seq: int) -> str:
    """The row softmax's compiled path for rows of `seq` keys (`kernels.triton.attn_unfused`).

    "one block": the row in one block of up to SOFTMAX_MAX_BLOCK / 2 lanes; "widest block":
    one block of SOFTMAX_MAX_BLOCK lanes (measured apart: ragged rows ran 1.8x the per-lane
    time of the 4096-lane block on the H200, kernels.calibrate.microbench_unfused); "two
    loops": longer rows, a max/sum loop then a normalize loop.
    """
    if seq > SOFTMAX_MAX_BLOCK:
        return "two loops"
    return "widest block" if 2 * seq > SOFTMAX_MAX_BLOCK else "one block"
