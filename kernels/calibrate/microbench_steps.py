"""Microbenchmarks of host-side call cost and of the attention tile chain (GPU only).

Used by `python -m attnsim.kernels.calibrate.microbench`; each function returns calibration entries
(format in
`archs/calibration/__init__.py`):

- `measure_host`: `host_call_us` = host (Python) time of one call of each family's launcher
  on a tiny problem, where the GPU work is far shorter than the host's (argument checks,
  torch allocations, Triton's argument binding and launch, the TMA scratch allocator), and
  `bench_head_start_us` = how far ahead of the GPU the host is when `triton.testing.do_bench`
  starts a timed call (its L2 flush runs on the GPU while the host issues the call): a call
  whose host time exceeds this head start is timed as host-bound. Measured by timing, with
  do_bench, functions that busy-wait on the host for a known time and then launch an empty
  kernel.
- `measure_steps`: the per-step time of a micro-kernel (not the attention kernels) that
  loops over a ring of a few K/V tiles that stay on chip, doing per step the tile chain of
  attention: QK^T dot, the exp2 softmax update (mode online/stats/output) and, except in
  stats mode, the P.V dot. Grids of one to four programs per SM (up to the compiled
  micro-kernel's occupancy) give the step time of one resident block and of a round of
  2, 3, 4 co-resident blocks.
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

import triton
import triton.language as tl

STEP_ITERS = 256
STEP_RING = 4  # K/V tiles per program, re-read round-robin (on chip after the first pass)
STEP_STAGES = 3
STEP_BUDGET_S = 90.0
STEP_MAX_PER_SM = 4  # stop measuring step configurations after this long
# (block_m, block_n, num_warps), most used first (validation tilings, then the search space)
STEP_TILINGS = (
    (128, 128, 4),
    (128, 128, 8),
    (128, 64, 4),
    (128, 64, 8),
    (64, 64, 4),
    (64, 32, 4),
    (128, 32, 4),
    (64, 128, 4),
    (128, 32, 8),
    (64, 64, 8),
    (64, 32, 8),
    (64, 128, 8),
)
STEP_HEAD_DIMS = (64, 128)
STEP_MODES = ("online", "stats", "output")
SPIN_US = (100.0, 150.0, 200.0, 250.0, 300.0)
SPIN_REPEATS = 3  # the head start is a host timing: median of len(SPIN_US) x this many


@triton.jit
def _empty(X):
    pass


@triton.jit
def step_chain_kernel(
    Q,
    K,
    V,
    Out,
    qk_scale,
    ITERS: tl.constexpr,
    RING: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    MODE: tl.constexpr,
):
    """ITERS steps of the attention tile chain over a ring of RING on-chip K/V tiles."""
    pid = tl.program_id(0)
    offs_m = tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    q = tl.load(Q + (pid * BLOCK_M + offs_m)[:, None] * HEAD_DIM + offs_d[None, :])
    rows = RING * BLOCK_N
    k_desc = tl.make_tensor_descriptor(
        K + pid * rows * HEAD_DIM,
        shape=[rows, HEAD_DIM],
        strides=[HEAD_DIM, 1],
        block_shape=[BLOCK_N, HEAD_DIM],
    )
    v_desc = tl.make_tensor_descriptor(
        V + pid * rows * HEAD_DIM,
        shape=[rows, HEAD_DIM],
        strides=[HEAD_DIM, 1],
        block_shape=[BLOCK_N, HEAD_DIM],
    )
    m_i = tl.zeros([BLOCK_M], dtype=tl.float32) - 1.0e30
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32) + 1.0
    if MODE == 2:
        m_i = tl.zeros([BLOCK_M], dtype=tl.float32) + 4.0
        l_i = tl.zeros([BLOCK_M], dtype=tl.float32) + 1.0e-3
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    for it in tl.range(0, ITERS):
        start = (it % RING) * BLOCK_N
        k = k_desc.load([start, 0])
        qk = tl.dot(q, tl.trans(k))
        if MODE == 2:
            p = tl.math.exp2(qk * qk_scale - m_i[:, None]) * l_i[:, None]
            v = v_desc.load([start, 0])
            acc = tl.dot(p.to(v.dtype), v, acc)
        else:
            m_ij = tl.maximum(m_i, tl.max(qk, 1) * qk_scale)
            p = tl.math.exp2(qk * qk_scale - m_ij[:, None])
            alpha = tl.math.exp2(m_i - m_ij)
            l_i = l_i * alpha + tl.sum(p, 1)
            if MODE == 0:
                v = v_desc.load([start, 0])
                acc = acc * alpha[:, None]
                acc = tl.dot(p.to(v.dtype), v, acc)
            m_i = m_ij
    out = acc / l_i[:, None] + m_i[:, None]
    tl.store(Out + (pid * BLOCK_M + offs_m)[:, None] * HEAD_DIM + offs_d[None, :], out)


def _spin(us: float) -> None:
    end = time.perf_counter() + us * 1e-6
    while time.perf_counter() < end:
        pass


def _host_per_call_us(torch: Any, call: Any, n: int = 300) -> float:
    """Median over 5 repeats of host seconds per call (GPU synchronized at the end)."""
    call()
    torch.cuda.synchronize()
    for _ in range(20):
        call()
    torch.cuda.synchronize()
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            call()
        torch.cuda.synchronize()
        runs.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(runs)


def host_calls(torch: Any) -> dict[str, float]:
    """Host µs of one launcher call per family on a tiny problem (GPU work far shorter)."""
    from attnsim.kernels.triton.attn_2pass import attention_2pass
    from attnsim.kernels.triton.attn_fwd import attention_fwd
    from attnsim.kernels.triton.attn_unfused import attention_unfused

    dt = torch.bfloat16
    q, k, v = (torch.randn(1, 1, 128, 64, device="cuda", dtype=dt) for _ in range(3))
    scores = torch.empty((1, 128, 128), device="cuda", dtype=dt)
    bm, bn, w, st = 64, 64, 4, 3
    calls = {
        "1pass": lambda: attention_fwd(
            q, k, v, False, block_m=bm, block_n=bn, num_warps=w, num_stages=st
        ),
        "2pass": lambda: attention_2pass(
            q, k, v, False, block_m=bm, block_n=bn, num_warps=w, num_stages=st
        ),
        "unfused": lambda: attention_unfused(
            q, k, v, False, block_m=bm, block_n=bn, num_warps=w, num_stages=st, scores=scores
        ),
    }
    host: dict[str, float] = {}
    for name, call in calls.items():
        try:
            host[name] = round(_host_per_call_us(torch, call), 2)
        except Exception as exc:  # noqa: BLE001 - keep the other figures
            print(f"  host call {name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(f"  host_call_us {name}: {host.get(name)}", file=sys.stderr)
    return host


def flush_us(torch: Any) -> float:
    """GPU µs of `triton.testing.do_bench`'s L2 flush (a memset of its 256 MB buffer)."""
    cache = triton.runtime.driver.active.get_empty_cache_for_benchmark()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    cache.zero_()
    start.record()
    for _ in range(20):
        cache.zero_()
    end.record()
    torch.cuda.synchronize()
    return float(start.elapsed_time(end)) * 1e3 / 20


