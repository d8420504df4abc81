"""The measurement record (one CSV row per timed configuration) and its CSV reader/writer.

Schema (column order is the CSV header): see `FIELDS`. No torch/triton here, so reports and
the validation CI test can read measurement files on any machine. Files written before the
`schedule` column existed (header `LEGACY_FIELDS`) are read with schedule "plain", files
before the `kv_heads` column (`SCHEDULE_FIELDS`) as MHA (kv_heads 0: one K/V head per query
head).
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from attnsim.kernels.spec import KERNEL_DTYPES, MEASURED_FAMILIES, SCHEDULES, SDPA_FAMILIES
from attnsim.kernels.spec import family as kernel_family

FAMILIES = MEASURED_FAMILIES + SDPA_FAMILIES  # the CSV `family` column: triton-<family>, sdpa-*
DTYPES = KERNEL_DTYPES


class MeasurementError(ValueError):
    """A bad measurement row or file; the message names the file and line when known."""


@dataclass(frozen=True)
class Measurement:
    """One timed configuration of one kernel family on one device."""

    family: str
    batch: int
    heads: int
    seq_q: int
    seq_k: int
    head_dim: int
    causal: int
    dtype: str
    block_m: int
    block_n: int
    num_warps: int
    num_stages: int
    median_ms: float
    p10_ms: float
    p90_ms: float
    flops: int
    tflops: float
    device: str
    driver: str
    torch: str
    triton: str
    timestamp: str
    schedule: str = "plain"  # triton-1pass: which kernel of the family (kernels.triton.attn_fwd)
    kv_heads: int = 0  # GQA/MQA: K/V heads, a divisor of heads (0: as many as heads)

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise MeasurementError(f"unknown family {self.family!r} (one of {', '.join(FAMILIES)})")
        if self.dtype not in DTYPES:
            raise MeasurementError(f"unknown dtype {self.dtype!r} (one of {', '.join(DTYPES)})")
        if self.schedule not in SCHEDULES:
            raise MeasurementError(
                f"unknown schedule {self.schedule!r} (one of {', '.join(SCHEDULES)})"
            )
        one_pass = kernel_family("1pass").measured
        if self.schedule != "plain" and self.family != one_pass:
            raise MeasurementError(f"schedule {self.schedule!r} is a {one_pass} kernel only")
        if self.causal not in (0, 1):
            raise MeasurementError(f"causal must be 0 or 1, got {self.causal!r}")
        for name in ("batch", "heads", "seq_q", "seq_k", "head_dim"):
            if getattr(self, name) < 1:
                raise MeasurementError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.kv_heads < 0 or (self.kv_heads and self.heads % self.kv_heads):
            raise MeasurementError(
                f"kv_heads must divide heads ({self.heads}) or be 0, got {self.kv_heads}"
            )
        if self.grouped and self.family not in (one_pass, *SDPA_FAMILIES):
            raise MeasurementError(
                f"kv_heads {self.kv_heads} < heads: GQA runs on {one_pass} and SDPA only"
            )
        for name in ("block_m", "block_n", "num_warps", "num_stages", "flops"):
            if getattr(self, name) < 0:
                raise MeasurementError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.median_ms > 0:
            raise MeasurementError(f"median_ms must be > 0, got {self.median_ms!r}")

    @property
    def grouped(self) -> bool:
        """GQA/MQA: fewer K/V heads than query heads."""
        return 0 < self.kv_heads < self.heads

    def to_row(self) -> dict[str, str]:
        """The CSV row: every field as a string (floats in repr, round-trip exact)."""
        return {f.name: _fmt(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_row(cls, row: dict[str, str]) -> Measurement:
        """Parse a CSV row (as `csv.DictReader` yields it); raises MeasurementError."""
        # a legacy file has no schedule column; a short row of any file has None values
        missing = [n for n in FIELDS if (n in row or n in LEGACY_FIELDS) and row.get(n) is None]
        if missing:
            raise MeasurementError(f"missing column(s): {', '.join(missing)}")
        values: dict[str, object] = {}
        for f in dataclasses.fields(cls):
            if f.name not in row:  # only `schedule`, `kv_heads` can be absent (older files)
                continue
            raw = row[f.name].strip()
            try:
                if f.type in ("int", int):
                    values[f.name] = int(raw)
                elif f.type in ("float", float):
                    values[f.name] = float(raw)
                else:
                    values[f.name] = raw
            except ValueError:
                raise MeasurementError(
                    f"column {f.name}: cannot parse {raw!r} as {f.type}"
                ) from None
        return cls(**values)  # type: ignore[arg-type]


FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Measurement))
SCHEDULE_FIELDS: tuple[str, ...] = FIELDS[:-1]  # before the kv_heads column (MHA only)
LEGACY_FIELDS: tuple[str, ...] = FIELDS[:-2]  # before the schedule column


def _fmt(value: object) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def write_measurements(path: str | Path, rows: Iterable[Measurement]) -> None:
    """Write rows (header first) to a CSV file, replacing it."""
    with Path(path).open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(FIELDS))
        writer.writeheader()
        for m in rows:
            writer.writerow(m.to_row())


def append_measurement(path: str | Path, row: Measurement) -> None:
    """Append one row, writing the header first if the file is new or empty.

    A file with the legacy header (no schedule column) takes plain-schedule rows only.
    """
    p = Path(path)
    new = not p.exists() or p.stat().st_size == 0
    fields = FIELDS
    if not new:
        with p.open(newline="", encoding="utf-8") as fh:
            header = tuple(next(csv.reader(fh), ()))
        if header in (LEGACY_FIELDS, SCHEDULE_FIELDS):
            if row.grouped:
                raise MeasurementError(
                    f"{p}: file without a kv_heads column; cannot append a GQA row "
                    "(write to a new file)"
                )
            fields = header
        if header == LEGACY_FIELDS and row.schedule != "plain":
            raise MeasurementError(
                f"{p}: legacy file without a schedule column; cannot append a "
                f"{row.schedule!r} row (write to a new file)"
            )
    with p.open("a", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(fields), extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow(row.to_row())


def read_measurements(paths: str | Path | Sequence[str | Path]) -> list[Measurement]:
    """Read measurement CSVs; errors name the file and line of every bad row, all at once."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: list[Measurement] = []
    problems: list[str] = []
    for path in paths:
        p = Path(path)
        with p.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = tuple(reader.fieldnames or ())
            if header not in (FIELDS, SCHEDULE_FIELDS, LEGACY_FIELDS):
                problems.append(
                    f"{p}:1: header does not match the measurement schema; "
                    f"expected {','.join(FIELDS)}, got {','.join(header)}"
                )
                continue
            for row in reader:
                line = reader.line_num
                if None in row:
                    problems.append(f"{p}:{line}: too many columns")
                    continue
                try:
                    out.append(Measurement.from_row(row))
                except (MeasurementError, TypeError) as exc:
                    problems.append(f"{p}:{line}: {exc}")
    if problems:
        raise MeasurementError("\n".join(problems))
    return out


