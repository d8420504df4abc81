"""What each Triton attention kernel family does, as `KernelPlan`s for the GPU model.

Families are `kernels.spec.FAMILIES` (one program per query tile x batch*head, launch order
query tile fastest): `1pass` (online softmax, FlashAttention-2 style; with the tiling's schedule
"pingpong", the Hopper kernel of `kernels.gluon.attn_pingpong`, mode `pingpong`: its own measured
tile-chain step, per-block fixed time and occupancy), `2pass` (a statistics pass
writing fp32 row max and sum, then an output pass), `unfused` (QK^T tile kernel writing the
scores to HBM in the input dtype, an in-place row softmax, and a P.V kernel).

The mask is the shape's bands (`AttnShape.bands`; the Triton kernels implement none and
top-left causal, other masks are modelled kernels): each query tile visits the key tiles
`einsum_ir.analysis.tiles` classifies for the tiling (`kernel_tiles`): full tiles run
unmasked steps, partial tiles (a band edge, the ragged last key tile) masked steps, empty
tiles are never loaded. The score function (`ScoreCost`) adds or removes per-element work.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from attnsim.archs.calibration import Calibration, UnfusedPoint
from attnsim.einsum_ir.analysis.tiles import Band, TileCounts, classify_tiles
from attnsim.kernels.spec import (
    ALIGNED_ROW_KEYS,
    PINGPONG_BLOCK,
    PINGPONG_BLOCK_N,
    PINGPONG_HEAD_DIMS,
    PINGPONG_REGISTERS,
    PINGPONG_STAGES,
    SCHEDULES,
    AttnShape,
    kernel_window,
    smem_bytes_1pass,
    smem_bytes_pingpong,
)
from attnsim.kernels.spec import FAMILY_NAMES as FAMILIES
from attnsim.mappers.gpu.model import (
    BlockGroup,
    Dot,
    KernelPlan,
    StepWork,
    Tiling,
)
from attnsim.mappers.gpu.scores import (
    SIGMOID_OPS,
    SOFTMAX,
    ScoreCost,
)
from attnsim.mappers.gpu.unfused_rates import (
    TILE_KERNELS,
    fit_program_bound,
    fit_rates,
    rest_of,
    same_alignment,
    split_entry,
)
from attnsim.mappers.gpu.unfused_rows import registers as _registers
from attnsim.mappers.gpu.unfused_rows import row_kernel, softmax_path
from attnsim.mappers.gpu.unfused_waves import COMPILED_PROGRAMS_PER_SM, net_rest, wave_share
from attnsim.mappers.gpu.window_loops import (
    WINDOW_MODE,
    loops_by_profile,
    window_loops,
    window_steps,
)

# fp32 lane operations per score element (each FMA, max, add, compare, select = 1; a packed
# conversion of two elements = 0.5). Row reductions' shuffles are not counted.
ONLINE_OPS = 3.5  # running max, scale-subtract (FMA), row sum, convert P
STATS_OPS = 3.0  # running max, scale-subtract, row sum
OUTPUT_OPS = 2.5  # scale-subtract, multiply by 1/sum, convert P
MASK_OPS = 4.0  # index compare(s), and, select, separate scale multiply
MASK_BOUND_OPS = 2.0  # each further bound of the mask (window, sinks): a compare and an and
ONLINE_MODES = ("online", "pingpong")  # the 1-pass kernels' tile chains
# the neighborhood layout's window test (kernels.calibrate.microbench_neighborhood)
NEIGHBORHOOD_TEST_MODE = "neighborhood"


def kernel_tiles(s: AttnShape, block_m: int, block_n: int) -> TileCounts:
    """The tiles as a kernel visits them: query tiles padded to block_m rows.

    A kernel bounds its key loop by its query tile's rows including the padded rows of a
    ragged last tile (as FlashAttention computes its key-block range), so the last query
    tile is classified as if seq_q were a multiple of block_m.
    """
    if s.layout is not None:  # block-sparse: the layout's own tiles, at its tile sizes
        if (block_m, block_n) != (s.layout.block_q, s.layout.block_k):
            raise ValueError(
                f"a {s.layout.block_q}x{s.layout.block_k} block-sparse layout runs only with "
                f"block_m={s.layout.block_q}, block_n={s.layout.block_k} (got {block_m}x{block_n})"
            )
        return s.layout.counts()
    padded = -(-s.seq_q // block_m) * block_m
    return classify_tiles(s.bands, padded, s.seq_k, block_m, block_n)


def _query_tiles(s: AttnShape, t: Tiling) -> list[tuple[int, int]]:
    """Per query tile i: (unmasked key tiles, masked key tiles), as the kernel runs them."""
    tiles = kernel_tiles(s, t.block_m, t.block_n)
    return list(zip(tiles.full_per_query_tile, tiles.partial_per_query_tile, strict=True))


def _kv_bytes(s: AttnShape, refetch: int) -> tuple[float, float]:
    """HBM bytes of K and V: every key, once per K/V head (GQA), `refetch` times.

    Every key counts even when a mask hides it from every query (top-left causal with
    P < M, keys >= P): K and V are charged as compulsory inputs (the mapper contract's
    lower bound), an overcount of HBM reads for such masks.
    """
    per_elem = s.kv_heads * s.seq_k * s.elem_bytes * refetch
    return float(per_elem * s.head_dim), float(per_elem * s.value_dim)


def mask_ops(s: AttnShape) -> float:
    """fp32 lane operations per element of a masked (partial) tile.

    A block-sparse layout's partial tiles: the key bound, the causal compare and, with
    segments, the key's segment id against the query's (one load and a compare); a
    neighborhood window's four compares of the key's coordinates (`window_bounds`).
    """
    if s.layout is not None:
        lay = s.layout
        bounds = 1 + int(lay.causal) + 2 * int(lay.segments) + lay.window_bounds
        return MASK_OPS + MASK_BOUND_OPS * (bounds - 1)
    bounds = sum(x is not None for b in s.bands for x in (b.p_lo, b.p_hi, b.m_lo, b.m_hi))
    bounds += sum(x is not None for b in s.bands for x in (b.d_lo, b.d_hi))
    return MASK_OPS + MASK_BOUND_OPS * max(0, bounds - 1)


def _groups(
    s: AttnShape, per_tile: list[tuple[int, int]], longest_first: bool = False
) -> tuple[BlockGroup, ...]:
    """Blocks in launch order: query tile fastest, then batch*head.

    `longest_first`: the causal fused kernels map program i to query tile n - 1 - i
    (kernels.triton.attn_fwd / attn_2pass), so each head's longest tiles are dispatched first; the
    modelled kernels of other masks do the same.
    """
    heads = s.batch * s.heads
    if len(set(per_tile)) == 1:
        steps, masked = per_tile[0]
        return (BlockGroup(heads * len(per_tile), steps, masked),)
    order = per_tile[::-1] if longest_first else per_tile
    one_head = tuple(BlockGroup(1, a, b) for a, b in order)
    return one_head * heads


def _longest_first(s: AttnShape) -> bool:
    """Whether the fused kernels launch each head's query tiles last first.

    Masked shapes do; a block-sparse layout only when its partial tiles are causal.
    """
    return s.layout.causal if s.layout is not None else not s.is_dense


def key_span(s: AttnShape, rows: int) -> int:
    """Most keys that `rows` consecutive query rows of one head can see together.

    A band bounded on the diagonal offset m - p (a window) reaches `rows` plus its width; one
    bounded on m (sinks, a prefix) its m range; any other band every key. Capped at M.
    """
    span = 0
    for band in s.bands:
        width = []
        if band.d_lo is not None and band.d_hi is not None:
            width.append(rows + band.d_hi - band.d_lo)
        if band.m_lo is not None or band.m_hi is not None:
            lo = 0 if band.m_lo is None else max(band.m_lo, 0)
            hi = s.seq_k - 1 if band.m_hi is None else min(band.m_hi, s.seq_k - 1)
            width.append(max(hi - lo + 1, 0))
        span += min(width) if width else s.seq_k
    return min(span, s.seq_k)


def kv_refetch(s: AttnShape, t: Tiling, concurrent_blocks: int, l2_bytes: int) -> int:
    """How many times each K/V head's K/V is read from HBM.

    Once when all its query tiles (of its kv_group query heads, adjacent in launch order) run
    together, when its K/V fits in half the L2 across waves, or when the keys one wave of
    consecutive query tiles can see (a sliding window's span, `key_span`) fit in half the L2:
    the next wave then finds the keys it shares with this one in L2 and reads only new ones.
    Otherwise once per wave of them.
    """
    tiles = math.ceil(s.seq_q / t.block_m) * s.kv_group
    per_key = (s.head_dim + s.value_dim) * s.elem_bytes
    kv_head = s.seq_k * per_key
    if tiles <= concurrent_blocks or 2 * kv_head <= l2_bytes:
        return 1
    wave_rows = max(concurrent_blocks // s.kv_group, 1) * t.block_m
    if 2 * key_span(s, wave_rows) * per_key <= l2_bytes:
        return 1
    return math.ceil(tiles / concurrent_blocks)


def _tiles(s: AttnShape, t: Tiling, mode: str) -> str:
    """How the kernel reaches its tiles on sm_90: "host" or "device"-built descriptors.

    As `kernels.triton.attn_fwd._tile_mode` picks them for the usual contiguous (B, H, S, D) layout:
    the 1-pass kernel through host-built descriptors when seq_q is a multiple of BLOCK_M,
    otherwise (and the 2-pass kernel always) through descriptors built in the kernel.
    """
    return "host" if mode in ONLINE_MODES and s.seq_q % t.block_m == 0 else "device"


def schedule_problem(
    family: str,
    s: AttnShape,
    t: Tiling,
    compute_capability: float | None,
    score: ScoreCost = SOFTMAX,
) -> str:
    """Why `family` cannot run `t`'s schedule for shape `s` and `score` ("" when it can).

    The ping-pong kernel runs dense or top-left causal attention, softmax or sigmoid: no
    window, sinks or other mask, no block-sparse layout, no softcap or position bias.
    """
    if t.schedule == "plain":
        return ""
    if t.schedule not in SCHEDULES:
        return f"unknown schedule {t.schedule!r} (one of {', '.join(SCHEDULES)})"
    if family != "1pass":
        return f"schedule {t.schedule!r} is a 1-pass kernel"
    if compute_capability is None or int(compute_capability) != 9:
        cc = "not given" if compute_capability is None else f"{compute_capability:g}"
        return f"schedule 'pingpong' needs an sm_90 (Hopper) GPU (compute_capability {cc})"
    if s.dtype not in ("fp16", "bf16"):
        return f"schedule 'pingpong' needs fp16/bf16, got {s.dtype}"
    if s.head_dim != s.value_dim or s.head_dim not in PINGPONG_HEAD_DIMS:
        return f"schedule 'pingpong' needs head dims E = F in {PINGPONG_HEAD_DIMS}"
    if (t.block_m, t.num_warps) != PINGPONG_BLOCK:
        bm, w = PINGPONG_BLOCK
        return f"schedule 'pingpong' needs block_m {bm} with num_warps {w}"
    if t.block_n not in PINGPONG_BLOCK_N or t.num_stages not in PINGPONG_STAGES:
        return (
            f"schedule 'pingpong' needs block_n in {PINGPONG_BLOCK_N} and num_stages in "
            f"{PINGPONG_STAGES}"
        )
    if s.seq_q % t.block_m:
        return f"schedule 'pingpong' needs seq_q (P) a multiple of {t.block_m}"
    if s.layout is not None or not (s.is_dense or s.causal):
        return (
            "schedule 'pingpong' runs dense or causal attention only (no window, sinks, "
            "layout or other mask: the plain kernel does)"
        )
    if score.softcap or score.position_bias:
        return "schedule 'pingpong' has no softcap or position bias (the plain kernel does)"
    return ""


def _fused(
    s: AttnShape, t: Tiling, name: str, mode: str, refetch: int, score: ScoreCost = SOFTMAX
) -> KernelPlan:
    """A fused kernel over key tiles: mode `online` (1-pass), `stats` or `output` (2-pass).

    `score`: sigmoid (online only) replaces the running max, sum and rescale; modifiers add
    their per-score work to every step (and, as `added`, to a measured tile-chain step).
    """
    bm, bn, d, f, b = t.block_m, t.block_n, s.head_dim, s.value_dim, s.elem_bytes
    tiles = _query_tiles(s, t)
    qk = Dot(2.0 * bm * bn * d, bm, bn, d)
    pv = Dot(2.0 * bm * bn * f, bm, f, bn)
    heads = s.batch * s.heads
    q_bytes = heads * s.seq_q * d * b
    o_bytes = heads * s.seq_q * f * b
    stats_bytes = heads * s.seq_q * 2 * 4.0
    k_bytes, v_bytes = _kv_bytes(s, refetch)
    buffers = max(t.num_stages - 1, 1)
    if mode == "stats":
        step = StepWork((qk,), bm * bn + bm, STATS_OPS * bm * bn + 2 * bm, bn * d * b)
        fixed = StepWork((), 0.0, 2.0 * bm, bm * d * b + 2 * bm * 4)
        smem = b * (bm * d + buffers * bn * d)
        regs = _registers(bm * bn, t.num_warps)
        reads, writes = float(q_bytes + k_bytes) + score.param_bytes, stats_bytes
    else:
        online = mode in ONLINE_MODES
        ops = ONLINE_OPS * bm * bn + bm * f + 2 * bm if online else OUTPUT_OPS * bm * bn
        exps = bm * bn + (bm if online else 0)
        step = StepWork((qk, pv), exps, ops, bn * (d + f) * b)
        stats_in = 2 * bm * 4 if mode == "output" else 0
        fixed = StepWork((), 0.0, 2.0 * bm * f, bm * (d + f) * b + stats_in)
        smem = smem_bytes_1pass(bm, bn, d, t.num_stages, b, f)
        regs = _registers(bm * f + bm * bn, t.num_warps)
        if mode == "pingpong":  # Q, every K/V slot, one mbarrier per slot and Q's
            smem = smem_bytes_pingpong(bm, bn, d, t.num_stages, b, f)
            regs = PINGPONG_REGISTERS
        reads = q_bytes + k_bytes + v_bytes + (stats_bytes if mode == "output" else 0)
        reads += score.param_bytes
        writes = float(o_bytes)
    softmax_step = step  # what the Triton kernels run (and the calibration measured)
    if score.sigmoid:  # no running max, row sum, per-row exp2 or accumulator rescale
        step = replace(step, exp2=bm * bn, fp32_ops=SIGMOID_OPS * bm * bn)
    extra = score.modifier_work(bm * bn)
    step = replace(step, exp2=step.exp2 + extra.exp2, fp32_ops=step.fp32_ops + extra.fp32_ops)
    # a measured tile-chain step is the kernels' softmax: add what this score function changes
    added = StepWork((), step.exp2 - softmax_step.exp2, step.fp32_ops - softmax_step.fp32_ops, 0.0)
    masked = replace(step, fp32_ops=step.fp32_ops + mask_ops(s) * bm * bn)
    flops = sum(x.flops for x in step.dots) * heads * sum(a + m for a, m in tiles)
    plan = KernelPlan(
        name=name,
        tiling=t,
        smem_bytes=smem,
        registers_per_thread=regs,
        step=step,
        masked_step=masked,
        fixed=fixed,
        round_trips=2,
        groups=_groups(s, tiles, longest_first=_longest_first(s)),
        hbm_read_bytes=reads,
        hbm_write_bytes=writes,
        flops=flops,
        mode=mode,
        head_dim=d,
        tiles=_tiles(s, t, mode),
        added=added,
        q_tiles=-(-s.seq_q // bm),
        full_q_tiles=s.seq_q % bm == 0,
    )
    if mode == "pingpong":  # its sigmoid's step measured against its softmax where calibrated
        return replace(plan, scores=score.calibrated_modes)
    return replace(plan, **_plain_kernel_parts(s, t, score)) if mode == "online" else plan


def _plain_kernel_parts(s: AttnShape, t: Tiling, score: ScoreCost) -> dict[str, Any]:
    """What the plain 1-pass kernel runs that has calibration modes of its own.

    Its score functions (`scores`) and, under its sliding window, the window's masked step
    and key loops.
    """
    parts: dict[str, Any] = {"scores": score.calibrated_modes}
    if s.layout is not None:  # full tiles in one key loop, partial ones in a second
        per_tile = list(zip(s.layout.full, s.layout.partial, strict=True))
        loops = [int(a > 0) + int(m > 0) for a, m in per_tile]
        parts.update(loops=loops_by_profile(per_tile, loops), loop_mode=WINDOW_MODE)
        if s.layout.window_bounds:  # a neighborhood's window test (measured when calibrated)
            parts["test_mode"] = NEIGHBORHOOD_TEST_MODE
    window = kernel_window(s.bands) if not s.is_dense else None
    if window is not None:  # the kernel's own loops: sink tiles run masked even when full
        sizes = (s.seq_q, s.seq_k, t.block_m, t.block_n, *window)
        steps, loops = window_steps(*sizes), window_loops(*sizes)
        parts.update(
            masked_mode=WINDOW_MODE,
            loops=loops_by_profile(steps, loops),
            groups=_groups(s, steps, longest_first=True),
        )
    return parts


def _visited(tiles: TileCounts) -> list[int]:
    """Visited (full or partial) key tiles per query tile."""
    pairs = zip(tiles.full_per_query_tile, tiles.partial_per_query_tile, strict=True)
    return [a + m for a, m in pairs]


def _score_tiles(s: AttnShape, t: Tiling) -> tuple[int, float]:
    """(score tiles the QK^T kernel computes, score elements it writes) of one head.

    Per query tile: its visited key tiles (full or partial), each written for the tile's
    real rows and the tile's real keys (the ragged last key tile is narrower).
    """
    bm, bn = t.block_m, t.block_n
    tiles = kernel_tiles(s, bm, bn)
    visited = _visited(tiles)
    ragged = tiles.key_tiles * bn - s.seq_k  # padded keys of the last key tile
    last = [0] * len(visited)
    if ragged:  # whether each query tile visits the last key tile
        padded = tiles.query_tiles * bm
        only_last = tuple(b.intersect(Band(m_lo=(tiles.key_tiles - 1) * bn)) for b in s.bands)
        end = classify_tiles(only_last, padded, s.seq_k, bm, bn)
        last = _visited(end)
    score_elems = 0.0
    for i, (cols, has_last) in enumerate(zip(visited, last, strict=True)):
        score_elems += min(bm, s.seq_q - i * bm) * (cols * bn - ragged * has_last)
    return sum(visited), score_elems


def _unfused(
    s: AttnShape, t: Tiling, sm_count: int, l2_bytes: int, score: ScoreCost = SOFTMAX
) -> tuple[KernelPlan, ...]:
    """QK^T (score modifiers in its epilogue), softmax (or sigmoid) over rows, then P.V.

    `sm_count` and `l2_bytes`: whether the two-loop softmax's rows stay in L2 (`row_kernel`).
    """
    bm, bn, d, f, b = t.block_m, t.block_n, s.head_dim, s.value_dim, s.elem_bytes
    heads = s.batch * s.heads
    computed, score_elems = _score_tiles(s, t)
    k_bytes, v_bytes = _kv_bytes(s, 1)
    qk_dot = Dot(2.0 * bm * bn * d, bm, bn, d)
    extra = score.modifier_work(bm * bn)  # per score tile
    qk = KernelPlan(
        name="qk",
        tiling=Tiling(bm, bn, t.num_warps, 1),
        smem_bytes=b * (bm + bn) * d,
        registers_per_thread=_registers(bm * bn, t.num_warps),
        step=StepWork((qk_dot,), extra.exp2, 1.5 * bm * bn + extra.fp32_ops, (bm + bn) * d * b),
        masked_step=StepWork(),
        fixed=StepWork((), 0.0, 0.0, bm * bn * b),
        round_trips=2,
        groups=(BlockGroup(heads * computed, 1, 0),),
        hbm_read_bytes=heads * s.seq_q * d * b + k_bytes + score.param_bytes,
        hbm_write_bytes=heads * score_elems * b,
        flops=qk_dot.flops * heads * computed,
        work=float(heads * computed),
        longest=1.0,
        added=extra,
    )
    middle = row_kernel(s, score_elems, score, sm_count, l2_bytes)
    tiles = _query_tiles(s, t)
    pv_dot = Dot(2.0 * bm * bn * f, bm, f, bn)
    pv_step = StepWork((pv_dot,), 0.0, 3.5 * bm * bn, bm * bn * b + bn * f * b)
    pv = KernelPlan(
        name="pv",
        tiling=t,
        smem_bytes=b * max(t.num_stages - 1, 1) * (bm * bn + bn * f),
        registers_per_thread=_registers(bm * f + bm * bn / 2, t.num_warps),
        step=StepWork(),
        masked_step=pv_step,
        fixed=StepWork((), 0.0, bm * f, bm * f * b),
        round_trips=2,
        groups=_groups(s, [(0, a + m) for a, m in tiles]),
        hbm_read_bytes=heads * score_elems * b + v_bytes,
        hbm_write_bytes=heads * s.seq_q * f * b,
        flops=pv_dot.flops * heads * sum(a + m for a, m in tiles),
        work=float(heads * sum(a + m for a, m in tiles)),
        longest=float(max(a + m for a, m in tiles)),
    )
    return qk, middle, pv


_ROWS = {True: "aligned rows (seq % 16 == 0)", False: "ragged rows (seq % 16 != 0)"}


def _with_measured(
    plans: tuple[KernelPlan, ...],
    s: AttnShape,
    t: Tiling,
    cal: Calibration,
    sm_count: int,
    l2_bytes: int,
    latency_s: float,
) -> tuple[KernelPlan, ...]:
    """Attach each unfused kernel's measured rate (the entry nearest this tiling).

    An entry's own shape is planned with the same code, so its work and bytes are counted
    the same way. Its time splits into the memory part (its HBM bytes at the bandwidth the
    device had in that calibration run) and the rest (arithmetic, latency, store issue):
    seconds of the rest per unit of work (from the entry with the most work) stay a property
    of the kernel, while the memory part is recomputed from the planned bytes at the modelled
    device's bandwidth. The softmax takes the rate of an entry on its own path (`_softmax_path`:
    rows in one block, in the widest block, or the two-loop path for rows longer than
    SOFTMAX_MAX_BLOCK) when there is one (the widest block falls back to the one-block entries).

    Entries of the same alignment class come first: a seq_k that is no multiple of 16 makes
    Triton compile the kernels without vector accesses to the score rows (its integer
    arguments are specialized on divisibility by 16), a different code path with its own
    rate (kernels/calibrate/microbench_unfused.py measures both). Without an entry of the shape's
    class
    the nearest other one is used and `measured_from` says so.

    A masked shape (any mask) takes the causal entries: the kernels' one masked form. A
    kernel with no calibrated form (the sigmoid row kernel) keeps its unit model.
    """
    out = []
    aligned = s.seq_k % ALIGNED_ROW_KEYS == 0
    masked = not s.is_dense
    for i, plan in enumerate(plans):
        found = cal.unfused(plan.name, masked, s.head_dim, t.block_m, t.block_n, t.num_warps)
        if not found:
            out.append(plan)
            continue
        same_class = [e for e in found if (e.seq % ALIGNED_ROW_KEYS == 0) == aligned]
        source = _ROWS[aligned]
        if not same_class:
            source = f"{_ROWS[not aligned]}; none calibrated of this shape's kind"
        elif not aligned:
            same_class, note = same_alignment(s, same_class)
            source += note
        found = same_class or found
        near = [e for e in found if _tiling_key(e) == _tiling_key(found[0])]
        # each entry's time split into its memory part and the rest, less its dependent HBM
        # round trips (`latency_s` each, which `gpu_model.time_kernel` adds once per kernel)
        split = [
            split_entry(e, _entry_plan(e, i, s, t, sm_count, l2_bytes), cal, latency_s)
            for e in near
        ]
        # the rate of the softmax's own path: rows in one block (the widest block, a kernel
        # with a rate of its own, apart where the calibration has it), or the two-loop path
        path = softmax_path(s.seq_k)
        same_path = [x for x in split if softmax_path(x.entry.seq) == path]
        if not same_path and path == "widest block":
            same_path = [x for x in split if softmax_path(x.entry.seq) == "one block"]
        pool = same_path or split
        if plan.memory_overlap_p != 1.0:  # the rest that overlaps the entry's memory part
            p = plan.memory_overlap_p
            pool = [replace(x, rest_s=rest_of(x.memory_s + x.rest_s, x.memory_s, p)) for x in pool]
        per_work, per_program = fit_rates(pool)
        bound = fit_program_bound(pool, per_work) if plan.name in TILE_KERNELS else None
        if bound is not None and plan.blocks:  # a tile kernel's bound by its programs' lengths
            programs = [(g.count, g.steps + g.masked) for g in plan.groups]
            per_program = bound.grid_s(programs) / plan.blocks
        # the entry's and the call's last waves (`unfused_waves`): the tile kernels' builds
        per_sm = COMPILED_PROGRAMS_PER_SM.get(
            (plan.name, s.head_dim, t.block_m, t.block_n, t.num_warps, masked), 0
        )
        share = 1.0
        if per_sm:
            big = max(pool, key=lambda x: x.work)
            entry = _entry_plan(big.entry, i, s, t, sm_count, l2_bytes)
            per_work = net_rest(big, wave_share(entry, sm_count, per_sm))
            share = wave_share(plan, sm_count, per_sm)
        note = ""
        if per_program:
            by = " by program length" if bound is not None else ""
            note = f" (with a per-program bound{by} from the short-row entries)"
        if share < 1.0:
            note += f"; this grid's wave share {share:.2f} (its last wave, `unfused_waves`)"
        few = cal.unfused_program(plan.name, s.head_dim, (t.block_m, t.block_n, t.num_warps,
                                                         t.num_stages))  # fmt: skip
        out.append(
            replace(
                plan,
                measured=(per_work, float(sm_count)),
                measured_per_program_s=per_program,
                measured_from=f"calibration entries of {source}{note}",
                measured_share=share,
                # per step of this tiling's key tiles (the entry's step scaled by block_n), on
                # rows as long as those it was fitted on
                measured_program=(few.step_s * t.block_n / few.block_n, few.fixed_s)
                if few is not None and s.seq_k >= few.min_keys
                else None,
            )
        )
    return tuple(out)


def _tiling_key(e: UnfusedPoint) -> tuple[int, ...]:
    return (e.head_dim, e.block_m, e.block_n, e.num_warps, e.num_stages)


def _entry_plan(
    e: UnfusedPoint, i: int, s: AttnShape, t: Tiling, sm_count: int, l2_bytes: int
) -> KernelPlan:
    """Unfused kernel i as planned on entry `e`'s own shape (`unfused_rates.split_entry`)."""
    d = e.head_dim or s.head_dim
    causal = not s.is_dense  # the entry's own mask: top-left causal or none
    cal_shape = AttnShape(1, e.batch_heads, e.seq, e.seq, d, d, causal, s.dtype, s.elem_bytes)
    cal_tiling = Tiling(e.block_m, e.block_n, e.num_warps, e.num_stages) if e.block_m else t
    return _unfused(cal_shape, cal_tiling, sm_count, l2_bytes)[i]


