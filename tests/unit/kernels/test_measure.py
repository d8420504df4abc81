from __future__ import annotations

import dataclasses

import pytest

from kernels.measure import (
    FIELDS,
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
        (lambda s: s.rsplit(",", 3)[0], "missing column"),
        (lambda s: s.replace(",128,1,bf16", ",128,2,bf16"), "causal must be 0 or 1"),
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