# ----------------------------------------------------------------------------- host figures
# A timing run also measures, on its own host, what one launcher call costs the host
# (kernels.calibrate.microbench_steps.measure_host): calls short enough to be host-bound are timed
# at
# the host's speed, which differs between machines of a pool (the calibration file's
# figures come from the calibration machine). Written next to the CSV as <stem>-host.yaml.

HOST_KEYS = ("host_call_us", "bench_flush_us")


def host_figures_path(csv_path: str | Path) -> Path:
    """Where a measurement file's host figures live: <stem>-host.yaml beside it."""
    p = Path(csv_path)
    return p.with_name(p.stem + "-host.yaml")


def write_host_figures(
    csv_path: str | Path, figures: dict[str, object], meta: dict[str, str]
) -> Path:
    """Write the host figures of the run that writes `csv_path`; returns the YAML path."""
    import yaml

    path = host_figures_path(csv_path)
    body = {
        **{k: str(v) for k, v in meta.items()},
        **{k: figures[k] for k in HOST_KEYS if k in figures},
    }
    path.write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
    return path


def read_host_figures(csv_path: str | Path) -> dict[str, object] | None:
    """The host figures measured with `csv_path` (None when the run wrote none).

    Returns {"host_call_us": {family: us}, "bench_flush_us": us, "path": str}; raises
    MeasurementError naming the file and field when the YAML is malformed.
    """
    from attnsim.einsum_ir.spec import SpecError, read_yaml

    path = host_figures_path(csv_path)
    if not path.exists():
        return None
    try:
        data = read_yaml(path)
    except SpecError as exc:
        raise MeasurementError("; ".join(str(p) for p in exc.problems)) from None
    problems = []
    if not isinstance(data, dict):
        raise MeasurementError(f"{path}: expected a mapping with {', '.join(HOST_KEYS)}")
    calls = data.get("host_call_us")
    if not isinstance(calls, dict) or not calls:
        problems.append("host_call_us: expected a mapping {family: microseconds}")
    else:
        for fam, us in calls.items():
            if not isinstance(us, (int, float)) or not us > 0:
                problems.append(f"host_call_us.{fam}: expected a positive number, got {us!r}")
    flush = data.get("bench_flush_us")
    if not isinstance(flush, (int, float)) or not flush > 0:
        problems.append(f"bench_flush_us: expected a positive number, got {flush!r}")
    if problems:
        raise MeasurementError(f"{path}: " + "; ".join(problems))
    assert isinstance(calls, dict) and isinstance(flush, (int, float))  # checked above
    return {"host_call_us": dict(calls), "bench_flush_us": float(flush), "path": str(path)}
