"""Steady program costs measured through a block table (`decode_waves_probe.py --paged`).

A paged split-K launch of many waves takes its tiling's paged `waves` entries where the decode
calibration has them, over its own paged one-wave figures; without them it keeps the
contiguous entries' excess (the approximation its note states). These tests put a paged copy
of the committed contiguous entries in the calibration and check which one each call reads.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from attnsim.archs.calibration.decode import load_decode_calibration
from attnsim.archs.calibration.decode_waves import WavePoint
from attnsim.archs.load import load_arch
from attnsim.einsum_ir.spec import SpecError
from attnsim.kernels.spec import AttnShape
from attnsim.mappers.gpu.decode import decode_calibration, decode_problem, time_decode
from attnsim.mappers.gpu.rates import device_rates

ROOT = Path(__file__).parents[4]
FILE = ROOT / "kernels" / "measurements" / "decode" / "decode-waves-h200-2026-12-06.csv"
CAL = ROOT / "archs" / "calibration" / "h200-decode.yaml"
TILING = (128, 8, 3)
SHAPE = AttnShape(64, 32, 1, 4096, 128, 128, False, "bf16", 2, kv_group=4)  # 64 x 8 K/V heads


@pytest.fixture(scope="module")
def probe(benchmark_module: Callable[[str], ModuleType]) -> ModuleType:
    return benchmark_module("decode_waves_probe")


def _with_paged(scale: float) -> object:
    """The H200 decode calibration plus a 256-key-page copy of its waves, `scale` x slower."""
    cal = decode_calibration(load_arch("h200"))
    assert cal is not None and cal.waves
    paged = tuple(
        dataclasses.replace(w, page_size=256, sm_program_s=w.sm_program_s * scale)
        for w in cal.waves
    )
    return dataclasses.replace(cal, waves=cal.waves + paged)


def _time(cal: object, page_size: int, splits: int = 32) -> tuple[float, str]:
    rates = device_rates(load_arch("h200"), "bf16")
    t = time_decode(decode_problem(SHAPE, (), False), "splitk", splits, 0, TILING, rates, cal,
                    page_size=page_size)  # type: ignore[arg-type]  # fmt: skip
    return t.time_s, t.later_note


def test_a_paged_launch_reads_the_paged_entries_and_says_so() -> None:
    plain = decode_calibration(load_arch("h200"))
    before, before_note = _time(plain, 256)
    after, note = _time(_with_paged(1.5), 256)
    assert "the probe read no block table" in before_note
    assert "block table of 256-key pages" in note and "the probe read no" not in note
    assert "tiling (128, 8, 3)" in note
    assert after > before  # its later programs now cost the paged entries' 1.5x


def test_a_contiguous_launch_ignores_the_paged_entries() -> None:
    plain = decode_calibration(load_arch("h200"))
    assert _time(_with_paged(1.5), 0) == _time(plain, 0)


def test_paged_entries_leave_launches_of_few_waves_alone() -> None:
    """One split: 512 programs on the 132 slots of a one-per-SM build, under STEADY_WAVES
    waves, so no later program is priced at a steady cost, paged or not."""
    plain = decode_calibration(load_arch("h200"))
    assert _time(_with_paged(1.5), 256, splits=1)[0] == _time(plain, 256, splits=1)[0]


def test_the_probe_keys_its_entries_by_page_size(probe: ModuleType, tmp_path: Path) -> None:
    with FILE.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    paged = tmp_path / "decode-waves-paged.csv"
    with paged.open("w", newline="") as fh:
        w = csv.DictWriter(fh, list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow({**r, "suite": "paged-waves",
                        "page_size": probe.page_size(64, int(r["block_n"]))})  # fmt: skip
    plain, got = probe.wave_entries(FILE), probe.wave_entries(paged)
    assert plain and all("page_size" not in e for e in plain)
    assert len(got) == len(plain)
    for a, b in zip(plain, got, strict=True):
        assert b["page_size"] == max(64, a["block_n"])
        assert {k: v for k, v in b.items() if k != "page_size"} == a


def test_the_paged_sweep_uses_whole_pages_of_whole_tiles(probe: ModuleType) -> None:
    runs = probe.sweep(64)
    assert runs and len(runs) == len(probe.sweep())
    for shape, cfg in runs:
        assert shape.suite == "paged-waves"
        assert shape.page_size % cfg.block_n == 0 and shape.seq_k % shape.page_size == 0
        assert shape.lens == (shape.seq_k,) * shape.batch
    assert {s.page_size for s, c in runs if c.block_n == 64} == {64}


def test_merging_takes_contiguous_and_paged_files_together(
    probe: ModuleType, tmp_path: Path
) -> None:
    paged = tmp_path / "paged.csv"
    with FILE.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    with paged.open("w", newline="") as fh:
        w = csv.DictWriter(fh, list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow({**r, "suite": "paged-waves", "page_size": 256})
    cal = tmp_path / "h200-decode.yaml"
    cal.write_text(CAL.read_text(encoding="utf-8"), encoding="utf-8")
    assert probe.main(["--merge", str(cal), str(FILE), str(paged)]) == 0
    loaded = load_decode_calibration(cal)
    assert loaded is not None
    pages = sorted({w.page_size for w in loaded.waves})
    assert pages == [0, 256]
    both = [w for w in loaded.waves if w.page_size == 256]
    assert len(both) == len([w for w in loaded.waves if w.page_size == 0])


def test_a_negative_page_size_names_its_field(tmp_path: Path) -> None:
    text = CAL.read_text(encoding="utf-8")
    head, tail = text.split("\nwaves:\n", 1)
    tail = tail.replace("  splits: 8\n", "  splits: 8\n  page_size: -64\n", 1)
    bad = tmp_path / "x-decode.yaml"
    bad.write_text(head + "\nwaves:\n" + tail, encoding="utf-8")
    with pytest.raises(SpecError, match="page_size") as got:
        load_decode_calibration(bad)
    assert "x-decode.yaml" in str(got.value)


def test_the_wave_point_default_is_contiguous() -> None:
    assert WavePoint.__dataclass_fields__["page_size"].default == 0
