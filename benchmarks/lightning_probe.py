"""GPU: time Lightning Attention-2 (family `triton-lightning`) against fla-core's chunked kernel.

Run: PYTHONPATH=. python benchmarks/lightning_probe.py --out DIR/lightning.csv [--quick]

Shapes: `VALIDATION` and `HOLDOUT` grids of (batch, heads, seq, head_dim E = F) and a `LENGTH`
sweep at batch 1, 16 heads, head dim 128, 16K-128K tokens (linearity: time(128K)/time(16K)
should be near 8). All bf16 with decay lambda_h = exp(-2^(-8(h+1)/H)) (TNL's slopes) and scale
1/sqrt(E), unless a shape says decay=False. For each shape: our kernel at every candidate tiling
(`lightning_tilings`) under both schedules (fused, split), and fla-core's
`fla.ops.simple_gla.chunk_simple_gla` (chunk 64) with the per-head log decay as `g_gamma` (H,)
(schedule column "g_gamma"; fla's own `lightning_attn.chunk_lightning_attn` calls it so) and,
with --fla-g, as a per-token `g` (B, T, H) (column "g"; one more autotuning); fla takes
(B, T, H, K) inputs, prepared before timing. fla computes o_t = scale q_t S_t with
S_t = exp(g_t) S_(t-1) + k_t v_t^T: our lambda is exp(g).

Every configuration is first checked: output finite (the output block is poisoned with NaN
first) and compared with a float64 chunked reference (`reference_chunked`) on batch 0, heads
0-1, the whole sequence (max_err: max |o - ref|; rel_err: ||o - ref|| / ||ref||); status
"ok" under `REL_TOL`, else "wrong" (still timed). Times: `triton.testing.do_bench` median,
p10, p90 (warm-up, L2 flushed between repeats). One CSV row per (shape, family, schedule,
tiling, state tile, state chunks), flushed at once; a failing configuration becomes a row with
its error as status.
GLA (--gla, the `gla` suite instead of the others): gated linear attention, log gates
g = logsigmoid(x) / 16 per (token, feature) (GLA's tau; x ~ N(0, 1), fp32, laid out like k),
our kernel with `gates=` (every tiling, both schedules, split R = 1) against fla-core's
`fla.ops.gla.chunk_gla` (family "fla-chunk-gla", g (B, T, H, K)), in the same run; the
reference is a float64 chunked GLA (`reference_gla_chunked`, element-wise gates, independent
of the kernels); the decay column reads "gla".

Configurations past --budget-s are skipped (status "skipped: budget"). Tracebacks of failed
configurations go to the CSV's name with .errors.txt. A summary follows.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import math
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import triton

from attnsim.einsum_ir.library.zoo_linear import GLA_TAU
from attnsim.kernels.spec_lightning import GLA_EXTRA_TILINGS
from attnsim.kernels.triton.lightning import (
    SCHEDULES,
    default_lightning_tiling,
    default_state_tile,
    lightning_flops,
    lightning_fwd,
    lightning_tilings,
    tiling_args,
)

OURS, FLA = "triton-lightning", "fla-chunk-simple-gla"
FLA_GLA = "fla-chunk-gla"  # fla.ops.gla.chunk_gla: the GLA suite's baseline
FLA_CHUNK = 64  # fla's default chunk size
# a kernel fault poisons the process's CUDA context: every later call fails the same way
CONTEXT_LOST = "AcceleratorError"
REL_TOL = 2e-2  # bf16 inputs: relative error of the output norm
FIELDS = (
    "family", "schedule", "suite", "batch", "heads", "seq", "head_dim", "decay", "dtype",
    "block_c", "block_f", "num_warps", "num_stages", "state_tile", "state_chunks", "median_ms",
    "p10_ms",
    "p90_ms", "flops", "tflops", "status", "max_err", "rel_err", "device", "torch", "triton",
    "fla", "timestamp",
)  # fmt: skip


@dataclass(frozen=True)
class Shape:
    """One problem: q, k, v (batch, heads, seq, head_dim), bf16."""

    batch: int
    heads: int
    seq: int
    head_dim: int
    suite: str
    decay: bool = True
    gated: bool = False  # GLA: per-token, per-feature log gates instead of the decay

    @property
    def label(self) -> str:
        """How the shape is printed."""
        tail = " gla" if self.gated else "" if self.decay else " no-decay"
        return f"{self.batch}x{self.heads}x{self.seq} d{self.head_dim}{tail}"


def _grid(
    suite: str, bhs: Iterable[tuple[int, int, int]], dims: Iterable[int]
) -> tuple[Shape, ...]:
    return tuple(Shape(b, h, s, d, suite) for b, h, s in bhs for d in dims)


VALIDATION = _grid(
    "validation",
    [(8, 16, 2048), (4, 16, 4096), (2, 16, 8192), (1, 16, 16384), (1, 32, 8192), (4, 32, 4096)],
    (64, 128),
) + (Shape(4, 16, 4096, 128, "validation", decay=False),)
HOLDOUT = _grid("holdout", [(2, 24, 6144), (1, 20, 12288), (16, 8, 1024), (2, 12, 5000)],
                (64, 128)) + _grid("holdout", [(1, 16, 32768)], (128,))  # fmt: skip
LENGTH = _grid("length", [(1, 16, s * 1024) for s in (16, 32, 64, 128)], (128,))
GLA = tuple(
    Shape(b, h, s, d, "gla", gated=True)
    for b, h, s, d in ((8, 16, 2048, 128), (2, 16, 8192, 128), (1, 16, 16384, 128),
                       (4, 16, 4096, 64), (1, 32, 8192, 64))
)  # fmt: skip
GLA_QUICK = GLA[:2]
GLA_TILINGS = GLA_EXTRA_TILINGS  # timed for GLA besides lightning_tilings(d, gated=True)
QUICK = (  # head dim 128 only: fla autotunes once per head dim (tens of seconds)
    Shape(4, 16, 4096, 128, "validation"),
    Shape(1, 16, 16384, 128, "length"),
    Shape(1, 16, 131072, 128, "length"),
)


@dataclass(frozen=True)
class Config:
    """One timed kernel: ours (schedule fused/split, a tiling) or fla (schedule g_gamma/g)."""

    family: str
    schedule: str
    tiling: tuple[int, int, int, int] | None = None
    state_tile: tuple[int, int] | None = None  # split: the state pass's tile (None: default)
    state_chunks: int = 1  # split: chunks per stored state and per output program


def shapes(quick: bool, gla: bool = False) -> tuple[Shape, ...]:
    """Shapes in run order: validation, length sweep, holdout (or the quick subset).

    `gla`: the GLA suite (or its quick subset) instead.
    """
    if gla:
        return GLA_QUICK if quick else GLA
    return QUICK if quick else VALIDATION + LENGTH + HOLDOUT


def configs(shape: Shape, quick: bool, fla_g: bool = False) -> list[Config]:
    """The shape's configurations: fla first, then ours at every tiling under both schedules.

    fla takes the decay as g_gamma (also as g with `fla_g`; "none" without decay); `quick`
    keeps 2 of our tilings.
    """
    fla_forms = (("g_gamma", "g") if fla_g else ("g_gamma",)) if shape.decay else ("none",)
    fla = [Config(FLA, s) for s in fla_forms]
    d, default = shape.head_dim, default_lightning_tiling(shape.head_dim)
    tilings = lightning_tilings(d, gated=shape.gated) or (default,)  # head dims < 32: default
    if quick:
        tilings = tuple(dict.fromkeys([default, tilings[-1]]))
    ours = [Config(OURS, s, t) for s in SCHEDULES for t in tilings]
    if shape.gated:  # GLA: fla's chunk_gla, ours at every tiling under both schedules
        extra = [t for t in GLA_TILINGS if t[1] <= d and t not in tilings and not quick]
        return [Config(FLA_GLA, "gla"), *ours, *(Config(OURS, s, t) for s in SCHEDULES
                                                   for t in extra)]  # fmt: skip
    if not quick:  # smaller state-pass tiles: more programs when batch * heads is small
        tiles = dict.fromkeys([(min(d, 32), min(d, 32)), (min(d, 32), min(d, 64))])
        tiles.pop(default_state_tile(d, d), None)
        ours += [Config(OURS, "split", default, t) for t in tiles]
        # several chunks per state: fewer states, a shorter serial chain in the state pass
        ours += [Config(OURS, "split", default, None, r) for r in (2, 4)]
    return fla + ours


def estimate_s(plan: list[tuple[Shape, list[Config]]]) -> float:
    """Rough device seconds of a run.

    0.2 s per timed config, 1.5 s per kernel compile of ours (2 kernels under the split
    schedule), 45 s per fla autotuning key (head dim x decay form: its state kernel tries 48
    configs).
    """
    timed = sum(len(c) for _, c in plan)
    ours = {
        (s.head_dim, c.schedule, c.tiling, c.state_tile, c.state_chunks)
        for s, cs in plan
        for c in cs
        if c.family == OURS
    }
    kernels = sum(2 if key[1] == "split" else 1 for key in ours)
    fla = {(s.head_dim, c.schedule) for s, cs in plan for c in cs if c.family in (FLA, FLA_GLA)}
    return 0.2 * timed + 1.5 * kernels + 45.0 * len(fla)


def decays(heads: int) -> torch.Tensor:
    """lambda_h = exp(-2^(-8 (h + 1) / heads)), fp32 (heads,)."""
    h = torch.arange(heads, dtype=torch.float64)
    return torch.exp(-torch.exp2(-8.0 * (h + 1) / heads)).float()


def reference_chunked(q: Any, k: Any, v: Any, lam: Any, scale: float, chunk: int = 256) -> Any:
    """Float64 o (heads, seq, F) of one batch entry q, k (heads, seq, E), v (heads, seq, F).

    The chunked form computed plainly (float64, dense masks), independent of the kernels.
    """
    q, k, v = (t.double() for t in (q, k, v))
    h, s, e = q.shape
    lam = torch.ones(h, dtype=torch.float64) if lam is None else lam.double()
    lam = lam.to(q.device)[:, None, None]
    out = torch.empty(h, s, v.shape[2], dtype=torch.float64, device=q.device)
    state = torch.zeros(h, e, v.shape[2], dtype=torch.float64, device=q.device)
    t = torch.arange(chunk, device=q.device, dtype=torch.float64)
    for start in range(0, s, chunk):
        n = min(chunk, s - start)
        qc, kc, vc = (x[:, start : start + n] for x in (q, k, v))
        gap = (t[:n, None] - t[None, :n])[None]
        mask = torch.where(
            gap >= 0, lam ** gap.clamp(min=0), torch.zeros((), dtype=gap.dtype, device=q.device)
        )
        rows = lam ** (t[:n] + 1)[None, :, None]
        out[:, start : start + n] = scale * (
            (qc @ kc.transpose(1, 2) * mask) @ vc + rows * (qc @ state)
        )
        keys = lam ** (n - 1 - t[:n])[None, :, None]
        state = lam**n * state + (kc * keys).transpose(1, 2) @ vc
    return out


def gla_gates(shape: Shape, device: str, seed: int = 0) -> Any:
    """GLA's log gates logsigmoid(x) / 16, x ~ N(0, 1): fp32 (B, H, S, E), all in (-1, 0)."""
    gen = torch.Generator(device=device).manual_seed(seed + 1 + shape.seq)
    x = torch.randn(shape.batch, shape.heads, shape.seq, shape.head_dim, generator=gen,
                    device=device)  # fmt: skip
    return torch.nn.functional.logsigmoid(x) / GLA_TAU


