"""GPU validation of the sequence-parallel mappers against benchmarks/seqpar_probe.py's files.

A sequence-parallel measurement file is a CSV with `scheme` and `seq_per_device` columns, one
row per (context, scheme) timed on `devices` GPUs: the distributed forward (`step_ms`), its
work alone (`compute_ms`, no transfers) and its communication alone (`comm_ms`). Each timed
row ("ok") is predicted by the scheme's mapper at the row's sizes on the row's GPU preset
(its interconnect, NCCL-calibrated where the preset names a calibration):

- ring (`gpu-ring-attention`): causal or not; balance none (the contiguous layout), zigzag,
  striped; the blocks on gpu-1pass's model;
- lasp2 with decay (`gpu-lasp2` on `attention-lightning-2`): the local chunks on
  gpu-lightning's model.

Errors are percentages of the measured medians: the step (issue 16's acceptance: MAPE <= 10%
per scheme), and, to show which part of the model misses, its compute and communication
parts (the Result's `compute_s` + the steps' serial parts, and `comm_s`).
"""

from __future__ import annotations

import csv
import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from attnsim.reports.validation_kernels import Row, row_float, row_int

STEP_TOLERANCE_PCT = 10.0  # issue 16: step time MAPE <= 10% for Ring Attention and LASP-2
MARKERS = ("scheme", "seq_per_device")
BALANCES = {"none": "contiguous", "zigzag": "zigzag", "striped": "striped"}
DTYPES = {"bfloat16": "bf16", "float16": "fp16", "bf16": "bf16", "fp16": "fp16"}  # torch's names


@dataclass(frozen=True, slots=True)
class SeqparPoint:
    """One measured (context, scheme) row with the model's step, compute and comm (ms)."""

    file: str
    scheme: str  # the probe's case label: ring-causal-zigzag, lasp2-decay, ...
    devices: int
    seq_total: int
    measured_ms: float
    predicted_ms: float
    measured_compute_ms: float
    predicted_compute_ms: float
    measured_comm_ms: float
    predicted_comm_ms: float
    bound: str

    @property
    def error_pct(self) -> float:
        """Step: 100 * (predicted - measured) / measured."""
        return _pct(self.predicted_ms, self.measured_ms)

    @property
    def compute_error_pct(self) -> float:
        """Compute alone (nan when not measured)."""
        return _pct(self.predicted_compute_ms, self.measured_compute_ms)

    @property
    def comm_error_pct(self) -> float:
        """Communication alone (nan when not measured)."""
        return _pct(self.predicted_comm_ms, self.measured_comm_ms)

    @property
    def family(self) -> str:
        """The scheme's family: ring or lasp2."""
        return self.scheme.split("-")[0]


def _pct(predicted: float, measured: float) -> float:
    if not (math.isfinite(measured) and measured > 0):
        return math.nan
    return 100.0 * (predicted - measured) / measured


def is_seqpar_file(path: Path) -> bool:
    """Whether `path` is a CSV whose header has the sequence-parallel probe's columns."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError):
        return False
    return all(m in header for m in MARKERS)


def _label(row: Row) -> str:
    if row.get("scheme") == "lasp2":
        return "lasp2-decay" if row_int(row, "decay") else "lasp2"
    kind = "causal" if row_int(row, "causal") else "full"
    return f"ring-{kind}-{row.get('balance') or 'none'}"


def _mapping(row: Row) -> tuple[str, str, dict[str, object]]:
    """(mapper, cascade, options) of a row, or ValueError naming the field."""
    scheme = row.get("scheme", "")
    if scheme == "ring":
        balance = row.get("balance") or "none"
        if balance not in BALANCES:
            raise ValueError(f"balance: expected one of {', '.join(BALANCES)}, got {balance!r}")
        causal = row_int(row, "causal")
        cascade = "attention-1pass-mh-causal" if causal else "attention-1pass-mh"
        return "gpu-ring-attention", cascade, {"balance": BALANCES[balance]}
    if scheme == "lasp2":
        if not row_int(row, "decay"):
            raise ValueError("decay: 0: no built-in cascade is LASP-2's linear attention "
                             "without decay (attention-lightning-2 decays per head)")  # fmt: skip
        return "gpu-lasp2", "attention-lightning-2", {}
    raise ValueError(f"scheme: expected ring or lasp2, got {scheme!r}")


def predict_row(row: Row, arch: object) -> SeqparPoint:
    """The model's step, compute and communication for one timed row (ValueError: why not)."""
    from attnsim.einsum_ir import load_cascade
    from attnsim.mappers.registry import get_mapper
    from attnsim.mappers.spatial.view import MappingError

    mapper, cascade, options = _mapping(row)
    e, f = row_int(row, "head_dim_qk"), row_int(row, "head_dim_v")
    seq, devices = row_int(row, "seq_total"), row_int(row, "devices")
    sizes = {"B": row_int(row, "batch"), "H": row_int(row, "heads"), "E": e, "F": f,
             "P": seq, "M": seq}  # fmt: skip
    if min(*sizes.values(), devices) <= 0:
        raise ValueError("batch, heads, head_dim_qk, head_dim_v, seq_total and devices must "
                         "be positive integers")  # fmt: skip
    dtype = DTYPES.get(row.get("dtype") or "bf16", row.get("dtype") or "")
    try:
        result = get_mapper(mapper)(devices=devices, dtype=dtype, **options).map(
            load_cascade(cascade), arch, sizes
        )
    except MappingError as exc:
        raise ValueError(str(exc)) from None
    ex = dict(result.extras)
    serial = sum(v * ex.get(k.replace(".serial_s", ".count"), 1.0)
                 for k, v in ex.items() if k.endswith(".serial_s"))  # fmt: skip
    return SeqparPoint(
        file="",
        scheme=_label(row),
        devices=devices,
        seq_total=seq,
        measured_ms=row_float(row, "step_ms"),
        predicted_ms=result.latency_s * 1e3,
        measured_compute_ms=row_float(row, "compute_ms"),
        predicted_compute_ms=(ex.get("compute_s", 0.0) + serial) * 1e3,
        measured_comm_ms=row_float(row, "comm_ms"),
        predicted_comm_ms=ex.get("comm_s", 0.0) * 1e3,
        bound=result.bound,
    )


