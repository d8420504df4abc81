"""GPU only: the decode kernels (unsplit, split-K, stream-K, MLA) against SDPA and FlexAttention.

Run: PYTHONPATH=. python benchmarks/decode_probe.py --out DIR [--budget-s 500]

One run measures, in this order: the device's HBM read bandwidth (the faster of a Triton
read-only reduction and torch.sum over 4 GiB) and copy bandwidth (a 2 GiB device-to-device
copy, bytes read + written over time); then, shape by shape (round-robin over the suites so a
budget cut leaves every suite covered), the baselines and every kernel configuration, one CSV
row per configuration written as soon as it is timed (an interrupted run keeps its rows).
Times: `triton.testing.do_bench` (100 ms warm-up), median, L2 flushed between runs.

Suites (column `suite`): `validation` and `holdout` (disjoint dense GQA/MQA/MHA shapes, bf16,
batch 1-64, KV 1K-512K, heads 8-128, head dim 64/128), `ragged-*` (per-sequence lengths,
`seq_lens` column ';'-joined), `paged-*` (ragged lengths in shuffled pages of 64 or 256 rows),
`mla-*` (DeepSeek-V2/V3: H = 128 or 16, C = 512, Rr = 64, Dn = Dv = 128; absorbed kernel per
head_block; `naive_ms` = `mla_decode_naive`, `upproj_ms` = the up-projection alone, the SDPA
columns = up-projection + SDPA on the up-projected K/V), `calib` (the unsplit kernel with
B * G = k * SMs segments, k = 1, 2, 4, at 32K and 128K, and stream-K with programs = SMs on
one long segment: the per-program streaming rate per resident programs).

Baselines: SDPA with `enable_gqa=True` on the flash, cuDNN and efficient backends, and
FlexAttention (compiled) where it compiles within `--flex-budget-s`. For ragged and paged
rows they run on the dense batch padded to the longest sequence (more bytes than the kernel
reads). `max_abs_err`: the kernel's output against SDPA per sequence (the naive form for MLA).
`kv_bytes`: the K/V (or latent) bytes the kernel must read. Writes DIR/decode-<gpu>-<date>.csv.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import functools
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import triton

from attnsim.kernels.spec import device_slug

FIELDS = (
    "suite", "strategy", "is_default", "batch", "heads", "kv_heads", "seq_k", "seq_lens",
    "head_dim", "value_dim", "page_size", "splits", "programs", "head_block", "block_n",
    "num_warps", "num_stages", "kernel_ms", "flash_ms", "cudnn_ms", "efficient_ms", "flex_ms",
    "naive_ms", "upproj_ms", "kv_bytes", "read_gbps", "copy_gbps", "sms", "max_abs_err",
    "device", "torch", "triton", "timestamp",
)  # fmt: skip
BLOCK_N = 64
MLA_BLOCK_N = 32


@dataclass(frozen=True)
class Shape:
    """One decode problem; `lens` empty means every sequence has `seq_k` keys."""

    suite: str
    batch: int
    heads: int
    kv_heads: int
    seq_k: int
    head_dim: int = 128
    value_dim: int = 128
    lens: tuple[int, ...] = ()
    page_size: int = 0
    mla: bool = False  # head_dim = C + Rr (latent + rope), value_dim = C


@dataclass(frozen=True)
class Config:
    """One kernel configuration to time on a shape."""

    strategy: str
    splits: int | None = None
    programs: int | None = None
    head_block: int | None = None
    num_warps: int = 4
    num_stages: int = 2
    is_default: bool = False
    block_n: int = BLOCK_N


def ragged_lens(batch: int, lo: int, hi: int, seed: int) -> tuple[int, ...]:
    """Log-uniform lengths in [lo, hi], the first sequence exactly hi (so seq_k = hi)."""
    import random

    rng = random.Random(seed)
    out = [hi] + [int(math.exp(rng.uniform(math.log(lo), math.log(hi)))) for _ in range(batch - 1)]
    return tuple(out)


def dense(suite: str, rows: list[tuple[int, int, int, int, int]]) -> list[Shape]:
    """Dense shapes from (batch, heads, kv_heads, seq_k, head_dim) rows (value dim = head dim)."""
    return [Shape(suite, b, h, g, s, d, d) for b, h, g, s, d in rows]


def mla(suite: str, rows: list[tuple[int, int, int]]) -> list[Shape]:
    """MLA shapes (C = 512, Rr = 64) from (batch, heads, seq_k) rows."""
    return [Shape(suite, b, h, 1, s, 576, 512, mla=True) for b, h, s in rows]


def shapes(sms: int = 132) -> dict[str, list[Shape]]:
    """Every suite's shapes (see the module docstring); `sms` sizes the calib suite."""
    k1, k2 = 1024, 1024 * 1024
    suites = {
        "validation": dense("validation", [
            (1, 32, 8, 8 * k1, 128), (1, 32, 8, 32 * k1, 128), (1, 32, 8, 128 * k1, 128),
            (1, 32, 8, 512 * k1, 128), (4, 32, 8, 32 * k1, 128), (16, 32, 8, 8 * k1, 128),
            (64, 32, 8, 4 * k1, 128), (1, 32, 32, 32 * k1, 128), (8, 64, 8, 16 * k1, 128),
            (2, 128, 1, 64 * k1, 128), (32, 8, 8, 2 * k1, 64), (4, 16, 2, 128 * k1, 64),
            (1, 32, 8, 1 * k1, 128),
        ]),
        "holdout": dense("holdout", [
            (1, 64, 8, 256 * k1, 128), (2, 32, 8, 64 * k1, 128), (8, 32, 8, 32 * k1, 128),
            (32, 32, 8, 16 * k1, 128), (1, 128, 128, 16 * k1, 128), (1, 16, 1, 512 * k1, 64),
            (16, 8, 1, 8 * k1, 128), (64, 64, 8, 1 * k1, 64), (2, 128, 16, 32 * k1, 128),
            (1, 8, 2, 2 * k1, 128),
        ]),
        "ragged-validation": [
            Shape("ragged-validation", 8, 32, 8, 64 * k1, lens=ragged_lens(8, k1, 64 * k1, 1)),
            Shape("ragged-validation", 4, 32, 8, 128 * k1, lens=(128 * k1, k1, 64 * k1, 7)),
            Shape("ragged-validation", 32, 32, 8, 16 * k1, lens=ragged_lens(32, 128, 16 * k1, 2)),
        ],
        "ragged-holdout": [
            Shape("ragged-holdout", 64, 32, 8, 8 * k1, lens=ragged_lens(64, 1, 8 * k1, 3)),
            Shape("ragged-holdout", 16, 64, 8, 32 * k1, 64, 64,
                  lens=ragged_lens(16, 512, 32 * k1, 4)),
        ],  # fmt: skip
        "paged-validation": [
            Shape("paged-validation", 8, 32, 8, 32 * k1, lens=ragged_lens(8, k1, 32 * k1, 5),
                  page_size=256),
            Shape("paged-validation", 32, 32, 8, 8 * k1, lens=(8 * k1,) * 32, page_size=64),
        ],  # fmt: skip
        "paged-holdout": [
            Shape("paged-holdout", 4, 32, 8, 128 * k1, lens=ragged_lens(4, 4 * k1, 128 * k1, 6),
                  page_size=256),
            Shape("paged-holdout", 16, 64, 8, 16 * k1, 64, 64,
                  lens=ragged_lens(16, 256, 16 * k1, 7), page_size=64),
        ],  # fmt: skip
        "mla-validation": mla("mla-validation", [(1, 128, 32 * k1), (16, 128, 4 * k1),
                                                 (4, 16, 32 * k1)]),
        "mla-holdout": mla("mla-holdout", [(1, 128, 128 * k1), (32, 128, 2 * k1),
                                           (8, 16, 16 * k1)]),
        "calib": [Shape("calib", k * sms // 4, 32, 4, s) for s in (32 * k1, 128 * k1)
                  for k in (1, 2, 4)]
        + [Shape("calib", 1, 8, 1, 2 * k2), Shape("calib", 1, 32, 8, 128 * k1)],
    }  # fmt: skip
    return suites


def round_robin(suites: dict[str, list[Shape]]) -> Iterator[Shape]:
    """One shape of each suite in turn, so that a budget cut leaves every suite represented."""
    lists = [list(v) for v in suites.values()]
    while any(lists):
        for lst in lists:
            if lst:
                yield lst.pop(0)


def split_sweep(shape: Shape, block_n: int = BLOCK_N) -> list[int]:
    """Splits 1, 2, 4, ... up to >= 64, while a chunk keeps at least one key tile."""
    tiles = max(1, -(-shape.seq_k // block_n))
    out, s = [], 1
    while s <= 64 and s <= tiles:
        out.append(s)
        s *= 2
    return out


def tuned_configs(shape: Shape, sms: int) -> list[Config]:
    """`--tuned`: split-K and stream-K at each tuned tiling of the shape's dims and rows.

    The tilings are those `microbench_decode --tunings` calibrates (TUNED_CONFIGS), so the
    model prices each from its own measured figures.
    """
    from attnsim.kernels.calibrate.microbench_decode_builds import TUNED_CONFIGS
    from attnsim.kernels.spec import decode_rows

    rows = decode_rows(shape.heads // shape.kv_heads)
    out = []
    for e, f, group, bn, w, st in TUNED_CONFIGS:
        if (e, f, decode_rows(group)) != (shape.head_dim, shape.value_dim, rows):
            continue
        tiling = dict(block_n=bn, num_warps=w, num_stages=st)
        out += [Config("splitk", splits=s, **tiling) for s in split_sweep(shape, bn) if s > 1]
        out += [Config("streamk", programs=p, **tiling) for p in (sms, 2 * sms)]
    return out


def configs(shape: Shape, sms: int, tuned: bool = False) -> list[Config]:
    """The kernel configurations timed on a shape (the defaults flagged).

    `tuned`: and the tuned tilings' (`tuned_configs`).
    """
    if tuned:
        return configs(shape, sms) + tuned_configs(shape, sms)
    if shape.suite == "calib":
        if shape.batch * shape.kv_heads >= sms:
            return [Config("unsplit", is_default=True)]
        return [Config("streamk", programs=sms), Config("streamk", programs=sms, num_warps=8)]
    if shape.mla:
        out = []
        for hb in (16, 32, 64):
            if hb > max(16, shape.heads):
                continue
            out += [
                Config("unsplit", head_block=hb, num_warps=8, block_n=MLA_BLOCK_N),
                Config("splitk", head_block=hb, num_warps=8, block_n=MLA_BLOCK_N,
                       is_default=hb == 32),
                Config("streamk", head_block=hb, num_warps=8, block_n=MLA_BLOCK_N),
            ]  # fmt: skip
        return out
    out = [Config("unsplit")]
    out += [Config("splitk", splits=s) for s in split_sweep(shape)]
    out.append(Config("splitk", is_default=True))
    out += [Config("streamk", programs=p) for p in (sms, 2 * sms)]
    out += [Config("streamk", is_default=True), Config("streamk", num_warps=8)]
    return out


def kv_bytes(shape: Shape, elem: int = 2) -> int:
    """Bytes of K and V (for MLA: of the latent + rope cache) the kernel must read."""
    keys = sum(shape.lens) if shape.lens else shape.batch * shape.seq_k
    if shape.mla:
        return keys * shape.head_dim * elem
    return keys * shape.kv_heads * (shape.head_dim + shape.value_dim) * elem


def peak_bytes(shape: Shape, elem: int = 2) -> int:
    """Largest device footprint of a shape's run: the dense cache, a paged copy or MLA's K/V."""
    if shape.mla:
        latent = shape.batch * shape.seq_k * shape.head_dim * elem
        upproj = shape.batch * shape.heads * shape.seq_k * (192 + 128) * elem
        return latent + 2 * upproj  # the reference's K/V plus the timed up-projection's
    cache = shape.batch * shape.seq_k * shape.kv_heads * (shape.head_dim + shape.value_dim)
    return cache * elem * (2 if shape.page_size else 1)


def make_row(shape: Shape, cfg: Config, base: dict[str, Any], **values: Any) -> dict[str, Any]:
    """One CSV row: the shape, the configuration, the shape's baselines and `values`."""
    row = dict(base)
    row.update(
        suite=shape.suite, strategy=cfg.strategy, is_default=cfg.is_default, batch=shape.batch,
        heads=shape.heads, kv_heads=shape.kv_heads, seq_k=shape.seq_k,
        seq_lens=";".join(map(str, shape.lens)), head_dim=shape.head_dim,
        value_dim=shape.value_dim, page_size=shape.page_size, splits=cfg.splits,
        programs=cfg.programs, head_block=cfg.head_block, block_n=cfg.block_n,
        num_warps=cfg.num_warps, num_stages=cfg.num_stages, kv_bytes=kv_bytes(shape),
    )  # fmt: skip
    row.update(values)
    unknown = set(row) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown columns {sorted(unknown)}")
    return row


def summary_line(shape: Shape, rows: list[dict[str, Any]]) -> str:
    """Best kernel time, its effective TB/s and the ratio to the best SDPA backend."""
    best = min(rows, key=lambda r: r["kernel_ms"])
    tbps = best["kv_bytes"] / (best["kernel_ms"] * 1e-3) / 1e12
    sdpa = [best[f"{x}_ms"] for x in ("flash", "cudnn", "efficient")]
    sdpa = [x for x in sdpa if x == x and x is not None]
    ratio = f"{min(sdpa) / best['kernel_ms']:.2f}x best SDPA" if sdpa else "no SDPA"
    lens = f" ragged({len(shape.lens)})" if shape.lens else ""
    return (
        f"{shape.suite:18s} {shape.batch}x{shape.heads}/{shape.kv_heads}x{shape.seq_k}{lens}: "
        f"{best['strategy']} s={best['splits']} p={best['programs']} hb={best['head_block']} "
        f"{best['kernel_ms']:.4f} ms {tbps:.2f} TB/s, {ratio}"
    )


# ----------------------------------------------------------------------------- GPU side


def _ms(fn: Callable[[], Any]) -> float:
    # 100 ms of warm-up: after CPU-heavy steps (FlexAttention's compile) the idle GPU has
    # clocked down, and a 10 ms warm-up left calls of ~10-20 us timed up to 2x slow (first
    # run, 2026-12-03: 21 us for a call that times 12 us on its own)
    return float(triton.testing.do_bench(fn, warmup=100, rep=60, return_mode="median"))


def bandwidths(sms: int) -> tuple[float, float]:
    """(read GB/s, copy GB/s): 4 GiB read-only stream, 2 GiB copy (read + write bytes)."""
    from attnsim.kernels.calibrate.microbench import hbm_read_s

    x = torch.ones(2**31, dtype=torch.bfloat16, device="cuda")
    read_ms = hbm_read_s(torch, x, _ms)
    src = x[: 2**30]
    dst = torch.empty_like(src)
    copy_ms = _ms(lambda: dst.copy_(src))
    return x.numel() * 2 / read_ms / 1e6, 2 * src.numel() * 2 / copy_ms / 1e6


def _sdpa(backend: Any, q: Any, k: Any, v: Any) -> Any:
    import torch.nn.functional as F
    from torch.nn.attention import sdpa_kernel

    with sdpa_kernel(backend):
        return F.scaled_dot_product_attention(q, k, v, enable_gqa=True)


class _Flex:
    """Compiled FlexAttention, given up once its compile time passes the budget."""

    def __init__(self, budget_s: float) -> None:
        self.left_s = budget_s
        self.fn: Any = None

    def time(self, q: Any, k: Any, v: Any) -> float:
        if self.left_s <= 0:
            return float("nan")
        start = time.monotonic()
        try:
            if self.fn is None:
                from torch.nn.attention.flex_attention import flex_attention

                self.fn = torch.compile(flex_attention)
            self.fn(q, k, v, enable_gqa=True)
            torch.cuda.synchronize()
            return _ms(lambda: self.fn(q, k, v, enable_gqa=True))
        except Exception as exc:  # noqa: BLE001 (any compile failure: skip quietly)
            print(f"  flex skipped: {str(exc).splitlines()[0][:120]}", file=sys.stderr)
            return float("nan")
        finally:
            self.left_s -= time.monotonic() - start


def _baselines(q: Any, k: Any, v: Any, flex: _Flex | None) -> tuple[dict[str, float], Any]:
    """SDPA backend times (ms, NaN where unavailable), flex, and the first backend's output."""
    from torch.nn.attention import SDPBackend

    backends = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
                "efficient": SDPBackend.EFFICIENT_ATTENTION}  # fmt: skip
    times, ref = {}, None
    for name, backend in backends.items():
        try:
            out = _sdpa(backend, q, k, v)
            ref = out if ref is None else ref
            times[f"{name}_ms"] = _ms(lambda b=backend: _sdpa(b, q, k, v))
        except RuntimeError as exc:
            print(f"  {name}: {str(exc).splitlines()[0][:100]}", file=sys.stderr)
            times[f"{name}_ms"] = float("nan")
    times["flex_ms"] = flex.time(q, k, v) if flex is not None else float("nan")
    if ref is None:
        ref = _sdpa(SDPBackend.MATH, q, k, v)
    return times, ref


def _paged(k: Any, v: Any, page_size: int, seed: int) -> tuple[Any, Any, Any]:
    """All (B * S / page_size) pages of a dense cache, shuffled; returns kp, vp, block_table."""
    b, g, s, _ = k.shape
    per = s // page_size
    gen = torch.Generator(device="cuda").manual_seed(seed)
    perm = torch.randperm(b * per, device="cuda", generator=gen)  # logical page i -> perm[i]

    def scatter(t: Any) -> Any:
        pages = t.view(b, g, per, page_size, t.shape[3]).transpose(1, 2)
        out = torch.empty((b * per, g, page_size, t.shape[3]), dtype=t.dtype, device="cuda")
        out[perm] = pages.reshape(b * per, g, page_size, t.shape[3])
        return out

    return scatter(k), scatter(v), perm.view(b, per).to(torch.int32)


def time_configs(
    shape: Shape, cfgs: list[Config], call: Callable[[Config], Any],
    error: Callable[[Any], float], base: dict[str, Any],
    emit: Callable[[dict[str, Any]], None], deadline: float,
) -> None:  # fmt: skip
    """Check and time `call(cfg)` for each configuration until `deadline`, one row each.

    `error(out)`: the output's max |error| against the shape's reference. A configuration
    that fails (compile, resources) is reported on stderr and skipped; the others go on.
    """
    for cfg in cfgs:
        if time.monotonic() > deadline:
            return
        fn = functools.partial(call, cfg)
        try:
            err = error(fn())
            emit(make_row(shape, cfg, base, kernel_ms=_ms(fn), max_abs_err=err))
        except Exception as exc:  # noqa: BLE001 (report the config, keep measuring)
            print(f"  {cfg}: {type(exc).__name__}: {str(exc)[:200]}", file=sys.stderr)


def _dense_rows(shape: Shape, sms: int, base: dict[str, Any], flex: _Flex | None,
                emit: Callable[[dict[str, Any]], None], deadline: float,
                tuned: bool = False) -> None:  # fmt: skip
    from attnsim.kernels.triton.attn_decode import attention_decode

    b, h, g, s = shape.batch, shape.heads, shape.kv_heads, shape.seq_k
    gen = torch.Generator(device="cuda").manual_seed(b * 7 + h * 5 + g * 3 + s)

    def randn(*size: int) -> Any:
        return torch.randn(*size, device="cuda", generator=gen, dtype=torch.bfloat16)

    q, k = randn(b, h, 1, shape.head_dim), randn(b, g, s, shape.head_dim)
    v = randn(b, g, s, shape.value_dim)
    if shape.suite == "calib":  # kernel only
        times: dict[str, float] = {}
        ref = _sdpa_ref(q, k, v)
    else:
        times, ref = _baselines(q, k, v, None if shape.lens else flex)
    lens = kp = vp = table = None
    if shape.lens:
        lens = torch.tensor(shape.lens, dtype=torch.int32, device="cuda")
        ref = torch.cat([_sdpa_ref(q[i : i + 1], k[i : i + 1, :, :n], v[i : i + 1, :, :n])
                         for i, n in enumerate(shape.lens)])  # fmt: skip
    if shape.page_size:
        kp, vp, table = _paged(k, v, shape.page_size, seed=s)
    base = {**base, **times}

    def call(c: Config) -> Any:
        return attention_decode(
            q, k if kp is None else kp, v if vp is None else vp, strategy=c.strategy,
            splits=c.splits, programs=c.programs, seq_lens=lens, block_table=table,
            head_block=c.head_block, block_n=c.block_n, num_warps=c.num_warps,
            num_stages=c.num_stages,
        )  # fmt: skip

    time_configs(shape, configs(shape, sms, tuned), call,
                 lambda out: (out.float() - ref.float()).abs().max().item(), base, emit,
                 deadline)  # fmt: skip


def _sdpa_ref(q: Any, k: Any, v: Any) -> Any:
    from torch.nn.attention import SDPBackend

    return _sdpa(SDPBackend.FLASH_ATTENTION if k.shape[3] == v.shape[3] else SDPBackend.MATH,
                 q, k, v)  # fmt: skip


def _mla_rows(shape: Shape, sms: int, base: dict[str, Any], flex: _Flex | None,
              emit: Callable[[dict[str, Any]], None], deadline: float) -> None:  # fmt: skip
    from attnsim.kernels.triton.attn_mla import (
        absorb_query,
        attention_mla_decode,
        mla_decode_naive,
        project_output,
        upproject_kv,
    )

    b, h, s = shape.batch, shape.heads, shape.seq_k
    c, rr, dn = shape.value_dim, shape.head_dim - shape.value_dim, 128
    gen = torch.Generator(device="cuda").manual_seed(b * 7 + h + s)

    def randn(*size: int, scale: float = 1.0) -> Any:
        return (torch.randn(*size, device="cuda", generator=gen) * scale).to(torch.bfloat16)

    q_nope, q_rope, cache = randn(b, h, dn), randn(b, h, rr), randn(b, s, c + rr)
    w_uk, w_uv = randn(h, dn, c, scale=c**-0.5), randn(h, dn, c, scale=c**-0.5)
    scale = (dn + rr) ** -0.5
    ckv, kr = cache[..., :c], cache[..., c:]
    q_full = torch.cat((q_nope, q_rope), -1).unsqueeze(2)
    k_up, v_up = upproject_kv(ckv, kr, w_uk, w_uv)
    times, ref = _baselines(q_full, k_up, v_up, None)
    del k_up, v_up
    for name in ("flash", "cudnn", "efficient"):  # SDPA naive: up-projection included
        if times[f"{name}_ms"] == times[f"{name}_ms"]:
            times[f"{name}_ms"] = _ms(lambda n=name: _sdpa_upproj(n, q_full, ckv, kr, w_uk, w_uv))
    times["upproj_ms"] = _ms(lambda: upproject_kv(ckv, kr, w_uk, w_uv))
    naive = (q_nope, q_rope, ckv, kr, w_uk, w_uv, scale)
    times["naive_ms"] = _ms(lambda: mla_decode_naive(*naive))
    ref = ref.squeeze(2).float()
    q_latent = absorb_query(q_nope, w_uk)
    base = {**base, **times}

    def call(c: Config) -> Any:
        return attention_mla_decode(
            q_latent, q_rope, cache, None, scale, strategy=c.strategy, splits=c.splits,
            programs=c.programs, head_block=c.head_block, block_n=c.block_n,
            num_warps=c.num_warps, num_stages=c.num_stages,
        )  # fmt: skip

    time_configs(shape, configs(shape, sms), call,
                 lambda out: (project_output(out.float(), w_uv.float()) - ref).abs().max().item(),
                 base, emit, deadline)  # fmt: skip


def _sdpa_upproj(name: str, q: Any, ckv: Any, kr: Any, w_uk: Any, w_uv: Any) -> Any:
    from torch.nn.attention import SDPBackend

    from attnsim.kernels.triton.attn_mla import upproject_kv

    backend = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
               "efficient": SDPBackend.EFFICIENT_ATTENTION}[name]  # fmt: skip
    return _sdpa(backend, q, *upproject_kv(ckv, kr, w_uk, w_uv))


def main(argv: list[str] | None = None) -> int:
    """Measure everything the module docstring lists; write the CSV as it goes."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--budget-s", type=float, default=500)
    ap.add_argument("--flex-budget-s", type=float, default=90)
    ap.add_argument(
        "--tuned",
        action="store_true",
        help="the dense, ragged and paged suites only, with the tuned tilings' split-K and "
        "stream-K configurations too (TUNED_CONFIGS); writes decode-<gpu>-<date>-tuned.csv",
    )
    args = ap.parse_args(argv)
    from attnsim.kernels.triton.common import num_sms

    deadline = time.monotonic() + args.budget_s
    name = torch.cuda.get_device_name()
    sms = num_sms(torch.cuda.current_device())
    stamp = dt.datetime.now(dt.UTC)
    read, copy = bandwidths(sms)
    torch.cuda.empty_cache()
    print(f"{name}: {sms} SMs, HBM read {read:,.0f} GB/s, copy {copy:,.0f} GB/s", flush=True)
    base = dict(read_gbps=read, copy_gbps=copy, sms=sms, device=name, torch=torch.__version__,
                triton=triton.__version__, timestamp=stamp.isoformat(), flash_ms=float("nan"),
                cudnn_ms=float("nan"), efficient_ms=float("nan"), flex_ms=float("nan"),
                naive_ms=float("nan"), upproj_ms=float("nan"))  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    tag = "-tuned" if args.tuned else ""
    path = args.out / f"decode-{device_slug(name)}-{stamp:%Y-%m-%d}{tag}.csv"
    suites = shapes(sms)
    if args.tuned:
        suites = {k: v for k, v in suites.items() if not k.startswith(("mla", "calib"))}
    flex = _Flex(args.flex_budget_s)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, FIELDS)
        writer.writeheader()
        for shape in round_robin(suites):
            if time.monotonic() > deadline:
                print("budget spent; stopping", file=sys.stderr)
                break
            rows: list[dict[str, Any]] = []

            def emit(row: dict[str, Any], rows: list[dict[str, Any]] = rows) -> None:
                writer.writerow(row)
                fh.flush()
                rows.append(row)

            try:
                if shape.mla:
                    _mla_rows(shape, sms, base, flex, emit, deadline)
                else:
                    _dense_rows(shape, sms, base, flex, emit, deadline, args.tuned)
            except torch.cuda.OutOfMemoryError as exc:
                print(f"{shape}: out of memory: {str(exc)[:100]}", file=sys.stderr)
            torch.cuda.empty_cache()
            if rows:
                print(summary_line(shape, rows), flush=True)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
