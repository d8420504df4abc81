"""The design-space report: one self-contained HTML page (plus CSV tables and PNG figures).

Everything is drawn from result rows (one flat dict per finished design point, as
`reports.dse.store.load_rows` returns them), failure rows, and `Result` records for the
breakdowns; nothing here calls a mapper. `write_report(out_dir)` loads those from the
output directory; the other functions take rows, so they can be used (and tested) without
a store. The data and its helpers live in `reports.page.report_data`, the figures in
`reports.page.report_plots` and the page pieces in `reports.page.report_page`.

The page, top to bottom: an overview (counts, the first Pareto plot, the best design per
objective), every Pareto front, sensitivity to each swept parameter, breakdowns of the best
points (energy by component, latency by Einsum and compute array, traffic by tensor), the
first rows of the full table, the failures and the provenance.
"""

from __future__ import annotations

import datetime as _dt
import platform
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reports.dse.feasibility import FEASIBLE, VIOLATED, Tally, feasible_rows, mark_rows, tally
from reports.dse.pareto import Objective
from reports.page import html as h
from reports.page.report_data import (
    DEFAULT_OBJECTIVES,
    HEADLINE,
    ReportData,
    best_points,
    breakdown_subjects,
    by_workload,
    grouped_front,
    has_numbers,
    has_text,
    heading,
    load_report_data,
    pareto_pairs,
    present_objectives,
    swept_parameters,
    value_key,
    workload_parameters,
)
from reports.page.report_page import (
    CSS,
    RENDER_CHECK,
    FigureFiles,
    attnsim_version,
    breakdown_tables,
    first_lines,
    project,
    section,
    shown_table,
    slug,
    summary_cards,
)
from reports.page.report_plots import (
    SENSITIVITY_PANELS,
    energy_breakdown_plot,
    figure_of,
    latency_breakdown_figure,
    pareto_plot,
    sensitivity_figure,
    traffic_breakdown_plot,
)
from reports.page.tables import write_csv

# Re-exported: the report CLI and the tests load and write reports through this module.
__all__ = [
    "FULL_TABLE_ROWS",
    "REPORT_NAME",
    "ReportData",
    "load_report_data",
    "render_report",
    "write_report",
]

FULL_TABLE_ROWS = 200  # rows of the full table shown in the page (results.csv has all)
FRONT_TABLE_ROWS = 50  # rows of each Pareto table shown in the page (its CSV has all)
REPORT_NAME = "report.html"
NAV = (
    ("overview", "Overview"),
    ("pareto", "Pareto"),
    ("sensitivity", "Sensitivity"),
    ("breakdowns", "Breakdowns"),
    ("results", "Results"),
    ("failures", "Failures"),
    ("provenance", "Provenance"),
)


def write_report(
    out_dir: Path | str, data: ReportData | None = None, *, max_rows: int = FULL_TABLE_ROWS
) -> Path:
    """Write `out_dir/report.html` (figures also under `out_dir/figures/`, tables as CSV).

    Args:
        out_dir: the run's output directory.
        data: what to report; loaded from `out_dir` (`load_report_data`) when None.
        max_rows: rows of the full table shown in the page.

    Returns:
        The path of the HTML file.
    """
    out_dir = Path(out_dir)
    if data is None:
        data = load_report_data(out_dir)
    page = render_report(data, out_dir, max_rows=max_rows)
    path = out_dir / REPORT_NAME
    path.write_text(page, encoding="utf-8")
    return path


