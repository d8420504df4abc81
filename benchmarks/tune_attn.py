"""GPU only: sweep tilings of the 1-pass Triton kernel against SDPA flash and cuDNN.

Run: python benchmarks/tune_attn.py --out DIR [--budget-s 300]

Shapes follow the reference prefill runs (batch x seq = 16K tokens, 16 heads, bf16). For each
shape it times SDPA's flash and cuDNN backends, then each tiling (with and without TMA tensor
descriptors), checks the output against SDPA, and writes DIR/tune.csv; a summary table of the
best tiling per shape (TFLOP/s and ratios to flash and cuDNN) is printed last.
"""

from __future__ import annotations

import argparse
import csv
import functools
import sys
import time
from pathlib import Path

import torch
import triton.testing
from torch.nn.attention import SDPBackend, sdpa_kernel

from kernels.attn_fwd import attention_fwd

TILINGS = [  # (block_m, block_n, num_warps, num_stages)
    (128, 64, 4, 3), (128, 64, 8, 3), (128, 128, 8, 3), (128, 128, 8, 2), (128, 64, 4, 4),
    (128, 128, 4, 3), (64, 64, 4, 3), (128, 32, 4, 3), (64, 128, 4, 3), (128, 64, 8, 4),
]
SHAPES = [(seq, d, causal) for d in (128, 64) for causal in (False, True) for seq in (8192, 2048)]


def _time(fn) -> float:  # type: ignore[no-untyped-def]
    return float(triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median"))


def main() -> int:
    """Sweep and print."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budget-s", type=float, default=300.0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows = []
    summary = []
    for seq, d, causal in SHAPES:
        b, h = 16384 // seq, 16
        q, k, v = (torch.randn(b, h, seq, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        flops = 4 * b * h * seq * seq * d / (2 if causal else 1)
        base = {}
        for name, backend in (("flash", SDPBackend.FLASH_ATTENTION),
                              ("cudnn", SDPBackend.CUDNN_ATTENTION)):
            with sdpa_kernel(backend):
                ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
                base[name] = _time(functools.partial(
                    torch.nn.functional.scaled_dot_product_attention, q, k, v, is_causal=causal))
        best = None
        for tiling in TILINGS:
            for tma in (True, False):
                if time.perf_counter() - start > args.budget_s:
                    break
                bm, bn, w, s = tiling
                label = f"{bm}x{bn} w{w} s{s} tma{int(tma)}"
                try:
                    run = functools.partial(attention_fwd, q, k, v, causal=causal, block_m=bm,
                                            block_n=bn, num_warps=w, num_stages=s, tma=tma)
                    out = run()
                    err = ((out.float() - ref.float()).norm() / ref.float().norm()).item()
                    ms = _time(run)
                except Exception as exc:  # noqa: BLE001 - record and go on
                    print(f"seq={seq} d={d} causal={int(causal)} {label}: FAILED {exc!r:.200}",
                          file=sys.stderr, flush=True)
                    continue
                tflops = flops / ms / 1e9
                row = dict(seq=seq, d=d, causal=int(causal), tiling=label, ms=ms, tflops=tflops,
                           rel_err=err, flash_ms=base["flash"], cudnn_ms=base["cudnn"])
                rows.append(row)
                print(f"seq={seq} d={d} causal={int(causal)} {label}: {tflops:6.1f} TFLOP/s "
                      f"err {err:.1e}", file=sys.stderr, flush=True)
                if err < 2e-2 and (best is None or ms < best["ms"]):
                    best = row
        if best:
            summary.append(best)
    with (args.out / "tune.csv").open("w", newline="") as f:
        if rows:
            w = csv.DictWriter(f, list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    print(f"{'seq':>6} {'d':>4} {'c':>2} {'best tiling':<24} {'TFLOP/s':>8} {'/flash':>7} "
          f"{'/cudnn':>7}")
    for r in summary:
        print(f"{r['seq']:>6} {r['d']:>4} {r['causal']:>2} {r['tiling']:<24} {r['tflops']:8.1f} "
              f"{r['flash_ms'] / r['ms']:7.2f} {r['cudnn_ms'] / r['ms']:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
