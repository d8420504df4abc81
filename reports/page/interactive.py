"""The report's interactive figures: Plotly figure specs built as plain dicts from result rows.

Plotly (plotly.js) draws them in the page: hover names the design point, drag zooms, a
legend click hides a design in every panel. The Python `plotly` package is never imported:
`plotly_js` reads only the plotly.min.js it ships, which the page embeds so that it opens
offline from one file. Figures are faceted, one panel per workload group: points of
different workloads are never pooled on one axis. Values are shown in the unit
`reports.units` picks for each figure's quantity.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from attnsim.reports.dse.feasibility import VIOLATED, WARNINGS, is_feasible
from attnsim.reports.dse.pareto import Objective, pareto_rows
from attnsim.reports.page.report_data import Row, as_number, by_workload, design_of, heading
from attnsim.reports.units import Unit, pick_unit, quantity_of

Spec = dict[str, Any]
COLORS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
)  # fmt: skip
PANEL_HEIGHT_PX = 250
MAX_COLUMNS = 4


@cache
def plotly_js() -> str:
    """plotly.min.js as shipped by the `plotly` package (found without importing it)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the report needs the plotly package: pip install plotly")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "package_data" / "plotly.min.js"
        if path.is_file():
            return path.read_text(encoding="utf-8")
    raise RuntimeError("the plotly package has no package_data/plotly.min.js")


def axis_unit(column: str, rows: Sequence[Row]) -> tuple[str, Unit | None]:
    """A column's axis title (with the unit chosen for its values) and that unit."""
    quantity = quantity_of(column)
    if quantity is None:
        return heading(column), None
    unit = pick_unit(quantity, [as_number(r.get(column)) for r in rows])
    name = heading(column).split(" (")[0]
    return f"{name} ({unit.symbol})", unit


def scaled(row: Row, column: str, unit: Unit | None) -> float | None:
    """A row's value of `column` in `unit`."""
    value = as_number(row.get(column))
    return None if value is None else value * (unit.scale if unit else 1.0)


def hover_text(row: Row, params: Sequence[str], shown: Sequence[str]) -> str:
    """What hovering a point shows: its design, values with units, parameters, warnings."""
    from attnsim.reports.units import format_column

    lines = [f"<b>{_esc(design_of(row))}</b>"]
    lines += [f"{heading(c)}: {format_column(c, row.get(c))}" for c in shown if c in row]
    lines += [f"{heading(p)} = {_esc(row.get(p))}" for p in params if row.get(p) is not None]
    if not is_feasible(row):
        lines.append(f"<b>infeasible</b>: {_esc(str(row.get(VIOLATED, '')))[:160]}")
    if row.get(WARNINGS):
        lines.append(f"warnings: {_esc(str(row[WARNINGS]))[:160]}")
    lines.append(f"point {row.get('point_id', '')}")
    return "<br>".join(lines)


def design_colors(designs: Sequence[str]) -> dict[str, str]:
    """A color per design, stable in the given order."""
    return {d: COLORS[i % len(COLORS)] for i, d in enumerate(designs)}