def measure_host(torch: Any) -> dict[str, Any]:
    """host_call_us per family launcher and do_bench's host head start (µs)."""
    out: dict[str, Any] = {"host_call_us": host_calls(torch)}
    x = torch.empty(1, device="cuda")
    launch_us = _host_per_call_us(torch, lambda: _empty[(1,)](x))
    heads = []
    for spin in SPIN_US * SPIN_REPEATS:

        def fn(spin: float = spin) -> None:
            _spin(spin)
            _empty[(1,)](x)

        ms = float(triton.testing.do_bench(fn, warmup=20, rep=100, return_mode="median"))
        heads.append(spin + launch_us - ms * 1e3)
        print(f"  do_bench spin {spin} us: {ms * 1e3:.1f} us", file=sys.stderr)
    out["bench_head_start_us"] = round(max(0.01, statistics.median(heads)), 2)
    try:  # log only: GPU time of do_bench's L2 flush (the head start's upper bound)
        print(f"  do_bench flush (GPU): {flush_us(torch):.1f} us", file=sys.stderr)
        print(f"  head starts: {[round(h, 1) for h in heads]}", file=sys.stderr)
    except Exception as exc:  # noqa: BLE001 - diagnostics only
        print(f"  flush timing failed: {exc}", file=sys.stderr)
    return out


