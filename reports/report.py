"""The design-space report: one self-contained HTML page (plus CSV tables and PNG figures).

Everything is drawn from result rows (one flat dict per finished design point, as
`reports.store.load_rows` returns them), failure rows, and `Result` records for the
breakdowns; nothing here calls a mapper. `write_report(out_dir)` loads those from the
output directory; the other functions take rows, so they can be used (and tested) without
a store.

The page, top to bottom: an overview (counts, the first Pareto plot, the best design per
objective), every Pareto front, sensitivity to each swept parameter, breakdowns of the best
points (energy by component, latency by Einsum and compute array, traffic by tensor), the
first rows of the full table, the failures and the provenance.
"""

from __future__ import annotations

import datetime as _dt
import importlib
import io
import math
import platform
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from einsum_ir import SpecError
from mappers.result import Result
from reports import html as h
from reports.pareto import Objective, pareto_rows
from reports.tables import read_csv, write_csv

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

Row = Mapping[str, Any]

# Headline metrics: column -> heading with its unit.
METRICS: dict[str, str] = {
    "latency_s": "Latency (s)",
    "energy_pj": "Energy (pJ)",
    "edp_js": "EDP (J·s)",
    "area_um2": "Area (µm²)",
    "dram_traffic_bytes": "DRAM traffic (bytes)",
    "latency_cycles": "Latency (cycles)",
    "compute_cycles": "Compute (cycles)",
    "memory_cycles": "Memory (cycles)",
    "flops": "FLOPs",
    "passes": "Passes",
    "bound": "Bound",
    "design": "Design",
    "point_id": "Point",
    "error": "Error",
    "n_warnings": "Warnings",
}
# Objective names an experiment file may use, and the column each stands for.
OBJECTIVE_ALIASES = {
    "latency": "latency_s",
    "energy": "energy_pj",
    "edp": "edp_js",
    "area": "area_um2",
    "traffic": "dram_traffic_bytes",
    "buffer": "buffer_bytes",
    "utilization": "util.array_2d",
}
DEFAULT_OBJECTIVES: tuple[Objective, ...] = (
    ("latency_s", "min"),
    ("energy_pj", "min"),
    ("edp_js", "min"),
    ("area_um2", "min"),
    ("dram_traffic_bytes", "min"),
)
PARETO_PAIRS: tuple[tuple[str, str], ...] = (
    ("latency_s", "energy_pj"),
    ("latency_s", "area_um2"),
    ("energy_pj", "area_um2"),
)
HEADLINE = ("latency_s", "energy_pj", "edp_js", "area_um2", "dram_traffic_bytes")
FULL_TABLE_ROWS = 200  # rows of the full table shown in the page (results.csv has all)
FRONT_TABLE_ROWS = 50  # rows of each Pareto table shown in the page (its CSV has all)
BREAKDOWN_POINTS = 5  # at most this many best points are broken down
SENSITIVITY_PANELS = 4  # objectives per sensitivity figure
DPI = 110
REPORT_NAME = "report.html"


@dataclass
class ReportData:
    """Everything a report is drawn from."""

    rows: list[dict[str, Any]]
    failures: list[dict[str, Any]] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)
    objectives: list[Objective] = field(default_factory=lambda: list(DEFAULT_OBJECTIVES))
    experiment: str = ""
    has_results_csv: bool = False


# -- column helpers


def heading(column: str) -> str:
    """A column's heading, with its unit where it has one."""
    if column in METRICS:
        return METRICS[column]
    prefix, _, name = column.partition(".")
    if name:
        if prefix == "point":
            return name
        if prefix == "util":
            return f"{name} utilization"
        if prefix == "einsum_util":
            return f"{name} utilization (Einsum)"
        if prefix == "size":
            return f"{name} (size)"
        if prefix == "option":
            return f"option {name}"
    for suffix, unit in (("_s", "s"), ("_pj", "pJ"), ("_bytes", "bytes"), ("_um2", "µm²")):
        if column.endswith(suffix):
            return f"{column.removesuffix(suffix)} ({unit})"
    return column


def swept_parameters(rows: Sequence[Row]) -> list[str]:
    """The `point.*` columns in first-seen order (swept parameters), varied or not."""
    found: dict[str, None] = {}
    for row in rows:
        for key in row:
            if key.startswith("point."):
                found.setdefault(key, None)
    return list(found)


def design_of(row: Row) -> str:
    """A row's design label (`design`, else mapper/cascade)."""
    design = row.get("design")
    if design not in (None, ""):
        return str(design)
    return "/".join(str(row[key]) for key in ("mapper", "cascade") if key in row) or "design"


def present_objectives(rows: Sequence[Row], objectives: Sequence[Objective]) -> list[Objective]:
    """The objectives some row has a number for."""
    return [
        (column, direction)
        for column, direction in objectives
        if any(_number(row.get(column)) is not None for row in rows)
    ]


