"""Timing suites of `kernels.bench.harness`: families, tilings, shapes, configurations, estimates.

No GPU needed (`python -m attnsim.kernels.bench --dry-run` lists a suite from here). The 1-pass
family's ping-pong configurations (`PINGPONG_TILINGS`) are added on sm_90 devices.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from attnsim.kernels.bench.measure import FAMILIES
from attnsim.kernels.gluon.attn_pingpong import pingpong_smem_bytes
from attnsim.kernels.spec import (
    MEASURED_FAMILIES,
    PINGPONG_BLOCK,
    PINGPONG_HEAD_DIMS,
    SDPA_FAMILIES,
    AttnShape,
    attn_flops,
    bytes_unfused,
    family,
    kernel_shape,
    smem_bytes_1pass,
)
from attnsim.kernels.spec import PINGPONG_TILINGS as _PINGPONG
from attnsim.kernels.triton.common import device_smem_limit

__all__ = [
    "FAMILIES",
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
    "compile_key",
    "estimate_ms",
    "estimate_run_s",
    "fits",
    "gqa_holdout_shapes",
    "gqa_validation_shapes",
    "holdout_shapes",
    "pingpong_device",
    "fresh_shapes",
    "regime_shapes",
    "smoke_shapes",
    "validation_shapes",
]

SUITES = (
    "validation", "holdout", "regimes", "fresh", "gqa-validation", "gqa-holdout", "smoke",
)  # fmt: skip
# GQA/MQA shapes run on the 1-pass family (both schedules) and SDPA with enable_gqa; the
# 2-pass and unfused kernels take MHA only, SDPA's efficient backend has no enable_gqa
GQA_FAMILIES = ("triton-1pass", "sdpa-cudnn", "sdpa-flash")

TRITON_FAMILIES = MEASURED_FAMILIES
Tiling = tuple[int, int, int, int]  # (block_m, block_n, num_warps, num_stages)
NO_TILING: Tiling = (0, 0, 0, 0)

# Tilings swept per family and head dim (those over the shared-memory limit are dropped).
TILINGS: dict[str, dict[int, list[Tiling]]] = {
    "triton-1pass": {
        # The best tilings of benchmarks/tune_attn.py on the H200 (2026-11-30) plus two others.
        64: [(128, 128, 4, 3), (128, 64, 8, 3), (64, 64, 4, 3), (128, 64, 4, 3)],
        128: [(128, 128, 8, 3), (64, 64, 4, 3), (128, 64, 8, 3), (128, 64, 4, 3)],
    },
    "triton-2pass": {
        64: [(128, 64, 4, 3), (128, 128, 8, 3)],
        128: [(128, 64, 8, 3), (128, 128, 8, 3)],
    },
    "triton-unfused": {
        64: [(128, 128, 8, 3), (128, 64, 4, 3)],
        128: [(128, 128, 8, 3), (128, 64, 4, 3)],
    },
}
# The 1-pass family's ping-pong kernel (kernels.gluon.attn_pingpong; Hopper only, seq_q % 128 == 0):
# BLOCK_M 128 with 8 consumer warps, 3 K/V slots.
PINGPONG_TILINGS: dict[int, list[Tiling]] = {d: list(_PINGPONG) for d in PINGPONG_HEAD_DIMS}
SMOKE_TILINGS: dict[str, dict[int, list[Tiling]]] = {
    f: {d: t[:1] for d, t in by_d.items()} for f, by_d in TILINGS.items()
}

# Rough speeds for the run-time estimate only (TFLOP/s; unfused: TB/s of its traffic).
_EST_TFLOPS = {
    "triton-1pass": 400.0,
    "triton-2pass": 250.0,
    "sdpa-flash": 300.0,
    "sdpa-cudnn": 500.0,
    "sdpa-efficient": 140.0,
}
_EST_UNFUSED_TBPS = 2.5
_EST_COMPILE_S = 2.5  # per new Triton kernel variant
_FLUSH_MS = 0.12  # do_bench's L2 flush (256 MB memset) per run


@dataclass(frozen=True)
class Config:
    """One timed configuration."""

    family: str
    shape: AttnShape
    tiling: Tiling
    schedule: str = "plain"  # triton-1pass: "plain" (Triton) or "pingpong" (Gluon, Hopper)

    def label(self) -> str:
        """One-line description for progress and error messages."""
        s = self.shape
        bm, bn, w, st = self.tiling
        t = "" if self.tiling == NO_TILING else f" tiling={bm}x{bn} w{w} s{st}"
        t += "" if self.schedule == "plain" else f" schedule={self.schedule}"
        g = f" G={s.heads // s.kv_group}" if s.kv_group > 1 else ""
        return (
            f"{self.family} B={s.batch} H={s.heads}{g} S={s.seq_q} D={s.head_dim} "
            f"causal={int(s.causal)}{t}"
        )


# ----------------------------------------------------------------------------- suites


def validation_shapes() -> list[AttnShape]:
    """56 shapes: seq 512..32K x head dim 64/128 x causal/not x two batch*heads regimes.

    'many waves': batch*seq = 16K tokens, 16 heads (the reference file's prefill shapes);
    'few heads': batch 1, 4 heads (under-fills the 132 SMs up to seq 4K).
    """
    shapes = []
    for seq in (512, 1024, 2048, 4096, 8192, 16384, 32768):
        for d in (64, 128):
            for causal in (False, True):
                shapes.append(kernel_shape(max(1, 16384 // seq), 16, seq, seq, d, causal))
                shapes.append(kernel_shape(1, 4, seq, seq, d, causal))
    return shapes


def holdout_shapes() -> list[AttnShape]:
    """20 shapes unlike the validation set's, to check that the GPU model generalizes.

    Sequence lengths off the powers of two (768, 1536, 3072, 6144, 12288), ragged ones that
    are no multiple of any BLOCK_M (1000, 2500, 4000: the 1-pass kernel's in-kernel
    descriptor path and masked last tiles), seq_q != seq_k (a short query chunk against a
    long KV cache), other batch x heads (3x12, 16x20, 4x40, 1x2, 1x1, 8x32). None of these is
    in `validation_shapes()`; the model is never calibrated on either suite.
    """
    a = kernel_shape
    return [
        a(3, 12, 3072, 3072, 128, False),
        a(3, 12, 3072, 3072, 64, True),
        a(8, 32, 2048, 2048, 128, False),
        a(8, 32, 2048, 2048, 64, True),
        a(2, 8, 6144, 6144, 64, False),
        a(2, 8, 6144, 6144, 128, True),
        a(1, 8, 12288, 12288, 128, False),
        a(1, 8, 12288, 12288, 64, True),
        a(16, 20, 1536, 1536, 64, False),
        a(16, 20, 1536, 1536, 128, True),
        a(4, 40, 768, 768, 128, False),
        a(1, 2, 2048, 2048, 128, False),
        a(1, 1, 8192, 8192, 64, False),
        a(2, 16, 1000, 1000, 64, False),
        a(1, 16, 2500, 2500, 128, True),
        a(4, 8, 4000, 4000, 128, False),
        a(4, 16, 512, 4096, 128, False),
        a(2, 16, 1024, 8192, 64, False),
        a(6, 24, 1024, 1024, 128, False),
        a(2, 4, 24576, 24576, 128, False),
    ]


def regime_shapes() -> list[AttnShape]:
    """16 shapes in the regimes the validation and holdout suites sample thinly (issue 18).

    A short query chunk against a long KV cache (seq_q <= 256, seq_k >= 8K), many short
    sequences (batch >= 32, seq <= 512), long causal rows (>= 32K), ragged causal lengths,
    medium causal batches (batch ~12, seq 1K-1.5K, head dim 128). None is in
    `validation_shapes()` or `holdout_shapes()`; the model is calibrated on neither.
    """
    a = kernel_shape
    return [
        a(4, 16, 128, 8192, 128, False), a(2, 32, 256, 16384, 128, False),
        a(8, 8, 64, 32768, 128, False), a(1, 32, 256, 65536, 64, False),
        a(64, 16, 256, 256, 64, False), a(128, 8, 128, 128, 128, False),
        a(32, 32, 512, 512, 128, True), a(256, 12, 64, 64, 64, False),
        a(1, 8, 32768, 32768, 64, True), a(1, 4, 40960, 40960, 128, True),
        a(2, 16, 3000, 3000, 128, True), a(1, 16, 7000, 7000, 64, True),
        a(12, 16, 1024, 1024, 128, True), a(12, 32, 1024, 1024, 128, True),
        a(10, 16, 1536, 1536, 128, True), a(48, 16, 384, 384, 128, True),
    ]  # fmt: skip


def fresh_shapes() -> list[AttnShape]:
    """14 shapes drawn at random, to estimate the GPU model's error where nobody looked.

    Drawn once (2026-12-06, numpy `default_rng(20261206)`) by a fixed rule, before any of
    them was timed, and kept as drawn: seq_k a power of two 512..32K or an integer
    300..20000 (even odds); seq_q = seq_k, or (odds 1 in 4) seq_k / 4..64, at least 64;
    head dim 64 or 128; causal at even odds when seq_q = seq_k; heads from 2..48; batch
    such that batch x seq_k <= 64K and the unfused kernel's scores fit 16 GB. No model
    figure is fitted on this suite: its error is the expected error on unseen shapes.
    """
    a = kernel_shape
    return [
        a(2, 8, 7787, 7787, 64, True), a(4, 32, 229, 7346, 128, False),
        a(4, 8, 1024, 1024, 128, False), a(2, 2, 14412, 14412, 128, True),
        a(3, 20, 4842, 4842, 128, True), a(4, 32, 203, 13004, 128, False),
        a(1, 8, 2654, 2654, 64, False), a(1, 8, 362, 1448, 128, False),
        a(1, 24, 16384, 16384, 128, False), a(1, 40, 8192, 8192, 128, True),
        a(8, 24, 512, 2048, 64, False), a(1, 4, 10124, 10124, 64, True),
        a(1, 32, 8454, 8454, 128, False), a(12, 16, 4096, 4096, 128, False),
    ]  # fmt: skip


def _gqa(b: int, h: int, g: int, s: int, d: int, causal: bool) -> AttnShape:
    return replace(kernel_shape(b, h, s, s, d, causal), kv_group=h // g)


def gqa_validation_shapes() -> list[AttnShape]:
    """12 GQA/MQA prefill shapes: (batch, H query heads, G K/V heads, seq, head dim, causal).

    Llama/Mistral-style 32/8 at 1K-32K, 32/4, MQA (32/1), 64/8, head dim 64 and 128,
    causal and not.
    """
    return [
        _gqa(*t)
        for t in (
            (1, 32, 8, 4096, 128, True), (1, 32, 8, 8192, 128, True),
            (2, 32, 8, 4096, 128, False), (1, 32, 8, 16384, 128, True),
            (1, 32, 4, 8192, 128, True), (4, 32, 1, 2048, 128, True),
            (1, 64, 8, 8192, 128, True), (2, 32, 8, 8192, 128, False),
            (8, 32, 8, 1024, 128, True), (1, 32, 8, 4096, 64, True),
            (4, 16, 2, 2048, 64, False), (1, 32, 8, 32768, 128, True),
        )
    ]  # fmt: skip


def gqa_holdout_shapes() -> list[AttnShape]:
    """8 GQA shapes unlike `gqa_validation_shapes()`.

    Other head counts (40/8, 28/4, 48/8, 24/8, 32/2), lengths off the powers of two and a
    batch of short sequences.
    """
    return [
        _gqa(*t)
        for t in (
            (1, 40, 8, 6144, 128, True), (2, 28, 4, 3072, 128, True),
            (1, 48, 8, 12288, 128, False), (3, 32, 8, 2048, 128, True),
            (1, 32, 2, 5120, 128, True), (2, 64, 8, 4096, 64, True),
            (1, 24, 8, 8192, 128, False), (16, 32, 8, 512, 128, True),
        )
    ]  # fmt: skip


def smoke_shapes() -> list[AttnShape]:
    """A handful of small shapes (< 1 minute including compiles)."""
    return [
        kernel_shape(4, 16, 1024, 1024, 64, False),
        kernel_shape(2, 16, 2048, 2048, 128, True),
        kernel_shape(1, 4, 512, 512, 128, False),
    ]


def fits(tiling: Tiling, head_dim: int, elem: int, limit: int) -> bool:
    """Whether a fused-kernel tiling fits the shared-memory limit (estimate)."""
    bm, bn, _, stages = tiling
    return smem_bytes_1pass(bm, bn, head_dim, stages, elem) <= limit


def pingpong_device() -> bool:
    """Whether this machine's GPU runs the ping-pong schedule (CUDA sm_90)."""
    return torch.cuda.is_available() and torch.cuda.get_device_capability(0)[0] == 9


def build_configs(
    suite: str,
    families: list[str],
    elem: int = 2,
    smem_limit: int | None = None,
    pingpong: bool | None = None,
) -> list[Config]:
    """Every configuration of a suite, grouped by family (family order as given).

    `pingpong`: add the 1-pass family's ping-pong configurations (`PINGPONG_TILINGS`, shapes
    with seq_q % 128 == 0); default: when this machine's GPU is sm_90.
    """
    if pingpong is None:
        pingpong = pingpong_device()
    shapes = {
        "validation": validation_shapes,
        "holdout": holdout_shapes,
        "regimes": regime_shapes,
        "fresh": fresh_shapes,
        "gqa-validation": gqa_validation_shapes,
        "gqa-holdout": gqa_holdout_shapes,
    }.get(suite, smoke_shapes)()
    tilings = SMOKE_TILINGS if suite == "smoke" else TILINGS
    limit = device_smem_limit() if smem_limit is None else smem_limit
    out: list[Config] = []
    for fam in families:
        for shape in shapes:
            if shape.kv_group > 1 and fam not in GQA_FAMILIES:
                continue
            if fam in SDPA_FAMILIES:
                out.append(Config(fam, shape, NO_TILING))
                continue
            for t in tilings[fam][shape.head_dim]:
                if fam != "triton-unfused" and not fits(t, shape.head_dim, elem, limit):
                    continue
                if shape.causal and fam != "triton-unfused" and t[0] % t[1]:
                    continue
                out.append(Config(fam, shape, t))
            if fam == "triton-1pass" and pingpong and shape.seq_q % PINGPONG_BLOCK[0] == 0:
                if suite == "smoke" and shape.causal:  # the smoke run stays under a minute
                    continue
                pp = PINGPONG_TILINGS[shape.head_dim][: 1 if suite == "smoke" else None]
                for t in pp:
                    if pingpong_smem_bytes(t[1], shape.head_dim, t[3], elem) <= limit:
                        out.append(Config(fam, shape, t, "pingpong"))
    return out


def estimate_ms(cfg: Config, elem: int = 2) -> float:
    """Rough kernel time in ms (for the budget only), with `elem`-byte elements."""
    if cfg.family == "triton-unfused":
        shape = replace(cfg.shape, elem_bytes=elem)
        return bytes_unfused(shape) * 1.3 / (_EST_UNFUSED_TBPS * 1e9)
    flops = attn_flops(cfg.shape)
    return flops / (_EST_TFLOPS[cfg.family] * 1e9) + 0.01


def bench_params(est_ms: float) -> tuple[int, int]:
    """(warmup_ms, rep_ms) for do_bench, from the expected kernel time."""
    rep = int(min(400.0, max(40.0, 25.0 * est_ms)))
    warm = int(min(100.0, max(10.0, 3.0 * est_ms)))
    return warm, rep


def compile_key(cfg: Config) -> tuple[object, ...]:
    """Distinct Triton compilations: one per (family, schedule, tiling, head dim, causal)."""
    return (cfg.family, cfg.schedule, cfg.tiling, cfg.shape.head_dim, cfg.shape.causal)


def estimate_run_s(configs: list[Config], elem: int = 2) -> float:
    """Estimated wall time of a run in seconds: timing runs, flushes, compiles, checks."""
    total_ms = 0.0
    for cfg in configs:
        est = estimate_ms(cfg, elem)
        warm, rep = bench_params(est)
        runs = 6 + max(1, int(warm / est)) + max(1, int(rep / est))
        total_ms += runs * (est + _FLUSH_MS + 0.02)
    compiles = {compile_key(c) for c in configs if c.family in TRITON_FAMILIES}
    n_kernels = sum(family(str(k[0])).launches for k in compiles)
    shapes = {(c.family, c.shape) for c in configs}
    return total_ms / 1e3 + n_kernels * _EST_COMPILE_S + 0.05 * len(shapes)
