"""GPU only: time the 1-pass kernel's sliding window (+ sinks) against causal attention.

Run: PYTHONPATH=. python benchmarks/window_probe.py --out DIR [--budget-s 240]

For each shape and tiling: the plain 1-pass Triton kernel, causal, and the same kernel with
windows of several widths (and one window with sinks), timed with `triton.testing.do_bench`
(median of 100 ms of repeats, L2 flushed between runs). Each windowed output is first checked
against float32 attention with the mask written plainly (bf16 tolerance, every element
written). Writes DIR/window-<device>-<date>.csv: one row per (shape, tiling, window), with the
causal time of the same shape and tiling, so the model can be checked on the ratio and on
each time (tests/unit/mappers/gpu/test_window_measured.py).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import functools
import sys
import time
from pathlib import Path

import torch
import triton
import triton.testing

from attnsim.kernels.spec import device_slug
from attnsim.kernels.triton.attn_fwd import attention_fwd

SHAPES = [  # (batch, heads, seq, head_dim)
    (1, 16, 16384, 128),
    (2, 16, 8192, 128),
    (1, 8, 32768, 128),
    (4, 16, 4096, 64),
    (1, 32, 16384, 64),
]
TILINGS = [(128, 64, 8, 3), (128, 128, 8, 3), (128, 64, 4, 3)]
WINDOWS = [(256, 0), (1024, 0), (4096, 0), (1024, 64)]  # (window, sinks)
FIELDS = (
    "device", "batch", "heads", "seq", "head_dim", "window", "sinks", "block_m", "block_n",
    "num_warps", "num_stages", "median_ms", "p10_ms", "p90_ms", "causal_median_ms",
    "max_abs_err", "torch", "triton", "timestamp",
)  # fmt: skip


def _time(fn) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    p50, p10, p90 = triton.testing.do_bench(fn, warmup=25, rep=100, quantiles=[0.5, 0.1, 0.9])
    return float(p50), float(p10), float(p90)


def _check(out, q, k, v, window: int, sinks: int) -> float:  # type: ignore[no-untyped-def]
    """Max |O - O_ref| on the first 2 heads (float32 reference of the written-out mask)."""
    assert torch.isfinite(out).all(), "NaN or unwritten outputs"
    qs, ks, vs = (t[:1, :2].float() for t in (q, k, v))
    s = qs @ ks.transpose(-1, -2) * q.shape[-1] ** -0.5
    i = torch.arange(q.shape[2], device=q.device)[:, None]
    j = torch.arange(k.shape[2], device=q.device)[None, :]
    keep = (j <= i) & ((i - j < window) | (j < sinks))
    ref = torch.softmax(s.masked_fill(~keep, float("-inf")), -1) @ vs
    err = (out[:1, :2].float() - ref).abs().max().item()
    assert err < 2e-2, f"window {window} sinks {sinks}: max error {err}"
    return err


def main() -> int:
    """Check and time every shape x tiling x window; write the CSV (module docstring)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--budget-s", type=float, default=240)
    args = ap.parse_args()
    start = time.monotonic()
    name = torch.cuda.get_device_name()
    stamp = dt.datetime.now(dt.UTC)
    path = args.out / f"window-{device_slug(name)}-{stamp:%Y-%m-%d}.csv"
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, FIELDS)
        writer.writeheader()
        for b, h, s, d in SHAPES:
            g = torch.Generator(device="cuda").manual_seed(s + d)
            q, k, v = (
                torch.randn(b, h, s, d, device="cuda", generator=g, dtype=torch.bfloat16)
                for _ in range(3)
            )
            for bm, bn, w, st in TILINGS:
                if time.monotonic() - start > args.budget_s:
                    print("budget spent; stopping", file=sys.stderr)
                    return 0
                tiling = dict(block_m=bm, block_n=bn, num_warps=w, num_stages=st)
                try:
                    causal = _time(functools.partial(attention_fwd, q, k, v, True, **tiling))
                except (triton.runtime.errors.OutOfResources, ValueError) as exc:
                    print(f"skip {b}x{h}x{s} d{d} {bm}x{bn}/w{w}/s{st}: {exc}", file=sys.stderr)
                    continue
                for window, sinks in WINDOWS:
                    run = functools.partial(
                        attention_fwd, q, k, v, True, window=window, sinks=sinks, **tiling
                    )
                    err = _check(run(), q, k, v, window, sinks)
                    t = _time(run)
                    row = dict(
                        device=name, batch=b, heads=h, seq=s, head_dim=d, window=window,
                        sinks=sinks, block_m=bm, block_n=bn, num_warps=w, num_stages=st,
                        median_ms=t[0], p10_ms=t[1], p90_ms=t[2], causal_median_ms=causal[0],
                        max_abs_err=err, torch=torch.__version__, triton=triton.__version__,
                        timestamp=stamp.isoformat(),
                    )  # fmt: skip
                    writer.writerow(row)
                    fh.flush()
                    rows.append(row)
                    print(
                        f"{b}x{h}x{s} d{d} {bm}x{bn}/w{w}/s{st} W={window} S={sinks}: "
                        f"{t[0]:.3f} ms, causal {causal[0]:.3f} ms, ratio {t[0] / causal[0]:.3f}",
                        flush=True,
                    )
    print(f"wrote {len(rows)} rows to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
