"""The design-space report's figures: Pareto fronts, sensitivity and breakdowns.

Each takes result rows (or labelled `Result` records) and an optional Axes or Figure, and
returns it; matplotlib is imported only inside the functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnsim.mappers.result import Result
from attnsim.reports.dse.feasibility import feasible_rows, is_feasible
from attnsim.reports.dse.pareto import Objective, pareto_rows
from attnsim.reports.page import html as h
from attnsim.reports.page.report_data import (
    Row,
    as_number,
    by_workload,
    design_of,
    einsum_cycles,
    heading,
    traffic_by_tensor,
    unique_values,
    value_key,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

SENSITIVITY_PANELS = 4  # objectives per sensitivity figure


# -- figures (each takes rows and an optional Axes or Figure, and returns it)


def pareto_plot(
    rows: Sequence[Row],
    x: Objective,
    y: Objective,
    ax: Axes | None = None,
    task: Sequence[str] = (),
) -> Axes:
    """Every point (colored by design) and the Pareto front of objectives `x` and `y`.

    With `task` columns, there is one front within each workload group. Infeasible points
    (marked by `reports.dse.feasibility`) are grey crosses and never on a front.
    """
    ax = ax if ax is not None else new_figure((6.4, 4.6)).add_subplot()
    usable = [
        r for r in rows if as_number(r.get(x[0])) is not None and as_number(r.get(y[0])) is not None
    ]
    feasible = feasible_rows(usable)
    colors = _design_colors(usable)
    for design, color in colors.items():
        mine = [r for r in feasible if design_of(r) == design]
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
    if len(feasible) < len(usable):
        others = [r for r in usable if not is_feasible(r)]
        ax.scatter(
            [float(r[x[0]]) for r in others],
            [float(r[y[0]]) for r in others],
            s=16,
            marker="x",
            color="0.6",
            linewidths=0.8,
            label=f"infeasible ({len(others)})",
            rasterized=len(usable) > 2000,
        )
    fronts = [pareto_rows(g, [x, y]) for g in by_workload(feasible, task).values()]
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
    _auto_log(ax, "x", [as_number(r[x[0]]) for r in usable])
    _auto_log(ax, "y", [as_number(r[y[0]]) for r in usable])
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
    ax = ax if ax is not None else new_figure((5.0, 3.6)).add_subplot()
    usable = [
        r for r in rows if r.get(parameter) is not None and as_number(r.get(objective)) is not None
    ]
    values = unique_values(r[parameter] for r in usable)
    numeric = all(as_number(v) is not None for v in values)
    order = sorted(values, key=lambda v: float(v)) if numeric else values  # sweep order
    position = {value_key(v): float(v) if numeric else float(i) for i, v in enumerate(order)}
    groups: dict[str, list[Row]] = {}
    for row in usable:
        groups.setdefault(design_of(row), []).append(row)
    if all(len({value_key(r[parameter]) for r in g}) == 1 for g in groups.values()):
        groups = {"all designs": list(usable)}  # the parameter picks the design: one line
    colors = _palette(len(groups))
    for (label, group), color in zip(groups.items(), colors, strict=True):
        by_value: dict[Any, list[float]] = {}
        for row in group:
            by_value.setdefault(value_key(row[parameter]), []).append(float(row[objective]))
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
    fig = fig if fig is not None else new_figure((4.2 * len(objectives), 3.6))
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
    fig = fig if fig is not None else new_figure((13.0, 0.9 + 0.6 * max(len(results), 2)))
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


def save_faceted_pareto(
    rows: Sequence[Row],
    x: Objective,
    y: Objective,
    task: Sequence[str],
    label: Callable[[Row], str],
    path_stem: Path,
    formats: Sequence[str] = ("png",),
) -> list[Path]:
    """The Pareto plot of `x` and `y` with one panel per workload group, for papers.

    Written as `path_stem.<format>` for each format (png, svg, pdf); returns the paths.
    """
    groups = list(by_workload(rows, task).values())
    cols = min(4, max(len(groups), 1))
    n_rows = math.ceil(len(groups) / cols) if groups else 1
    fig = new_figure((4.0 * cols, 3.2 * n_rows))
    axes = fig.subplots(n_rows, cols, squeeze=False).ravel()
    for ax, group in zip(axes, groups, strict=False):
        pareto_plot(group, x, y, ax)
        ax.set_title(label(group[0]), fontsize="medium")
        ax.tick_params(labelsize="small")
        if ax is not axes[0] and ax.get_legend() is not None:
            ax.get_legend().remove()
    for ax in axes[len(groups) :]:
        ax.set_visible(False)
    written = []
    for fmt in formats:
        path = path_stem.with_suffix(f".{fmt}")
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format=fmt, dpi=150)
        written.append(path)
    return written


# -- drawing helpers


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
    designs = unique_values(design_of(r) for r in rows)
    return dict(zip(designs, _palette(len(designs)), strict=True))


def _auto_log(ax: Axes, axis: str, values: Iterable[float | None], span: float = 50) -> None:
    """A log scale when every value is positive and they span more than `span` times."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if finite and min(finite) > 0 and max(finite) / min(finite) > span:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")


def _direction_hint(direction: str) -> str:
    return "  (lower is better)" if direction == "min" else "  (higher is better)"


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def new_figure(size: tuple[float, float]) -> Figure:
    """A matplotlib Figure of `size` inches with the constrained layout (no pyplot state)."""
    from matplotlib.figure import Figure

    return Figure(figsize=size, layout="constrained")


def _new_axes(size: tuple[float, float]) -> Axes:
    return new_figure(size).add_subplot()


def figure_of(ax: Axes) -> Figure:
    """The figure `ax` belongs to."""
    figure = ax.get_figure(root=True)
    if figure is None:
        raise ValueError("axes belong to no figure")
    return figure