def facets(
    panels: Sequence[tuple[str, list[Spec]]],
    x_title: str,
    y_title: str,
    *,
    log_x: Sequence[bool] = (),
    log_y: Sequence[bool] = (),
    columns: int | None = None,
    bars: bool = False,
) -> Spec:
    """A figure of panels in a grid, each with its own axes (workloads differ by decades).

    `panels` are (title, traces); traces get the panel's axes. `log_x`/`log_y` per panel.
    """
    n = max(len(panels), 1)
    cols = columns or min(MAX_COLUMNS, n)
    rows = math.ceil(n / cols)
    gap_x, gap_y = 0.06, 0.5 / (rows * PANEL_HEIGHT_PX / 100 + 1)
    width, height = (1 - gap_x * (cols - 1)) / cols, (1 - gap_y * (rows - 1)) / rows
    plot_px = rows * PANEL_HEIGHT_PX
    layout: Spec = {
        "height": plot_px + 130,
        "margin": {"l": 60, "r": 10, "t": 80, "b": 50},
        "hovermode": "closest",
        # above the first row's panel titles
        "legend": {"orientation": "h", "y": 1 + 24 / plot_px, "yanchor": "bottom", "x": 0},
        "annotations": [],
        "font": {"size": 11},
    }
    if bars:
        layout["barmode"] = "group"
    data: list[Spec] = []
    for i, (title, traces) in enumerate(panels):
        r, c = divmod(i, cols)
        x0, y1 = c * (width + gap_x), 1 - r * (height + gap_y)
        suffix = "" if i == 0 else str(i + 1)
        last_row = i + cols >= n
        layout[f"xaxis{suffix}"] = {
            "domain": [x0, x0 + width],
            "anchor": f"y{suffix}",
            "type": "log" if (log_x[i] if i < len(log_x) else False) else "-",
            "title": {"text": x_title if last_row else "", "font": {"size": 11}},
            "automargin": True,
        }
        layout[f"yaxis{suffix}"] = {
            "domain": [max(y1 - height, 0), y1],
            "anchor": f"x{suffix}",
            "type": "log" if (log_y[i] if i < len(log_y) else False) else "-",
            "title": {"text": y_title if c == 0 else "", "font": {"size": 11}},
            "automargin": True,
        }
        layout["annotations"].append(
            {
                "text": f"<b>{_esc(title)}</b>",
                "xref": "paper",
                "yref": "paper",
                "x": x0 + width / 2,
                "y": y1,
                "yanchor": "bottom",
                "showarrow": False,
                "font": {"size": 11},
            }
        )
        for trace in traces:
            data.append({**trace, "xaxis": f"x{suffix}", "yaxis": f"y{suffix}"})
    return {"data": data, "layout": layout}


def pareto_figure(
    rows: Sequence[Row],
    x: Objective,
    y: Objective,
    task: Sequence[str],
    label: Callable[[Row], str],
    params: Sequence[str],
    designs: Sequence[str],
) -> Spec:
    """One panel per workload group: points by design, infeasible as grey crosses, the front."""
    usable = [r for r in rows if as_number(r.get(x[0])) is not None]
    usable = [r for r in usable if as_number(r.get(y[0])) is not None]
    x_title, xu = axis_unit(x[0], usable)
    y_title, yu = axis_unit(y[0], usable)
    colors = design_colors(designs)
    shown = [x[0], y[0], "latency_s", "energy_pj", "area_um2"]
    shown = list(dict.fromkeys(shown))
    panels, log_x, log_y = [], [], []
    seen: set[str] = set()
    for group in by_workload(usable, task).values():
        traces: list[Spec] = []
        for design in designs:
            mine = [r for r in group if design_of(r) == design and is_feasible(r)]
            if mine:
                traces.append(_points(mine, x[0], y[0], xu, yu, params, shown, design, colors))
                traces[-1]["showlegend"] = design not in seen
                seen.add(design)
        bad = [r for r in group if not is_feasible(r)]
        if bad:
            trace = _points(bad, x[0], y[0], xu, yu, params, shown, "infeasible", {})
            trace["marker"] = {"symbol": "x", "color": "#9a9a9a", "size": 7}
            trace["showlegend"] = "infeasible" not in seen
            seen.add("infeasible")
            traces.append(trace)
        front = pareto_rows([r for r in group if is_feasible(r)], [x, y])
        if front:
            front = sorted(front, key=lambda r: float(r[x[0]]))
            traces.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "line": {"color": "black", "width": 1, "shape": "hv"},
                    "x": [scaled(r, x[0], xu) for r in front],
                    "y": [scaled(r, y[0], yu) for r in front],
                    "name": "Pareto front",
                    "legendgroup": "front",
                    "hoverinfo": "skip",
                    "showlegend": "front" not in seen,
                }
            )
            seen.add("front")
        panels.append((label(group[0]), traces))
        log_x.append(_spans([as_number(r.get(x[0])) for r in group]))
        log_y.append(_spans([as_number(r.get(y[0])) for r in group]))
    return facets(panels, x_title, y_title, log_x=log_x, log_y=log_y)


