"""GPU only: the `triton-bwd` attention backward against SDPA's flash and cuDNN backward.

Run: PYTHONPATH=. python benchmarks/bwd_probe.py --out $OUT/bwd.csv [--quick] [--budget-s 270]
     [--match FIELD=VALUE,...] [--host-only] [--jobs N]

First it compiles every kernel variant the run will launch (checks, timed shapes and the host
probe's) in `--jobs` worker processes (`attn_bwd.compile_bwd`, into Triton's on-disk cache):
one at a time, compiling took most of a full run (about 1-2 s for each of ~200 variants).
Then, before timing, it measures this host's cost of one launcher call
(`kernels.calibrate.microbench_bwd.host_calls`: per dq mode and mask, and the same calls
through Triton's JIT as the launcher ran before its launches were planned, a diagnostic;
plus the forward launchers' figures, `microbench_steps.host_calls`, and do_bench's L2 flush)
and writes them to `<csv stem>-host.yaml` beside the CSV
(`kernels.bench.measure.write_host_figures`): calls shorter on the GPU than on the host run at
the host's speed, which differs between machines and runs; `attnsim validate gpu` predicts
this file's rows with these figures. `--host-only` writes that file and times nothing.

For every shape of VALIDATION then HOLDOUT (bf16; `--quick`: QUICK and two tilings), it times
the backward only, with `triton.testing.do_bench` (median, 10th and 90th percentiles, warm-up
first, L2 flushed between runs):

- `triton-bwd`: `attention_bwd(q, k, v, o, do, lse)` for every tiling of `BWD_TILINGS` and
  both dq modes, o and lse computed beforehand; the time includes the D = rowsum(dO * O)
  pre-pass (which zeroes the float32 dQ buffer in atomic mode), the dQ cast (atomic) or the
  dQ kernel (separate). `host_us`: the launcher's host time per call on that row's inputs,
  right after its timing (back-to-back calls issued before the GPU catches up);
- `sdpa-flash-bwd` / `sdpa-cudnn-bwd`: SDPA's forward run once under that backend with
  requires_grad, then `torch.autograd.grad(out, (q, k, v), do, retain_graph=True)` timed
  (it includes the backend's own pre-processing).

Before timing, each (head dim, causal, GQA, tiling, dq mode) of ours is checked once on a small
shape (1 x 4 heads x 512, bf16) against float64 autograd (FlashAttention's rule: error at most
twice a plain bf16 implementation's plus 1% of the reference's largest value); a configuration
that fails is recorded with its status and not timed. One CSV row per (shape, family, tiling,
dq mode), flushed at once; any exception (compile failure, out of memory) is recorded in
`status` and the run goes on. `--budget-s` counts from the start (compiles and host probe
included): past it the remaining rows are written as skipped. A summary (ours best vs flash and
vs cuDNN per shape, the host figures) is printed last.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import triton

from attnsim.kernels.calibrate.microbench_bwd import (
    HOST_CLASSES,
    HOST_SHAPE,
    compile_in_workers,
    write_host_file,
)
from attnsim.kernels.triton import attn_bwd
from attnsim.kernels.triton.attn_bwd import (
    BWD_TILINGS,
    attention_bwd,
    bwd_flops,
    bwd_launches,
    default_bwd_tiling,
    plain_attention_grads,
    softmax_lse,
)


@dataclass(frozen=True)
class Shape:
    """One backward problem: sizes, mask and the suite it belongs to."""

    suite: str
    batch: int
    heads: int
    kv_heads: int
    seq: int
    head_dim: int
    causal: bool

    @property
    def flops(self) -> int:
        """Backward FLOPs (`bwd_flops`)."""
        return bwd_flops(self.batch, self.heads, self.seq, self.seq, self.head_dim, self.causal)


@dataclass(frozen=True)
class Config:
    """One timed configuration: a family and, for ours, its tiling and dq mode."""

    family: str
    block_m: int = 0
    block_n: int = 0
    num_warps: int = 0
    num_stages: int = 0
    dq_mode: str = ""


def _grid(suite, sizes, head_dims=(64, 128), causals=(False, True)):  # type: ignore[no-untyped-def]
    """Shapes of a suite: (batch, heads, kv_heads, seq) x head dims x causal."""
    return [
        Shape(suite, b, h, g, s, d, c) for b, h, g, s in sizes for d in head_dims for c in causals
    ]


VALIDATION = _grid(
    "validation",
    [(4, 32, 32, 1024), (2, 32, 32, 2048), (1, 32, 32, 4096), (1, 32, 32, 8192),
     (8, 16, 16, 1024), (1, 16, 16, 16384)],
)  # fmt: skip
HOLDOUT = _grid(
    "holdout", [(2, 24, 24, 3072), (1, 40, 40, 6144), (16, 8, 8, 512), (4, 20, 20, 2560)]
) + _grid("holdout", [(2, 32, 8, 4096), (1, 32, 8, 8192)], head_dims=(128,))
QUICK = [
    Shape("validation", 2, 16, 16, 1024, 64, True),
    Shape("holdout", 1, 32, 8, 2048, 128, False),
]
QUICK_TILINGS = BWD_TILINGS[:2]
BASELINES = ("sdpa-flash-bwd", "sdpa-cudnn-bwd")
FIELDS = (
    "family", "suite", "batch", "heads", "kv_heads", "seq_q", "seq_k", "head_dim", "causal",
    "dtype", "block_m", "block_n", "num_warps", "num_stages", "dq_mode", "head_group",
    "diag_loop", "dp_first", "median_ms", "p10_ms", "p90_ms", "flops", "tflops", "status",
    "max_err", "err_allowed", "host_us", "device", "torch", "triton", "timestamp",
)  # fmt: skip
# where and in what the GPU side runs (the CPU tests switch them to the interpreter and fp32)
DEVICE, DTYPE, CHECK_SEQ = "cuda", torch.bfloat16, 512
DTYPE_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}
WARMUP_MS, REP_MS = 10, 50  # do_bench's warm-up and repetition budgets per timing
HOST_ROW_MS = 5.0  # GPU work the per-row host timing may queue (at least 2 calls, at most 20)
ASSUMED_TFLOPS = 150.0  # for the run-time estimate only
COMPILE_S = 4.0  # one compile job (2-3 kernels) on one worker, for the estimate
JOBS = min(16, os.cpu_count() or 1)  # compile workers


def matches(shape: Shape, spec: str) -> bool:
    """Whether `shape` has every FIELD=VALUE of `spec` (comma-separated; causal as 0/1)."""
    for item in spec.split(","):
        field, sep, value = item.partition("=")
        if not sep or field not in Shape.__dataclass_fields__:
            raise ValueError(f"--match {spec!r}: expected FIELD=VALUE, FIELD one of {SHAPE_FIELDS}")
        have = getattr(shape, field)
        if (have if field == "suite" else str(int(have))) != value.strip():
            return False
    return True


SHAPE_FIELDS = "suite, batch, heads, kv_heads, seq, head_dim, causal"


def configs(quick: bool = False) -> list[Config]:
    """Ours for every candidate tiling and dq mode, then the two SDPA baselines."""
    tilings = QUICK_TILINGS if quick else BWD_TILINGS
    ours = [Config("triton-bwd", *t, mode) for t in tilings for mode in ("atomic", "separate")]
    return ours + [Config(name) for name in BASELINES]


def estimate_s(shapes: list[Shape], cfgs: list[Config], jobs: int = JOBS) -> float:
    """Rough seconds of a run: compiles on `jobs` workers, host probe, checks and timings."""
    ours = [c for c in cfgs if c.family == "triton-bwd"]
    total = 0.0
    for s in shapes:
        call_s = s.flops / (ASSUMED_TFLOPS * 1e12)
        calls = 6 + max(1, WARMUP_MS / 1e3 / call_s) + max(1, REP_MS / 1e3 / call_s)
        host_calls = 1 + max(2, min(20, HOST_ROW_MS / 1e3 / call_s))
        total += len(cfgs) * (calls * call_s + 0.05) + len(ours) * host_calls * call_s
        total += 0.5  # inputs, o and lse
    checks = len({check_key(s, c) for s in shapes for c in ours})
    compiles = COMPILE_S * len(compile_jobs(shapes, cfgs)) / max(1, jobs)
    return total + 0.2 * checks + compiles + 10.0 + 3.0 + 8.0  # pool start, warm-up, host


def _int_class(x: object) -> object:
    """How Triton specializes an argument: 1, a multiple of 16, another integer; else its type."""
    if isinstance(x, bool) or not isinstance(x, int):
        return type(x).__name__
    return 1 if x == 1 else "D" if x % 16 == 0 else "i"


def compile_jobs(shapes: list[Shape], cfgs: list[Config]) -> list[tuple]:  # type: ignore[type-arg]
    """`attn_bwd.compile_bwd` arguments, one per distinct set of kernels the run compiles.

    Our configurations on every timed shape and on its check shape, and the host probe's
    calls; two calls share a job when their launches specialize alike (`_int_class`).
    """
    found: dict[tuple, tuple] = {}  # type: ignore[type-arg]
    ours = [c for c in cfgs if c.family == "triton-bwd"]
    calls = [
        (t, (c.block_m, c.block_n, c.num_warps, c.num_stages), c.dq_mode)
        for s in shapes
        for c in ours
        for t in (s, check_shape(s))
    ]
    b, h, seq, d = HOST_SHAPE
    calls += [
        (Shape("host", b, h, h, seq, d, causal), default_bwd_tiling(d), mode)
        for mode, causal in HOST_CLASSES
    ]
    for s, tiling, mode in calls:
        specs = bwd_launches(s.batch, s.heads, s.kv_heads, s.seq, s.seq, s.head_dim, DTYPE,
                             s.causal, 1.0, tiling, mode)  # fmt: skip
        key = tuple(
            (x.fn.__name__, tuple(map(_int_class, x.scalars)), tuple(sorted(x.meta.items())),
             x.num_warps, x.num_stages)
            for x in specs
        )  # fmt: skip
        found.setdefault(key, (s.batch, s.heads, s.kv_heads, s.seq, s.head_dim, s.causal,
                               tiling, mode, DTYPE_NAMES[DTYPE]))  # fmt: skip
    return list(found.values())


def check_shape(shape: Shape) -> Shape:
    """The small shape `shape`'s configurations are checked on (1 x 4 heads x CHECK_SEQ)."""
    kv = 4 if shape.kv_heads == shape.heads else 2
    return Shape(shape.suite, 1, 4, kv, CHECK_SEQ, shape.head_dim, shape.causal)


