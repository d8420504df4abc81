"""GPU only: validation and holdout suites for the sliding-window and score-function kernels.

Run: PYTHONPATH=. python benchmarks/masks_probe.py --out DIR [--suite validation|holdout|all]
     [--only window|score] [--head-dim 64|128] [--budget-s 480]

Two probe files (`reports.validation_kernels`), one row per timed configuration:

- DIR/masks-window-<device>-<date>.csv: the plain 1-pass Triton kernel (family
  `triton-window`) with causal sliding windows of 128-8K keys and 0-64 sinks over contexts of
  4K-128K, at three tilings, plus causal attention with no window (window 0) at the same
  shape and tiling; baselines in the same run: compiled FlexAttention with the same mask
  (`flex`, block mask of 128 x 128) and SDPA causal without a window (`sdpa-causal`).
- DIR/masks-score-<device>-<date>.csv: the same kernel with the score functions (family
  `triton-score`: softmax, sigmoid with bias -log M, tanh softcap 50, ALiBi) on the prefill
  grid, and the ping-pong kernel's softmax and sigmoid (column `schedule`: plain /
  pingpong); baselines: FlexAttention with the same score_mod (softmax, softcap, ALiBi; it
  has no sigmoid) and SDPA (softmax).

Every output of ours is first checked against float32 attention written plainly on the
first 256 and last 1024 query rows of two heads (bf16 tolerance); a configuration that fails
its check or does not fit is written with status "error: ..." and not timed. Times:
`do_bench`, median of 100 ms of repeats, L2 flushed. `attnsim validate gpu --measurements
FILE` reads the files.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import functools
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import triton
import triton.testing

from attnsim.kernels.spec import device_slug
from attnsim.kernels.triton.attn_fwd import Score, attention_fwd

WINDOW_FAMILY, SCORE_FAMILY = "triton-window", "triton-score"
WINDOW_SUITES = {  # (batch, heads, seq, head_dim), windows as (W, sinks); W = 0: causal, no window
    "validation": (
        [(1, 32, 4096, 128), (1, 16, 16384, 128), (1, 8, 65536, 128), (2, 16, 8192, 64),
         (1, 4, 131072, 128)],
        [(0, 0), (128, 0), (512, 0), (1024, 0), (2048, 0), (8192, 0), (1024, 64), (4096, 16)],
    ),
    "holdout": (
        [(1, 32, 8192, 64), (4, 8, 16384, 128), (1, 16, 32768, 64), (1, 2, 131072, 64)],
        [(0, 0), (256, 0), (768, 0), (4096, 0), (256, 32), (2048, 64)],
    ),
}  # fmt: skip
SCORE_SUITES = {  # (batch, heads, seq, head_dim, causal)
    "validation": [(1, 16, 8192, 128, False), (1, 32, 8192, 128, True), (2, 16, 4096, 64, True),
                   (1, 16, 16384, 128, True), (4, 32, 2048, 128, False)],
    "holdout": [(1, 8, 32768, 128, True), (2, 32, 4096, 64, False), (8, 16, 1024, 128, True)],
}  # fmt: skip
SCORES = {
    "softmax": Score(),
    "sigmoid": Score(sigmoid=True),
    "softcap": Score(softcap=50.0),
    "alibi": Score(alibi=True),
}
TILINGS = {128: [(128, 64, 8, 3), (128, 128, 8, 3), (128, 64, 4, 3)],
           64: [(128, 64, 4, 3), (128, 128, 8, 3), (64, 64, 4, 3)]}  # fmt: skip
# The window file has `sinks` and no `score`, the score file `score` and no `window`: the
# columns `reports.validation_probes` tells the two families' files apart by.
_COMMON = ("family", "suite", "batch", "heads", "seq", "head_dim", "causal")
_TIMING = ("block_m", "block_n", "num_warps", "num_stages", "median_ms", "p10_ms", "p90_ms",
           "status", "max_err", "device", "torch", "triton", "timestamp")  # fmt: skip
FIELDS = {
    "window": (*_COMMON, "window", "sinks", *_TIMING),
    "score": (*_COMMON, "score", "schedule", *_TIMING),
}
# the ping-pong kernel's tilings for the score functions it runs (schedule "pingpong")
PINGPONG_TILINGS = [(128, 128, 8, 3), (128, 64, 8, 3)]
PINGPONG_SCORES = ("softmax", "sigmoid")


def _time(fn: Callable[[], Any]) -> tuple[float, float, float]:
    p50, p10, p90 = triton.testing.do_bench(fn, warmup=25, rep=100, quantiles=[0.5, 0.1, 0.9])
    return float(p50), float(p10), float(p90)


def check(out: Any, q: Any, k: Any, v: Any, causal: bool, window: int, sinks: int,
          score: Score) -> float:  # fmt: skip
    """Max |O - O_ref| over the checked rows (float32 reference, the mask written plainly)."""
    assert torch.isfinite(out).all(), "NaN or unwritten outputs"
    n = q.shape[2]
    rows = torch.cat([torch.arange(min(256, n)), torch.arange(max(0, n - 1024), n)]).unique()
    rows = rows.to(q.device)
    qs, ks, vs = q[:1, :2, rows].float(), k[:1, :2].float(), v[:1, :2].float()
    s = qs @ ks.transpose(-1, -2) * q.shape[-1] ** -0.5
    i, j = rows[:, None], torch.arange(n, device=q.device)[None, :]
    if score.alibi:
        slopes = torch.tensor([2 ** (-8 * (x + 1) / q.shape[1]) for x in range(2)], device=q.device)
        s = s - slopes[:, None, None] * (i - j).abs()
    if score.softcap is not None:
        s = score.softcap * torch.tanh(s / score.softcap)
    keep = (j <= i) if causal else torch.ones_like(j <= i)
    if window:
        keep = keep & ((i - j < window) | (j < sinks))
    if score.sigmoid:
        ref = torch.sigmoid(s + score.bias(n)).masked_fill(~keep, 0.0) @ vs
    else:
        ref = torch.softmax(s.masked_fill(~keep, float("-inf")), -1) @ vs
    err = (out[:1, :2, rows].float() - ref).abs().max().item()
    assert err < 3e-2, f"max error {err}"
    return float(err)


class Flex:
    """Compiled FlexAttention; window and sinks are captured tensors (no recompiles).

    Gives NaN times after a failure.
    """

    def __init__(self, device: str) -> None:
        import torch._dynamo

        torch._dynamo.config.cache_size_limit = 64
        from torch.nn.attention.flex_attention import flex_attention

        self.fn = torch.compile(flex_attention)
        self.window = torch.zeros((), dtype=torch.int32, device=device)
        self.sinks = torch.zeros((), dtype=torch.int32, device=device)
        self.failed = False

    def window_mask(self, seq: int, window: int, sinks: int) -> Any:
        """The causal window (+ sinks) block mask; window 0: causal, no window."""
        from torch.nn.attention.flex_attention import create_block_mask

        w, s = self.window, self.sinks
        w.fill_(window if window else seq)
        s.fill_(sinks)

        def mask_mod(b: Any, h: Any, q: Any, kv: Any) -> Any:
            return (kv <= q) & ((q - kv < w) | (kv < s))

        # compiled: the eager builder materialises the whole seq x seq mask (128 GiB at 128K)
        return create_block_mask(mask_mod, None, None, seq, seq, device=w.device, _compile=True)

    def time(self, q: Any, k: Any, v: Any, **kw: Any) -> float:
        """Median ms of FlexAttention with `kw` (block_mask, score_mod), or NaN."""
        if self.failed:
            return math.nan
        try:
            self.fn(q, k, v, **kw)
            torch.cuda.synchronize()
            return _time(lambda: self.fn(q, k, v, **kw))[0]
        except Exception as exc:  # noqa: BLE001 (a compile failure: record NaN, go on)
            print(f"  flex failed: {str(exc).splitlines()[0][:160]}", file=sys.stderr)
            self.failed = True
            return math.nan


def _score_mod(label: str, heads: int, device: str) -> Any:
    if label == "softcap":
        return lambda s, b, h, q, kv: 50.0 * torch.tanh(s / 50.0)
    if label == "alibi":
        slopes = torch.tensor([2 ** (-8 * (n + 1) / heads) for n in range(heads)], device=device)
        return lambda s, b, h, q, kv: s - slopes[h] * (q - kv).abs()
    return None


class Writer:
    """Rows to one CSV, flushed as they come, with the run's fixed columns."""

    def __init__(
        self, path: Path, fields: tuple[str, ...], device: str, stamp: dt.datetime
    ) -> None:
        self.fh = path.open("w", newline="")
        self.csv = csv.DictWriter(self.fh, fields)
        self.csv.writeheader()
        self.fixed = dict(device=device, torch=torch.__version__, triton=triton.__version__,
                          timestamp=stamp.isoformat())  # fmt: skip
        self.path, self.n = path, 0

    def row(self, **kw: Any) -> None:
        """Write one row."""
        self.csv.writerow({**self.fixed, **kw})
        self.fh.flush()
        self.n += 1


