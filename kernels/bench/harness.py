"""GPU timing harness: `python -m attnsim.kernels.bench --suite validation|holdout|smoke`.

The suites `gqa-validation` and `gqa-holdout` time GQA/MQA prefill (K/V with fewer heads than
Q) on the 1-pass family and SDPA (`enable_gqa`); their rows carry `kv_heads`.

For every configuration (family x shape x tiling; for the 1-pass family also its `schedule`,
the Triton kernel "plain" and, on Hopper, the Gluon "pingpong" kernel) it times the kernel with
`triton.testing.do_bench` (median and 10th/90th percentiles, warm-up first, L2 flushed by
do_bench between runs) over several rotating input sets so that L2 cannot hold the inputs,
and appends one `Measurement` row to `DIR/<suite>-<device>-<date>.csv`. Failures (compile
errors, out of resources, out of memory) go to `...-errors.csv` and the run keeps going.
Before timing a family it checks the family's first configuration against PyTorch SDPA
(FlashAttention's rule: error at most twice that of a plain bf16/fp16 implementation plus a
small floor) and skips the family with a message when it is wrong.

Before timing, the run measures its own host's cost of one launcher call per family
(`kernels.calibrate.microbench_steps.host_calls`) and the GPU time of do_bench's L2 flush (a few
seconds) and writes them to `...-host.yaml` beside the CSV
(`kernels.bench.measure.write_host_figures`):
calls short enough to be host-bound run at this host's speed, which differs between the
machines of a pool; `attnsim validate gpu` uses these figures for the rows of this file.

`--dry-run` lists the configurations and the run-time estimate without a GPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import math
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import triton

from attnsim.kernels.bench.measure import (
    FAMILIES,
    Measurement,
    append_measurement,
    write_host_figures,
)
from attnsim.kernels.bench.suites import (  # re-exported: part of this harness's interface
    NO_TILING,
    PINGPONG_TILINGS,
    SDPA_FAMILIES,
    SMOKE_TILINGS,
    SUITES,
    TILINGS,
    TRITON_FAMILIES,
    Config,
    Tiling,
    bench_params,
    build_configs,
    compile_key,
    estimate_ms,
    estimate_run_s,
    fits,
    holdout_shapes,
    pingpong_device,
    smoke_shapes,
    validation_shapes,
)
from attnsim.kernels.spec import AttnShape, attn_flops, qkvo_bytes
from attnsim.kernels.triton.attn_2pass import attention_2pass
from attnsim.kernels.triton.attn_fwd import attention_fwd
from attnsim.kernels.triton.attn_unfused import attention_unfused
from attnsim.kernels.triton.common import device_smem_limit

L2_BYTES_DEFAULT = 60 * 2**20  # when the device does not report its L2 size
__all__ = [
    "NO_TILING",
    "PINGPONG_TILINGS",
    "SDPA_FAMILIES",
    "SMOKE_TILINGS",
    "TILINGS",
    "TRITON_FAMILIES",
    "Config",
    "Tiling",
    "bench_params",
    "build_configs",
    "check_family",
    "compile_key",
    "estimate_ms",
    "estimate_run_s",
    "fits",
    "holdout_shapes",
    "host_probe",
    "main",
    "make_runner",
    "pingpong_device",
    "run",
    "smoke_shapes",
    "validation_shapes",
]

# ----------------------------------------------------------------------------- running


def _sdpa_backend(family: str):  # type: ignore[no-untyped-def]
    from torch.nn.attention import SDPBackend

    return {
        "sdpa-flash": SDPBackend.FLASH_ATTENTION,
        "sdpa-cudnn": SDPBackend.CUDNN_ATTENTION,
        "sdpa-efficient": SDPBackend.EFFICIENT_ATTENTION,
    }[family]


def make_runner(cfg: Config, q, k, v, scores=None) -> Callable[[], Any]:  # type: ignore[no-untyped-def]
    """A zero-argument callable running one configuration on given inputs."""
    causal = cfg.shape.causal
    bm, bn, w, s = cfg.tiling
    if cfg.family == "triton-1pass":
        return lambda: attention_fwd(
            q, k, v, causal, block_m=bm, block_n=bn, num_warps=w, num_stages=s,
            schedule=cfg.schedule,
        )  # fmt: skip
    if cfg.family == "triton-2pass":
        return lambda: attention_2pass(
            q, k, v, causal, block_m=bm, block_n=bn, num_warps=w, num_stages=s
        )
    if cfg.family == "triton-unfused":
        return lambda: attention_unfused(
            q, k, v, causal, block_m=bm, block_n=bn, num_warps=w, num_stages=s, scores=scores
        )
    import torch.nn.functional as F

    gqa = cfg.shape.kv_group > 1
    return lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=gqa)


class _Backend:
    """Context: restrict SDPA to one backend (no-op for Triton families)."""

    def __init__(self, family: str) -> None:
        self.family = family
        self.ctx: Any = None

    def __enter__(self) -> None:
        if self.family in SDPA_FAMILIES:
            from torch.nn.attention import sdpa_kernel

            self.ctx = sdpa_kernel(_sdpa_backend(self.family))
            self.ctx.__enter__()

    def __exit__(self, *exc: object) -> None:
        if self.ctx is not None:
            self.ctx.__exit__(*exc)


def make_inputs(shape: AttnShape, dtype: torch.dtype, n_sets: int, seed: int = 0):  # type: ignore[no-untyped-def]
    """`n_sets` independent (q, k, v) sets on the GPU."""
    g = torch.Generator(device="cuda").manual_seed(seed)
    s = shape
    kv = s.heads // s.kv_group  # K/V heads per sequence (GQA/MQA: fewer than s.heads)
    sets = []
    for _ in range(n_sets):
        q = torch.randn(
            s.batch, s.heads, s.seq_q, s.head_dim, device="cuda", dtype=dtype, generator=g
        )
        k = torch.randn(s.batch, kv, s.seq_k, s.head_dim, device="cuda", dtype=dtype, generator=g)
        v = torch.randn(s.batch, kv, s.seq_k, s.head_dim, device="cuda", dtype=dtype, generator=g)
        sets.append((q, k, v))
    return sets


def n_rotating_sets(shape: AttnShape, elem: int, l2_bytes: int) -> int:
    """Enough input sets that together they are >= 3x L2 (1..8), with `elem`-byte elements."""
    per_set = qkvo_bytes(dataclasses.replace(shape, elem_bytes=elem))
    return max(1, min(8, math.ceil(3 * l2_bytes / per_set)))


def plain_attention(q, k, v, causal: bool):  # type: ignore[no-untyped-def]
    """Attention as plain PyTorch ops in the input dtype: FlashAttention's reference.

    Scores are materialized in that dtype, the softmax runs in fp32, probabilities are cast back.
    """
    scale = q.shape[-1] ** -0.5
    group = q.shape[1] // k.shape[1]  # GQA: K/V head h // group serves query head h
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    scores = torch.matmul(q, k.transpose(-2, -1)) * scale
    if causal:
        sq, sk = scores.shape[-2:]
        mask = torch.ones(sq, sk, dtype=torch.bool, device=q.device).tril()
        scores = scores.masked_fill(~mask, float("-inf"))
    probs = torch.softmax(scores.float(), dim=-1).to(q.dtype)
    return torch.matmul(probs, v)


def check_family(cfg: Config, dtype: torch.dtype) -> str | None:
    """Compare one configuration with SDPA's math backend; None if right, else a message."""
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    ((q, k, v),) = make_inputs(cfg.shape, dtype, 1, seed=1)
    scores = None
    if cfg.family == "triton-unfused":
        s = cfg.shape
        scores = torch.empty((s.batch * s.heads, s.seq_q, s.seq_k), device="cuda", dtype=dtype)
    with _Backend(cfg.family):
        out = make_runner(cfg, q, k, v, scores)()
    torch.cuda.synchronize()
    with sdpa_kernel(SDPBackend.MATH):
        ref = F.scaled_dot_product_attention(
            q.float(), k.float(), v.float(), is_causal=cfg.shape.causal,
            enable_gqa=cfg.shape.kv_group > 1,
        )  # fmt: skip
    naive = plain_attention(q, k, v, cfg.shape.causal)
    err = (out.float() - ref).abs().max().item()
    naive_err = (naive.float() - ref).abs().max().item()
    allowed = 2 * naive_err + 1e-3
    if not math.isfinite(err) or err > allowed:
        return f"{cfg.label()}: max error {err:.3g} vs SDPA exceeds 2x plain {naive_err:.3g} + 1e-3"
    return None


