"""GPU microbenchmarks that calibrate the GPU model; writes `archs/calibration/<device>.yaml`.

GPU only (about three minutes on an H200, 2026-11-30)::

    python -m attnsim.kernels.calibrate.microbench --out archs/calibration/h200.yaml

Measures: torch.matmul peak (8192^3, bf16 and fp16); a Triton matmul by tile shape (the
attention tiles: BLOCK_M 64/128 x BLOCK_N 32/64/128 x BLOCK_K 64/128, 4 and 8 warps, bf16);
HBM copy bandwidth (1 GiB) and read bandwidth (4 GiB, the faster of torch.sum and a
streaming Triton read, `hbm_read_s`); L2 read bandwidth (best of 8/16 MiB re-read, 16-byte
loads); exp2 and fp32 FMA
throughput (Triton kernels with long dependent chains per element); launch overhead of an
empty kernel (GPU side, by CUDA-graph replay) and from Python (back-to-back launches);
host time of one call of each kernel family's launcher on a tiny problem (argument binding,
checks, torch allocations, the TMA scratch allocator) and the head start that
`triton.testing.do_bench` gives the host (its L2 flush runs on the GPU while the host issues
the timed call); the per-step time of a micro-kernel running the attention tile chain
(QK^T dot -> exp2 softmax update -> P.V dot) on K/V tiles that stay on chip, by tile shape,
one and two blocks per SM (`kernels.calibrate.microbench_steps`); the unfused baseline's three
kernels
each timed alone on calibration shapes (`kernels.calibrate.microbench_unfused`); the do_bench floor
(an
empty kernel) and the fused kernels' per-block fixed time and occupancy
(`kernels.calibrate.microbench_blocks`); on sm_90, the same figures for the 1-pass family's
ping-pong
kernel (`kernels.calibrate.microbench_pingpong`). Every figure is logged
before the file is written.
The file format is documented in `archs/calibration/__init__.py`.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import triton
import triton.language as tl

TILE_BLOCK_M = (64, 128)
TILE_BLOCK_N = (32, 64, 128)
TILE_BLOCK_K = (64, 128)  # the K of the attention dots (head dim, BLOCK_N)
TILE_WARPS = (4, 8)
TILE_STAGES = 3
MATMUL_SIZE = 4096
L2_BUFFER_MIB = (8, 16)  # re-read buffers well inside the 50 MiB L2 (best of these is kept)
L2_PER_SM = (8, 32)  # programs per SM (loads in flight)
L2_BLOCK, L2_ITERS = 4096, 64
PEAK_SIZE = 8192


@triton.jit
def matmul_kernel(
    A, B, C, M, N, K, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr
):
    """C = A @ B (row-major, sizes multiples of the blocks), fp32 accumulation."""
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    a_ptr = A + rm[:, None] * K + rk[None, :]
    b_ptr = B + rk[:, None] * N + rn[None, :]
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for _ in tl.range(0, K, BLOCK_K):
        acc = tl.dot(tl.load(a_ptr), tl.load(b_ptr), acc)
        a_ptr += BLOCK_K
        b_ptr += BLOCK_K * N
    tl.store(C + rm[:, None] * N + rn[None, :], acc.to(C.dtype.element_ty))


@triton.jit
def l2_read_kernel(X, OUT, N_BLOCKS, ITERS: tl.constexpr, BLOCK: tl.constexpr):
    """Each program sums ITERS BLOCK-aligned blocks of an L2-resident buffer.

    `tl.multiple_of` tells the compiler every block start is BLOCK-aligned, so the loads are
    16-byte vectors (a start computed with a run-time modulo alone proves no alignment and
    gives 2-byte loads, which measure the load units, not L2).
    """
    pid = tl.program_id(0)
    acc = tl.zeros((BLOCK,), dtype=tl.float32)
    for i in range(ITERS):
        start = tl.multiple_of(((pid * ITERS + i) % N_BLOCKS) * BLOCK, BLOCK)
        acc += tl.load(X + start + tl.arange(0, BLOCK)).to(tl.float32)
    tl.store(OUT + pid * BLOCK + tl.arange(0, BLOCK), acc)


@triton.jit
def exp2_kernel(X, ITERS: tl.constexpr, BLOCK: tl.constexpr):
    """ITERS dependent exp2 per element (x -> exp2(x) - 1 stays in [-0.5, 0])."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    x = tl.load(X + offs)
    for _ in range(ITERS):
        x = tl.math.exp2(x) - 1.0
    tl.store(X + offs, x)


