"""The backward probe's files with and without their host figures (reports.validation_bwd)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from attnsim.archs.load import load_arch
from attnsim.kernels.spec import BWD_TILINGS
from attnsim.reports import validation_kernels as vk

FIELDS = (
    "family", "suite", "batch", "heads", "kv_heads", "seq_q", "seq_k", "head_dim", "causal",
    "dtype", "block_m", "block_n", "num_warps", "num_stages", "dq_mode", "median_ms", "status",
)  # fmt: skip
TINY = (16, 8, 512, 64, 0)  # (batch, heads, seq, head dim, causal): ~0.1 ms on the H200's GPU
LARGE = (1, 32, 8192, 128, 1)  # ~4-16 ms


@pytest.fixture
def probe_file(tmp_path: Path) -> Path:
    """A probe file (benchmarks/bwd_probe.py's columns): two shapes, every tiling and mode."""
    path = tmp_path / "bwd-h200-test.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        for b, h, s, d, c in (TINY, LARGE):
            for tiling in BWD_TILINGS:
                for mode in ("atomic", "separate"):
                    ms = 0.2 if s < 1024 else 8.0
                    row = ("triton-bwd", "holdout", b, h, h, s, s, d, c, "bf16", *tiling, mode, ms)
                    writer.writerow({**dict(zip(FIELDS, row, strict=False)), "status": "ok"})
        writer.writerow({**dict(zip(FIELDS, (0,) * 17, strict=True)), "family": "sdpa-flash-bwd",
                         "median_ms": 0.1, "status": "ok"})  # fmt: skip
    return path


def _host_file(csv_path: Path, bwd_us: float) -> Path:
    """A host file whose forward figures equal the calibration's (host speed 1)."""
    cal = load_arch("h200").calibration
    assert cal is not None
    calls = {f: round(s * 1e6, 6) for f, s in cal.host_call_s}
    calls.update({"bwd-atomic": bwd_us, "bwd-separate": bwd_us, "bwd-jit-atomic": 999.0})
    head = cal.bench_head_start_s
    assert head is not None
    path = csv_path.with_name(csv_path.stem + "-host.yaml")
    body = {"device": "NVIDIA H200", "host_call_us": calls, "bench_flush_us": 60.0}
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    return path


def _by_config(points: list[vk.KernelPoint], shape: str) -> dict[str, vk.KernelPoint]:
    return {p.config: p for p in points if p.shape == shape}


TINY_SHAPE = "B=16 H=8 P=512 M=512 E=64"
LARGE_SHAPE = "B=1 H=32 P=8192 M=8192 E=128 causal"


def test_host_bound_rows_are_predicted_at_the_same_runs_host_figure(probe_file: Path) -> None:
    plain = vk.predict_rows([probe_file])
    _host_file(probe_file, 600.0)
    hosted = vk.predict_rows([probe_file])
    tiny_plain, tiny = _by_config(plain, TINY_SHAPE), _by_config(hosted, TINY_SHAPE)
    assert len(tiny) == 12
    head_us = load_arch("h200").calibration.bench_head_start_s * 1e6  # type: ignore[union-attr]
    for config, p in tiny.items():
        assert p.bound == "host launch", config
        assert tiny_plain[config].bound != "host launch"
        # the host's 600 us less do_bench's head start, plus the kernel(s) submitted last
        assert 600 - head_us < p.predicted_ms * 1e3 < 600 - head_us + 60, config
    # a launcher figure 100 us longer: every host-bound prediction 100 us longer
    _host_file(probe_file, 700.0)
    longer = _by_config(vk.predict_rows([probe_file]), TINY_SHAPE)
    for config, p in tiny.items():
        assert longer[config].predicted_ms - p.predicted_ms == pytest.approx(0.1, rel=1e-6)


def test_large_rows_are_not_host_bound(probe_file: Path) -> None:
    plain = _by_config(vk.predict_rows([probe_file]), LARGE_SHAPE)
    _host_file(probe_file, 45.0)  # a launcher like the planned one: 3 launches in 45 us
    hosted = _by_config(vk.predict_rows([probe_file]), LARGE_SHAPE)
    assert len(hosted) == 12
    for config, p in hosted.items():
        assert p.bound != "host launch"
        assert p.predicted_ms == plain[config].predicted_ms


def test_report_names_whose_host_figures(probe_file: Path) -> None:
    import dataclasses

    from attnsim.reports.validation_bwd import bwd_host

    points = vk.predict_rows([probe_file])
    text = vk.format_report(points)
    assert (
        f"{probe_file.name}: host launcher-call figures from the calibration file (no host "
        "file beside it)"
    ) in text
    arch = load_arch("h200")
    cal = arch.calibration
    assert cal is not None
    calls = tuple((k, v) for k, v in cal.host_call_s if not k.startswith("bwd"))
    bare = dataclasses.replace(arch, calibration=dataclasses.replace(cal, host_call_s=calls))
    assert bwd_host(probe_file, bare)[1] == (
        "the calibration file, which has no backward launcher figure: one host launch per "
        "kernel (no host file beside it)"
    )
    host = _host_file(probe_file, 300.0)
    text = vk.format_report(vk.predict_rows([probe_file]))
    assert f"from {host} (measured in the same run)" in text


def test_malformed_host_file_is_named(probe_file: Path) -> None:
    host = probe_file.with_name(probe_file.stem + "-host.yaml")
    host.write_text("host_call_us: {bwd-atomic: fast}\nbench_flush_us: 60\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"-host\.yaml: host_call_us\.bwd-atomic: expected a"):
        vk.predict_rows([probe_file])


def _with_column(
    probe_file: Path, tmp_path: Path, column: str, values: tuple[str, ...]
) -> dict[str, dict[str, vk.KernelPoint]]:
    """The large shape's points per config, predicted from copies of `probe_file` with
    `column` set to each of `values` ("" as a blank cell)."""
    rows = list(csv.DictReader(probe_file.open()))
    predicted = {}
    for value in values:
        path = tmp_path / f"bwd-h200-{column}{value or 'none'}.csv"
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=[*FIELDS, column])
            writer.writeheader()
            writer.writerows({**r, column: value} for r in rows)
        predicted[value] = _by_config(vk.predict_rows([path]), LARGE_SHAPE)
    return predicted


def _column_ratios(
    probe_file: Path, tmp_path: Path, column: str, same: str, other: str
) -> list[float]:
    """Per config of the large shape, the predicted time with `column` = `other` over the
    time with the cell blank, after checking that `same` (what files without the column
    ran) prices exactly as the blank cell."""
    predicted = _with_column(probe_file, tmp_path, column, ("", same, other))
    ratios = []
    for config, p in predicted[""].items():
        assert predicted[same][config].predicted_ms == p.predicted_ms
        ratios.append(predicted[other][config].predicted_ms / p.predicted_ms)
    return ratios


def test_rows_are_priced_at_the_launch_order_they_ran(probe_file: Path, tmp_path: Path) -> None:
    """A `head_group` column sets the order; files without it ran head-major (group 1)."""
    predicted = _with_column(probe_file, tmp_path, "head_group", ("", "1", "8"))
    plain = _by_config(vk.predict_rows([probe_file]), LARGE_SHAPE)
    ratios = []
    for config, p in plain.items():
        assert predicted[""][config].predicted_ms == p.predicted_ms
        assert predicted["1"][config].predicted_ms == p.predicted_ms
        ratios.append(predicted["8"][config].predicted_ms / p.predicted_ms)
    assert len(ratios) == 12 and max(ratios) < 1.001 and sorted(ratios)[6] < 0.97, ratios


def test_rows_are_priced_with_the_causal_loops_they_ran(probe_file: Path, tmp_path: Path) -> None:
    """A `diag_loop` column sets the causal dK/dV kernel's loops; files without it ran the
    diagonal loop (1). One loop masks every step, which the model prices as masked."""
    ratios = _column_ratios(probe_file, tmp_path, "diag_loop", "1", "0")
    # masked steps cost more; the wave schedule of the regrouped programs moves one by -0.2%
    assert len(ratios) == 12 and 1.0 not in ratios, ratios
    assert 0.99 < min(ratios) and max(ratios) < 1.05 and sorted(ratios)[6] > 1.005, ratios


def test_rows_are_priced_with_the_dkdv_build_they_ran(probe_file: Path, tmp_path: Path) -> None:
    """A `dp_first` column sets the dK/dV kernel's build; files without it ran the earlier
    one (0), which the calibration's plain dK/dV modes price; 1 reads the `-dpfirst` modes."""
    ratios = _column_ratios(probe_file, tmp_path, "dp_first", "0", "1")
    assert len(ratios) == 12 and 1.0 not in ratios, ratios
    assert sorted(ratios)[6] < 1.0, ratios  # the dP-first step is faster at most tilings


def test_side_probe_files_are_not_read_as_the_backward_probe() -> None:
    """The order and TMA/loop probes share `dq_mode` but have one `seq` column: validate gpu
    skips them in a folder (their own tests read them)."""
    root = Path(__file__).resolve().parents[3] / "kernels" / "measurements"
    assert vk.probe_of(root / "h100" / "bwd-h100-2026-12-06-oneloop.csv") is not None
    for name in ("bwd-order-h100-2026-12-06.csv", "bwd-diag-h100-2026-12-06.csv",
                 "bwd-tma-h100-2026-12-06.csv"):  # fmt: skip
        assert vk.probe_of(root / "h100" / name) is None, name
