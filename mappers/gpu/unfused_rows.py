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
from attnsim.kernels.spec import ALIGNED_ROW_KEYS, SOFTMAX_MAX_BLOCK, AttnShape
from attnsim.mappers.gpu.assumptions import BASE_REGISTERS_PER_THREAD
from attnsim.mappers.gpu.model import (
    BlockGroup,
    KernelPlan,
    StepWork,
    Tiling,
)
from attnsim.mappers.gpu.scores import SIGMOID_ROW_OPS, ScoreCost
from attnsim.mappers.gpu.unfused_rates import OVERLAP_P

SOFTMAX_OPS = 4.0  # max, subtract, sum, normalize (+ conversions)

# The two-loop row softmax (rows over SOFTMAX_MAX_BLOCK keys) is a chain of dependent steps
# per row: loop 1 streams the row's chunks of BLOCK lanes from HBM (max and sum), loop 2
# reads them again and stores them. Compiled for sm_90, its build holds two programs per SM
# without a mask (121 registers at 8 warps) and one with the causal mask (162):
# `benchmarks/unfused_registers.py`, kernels/measurements/unfused/unfused-registers-sm90-*.
TWO_LOOP_PROGRAMS_PER_SM = {False: 2, True: 1}  # keyed by masked
# So 132-264 rows are read at once; when they fit in half the L2, loop 2's read finds its row
# there (on the H100 the 6 x 16384^2 calibration shape ran in 2.42 ms, where both reads from
# HBM would need 4.0 TB/s against its 2.9-3.0). What a row costs besides its chunks, in
# chunks: on the H200 the two-loop softmax timed alone (kernels/measurements/unfused/
# unfused-kernels-*.csv, 12K-49K keys) took a time per SM proportional to the rows' chunks
# without a mask (the least-MAPE offset, -0.1, taken as none) and to their chunks + 0.5
# with the causal mask (its one program per SM waits out each row's reductions);
# tests/unit/mappers/gpu/test_unfused_rows.py recomputes both.
TWO_LOOP_ROW_CHUNKS = {False: 0.0, True: 0.5}  # keyed by masked


def registers(elements_fp32: float, warps: int) -> int:
    """Registers per thread holding `elements_fp32` values over `warps` warps, plus the base."""
    return math.ceil(elements_fp32 / (32 * warps)) + BASE_REGISTERS_PER_THREAD


def row_kernel(
    s: AttnShape, score_elems: float, score: ScoreCost, sm_count: int, l2_bytes: int
) -> KernelPlan:
    """The unfused middle kernel: one program per row, over its visible keys in BLOCKs.

    Softmax: rows within one block in one step, longer rows a max/sum loop then a normalize
    loop (a chain of steps, `chain_bound`: its work is the rows' chunks plus
    `TWO_LOOP_ROW_CHUNKS` a row; the second read is an L2 hit while the rows read at once,
    `TWO_LOOP_PROGRAMS_PER_SM` on each of `sm_count` SMs, fit in half of `l2_bytes`).
    Sigmoid (no kernel yet): one element-wise loop (tanh on the SFU, an FMA, convert).
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
    masked = not s.is_dense
    in_flight = sm_count * TWO_LOOP_PROGRAMS_PER_SM[masked] * min(s.seq_k, mean_valid) * b
    reads = 1 if single or 2 * in_flight <= l2_bytes else 2  # loop 2's read: L2 or HBM
    chunks = lanes // block  # BLOCK-wide chunks over all rows of one head
    visible = s.seq_q * mean_valid  # visible scores of one head
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
        hbm_read_bytes=heads * score_elems * b * reads,
        hbm_write_bytes=heads * score_elems * b,
        flops=0.0,
        # one block: the lanes' loads, max, exp and store (masked lanes cost their issue), but
        # masked scalar rows in the widest block their visible lanes (`scalar_rows`); two
        # loops: the rows' visible chunks (masked lanes of a causal row load nothing) and
        # each row's own share
        work=heads * (visible if masked and scalar_rows(s.seq_k) else lanes) * b * 2.0
        if single
        else heads * (chunks + s.seq_q * TWO_LOOP_ROW_CHUNKS[masked]),
        longest=math.ceil(s.seq_k / block) * (block * b * 2.0 if single else 1.0)
        + (0.0 if single else TWO_LOOP_ROW_CHUNKS[masked]),
        chain_bound=not single,
        # masked vector rows of the widest block: the masked lanes' work has no load to wait
        # for and runs under the visible lanes' stream (`OVERLAP_P`, as between devices)
        memory_overlap_p=OVERLAP_P
        if single and masked and block == SOFTMAX_MAX_BLOCK and not scalar_rows(s.seq_k)
        else 1.0,
    )


def scalar_rows(seq: int) -> bool:
    """Whether masked rows of `seq` keys are priced by their visible lanes, not the block's.

    Rows that are no multiple of 16 keys compile with VEC = 1 (`kernels.triton.attn_unfused`):
    2-byte scalar loads and stores, 32 of each a thread in the widest block (over
    SOFTMAX_MAX_BLOCK / 2 keys), 95-96 registers for sm_90, two programs per SM where the
    vector build holds five (`benchmarks/unfused_registers.py --ragged`). On the H200 such
    causal rows took a time proportional to their visible keys, not to their count: 12 x 5624
    (the calibration's entry, 1226 us) and 16 x 7016 (`unfused_kernels_probe.py --set causal`,
    2507 us) both moved their visible scores at 0.62-0.63 TB/s (read and write); by rows the
    second would be 1.66x the first, by visible keys 2.07x, measured 2.04x. Aligned rows
    (5632 -> 7024 keys) ran 1.75x, near their rows' 1.66x, and keep the per-lane work, as do
    ragged rows of the 4096-lane block (3000 keys ran 0.91x the 4088-key entry's time a row).
    Dense ragged rows are timed in one length only (the entry), so they keep the per-lane
    work too; `unfused_kernels_probe.py --set wide` times them at 7787-7792 keys.
    """
    return seq % ALIGNED_ROW_KEYS != 0 and 2 * seq > SOFTMAX_MAX_BLOCK and seq <= SOFTMAX_MAX_BLOCK


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