def workload_parameters(rows: Sequence[Row]) -> list[str]:
    """The swept `point.workload*` columns that vary.

    Points are compared only within one value of these: a design is not better for running
    a smaller workload.
    """
    return [
        p
        for p in swept_parameters(rows)
        if p.startswith("point.workload")
        and len({_key(r[p]) for r in rows if r.get(p) is not None}) > 1
    ]


def by_workload(rows: Sequence[Row], task: Sequence[str]) -> dict[tuple[Any, ...], list[Row]]:
    """Rows grouped by their values of the `task` columns, groups in first-seen order."""
    groups: dict[tuple[Any, ...], list[Row]] = {}
    for row in rows:
        groups.setdefault(tuple(_key(row.get(p)) for p in task), []).append(row)
    return groups


def grouped_front(
    rows: Sequence[Row], objectives: Sequence[Objective], task: Sequence[str] = ()
) -> list[Row]:
    """The Pareto-optimal rows within each workload group (`task` values), group by group."""
    return [r for group in by_workload(rows, task).values() for r in pareto_rows(group, objectives)]


def best_points(
    rows: Sequence[Row], objectives: Sequence[Objective], task: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """The best row for each objective within each workload group (ties: the first row).

    Each is a copy of its row tagged with `best_for` (text) and `objective` (the column).
    """
    return [
        best
        for group in by_workload(rows, task).values()
        for best in _best_points(group, objectives)
    ]


def _best_points(rows: Sequence[Row], objectives: Sequence[Objective]) -> list[dict[str, Any]]:
    best: list[dict[str, Any]] = []
    for column, direction in objectives:
        scored = [
            (value, i)
            for i, row in enumerate(rows)
            if (value := _number(row.get(column))) is not None
        ]
        if not scored:
            continue
        sign = 1.0 if direction == "min" else -1.0
        _, index = min(scored, key=lambda item: (sign * item[0], item[1]))
        best.append(
            {
                "best_for": f"{'lowest' if sign > 0 else 'highest'} {heading(column)}",
                "objective": column,
                **rows[index],
            }
        )
    return best


def pareto_pairs(objectives: Sequence[Objective]) -> list[tuple[Objective, Objective]]:
    """The objective pairs to draw.

    Always latency-energy, latency-area and energy-area; then each objective outside the
    headline metrics (such as a utilization) against latency. The front over all objectives
    together is a table of its own.
    """
    direction = dict(objectives)
    pairs: list[tuple[Objective, Objective]] = [
        ((x, direction.get(x, "min")), (y, direction.get(y, "min"))) for x, y in PARETO_PAIRS
    ]
    for column, way in objectives:
        if column not in HEADLINE:
            pairs.append((("latency_s", direction.get("latency_s", "min")), (column, way)))
    return pairs


# -- figures (each takes rows and an optional Axes or Figure, and returns it)


def pareto_plot(
    rows: Sequence[Row],
    x: Objective,
    y: Objective,
    ax: Axes | None = None,
    task: Sequence[str] = (),
) -> Axes:
    """Every point (colored by design) and the Pareto front of objectives `x` and `y`.

    With `task` columns, there is one front within each workload group.
    """
    ax = ax if ax is not None else _new_figure((6.4, 4.6)).add_subplot()
    usable = [
        r for r in rows if _number(r.get(x[0])) is not None and _number(r.get(y[0])) is not None
    ]
    colors = _design_colors(usable)
    for design, color in colors.items():
        mine = [r for r in usable if design_of(r) == design]
        ax.scatter(
            [float(r[x[0]]) for r in mine],
            [float(r[y[0]]) for r in mine],
            s=14,
            alpha=0.55,
            color=color,
            label=design,
            rasterized=len(usable) > 2000,
            linewidths=0,
        )
    fronts = [pareto_rows(g, [x, y]) for g in by_workload(usable, task).values()]
    for index, front in enumerate(f for f in fronts if f):
        fx = [float(r[x[0]]) for r in front]
        fy = [float(r[y[0]]) for r in front]
        ax.plot(fx, fy, color="black", linewidth=1.0, drawstyle="steps-post", zorder=3)
        ax.scatter(
            fx,
            fy,
            s=42,
            facecolors="none",
            edgecolors="black",
            linewidths=1.2,
            zorder=4,
            label=f"Pareto front ({sum(map(len, fronts))})" if index == 0 else None,
        )
    _auto_log(ax, "x", [_number(r[x[0]]) for r in usable])
    _auto_log(ax, "y", [_number(r[y[0]]) for r in usable])
    ax.set_xlabel(heading(x[0]) + _direction_hint(x[1]))
    ax.set_ylabel(heading(y[0]) + _direction_hint(y[1]))
    ax.set_title(f"{heading(y[0])} vs {heading(x[0])}")
    ax.grid(True, which="both", alpha=0.25)
    if usable:
        ax.legend(fontsize="small", loc="best", ncols=1 + len(colors) // 12)
    return ax


def sensitivity_plot(
    rows: Sequence[Row], parameter: str, objective: str, ax: Axes | None = None
) -> Axes:
    """`objective` against swept `parameter`, one line per design.

    At each parameter value: the median (solid) and the minimum (dashed) over the other
    parameters. When each design has a single value of the parameter (the parameter picks
    the design), all points form one line.
    """
    ax = ax if ax is not None else _new_figure((5.0, 3.6)).add_subplot()
    usable = [
        r for r in rows if r.get(parameter) is not None and _number(r.get(objective)) is not None
    ]
    values = _unique(r[parameter] for r in usable)
    numeric = all(_number(v) is not None for v in values)
    order = sorted(values, key=lambda v: float(v)) if numeric else values  # sweep order
    position = {_key(v): float(v) if numeric else float(i) for i, v in enumerate(order)}
    groups: dict[str, list[Row]] = {}
    for row in usable:
        groups.setdefault(design_of(row), []).append(row)
    if all(len({_key(r[parameter]) for r in g}) == 1 for g in groups.values()):
        groups = {"all designs": list(usable)}  # the parameter picks the design: one line
    colors = _palette(len(groups))
    for (label, group), color in zip(groups.items(), colors, strict=True):
        by_value: dict[Any, list[float]] = {}
        for row in group:
            by_value.setdefault(_key(row[parameter]), []).append(float(row[objective]))
        xs = sorted(by_value, key=lambda k: position[k])
        px = [position[k] for k in xs]
        ax.plot(px, [_median(by_value[k]) for k in xs], marker="o", color=color, label=label)
        if any(len(by_value[k]) > 1 for k in xs):
            ax.plot(
                px,
                [min(by_value[k]) for k in xs],
                linestyle="--",
                color=color,
                alpha=0.7,
                linewidth=1,
            )
    if numeric:
        _auto_log(ax, "x", [float(v) for v in order], span=7)
        if len(order) <= 12:
            ax.set_xticks([float(v) for v in order], [h.format_cell(v, 3) for v in order])
            ax.minorticks_off()
    else:
        ax.set_xticks(range(len(order)), [str(v) for v in order], rotation=30, ha="right")
    _auto_log(ax, "y", [float(r[objective]) for r in usable])
    ax.set_xlabel(heading(parameter))
    ax.set_ylabel(heading(objective))
    ax.grid(True, which="both", alpha=0.25)
    if usable and len(groups) > 1:
        ax.legend(fontsize="x-small", loc="best")
    return ax


def sensitivity_figure(
    rows: Sequence[Row], parameter: str, objectives: Sequence[str], fig: Figure | None = None
) -> Figure:
    """One panel per objective of `sensitivity_plot` for `parameter`."""
    objectives = list(objectives)[:SENSITIVITY_PANELS] or ["latency_s"]
    fig = fig if fig is not None else _new_figure((4.2 * len(objectives), 3.6))
    axes = fig.subplots(1, len(objectives), squeeze=False)[0]
    for ax, objective in zip(axes, objectives, strict=True):
        sensitivity_plot(rows, parameter, objective, ax)
    fig.suptitle(
        f"Sensitivity to {heading(parameter)} (solid: median, dashed: minimum over "
        "the other parameters)",
        fontsize="medium",
    )
    return fig


def energy_breakdown_plot(results: Mapping[str, Result], ax: Axes | None = None) -> Axes:
    """Energy by component as shares of each result's total (total pJ in the bar label)."""
    ax = ax if ax is not None else _new_axes((7.5, 0.9 + 0.6 * max(len(results), 2)))
    parts = {label: r.energy_by_component() for label, r in results.items()}
    _stacked_shares(ax, parts, "pJ")
    ax.set_xlabel("Share of energy (0–1)")
    ax.set_title("Energy by component")
    return ax


def traffic_breakdown_plot(results: Mapping[str, Result], ax: Axes | None = None) -> Axes:
    """Bytes moved per tensor (read + written) as shares of each result's total."""
    ax = ax if ax is not None else _new_axes((7.5, 0.9 + 0.6 * max(len(results), 2)))
    parts = {label: traffic_by_tensor(r) for label, r in results.items()}
    _stacked_shares(ax, parts, "bytes")
    ax.set_xlabel("Share of traffic (0–1)")
    ax.set_title("Traffic by tensor (read + written)")
    return ax


def latency_breakdown_figure(results: Mapping[str, Result], fig: Figure | None = None) -> Figure:
    """Latency broken down, one bar per labelled result.

    Left: compute cycles per Einsum as shares of the compute cycles; right: each array's
    busy cycles and the memory cycles as fractions of the latency (an array's utilization).
    """
    fig = fig if fig is not None else _new_figure((13.0, 0.9 + 0.6 * max(len(results), 2)))
    einsum_ax, unit_ax = fig.subplots(1, 2)
    parts = {label: einsum_cycles(r) for label, r in results.items()}
    _stacked_shares(einsum_ax, parts, "cycles")
    einsum_ax.set_xlabel("Share of compute cycles (0–1)")
    einsum_ax.set_title("Compute cycles by Einsum")
    labels = list(results)
    series: dict[str, list[float]] = {}
    for i, label in enumerate(labels):
        r = results[label]
        latency = r.latency_cycles or 1.0
        for unit in r.units:
            series.setdefault(f"{unit.unit} busy", [0.0] * len(labels))[i] = (
                unit.busy_cycles / latency
            )
        series.setdefault("memory", [0.0] * len(labels))[i] = r.memory_cycles / latency
    height = 0.8 / max(len(series), 1)
    colors = _palette(len(series))
    for slot, ((name, values), color) in enumerate(zip(series.items(), colors, strict=True)):
        offsets = [i + (slot - (len(series) - 1) / 2) * height for i in range(len(labels))]
        unit_ax.barh(offsets, values, height * 0.95, label=name, color=color)
    unit_ax.set_yticks(
        range(len(labels)),
        [f"{label}\n{h.format_cell(results[label].latency_s, 3)} s" for label in labels],
        fontsize="small",
    )
    unit_ax.invert_yaxis()
    unit_ax.axvline(1.0, color="black", linewidth=0.8, linestyle="--")
    unit_ax.set_xlabel("Fraction of latency (0–1)")
    unit_ax.set_title("Array busy and memory time vs latency")
    unit_ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    unit_ax.grid(True, axis="x", alpha=0.25)
    return fig


def traffic_by_tensor(result: Result) -> dict[str, float]:
    """Bytes (read + written) per tensor, keyed `level:tensor` when several levels appear."""
    levels = {t.level for t in result.traffic}
    totals: dict[str, float] = {}
    for t in result.traffic:
        key = t.tensor if len(levels) == 1 else f"{t.level}:{t.tensor}"
        totals[key] = totals.get(key, 0.0) + t.total_bytes
    return totals


def einsum_cycles(result: Result) -> dict[str, float]:
    """Compute cycles per Einsum, keyed `Einsum (unit)`."""
    totals: dict[str, float] = {}
    for e in result.per_einsum:
        key = f"{e.einsum} ({e.unit})"
        totals[key] = totals.get(key, 0.0) + e.compute_cycles
    return totals


# -- matching rows to their Result records


def result_for(row: Row, results: Iterable[Result]) -> Result | None:
    """The Result a row was made from, or None.

    Matched by the point_id in the Result's provenance when it has one, else by the same
    mapper, cascade, arch and headline numbers.
    """
    point_id = row.get("point_id")
    candidates = list(results)
    for r in candidates:
        if point_id is not None and dict(r.provenance).get("point_id") == point_id:
            return r
    key = _match_key(row)
    for r in candidates:
        if _match_key(r.to_row()) == key:
            return r
    return None


def breakdown_subjects(best: Sequence[Row], results: Sequence[Result]) -> dict[str, Result]:
    """Distinct best points (by point_id) with their Result, labelled 'objective: design'."""
    subjects: dict[str, Result] = {}
    seen: set[Any] = set()
    for row in best:
        ident = row.get("point_id", id(row))
        if ident in seen:
            continue
        seen.add(ident)
        result = result_for(row, results)
        if result is None:
            continue
        objective = heading(str(row.get("objective", "")))
        subjects[f"best {objective}: {design_of(row)}"] = result
        if len(subjects) == BREAKDOWN_POINTS:
            break
    return subjects


# -- loading


def load_report_data(out_dir: Path | str) -> ReportData:
    """Rows, failures, Results and objectives of an output directory.

    Reads the store through `reports.store` (load_rows, load_failures, load_results); when
    that module or the database is absent, reads `results.csv` instead (no failures, no
    breakdowns). Objectives come from `experiment.yaml` when present.

    Raises:
        FileNotFoundError: the directory holds neither the store nor results.csv.
    """
    out_dir = Path(out_dir)
    csv_path = out_dir / "results.csv"
    store = _optional_module("reports.store")
    data = ReportData(rows=[], has_results_csv=csv_path.is_file())
    if store is not None and (out_dir / "results.sqlite").is_file():
        data.rows = [dict(row) for row in store.load_rows(out_dir)]
        if hasattr(store, "load_failures"):
            data.failures = [dict(row) for row in store.load_failures(out_dir)]
        if hasattr(store, "load_results"):
            data.results = list(store.load_results(out_dir))
    elif csv_path.is_file():
        data.rows = [dict(row) for row in read_csv(csv_path) if row.get("status", "ok") == "ok"]
    else:
        raise FileNotFoundError(
            f"{out_dir} has no results (neither results.sqlite nor results.csv)"
        )
    experiment_path = out_dir / "experiment.yaml"
    if experiment_path.is_file():
        data.experiment, objectives = _experiment_info(experiment_path)
        if objectives:
            data.objectives = objectives
    return data


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
    figures_dir = out_dir / "figures"
    rows = data.rows
    objectives = present_objectives(rows, data.objectives)
    params = swept_parameters(rows + data.failures)
    varied = [p for p in params if len({_key(r[p]) for r in rows if r.get(p) is not None}) > 1]
    emitted = _Figures(figures_dir)

    task = workload_parameters(rows)
    # `point.design` repeats `design`; workload columns lead.
    params = [p for p in params if not (p == "point.design" and _has_text(rows, "design"))]
    shown_params = [*task, *[p for p in params if p not in task]]
    best = best_points(rows, objectives, task)
    best_columns = [*task, "best_for", "design", *HEADLINE, *shown_params[len(task) :], "point_id"]
    write_csv(out_dir / "best_points.csv", _project(best, best_columns), best_columns)
    headers = {c: heading(c) for c in best_columns} | {"best_for": "Best for"}

    sections: list[h.Markup] = []
    title = f"attnsim report: {data.experiment}" if data.experiment else "attnsim report"

    # Overview: numbers, the first Pareto plot, the best designs.
    pairs = [
        (x, y)
        for x, y in pareto_pairs(objectives or list(DEFAULT_OBJECTIVES))
        if _has(rows, x[0]) and _has(rows, y[0])
    ]
    overview: list[object] = [_summary_cards(data, varied)]
    front_blocks: list[object] = []
    for index, (x, y) in enumerate(pairs):
        name = f"pareto-{_slug(x[0])}-{_slug(y[0])}"
        ax = pareto_plot(rows, x, y, task=task)
        png = emitted.save(name, _figure_of(ax))
        front = grouped_front(rows, [x, y], task)
        columns = [
            *task,
            "design",
            x[0],
            y[0],
            *[c for c in HEADLINE if c not in (x[0], y[0])],
            *shown_params[len(task) :],
            "point_id",
        ]
        write_csv(out_dir / f"{name}.csv", _project(front, columns), columns)
        within = f" within each {', '.join(heading(p) for p in task)}" if task else ""
        caption = (
            f"Pareto front{within}, {heading(x[0])} vs {heading(y[0])}: {len(front)} of "
            f"{len(rows)} points are not beaten on both."
        )
        block = [
            h.figure(png, caption, figure_id=name),
            h.tag(
                "details",
                h.tag(
                    "summary",
                    f"Pareto-optimal points ({len(front)}; ",
                    h.tag("a", f"{name}.csv", href=f"{name}.csv"),
                    ")",
                ),
                _shown(front, columns, FRONT_TABLE_ROWS),
                open=False,
            ),
        ]
        if index == 0:
            overview.append(h.tag("div", block, class_="lead"))
        else:
            front_blocks.append(h.tag("div", block, class_="pair"))
    overview.append(
        h.tag(
            "h3",
            "Best design per objective"
            + (f" for each {', '.join(heading(p) for p in task)}" if task else ""),
        )
    )
    overview.append(
        h.tag("div", h.table(best, best_columns, headers, class_="best"), class_="scroll")
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
    sections.append(_section("overview", title, overview))

    if len(objectives) > 2:
        front = grouped_front(rows, objectives, task)
        columns = [
            *task,
            "design",
            *[c for c, _ in objectives],
            *shown_params[len(task) :],
            "point_id",
        ]
        write_csv(out_dir / "pareto-all.csv", _project(front, columns), columns)
        front_blocks.append(
            h.tag(
                "div",
                h.tag("h3", f"Pareto-optimal over all {len(objectives)} objectives ({len(front)})"),
                h.tag("p", ", ".join(f"{heading(c)}: {d}" for c, d in objectives), class_="note"),
                _shown(front, columns, FRONT_TABLE_ROWS),
                class_="wide",
            )
        )
    if front_blocks:
        sections.append(
            _section("pareto", "Pareto fronts", h.tag("div", front_blocks, class_="grid"))
        )

    # Sensitivity.
    sens: list[object] = []
    sens_objectives = [c for c, _ in objectives]
    for parameter in varied:
        png = emitted.save(
            f"sensitivity-{_slug(parameter)}", sensitivity_figure(rows, parameter, sens_objectives)
        )
        sens.append(
            h.figure(
                png,
                f"{heading(parameter)}: "
                + ", ".join(heading(c) for c in sens_objectives[:SENSITIVITY_PANELS]),
            )
        )
    if not sens:
        sens.append(
            h.tag("p", "No swept parameter takes more than one value among the finished points.")
        )
    sections.append(_section("sensitivity", "Sensitivity to swept parameters", sens))

    # Breakdowns.
    groups = by_workload(rows, task)
    biggest = max(groups.values(), key=len) if groups else []
    subjects = breakdown_subjects(_best_points(biggest, objectives), data.results)
    if subjects:
        breakdown: list[object] = [
            h.figure(
                emitted.save("breakdown-energy", _figure_of(energy_breakdown_plot(subjects))),
                "Energy by component of the best points, as shares of each total (pJ)",
            ),
            h.figure(
                emitted.save("breakdown-latency", latency_breakdown_figure(subjects)),
                "Latency by Einsum and by compute array of the best points (shares and fractions)",
            ),
            h.figure(
                emitted.save("breakdown-traffic", _figure_of(traffic_breakdown_plot(subjects))),
                "Traffic by tensor of the best points, as shares of each total (bytes)",
            ),
            h.tag("details", h.tag("summary", "Breakdown tables"), _breakdown_tables(subjects)),
        ]
    else:
        breakdown = [
            h.tag(
                "p", "No result records match the best points, so there is nothing to break down."
            )
        ]
    sections.append(_section("breakdowns", "Breakdowns of the best points", breakdown))

    # Full table.
    full_columns = [
        "design",
        *params,
        *[c for c in HEADLINE if _has(rows, c)],
        *[c for c in ("bound", "passes") if _has(rows, c)],
        *sorted({k for r in rows for k in r if k.startswith("util.")}),
        "point_id",
    ]
    link = (
        h.tag("a", "results.csv", href="results.csv")
        if data.has_results_csv
        else "results.csv (not written)"
    )
    full = [
        h.tag(
            "p",
            f"First {min(max_rows, len(rows))} of {len(rows)} points; every point and "
            "column is in ",
            link,
            ".",
            class_="note",
        ),
        h.tag(
            "div",
            h.table(rows[:max_rows], full_columns, {c: heading(c) for c in full_columns}),
            class_="scroll",
        ),
    ]
    sections.append(_section("results", "All results", full))

    # Failures.
    if data.failures:
        fail_columns = ["point_id", *swept_parameters(data.failures), "error"]
        shown = [{**f, "error": _first_lines(str(f.get("error", "")))} for f in data.failures]
        failures: list[object] = [
            h.tag("p", f"{len(data.failures)} point(s) failed.", class_="note"),
            h.tag(
                "div",
                h.table(
                    shown, fail_columns, {c: heading(c) for c in fail_columns}, class_="failures"
                ),
                class_="scroll",
            ),
        ]
    else:
        failures = [h.tag("p", "No point failed.")]
    sections.append(_section("failures", f"Failures ({len(data.failures)})", failures))

    # Provenance.
    provenance = {
        "attnsim version": _version(),
        "experiment": data.experiment or "(no experiment.yaml)",
        "finished points": len(rows),
        "failed points": len(data.failures),
        "objectives": ", ".join(f"{c} ({d})" for c, d in objectives) or "(none)",
        "swept parameters": ", ".join(params) or "(none)",
        "generated": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "output directory": str(out_dir.resolve()),
        "python": platform.python_version(),
    }
    sections.append(
        _section(
            "provenance",
            "Provenance",
            h.tag(
                "dl", [(h.tag("dt", key), h.tag("dd", value)) for key, value in provenance.items()]
            ),
        )
    )

    nav = h.tag(
        "nav",
        [
            h.tag("a", label, href=f"#{anchor}")
            for anchor, label in (
                ("overview", "Overview"),
                ("pareto", "Pareto"),
                ("sensitivity", "Sensitivity"),
                ("breakdowns", "Breakdowns"),
                ("results", "Results"),
                ("failures", "Failures"),
                ("provenance", "Provenance"),
            )
        ],
    )
    return h.document(title, [nav, h.tag("main", sections)], css=CSS, script=RENDER_CHECK)


# -- page pieces

CSS = """
:root { --fg: #1d232b; --muted: #5b6675; --line: #d8dde4; --bg: #ffffff; --band: #f5f7fa;
        --accent: #1f5fa8; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--fg); background: var(--bg); }
nav { position: sticky; top: 0; z-index: 2; background: var(--fg); padding: 0.4em 1.5em; }
nav a { color: #fff; margin-right: 1.2em; text-decoration: none; font-size: 0.9em; }
nav a:hover { text-decoration: underline; }
main { max-width: 1400px; margin: 0 auto; padding: 0 1.5em 3em; }
section { border-bottom: 1px solid var(--line); padding: 1em 0 1.5em; }
h1 { font-size: 1.6em; margin: 0.6em 0 0.3em; }
h2 { font-size: 1.3em; margin: 0.4em 0; }
h3 { font-size: 1.05em; margin: 1.2em 0 0.4em; }
.cards { display: flex; flex-wrap: wrap; gap: 0.8em; margin: 0.6em 0 1em; }
.card { background: var(--band); border: 1px solid var(--line); border-radius: 6px;
        padding: 0.5em 1em; min-width: 9em; }
.card b { display: block; font-size: 1.5em; }
.card span { color: var(--muted); font-size: 0.85em; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 1.5em; }
.wide { grid-column: 1 / -1; }
figure { margin: 0.6em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 0.9em; }
.lead figure img { max-width: min(100%, 900px); }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.4em 0; }
th, td { border: 1px solid var(--line); padding: 0.25em 0.55em; vertical-align: top; }
th { background: var(--band); text-align: left; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #fafbfc; }
table.best td { white-space: nowrap; }
table.failures td:last-child { white-space: pre-wrap; font-family: ui-monospace, monospace;
                               max-width: 60em; }
.scroll { overflow: auto; max-height: 36em; }
.note { color: var(--muted); font-size: 0.9em; }
details summary { cursor: pointer; color: var(--accent); margin: 0.3em 0; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.2em 1.2em; }
dt { color: var(--muted); }
dd { margin: 0; }
"""

# Marks the page once every figure has decoded: <html data-render="ok" data-figures-...>.
RENDER_CHECK = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var loaded = images.filter(function (im) { return im.complete && im.naturalWidth > 0; });
  var root = document.documentElement;
  root.setAttribute("data-figures-total", String(images.length));
  root.setAttribute("data-figures-loaded", String(loaded.length));
  root.setAttribute("data-render", loaded.length === images.length ? "ok" : "broken");
});
"""


def _section(anchor: str, title: str, body: object) -> h.Markup:
    level = "h1" if anchor == "overview" else "h2"
    return h.tag("section", h.tag(level, title), body, id=anchor)


def _summary_cards(data: ReportData, varied: Sequence[str]) -> h.Markup:
    designs = len({design_of(r) for r in data.rows})
    cards = [
        (len(data.rows), "finished points"),
        (len(data.failures), "failed points"),
        (designs, "designs"),
        (len(varied), "swept parameters"),
    ]
    return h.tag(
        "div",
        [h.tag("div", h.tag("b", n), h.tag("span", label), class_="card") for n, label in cards],
        class_="cards",
    )


def _shown(rows: Sequence[Row], columns: Sequence[str], limit: int) -> h.Markup:
    note = (
        h.tag("p", f"First {limit} of {len(rows)} shown.", class_="note")
        if len(rows) > limit
        else None
    )
    return h.render(
        [
            h.tag(
                "div",
                h.table(rows[:limit], columns, {c: heading(c) for c in columns}),
                class_="scroll",
            ),
            note,
        ]
    )


def _breakdown_tables(subjects: Mapping[str, Result]) -> h.Markup:
    blocks = []
    for label, result in subjects.items():
        energy = result.energy_by_component()
        total = sum(energy.values()) or 1.0
        rows = [
            {"component": k, "energy_pj": v, "share": v / total}
            for k, v in sorted(energy.items(), key=lambda kv: -kv[1])
        ]
        traffic = [{"tensor": k, "bytes": v} for k, v in traffic_by_tensor(result).items()]
        einsums = [
            {
                "einsum": e.einsum,
                "unit": e.unit,
                "pass": e.pass_index,
                "compute_cycles": e.compute_cycles,
                "utilization": e.utilization,
            }
            for e in result.per_einsum
        ]
        blocks.append(
            h.tag(
                "div",
                h.tag("h3", label),
                h.table(
                    rows,
                    ["component", "energy_pj", "share"],
                    {"component": "Component", "energy_pj": "Energy (pJ)", "share": "Share (0–1)"},
                ),
                h.table(
                    einsums,
                    ["einsum", "unit", "pass", "compute_cycles", "utilization"],
                    {
                        "einsum": "Einsum",
                        "unit": "Array",
                        "pass": "Pass",
                        "compute_cycles": "Compute (cycles)",
                        "utilization": "Utilization (0–1)",
                    },
                ),
                h.table(
                    traffic, ["tensor", "bytes"], {"tensor": "Tensor", "bytes": "Traffic (bytes)"}
                ),
            )
        )
    return h.tag("div", blocks, class_="grid")


class _Figures:
    """Saves each figure as PNG under a folder and returns its bytes for embedding."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def save(self, name: str, fig: Figure) -> bytes:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=DPI)
        png = buffer.getvalue()
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"{name}.png").write_bytes(png)
        return png