def env_info() -> dict[str, str]:
    """device, driver, torch, triton strings for every row."""
    device = torch.cuda.get_device_name()
    try:
        driver = (
            subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
                check=True,
            )
            .stdout.strip()
            .splitlines()[0]
        )
    except Exception:  # noqa: BLE001 - nvidia-smi missing: fall back to CUDA's version number
        driver = str(getattr(torch.version, "cuda", "") or "unknown")
    return {
        "device": device,
        "driver": driver,
        "torch": torch.__version__,
        "triton": triton.__version__,
    }


ERROR_FIELDS = (
    "family",
    "batch",
    "heads",
    "seq_q",
    "seq_k",
    "head_dim",
    "causal",
    "dtype",
    "block_m",
    "block_n",
    "num_warps",
    "num_stages",
    "error",
)


def append_error(path: Path, cfg: Config, dtype_name: str, error: str) -> None:
    """Append one failure row to the errors CSV."""
    import csv

    new = not path.exists()
    s = cfg.shape
    with path.open("a", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        if new:
            w.writerow(ERROR_FIELDS)
        w.writerow(
            [
                cfg.family,
                s.batch,
                s.heads,
                s.seq_q,
                s.seq_k,
                s.head_dim,
                int(s.causal),
                dtype_name,
                *cfg.tiling,
                (f"[schedule {cfg.schedule}] " if cfg.schedule != "plain" else "")
                + error.replace("\n", " ")[:500],
            ]
        )


def host_probe(csv_path: Path, info: dict[str, str], pingpong: bool) -> None:
    """Measure this host's launcher-call costs and write them beside the CSV (module doc)."""
    from attnsim.kernels.calibrate import microbench_pingpong, microbench_steps

    t0 = time.time()
    try:
        calls = microbench_steps.host_calls(torch)
        if pingpong:
            calls.update(microbench_pingpong.measure_host(torch))
        figures = {
            "host_call_us": calls,
            "bench_flush_us": round(microbench_steps.flush_us(torch), 2),
        }
    except Exception as exc:  # noqa: BLE001 - the timings are still worth having
        print(f"host probe failed ({type(exc).__name__}: {exc}); no host file", file=sys.stderr)
        return
    meta = {
        "source": "kernels.bench.harness host probe "
        "(kernels.calibrate.microbench_steps.measure_host)",
        "date": _dt.datetime.now(_dt.UTC).isoformat(),
        **info,
    }
    path = write_host_figures(csv_path, figures, meta)
    print(f"host probe ({time.time() - t0:.0f}s): {figures} -> {path}", file=sys.stderr)


def run(configs: list[Config], out_dir: Path, suite: str, dtype_name: str) -> int:
    """Time every configuration; returns the number of failures."""
    from triton.testing import do_bench

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[dtype_name]
    elem = 2
    info = env_info()
    slug = info["device"].lower().replace("nvidia", "").strip().replace(" ", "-") or "gpu"
    date = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d")
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / f"{suite}-{slug}-{date}.csv"
    err_path = out_dir / f"{suite}-{slug}-{date}-errors.csv"
    for p in (csv_path, err_path, out_dir / f"{suite}-{slug}-{date}-host.yaml"):
        if p.exists():
            p.unlink()
    l2 = int(getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 0) or L2_BYTES_DEFAULT)
    print(
        f"device {info['device']} driver {info['driver']} torch {info['torch']} "
        f"triton {info['triton']}; writing {csv_path}",
        file=sys.stderr,
    )
    host_probe(csv_path, info, any(c.schedule == "pingpong" for c in configs))
    failures = 0
    checked: dict[str, str | None] = {}
    t0 = time.time()
    inputs_key = None
    sets: list = []
    scores = None
    for i, cfg in enumerate(configs, 1):
        fam = cfg.family if cfg.schedule == "plain" else f"{cfg.family}/{cfg.schedule}"
        if fam not in checked:
            try:
                checked[fam] = check_family(cfg, dtype)
            except Exception as exc:  # noqa: BLE001
                checked[fam] = f"{cfg.label()}: check raised {type(exc).__name__}: {exc}"
            if checked[fam]:
                print(f"ABORT family {fam}: {checked[fam]}", file=sys.stderr)
                append_error(err_path, cfg, dtype_name, f"correctness check failed: {checked[fam]}")
                failures += 1
            else:
                print(f"check ok: {fam}", file=sys.stderr)
        if checked[fam]:
            continue
        shape = cfg.shape
        try:
            key = (shape, dtype_name)
            if key != inputs_key:
                sets, scores, inputs_key = [], None, None
                torch.cuda.empty_cache()
                sets = make_inputs(shape, dtype, n_rotating_sets(shape, elem, l2))
                inputs_key = key
            if cfg.family == "triton-unfused" and scores is None:
                scores = torch.empty(
                    (shape.batch * shape.heads, shape.seq_q, shape.seq_k),
                    device="cuda",
                    dtype=dtype,
                )
            runners = [make_runner(cfg, q, k, v, scores) for q, k, v in sets]
            state = {"i": 0}

            def fn(runners: list = runners, state: dict = state) -> None:  # type: ignore[type-arg]
                runners[state["i"] % len(runners)]()
                state["i"] += 1

            warm, rep = bench_params(estimate_ms(cfg, elem))
            with _Backend(cfg.family):
                med, p10, p90 = do_bench(fn, warmup=warm, rep=rep, quantiles=[0.5, 0.1, 0.9])
            flops = attn_flops(shape)
            bm, bn, w, s = cfg.tiling
            row = Measurement(
                family=cfg.family,
                batch=shape.batch,
                heads=shape.heads,
                seq_q=shape.seq_q,
                seq_k=shape.seq_k,
                head_dim=shape.head_dim,
                causal=int(shape.causal),
                dtype=dtype_name,
                block_m=bm,
                block_n=bn,
                num_warps=w,
                num_stages=s,
                median_ms=float(med),
                p10_ms=float(p10),
                p90_ms=float(p90),
                flops=flops,
                tflops=flops / (float(med) * 1e9),
                timestamp=_dt.datetime.now(_dt.UTC).isoformat(),
                schedule=cfg.schedule,
                kv_heads=shape.heads // shape.kv_group if shape.kv_group > 1 else 0,
                **info,
            )
            append_measurement(csv_path, row)
            print(
                f"[{i}/{len(configs)} {time.time() - t0:6.1f}s] {cfg.label()}: "
                f"{med:.4f} ms {row.tflops:.1f} TFLOP/s",
                file=sys.stderr,
            )
        except Exception as exc:  # noqa: BLE001 - record and keep going
            failures += 1
            msg = f"{type(exc).__name__}: {exc}"
            append_error(err_path, cfg, dtype_name, msg)
            print(
                f"[{i}/{len(configs)} {time.time() - t0:6.1f}s] {cfg.label()}: FAILED {msg[:200]}",
                file=sys.stderr,
            )
            sets, scores, inputs_key = [], None, None
            torch.cuda.empty_cache()
    print(
        f"done in {time.time() - t0:.1f}s: {len(configs) - failures} ok, {failures} failed; "
        f"{csv_path}",
        file=sys.stderr,
    )
    return failures


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(
        prog="python -m attnsim.kernels.bench", description=__doc__.splitlines()[0]
    )
    p.add_argument("--suite", choices=SUITES, required=True)
    p.add_argument("--out", type=Path, default=Path("kernels/measurements"))
    p.add_argument(
        "--families",
        default=",".join(FAMILIES),
        help="comma-separated subset of: " + ", ".join(FAMILIES),
    )
    p.add_argument(
        "--max-configs",
        type=int,
        default=None,
        help="time at most this many configurations (first ones, family order)",
    )
    p.add_argument("--dtype", choices=("bf16", "fp16"), default="bf16")
    p.add_argument(
        "--no-pingpong",
        action="store_true",
        help="leave out the 1-pass family's ping-pong kernel (timed by default on sm_90; "
        "--dry-run lists it)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="list configurations and the time estimate; no GPU needed",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = parse_args(argv)
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    bad = [f for f in families if f not in FAMILIES]
    if bad:
        print(f"unknown families: {', '.join(bad)} (known: {', '.join(FAMILIES)})", file=sys.stderr)
        return 2
    limit = device_smem_limit() if torch.cuda.is_available() else 227 * 1024
    pingpong = False if args.no_pingpong else (True if args.dry_run else None)
    configs = build_configs(args.suite, families, smem_limit=limit, pingpong=pingpong)
    if args.max_configs is not None:
        configs = configs[: args.max_configs]
    est = estimate_run_s(configs)
    per_family = {f: sum(c.family == f for c in configs) for f in families}
    n_shapes = {f: len({c.shape for c in configs if c.family == f}) for f in families}
    print(
        f"suite {args.suite}: {len(configs)} configurations "
        + ", ".join(f"{f} {per_family[f]} ({n_shapes[f]} shapes)" for f in families)
        + f"; estimated run time {est / 60:.1f} min",
        file=sys.stderr,
    )
    if args.dry_run:
        for c in configs:
            print(f"{c.label()}  est {estimate_ms(c):.3f} ms")
        return 0
    if not torch.cuda.is_available():
        print("no CUDA device: the benchmark needs a GPU (use --dry-run to list)", file=sys.stderr)
        return 2
    failures = run(configs, args.out, args.suite, args.dtype)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