def render_report(data: ReportData, out_dir: Path, *, max_rows: int = FULL_TABLE_ROWS) -> str:
    """The report page as HTML text; writes its figures and CSV tables under `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    page = _Page.of(data, out_dir)
    pair_blocks = [_pareto_pair_block(page, x, y) for x, y in page.pairs]
    sections = [
        _overview_section(page, pair_blocks[:1]),
        *_pareto_section(page, pair_blocks[1:]),
        _sensitivity_section(page),
        _breakdowns_section(page),
        _results_section(page, max_rows),
        _failures_section(page),
        _provenance_section(page),
    ]
    nav = h.tag("nav", [h.tag("a", label, href=f"#{anchor}") for anchor, label in NAV])
    return h.document(page.title, [nav, h.tag("main", sections)], css=CSS, script=RENDER_CHECK)


@dataclass
class _Page:
    """What the sections of one report page are drawn from."""

    data: ReportData
    out_dir: Path
    rows: list[dict[str, Any]]  # the finished points, each marked feasible or not
    objectives: list[Objective]  # those some row has a number for
    params: list[str]  # swept parameters (`point.design` left out where it repeats `design`)
    varied: list[str]  # swept parameters with more than one value among the finished points
    task: list[str]  # varied workload parameters: points are compared within one value
    figures: FigureFiles

    @classmethod
    def of(cls, data: ReportData, out_dir: Path) -> _Page:
        """The page of `data`, its figures to be written under `out_dir/figures`."""
        rows = mark_rows(data.rows, data.constraints)
        params = swept_parameters(rows + data.failures)
        varied = [
            p for p in params if len({value_key(r[p]) for r in rows if r.get(p) is not None}) > 1
        ]
        return cls(
            data=data,
            out_dir=out_dir,
            rows=rows,
            objectives=present_objectives(rows, data.objectives),
            params=[p for p in params if not (p == "point.design" and has_text(rows, "design"))],
            varied=varied,
            task=workload_parameters(rows),
            figures=FigureFiles(out_dir / "figures"),
        )

    @property
    def ranked(self) -> list[Mapping[str, Any]]:
        """The finished points that may be ranked: those that keep every constraint and fit."""
        return feasible_rows(self.rows)

    @property
    def tally(self) -> Tally:
        """How many points are infeasible, and why."""
        return tally(self.rows, self.data.constraints)

    @property
    def other_params(self) -> list[str]:
        """The swept parameters shown after the workload ones."""
        return [p for p in self.params if p not in self.task]

    @property
    def title(self) -> str:
        """The page title, naming the experiment when known."""
        experiment = self.data.experiment
        return f"attnsim report: {experiment}" if experiment else "attnsim report"

    @property
    def within(self) -> str:
        """' each <workload parameters>' when points are grouped by workload, else ''."""
        return f" each {', '.join(heading(p) for p in self.task)}" if self.task else ""

    @property
    def pairs(self) -> list[tuple[Objective, Objective]]:
        """The objective pairs drawn as Pareto plots: those with numbers on both axes."""
        return [
            (x, y)
            for x, y in pareto_pairs(self.objectives or list(DEFAULT_OBJECTIVES))
            if has_numbers(self.rows, x[0]) and has_numbers(self.rows, y[0])
        ]


# -- sections, top to bottom


def _overview_section(page: _Page, lead: list[list[object]]) -> h.Markup:
    """Counts, the first Pareto plot (`lead`) and the best design per objective."""
    best = best_points(page.rows, page.objectives, page.task)
    columns = [*page.task, "best_for", "design", *HEADLINE, *page.other_params, "point_id"]
    write_csv(page.out_dir / "best_points.csv", project(best, columns), columns)
    headers = {c: heading(c) for c in columns} | {"best_for": "Best for"}
    overview: list[object] = [summary_cards(page.data, page.varied, page.tally), _feasibility(page)]
    overview.extend(h.tag("div", block, class_="lead") for block in lead)
    overview.append(
        h.tag("h3", "Best design per objective" + (f" for{page.within}" if page.task else ""))
    )
    overview.append(
        h.tag("div", h.table(best, columns, headers, class_="best"), class_="scroll")
        if best
        else h.tag("p", "No finished point has a number for any objective.")
    )
    overview.append(
        h.tag(
            "p",
            "Also as ",
            h.tag("a", "best_points.csv", href="best_points.csv"),
            ".",
            class_="note",
        )
    )
    return section("overview", page.title, overview)


def _feasibility(page: _Page) -> h.Markup:
    """The constraints, and how many points break each or do not fit (never ranked)."""
    counts = page.tally
    constraints = ", ".join(str(c) for c in page.data.constraints) or "none"
    if not counts.infeasible:
        text = f"Constraints: {constraints}. Every finished point keeps them and fits."
        return h.tag("p", text, class_="note")
    rows = [{"reason": reason, "points": n} for reason, n in counts.by_reason.items()]
    return h.tag(
        "div",
        h.tag(
            "p",
            f"Constraints: {constraints}. {counts.infeasible} of {counts.total} finished points "
            "are infeasible: they are kept in the tables (Feasible = False, with what they "
            "violate) but never ranked as best, on a Pareto front or in the sensitivity plots.",
            class_="note",
        ),
        h.table(rows, ["reason", "points"], {"reason": "Violates", "points": "Points"}),
        class_="infeasible",
    )


def _pareto_pair_block(page: _Page, x: Objective, y: Objective) -> list[object]:
    """The Pareto plot of `x` and `y` with its front's table; writes its PNG and CSV."""
    name = f"pareto-{slug(x[0])}-{slug(y[0])}"
    png = page.figures.save(name, figure_of(pareto_plot(page.rows, x, y, task=page.task)))
    front = grouped_front(page.rows, [x, y], page.task)
    columns = [
        *page.task,
        "design",
        x[0],
        y[0],
        *[c for c in HEADLINE if c not in (x[0], y[0])],
        *page.other_params,
        "point_id",
    ]
    write_csv(page.out_dir / f"{name}.csv", project(front, columns), columns)
    within = f" within{page.within}" if page.task else ""
    infeasible = len(page.rows) - len(page.ranked)
    caption = (
        f"Pareto front{within}, {heading(x[0])} vs {heading(y[0])}: {len(front)} of "
        f"{len(page.ranked)} feasible points are not beaten on both"
        + (f"; {infeasible} infeasible points drawn as grey crosses." if infeasible else ".")
    )
    return [
        h.figure(png, caption, figure_id=name),
        h.tag(
            "details",
            h.tag(
                "summary",
                f"Pareto-optimal points ({len(front)}; ",
                h.tag("a", f"{name}.csv", href=f"{name}.csv"),
                ")",
            ),
            shown_table(front, columns, FRONT_TABLE_ROWS),
            open=False,
        ),
    ]


