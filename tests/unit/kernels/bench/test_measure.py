from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import pytest

from attnsim.kernels.bench.measure import (
    FIELDS,
    LEGACY_FIELDS,
    SCHEDULE_FIELDS,
    SCHEDULES,
    Measurement,
    MeasurementError,
    append_measurement,
    read_measurements,
    write_measurements,
)


def sample(**kw) -> Measurement:
    base = dict(
        family="triton-1pass",
        batch=4,
        heads=16,
        seq_q=4096,
        seq_k=4096,
        head_dim=128,
        causal=1,
        dtype="bf16",
        block_m=128,
        block_n=64,
        num_warps=8,
        num_stages=3,
        median_ms=0.8987520039,
        p10_ms=0.89,
        p90_ms=0.91,
        flops=274877906944,
        tflops=305.8439989548992,
        device="NVIDIA H200",
        driver="580.159.04",
        torch="2.11.0+cu130",
        triton="3.6.0",
        timestamp="2026-12-01T10:00:00+00:00",
    )
    base.update(kw)
    return Measurement(**base)


def test_field_order_is_the_schema():
    assert FIELDS == (
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
        "median_ms",
        "p10_ms",
        "p90_ms",
        "flops",
        "tflops",
        "device",
        "driver",
        "torch",
        "triton",
        "timestamp",
        "schedule",
        "kv_heads",
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        sample().batch = 2  # type: ignore[misc]


def test_round_trip(tmp_path):
    rows = [
        sample(),
        sample(
            family="sdpa-cudnn",
            block_m=0,
            block_n=0,
            num_warps=0,
            num_stages=0,
            causal=0,
            median_ms=1.0 / 3.0,
        ),
    ]
    path = tmp_path / "m.csv"
    write_measurements(path, rows)
    assert read_measurements(path) == rows
    assert read_measurements([path, path]) == rows + rows
    assert Measurement.from_row(rows[0].to_row()) == rows[0]


def test_append_writes_header_once(tmp_path):
    path = tmp_path / "a.csv"
    append_measurement(path, sample())
    append_measurement(path, sample(seq_q=512))
    assert path.read_text().count("family,") == 1
    assert [m.seq_q for m in read_measurements(path)] == [4096, 512]


def _schedule(line: str, value: str) -> str:
    """The row with its schedule field (the one before kv_heads) replaced."""
    *head, _, kv = line.split(",")
    return ",".join([*head, value, kv])


def _write_bad(tmp_path, mutate):
    path = tmp_path / "bad.csv"
    write_measurements(path, [sample(), sample()])
    lines = path.read_text().splitlines()
    lines[2] = mutate(lines[2])
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: s.replace("triton-1pass", "triton-3pass"), "unknown family 'triton-3pass'"),
        (lambda s: s.replace(",16,4096", ",sixteen,4096"), "column heads: cannot parse 'sixteen'"),
        (lambda s: s.replace(",bf16,", ",fp8,"), "unknown dtype 'fp8'"),
        (lambda s: s + ",extra", "too many columns"),
        (lambda s: s.rsplit(",", 4)[0], "missing column"),
        (lambda s: s.replace(",128,1,bf16", ",128,2,bf16"), "causal must be 0 or 1"),
        (lambda s: _schedule(s, "fast"), "unknown schedule 'fast' .one of plain, pingpong"),
        (lambda s: _schedule(s, ""), "unknown schedule ''"),
        (
            lambda s: _schedule(s.replace("triton-1pass", "triton-2pass"), "pingpong"),
            "schedule 'pingpong' is a triton-1pass kernel only",
        ),
        (lambda s: s.rsplit(",", 1)[0] + ",5", "kv_heads must divide heads .16. or be 0, got 5"),
        (
            lambda s: s.replace("triton-1pass", "triton-unfused").rsplit(",", 1)[0] + ",4",
            "GQA runs on triton-1pass and SDPA only",
        ),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, mutate, message):
    path = _write_bad(tmp_path, mutate)
    with pytest.raises(MeasurementError, match=f"bad.csv:3: .*{message}"):
        read_measurements(path)