def _ours(run: Callable[[], Any], checked: Callable[[Any], float]) -> dict[str, Any]:
    """Check, then time our kernel: the row's timing and status columns."""
    try:
        err = checked(run())
    except (triton.runtime.errors.OutOfResources, ValueError, AssertionError) as exc:
        return dict(status=f"error: {str(exc).splitlines()[0][:100]}")
    t = _time(run)
    return dict(median_ms=t[0], p10_ms=t[1], p90_ms=t[2], status="ok", max_err=err)


def _inputs(b: int, h: int, s: int, d: int, seed: int) -> tuple[Any, Any, Any]:
    g = torch.Generator(device="cuda").manual_seed(seed)
    q, k, v = (torch.randn(b, h, s, d, device="cuda", generator=g, dtype=torch.bfloat16)
               for _ in range(3))  # fmt: skip
    return q, k, v


def _sdpa(q: Any, k: Any, v: Any, causal: bool) -> tuple[float, float, float]:
    sdpa = torch.nn.functional.scaled_dot_product_attention
    return _time(functools.partial(sdpa, q, k, v, is_causal=causal))


def window_suite(suite: str, out: Writer, flex: Flex, deadline: float) -> None:
    """Windows x tilings per shape, with FlexAttention and SDPA causal."""
    shapes, windows = WINDOW_SUITES[suite]
    for b, h, s, d in shapes:
        q, k, v = _inputs(b, h, s, d, s + d + h)
        shape = dict(suite=suite, batch=b, heads=h, seq=s, head_dim=d, causal=1)
        t = _sdpa(q, k, v, True)
        out.row(family="sdpa-causal", window=0, sinks=0, median_ms=t[0], p10_ms=t[1],
                p90_ms=t[2], status="ok", **shape)  # fmt: skip
        for window, sinks in windows:
            if time.monotonic() > deadline:
                print("budget spent; stopping", file=sys.stderr)
                return
            ms = flex.time(q, k, v, block_mask=flex.window_mask(s, window, sinks))
            out.row(family="flex", window=window, sinks=sinks, median_ms=ms,
                    status="ok" if ms == ms else "error: flex", **shape)  # fmt: skip
            for bm, bn, w, st in TILINGS[d]:
                tiling = dict(block_m=bm, block_n=bn, num_warps=w, num_stages=st)
                kw = dict(window=window, sinks=sinks) if window else {}
                run = functools.partial(attention_fwd, q, k, v, True, **tiling, **kw)
                ref = functools.partial(check, q=q, k=k, v=v, causal=True, window=window,
                                        sinks=sinks, score=SCORES["softmax"])  # fmt: skip
                got = _ours(run, lambda o, c=ref: c(o))
                out.row(family=WINDOW_FAMILY, window=window, sinks=sinks, **tiling, **got,
                        **shape)  # fmt: skip
                said = got.get("median_ms", got["status"])
                print(f"{suite} {b}x{h}x{s} d{d} W={window} S={sinks} {bm}x{bn}/w{w}/s{st}: "
                      f"{said} (flex {ms:.3f})", flush=True)  # fmt: skip
        torch.cuda.empty_cache()


