"""The design-space report: one self-contained, interactive HTML page (plus CSV tables).

Everything is drawn from result rows (one flat dict per finished design point, as
`reports.dse.store.load_rows` returns them), failure rows, and `Result` records for the
breakdowns; nothing here calls a mapper. Figures are Plotly specs (`reports.page.interactive`)
drawn by the plotly.js embedded in the page, so it opens offline from one file; static
figures for papers come from `write_paper_figures` (matplotlib, PNG/SVG/PDF).

The page, top to bottom: an overview (counts, infeasible points, the headline ratios to the
baseline, the best design per objective per workload), speedup and energy ratio of each
design against the experiment's baseline per workload group, Pareto fronts with a panel per
workload group, sensitivity per workload group, breakdowns of the compared points side by
side, the modelling warnings, the full table, the points their mapper refused (with its
reason; never ranked), the failures and the provenance (with the
experiment file and its hash). The model behind the sections is `reports.page.report_model`;
the study sections are in `reports.page.report_study`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import platform
import re
from collections.abc import Sequence
from pathlib import Path

from attnsim.reports.dse.feasibility import (
    FEASIBLE,
    VIOLATED,
    WARNINGS,
)
from attnsim.reports.page import html as h
from attnsim.reports.page.compare import (
    ENERGY_RATIO,
    SPEEDUP,
    geometric_means,
    has_ratios,
)
from attnsim.reports.page.interactive import (
    pareto_figure,
    plotly_js,
)
from attnsim.reports.page.report_data import (
    HEADLINE,
    ReportData,
    best_points,
    grouped_front,
    has_numbers,
    has_text,
    heading,
    load_report_data,
    swept_parameters,
)
from attnsim.reports.page.report_model import (
    Page,
    csv_links,
    names_group,
    panel_rows,
)
from attnsim.reports.page.report_page import (
    CSS,
    SCRIPT,
    attnsim_version,
    csv_link,
    first_lines,
    plot_div,
    project,
    section,
    shown_table,
    slug,
    summary_cards,
    unit_table,
)
from attnsim.reports.page.report_study import (
    baseline_section,
    breakdowns_section,
    sensitivity_section,
    warnings_section,
)
from attnsim.reports.page.tables import write_csv

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
FINGERPRINT_META = "attnsim-inputs"
NAV = (
    ("overview", "Overview"),
    ("baseline", "Versus baseline"),
    ("pareto", "Pareto"),
    ("sensitivity", "Sensitivity"),
    ("breakdowns", "Breakdowns"),
    ("warnings", "Warnings"),
    ("results", "Results"),
    ("refusals", "Refusals"),
    ("failures", "Failures"),
    ("provenance", "Provenance"),
)


def write_report(
    out_dir: Path | str,
    data: ReportData | None = None,
    *,
    max_rows: int = FULL_TABLE_ROWS,
    force: bool = True,
) -> Path | None:
    """Write `out_dir/report.html` (its tables also as CSV files beside it).

    Args:
        out_dir: the run's output directory.
        data: what to report; loaded from `out_dir` (`load_report_data`) when None.
        max_rows: rows of the full table shown in the page.
        force: write even when the page on disk was made from the same store, experiment
            file and attnsim version (else such a page is kept and None returned).

    Returns:
        The path of the HTML file, or None when it was up to date and kept.
    """
    out_dir = Path(out_dir)
    if data is None:
        data = load_report_data(out_dir)
    path = out_dir / REPORT_NAME
    stamp = report_stamp(data)
    if not force and stamp and stamp_of(path) == stamp:
        return None
    page = render_report(data, out_dir, max_rows=max_rows)
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path


def write_paper_figures(
    out_dir: Path | str, data: ReportData, formats: Sequence[str] = ("png",)
) -> list[Path]:
    """Static Pareto figures (matplotlib, one panel per workload group) under out_dir/figures."""
    from attnsim.reports.page.report_plots import save_faceted_pareto

    page = Page.of(data, Path(out_dir))
    written: list[Path] = []
    for x, y in page.pairs:
        stem = Path(out_dir) / "figures" / f"pareto-{slug(x[0])}-{slug(y[0])}"
        written += save_faceted_pareto(page.rows, x, y, page.task, page.label, stem, formats)
    return written


def report_stamp(data: ReportData) -> str:
    """What the page is made from: the inputs' fingerprint and attnsim's version ('': none)."""
    return f"{data.fingerprint}-{attnsim_version()}" if data.fingerprint else ""


def stamp_of(path: Path) -> str:
    """The stamp a written page carries ('' when there is none or no page)."""
    try:
        with path.open(encoding="utf-8") as f:
            head = f.read(4096)
    except OSError:
        return ""
    match = re.search(f'<meta name="{FINGERPRINT_META}" content="([^"]*)"', head)
    return match.group(1) if match else ""


def render_report(data: ReportData, out_dir: Path, *, max_rows: int = FULL_TABLE_ROWS) -> str:
    """The report page as HTML text; writes its CSV tables under `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    page = Page.of(data, out_dir)
    sections = [
        _overview_section(page),
        baseline_section(page),
        _pareto_section(page),
        sensitivity_section(page),
        breakdowns_section(page),
        warnings_section(page),
        _results_section(page, max_rows),
        _refusals_section(page),
        _failures_section(page),
        _provenance_section(page),
    ]
    nav = h.tag("nav", [h.tag("a", label, href=f"#{anchor}") for anchor, label in NAV])
    stamp = report_stamp(data)
    meta = f'<meta name="{FINGERPRINT_META}" content="{h.escape(stamp)}">'
    head = [h.Markup(meta)] if stamp else []
    return h.document(
        page.title, [nav, h.tag("main", sections)], css=CSS, script=SCRIPT, head=head,
        library=plotly_js(),
    )  # fmt: skip


# -- sections, top to bottom


def _overview_section(page: Page) -> h.Markup:
    """What was compared, the counts, feasibility, the headline ratios, the best designs."""
    best = best_points(page.rows, page.objectives, page.task)
    columns = [*page.task, "best_for", "design", *HEADLINE, *page.other_params, "point_id"]
    columns = [c for c in columns if c in HEADLINE or has_text(best, c) or has_numbers(best, c)]
    write_csv(page.out_dir / "best_points.csv", project(best, columns), columns)
    overview: list[object] = []
    if page.data.description:
        overview.append(h.tag("p", page.data.description))
    overview += [summary_cards(page.data, page.varied, page.tally), _feasibility(page)]
    means = geometric_means(page.compared)
    if has_ratios(page.compared):
        text = "; ".join(
            f"{d}: {means[d][SPEEDUP]:.3g}× the speed at {means[d][ENERGY_RATIO]:.3g}× the energy"
            for d in page.designs
            if d != page.baseline and SPEEDUP in means.get(d, {}) and ENERGY_RATIO in means[d]
        )
        overview.append(
            h.tag(
                "p",
                h.tag("b", f"Against {page.baseline} "),
                f"(geometric mean over {page.groups} workload groups): {text}. ",
                h.tag("a", "Per workload", href="#baseline"),
                ".",
            )
        )
    overview.append(
        h.tag("h3", "Best design per objective" + (" for each workload" if page.task else ""))
    )
    overview.append(
        shown_table(best, columns, 10**9, "best-table")
        if best
        else h.tag("p", "No feasible finished point has a number for any objective.")
    )
    overview.append(
        h.tag("p", "Also as ", csv_links(page, "best_points.csv", best, columns), ".",
              class_="note")
    )  # fmt: skip
    return section("overview", page.title, overview)


def _feasibility(page: Page) -> h.Markup:
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
            "are infeasible: they are kept in the tables (Feasible = false, with what they "
            "violate) but never ranked as best, compared with the baseline, on a Pareto front "
            "or in the sensitivity plots; the plots draw them as grey crosses.",
        ),
        h.table(rows, ["reason", "points"], {"reason": "Violates", "points": "Points"}),
        class_="warn",
    )


def _pareto_section(page: Page) -> h.Markup:
    """One faceted figure per objective pair (a panel per workload), each front as a table."""
    blocks: list[object] = []
    shown = panel_rows(page)
    for x, y in page.pairs:
        name = f"pareto-{slug(x[0])}-{slug(y[0])}"
        spec = pareto_figure(shown, x, y, page.task, page.label, page.other_params, page.designs)
        front = grouped_front(page.rows, [x, y], page.task)
        columns = [*page.task, "design", x[0], y[0],
                   *[c for c in HEADLINE if c not in (x[0], y[0])], *page.other_params,
                   "point_id"]  # fmt: skip
        write_csv(page.out_dir / f"{name}.csv", project(front, columns), columns)
        caption = (
            f"{heading(y[0])} vs {heading(x[0])}, one panel per workload group: "
            f"{len(front)} of {len(page.ranked)} feasible points are on their group's front "
            "(black line); infeasible points are grey crosses. Hover a point for its design "
            "and parameters; drag to zoom, double-click to reset; click a legend entry to hide it."
        )
        blocks += [
            h.tag("h3", f"{heading(y[0])} vs {heading(x[0])}"),
            plot_div(name, spec, caption),
            h.tag("details", h.tag("summary", f"Pareto-optimal points ({len(front)})"),
                  shown_table(front, columns, FRONT_TABLE_ROWS, f"{name}-table"),
                  h.tag("p", csv_links(page, f"{name}.csv", front, columns), class_="note")),
        ]  # fmt: skip
    if len(page.objectives) > 2:
        front = grouped_front(page.rows, page.objectives, page.task)
        columns = [*page.task, "design", *[c for c, _ in page.objectives], *page.other_params,
                   "point_id"]  # fmt: skip
        write_csv(page.out_dir / "pareto-all.csv", project(front, columns), columns)
        blocks += [
            h.tag("h3", f"Pareto-optimal over all {len(page.objectives)} objectives "
                  f"({len(front)})"),
            shown_table(front, columns, FRONT_TABLE_ROWS, "pareto-all-table"),
        ]  # fmt: skip
    if not blocks:
        blocks.append(h.tag("p", "No two objectives have numbers that differ between points."))
    return section("pareto", "Pareto fronts, per workload", blocks)


def _results_section(page: Page, max_rows: int) -> h.Markup:
    """The first `max_rows` rows of the full table, sortable and filterable; results.csv."""
    rows = page.rows
    columns = [
        "design", *page.params,
        *[c for c in HEADLINE if has_numbers(rows, c)],
        *[c for c in ("bound", "passes", "onchip_peak_bytes")
          if has_text(rows, c) or has_numbers(rows, c)],
        *sorted({k for r in rows for k in r if k.startswith("util.")}),
        FEASIBLE, *([VIOLATED] if page.tally.infeasible else []),
        *([WARNINGS] if has_text(rows, WARNINGS) else []), "point_id",
    ]  # fmt: skip
    link = (
        h.tag("a", "results.csv", href="results.csv")
        if page.data.has_results_csv
        else "results.csv (not written)"
    )
    embedded = csv_link("results.csv", rows, columns)
    note = h.tag(
        "p", f"First {min(max_rows, len(rows))} of {len(rows)} points (click a heading to sort). "
        "Every point and column is in ", link, "; these columns can be downloaded from the page "
        "itself: ", embedded, ". Values a sweep block left unset show the design's own "
        "(the preset's default).", class_="note",
    )  # fmt: skip
    return section(
        "results", "All results", [note, unit_table(rows[:max_rows], columns, "results-table")]
    )


def _refusals_section(page: Page) -> h.Markup:
    """The points a mapper refused (`refusals: record`): design, mapper, point and reason."""
    refused = page.data.refusals
    title = f"Refusals ({len(refused)})"
    if not refused:
        return section("refusals", title, [h.tag("p", "No mapper refused a point.")])
    columns = ["design", "mapper", *page.task, *swept_parameters(refused), "refusal"]
    columns = [c for c in dict.fromkeys(columns) if not names_group(c, page.task)]
    columns = [c for c in columns if c != "point.design" or not has_text(refused, "design")]
    shown = [{**r, "refusal": first_lines(str(r.get("refusal", "")))} for r in refused]
    designs = len({r.get("design") for r in refused})
    table = h.table(shown, columns, {c: heading(c) for c in columns}, class_="failures")
    body = [
        h.tag(
            "p",
            f"{len(refused)} point(s) of {designs} design(s) were refused by their mapper: it "
            "cannot price that cascade on that hardware, and says why. They are an outcome, "
            "not a failure, and are never ranked, compared with the baseline or drawn.",
            class_="note",
        ),
        h.tag("div", table, class_="scroll"),
    ]
    return section("refusals", title, body)


def _failures_section(page: Page) -> h.Markup:
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


def _provenance_section(page: Page) -> h.Markup:
    """What was run, when, where and with which versions; the experiment file itself."""
    data = page.data
    text = data.experiment_text
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest() if text else ""
    provenance = {
        "attnsim version": attnsim_version(),
        "experiment": data.experiment or "(no experiment.yaml)",
        "experiment file sha256": sha or "(no experiment.yaml)",
        "baseline": page.baseline or "(none)",
        "finished points": len(data.rows),
        "infeasible points": page.tally.describe(),
        "constraints": ", ".join(str(c) for c in data.constraints) or "(none)",
        "refused points": len(data.refusals),
        "failed points": len(data.failures),
        "objectives": ", ".join(f"{c} ({d})" for c, d in page.objectives) or "(none)",
        "workload groups": f"{page.groups} (by {', '.join(map(heading, page.task)) or 'none'})",
        "swept parameters": ", ".join(page.params) or "(none)",
        "generated": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "output directory": str(page.out_dir.resolve()),
        "python": platform.python_version(),
    }
    body: list[object] = [
        h.tag("dl", [(h.tag("dt", key), h.tag("dd", value)) for key, value in provenance.items()])
    ]
    if text:
        body.append(h.tag("details", h.tag("summary", "The experiment file as run"),
                          h.tag("pre", text, class_="spec")))  # fmt: skip
    return section("provenance", "Provenance", body)