def test_bad_header(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("family,batch\ntriton-1pass,1\n")
    with pytest.raises(MeasurementError, match="h.csv:1: header does not match"):
        read_measurements(path)


LEGACY_CSV = (
    Path(__file__).resolve().parents[4] / "kernels/measurements/validation-h200-2026-11-30.csv"
)


def _legacy_copy(tmp_path: Path, rows: int = 2) -> Path:
    """The committed legacy file's header (no schedule column) and its first `rows` rows."""
    lines = LEGACY_CSV.read_text(encoding="utf-8").splitlines()
    assert tuple(lines[0].split(",")) == LEGACY_FIELDS == FIELDS[:-2]
    path = tmp_path / "legacy.csv"
    path.write_text("\n".join(lines[: 1 + rows]) + "\n", encoding="utf-8")
    return path


def test_schedule_column_round_trips(tmp_path):
    assert SCHEDULES == ("plain", "pingpong") and FIELDS[-2] == "schedule"
    rows = [sample(), sample(schedule="pingpong", num_stages=2), sample(block_n=128)]
    path = tmp_path / "s.csv"
    write_measurements(path, rows)
    header, *body = path.read_text().splitlines()
    assert header.endswith(",schedule,kv_heads")
    assert [line.split(",")[-2] for line in body] == ["plain", "pingpong", "plain"]
    assert read_measurements(path) == rows
    assert Measurement.from_row(rows[1].to_row()).schedule == "pingpong"
    append_measurement(path, sample(schedule="pingpong", seq_q=1024))
    schedules = [m.schedule for m in read_measurements(path)]
    assert schedules == ["plain", "pingpong", "plain", "pingpong"]


def test_legacy_file_reads_as_plain(tmp_path):
    path = _legacy_copy(tmp_path)
    rows = read_measurements(path)
    assert len(rows) == 2 and {m.schedule for m in rows} == {"plain"}
    with path.open(newline="", encoding="utf-8") as fh:
        first = next(csv.DictReader(fh))
    m = rows[0]
    assert (m.family, m.seq_q, m.head_dim, m.block_m, m.block_n) == (
        "triton-1pass",
        512,
        64,
        128,
        128,
    )
    assert m.to_row() == {**first, "schedule": "plain", "kv_heads": "0"}
    # and the whole committed legacy file still reads
    assert {m.schedule for m in read_measurements(LEGACY_CSV)} == {"plain"}


def test_append_to_a_legacy_file_takes_plain_rows_only(tmp_path):
    path = _legacy_copy(tmp_path)
    before = path.read_text()
    with pytest.raises(MeasurementError, match="legacy.csv: legacy file without a schedule"):
        append_measurement(path, sample(schedule="pingpong"))
    assert path.read_text() == before  # nothing written
    append_measurement(path, sample(seq_q=8192))  # a plain row keeps the legacy layout
    header, *body = path.read_text().splitlines()
    assert tuple(header.split(",")) == LEGACY_FIELDS
    assert all(len(line.split(",")) == len(LEGACY_FIELDS) for line in body)
    rows = read_measurements(path)
    assert [m.seq_q for m in rows] == [512, 512, 8192] and rows[-1] == sample(seq_q=8192)


def test_schedule_is_checked_on_construction():
    with pytest.raises(MeasurementError, match="unknown schedule 'Pingpong'"):
        sample(schedule="Pingpong")
    for family in ("triton-2pass", "triton-unfused", "sdpa-flash"):
        with pytest.raises(MeasurementError, match="triton-1pass kernel only"):
            sample(family=family, schedule="pingpong")
    assert sample(family="triton-2pass", schedule="plain").schedule == "plain"


def test_truncated_row_of_a_schedule_file_is_an_error(tmp_path):
    path = _write_bad(tmp_path, lambda s: s.rsplit(",", 2)[0])  # drop schedule and kv_heads
    with pytest.raises(MeasurementError, match="bad.csv:3: missing column.*schedule, kv_heads"):
        read_measurements(path)


def test_kv_heads_round_trips_and_older_files_read_as_mha(tmp_path):
    rows = [sample(kv_heads=4), sample(family="sdpa-cudnn", kv_heads=1), sample()]
    assert [m.grouped for m in rows] == [True, True, False]
    path = tmp_path / "g.csv"
    write_measurements(path, rows)
    assert read_measurements(path) == rows
    # a file written before the kv_heads column: every row MHA, GQA rows refused on append
    old = tmp_path / "old.csv"
    lines = path.read_text().splitlines()
    old.write_text("\n".join(x.rsplit(",", 1)[0] for x in lines[:1] + lines[3:]) + "\n")
    assert tuple(old.read_text().splitlines()[0].split(",")) == SCHEDULE_FIELDS
    assert read_measurements(old) == [sample()]
    with pytest.raises(MeasurementError, match="old.csv: file without a kv_heads column"):
        append_measurement(old, sample(kv_heads=2))
    append_measurement(old, sample(seq_q=1024))
    assert [m.seq_q for m in read_measurements(old)] == [4096, 1024]