def score_suite(
    suite: str, out: Writer, flex: Flex, deadline: float, head_dim: int | None = None
) -> None:
    """Score functions x tilings per shape, with FlexAttention and SDPA (`head_dim`: its alone)."""
    for b, h, s, d, causal in SCORE_SUITES[suite]:
        if head_dim is not None and d != head_dim:
            continue
        q, k, v = _inputs(b, h, s, d, s + d + h + causal)
        shape = dict(suite=suite, batch=b, heads=h, seq=s, head_dim=d, causal=int(causal))
        t = _sdpa(q, k, v, causal)
        out.row(family="sdpa", score="softmax", median_ms=t[0], p10_ms=t[1], p90_ms=t[2],
                status="ok", **shape)  # fmt: skip
        mask = flex.window_mask(s, 0, 0) if causal else None
        for label, score in SCORES.items():
            if time.monotonic() > deadline:
                print("budget spent; stopping", file=sys.stderr)
                return
            if label != "sigmoid":
                ms = flex.time(q, k, v, block_mask=mask, score_mod=_score_mod(label, h, "cuda"))
                out.row(family="flex", score=label, median_ms=ms,
                        status="ok" if ms == ms else "error: flex", **shape)  # fmt: skip
            runs = [("plain", t) for t in TILINGS[d][:2]]
            runs += [("pingpong", t) for t in PINGPONG_TILINGS if label in PINGPONG_SCORES]
            for schedule, (bm, bn, w, st) in runs:
                tiling = dict(block_m=bm, block_n=bn, num_warps=w, num_stages=st)
                run = functools.partial(attention_fwd, q, k, v, causal, score=score, **tiling,
                                        schedule=schedule)  # fmt: skip
                ref = functools.partial(check, q=q, k=k, v=v, causal=causal, window=0, sinks=0,
                                        score=score)  # fmt: skip
                got = _ours(run, lambda o, c=ref: c(o))
                out.row(family=SCORE_FAMILY, score=label, schedule=schedule, **tiling, **got,
                        **shape)  # fmt: skip
                said = got.get("median_ms", got["status"])
                print(f"{suite} {b}x{h}x{s} d{d} causal={int(causal)} {label} {schedule} "
                      f"{bm}x{bn}/w{w}/s{st}: {said}", flush=True)  # fmt: skip
        torch.cuda.empty_cache()