def measure_steps(torch: Any) -> list[dict[str, Any]]:
    """Step time of the attention tile chain by mode, head dim, tiling and blocks per SM."""
    from attnsim.kernels.calibrate.microbench_blocks import compiled_kernel, occupancy
    from attnsim.kernels.triton.common import ensure_allocator

    ensure_allocator()
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    dt = torch.bfloat16
    t0 = time.time()
    points: list[dict[str, Any]] = []
    for (bm, bn, w), d, mode in (
        (t, d, m) for t in STEP_TILINGS for d in STEP_HEAD_DIMS for m in STEP_MODES
    ):
        if time.time() - t0 > STEP_BUDGET_S:
            print(f"  step budget spent: skip {mode} d{d} {bm}x{bn}/w{w}", file=sys.stderr)
            continue
        progs = STEP_MAX_PER_SM * sms
        q = torch.randn(progs * bm, d, device="cuda", dtype=dt)
        k = torch.randn(progs * STEP_RING * bn, d, device="cuda", dtype=dt)
        v = torch.randn(progs * STEP_RING * bn, d, device="cuda", dtype=dt)
        o = torch.empty(progs * bm, d, device="cuda", dtype=torch.float32)
        code = STEP_MODES.index(mode)
        fits = STEP_MAX_PER_SM
        for per_sm in range(1, STEP_MAX_PER_SM + 1):
            if per_sm > fits:
                break

            def run(
                n: int = per_sm * sms,
                args: tuple[Any, ...] = (q, k, v, o),
                meta: tuple[int, int, int, int, int] = (bm, bn, d, code, w),
            ) -> None:
                bm_, bn_, d_, code_, w_ = meta
                step_chain_kernel[(n,)](
                    *args,
                    0.125,
                    ITERS=STEP_ITERS,
                    RING=STEP_RING,
                    BLOCK_M=bm_,
                    BLOCK_N=bn_,
                    HEAD_DIM=d_,
                    MODE=code_,
                    num_warps=w_,
                    num_stages=STEP_STAGES,
                )

            try:
                ms = float(triton.testing.do_bench(run, warmup=5, rep=20, return_mode="median"))
            except Exception as exc:  # noqa: BLE001 - a tile that does not compile is skipped
                print(f"  skip step {mode} d{d} {bm}x{bn}/w{w}: {exc}"[:300], file=sys.stderr)
                break
            if per_sm == 1:  # more programs per SM than fit would run in several waves
                meta = dict(ITERS=STEP_ITERS, BLOCK_M=bm, BLOCK_N=bn, HEAD_DIM=d, MODE=code)
                kernel = compiled_kernel(step_chain_kernel, meta, w, STEP_STAGES)
                fits = occupancy(torch, kernel, w) if kernel is not None else 2
            point = {
                "mode": mode,
                "dtype": "bf16",
                "head_dim": d,
                "block_m": bm,
                "block_n": bn,
                "num_warps": w,
                "num_stages": STEP_STAGES,
                "blocks_per_sm": per_sm,
                "step_us": round(ms * 1e3 / STEP_ITERS, 4),
            }
            points.append(point)
            print(f"  {point}", file=sys.stderr)
    return points
