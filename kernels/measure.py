"""The measurement record (one CSV row per timed configuration) and its CSV reader/writer.

Schema (column order is the CSV header): see `FIELDS`. No torch/triton here, so reports and
the validation CI test can read measurement files on any machine.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

FAMILIES = (
    "triton-1pass",
    "triton-2pass",
    "triton-unfused",
    "sdpa-flash",
    "sdpa-cudnn",
    "sdpa-efficient",
)
DTYPES = ("fp16", "bf16")


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

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise MeasurementError(f"unknown family {self.family!r} (one of {', '.join(FAMILIES)})")
        if self.dtype not in DTYPES:
            raise MeasurementError(f"unknown dtype {self.dtype!r} (one of {', '.join(DTYPES)})")
        if self.causal not in (0, 1):
            raise MeasurementError(f"causal must be 0 or 1, got {self.causal!r}")
        for name in ("batch", "heads", "seq_q", "seq_k", "head_dim"):
            if getattr(self, name) < 1:
                raise MeasurementError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("block_m", "block_n", "num_warps", "num_stages", "flops"):
            if getattr(self, name) < 0:
                raise MeasurementError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.median_ms > 0:
            raise MeasurementError(f"median_ms must be > 0, got {self.median_ms!r}")

    def to_row(self) -> dict[str, str]:
        """The CSV row: every field as a string (floats in repr, round-trip exact)."""
        return {f.name: _fmt(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_row(cls, row: dict[str, str]) -> Measurement:
        """Parse a CSV row (as `csv.DictReader` yields it); raises MeasurementError."""
        missing = [n for n in FIELDS if n not in row or row[n] is None]
        if missing:
            raise MeasurementError(f"missing column(s): {', '.join(missing)}")
        values: dict[str, object] = {}
        for f in dataclasses.fields(cls):
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
    """Append one row, writing the header first if the file is new or empty."""
    p = Path(path)
    new = not p.exists() or p.stat().st_size == 0
    with p.open("a", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(FIELDS))
        if new:
            writer.writeheader()
        writer.writerow(row.to_row())


def read_measurements(paths: str | Path | Sequence[str | Path]) -> list[Measurement]:
    """Read measurement CSVs; errors name the file and line of the bad row."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: list[Measurement] = []
    for path in paths:
        p = Path(path)
        with p.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = tuple(reader.fieldnames or ())
            if header != FIELDS:
                raise MeasurementError(
                    f"{p}:1: header does not match the measurement schema; "
                    f"expected {','.join(FIELDS)}, got {','.join(header)}"
                )
            for row in reader:
                line = reader.line_num
                if None in row:
                    raise MeasurementError(f"{p}:{line}: too many columns")
                try:
                    out.append(Measurement.from_row(row))
                except MeasurementError as exc:
                    raise MeasurementError(f"{p}:{line}: {exc}") from None
                except TypeError as exc:  # pragma: no cover - defensive
                    raise MeasurementError(f"{p}:{line}: {exc}") from None
    return out