def main() -> int:
    """Check and time the chosen suites; write the probe files (module docstring)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--suite", choices=("validation", "holdout", "all"), default="all")
    ap.add_argument("--only", choices=("window", "score"), default=None)
    ap.add_argument("--budget-s", type=float, default=480)
    ap.add_argument("--head-dim", type=int, choices=(64, 128), default=None,
                    help="the score suites' shapes of this head dim alone")  # fmt: skip
    args = ap.parse_args()
    if args.head_dim is not None and args.only != "score":
        ap.error("--head-dim needs --only score")
    if not torch.cuda.is_available():
        print("masks_probe needs a CUDA GPU", file=sys.stderr)
        return 2
    deadline = time.monotonic() + args.budget_s
    name = torch.cuda.get_device_name()
    stamp = dt.datetime.now(dt.UTC)
    args.out.mkdir(parents=True, exist_ok=True)
    suites = ("validation", "holdout") if args.suite == "all" else (args.suite,)
    flex = Flex("cuda")
    dev = device_slug(name)
    for kind, run in (("window", window_suite), ("score", score_suite)):
        if args.only not in (None, kind):
            continue
        path = args.out / f"masks-{kind}-{dev}-{stamp:%Y-%m-%d}.csv"
        out = Writer(path, FIELDS[kind], name, stamp)
        for suite in suites:
            if kind == "score":
                score_suite(suite, out, flex, deadline, args.head_dim)
            else:
                run(suite, out, flex, deadline)
        print(f"wrote {out.n} rows to {out.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