def check_key(shape: Shape, cfg: Config) -> tuple:  # type: ignore[type-arg]
    """What a correctness check covers: the compiled variant and the GQA path."""
    return (shape.head_dim, shape.causal, shape.kv_heads != shape.heads, cfg)


def row_of(shape: Shape, cfg: Config, info: dict[str, str], result: dict) -> dict:  # type: ignore[type-arg]
    """One CSV row: the shape, the configuration, the result and the environment."""
    med = result.get("median_ms")
    ok = med is not None and med > 0
    return {
        "family": cfg.family, "suite": shape.suite, "batch": shape.batch, "heads": shape.heads,
        "kv_heads": shape.kv_heads, "seq_q": shape.seq, "seq_k": shape.seq,
        "head_dim": shape.head_dim, "causal": int(shape.causal), "dtype": DTYPE_NAMES[DTYPE],
        "block_m": cfg.block_m, "block_n": cfg.block_n, "num_warps": cfg.num_warps,
        "num_stages": cfg.num_stages, "dq_mode": cfg.dq_mode,
        "head_group": (attn_bwd.BWD_HEAD_GROUP if shape.causal else 1) if cfg.dq_mode else "",
        "diag_loop": int(attn_bwd.BWD_DIAG_LOOP) if cfg.dq_mode else "",
        "dp_first": int(attn_bwd.BWD_DP_FIRST) if cfg.dq_mode else "",
        "median_ms": _fmt(med), "p10_ms": _fmt(result.get("p10_ms")),
        "p90_ms": _fmt(result.get("p90_ms")), "flops": shape.flops,
        "tflops": _fmt(shape.flops / med / 1e9 if ok else None),
        "status": result.get("status", "ok"), "max_err": _fmt(result.get("max_err")),
        "err_allowed": _fmt(result.get("err_allowed")), "host_us": _fmt(result.get("host_us")),
        **info,
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }  # fmt: skip


