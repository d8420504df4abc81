"""Microbenchmark of the fused attention kernels' per-block fixed time (GPU only).

Used by `python -m attnsim.kernels.calibrate.microbench`. The step microbenchmark
(`microbench_steps`) gives the
time of one loop step; this one gives what a block costs besides its steps: starting the
block, building its tensor descriptors, loading its Q tile and the first K/V tiles from HBM
(all blocks of a wave ask at once, right after the timing harness's L2 flush), draining the
pipeline and storing its output tile.

Method: the real kernels (1-pass `online`; the 2-pass `stats` and `output` passes, each
launched alone) on calibration shapes outside the validation grid: one query tile per
(batch*head) (seq_q = BLOCK_M), so the grid is `blocks` programs of n key-tile steps each
(seq_k = n * BLOCK_N, n = 2 and 8), non-causal. Timed with `triton.testing.do_bench` (L2
flushed before each call), like the validation runs. With T(n) the median time and `floor`
the do_bench time of an empty kernel (`bench_floor_us`):

    step = (T(8) - T(2)) / 6        fixed = T(2) - 2 * step - floor

Grids: 16 programs (well under one per SM), one per SM, and `blocks_per_sm` per SM (the
compiled kernel's occupancy from its registers and shared memory), so the model can look up
the fixed time by how many blocks start together. These blocks all start at once right after
the flush. Blocks of later waves start as slots free, while other blocks compute, and pay
less: the full-occupancy grid is also timed with WAVES waves (T_W), giving the fixed time of
a later wave (entry `waves: WAVES`):

    step_W = (T_W(8) - T_W(2)) / (6 * W)
    fixed_later = (T_W(2) - T(2) - (W - 1) * 2 * step_W) / (W - 1)
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

import triton

BLOCK_BUDGET_S = 110.0
STEPS = (2, 8)
SMALL_GRID = 16
WAVES = 4
# (mode, head_dim, (block_m, block_n, num_warps, num_stages), tiles): the validation tilings
# (kernels.bench.harness.TILINGS) of the 1-pass kernel, with host- and kernel-built descriptors (it
# takes the latter when seq_q is not a multiple of BLOCK_M), and of both 2-pass passes
# (kernel-built descriptors only)
PlanEntry = tuple[str, int, tuple[int, int, int, int], str]  # mode, head dim, tiling, tiles
BLOCK_PLAN: tuple[PlanEntry, ...] = (
    *(
        ("online", d, t, tiles)
        for tiles in ("host", "device")
        for d, ts in (
            (64, ((128, 128, 4, 3), (128, 64, 8, 3), (64, 64, 4, 3), (128, 64, 4, 3))),
            (128, ((128, 128, 8, 3), (64, 64, 4, 3), (128, 64, 8, 3), (128, 64, 4, 3))),
        )
        for t in ts
    ),
    *(
        (mode, d, t, "device")
        for d, ts in (
            (64, ((128, 64, 4, 3), (128, 128, 8, 3))),
            (128, ((128, 64, 8, 3), (128, 128, 8, 3))),
        )
        for t in ts
        for mode in ("stats", "output")
    ),
)


def bench_floor_us(torch: Any) -> float:
    """do_bench median of an empty kernel (µs): what the harness adds to any kernel."""
    from attnsim.kernels.calibrate.microbench_steps import _empty

    x = torch.empty(1, device="cuda")
    runs = [
        float(triton.testing.do_bench(lambda: _empty[(1,)](x), warmup=10, rep=50)) * 1e3
        for _ in range(3)
    ]
    return statistics.median(runs)


def occupancy(torch: Any, kernel: Any, warps: int) -> int:
    """Blocks per SM of a compiled kernel (registers, shared memory, threads, 32 slots)."""
    props = torch.cuda.get_device_properties(0)
    threads = 32 * warps
    regs = max(1, int(getattr(kernel, "n_regs", 0) or 0))
    regs_per_sm = int(getattr(props, "regs_per_multiprocessor", 65536))
    smem_per_sm = int(getattr(props, "shared_memory_per_multiprocessor", 233472))
    smem = int(kernel.metadata.shared) + 1024
    threads_per_sm = int(getattr(props, "max_threads_per_multi_processor", 2048))
    reg_threads = (regs + 7) // 8 * 8 * threads
    return max(
        1, min(smem_per_sm // smem, regs_per_sm // reg_threads, threads_per_sm // threads, 32)
    )


def _caller(  # type: ignore[no-untyped-def]
    torch: Any,
    mode: str,
    d: int,
    tiling: tuple[int, int, int, int],
    blocks: int,
    n: int,
    tiles: str = "device",
    q_tiles: int = 1,
):
    """A zero-argument launch of one kernel on the calibration shape, and its compiled kernel.

    `q_tiles`: query tiles per head (they share the head's K/V); `blocks` must divide by it.
    """
    from attnsim.kernels.triton import attn_2pass
    from attnsim.kernels.triton.attn_fwd import attention_fwd, attn_fwd_kernel

    bm, bn, w, st = tiling
    dt = torch.bfloat16
    heads = blocks // q_tiles
    q = torch.randn(1, heads, q_tiles * bm, d, device="cuda", dtype=dt)
    k, v = (torch.randn(1, heads, n * bn, d, device="cuda", dtype=dt) for _ in range(2))
    o = torch.empty_like(q)
    tile: dict[str, Any] = dict(block_m=bm, block_n=bn, num_warps=w, num_stages=st)
    if mode == "pingpong":  # the Gluon kernel: no Triton JIT cache entry (occupancy: see caller)
        tile["schedule"] = "pingpong"
        attention_fwd(q, k, v, out=o, **tile)
        return (lambda: attention_fwd(q, k, v, out=o, **tile)), None
    if mode == "online":
        tile["tma"] = "host" if tiles == "host" else True
        attention_fwd(q, k, v, out=o, **tile)
        meta = dict(
            BLOCK_M=bm, BLOCK_N=bn, HEAD_DIM=d, CAUSAL=False, USE_TMA=1 if tiles == "device" else 2
        )
        compiled = compiled_kernel(attn_fwd_kernel, meta, w, st)
        return (lambda: attention_fwd(q, k, v, out=o, **tile)), compiled
    attn_2pass.attention_2pass(q, k, v, out=o, **tile)
    plan = attn_2pass.plan_for(q, k, v, out=o, **tile)
    m, lsum = (torch.empty(heads, q_tiles * bm, device="cuda") for _ in range(2))
    launch = plan.passes[0 if mode == "stats" else 1]
    if mode == "output":  # valid statistics for the output pass
        plan.passes[0](q, k, v, o, m, lsum)
    compiled = compiled_kernel(attn_2pass.attn_2pass_kernel, launch.meta, w, st)
    return (lambda: launch(q, k, v, o, m, lsum)), compiled


def within_budget(plan: Iterable[PlanEntry], budget_s: float) -> Iterator[PlanEntry]:
    """The plan's (mode, head dim, tiling, tiles) entries in order while `budget_s` lasts.

    The ones after are reported on stderr as skipped.
    """
    t0 = time.time()
    for mode, d, tiling, tiles in plan:
        if time.time() - t0 > budget_s:
            print(f"  budget spent: skip {mode} d{d} {tiling} {tiles}", file=sys.stderr)
            continue
        yield mode, d, tiling, tiles


def resident(torch: Any, mode: str, d: int, tiling: tuple[int, int, int, int], sms: int,
             steps: int, tiles: str) -> int:  # fmt: skip
    """Blocks per SM of the kernel `_caller` compiles for this entry.

    1 when it cannot be read (the ping-pong kernel: one per SM by construction).
    """
    _, compiled = _caller(torch, mode, d, tiling, sms, steps, tiles)
    return occupancy(torch, compiled, tiling[2]) if compiled is not None else 1


def compiled_kernel(fn: Any, meta: dict[str, Any], warps: int, stages: int) -> Any:
    """The compiled kernel of JIT function `fn` with these constexprs, warps and stages."""
    want = {(fn.arg_names.index(k),): v for k, v in meta.items()}
    for cache in getattr(fn, "device_caches", {}).values():
        kernels = cache[0] if isinstance(cache, tuple) else cache
        for kernel in kernels.values():
            src, md = getattr(kernel, "src", None), kernel.metadata
            consts = getattr(src, "constants", {})
            if md.num_warps != warps or md.num_stages != stages:
                continue
            if all(consts.get(key) == value for key, value in want.items()):
                return kernel
    return None


def _ms(fn: Any) -> float:
    return float(triton.testing.do_bench(fn, warmup=5, rep=25, return_mode="median"))


def _point(
    mode: str,
    d: int,
    tiling: tuple[int, int, int, int],
    blocks: int,
    per_sm: int,
    waves: int,
    fixed: float,
    step: float,
    tiles: str,
) -> dict[str, Any]:
    bm, bn, w, st = tiling
    return {
        "mode": mode,
        "dtype": "bf16",
        "head_dim": d,
        "block_m": bm,
        "block_n": bn,
        "num_warps": w,
        "num_stages": st,
        "blocks": blocks,
        "blocks_per_sm": per_sm,
        "waves": waves,
        "tiles": tiles,
        "fixed_us": round(fixed, 3),
        "step_us": round(step, 4),
    }


def measure_blocks(
    torch: Any, floor_us: float, plan: tuple[Any, ...] = BLOCK_PLAN
) -> list[dict[str, Any]]:
    """Per-block fixed time of the fused kernels by mode, head dim, tiling and grid.

    Mode `pingpong` (kernels.gluon.attn_pingpong) runs one block per SM by construction (its
    consumer warps take the SM's register file through setmaxnreg).
    """
    from attnsim.kernels.triton.common import ensure_allocator

    ensure_allocator()
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    t0 = time.time()
    points: list[dict[str, Any]] = []
    for mode, d, tiling, tiles in plan:
        if time.time() - t0 > BLOCK_BUDGET_S:
            print(f"  block budget spent: skip {mode} d{d} {tiling} {tiles}", file=sys.stderr)
            continue
        bm, bn, w, st = tiling
        try:
            _, compiled = _caller(torch, mode, d, tiling, sms, STEPS[0], tiles)
            occ = occupancy(torch, compiled, w) if compiled is not None else 1
            if compiled is None and mode != "pingpong":
                print(f"  {mode} d{d} {tiling}: compiled kernel not found, 1/SM", file=sys.stderr)
            grids = sorted({(SMALL_GRID, 1), (sms, 1), (sms * occ, occ)})
            for blocks, per_sm in grids:
                times = []
                for n in STEPS:
                    call, _ = _caller(torch, mode, d, tiling, blocks, n, tiles)
                    times.append(_ms(call) * 1e3)
                    torch.cuda.empty_cache()
                step = (times[1] - times[0]) / (STEPS[1] - STEPS[0])
                fixed = times[0] - STEPS[0] * step - floor_us
                point = _point(mode, d, tiling, blocks, per_sm, 1, fixed, step, tiles)
                points.append(point)
                print(f"  {point} T={[round(t, 2) for t in times]}", file=sys.stderr)
            # later waves: the full-occupancy grid WAVES times over
            blocks = grids[-1][0] * WAVES
            many = []
            for n in STEPS:
                call, _ = _caller(torch, mode, d, tiling, blocks, n, tiles)
                many.append(_ms(call) * 1e3)
                torch.cuda.empty_cache()
            step_w = (many[1] - many[0]) / ((STEPS[1] - STEPS[0]) * WAVES)
            # times[0]: T(2) of the last (full-occupancy) one-wave grid above
            later = (many[0] - times[0]) / (WAVES - 1) - STEPS[0] * step_w
            point = _point(mode, d, tiling, blocks, grids[-1][1], WAVES, later, step_w, tiles)
            points.append(point)
            print(f"  {point} T={[round(t, 2) for t in many]}", file=sys.stderr)
        except Exception as exc:  # noqa: BLE001 - keep the other entries
            print(f"  skip block {mode} d{d} {tiling} {tiles}: {exc}"[:300], file=sys.stderr)
    return points