def predict_rows(
    paths: Sequence[Path], arch_name: str | None = None, calibration: str = "preset"
) -> list[SeqparPoint]:
    """Predict every timed row of the files; every unreadable row is reported at once.

    `arch_name`: the GPU preset for every row (None: from each row's `gpu` column).
    `calibration`: "preset", or "none" to withhold the GPU's measured figures.
    """
    import dataclasses

    from attnsim.archs.load import load_arch
    from attnsim.reports.validation import ValidationError, arch_for_device

    points, problems = [], []
    for path in paths:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        for line, row in enumerate(rows, start=2):  # line 1 is the header
            if (row.get("status") or "ok") != "ok" or not math.isfinite(row_float(row, "step_ms")):
                continue
            try:
                name = arch_name or arch_for_device(row.get("gpu", ""))
                point = predict_row(row, load_arch(name, overrides={"calibration": calibration}))
            except KeyError as exc:  # a preset load_arch does not know
                problems.append(f"{path}:{line}: {str(exc).strip(chr(34) + chr(39))}")
                continue
            except (ValueError, ValidationError) as exc:
                problems.append(f"{path}:{line}: {exc}")
                continue
            points.append(dataclasses.replace(point, file=path.name))
    if problems:
        raise ValueError("\n".join(problems))
    return points


def summary(points: Sequence[SeqparPoint]) -> dict[str, dict[str, float]]:
    """Per scheme family and per scheme: step MAPE, worst, compute and comm MAPE, points."""
    groups: dict[str, list[SeqparPoint]] = defaultdict(list)
    for p in points:
        groups[p.family].append(p)
        groups[p.scheme].append(p)
    out = {}
    for name, pts in sorted(groups.items()):
        errs = [abs(p.error_pct) for p in pts]
        out[name] = {
            "mape_pct": statistics.fmean(errs),
            "worst_pct": max(errs),
            "compute_mape_pct": _mape(p.compute_error_pct for p in pts),
            "comm_mape_pct": _mape(p.comm_error_pct for p in pts),
            "points": float(len(pts)),
        }
    return out


def _mape(errors: object) -> float:
    finite = [abs(e) for e in errors if math.isfinite(e)]  # type: ignore[attr-defined]
    return statistics.fmean(finite) if finite else math.nan


def format_report(points: Sequence[SeqparPoint], worst: int = 10) -> str:
    """Per scheme: step MAPE (against the 10% target), compute and comm MAPE; worst points."""
    lines = ["sequence-parallel schemes (model vs measured step time):"]
    if not points:
        return lines[0] + "\n  no timed rows"
    for name, s in summary(points).items():
        verdict = "within" if s["mape_pct"] <= STEP_TOLERANCE_PCT else "over"
        lines.append(
            f"  {name:<22} step MAPE {s['mape_pct']:5.1f}% ({verdict} {STEP_TOLERANCE_PCT:.0f}%)"
            f"  worst {s['worst_pct']:5.1f}%  compute {s['compute_mape_pct']:5.1f}%  "
            f"comm {s['comm_mape_pct']:5.1f}%  ({int(s['points'])} points)"
        )
    lines.append("  worst points:")
    for p in sorted(points, key=lambda p: -abs(p.error_pct))[:worst]:
        lines.append(
            f"    {p.scheme:<20} W={p.devices:<3} S={p.seq_total:<8} measured "
            f"{p.measured_ms:9.3f} ms  predicted {p.predicted_ms:9.3f} ms  "
            f"{p.error_pct:+6.1f}%  (compute {p.compute_error_pct:+.1f}%, comm "
            f"{p.comm_error_pct:+.1f}%; {p.bound})"
        )
    return "\n".join(lines)