def _pareto_section(page: _Page, pair_blocks: list[list[object]]) -> list[h.Markup]:
    """Every Pareto plot after the first, and the front over all objectives (if over two)."""
    blocks = [h.tag("div", block, class_="pair") for block in pair_blocks]
    if len(page.objectives) > 2:
        blocks.append(_all_objectives_block(page))
    if not blocks:
        return []
    return [section("pareto", "Pareto fronts", h.tag("div", blocks, class_="grid"))]


def _all_objectives_block(page: _Page) -> h.Markup:
    """The table of points Pareto-optimal over every objective at once; writes its CSV."""
    objectives = page.objectives
    front = grouped_front(page.rows, objectives, page.task)
    columns = [*page.task, "design", *[c for c, _ in objectives], *page.other_params, "point_id"]
    write_csv(page.out_dir / "pareto-all.csv", project(front, columns), columns)
    return h.tag(
        "div",
        h.tag("h3", f"Pareto-optimal over all {len(objectives)} objectives ({len(front)})"),
        h.tag("p", ", ".join(f"{heading(c)}: {d}" for c, d in objectives), class_="note"),
        shown_table(front, columns, FRONT_TABLE_ROWS),
        class_="wide",
    )


def _sensitivity_section(page: _Page) -> h.Markup:
    """One figure per varied parameter, one panel per objective."""
    sens: list[object] = []
    objectives = [c for c, _ in page.objectives]
    for parameter in page.varied:
        png = page.figures.save(
            f"sensitivity-{slug(parameter)}", sensitivity_figure(page.ranked, parameter, objectives)
        )
        sens.append(
            h.figure(
                png,
                f"{heading(parameter)}: "
                + ", ".join(heading(c) for c in objectives[:SENSITIVITY_PANELS]),
            )
        )
    if not sens:
        sens.append(
            h.tag("p", "No swept parameter takes more than one value among the finished points.")
        )
    return section("sensitivity", "Sensitivity to swept parameters", sens)


