"""GPU validation of `gpu-decode` against the decode kernels timed by benchmarks/decode_probe.py.

A decode measurement file is a CSV with a `strategy` column (one row per timed kernel
configuration: suite, strategy, shape, splits/programs, tiling, `kernel_ms`, SDPA baselines).
Every row of the modelled families (triton-decode-splitk with strategy unsplit or splitk,
triton-decode-streamk) is predicted with that exact configuration; errors are percentages of
the measured median. The split pick: per shape, the configuration the model ranks fastest
among those measured, against the best measured (within `PICK_TOLERANCE`).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from attnsim.kernels.spec import DECODE_MEASURED, DECODE_STRATEGIES, decode_rows, default_splits
from attnsim.reports import validation_kernels

PICK_TOLERANCE = 0.10
MODELLED_SUITES = ("validation", "holdout")
CASCADE = "attention-1pass-gqa"  # B, G, R query heads per K/V head, E, F; P = 1
MLA_FAMILY = "triton-mla-decode"  # kernels.triton.attn_mla (the decode kernel, V = K's latent)


@dataclass(frozen=True, slots=True)
class DecodePoint:
    """One measured decode configuration with its prediction (times in ms)."""

    file: str
    suite: str
    family: str
    strategy: str
    shape: tuple[int, int, int, int, int, int]  # batch, heads, kv_heads, seq_k, E, F
    seq_lens: tuple[int, ...]
    splits: int
    programs: int
    tiling: tuple[int, int, int]
    measured_ms: float
    predicted_ms: float
    bound: str
    best_sdpa_ms: float
    head_block: int = 0

    @property
    def error_pct(self) -> float:
        """100 * (predicted - measured) / measured."""
        return 100.0 * (self.predicted_ms - self.measured_ms) / self.measured_ms

    @property
    def key(self) -> tuple[object, ...]:
        """The problem (file, suite, shape, lengths) that configurations of one shape share.

        Configurations: split counts, programs, tilings and, for MLA, head blocks.
        """
        return (self.file, self.suite, self.shape, self.seq_lens)


def is_decode_file(path: Path) -> bool:
    """Whether `path` is a decode measurement CSV (its header has a `strategy` column)."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError):
        return False
    return "strategy" in header and "kernel_ms" in header


def _int(row: dict[str, str], key: str, default: int = 0) -> int:
    v = (row.get(key) or "").strip()
    return int(float(v)) if v and v.lower() != "nan" else default


def _float(row: dict[str, str], key: str) -> float:
    v = (row.get(key) or "").strip()
    try:
        return float(v) if v else math.nan
    except ValueError:
        return math.nan


def modelled(row: dict[str, str]) -> bool:
    """Rows the model predicts: our decode kernels (GQA and MLA absorbed).

    A modelled strategy; paged rows (suites paged-*) are predicted as the same call on a
    contiguous cache (`gpu-decode`'s page_size option says so in its warnings); suite `waves`
    is benchmarks/decode_waves_probe.py's (launches of 1-60 waves of short programs).
    """
    suite = (row.get("suite") or "").split("-")
    mla = suite[0] == "mla"
    return (
        row.get("strategy") in DECODE_STRATEGIES
        and (_int(row, "head_block") == 0 or mla)
        and math.isfinite(_float(row, "kernel_ms"))
        and (suite[0] in (*MODELLED_SUITES, "ragged", "paged", "waves") or mla)
    )


def _mla_time_ms(
    row: dict[str, str], arch: object, strategy: str, tiling: tuple[int, int, int]
) -> tuple[float, str, int, int]:
    """The decode kernel alone on an MLA absorbed row: (ms, bound, splits, programs).

    The probe times the kernel without the query absorption and output projection.
    """
    from attnsim.archs.gpu import dtype_bytes
    from attnsim.kernels.spec import AttnShape
    from attnsim.mappers.gpu.decode import decode_calibration, decode_problem, time_decode
    from attnsim.mappers.gpu.rates import device_rates

    b, h, m = _int(row, "batch"), _int(row, "heads"), _int(row, "seq_k")
    e, f, hb = _int(row, "head_dim"), _int(row, "value_dim"), _int(row, "head_block")
    shape = AttnShape(b, h, 1, m, e, f, False, "bf16", dtype_bytes("bf16"), kv_group=h)
    problem = decode_problem(shape, (), shared_kv=True, head_block=hb)
    sms = _int(row, "sms", 132)
    splits = _int(row, "splits") or default_splits(problem.segments, m, sms)
    programs = _int(row, "programs") or sms
    rates = device_rates(arch, "bf16")  # type: ignore[arg-type]
    t = time_decode(problem, strategy, splits, programs, tiling, rates, decode_calibration(arch))  # type: ignore[arg-type]
    return t.time_s * 1e3, t.bound, t.splits, t.programs