# -- small helpers


def _stacked_shares(ax: Axes, parts: Mapping[str, Mapping[str, float]], unit: str) -> None:
    """Horizontal stacked bars of shares, one per label, one segment per key.

    Each bar's total (in `unit`) is written beneath its label; keys go largest overall first.
    """
    totals: dict[str, float] = {}
    for values in parts.values():
        for key, value in values.items():
            totals[key] = totals.get(key, 0.0) + value
    keys = sorted(totals, key=lambda k: -totals[k])
    labels = list(parts)
    sums = [sum(parts[label].values()) or 1.0 for label in labels]
    left = [0.0] * len(labels)
    for key, color in zip(keys, _palette(len(keys)), strict=True):
        widths = [parts[label].get(key, 0.0) / t for label, t in zip(labels, sums, strict=True)]
        ax.barh(range(len(labels)), widths, 0.6, left=left, label=key, color=color)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    ticks = [f"{label}\n{h.format_cell(sum(parts[label].values()), 3)} {unit}" for label in labels]
    ax.set_yticks(range(len(labels)), ticks, fontsize="small")
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.grid(True, axis="x", alpha=0.25)
    if keys:
        ax.legend(
            fontsize="x-small",
            loc="upper left",
            bbox_to_anchor=(1.0, 1.0),
            ncols=1 + len(keys) // 16,
        )