def reference_gla_chunked(q: Any, k: Any, v: Any, g: Any, scale: float, chunk: int = 64) -> Any:
    """Float64 GLA o (heads, seq, F) of one batch entry; g: log gates (heads, seq, E).

    Per chunk: intra-chunk scores with the element-wise gate e^(b_t - b_s) (no reference
    position: exact at any gate), inter-chunk (q o e^b) S, S <- e^b_last S + (k o
    e^(b_last - b))^T v. Independent of the kernels' stabilisation.
    """
    q, k, v, g = (t.double() for t in (q, k, v, g))
    h, s, e = q.shape
    out = torch.empty(h, s, v.shape[2], dtype=torch.float64, device=q.device)
    state = torch.zeros(h, e, v.shape[2], dtype=torch.float64, device=q.device)
    for start in range(0, s, chunk):
        n = min(chunk, s - start)
        qc, kc, vc, gc = (x[:, start : start + n] for x in (q, k, v, g))
        b = gc.cumsum(dim=1)
        gap = b[:, :, None, :] - b[:, None, :, :]  # (h, t, s, e)
        causal = torch.ones(n, n, dtype=torch.bool, device=q.device).tril()
        gate = torch.where(causal[None, :, :, None], gap.clamp(max=0).exp(), 0.0)
        scores = torch.einsum("hte,hse,htse->hts", qc, kc, gate)
        out[:, start : start + n] = scale * (scores @ vc + (qc * b.exp()) @ state)
        last = b[:, -1:, :]
        state = last.transpose(1, 2).exp() * state + (kc * (last - b).exp()).transpose(1, 2) @ vc
    return out