def kernel_plans(
    family: str,
    s: AttnShape,
    t: Tiling,
    concurrent_blocks: int,
    l2_bytes: int,
    calibration: Calibration | None = None,
    sm_count: int = 1,
    hbm_latency_s: float = 0.0,
    score: ScoreCost = SOFTMAX,
) -> tuple[KernelPlan, ...]:
    """The kernels `family` launches for shape `s` with tiling `t`, in order.

    With a calibration holding `unfused_kernels`, the unfused kernels carry their measured
    non-memory rates (`KernelPlan.measured`), less `hbm_latency_s` per dependent round trip;
    a derived calibration's `floors` give such rates as floors (`measured_is_floor`).
    `score`: what the score function changes (sigmoid has no 2-pass form: ValueError).
    """
    refetch = kv_refetch(s, t, concurrent_blocks, l2_bytes)
    if t.schedule != "plain" and family != "1pass":
        raise ValueError(f"schedule {t.schedule!r} is a 1-pass kernel, not {family}")
    if s.layout is not None and (family != "1pass" or t.schedule != "plain"):
        raise ValueError(
            f"a block-sparse layout runs on the plain 1-pass kernel only, not {family} "
            f"({t.schedule}): no other kernel reads its tile lists"
        )
    if family == "1pass":
        if t.schedule == "pingpong":
            return (_fused(s, t, "attn_fwd_pingpong", "pingpong", refetch, score),)
        return (_fused(s, t, "attn_fwd", "online", refetch, score),)
    if family == "2pass":
        if score.sigmoid:
            raise ValueError("sigmoid weights have no row statistics: no 2-pass form")
        return (
            _fused(s, t, "attn_stats", "stats", refetch, score),
            _fused(s, t, "attn_output", "output", refetch, score),
        )
    if family == "unfused":
        plans = _unfused(s, t, sm_count, l2_bytes, score)
        if calibration is not None and calibration.unfused_kernels:
            plans = _with_measured(plans, s, t, calibration, sm_count, l2_bytes, hbm_latency_s)
        elif calibration is not None and calibration.floors is not None:  # archs.datasheet
            floors = _with_measured(
                plans, s, t, calibration.floors, sm_count, l2_bytes, hbm_latency_s
            )
            plans = tuple(
                replace(p, measured_is_floor=True, measured_from=f"floor from {p.measured_from}")
                if p.measured is not None
                else p
                for p in floors
            )
        return plans
    raise ValueError(f"unknown GPU kernel family {family!r}; expected one of {FAMILIES}")