@triton.jit
def fma_kernel(X, ITERS: tl.constexpr, BLOCK: tl.constexpr):
    """4 independent chains of ITERS fp32 FMAs per element."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    a = tl.load(X + offs)
    b = a + 1.0
    c = a + 2.0
    d = a + 3.0
    for _ in range(ITERS):
        a = a * 0.999 + 0.001
        b = b * 0.999 + 0.001
        c = c * 0.999 + 0.001
        d = d * 0.999 + 0.001
    tl.store(X + offs, a + b + c + d)


@triton.jit
def empty_kernel(X):
    """Does nothing: launch overhead only."""
    pass


def _bench(fn: Any) -> float:
    """Median seconds of `fn` (triton.testing.do_bench, which flushes L2 between runs)."""
    return float(triton.testing.do_bench(fn, warmup=10, rep=40, return_mode="median")) * 1e-3


def measure_matmul(torch: Any) -> list[dict[str, Any]]:
    """torch.matmul peaks and the Triton matmul by tile shape."""
    points: list[dict[str, Any]] = []
    n = PEAK_SIZE
    for name, dt in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        a = torch.randn(n, n, device="cuda", dtype=dt)
        b = torch.randn(n, n, device="cuda", dtype=dt)
        s = _bench(lambda a=a, b=b: torch.matmul(a, b))
        points.append(
            {
                "kernel": "torch.matmul",
                "dtype": name,
                "m": n,
                "n": n,
                "k": n,
                "tflops": round(2 * n**3 / s / 1e12, 2),
            }
        )
    m = MATMUL_SIZE
    a = torch.randn(m, m, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(m, m, device="cuda", dtype=torch.bfloat16)
    c = torch.empty(m, m, device="cuda", dtype=torch.bfloat16)
    for bm, bn, bk, w in itertools.product(TILE_BLOCK_M, TILE_BLOCK_N, TILE_BLOCK_K, TILE_WARPS):
        grid = (m // bm, m // bn)

        def run(bm: int = bm, bn: int = bn, bk: int = bk, w: int = w, grid: Any = grid) -> None:
            matmul_kernel[grid](
                a,
                b,
                c,
                m,
                m,
                m,
                BLOCK_M=bm,
                BLOCK_N=bn,
                BLOCK_K=bk,
                num_warps=w,
                num_stages=TILE_STAGES,
            )

        try:
            s = _bench(run)
        except Exception as exc:  # noqa: BLE001 (a tile that does not compile is skipped)
            print(f"  skip tile {bm}x{bn}x{bk} w{w}: {type(exc).__name__}", file=sys.stderr)
            continue
        points.append(
            {
                "kernel": "triton",
                "dtype": "bf16",
                "m": m,
                "n": m,
                "k": m,
                "block_m": bm,
                "block_n": bn,
                "block_k": bk,
                "num_warps": w,
                "num_stages": TILE_STAGES,
                "tflops": round(2 * m**3 / s / 1e12, 2),
            }
        )
    return points


def _l2_seconds_per_byte(torch: Any, x: Any, mib: int, per_sm: int) -> float:
    """Seconds per byte re-reading the first `mib` MiB of `x` (bf16) from L2."""
    block, iters = L2_BLOCK, L2_ITERS
    n_blocks = mib * 2**20 // (2 * block)
    progs = torch.cuda.get_device_properties(0).multi_processor_count * per_sm
    out = torch.empty(progs * block, device="cuda", dtype=torch.float32)

    def run() -> None:
        l2_read_kernel[(progs,)](x, out, n_blocks, ITERS=iters, BLOCK=block, num_warps=4)

    run()  # compile, and bring the buffer into L2
    # no do_bench here: its L2 flush would evict the buffer being measured
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    reps = 30
    start.record()
    for _ in range(reps):
        run()
    end.record()
    torch.cuda.synchronize()
    s = start.elapsed_time(end) * 1e-3 / reps
    gbps = progs * iters * block * 2 / s / 1e9
    print(f"  l2 read {mib} MiB, {per_sm} programs/SM: {gbps:.0f} GB/s", file=sys.stderr)
    return s / (progs * iters * block * 2)


@triton.jit
def hbm_read_kernel(X, Out, n, BLOCK: tl.constexpr):
    """Read-only stream: each program sums its strided blocks of X (n a multiple of BLOCK)."""
    pid = tl.program_id(0)
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for start in range(pid * BLOCK, n, tl.num_programs(0) * BLOCK):
        acc += tl.load(X + start + tl.arange(0, BLOCK), cache_modifier=".cg").to(tl.float32)
    tl.store(Out + pid, tl.sum(acc, 0))


def hbm_read_s(torch: Any, x: Any, bench: Any = None) -> float:
    """Seconds to read bf16 tensor `x` once from HBM: the faster of two read-only streams.

    torch.sum and `hbm_read_kernel` (4 programs per SM, 8192-element blocks, loads that skip
    L1). torch.sum alone is not the device's read speed: on the H200 it read 1 GiB at 4.02
    TB/s while `hbm_read_kernel` read 4 GiB at 4.49 TB/s (four runs of
    benchmarks/decode_probe.py, 2026-12-03..05), and the split-K decode kernel streamed its
    cache at up to 4.35 TB/s, which a 4.02 TB/s bound cannot price. `bench`: a callable
    timing a zero-argument function in seconds (default: do_bench's median, L2 flushed).
    """
    bench = bench or _bench
    sms = torch.cuda.get_device_properties(x.device).multi_processor_count
    out = torch.empty(4 * sms, dtype=torch.float32, device=x.device)
    n = x.numel() - x.numel() % 8192
    stream = bench(lambda: hbm_read_kernel[(4 * sms,)](x, out, n, BLOCK=8192, num_warps=8))
    summed = bench(lambda: torch.sum(x, dtype=torch.float32))
    return min(stream * x.numel() / n, summed)


def measure_memory(torch: Any) -> dict[str, float]:
    """HBM copy (1 GiB) and read bandwidth (4 GiB, `hbm_read_s`), L2 re-read bandwidth (GB/s)."""
    n = 2**29  # 1 GiB of bf16
    x = torch.empty(n, device="cuda", dtype=torch.bfloat16).normal_()
    y = torch.empty_like(x)
    copy_s = _bench(lambda: y.copy_(x))
    big = torch.ones(4 * n, device="cuda", dtype=torch.bfloat16)
    read_s = hbm_read_s(torch, big) / 4
    del big
    l2_s_per_byte = min(
        _l2_seconds_per_byte(torch, x, mib, per_sm) for mib in L2_BUFFER_MIB for per_sm in L2_PER_SM
    )
    return {
        "hbm_copy_bandwidth_gb_per_s": round(2 * 2 * n / copy_s / 1e9, 1),
        "hbm_read_bandwidth_gb_per_s": round(2 * n / read_s / 1e9, 1),
        "l2_read_bandwidth_gb_per_s": round(1 / l2_s_per_byte / 1e9, 1),
    }


def measure_units(torch: Any) -> dict[str, float]:
    """exp2 and fp32 FMA throughput over the whole device (G results / s)."""
    block, iters = 1024, 256
    progs = torch.cuda.get_device_properties(0).multi_processor_count * 32
    x = torch.rand(progs * block, device="cuda", dtype=torch.float32) - 1.0
    exp_s = _bench(lambda: exp2_kernel[(progs,)](x, ITERS=iters, BLOCK=block, num_warps=4))
    fma_s = _bench(lambda: fma_kernel[(progs,)](x, ITERS=iters, BLOCK=block, num_warps=4))
    return {
        "exp2_gops_per_s": round(progs * block * iters / exp_s / 1e9, 1),
        "fp32_fma_gops_per_s": round(4 * progs * block * iters / fma_s / 1e9, 1),
    }


def measure_launch(torch: Any) -> dict[str, float]:
    """Per-launch time of an empty kernel: GPU side (CUDA graph) and from Python."""
    x = torch.empty(1, device="cuda")
    empty_kernel[(1,)](x)
    torch.cuda.synchronize()
    reps = 200
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        empty_kernel[(1,)](x)
    end.record()
    torch.cuda.synchronize()
    host = start.elapsed_time(end) * 1e-3 / reps
    graph = torch.cuda.CUDAGraph()
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream), torch.cuda.graph(graph):
        for _ in range(reps):
            empty_kernel[(1,)](x)
    graph.replay()
    torch.cuda.synchronize()
    start.record()
    graph.replay()
    end.record()
    torch.cuda.synchronize()
    gpu = start.elapsed_time(end) * 1e-3 / reps
    return {"launch_overhead_us": round(gpu * 1e6, 3), "host_launch_us": round(host * 1e6, 3)}


def versions(torch: Any) -> dict[str, str]:
    """Driver, CUDA, torch and triton versions."""
    try:
        driver = (
            subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                check=False,
                timeout=20,
            )
            .stdout.strip()
            .splitlines()[0]
        )
    except (OSError, IndexError, subprocess.SubprocessError):
        driver = ""
    return {
        "driver": driver,
        "cuda": str(torch.version.cuda),
        "torch": str(torch.__version__),  # a TorchVersion object, which YAML cannot dump
        "triton": str(triton.__version__),
    }


def calibration_record(
    device: str,
    figures: dict[str, Any],
    matmul: list[dict[str, Any]],
    vers: dict[str, str],
    date: str,
) -> dict[str, Any]:
    """The calibration file's content (format: `archs/calibration/__init__.py`)."""
    return {
        "device": device,
        "date": date,
        "source": "kernels.calibrate.microbench",
        "versions": vers,
        **figures,
        "matmul": matmul,
        "notes": [
            f"Triton matmul tiles at {MATMUL_SIZE}^3, num_stages {TILE_STAGES}; "
            "medians of triton.testing.do_bench",
            "launch_overhead_us: CUDA-graph replay of an empty kernel; host_launch_us: "
            "back-to-back launches from Python",
            "host_call_us: host time of one launcher call per family (tiny problem); "
            "bench_head_start_us: host head start under do_bench (busy-wait functions)",
            "attention_steps: kernels.calibrate.microbench_steps.step_chain_kernel, K/V ring on "
            "chip, "
            "one and two programs per SM",
            "unfused_kernels: kernels.triton.attn_unfused's qk, softmax and pv kernels each "
            "timed alone "
            "on calibration shapes outside the validation grid",
            "bench_floor_us: do_bench median of an empty kernel; attention_blocks: per-block "
            "fixed time of the fused kernels (kernels.calibrate.microbench_blocks: one query "
            "tile per "
            "program, 2 and 8 key tiles, grids of 16, one and blocks_per_sm programs per SM)",
        ],
    }


def main(argv: list[str] | None = None) -> int:
    """Run every microbenchmark and write the calibration YAML."""
    parser = argparse.ArgumentParser(
        prog="python -m attnsim.kernels.calibrate.microbench", description=__doc__
    )
    parser.add_argument("--out", required=True, type=Path, help="calibration YAML to write")
    args = parser.parse_args(argv)
    import torch
    import yaml

    if not torch.cuda.is_available():
        print("kernels.calibrate.microbench needs a CUDA GPU", file=sys.stderr)
        return 2
    device = torch.cuda.get_device_name()
    figures: dict[str, Any] = {}
    from attnsim.kernels.calibrate import microbench_blocks, microbench_steps, microbench_unfused

    for step in (
        measure_memory,
        measure_units,
        measure_launch,
        microbench_steps.measure_host,
    ):
        print(f"{step.__name__} ...", file=sys.stderr)
        try:
            figures.update(step(torch))
        except Exception as exc:  # noqa: BLE001 - keep every other figure
            print(f"  {step.__name__} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(json.dumps(figures, default=str), file=sys.stderr)
    print("measure_matmul ...", file=sys.stderr)
    try:
        matmul = measure_matmul(torch)
    except Exception as exc:  # noqa: BLE001
        print(f"  measure_matmul failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        matmul = []
    print(json.dumps({"matmul": matmul}, default=str), file=sys.stderr)
    print("measure_steps ...", file=sys.stderr)
    try:
        steps = microbench_steps.measure_steps(torch)
    except Exception as exc:  # noqa: BLE001
        print(f"  measure_steps failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        steps = []
    if steps:
        figures["attention_steps"] = steps
    print("measure_unfused ...", file=sys.stderr)
    try:
        unfused = microbench_unfused.measure_unfused(torch)
    except Exception as exc:  # noqa: BLE001
        print(f"  measure_unfused failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        unfused = []
    if unfused:
        figures["unfused_kernels"] = unfused
    print("measure_blocks ...", file=sys.stderr)
    try:
        floor = microbench_blocks.bench_floor_us(torch)
        figures["bench_floor_us"] = round(floor, 3)
        blocks = microbench_blocks.measure_blocks(torch, floor)
    except Exception as exc:  # noqa: BLE001
        print(f"  measure_blocks failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        blocks = []
    if blocks:
        figures["attention_blocks"] = blocks
    if torch.cuda.get_device_capability(0)[0] == 9:  # the 1-pass family's ping-pong kernel
        print("measure pingpong ...", file=sys.stderr)
        try:
            from attnsim.kernels.calibrate import microbench_pingpong

            pp = microbench_pingpong.measure(torch)
            figures.setdefault("host_call_us", {}).update(pp.get("host_call_us", {}))
            for key in ("attention_steps", "attention_blocks"):
                if pp.get(key):
                    figures[key] = [*figures.get(key, []), *pp[key]]
        except Exception as exc:  # noqa: BLE001
            print(f"  measure pingpong failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    # Log every measured figure first, so a failure below cannot lose a run.
    print(json.dumps({"figures": figures, "matmul": matmul}, default=str), file=sys.stderr)
    try:
        vers = versions(torch)
    except Exception as exc:  # noqa: BLE001
        print(f"  versions failed: {exc}", file=sys.stderr)
        vers = {}
    record = calibration_record(device, figures, matmul, vers, date)
    header = (
        f"# Written by `python -m attnsim.kernels.calibrate.microbench --out {args.out}` "
        f"on {device}.\n"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(header + yaml.safe_dump(record, sort_keys=False, width=100))
    print(yaml.safe_dump(figures, sort_keys=False), file=sys.stderr)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