def _palette(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _design_colors(rows: Sequence[Row]) -> dict[str, Any]:
    designs = _unique(design_of(r) for r in rows)
    return dict(zip(designs, _palette(len(designs)), strict=True))


def _auto_log(ax: Axes, axis: str, values: Iterable[float | None], span: float = 50) -> None:
    """A log scale when every value is positive and they span more than `span` times."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if finite and min(finite) > 0 and max(finite) / min(finite) > span:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")


def _direction_hint(direction: str) -> str:
    return "  (lower is better)" if direction == "min" else "  (higher is better)"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _has_text(rows: Sequence[Row], column: str) -> bool:
    return any(r.get(column) not in (None, "") for r in rows)


def _has(rows: Sequence[Row], column: str) -> bool:
    return any(_number(r.get(column)) is not None for r in rows)


def _key(value: Any) -> Any:
    """A hashable, type-stable key for a parameter value (1 and 1.0 are the same value)."""
    number = _number(value)
    if number is not None:
        return number
    return value if isinstance(value, str | bool | None) else repr(value)


def _unique(items: Iterable[Any]) -> list[Any]:
    found: dict[Any, Any] = {}
    for item in items:
        found.setdefault(_key(item), item)
    return list(found.values())


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _match_key(row: Row) -> tuple[Any, ...]:
    return tuple(
        row.get(k)
        for k in (
            "mapper",
            "cascade",
            "arch",
            "latency_s",
            "energy_pj",
            "dram_traffic_bytes",
            "area_um2",
        )
    )


def _project(rows: Iterable[Row], columns: Sequence[str]) -> list[dict[str, Any]]:
    return [{c: r[c] for c in columns if c in r and r[c] is not None} for r in rows]


def _slug(column: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in column.removeprefix("point.")).strip("-")


def _first_lines(text: str, limit: int = 600) -> str:
    return text if len(text) <= limit else text[:limit] + " …"


def _version() -> str:
    try:
        return metadata.version("attnsim")
    except metadata.PackageNotFoundError:
        return "unknown"


def _optional_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return None


def _experiment_info(path: Path) -> tuple[str, list[Objective]]:
    """The experiment's name and objectives.

    Read with `reports.experiment` when present, else a plain YAML read of `name` and
    `objectives`.
    """
    experiment = _optional_module("reports.experiment")
    if experiment is not None:
        try:
            loaded = experiment.load_experiment(path)
        except (SpecError, OSError, ValueError):
            pass  # e.g. relative paths that only resolve next to the original file
        else:
            return str(loaded.name), [(str(c), str(d)) for c, d in loaded.objectives]
    import yaml

    spec = yaml.safe_load(path.read_text()) or {}
    if not isinstance(spec, dict):
        return "", []
    objectives: list[Objective] = []
    for item in spec.get("objectives") or []:
        if isinstance(item, str):
            objectives.append((OBJECTIVE_ALIASES.get(item, item), "min"))
        elif isinstance(item, dict) and "metric" in item:  # {metric: energy, direction: min}
            name = str(item["metric"])
            direction = str(item.get("direction", "min"))
            objectives.append((OBJECTIVE_ALIASES.get(name, name), direction))
    return str(spec.get("name", path.parent.name)), objectives


def _new_figure(size: tuple[float, float]) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=size, layout="constrained")


def _new_axes(size: tuple[float, float]) -> Axes:
    return _new_figure(size).add_subplot()


def _figure_of(ax: Axes) -> Figure:
    figure = ax.get_figure(root=True)
    if figure is None:
        raise ValueError("axes belong to no figure")
    return figure