def _breakdowns_section(page: _Page) -> h.Markup:
    """Energy, latency and traffic breakdowns of the best points of the largest workload."""
    groups = by_workload(page.ranked, page.task)
    biggest = max(groups.values(), key=len) if groups else []
    subjects = breakdown_subjects(best_points(biggest, page.objectives), page.data.results)
    if not subjects:
        nothing = "No result records match the best points, so there is nothing to break down."
        return section("breakdowns", "Breakdowns of the best points", [h.tag("p", nothing)])
    save = page.figures.save
    breakdown = [
        h.figure(
            save("breakdown-energy", figure_of(energy_breakdown_plot(subjects))),
            "Energy by component of the best points, as shares of each total (pJ)",
        ),
        h.figure(
            save("breakdown-latency", latency_breakdown_figure(subjects)),
            "Latency by Einsum and by compute array of the best points (shares and fractions)",
        ),
        h.figure(
            save("breakdown-traffic", figure_of(traffic_breakdown_plot(subjects))),
            "Traffic by tensor of the best points, as shares of each total (bytes)",
        ),
        h.tag("details", h.tag("summary", "Breakdown tables"), breakdown_tables(subjects)),
    ]
    return section("breakdowns", "Breakdowns of the best points", breakdown)


def _results_section(page: _Page, max_rows: int) -> h.Markup:
    """The first `max_rows` rows of the full table, linking results.csv."""
    rows = page.rows
    columns = [
        "design",
        *page.params,
        *[c for c in HEADLINE if has_numbers(rows, c)],
        *[c for c in ("bound", "passes") if has_numbers(rows, c)],
        *sorted({k for r in rows for k in r if k.startswith("util.")}),
        *([FEASIBLE, VIOLATED] if page.tally.infeasible or page.data.constraints else []),
        "point_id",
    ]
    link = (
        h.tag("a", "results.csv", href="results.csv")
        if page.data.has_results_csv
        else "results.csv (not written)"
    )
    note = h.tag(
        "p",
        f"First {min(max_rows, len(rows))} of {len(rows)} points; every point and column is in ",
        link,
        ".",
        class_="note",
    )
    table = h.table(rows[:max_rows], columns, {c: heading(c) for c in columns})
    return section("results", "All results", [note, h.tag("div", table, class_="scroll")])


def _failures_section(page: _Page) -> h.Markup:
    """The failed points with their parameters and (the start of) their errors."""
    failed = page.data.failures
    if not failed:
        return section("failures", f"Failures ({len(failed)})", [h.tag("p", "No point failed.")])
    columns = ["point_id", *swept_parameters(failed), "error"]
    shown = [{**f, "error": first_lines(str(f.get("error", "")))} for f in failed]
    table = h.table(shown, columns, {c: heading(c) for c in columns}, class_="failures")
    failures = [
        h.tag("p", f"{len(failed)} point(s) failed.", class_="note"),
        h.tag("div", table, class_="scroll"),
    ]
    return section("failures", f"Failures ({len(failed)})", failures)


def _provenance_section(page: _Page) -> h.Markup:
    """What was run, when, where and with which versions."""
    data = page.data
    provenance = {
        "attnsim version": attnsim_version(),
        "experiment": data.experiment or "(no experiment.yaml)",
        "finished points": len(data.rows),
        "infeasible points": page.tally.describe(),
        "constraints": ", ".join(str(c) for c in data.constraints) or "(none)",
        "failed points": len(data.failures),
        "objectives": ", ".join(f"{c} ({d})" for c, d in page.objectives) or "(none)",
        "swept parameters": ", ".join(page.params) or "(none)",
        "generated": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "output directory": str(page.out_dir.resolve()),
        "python": platform.python_version(),
    }
    return section(
        "provenance",
        "Provenance",
        h.tag("dl", [(h.tag("dt", key), h.tag("dd", value)) for key, value in provenance.items()]),
    )