@dataclass
class Problem:
    """One shape's tensors: ours (B, H, S, D), fla's (B, T, H, D), decays and the reference."""

    q: Any
    k: Any
    v: Any
    lam: Any
    scale: float
    fla_qkv: tuple[Any, Any, Any]
    g_gamma: Any
    g: Any
    ref: Any
    gates: Any = None  # GLA: log gates (B, H, S, E) fp32
    fla_gates: Any = None  # ... in fla's (B, T, H, K) layout


def make_problem(shape: Shape, device: str, dtype: Any = torch.bfloat16, seed: int = 0) -> Problem:
    """Random inputs of `shape`, fla's layout of them (prepared once) and the reference slice."""
    gen = torch.Generator(device=device).manual_seed(seed + shape.seq + shape.head_dim)
    q, k, v = (
        torch.randn(shape.batch, shape.heads, shape.seq, shape.head_dim, generator=gen,
                    device=device).to(dtype)
        for _ in range(3)
    )  # fmt: skip
    lam = decays(shape.heads).to(device) if shape.decay else None
    scale = shape.head_dim**-0.5
    fla_qkv = tuple(t.transpose(1, 2).contiguous() for t in (q, k, v))
    g_gamma = torch.log(lam) if lam is not None else None
    g = None
    if g_gamma is not None:
        g = g_gamma.expand(shape.batch, shape.seq, shape.heads).contiguous()
    heads = min(2, shape.heads)
    if shape.gated:
        gates = gla_gates(shape, device, seed)
        ref = reference_gla_chunked(q[0, :heads], k[0, :heads], v[0, :heads], gates[0, :heads],
                                    scale)  # fmt: skip
        return Problem(q, k, v, None, scale, fla_qkv, None, None, ref, gates,
                       gates.transpose(1, 2).contiguous())  # fmt: skip
    ref = reference_chunked(q[0, :heads], k[0, :heads], v[0, :heads],
                            None if lam is None else lam[:heads].cpu(), scale)  # fmt: skip
    return Problem(q, k, v, lam, scale, fla_qkv, g_gamma, g, ref)


