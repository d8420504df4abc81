"""The attention backward (FlashAttention-2 style) as the GPU model's kernel plans.

The kernels (`kernels.triton.attn_bwd`) run, per call:

1. a pre-pass: D = rowsum(dO * O) per query row (reads O and dO once, writes D; with
   `dq_mode` "atomic" it also zeroes the fp32 dQ buffer, row for row);
2. the dK/dV kernel, one program per (batch x head, key tile): the key tile's K and V stay
   on chip while the program loops over the query tiles that see it (causal: from the
   diagonal on), recomputing P = exp(QK^T scale - LSE) and accumulating
   dV += P^T dO and dK += dS^T Q with dS = P * (dO V^T - D). With `dq_mode` "atomic" the
   same step also computes dS K and adds it into an fp32 dQ buffer with atomics (through
   L2); that buffer is zeroed by the pre-pass and converted to the output type after;
3. with `dq_mode` "separate": a dQ kernel, one program per (batch x head, query tile),
   looping over the key tiles it sees (recompute P, dP, then dQ += dS K).

GQA: a dK/dV program walks the query tiles of every query head of its K/V head's group in
turn, so dK and dV come out summed over the group (no reduction kernel). The separate dQ
kernel swaps the tiles: it holds a block_n query tile and streams block_m key tiles.

HBM reads: each kernel's streamed operand (the query side Q, dO, LSE, D for the dK/dV kernel;
K and V for the dQ kernel) is read once while it stays in L2 for the programs that share it,
else once per wave of them (`q_refetch`; the dQ kernel: the forward's `kv_refetch`), the rule
the forward's plans use for K/V.

Every plan goes through `mappers.gpu.model.time_kernel`: with a calibration of this
kernel's steps (modes `BWD_MODES`, `kernels.calibrate.microbench_bwd`) its measured step
and fixed times are used; without, the unit model (tile matmul rates, SFU, CUDA cores, L2).

The host: one call of the launcher costs the host a measured time (`host_call_us`, keyed by
dq mode and mask, `host_keys`; measured by `kernels.calibrate.microbench_bwd.host_calls`, in
the calibration or, for a measurement file, in the same run beside it), and a call shorter
on the GPU runs at the host's speed (`mappers.gpu.model.call_time`). Without a measured
figure: one `host_launch_us` per kernel launched (the launcher's torch work unpriced).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from attnsim.einsum_ir.analysis.tiles import Band, TileCounts, classify_tiles
from attnsim.kernels.spec import (
    BWD_DIAG_LOOP,
    BWD_DP_FIRST,
    BWD_DP_FIRST_SUFFIX,
    BWD_HEAD_GROUP,
    AttnShape,
)
from attnsim.mappers.gpu.assumptions import BASE_REGISTERS_PER_THREAD
from attnsim.mappers.gpu.kernels import kv_refetch
from attnsim.mappers.gpu.model import (
    BlockGroup,
    DeviceRates,
    Dot,
    KernelPlan,
    KernelTime,
    StepWork,
    Tiling,
    call_time,
    plan_residency,
    time_kernel,
)

FAMILY = "bwd"  # the calibration's `host_call_us` key of the launcher, any mode and mask
DQ_MODES = ("atomic", "separate")
# the calibration modes of the backward's kernels (`attention_steps` / `attention_blocks`)
MODE_DKDV = "bwd-dkdv"
MODE_DKDV_ATOMIC = "bwd-dkdv-atomic"
MODE_DQ = "bwd-dq"
BWD_MODES = (MODE_DKDV, MODE_DKDV_ATOMIC, MODE_DQ)
# `microbench_bwd --spread W` entries: a dK/dV mode measured with W programs per head
SPREAD_MODE = re.compile(
    rf"(?P<mode>bwd-dkdv(?:-atomic)?(?:{re.escape(BWD_DP_FIRST_SUFFIX)})?)-w(?P<writers>\d+)"
)
# fp32 lane operations per score element of a backward step: scale-subtract LSE (FMA),
# dP - D, times P, and the two conversions (P, dS) to the matmul input type
BWD_OPS = 5.0
ROW_BLOCK = 64  # query rows per program of the pre-pass (kernels.triton.attn_bwd.PRE_BLOCK)
ELEMENTWISE_BLOCK = 1024  # elements per program of the zero-fill, conversion and GQA reduction


def transpose_bands(bands: tuple[Band, ...]) -> tuple[Band, ...]:
    """The same mask with queries and keys swapped: (p, m) visible iff (m, p) was.

    Bounds on p become bounds on m and back; the diagonal offset m - p changes sign.
    """

    def neg(x: int | None) -> int | None:
        return None if x is None else -x

    return tuple(Band(b.m_lo, b.m_hi, b.p_lo, b.p_hi, neg(b.d_hi), neg(b.d_lo)) for b in bands)


def key_tiles(s: AttnShape, block_m: int, block_n: int) -> TileCounts:
    """Per key tile of block_n keys: the query tiles (block_m rows) that see it.

    The dK/dV kernel's view: its programs are key tiles and its loop runs over query tiles,
    so the mask is classified with the ranks swapped (`full_per_query_tile` of the result
    is per *key* tile).
    """
    return classify_tiles(transpose_bands(s.bands), s.seq_k, s.seq_q, block_n, block_m)


def _registers(elements_fp32: float, warps: int) -> int:
    return -(-int(elements_fp32) // (32 * warps)) + BASE_REGISTERS_PER_THREAD


def one_loop(s: AttnShape, diag_loop: bool | None = None) -> bool:
    """Whether the dK/dV kernel masks every step of a causal call in one loop.

    `diag_loop`: the build's choice (`kernels.spec.BWD_DIAG_LOOP`, None: the kernels' own);
    builds before 2026-12-06 ran the diagonal tiles in a loop of their own (a measurement
    file says which in its `diag_loop` column). Dense calls have no diagonal.
    """
    return s.causal and not (BWD_DIAG_LOOP if diag_loop is None else diag_loop)


def launch_group(s: AttnShape, given: int | None = None) -> int:
    """Heads whose programs the kernels interleave: `given`, else the kernels' own choice.

    `kernels.triton.attn_bwd` launches causal calls with `BWD_HEAD_GROUP`, dense ones with 1
    (head-major); builds before 2026-12-06 launched every call head-major (a measurement
    file says which in its `head_group` column).
    """
    if given is not None:
        if given < 1:
            raise ValueError(f"head_group must be >= 1, got {given}")
        return given
    return BWD_HEAD_GROUP if s.causal else 1


def _per_tile_groups(
    per_tile: list[tuple[int, int]], heads: int, group: int
) -> tuple[BlockGroup, ...]:
    """Programs in launch order, the longest tiles first.

    Tile-major within groups of `group` heads (1: head-major, one head's tiles then the
    next's), as `kernels.triton.attn_bwd_kernel._launch_order` issues them. Equal tiles (no
    mask) make one group: the order does not matter.
    """
    if len(set(per_tile)) == 1:
        steps, masked = per_tile[0]
        return (BlockGroup(heads * len(per_tile), steps, masked),)
    order = sorted(per_tile, key=lambda x: -(x[0] + x[1]))
    g = group
    sizes = [min(g, heads - first) for first in range(0, heads, g)]
    return tuple(BlockGroup(n, a, m) for n in sizes for a, m in order)


def q_refetch(s: AttnShape, t: Tiling, concurrent_blocks: int, l2_bytes: int) -> int:
    """How many times the dK/dV kernel reads each query row's Q, dO, LSE and D from HBM.

    The forward's K/V rule (`mappers.gpu.kernels.kv_refetch`) with the roles swapped: the
    key-tile programs of one K/V head (adjacent in launch order) share its group's query
    rows; once when they all run together or those rows fit in half the L2 across waves,
    else once per wave of them. `concurrent_blocks` 0: once.
    """
    tiles = -(-s.seq_k // t.block_n)
    per_row = (s.head_dim + s.value_dim) * s.elem_bytes + 8
    shared = s.seq_q * s.kv_group * per_row
    if concurrent_blocks <= 0 or tiles <= concurrent_blocks or 2 * shared <= l2_bytes:
        return 1
    return -(-tiles // concurrent_blocks)


def dkdv_writers(s: AttnShape, t: Tiling) -> int:
    """Programs of one K/V head in the dK/dV kernel: they share its query side and dQ rows."""
    return -(-s.seq_k // t.block_n)


def dp_first_build(dp_first: bool | None = None) -> bool:
    """Whether the dK/dV kernel priced issues dP first (`kernels.spec.BWD_DP_FIRST`).

    `dp_first`: the build's choice (None: the kernels' own; a measurement file's `dp_first`
    column says which build a row ran, files without it ran dP after dV).
    """
    return BWD_DP_FIRST if dp_first is None else dp_first


def dkdv_base_mode(rates: DeviceRates, atomic: bool, head_dim: int, dp_first: bool) -> str:
    """The one-head dK/dV mode of the build: `...-dpfirst` where the calibration has it.

    A calibration without entries of the dP-first build for this head dim (every one
    measured before 2026-12-07, the datasheet's) prices it with the earlier build's figures
    (the dK/dV plan's `mode` says which were read; the mapper's Result says so).
    """
    mode = MODE_DKDV_ATOMIC if atomic else MODE_DKDV
    cal = rates.arch.calibration
    if not dp_first or cal is None:
        return mode
    own = mode + BWD_DP_FIRST_SUFFIX
    if any(p.mode == own and p.head_dim == head_dim for p in cal.attention_steps):
        return own
    return mode


def spread_mode(
    rates: DeviceRates, atomic: bool, head_dim: int, writers: int, dp_first: bool = False
) -> str:
    """The dK/dV calibration mode measured with programs per head nearest `writers`.

    The one-head entries (`bwd-dkdv[-atomic]`) ran a wave of programs on one head (SMs x k
    of them share its query tiles and, atomic, its dQ rows); `--spread W` entries
    (`...-wW`) ran W per head, as a call of W key tiles does. Nearest in log ratio, the
    one-head entries counted as one wave of the SMs; the mode itself when nothing else is
    measured for this head dim. `dp_first`: the build (`dkdv_base_mode`).
    """
    mode = dkdv_base_mode(rates, atomic, head_dim, dp_first)
    cal = rates.arch.calibration
    if cal is None:
        return mode
    choices = {mode: rates.arch.sm_count}
    for p in cal.attention_blocks:
        m = SPREAD_MODE.fullmatch(p.mode)
        if m and m["mode"] == mode and p.head_dim == head_dim:
            choices[p.mode] = int(m["writers"])
    return min(choices, key=lambda k: (abs(math.log(choices[k] / max(1, writers))), k))


def dkdv_plan(
    s: AttnShape,
    t: Tiling,
    atomic: bool,
    refetch: int = 1,
    mode: str = "",
    group: int = 1,
    mask_all: bool = False,
) -> KernelPlan:
    """The dK/dV kernel: program = (key tile, K/V head), step = one query tile of one head.

    A program walks the query tiles that see its key tile for each query head of its group.
    `refetch`: reads of the query side from HBM (`q_refetch`). `mode`: the calibration mode
    whose figures price it (`spread_mode`; default the one-head entries of its dQ mode).
    `group`: the launch order's head group (`launch_group`). `mask_all`: every step is
    masked (`one_loop`), not only those the diagonal crosses.
    """
    bm, bn, d, f, b = t.block_m, t.block_n, s.head_dim, s.value_dim, s.elem_bytes
    tiles = key_tiles(s, bm, bn)
    g = s.kv_group
    pairs = zip(tiles.full_per_query_tile, tiles.partial_per_query_tile, strict=True)
    per_tile = [(0, g * (a + m)) if mask_all else (g * a, g * m) for a, m in pairs]
    dots = [
        Dot(2.0 * bn * bm * d, bn, bm, d),  # S^T = K Q^T
        Dot(2.0 * bn * bm * f, bn, bm, f),  # dP^T = V dO^T
        Dot(2.0 * bn * bm * f, bn, f, bm),  # dV += P^T dO
        Dot(2.0 * bn * bm * d, bn, d, bm),  # dK += dS^T Q
    ]
    loads = bm * (d + f) * b + 2 * bm * 4.0  # Q, dO, LSE and D rows
    if atomic:
        dots.append(Dot(2.0 * bm * bn * d, bm, d, bn))  # dQ part = dS K
        loads += 2 * bm * d * 4.0  # fp32 atomic add: read-modify-write in L2
    step = StepWork(tuple(dots), bm * bn, BWD_OPS * bm * bn, loads)
    masked = StepWork(step.dots, step.exp2, step.fp32_ops + 2.0 * bm * bn, step.load_bytes)
    fixed = StepWork((), 0.0, bn * (d + f), bn * (d + f) * b)
    heads = s.batch * s.heads
    visits = sum(a + m for a, m in per_tile)
    kv_heads = s.kv_heads
    reads = kv_heads * s.seq_k * (d + f) * b + refetch * heads * s.seq_q * ((d + f) * b + 8.0)
    writes = kv_heads * s.seq_k * (d + f) * float(b)
    if atomic:
        writes += heads * s.seq_q * d * 4.0  # the fp32 dQ buffer leaves L2 once
    stages = max(t.num_stages - 1, 1)
    smem = b * (bn * (d + f) + stages * bm * (d + f))
    acc = bn * (d + f) + 2 * bm * bn  # dK, dV accumulators, P and dS
    return KernelPlan(
        name="dkdv",
        tiling=t,
        smem_bytes=smem,
        registers_per_thread=_registers(acc, t.num_warps),
        step=step,
        masked_step=masked,
        fixed=fixed,
        round_trips=2,
        groups=_per_tile_groups(per_tile, kv_heads, group),
        hbm_read_bytes=reads,
        hbm_write_bytes=writes,
        flops=sum(x.flops for x in dots) * kv_heads * visits,
        mode=mode or (MODE_DKDV_ATOMIC if atomic else MODE_DKDV),
        head_dim=d,
    )


def dq_plan(s: AttnShape, t: Tiling, refetch: int = 1, group: int = 1) -> KernelPlan:
    """The separate dQ kernel: program = query tile, step = one key tile.

    `t` is the call's tiling; this kernel swaps it (holds a block_n query tile, streams
    block_m key tiles), and the plan carries the swapped tiling. `refetch`: reads of K and V
    from HBM (`kv_refetch` at the swapped tiling). `group`: the launch order's head group.
    """
    t = Tiling(t.block_n, t.block_m, t.num_warps, t.num_stages)
    bm, bn, d, f, b = t.block_m, t.block_n, s.head_dim, s.value_dim, s.elem_bytes
    tiles = classify_tiles(s.bands, -(-s.seq_q // bm) * bm, s.seq_k, bm, bn)
    per_tile = list(zip(tiles.full_per_query_tile, tiles.partial_per_query_tile, strict=True))
    dots = (
        Dot(2.0 * bm * bn * d, bm, bn, d),  # S = Q K^T
        Dot(2.0 * bm * bn * f, bm, bn, f),  # dP = dO V^T
        Dot(2.0 * bm * bn * d, bm, d, bn),  # dQ += dS K
    )
    step = StepWork(dots, bm * bn, BWD_OPS * bm * bn, bn * (d + f) * b)
    masked = StepWork(dots, step.exp2, step.fp32_ops + 2.0 * bm * bn, step.load_bytes)
    fixed = StepWork((), 0.0, bm * d, bm * (d + f) * b + 8.0 * bm)
    heads = s.batch * s.heads
    visits = sum(a + m for a, m in per_tile)
    reads = heads * s.seq_q * ((d + f) * b + 8.0) + refetch * s.kv_heads * s.seq_k * (d + f) * b
    stages = max(t.num_stages - 1, 1)
    return KernelPlan(
        name="dq",
        tiling=t,
        smem_bytes=b * (bm * (d + f) + stages * bn * (d + f)),
        registers_per_thread=_registers(bm * d + 2 * bm * bn, t.num_warps),
        step=step,
        masked_step=masked,
        fixed=fixed,
        round_trips=2,
        groups=_per_tile_groups(per_tile, heads, group),
        hbm_read_bytes=reads,
        hbm_write_bytes=heads * s.seq_q * d * float(b),
        flops=sum(x.flops for x in dots) * heads * visits,
        mode=MODE_DQ,
        head_dim=d,
    )


def _elementwise_plan(
    name: str, rows: int, row_work: StepWork, reads: float, writes: float, per_block: int
) -> KernelPlan:
    """A memory-bound kernel over `rows` items, `per_block` per program (one step each)."""
    blocks = max(1, -(-rows // per_block))
    return KernelPlan(
        name=name,
        tiling=Tiling(per_block, 1, 4, 1),
        smem_bytes=0,
        registers_per_thread=32,
        step=row_work,
        masked_step=row_work,
        fixed=StepWork(),
        round_trips=2,
        groups=(BlockGroup(blocks, 1, 0),),
        hbm_read_bytes=reads,
        hbm_write_bytes=writes,
        flops=0.0,
    )


def prepass_plan(s: AttnShape, zero_dq: bool = False) -> KernelPlan:
    """D = rowsum(dO * O): reads O and dO, writes one fp32 word per query row.

    `zero_dq` (atomic mode): also writes the row's fp32 dQ, zeros (head_dim words).
    """
    rows = s.batch * s.heads * s.seq_q
    f, b = s.value_dim, s.elem_bytes
    zeros = 4.0 * s.head_dim if zero_dq else 0.0  # bytes per row
    work = StepWork((), 0.0, 2.0 * ROW_BLOCK * f, (2.0 * f * b + zeros) * ROW_BLOCK)
    writes = (4.0 + zeros) * rows
    return _elementwise_plan("prepass", rows, work, 2.0 * rows * f * b, writes, ROW_BLOCK)


@dataclass(frozen=True, slots=True)
class BwdTime:
    """Modelled backward call: total seconds, its kernels, and whether the host bounds it.

    `host_s`: the launcher's host seconds per call, from `host_key` of the calibration's
    `host_call_us` ("" when none is measured: one host launch per kernel, `host_s` their sum).
    """

    time_s: float
    kernels: tuple[KernelTime, ...]
    plans: tuple[KernelPlan, ...]
    problem: str
    host_bound: bool
    host_s: float = 0.0
    host_key: str = ""
    head_group: int = 1  # the launch order's head group (`launch_group`)
    one_loop: bool = False  # the causal dK/dV kernel masks every step (`one_loop`)
    dp_first: bool = False  # the dK/dV kernel's build (`dp_first_build`)


def host_keys(dq_mode: str, causal: bool) -> tuple[str, ...]:
    """The `host_call_us` keys of a call, most specific first.

    `kernels.calibrate.microbench_bwd.host_key` writes them: `bwd-<dq_mode>[-causal]`, then
    the family's `bwd` for any call.
    """
    mode = f"{FAMILY}-{dq_mode}"
    return ((f"{mode}-causal",) if causal else ()) + (mode, FAMILY)


def host_key(rates: DeviceRates, dq_mode: str, causal: bool) -> str:
    """The most specific of `host_keys` the calibration measured, "" when none."""
    cal = rates.arch.calibration
    if cal is None:
        return ""
    return next((k for k in host_keys(dq_mode, causal) if cal.host_call(k) is not None), "")


def bwd_plans(
    s: AttnShape,
    t: Tiling,
    dq_mode: str,
    resident: tuple[int, int] = (0, 0),
    l2_bytes: int = 0,
    dkdv_mode: str = "",
    group: int | None = None,
    diag_loop: bool | None = None,
) -> tuple[KernelPlan, ...]:
    """Every kernel one backward call launches, in order.

    `resident`: programs of the dK/dV kernel and of the dQ kernel the GPU holds at once,
    with `l2_bytes` for the streamed operands' HBM re-reads (0: each read once).
    `dkdv_mode`: the dK/dV kernel's calibration mode (`spread_mode`). `group`: the launch
    order's head group (`launch_group`; None: the kernels' own). `diag_loop`: the causal
    dK/dV kernel's loop structure (`one_loop`; None: the kernels' own).
    """
    if dq_mode not in DQ_MODES:
        trial = " (the kernels' 'tma' mode is a trial the model does not price)"
        raise ValueError(
            f"dq_mode must be one of {', '.join(DQ_MODES)}, got {dq_mode!r}"
            + (trial if dq_mode == "tma" else "")
        )
    heads = s.batch * s.heads
    d, b = s.head_dim, s.elem_bytes
    plans = [prepass_plan(s, zero_dq=dq_mode == "atomic")]
    dq_elems = heads * s.seq_q * d
    # causal: `launch_group` heads' programs interleave, so each head has 1/g of the resident
    # programs and of the L2
    g = launch_group(s, group)
    refetch = q_refetch(s, t, max(resident[0] // g, 1) if resident[0] else 0, l2_bytes // g)
    mask_all = one_loop(s, diag_loop)
    plans.append(dkdv_plan(s, t, dq_mode == "atomic", refetch, dkdv_mode, g, mask_all))
    if dq_mode == "atomic":
        cast = StepWork((), 0.0, ELEMENTWISE_BLOCK, (4.0 + b) * ELEMENTWISE_BLOCK)
        plans.append(
            _elementwise_plan(
                "dq-cast", dq_elems, cast, 4.0 * dq_elems, float(b) * dq_elems, ELEMENTWISE_BLOCK
            )
        )
    else:
        swapped = Tiling(t.block_n, t.block_m, t.num_warps, t.num_stages)
        concurrent = max(resident[1] // g, 1)
        again = kv_refetch(s, swapped, concurrent, l2_bytes // g) if resident[1] else 1
        plans.append(dq_plan(s, t, again, g))
    return tuple(plans)


def time_bwd(
    s: AttnShape,
    t: Tiling,
    dq_mode: str,
    rates: DeviceRates,
    head_group: int | None = None,
    diag_loop: bool | None = None,
    dp_first: bool | None = None,
) -> BwdTime:
    """Model one backward call: its kernels in order, each after the previous one.

    Each kernel's residency sets how many of its programs share L2 (`bwd_plans`).
    `head_group`: the launch order's head group (None: the kernels' own, `launch_group`).
    `diag_loop`: the causal dK/dV kernel's loop structure (None: the kernels' own, `one_loop`).
    `dp_first`: the dK/dV kernel's step order (None: the kernels' own, `dp_first_build`).
    """
    arch = rates.arch
    first_dp = dp_first_build(dp_first)
    writers = dkdv_writers(s, t)
    spread = spread_mode(rates, dq_mode == "atomic", s.head_dim, writers, first_dp)
    first = bwd_plans(s, t, dq_mode, dkdv_mode=spread, group=head_group, diag_loop=diag_loop)
    resident = [plan_residency(arch, p).blocks_per_sm * arch.sm_count for p in first[1:]]
    both = (resident[0], resident[1])
    plans = bwd_plans(s, t, dq_mode, both, arch.l2_bytes, spread, head_group, diag_loop)
    kernels = tuple(time_kernel(p, rates) for p in plans)
    problem = next(
        (f"{p.name}: {r.problem}" for p in plans if (r := plan_residency(rates.arch, p)).problem),
        "",
    )
    if not s.is_dense and (t.block_m % t.block_n and t.block_n % t.block_m):
        problem = problem or "masked backward tiles need block_m and block_n to divide one another"
    key = host_key(rates, dq_mode, s.causal)
    total, host_bound = call_time(kernels, rates, key or FAMILY)
    host_s = rates.host_call_s(key or FAMILY, len(kernels))
    group = launch_group(s, head_group)
    return BwdTime(
        total, kernels, plans, problem, host_bound, host_s, key, group, one_loop(s, diag_loop),
        first_dp,
    )  # fmt: skip
