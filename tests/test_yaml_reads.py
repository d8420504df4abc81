"""Every YAML the tool reads goes through the hardened reader (`einsum_ir.spec`)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from attnsim.kernels.bench.measure import MeasurementError, read_host_figures
from attnsim.reports.page.report_data import _experiment_info

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("einsum_ir", "archs", "mappers", "kernels", "reports")
RAW_READ = re.compile(r"\byaml\.(safe_load|load|full_load|unsafe_load|safe_load_all|load_all)\(")
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
    for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)  # 9^9 values once expanded


def test_no_module_reads_yaml_past_the_hardened_reader() -> None:
    raw = [
        f"{path.relative_to(ROOT)}:{n}"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if RAW_READ.search(line) and path != ROOT / "einsum_ir" / "spec.py"
    ]
    assert raw == [], "read YAML with einsum_ir.spec.read_yaml or Reader.from_file"


@pytest.mark.parametrize(
    "text, problem",
    [
        ("host_call_us: {1pass: !!float abc}\nbench_flush_us: 3\n", ":1:23: .*tags"),
        (BOMB, "expand"),
        ("", "empty"),
    ],
)
def test_host_figures_with_bad_yaml_are_located_errors(
    tmp_path: Path, text: str, problem: str
) -> None:
    (tmp_path / "m-host.yaml").write_text(text)
    start = time.monotonic()
    with pytest.raises(MeasurementError, match=problem) as info:
        read_host_figures(tmp_path / "m.csv")
    assert str(info.value).startswith(str(tmp_path / "m-host.yaml"))
    assert time.monotonic() - start < 5


def test_a_report_over_a_bad_experiment_copy_reads_nothing_from_it(tmp_path: Path) -> None:
    path = tmp_path / "experiment.yaml"
    for data in (BOMB.encode(), b"name: \xff\xfe\n", b"name: !!python/object:os.system x\n"):
        path.write_bytes(data)
        start = time.monotonic()
        assert _experiment_info(path) == ("", [], [], "", "")
        assert time.monotonic() - start < 5
