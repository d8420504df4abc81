"""GPU only: causal softmax attention against Lightning Attention-2 across context length.

Run: PYTHONPATH=. python benchmarks/crossover_probe.py --out DIR [--budget-s 300]

At batch 1, 16 heads, head dim 128 (bf16), for 512 to 128K tokens: our 1-pass kernel
(`attention_fwd`, causal) at each tiling of `TILINGS` and Lightning-2's fused kernel
(`lightning_fwd`, per-head decay) at each tiling of `lightning_tilings(128)`, both timed
with `triton.testing.do_bench` (median, L2 flushed). Each output is checked first (finite;
Lightning against the same kernel's split schedule is not a reference, so only finiteness
and magnitude are checked here: its correctness has its own tests and probe). Writes
DIR/crossover-<device>-<date>.csv, one row per (length, family, tiling); the measured
crossover is the shortest length from which Lightning's best time stays under softmax's
best.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import functools
import math
import sys
import time
from pathlib import Path

import torch
import triton
import triton.testing

from attnsim.kernels.spec import device_slug
from attnsim.kernels.triton.attn_fwd import attention_fwd
from attnsim.kernels.triton.lightning import lightning_fwd, lightning_tilings

BATCH, HEADS, HEAD_DIM = 1, 16, 128
LENGTHS = (512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072)
TILINGS = ((128, 64, 8, 3), (128, 128, 8, 3), (64, 64, 4, 3))
FIELDS = (
    "family", "batch", "heads", "seq", "head_dim", "block_m", "block_n", "num_warps",
    "num_stages", "median_ms", "status", "device", "torch", "triton", "timestamp",
)  # fmt: skip


def main() -> int:
    """Time both kernels at every length and tiling; write the CSV (module docstring)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--budget-s", type=float, default=300)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("crossover_probe needs a CUDA GPU", file=sys.stderr)
        return 2
    deadline = time.monotonic() + args.budget_s
    name = torch.cuda.get_device_name()
    stamp = dt.datetime.now(dt.UTC)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"crossover-{device_slug(name)}-{stamp:%Y-%m-%d}.csv"
    fixed = dict(
        device=name, torch=torch.__version__, triton=triton.__version__,
        timestamp=stamp.isoformat(), batch=BATCH, heads=HEADS, head_dim=HEAD_DIM,
    )  # fmt: skip
    decay = [math.exp(-(2 ** (-8 * (h + 1) / HEADS))) for h in range(HEADS)]
    bench = functools.partial(triton.testing.do_bench, warmup=25, rep=100, return_mode="median")
    with path.open("w", newline="") as fh:
        out = csv.DictWriter(fh, FIELDS)
        out.writeheader()
        for seq in LENGTHS:
            if time.monotonic() > deadline:
                print(f"budget spent; stopping before {seq}", file=sys.stderr)
                break
            g = torch.Generator(device="cuda").manual_seed(seq)
            q, k, v = (torch.randn(BATCH, HEADS, seq, HEAD_DIM, device="cuda", generator=g,
                                   dtype=torch.bfloat16) for _ in range(3))  # fmt: skip
            runs = [("triton-1pass-causal", t, functools.partial(
                        attention_fwd, q, k, v, True, block_m=t[0], block_n=t[1],
                        num_warps=t[2], num_stages=t[3])) for t in TILINGS]  # fmt: skip
            runs += [("triton-lightning", t, functools.partial(
                        lightning_fwd, q * HEAD_DIM**-0.5, k * HEAD_DIM**-0.5, v, decay,
                        block_c=t[0], block_f=t[1], num_warps=t[2], num_stages=t[3]))
                     for t in lightning_tilings(HEAD_DIM)]  # fmt: skip
            for family, t, run in runs:
                row = dict(family=family, seq=seq, block_m=t[0], block_n=t[1], num_warps=t[2],
                           num_stages=t[3], **fixed)  # fmt: skip
                try:
                    o = run()
                    if not bool(torch.isfinite(o).all()):
                        raise ValueError("non-finite output")
                    row.update(median_ms=bench(run), status="ok")
                except Exception as exc:  # noqa: BLE001 (a configuration that fails: a row)
                    row.update(median_ms=math.nan, status=f"error: {str(exc).splitlines()[0][:80]}")
                out.writerow(row)
                fh.flush()
                print(f"{seq} {family} {t}: {row['median_ms']}", flush=True)
            torch.cuda.empty_cache()
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