def runner(cfg: Config, p: Problem, fla_fn: Any) -> Callable[[], Any]:
    """A no-argument call of the configuration returning o in our (B, H, S, F) layout view."""
    if cfg.family == OURS:
        assert cfg.tiling is not None
        kw = tiling_args(cfg.tiling)
        return lambda: lightning_fwd(p.q, p.k, p.v, p.lam, schedule=cfg.schedule,
                                     scale=p.scale, state_tile=cfg.state_tile,
                                     state_chunks=cfg.state_chunks, gates=p.gates,
                                     **kw)  # fmt: skip
    if fla_fn is None:
        raise RuntimeError("fla unavailable")
    fq, fk, fv = p.fla_qkv
    if cfg.family == FLA_GLA:
        return lambda: fla_fn(fq, fk, fv, p.fla_gates, scale=p.scale,
                              output_final_state=False)[0]  # fmt: skip
    decay = {"g_gamma": dict(g_gamma=p.g_gamma), "g": dict(g=p.g), "none": {}}[cfg.schedule]
    return lambda: fla_fn(fq, fk, fv, scale=p.scale, output_final_state=False, **decay)[0]


def check(out: Any, cfg: Config, p: Problem) -> tuple[str, float, float]:
    """(status, max_err, rel_err) of an output against the reference slice."""
    if cfg.family != OURS:
        out = out.transpose(1, 2)  # fla: (B, T, H, F)
    if not bool(torch.isfinite(out).all()):
        return "wrong: non-finite or unwritten outputs", math.nan, math.nan
    got = out[0, : p.ref.shape[0]].double()
    diff = got - p.ref
    rel = float(diff.norm() / p.ref.norm())
    return ("ok" if rel < REL_TOL else "wrong"), float(diff.abs().max()), rel


