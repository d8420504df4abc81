"""GPU only: time the 1-pass kernel's score functions (sigmoid, softcap, ALiBi) against softmax.

Run: PYTHONPATH=. python benchmarks/score_probe.py --out DIR [--budget-s 200]

For each shape: the plain 1-pass Triton kernel with softmax, then with each score function
(`kernels.triton.attn_fwd.Score`), same tiling, timed with `triton.testing.do_bench` (median,
L2 flushed between runs). Each output is checked against float32 math written plainly on
two heads. Writes DIR/score-<device>-<date>.csv (one row per shape x score function, with
the softmax time of the same shape) for tests/unit/mappers/gpu/test_score_measured.py.
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
from attnsim.kernels.triton.attn_fwd import Score, attention_fwd

SHAPES = [  # (batch, heads, seq, head_dim, causal)
    (1, 16, 8192, 128, False),
    (1, 16, 8192, 128, True),
    (4, 16, 4096, 64, False),
    (2, 32, 4096, 128, True),
]
SCORES = {
    "sigmoid": Score(sigmoid=True),
    "softcap": Score(softcap=50.0),
    "alibi": Score(alibi=True),
}
TILING = dict(block_m=128, block_n=64, num_warps=8, num_stages=3)
FIELDS = (
    "device", "batch", "heads", "seq", "head_dim", "causal", "score", "block_m", "block_n",
    "num_warps", "num_stages", "median_ms", "softmax_median_ms", "max_abs_err", "torch",
    "triton", "timestamp",
)  # fmt: skip


def _check(out, q, k, v, causal: bool, score: Score) -> float:  # type: ignore[no-untyped-def]
    qs, ks, vs = (t[:1, :2].float() for t in (q, k, v))
    s = qs @ ks.transpose(-1, -2) * q.shape[-1] ** -0.5
    i = torch.arange(q.shape[2], device=q.device)[:, None]
    j = torch.arange(k.shape[2], device=q.device)[None, :]
    if score.alibi:
        slopes = torch.tensor([2 ** (-8 * (n + 1) / q.shape[1]) for n in range(2)], device=q.device)
        s = s - slopes[:, None, None] * (i - j).abs()
    if score.softcap is not None:
        s = score.softcap * torch.tanh(s / score.softcap)
    keep = (j <= i) if causal else torch.ones_like(s, dtype=torch.bool)
    if score.sigmoid:
        ref = torch.sigmoid(s + score.bias(k.shape[2])).masked_fill(~keep, 0.0) @ vs
    else:
        ref = torch.softmax(s.masked_fill(~keep, float("-inf")), -1) @ vs
    assert torch.isfinite(out).all(), "NaN or unwritten outputs"
    err = (out[:1, :2].float() - ref).abs().max().item()
    assert err < 3e-2, f"{score}: max error {err}"
    return err


def main() -> int:
    """Check and time every shape x score function; write the CSV (module docstring)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--budget-s", type=float, default=200)
    ap.add_argument(
        "--block-n",
        type=int,
        default=TILING["block_n"],
        help="key tile of every kernel (default 64; 128 is the other 8-warp tile)",
    )
    args = ap.parse_args()
    tiling = {**TILING, "block_n": args.block_n}
    start = time.monotonic()
    name = torch.cuda.get_device_name()
    stamp = dt.datetime.now(dt.UTC)
    args.out.mkdir(parents=True, exist_ok=True)
    tag = "" if args.block_n == TILING["block_n"] else f"-n{args.block_n}"
    path = args.out / f"score-{device_slug(name)}-{stamp:%Y-%m-%d}{tag}.csv"
    bench = functools.partial(triton.testing.do_bench, warmup=25, rep=100, return_mode="median")
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, FIELDS)
        writer.writeheader()
        for b, h, s, d, causal in SHAPES:
            if time.monotonic() - start > args.budget_s:
                print("budget spent; stopping", file=sys.stderr)
                break
            g = torch.Generator(device="cuda").manual_seed(s + d + h)
            q, k, v = (
                torch.randn(b, h, s, d, device="cuda", generator=g, dtype=torch.bfloat16)
                for _ in range(3)
            )
            softmax_ms = bench(functools.partial(attention_fwd, q, k, v, causal, **tiling))
            for label, score in SCORES.items():
                run = functools.partial(attention_fwd, q, k, v, causal, score=score, **tiling)
                err = _check(run(), q, k, v, causal, score)
                ms = bench(run)
                writer.writerow(dict(
                    device=name, batch=b, heads=h, seq=s, head_dim=d, causal=int(causal),
                    score=label, **tiling, median_ms=ms, softmax_median_ms=softmax_ms,
                    max_abs_err=err, torch=torch.__version__, triton=triton.__version__,
                    timestamp=stamp.isoformat(),
                ))  # fmt: skip
                fh.flush()
                ratio = ms / softmax_ms
                shape = f"{b}x{h}x{s} d{d} causal={int(causal)}"
                print(f"{shape} {label}: {ms:.3f} ms, softmax {softmax_ms:.3f} ms, {ratio:.3f}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