def _points(
    rows: Sequence[Row],
    x: str,
    y: str,
    xu: Unit | None,
    yu: Unit | None,
    params: Sequence[str],
    shown: Sequence[str],
    name: str,
    colors: Mapping[str, str],
) -> Spec:
    return {
        "type": "scatter",
        "mode": "markers",
        "name": name,
        "legendgroup": name,
        "x": [scaled(r, x, xu) for r in rows],
        "y": [scaled(r, y, yu) for r in rows],
        "text": [hover_text(r, params, shown) for r in rows],
        "hovertemplate": "%{text}<extra></extra>",
        "marker": {"color": colors.get(name, "#444"), "size": 8, "opacity": 0.8},
    }


def ratio_figure(
    compared: Sequence[Row], column: str, title: str, designs: Sequence[str], baseline: str
) -> Spec:
    """Grouped bars: `column` (a ratio to the baseline) per workload group, one bar per design."""
    colors = design_colors(designs)
    data = []
    for design in designs:
        mine = [r for r in compared if r["design"] == design and r.get(column) is not None]
        if not mine or design == baseline:
            continue
        data.append(
            {
                "type": "bar",
                "name": design,
                "x": [r["group"] for r in mine],
                "y": [r[column] for r in mine],
                "marker": {"color": colors[design]},
                "hovertemplate": f"<b>{_esc(design)}</b><br>%{{x}}<br>{title}: %{{y:.3g}}"
                "<extra></extra>",
            }
        )
    values = [float(v) for r in compared if (v := as_number(r.get(column))) and v > 0]
    log = bool(values) and max(values) / min(values) > 20
    layout: Spec = {
        "barmode": "group",
        "height": 380,
        "margin": {"l": 60, "r": 10, "t": 30, "b": 90},
        "yaxis": {"title": {"text": f"{title} vs {baseline}"}, "type": "log" if log else "-"},
        "xaxis": {"tickangle": -40, "automargin": True},
        "legend": {"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0},
        "shapes": [
            {
                "type": "line",
                "xref": "paper",
                "x0": 0,
                "x1": 1,
                "y0": 1,
                "y1": 1,
                "line": {"color": "black", "width": 1, "dash": "dash"},
            }
        ],
        "font": {"size": 11},
    }
    return {"data": data, "layout": layout}


def stacked_figure(
    panels: Sequence[tuple[str, Mapping[str, Mapping[str, float]]]], unit_column: str, title: str
) -> Spec:
    """Stacked bars, designs side by side in each panel: per design {part: value}."""
    totals = [sum(d.values()) for _, parts in panels for d in parts.values()]
    quantity = quantity_of(unit_column)
    unit = pick_unit(quantity, totals) if quantity else None
    keys: dict[str, float] = {}
    for _, parts in panels:
        for d in parts.values():
            for k, v in d.items():
                keys[k] = keys.get(k, 0.0) + v
    order = sorted(keys, key=lambda k: -keys[k])
    colors = {k: COLORS[i % len(COLORS)] for i, k in enumerate(order)}
    built = []
    for i, (label, parts) in enumerate(panels):
        traces = [
            {
                "type": "bar",
                "name": key,
                "legendgroup": key,
                "showlegend": i == 0,
                "x": list(parts),
                "y": [parts[d].get(key, 0.0) * (unit.scale if unit else 1.0) for d in parts],
                "marker": {"color": colors[key]},
                "hovertemplate": f"%{{x}}<br>{_esc(key)}: %{{y:.3g}} {unit.symbol if unit else ''}"
                "<extra></extra>",
            }
            for key in order
        ]
        built.append((label, traces))
    spec = facets(built, "", f"{title} ({unit.symbol})" if unit else title, bars=True)
    spec["layout"]["barmode"] = "stack"
    return spec


def _spans(values: Sequence[float | None], span: float = 50) -> bool:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return bool(finite) and min(finite) > 0 and max(finite) / min(finite) > span


def _esc(value: object) -> str:
    """Text for Plotly's HTML-ish labels: &, < and > escaped."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