def do_bench(fn: Callable[[], Any]) -> tuple[float, float, float]:
    """(median, p10, p90) ms by `triton.testing.do_bench` (L2 flushed between repeats)."""
    import triton.testing

    p50, p10, p90 = triton.testing.do_bench(fn, warmup=10, rep=60, quantiles=[0.5, 0.1, 0.9])
    return float(p50), float(p10), float(p90)


def poison(shape: tuple[int, ...], dtype: Any, device: Any) -> None:
    """Leave a NaN-filled block of this size in the caching allocator for the next output."""
    block = torch.full(shape, math.nan, dtype=dtype, device=device)
    del block


def measure(
    shape: Shape, cfg: Config, p: Problem, fla_fn: Any, timer: Callable[..., Any] | None = None
) -> dict[str, Any]:
    """Check, then time one configuration; returns its row (errors become the status).

    `timer` (default `do_bench`, looked up at call time) returns (median, p10, p90) ms.
    """
    timer = timer or do_bench
    row = base_row(shape, cfg)
    try:
        fn = runner(cfg, p, fla_fn)
        poison((shape.batch, shape.heads, shape.seq, shape.head_dim), p.q.dtype, p.q.device)
        status, max_err, rel = check(fn(), cfg, p)
        row.update(status=status, max_err=max_err, rel_err=rel)
        p50, p10, p90 = timer(fn)
        row.update(median_ms=p50, p10_ms=p10, p90_ms=p90, tflops=row["flops"] / (p50 * 1e9))
    except Exception as exc:  # noqa: BLE001 (record any failure and go on)
        first = (str(exc).strip().splitlines() or [""])[0]
        row["status"] = f"error: {type(exc).__name__}: {first}"[:300]
        row["trace"] = traceback.format_exc()
    return row


def base_row(shape: Shape, cfg: Config) -> dict[str, Any]:
    """The identifying columns of a row, its FLOPs (chunked form) and NaN times."""
    block_c = cfg.tiling[0] if cfg.tiling else FLA_CHUNK
    row: dict[str, Any] = dict(
        family=cfg.family, schedule=cfg.schedule, suite=shape.suite, batch=shape.batch,
        heads=shape.heads, seq=shape.seq, head_dim=shape.head_dim,
        decay="gla" if shape.gated else "yes" if shape.decay else "no", dtype="bf16",
        block_c=block_c,
        flops=lightning_flops(shape.batch, shape.heads, shape.seq, shape.head_dim,
                              shape.head_dim, block_c),
        median_ms=math.nan, p10_ms=math.nan, p90_ms=math.nan, tflops=math.nan,
        max_err=math.nan, rel_err=math.nan,
    )  # fmt: skip
    if cfg.tiling:
        row.update(zip(("block_f", "num_warps", "num_stages"), cfg.tiling[1:], strict=True))
    if cfg.schedule == "split":
        d = shape.head_dim
        row["state_tile"] = "{}x{}".format(*(cfg.state_tile or default_state_tile(d, d)))
        row["state_chunks"] = cfg.state_chunks
    return row


