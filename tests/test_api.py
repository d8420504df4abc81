"""The public API of `import attnsim`: lazy, documented, and the same numbers as the CLI."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest

import attnsim
from attnsim.reports.errors import UsageError

ROOT = Path(__file__).resolve().parent.parent


def test_import_loads_no_model() -> None:
    code = "import sys, attnsim; print(sorted(m for m in sys.modules if m.startswith('attnsim.')))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_every_public_name_is_documented() -> None:
    for name in attnsim.__all__:
        assert getattr(attnsim, name).__doc__, name


def test_map_point_returns_the_result_the_mapper_gives() -> None:
    from attnsim.archs import load_arch
    from attnsim.einsum_ir import load_cascade
    from attnsim.mappers.registry import get_mapper

    sizes = {"M": 4096, "P": 4096, "E": 64, "F": 64}
    result = attnsim.map_point("attention-1pass", "fusemax", "fusemax", "M=4K,P=4K,E=64,F=64")
    direct = get_mapper("fusemax")().map(
        load_cascade("attention-1pass"), load_arch("fusemax"), sizes
    )
    assert result == direct
    cascade = attnsim.load_cascade("attention-1pass")
    arch = attnsim.load_arch("fusemax")
    assert attnsim.map_point(cascade, arch, "fusemax", sizes) == direct


def test_examples_ship_and_unknown_names_are_listed() -> None:
    names = attnsim.example_names()
    assert "fusemax-vs-flat" in names
    assert (
        attnsim.example_path("fusemax-vs-flat").read_bytes()
        == (ROOT / "examples" / "fusemax-vs-flat.yaml").read_bytes()
    )
    with pytest.raises(UsageError, match="did you mean 'fusemax-vs-flat'"):
        attnsim.example_path("fusemax-vs-flt")


def _tiny_experiment(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(
        "name: tiny\n"
        "architectures: {fusemax: {preset: fusemax}}\n"
        "cascades: {one: attention-1pass-mh}\n"
        "workloads: {tiny: {sizes: {B: 1, H: 2, E: 64, F: 64}}}\n"
        "mappers: {fusemax: fusemax}\n"
        "designs: {fusemax: {arch: fusemax, cascade: one, mapper: fusemax}}\n"
        "sweep: {fixed: {design: fusemax}, grid: {workload.seq_len: [1K]}}\n"
        "outputs: {formats: [csv]}\n",
        encoding="utf-8",
    )
    return path


def test_run_experiment_and_results_frame(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = attnsim.run_experiment(_tiny_experiment(tmp_path), tmp_path / "out", jobs=1)
    assert (out / "results.csv").is_file()
    fake = types.ModuleType("pandas")
    fake.DataFrame = lambda rows: ("frame", rows)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pandas", fake)
    kind, rows = attnsim.results_frame(out)
    assert kind == "frame" and len(rows) == 1 and rows[0]["design"] == "fusemax"


def test_results_frame_without_pandas_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas -> ImportError
    with pytest.raises(ImportError, match=r"pip install 'attnsim\[pandas\]'"):
        attnsim.results_frame(tmp_path)


def test_results_frame_with_real_pandas(tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    out = attnsim.run_experiment(_tiny_experiment(tmp_path), tmp_path / "out", jobs=1)
    frame = attnsim.results_frame(out)
    assert len(frame) == 1 and "design" in frame.columns


def test_run_experiment_raises_on_input_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\n", encoding="utf-8")
    with pytest.raises(RuntimeError, match="status 2"):
        attnsim.run_experiment(bad, tmp_path / "out")
