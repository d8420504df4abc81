"""GPU only: per-call cost of the 1-pass launcher on tiny shapes vs SDPA flash, in one run.

Run: python benchmarks/perf_small.py [--out DIR]

For each small validation-like shape it reports, in microseconds:
- host: host time of one call (mean of many back-to-back calls with no synchronization
  inside the loop, so the GPU queue never drains: this is the launcher's CPU cost);
- bench: `triton.testing.do_bench` median, as the validation suite times it (L2 flush before
  each call; host time beyond do_bench's head start shows up here);
- graph: the same call captured in a CUDA graph and replayed (GPU time without host cost).
Rows: our launcher with the tiling it picks itself, with 64x64 and 128x128 fixed, SDPA
flash and cuDNN, an empty Triton kernel (JIT launch) and, for scale, `torch.empty`.
The table is printed last; with --out, DIR/perf_small.csv gets every number.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import torch
import triton
from torch.nn.attention import SDPBackend, sdpa_kernel
from triton.testing import do_bench

from attnsim.kernels.triton.attn_fwd import attention_fwd

SHAPES = [  # (batch, heads, seq, head_dim, causal)
    (1, 4, 512, 64, True),
    (1, 4, 512, 64, False),
    (1, 4, 1024, 128, False),
    (1, 4, 2048, 64, True),
    (1, 4, 2048, 128, False),
    (1, 4, 4096, 128, True),
    (32, 16, 512, 128, False),
]


@triton.jit
def _empty(x):
    pass


def host_us(fn, n: int = 300) -> float:  # type: ignore[no-untyped-def]
    """Mean host time per call over n back-to-back calls (after a warm-up)."""
    for _ in range(20):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    t1 = time.perf_counter()
    torch.cuda.synchronize()
    return (t1 - t0) / n * 1e6


def graph_us(fn, n: int = 50) -> float:  # type: ignore[no-untyped-def]
    """GPU time per call from a CUDA graph of n calls (nan when capture fails)."""
    try:
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                fn()
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            for _ in range(n):
                fn()
        g.replay()
        torch.cuda.synchronize()
        ms = do_bench(g.replay, warmup=10, rep=50, return_mode="median")
        return float(ms) * 1e3 / n
    except Exception as exc:  # noqa: BLE001 - report and go on
        print(f"  graph capture failed: {type(exc).__name__}: {exc}"[:200], file=sys.stderr)
        torch.cuda.synchronize()
        return float("nan")


def bench_us(fn) -> float:  # type: ignore[no-untyped-def]
    """do_bench median in microseconds (L2 flushed before each call, as the suite times)."""
    return float(do_bench(fn, warmup=20, rep=100, return_mode="median")) * 1e3


def run_shape(b: int, h: int, s: int, d: int, causal: bool, record) -> None:  # type: ignore[no-untyped-def]
    """Record every call of one shape."""
    q, k, v = (torch.randn(b, h, s, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    label = f"{b}x{h}x{s} d{d} c{int(causal)}"
    record(label, "ours picked", lambda: attention_fwd(q, k, v, causal))
    for bm, bn, w, st in ((64, 64, 4, 3), (128, 128, 8 if d == 128 else 4, 3)):

        def fixed(bm: int = bm, bn: int = bn, w: int = w, st: int = st):  # type: ignore[no-untyped-def]
            return attention_fwd(
                q, k, v, causal, block_m=bm, block_n=bn, num_warps=w, num_stages=st
            )

        record(label, f"ours {bm}x{bn} w{w} s{st}", fixed)

    def blockptr():  # type: ignore[no-untyped-def]
        return attention_fwd(
            q, k, v, causal, block_m=64, block_n=64, num_warps=4, num_stages=3, tma=False
        )

    record(label, "ours 64x64 blockptr", blockptr)
    for name, backend in (
        ("sdpa-flash", SDPBackend.FLASH_ATTENTION),
        ("sdpa-cudnn", SDPBackend.CUDNN_ATTENTION),
    ):
        with sdpa_kernel(backend):  # entered once, as kernels/bench/harness.py does
            record(
                label,
                name,
                lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal),
            )


def main() -> int:
    """Measure and print."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    if not torch.cuda.is_available():
        print("needs a CUDA GPU", file=sys.stderr)
        return 2
    rows: list[dict[str, object]] = []

    def record(shape: str, name: str, fn) -> None:  # type: ignore[no-untyped-def]
        try:
            fn()
            torch.cuda.synchronize()
            r = {"shape": shape, "call": name, "host_us": host_us(fn), "bench_us": bench_us(fn),
                 "graph_us": graph_us(fn)}  # fmt: skip
        except Exception as exc:  # noqa: BLE001
            print(f"{shape} {name}: FAILED {type(exc).__name__}: {exc}"[:300], file=sys.stderr)
            return
        rows.append(r)
        print(f"{shape:<22} {name:<22} host {r['host_us']:7.1f}  bench {r['bench_us']:7.1f}  "
              f"graph {r['graph_us']:7.1f}", file=sys.stderr, flush=True)  # fmt: skip

    x = torch.empty(16, device="cuda")
    record("-", "empty triton (jit)", lambda: _empty[(1,)](x))
    record("-", "torch.empty", lambda: torch.empty((1, 4, 512, 64), device="cuda"))
    for shape in SHAPES:
        run_shape(*shape, record)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        with (args.out / "perf_small.csv").open("w", newline="") as f:
            wr = csv.DictWriter(f, ["shape", "call", "host_us", "bench_us", "graph_us"])
            wr.writeheader()
            wr.writerows(rows)
    print(f"{'shape':<22} {'call':<22} {'host_us':>8} {'bench_us':>9} {'graph_us':>9}")
    for r in rows:
        print(f"{r['shape']:<22} {r['call']:<22} {r['host_us']:8.1f} {r['bench_us']:9.1f} "
              f"{r['graph_us']:9.1f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