class RowWriter:
    """CSV rows with `FIELDS`, the run's constant columns added, flushed after every row."""

    def __init__(self, path: Path, constants: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = path.open("w", newline="")
        self.writer = csv.DictWriter(self.fh, FIELDS, restval="", extrasaction="ignore")
        self.errors = path.with_suffix(".errors.txt")  # full tracebacks of failed configs
        self.writer.writeheader()
        self.constants = constants
        self.rows: list[dict[str, Any]] = []

    def write(self, row: dict[str, Any]) -> None:
        """Append one row and flush it to disk."""
        full = {**row, **self.constants}
        self.writer.writerow(full)
        self.fh.flush()
        if full.get("trace"):
            with self.errors.open("a") as fh:
                keys = ("family", "schedule", "batch", "heads", "seq", "head_dim", "block_c",
                        "block_f", "num_warps", "num_stages")  # fmt: skip
                fh.write(" ".join(f"{k}={full.get(k, '')}" for k in keys) + "\n")
                fh.write(full["trace"] + "\n")
        self.rows.append(full)

    def close(self) -> None:
        """Close the file."""
        self.fh.close()


def _key(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[f] for f in ("suite", "batch", "heads", "seq", "head_dim", "decay"))


def _best(rows: list[dict[str, Any]], family: str) -> dict[str, Any] | None:
    good = [r for r in rows if r["family"] == family and r["status"] == "ok"]
    good = [r for r in good if not math.isnan(float(r["median_ms"]))]
    return min(good, key=lambda r: float(r["median_ms"])) if good else None


def summarize(rows: list[dict[str, Any]]) -> list[str]:
    """Lines: best ours vs best fla per shape (fla ms / ours ms), then length scaling."""
    lines, shapes_seen = [], list(dict.fromkeys(_key(r) for r in rows))
    ratios = []
    for key in shapes_seen:
        group = [r for r in rows if _key(r) == key]
        ours, fla = _best(group, OURS), _best(group, FLA) or _best(group, FLA_GLA)
        label = "{}: {}x{}x{} d{} decay {}".format(*key)
        if ours is None:
            lines.append(f"{label}: no correct run of ours")
            continue
        tile = (
            f" state {ours['state_tile']} x{ours['state_chunks']}" if ours.get("state_tile") else ""
        )
        text = (f"{label}: ours {float(ours['median_ms']):.3f} ms ({ours['schedule']} "
                f"c{ours['block_c']} f{ours['block_f']} w{ours['num_warps']} "
                f"s{ours['num_stages']}{tile})")  # fmt: skip
        if fla is not None:
            ratio = float(fla["median_ms"]) / float(ours["median_ms"])
            ratios.append(ratio)
            fla_ms = float(fla["median_ms"])
            text += f", fla {fla_ms:.3f} ms ({fla['schedule']}), fla/ours {ratio:.2f}"
        lines.append(text)
    if ratios:
        geo = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        n = len(ratios)
        lines.append(f"fla/ours: geomean {geo:.2f}, min {min(ratios):.2f} over {n} shapes")
    length = [r for r in rows if r["suite"] == "length"]
    for family in (OURS, FLA):
        by_seq = {}
        for seq in sorted({int(r["seq"]) for r in length}):
            best = _best([r for r in length if int(r["seq"]) == seq], family)
            if best is not None:
                by_seq[seq] = float(best["median_ms"])
        if 16384 in by_seq and 131072 in by_seq:
            lines.append(f"{family}: time(128K)/time(16K) = {by_seq[131072] / by_seq[16384]:.2f}")
    return lines


def load_fla_gla() -> Any:
    """Fla's chunk_gla (the GLA baseline), or None when fla is absent or broken."""
    try:
        from fla.ops.gla import chunk_gla

        return chunk_gla
    except Exception:  # noqa: BLE001 (absent or broken: its rows record the error)
        return None


def load_fla() -> tuple[Any, str]:
    """Fla's chunk_simple_gla and its version, or (None, why not)."""
    try:
        import fla
        from fla.ops.simple_gla import chunk_simple_gla

        return chunk_simple_gla, str(getattr(fla, "__version__", "?"))
    except Exception as exc:  # noqa: BLE001 (absent or broken: skip the baseline rows)
        return None, f"unavailable ({type(exc).__name__}: {exc})"[:200]


def main(argv: list[str] | None = None) -> int:
    """Check and time every configuration; write the CSV and print the summary."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="CSV file to write")
    ap.add_argument("--quick", action="store_true", help="3 shapes, 2 tilings each (< 60 s)")
    ap.add_argument("--budget-s", type=float, default=None, help="skip configs after this")
    ap.add_argument("--fla-g", action="store_true", help="also time fla with a per-token g")
    ap.add_argument("--gla", action="store_true",
                    help="the GLA suite (gates=) against fla's chunk_gla instead")  # fmt: skip
    args = ap.parse_args(argv)
    plan = [(s, configs(s, args.quick, args.fla_g)) for s in shapes(args.quick, args.gla)]
    budget = args.budget_s if args.budget_s is not None else (60.0 if args.quick else 400.0)
    n_configs = sum(len(c) for _, c in plan)
    print(f"{n_configs} configs on {len(plan)} shapes; estimated {estimate_s(plan):.0f} s of "
          f"device time (budget {budget:.0f} s)", flush=True)  # fmt: skip
    if not torch.cuda.is_available():
        print("lightning_probe needs a CUDA GPU", file=sys.stderr)
        return 2
    fla_fn, fla_version = load_fla()
    fla_gla_fn = load_fla_gla() if args.gla else None
    print(f"fla: {fla_version}", flush=True)
    constants = dict(device=torch.cuda.get_device_name(), torch=torch.__version__,
                     triton=triton.__version__, fla=fla_version,
                     timestamp=dt.datetime.now(dt.UTC).isoformat())  # fmt: skip
    out = RowWriter(args.out, constants)
    start = time.monotonic()
    lost = ""  # set once a kernel leaves the CUDA context unusable (every later call fails)
    for shape, cfgs in plan:
        why = ""
        try:
            problem = make_problem(shape, "cuda")
        except Exception as exc:  # noqa: BLE001 (e.g. out of memory: record, go on)
            problem, why = None, f"error: setup {type(exc).__name__}: {exc}"[:300]
        for cfg in cfgs:
            if lost or problem is None or time.monotonic() - start > budget:
                row = base_row(shape, cfg)
                row["status"] = lost or (why if problem is None else "skipped: budget")
            else:
                fn = fla_gla_fn if cfg.family == FLA_GLA else fla_fn
                row = measure(shape, cfg, problem, fn)
                if CONTEXT_LOST in row["status"]:
                    lost = f"skipped: CUDA context lost at {cfg.family} {cfg.schedule} {cfg.tiling}"
            out.write(row)
            if row["status"] != "skipped: budget":
                tile = (
                    f" state {row['state_tile']} x{cfg.state_chunks}"
                    if row.get("state_tile")
                    else ""
                )
                print(f"{shape.label} {cfg.family} {cfg.schedule} {cfg.tiling or ''}{tile}: "
                      f"{row['median_ms']:.3f} ms {row['status']} rel {row['rel_err']:.1e} "
                      f"[{time.monotonic() - start:.0f} s]", flush=True)  # fmt: skip
        del problem
        torch.cuda.empty_cache()
    out.close()
    print(f"wrote {len(out.rows)} rows to {args.out} in {time.monotonic() - start:.0f} s")
    print("\n".join(summarize(out.rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
