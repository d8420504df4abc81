"""reports.page.report (with its data, plots, page modules) and reports.page.html, by section."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from attnsim.reports.cli.main import main
from attnsim.reports.dse.pareto import pareto_rows
from attnsim.reports.page import html as h
from attnsim.reports.page.report import ReportData, load_report_data, write_report
from attnsim.reports.page.report_data import (
    best_points,
    by_workload,
    design_of,
    grouped_front,
    heading,
    result_for,
    swept_parameters,
)
from attnsim.reports.page.tables import read_csv, write_csv

SECTIONS = (
    "overview", "baseline", "pareto", "sensitivity", "breakdowns", "warnings", "results",
    "failures", "provenance",
)  # fmt: skip
NASTY_DESIGN = '<b>fused & "tiled"</b>'  # as in conftest.py
NASTY_ERROR = "MappingError: buffer <script>alert('x')</script> & too small"


@pytest.fixture(scope="module")
def written(report_data: ReportData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report(tmp_path_factory.mktemp("run"), report_data)


@pytest.fixture(scope="module")
def page(written: Path) -> str:
    return written.read_text(encoding="utf-8")


def test_every_section_is_present_in_order(page: str) -> None:
    positions = [page.index(f'<section id="{name}">') for name in SECTIONS]
    assert positions == sorted(positions)
    overview = page[positions[0] : positions[1]]
    assert "Against fusemax/binding" in overview and "Best design per" in overview


def test_figures_are_plotly_specs_and_nothing_is_external(written: Path, page: str) -> None:
    specs = re.findall(r'<script type="application/json" id="([^"]*)-spec">', page)
    # speedup, energy ratio, 3 Pareto pairs, 2 sensitivity (array side x 2 objectives),
    # energy and traffic breakdowns.
    assert specs == [
        "speedup", "energy-ratio", "pareto-latency-s-energy-pj", "pareto-latency-s-area-um2",
        "pareto-energy-pj-area-um2", "sensitivity-arch-array-2d-latency-s",
        "sensitivity-arch-array-2d-energy-pj", "breakdown-energy", "breakdown-traffic",
    ]  # fmt: skip
    assert page.count('class="plot"') == len(specs)
    assert "Plotly" in page and "<img" not in page  # plotly.js embedded, no static images
    # Outside the scripts (plotly.js names sites in strings it never loads), nothing remote.
    markup = re.sub(r"<script>.*?</script>", "", page, flags=re.S)
    assert not re.search(r'(src|href)="(https?:)?//', markup)
    assert "<link" not in markup and "@import" not in markup


def test_pareto_panels_are_workload_groups(page: str) -> None:
    spec = json.loads(_spec(page, "pareto-latency-s-energy-pj"))
    titles = [a["text"] for a in spec["layout"]["annotations"]]
    assert titles[:3] == ["<b>BERT · 1K</b>", "<b>BERT · 4K</b>", "<b>BERT · 16K</b>"]
    assert len(titles) == 7  # 2 models x 3 lengths, and the odd design's 512
    hover = next(t for t in spec["data"] if t.get("text"))["text"][0]
    assert "fusemax/binding" in hover and "arch.array_2d = 64" in hover


def test_baseline_ratios(report_data: ReportData, written: Path) -> None:
    table = read_csv(written.parent / "baseline.csv")
    by = {(r["group"], r["design"]): r for r in table}
    base = by[("BERT · 4K", "fusemax/binding")]
    flat = by[("BERT · 4K", "flat")]
    assert base["speedup"] == 1.0 and base["energy_ratio"] == 1.0
    assert flat["speedup"] == pytest.approx(base["latency_s"] / flat["latency_s"])
    assert flat["energy_ratio"] == pytest.approx(flat["energy_pj"] / base["energy_pj"])
    # the baseline is represented by its fastest feasible point in the group
    group = [
        r
        for r in report_data.rows
        if r["design"] == "fusemax/binding"
        and r["point.workload.model"] == "BERT"
        and r["point.workload.seq_len"] == 4096
    ]
    assert base["latency_s"] == min(r["latency_s"] for r in group)  # fmt: skip


def test_units_in_headers(page: str) -> None:
    for header in ("Latency (ms)", "Area (mm²)", "speedup", "energy_ratio"):
        assert f">{header}</th>" in page, header
    assert "µm²" not in page.split("<nav>")[1].split("</nav>")[0]


def _spec(page: str, name: str) -> str:
    start = page.index(f'id="{name}-spec">') + len(f'id="{name}-spec">')
    return page[start : page.index("</script>", start)]


def test_text_is_escaped(page: str) -> None:
    assert NASTY_DESIGN not in page
    assert h.escape(NASTY_DESIGN) in page
    assert "<script>alert" not in page
    assert h.escape(NASTY_ERROR) in page
    assert "<title>attnsim report: synthetic &lt;sweep&gt;</title>" in page
    # plotly.js and the page's own script; figure data only as JSON (never closes a script).
    assert page.count("<script>") == 2
    assert NASTY_DESIGN.replace("</", "<\\/") in page or "&lt;b&gt;fused" in page


def test_tables_written_as_csv(report_data: ReportData, written: Path) -> None:
    out = written.parent
    best = read_csv(out / "best_points.csv")
    # Points are compared within one workload (model, length): 7 of them, 3 objectives each.
    task = ["point.workload.model", "point.workload.seq_len"]
    groups = by_workload(report_data.rows, task)
    assert len(groups) == 7 and len(best) == 21
    assert [row["best_for"] for row in best[:3]] == [
        "lowest Latency (s)",
        "lowest Energy (pJ)",
        "lowest Area (µm²)",
    ]
    for row in best[::3]:
        group = groups[(row["point.workload.model"], float(row["point.workload.seq_len"]))]
        assert row["latency_s"] == min(r["latency_s"] for r in group)
    front = read_csv(out / "pareto-latency-s-energy-pj.csv")
    expected = grouped_front(report_data.rows, [("latency_s", "min"), ("energy_pj", "min")], task)
    assert [row["point_id"] for row in front] == [row["point_id"] for row in expected]
    assert expected == [
        r
        for g in groups.values()
        for r in pareto_rows(g, [("latency_s", "min"), ("energy_pj", "min")])
    ]
    assert (out / "pareto-all.csv").is_file()  # three objectives: the 3-way front too


def test_failures_and_provenance(page: str) -> None:
    failures = page[page.index('<section id="failures">') : page.index('<section id="provenance">')]
    assert "Failures (1)" in failures and "f00d" in failures and "1048576" in failures
    provenance = page[page.index('<section id="provenance">') :]
    for label in ("attnsim version", "experiment", "finished points", "generated"):
        assert f"<dt>{label}</dt>" in provenance
    assert "<dd>31</dd>" in provenance


def test_render_check_script_marks_the_root(page: str) -> None:
    assert "Plotly.newPlot" in page and "data-render" in page


def test_best_points_ties_and_directions() -> None:
    rows = [
        {"point_id": "a", "latency_s": 2.0, "util.array_2d": 0.5},
        {"point_id": "b", "latency_s": 1.0, "util.array_2d": 0.9},
        {"point_id": "c", "latency_s": 1.0, "util.array_2d": 0.9},
        {"point_id": "d", "latency_s": "n/a"},
    ]
    best = best_points(rows, [("latency_s", "min"), ("util.array_2d", "max"), ("area_um2", "min")])
    assert [(b["point_id"], b["objective"]) for b in best] == [
        ("b", "latency_s"),
        ("b", "util.array_2d"),
    ]
    assert best[1]["best_for"] == "highest array_2d utilization"


def test_headings_and_helpers() -> None:
    assert heading("point.arch.buffer_bytes") == "arch.buffer_bytes"
    assert heading("mem_lat_s") == "mem_lat (s)"
    assert swept_parameters([{"point.b": 1}, {"point.a": 2, "point.b": 3}]) == [
        "point.b",
        "point.a",
    ]
    assert design_of({"mapper": "flat", "cascade": "attention-3pass"}) == "flat/attention-3pass"


def test_result_for_matches_rows_to_results(report_data: ReportData) -> None:
    for row, result in zip(report_data.rows, report_data.results, strict=True):
        assert result_for(row, report_data.results) is result
    assert result_for({"latency_s": -1.0}, report_data.results) is None


def test_report_without_rows_or_results(tmp_path: Path, report_data: ReportData) -> None:
    data = ReportData(rows=[], failures=report_data.failures)
    page = write_report(tmp_path, data).read_text(encoding="utf-8")
    for name in SECTIONS[:1] + SECTIONS[2:]:
        assert f'<section id="{name}">' in page
    assert "nothing to break down" in page
    no_breakdowns = dataclasses.replace(report_data, results=[])
    page = write_report(tmp_path / "b", no_breakdowns).read_text(encoding="utf-8")
    assert "nothing to break down" in page
    assert page.count('class="plot"') == 7


def test_cli_reads_results_csv_and_experiment(
    tmp_path: Path, report_data: ReportData, capsys: pytest.CaptureFixture[str]
) -> None:
    columns = list(dict.fromkeys(key for row in report_data.rows for key in row))
    write_csv(tmp_path / "results.csv", report_data.rows, columns)
    (tmp_path / "experiment.yaml").write_text(
        "name: csv-only\nobjectives:\n  - latency\n  - {metric: energy, direction: min}\n"
    )
    data = load_report_data(tmp_path)
    assert data.experiment == "csv-only"
    assert data.objectives == [("latency_s", "min"), ("energy_pj", "min")]
    assert len(data.rows) == len(report_data.rows) and data.has_results_csv
    status = main(["report", str(tmp_path)])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert out.strip() == str(tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert '<a href="results.csv">results.csv</a>' in page
    assert "csv-only" in page


def test_cli_without_results_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["report", str(tmp_path)])
    _, err = capsys.readouterr()
    assert status == 2
    assert "has no results" in err
    assert not (tmp_path / "report.html").exists()


def test_html_builder_escapes() -> None:
    assert h.escape("<a & 'b'>") == "&lt;a &amp; &#x27;b&#x27;&gt;"
    assert h.escape(h.Markup("<b>")) == "<b>"
    cell = h.tag("td", "<x>", title='"q"', class_="num", data_kind="k", hidden=True, id=None)
    assert cell == '<td title="&quot;q&quot;" class="num" data-kind="k" hidden>&lt;x&gt;</td>'
    assert h.tag("img", src="data:x") == '<img src="data:x">'
    table = h.table([{"a": 1.23456789, "b": "<i>"}, {"a": 2}], ["a", "b"], {"a": "A (s)"})
    assert '<th scope="col">A (s)</th>' in table
    assert '<td class="num" title="1.23456789">1.235</td>' in table
    assert "&lt;i&gt;" in table and "<td></td>" in table
    with pytest.raises(ValueError):
        h.document("t", "", script="</script>")