def _fmt(x: float | None) -> str:
    return "" if x is None else f"{x:.6g}"


Prepare = Callable[[Shape], object]
Measure = Callable[[object, Shape, Config], dict]  # type: ignore[type-arg]


def run(shapes: list[Shape], cfgs: list[Config], out: Path, prepare: Prepare, measure: Measure,
        info: dict[str, str], budget_s: float = 480.0,
        clock: Callable[[], float] = time.monotonic) -> list[dict]:  # type: ignore[type-arg]  # fmt: skip
    """Measure every (shape, config) and write one flushed CSV row each; return the rows.

    `prepare(shape)` builds the inputs (an exception marks all of the shape's rows),
    `measure(case, shape, cfg)` returns median_ms, p10_ms, p90_ms, max_err, err_allowed and
    status (missing: ok); an exception becomes status "error: ...". Past `budget_s` the rows
    say "skipped: budget".
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    t0 = clock()
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        f.flush()
        for shape in shapes:
            case, failed = None, None
            if clock() - t0 <= budget_s:
                try:
                    case = prepare(shape)
                except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
                    failed = f"error: inputs: {type(exc).__name__}: {_short(exc)}"
            for cfg in cfgs:
                if clock() - t0 > budget_s:
                    result: dict = {"status": "skipped: budget"}  # type: ignore[type-arg]
                elif failed:
                    result = {"status": failed}
                else:
                    try:
                        result = measure(case, shape, cfg)
                    except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
                        result = {"status": f"error: {type(exc).__name__}: {_short(exc)}"}
                row = row_of(shape, cfg, info, result)
                writer.writerow(row)
                f.flush()
                rows.append(row)
                print(_line(row), flush=True)
            del case
            _free()
    return rows


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


def _line(row: dict) -> str:  # type: ignore[type-arg]
    tiling = f"{row['block_m']}x{row['block_n']}w{row['num_warps']}s{row['num_stages']}"
    if not row["block_m"]:
        tiling = "-"
    return (
        f"{row['suite'][:4]} {row['batch']}x{row['heads']}/{row['kv_heads']}x{row['seq_q']} "
        f"d{row['head_dim']} c{row['causal']} {row['family']} {tiling} {row['dq_mode']}: "
        f"{row['median_ms'] or '-'} ms {row['tflops'] or '-'} TF [{row['status']}] "
        f"err {row['max_err'] or '-'}"
    )


def summary(rows: list[dict]) -> list[str]:  # type: ignore[type-arg]
    """Per shape: our best time (and its tiling) and its speed-up over flash and cuDNN."""
    by_shape: dict[tuple, dict[str, dict]] = {}  # type: ignore[type-arg]
    for r in rows:
        if r["status"] != "ok" or not r["median_ms"]:
            continue
        key = (r["suite"], r["batch"], r["heads"], r["kv_heads"], r["seq_q"], r["head_dim"],
               r["causal"])  # fmt: skip
        best = by_shape.setdefault(key, {})
        old = best.get(r["family"])
        if old is None or float(r["median_ms"]) < float(old["median_ms"]):
            best[r["family"]] = r
    lines = ["suite shape                d    c  ours_ms  tiling           flash_x  cudnn_x"]
    for key, best in by_shape.items():
        ours = best.get("triton-bwd")
        if ours is None:
            continue
        ms = float(ours["median_ms"])
        ratio = {f: float(best[f]["median_ms"]) / ms if f in best else math.nan for f in BASELINES}
        shape = f"{key[1]}x{key[2]}/{key[3]}x{key[4]}"
        tiling = f"{ours['block_m']}x{ours['block_n']}w{ours['num_warps']}s{ours['num_stages']}"
        lines.append(
            f"{key[0][:5]:5} {shape:20} {key[5]:<4} {key[6]}  {ms:7.3f}  "
            f"{tiling:10} {ours['dq_mode'][:3]}  {ratio['sdpa-flash-bwd']:6.2f}  "
            f"{ratio['sdpa-cudnn-bwd']:6.2f}"
        )
    lines.append("flash_x, cudnn_x: baseline time / ours (> 1: ours faster)")
    return lines


# ----------------------------------------------------------------------------- GPU side


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _free() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _randn(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    return torch.randn(shape, device=DEVICE, dtype=DTYPE, generator=gen)


def make_case(shape: Shape, seed: int = 0) -> dict:  # type: ignore[type-arg]
    """bf16 q, k, v, dO on the GPU, O from SDPA and the float32 LSE from `softmax_lse`."""
    import torch.nn.functional as F

    gen = torch.Generator(device=DEVICE).manual_seed(seed)
    b, h, g, s, d = shape.batch, shape.heads, shape.kv_heads, shape.seq, shape.head_dim
    q, k, v = _randn((b, h, s, d), gen), _randn((b, g, s, d), gen), _randn((b, g, s, d), gen)
    do = _randn((b, h, s, d), gen)
    with torch.no_grad():
        o = F.scaled_dot_product_attention(q, k, v, is_causal=shape.causal, enable_gqa=g != h)
    lse = softmax_lse(q, k, shape.causal)
    return {"q": q, "k": k, "v": v, "o": o.contiguous(), "do": do, "lse": lse}


def reference_grads(case: dict, causal: bool, dtype: torch.dtype) -> tuple:  # type: ignore[type-arg]
    """(O, dq, dk, dv) of plain attention on `case` computed in `dtype`."""
    return plain_attention_grads(case["q"], case["k"], case["v"], case["do"], causal, dtype=dtype)


def check_ours(shape: Shape, cfg: Config) -> dict:  # type: ignore[type-arg]
    """Our gradients on a small shape like `shape` vs float64 autograd (FlashAttention's rule)."""
    case = make_case(check_shape(shape), seed=1)
    o, *ref = reference_grads(case, shape.causal, torch.float64)
    case["o"] = o.detach().to(DTYPE)
    _, *naive = reference_grads(case, shape.causal, DTYPE)
    ours = _ours(case, shape, cfg)()
    _sync()
    errs = [(a.double() - r).abs().max().item() for a, r in zip(ours, ref, strict=True)]
    allowed = [
        2 * (n.double() - r).abs().max().item() + 0.01 * r.abs().max().item()
        for n, r in zip(naive, ref, strict=True)
    ]
    ok = all(math.isfinite(e) and e <= a for e, a in zip(errs, allowed, strict=True))
    status = "ok" if ok else "wrong: dq, dk, dv errors " + " ".join(f"{e:.3g}" for e in errs)
    return {"max_err": max(errs), "err_allowed": min(allowed), "status": status}


def _ours(case: dict, shape: Shape, cfg: Config) -> Callable[[], tuple]:  # type: ignore[type-arg]
    c = case
    return lambda: attention_bwd(
        c["q"], c["k"], c["v"], c["o"], c["do"], c["lse"], shape.causal, None, cfg.block_m,
        cfg.block_n, cfg.num_warps, cfg.num_stages, cfg.dq_mode,
    )  # fmt: skip


def _sdpa_bwd(case: dict, shape: Shape, family: str) -> Callable[[], tuple]:  # type: ignore[type-arg]
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backend = {"sdpa-flash-bwd": SDPBackend.FLASH_ATTENTION,
               "sdpa-cudnn-bwd": SDPBackend.CUDNN_ATTENTION}[family]  # fmt: skip
    q, k, v = (case[n].detach().requires_grad_() for n in ("q", "k", "v"))
    with sdpa_kernel(backend):
        out = F.scaled_dot_product_attention(
            q, k, v, is_causal=shape.causal, enable_gqa=shape.kv_heads != shape.heads
        )
    do = case["do"]
    return lambda: torch.autograd.grad(out, (q, k, v), do, retain_graph=True)


def time_cudnn_row(case: dict, shape: Shape, base: dict, writer: csv.DictWriter) -> float:  # type: ignore[type-arg]
    """Time SDPA's cuDNN backward on `case`; its median ms, NaN when it failed.

    Writes its row with `writer`: `base` and the times, or the error (the side probes'
    baseline: `bwd_order_probe.py`, `bwd_tma_probe.py`).
    """
    from triton.testing import do_bench

    try:
        fn = _sdpa_bwd(case, shape, "sdpa-cudnn-bwd")
        med, p10, p90 = do_bench(fn, warmup=10, rep=50, quantiles=[0.5, 0.1, 0.9])
    except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
        writer.writerow({**base, "family": "sdpa-cudnn-bwd", "status": f"error: {exc}"[:200]})
        return float("nan")
    row = {"median_ms": med, "p10_ms": p10, "p90_ms": p90, "status": "ok"}
    if "tflops" in writer.fieldnames:
        row["tflops"] = shape.flops / med / 1e9
    writer.writerow({**base, "family": "sdpa-cudnn-bwd", **row})
    return float(med)


class GpuMeasure:
    """`measure` of `run` on the GPU: checks ours once per `check_key`, then times."""

    def __init__(self) -> None:
        self.checked: dict[tuple, dict] = {}  # type: ignore[type-arg]

    def __call__(self, case: object, shape: Shape, cfg: Config) -> dict:  # type: ignore[type-arg]
        """Time one configuration on the prepared case (ours only after its check passed)."""
        from triton.testing import do_bench

        assert isinstance(case, dict)
        result: dict = {}  # type: ignore[type-arg]
        if cfg.family == "triton-bwd":
            key = check_key(shape, cfg)
            if key not in self.checked:
                try:
                    self.checked[key] = check_ours(shape, cfg)
                except Exception as exc:  # noqa: BLE001 - a failed check is a status
                    failed = f"error: check: {type(exc).__name__}: {_short(exc)}"
                    self.checked[key] = {"status": failed}
                _free()
            result = dict(self.checked[key])
            if result.get("status", "ok") != "ok":
                return result
            fn = _ours(case, shape, cfg)
        else:
            fn = _sdpa_bwd(case, shape, cfg.family)
        fn()
        _sync()
        med, p10, p90 = do_bench(fn, warmup=WARMUP_MS, rep=REP_MS, quantiles=[0.5, 0.1, 0.9])
        if cfg.family == "triton-bwd":
            result["host_us"] = issue_us(fn, med)
        return {**result, "median_ms": med, "p10_ms": p10, "p90_ms": p90, "status": "ok"}


def issue_us(fn: Callable[[], object], call_ms: float) -> float:
    """Host µs per call of `fn` issued back to back, timed before the GPU is waited for.

    As many calls as queue about HOST_ROW_MS of GPU work (2 to 20, after one untimed call):
    the launches are asynchronous, so the loop runs at the host's speed even when each call is
    longer on the GPU.
    """
    n = max(2, min(20, int(HOST_ROW_MS / max(call_ms, 1e-3))))
    _sync()
    fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    host = (time.perf_counter() - t0) / n * 1e6
    _sync()
    return host


def warm_up_gpu(seconds: float = 3.0) -> None:
    """Keep the GPU busy for `seconds` before timing.

    The first shape of a run on a freshly started machine timed at up to 2.4x its later
    median (superseded/bwd-h200-2026-12-04-rerun.csv, 16 x 8 heads x 512, head dim 64: 0.22-0.24 ms
    against 0.10-0.11 ms for the same configurations a minute earlier in another run).
    """
    a = torch.randn(4096, 4096, device=DEVICE, dtype=DTYPE)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for _ in range(20):
            a = (a @ a).clamp_(-1, 1)
        _sync()


def env_info() -> dict[str, str]:
    """device, torch and triton strings of every row."""
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    return {"device": name, "torch": torch.__version__, "triton": triton.__version__}


def side_row(shape: Shape, info: dict[str, str]) -> dict[str, object]:
    """The shape, device and time columns of a side probe's row (`bwd_tma_probe.py`, ...)."""
    base: dict[str, object] = {
        k: getattr(shape, k) for k in ("suite", "batch", "heads", "kv_heads", "seq")
    }
    base |= {"head_dim": shape.head_dim, "causal": int(shape.causal), **info}
    base["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    return base


def parse_tilings(text: str) -> list[tuple[int, ...]]:
    """BMxBNxWARPSxSTAGES, comma-separated; ValueError naming what was expected."""
    try:
        tilings = [tuple(int(v) for v in t.split("x")) for t in text.split(",") if t]
    except ValueError:
        raise ValueError(f"--tilings: expected BMxBNxWARPSxSTAGES, got {text!r}") from None
    if any(len(t) != 4 for t in tilings):
        raise ValueError(f"--tilings: expected four numbers each, got {text!r}")
    return tilings


def host_summary(rows: list[dict], figures: dict[str, object] | None) -> list[str]:  # type: ignore[type-arg]
    """The launcher's host µs per call: the host file's figures, and per row of ours."""
    lines = []
    if figures:
        calls = figures["host_call_us"]
        assert isinstance(calls, dict)
        bwd = ", ".join(f"{k} {v:.1f}" for k, v in calls.items() if k.startswith("bwd"))
        lines.append(f"host_call_us: {bwd}; do_bench flush {figures['bench_flush_us']} us")
    per_row = sorted(float(r["host_us"]) for r in rows if r.get("host_us"))
    if per_row:
        lines.append(
            f"host_us of {len(per_row)} timed rows of ours: median {statistics.median(per_row):.1f}"
            f", 10th-90th {per_row[len(per_row) // 10]:.1f}-{per_row[(9 * len(per_row)) // 10]:.1f}"
            f", max {per_row[-1]:.1f}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    """Compile, measure the host, run the grid, print the summary; 2 without a CUDA GPU."""
    begin = time.monotonic()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="CSV file to write")
    parser.add_argument("--quick", action="store_true", help="two shapes, two tilings (< 60 s)")
    parser.add_argument(
        "--budget-s", type=float, default=270.0, help="stop timing this long after the start"
    )
    parser.add_argument(
        "--match",
        action="append",
        default=[],
        metavar="FIELD=VALUE,...",
        help="time only the grid's shapes with these field values (e.g. batch=16,seq=512); "
        "repeat for several groups",
    )
    parser.add_argument(
        "--host-only", action="store_true", help="write only the host figures (no timing)"
    )
    parser.add_argument("--jobs", type=int, default=JOBS, help="compile workers (0: none)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("bwd_probe: needs a CUDA GPU", file=sys.stderr)
        return 2
    shapes = QUICK if args.quick else VALIDATION + HOLDOUT
    if args.match:
        try:
            shapes = [s for s in shapes if any(matches(s, m) for m in args.match)]
        except ValueError as exc:
            parser.error(str(exc))
    if args.host_only:
        shapes = []
    cfgs = configs(args.quick)
    info = env_info()
    est = estimate_s(shapes, cfgs, max(1, args.jobs))
    print(
        f"{len(shapes)} shapes x {len(cfgs)} configs; estimated {est:.0f} s; "
        f"budget {args.budget_s:.0f} s; {info}",
        flush=True,
    )
    if args.jobs > 0:
        jobs = compile_jobs(shapes, cfgs)
        print(compile_in_workers(jobs, args.jobs, 0.5 * args.budget_s), flush=True)
    warm_up_gpu()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figures = write_host_file(args.out, info)
    if args.host_only:
        return 0 if figures else 1
    left = args.budget_s - (time.monotonic() - begin)
    start = time.monotonic()
    rows = run(shapes, cfgs, args.out, make_case, GpuMeasure(), info, left)
    print(f"wrote {len(rows)} rows to {args.out} in {time.monotonic() - start:.0f} s "
          f"({time.monotonic() - begin:.0f} s in all)")  # fmt: skip
    print("\n".join(summary(rows) + host_summary(rows, figures)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