def predict_rows(
    paths: Sequence[Path],
    arch_name: str | None = None,
    suites: Iterable[str] | None = None,
    calibration: str = "preset",
) -> list[DecodePoint]:
    """Predict every modelled row of the files (`suites`: keep only these suite names).

    `arch_name`: the GPU preset of every file (None: each file's own device,
    `validation.file_arch`). `calibration`: "preset", or "none" to withhold the GPU's
    measured figures (its decode figures included).
    """
    from attnsim.archs.load import load_arch
    from attnsim.einsum_ir import load_cascade
    from attnsim.mappers.registry import get_mapper
    from attnsim.reports.validation import ValidationError, file_arch

    cascade = load_cascade(CASCADE)
    keep = set(suites) if suites is not None else None
    points = []
    files, problems = [], []
    for path in paths:  # every file's device first: all the unreadable ones reported at once
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        try:
            files.append((path, rows, file_arch(path, rows, arch_name)))
        except ValidationError as exc:
            problems.append(str(exc))
    if problems:
        raise ValidationError("\n".join(problems))
    for path, rows, preset in files:
        arch = load_arch(preset, overrides={"calibration": calibration})
        for row in rows:
            if not modelled(row) or (keep is not None and row["suite"] not in keep):
                continue
            b, h, g = _int(row, "batch"), _int(row, "heads"), _int(row, "kv_heads")
            m, e = _int(row, "seq_k"), _int(row, "head_dim")
            f = _int(row, "value_dim", e)
            lens = tuple(int(x) for x in (row.get("seq_lens") or "").split(";") if x.strip())
            strategy = row["strategy"]
            tiling = (_int(row, "block_n"), _int(row, "num_warps"), _int(row, "num_stages"))
            opts: dict[str, object] = dict(
                strategy=strategy, block_n=tiling[0], num_warps=tiling[1], num_stages=tiling[2],
                seq_lens=lens, page_size=_int(row, "page_size"),
            )  # fmt: skip
            if row["suite"].startswith("mla"):
                ms, bound, n_split, n_prog = _mla_time_ms(row, arch, strategy, tiling)
                points.append(
                    DecodePoint(
                        file=path.name, suite=row["suite"], family=MLA_FAMILY,
                        strategy=strategy, shape=(b, h, g, m, e, f), seq_lens=lens,
                        splits=n_split, programs=n_prog, tiling=tiling,
                        measured_ms=_float(row, "kernel_ms"), predicted_ms=ms, bound=bound,
                        best_sdpa_ms=math.nan, head_block=_int(row, "head_block"),
                    )
                )  # fmt: skip
                continue
            sms = _int(row, "sms", 132)
            if strategy == "splitk":  # blank: the kernel's default for this shape
                segments = b * g * -(-(h // g) // decode_rows(h // g))
                opts["splits"] = _int(row, "splits") or default_splits(segments, m, sms)
            if strategy == "streamk":
                opts["programs"] = _int(row, "programs") or sms
            res = get_mapper("gpu-decode")(**opts).map(
                cascade, arch, dict(B=b, G=g, R=h // g, E=e, F=f, P=1, M=m)
            )
            chosen = dict(res.options)
            sdpa = [_float(row, c) for c in ("flash_ms", "cudnn_ms", "efficient_ms")]
            sdpa = [t for t in sdpa if math.isfinite(t)]
            points.append(
                DecodePoint(
                    file=path.name,
                    suite=row["suite"],
                    family=DECODE_MEASURED[strategy],
                    strategy=strategy,
                    shape=(b, h, g, m, e, f),
                    seq_lens=lens,
                    splits=int(chosen["splits"]),
                    programs=int(chosen["programs"]),
                    tiling=tiling,
                    measured_ms=_float(row, "kernel_ms"),
                    predicted_ms=res.latency_s * 1e3,
                    bound=res.bound,
                    best_sdpa_ms=min(sdpa) if sdpa else math.nan,
                )
            )
    return points


def picks(points: Sequence[DecodePoint]) -> list[tuple[Hashable, float]]:
    """Per shape: measured time of the model's pick over the best measured, minus 1."""
    return validation_kernels.picks(points)


def summary(points: Sequence[DecodePoint]) -> dict[str, dict[str, float]]:
    """MAPE, worst |error| and count per family x suite, and the pick fraction."""
    out = validation_kernels.suite_errors(points)
    for kernel, mine in (
        ("gqa", [p for p in points if p.family != MLA_FAMILY]),
        ("mla", [p for p in points if p.family == MLA_FAMILY]),
    ):
        pk = picks(mine)
        if pk:
            within = sum(1 for _, r in pk if r <= PICK_TOLERANCE) / len(pk)
            out[f"split pick ({kernel})"] = {"within_10pct": within, "shapes": float(len(pk))}
    return out


def format_report(points: Sequence[DecodePoint], worst: int = 10) -> str:
    """A text report: per family and suite, the split pick, the worst points."""
    lines = ["decode (gpu-decode vs triton-decode-*):"]
    for name, s in summary(points).items():
        if "mape_pct" in s:
            lines.append(
                f"  {name:<34} MAPE {s['mape_pct']:5.1f}%  worst {s['worst_pct']:5.1f}%  "
                f"({int(s['points'])} points)"
            )
        else:
            lines.append(
                f"  {name:<34} within 10% of the best measured for "
                f"{s['within_10pct']:.0%} of {int(s['shapes'])} shapes"
            )
    lines.append("  worst points:")
    for p in sorted(points, key=lambda p: -abs(p.error_pct))[:worst]:
        b, h, g, m, e, f = p.shape
        cfg = p.strategy + (f"/{p.splits}" if p.strategy == "splitk" else "")
        cfg += f"/{p.programs}p" if p.strategy == "streamk" else ""
        lines.append(
            f"    {p.suite:<10} B={b} H={h} G={g} M={m} E={e} {cfg:<14} measured "
            f"{p.measured_ms * 1e3:8.1f} us  predicted {p.predicted_ms * 1e3:8.1f} us  "
            f"{p.error_pct:+6.1f}%  ({p.bound})"
        )
    return "\n".join(lines)
