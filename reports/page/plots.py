"""Figures of the FuseMax paper (Figures 6-12) drawn from result rows.

Each function takes rows (per table, keyed by table name such as `attn-flat`, or the rows
of one table) and an optional matplotlib Axes or Figure to draw into, and returns it.
matplotlib is imported inside the functions and never configured globally: figures are
built as `matplotlib.figure.Figure` objects, which render with Agg without pyplot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from attnsim.reports.page.tables import Cell

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

Rows = Sequence[Mapping[str, Cell]]
RowsByTable = Mapping[str, Rows]
Point = tuple[str, str]  # (model, seq_len)

DPI = 150
WIDE = (12.0, 4.5)  # inches: the per model x length bar charts
TALL = (12.0, 7.0)  # inches: two stacked bar panels (Figure 6)
PARETO = (10.0, 4.0)  # inches: the two Pareto panels (Figure 12)

# (legend label, table) of each attention design, in the paper's order.
ATTENTION_DESIGNS = (
    ("Unfused", "attn-unfused"),
    ("FLAT", "attn-flat"),
    ("+Cascade", "attn-cascade"),
    ("+Architecture", "attn-arch"),
    ("+Binding (FuseMax)", "attn-binding"),
)
# (label, attention table, table of the rest of the layer) for end-to-end figures.
END_TO_END_DESIGNS = (
    ("Unfused", "attn-unfused", "end2end-flat"),
    ("FLAT", "attn-flat", "end2end-flat"),
    ("FuseMax", "attn-binding", "end2end-proposal"),
)
EINSUM_COLORS = {
    "QK": "tab:blue",
    "AV": "tab:orange",
    "LM": "tab:green",
    "SLN": "tab:red",
    "SLD": "tab:purple",
    "SLNV": "tab:brown",
}


def seq_len_tokens(seq_len: Cell) -> int:
    """A length label as a token count: "4K" is 4096, "1M" is 1048576, 512 is 512."""
    text = str(seq_len).strip().upper()
    scale = {"K": 2**10, "M": 2**20}.get(text[-1:], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def fig6_utilization(rows_by_table: RowsByTable, fig: Figure | None = None) -> Figure:
    """Figure 6: 1D (top) and 2D (bottom) array utilization of unfused, FLAT and FuseMax."""
    fig = fig if fig is not None else _new_figure(TALL)
    designs = [ATTENTION_DESIGNS[0], ATTENTION_DESIGNS[1], ("FuseMax", "attn-binding")]
    top, bottom = fig.subplots(2, 1, sharex=True)
    for ax, column, unit in ((top, "util_1d", "1D"), (bottom, "util_2d", "2D")):
        series = {
            label: _column(rows_by_table, table, column, _points(rows_by_table))
            for label, table in designs
            if table in rows_by_table
        }
        _grouped_bars(ax, _points(rows_by_table), series, show_groups=ax is bottom)
        ax.set_ylabel(f"{unit} array utilization")
        ax.set_ylim(0, 1.05)
        ax.set_title(f"{unit} PE array utilization")
    top.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    fig.suptitle("Figure 6: compute array utilization per model and sequence length")
    return fig


def fig7_einsum_utilization(
    rows_by_table: RowsByTable, model: str = "BERT", ax: Axes | None = None
) -> Axes:
    """Figure 7: per-Einsum 2D utilization of one model, stacked, per sequence length."""
    ax = ax if ax is not None else _new_axes(WIDE)
    designs = (
        ("FLAT", "attn-flat", ("QK", "AV")),
        ("+Arch", "attn-arch", ("QK", "LM", "SLN", "SLD", "SLNV")),
        ("FuseMax", "attn-binding", ("QK", "LM", "SLN", "SLD", "SLNV")),
    )
    present = [design for design in designs if design[1] in rows_by_table]
    lengths = [s for m, s in _points(rows_by_table) if m == model]
    if not present or not lengths:
        raise ValueError(f"no per-Einsum utilization rows for {model}")
    width = 0.8 / len(present)
    ticks: list[float] = []
    tick_labels: list[str] = []
    labelled: set[str] = set()
    for group, seq_len in enumerate(lengths):
        for slot, (label, table, einsums) in enumerate(present):
            x = group + (slot - (len(present) - 1) / 2) * width
            row = _index(rows_by_table[table]).get((model, seq_len), {})
            bottom = 0.0
            for einsum in einsums:
                height = _number(row.get(einsum))
                if height is None:
                    continue
                ax.bar(
                    x,
                    height,
                    width * 0.9,
                    bottom=bottom,
                    color=EINSUM_COLORS[einsum],
                    label=None if einsum in labelled else einsum,
                )
                labelled.add(einsum)
                bottom += height
            ticks.append(x)
            tick_labels.append(label)
    ax.set_xticks(ticks, tick_labels, rotation=90, fontsize="small")
    _group_labels(ax, list(range(len(lengths))), lengths, "Sequence length (tokens)", pad=48)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("2D array utilization")
    ax.set_title(f"Figure 7: 2D array utilization by Einsum, {model} (stacked)")
    ax.legend(title="Einsum", loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    return ax


def fig8_attention_speedup(rows_by_table: RowsByTable, ax: Axes | None = None) -> Axes:
    """Figure 8: attention speedup over unfused (unfused latency / design latency)."""
    return _normalized_bars(
        rows_by_table,
        "latency",
        base_over_design=True,
        ylabel="Speedup over unfused (×)",
        title="Figure 8: attention speedup normalized to unfused",
        ax=ax,
    )


def fig9_attention_energy(rows_by_table: RowsByTable, ax: Axes | None = None) -> Axes:
    """Figure 9: attention energy normalized to unfused (design energy / unfused energy)."""
    return _normalized_bars(
        rows_by_table,
        "energy",
        base_over_design=False,
        ylabel="Energy / unfused energy",
        title="Figure 9: attention energy normalized to unfused",
        ax=ax,
    )


def fig10_end2end_speedup(rows_by_table: RowsByTable, ax: Axes | None = None) -> Axes:
    """Figure 10: end-to-end (attention + rest of layer) speedup over FLAT."""
    return _end_to_end_bars(
        rows_by_table,
        "latency",
        base_over_design=True,
        ylabel="End-to-end speedup over FLAT (×)",
        title="Figure 10: end-to-end speedup normalized to FLAT",
        ax=ax,
    )


def fig11_end2end_energy(rows_by_table: RowsByTable, ax: Axes | None = None) -> Axes:
    """Figure 11: end-to-end (attention + rest of layer) energy normalized to FLAT."""
    return _end_to_end_bars(
        rows_by_table,
        "energy",
        base_over_design=False,
        ylabel="End-to-end energy / FLAT energy",
        title="Figure 11: end-to-end energy normalized to FLAT",
        ax=ax,
    )


def fig12_pareto(rows: Rows, fig: Figure | None = None, seq_len: str = "256K") -> Figure:
    """Figure 12: FuseMax area (µm²) and latency (s) as the PE array side varies (log axes).

    `rows` are the `pareto` table's rows (model, PE_dim, latency, area, ...).
    """
    from matplotlib.ticker import NullLocator

    fig = fig if fig is not None else _new_figure(PARETO)
    area_ax, latency_ax = fig.subplots(1, 2)
    all_sides = sorted({int(_number(row.get("PE_dim")) or 0) for row in rows})
    models = _unique(str(row["model"]) for row in rows)
    markers = "osD^v<>"
    for index, model in enumerate(models):
        points = sorted(
            (int(_number(row["PE_dim"]) or 0), row) for row in rows if row["model"] == model
        )
        sides = [side for side, _ in points]
        style = {"marker": markers[index % len(markers)], "label": model}
        area_ax.plot(sides, [_number(row.get("area")) for _, row in points], **style)
        latency_ax.plot(sides, [_number(row.get("latency")) for _, row in points], **style)
    for ax, ylabel, title in (
        (area_ax, "Area (µm²)", "Chip area"),
        (latency_ax, "Attention latency (s)", f"Latency at {seq_len} tokens"),
    ):
        ax.set_xscale("log", base=2)
        ax.set_xticks(all_sides, [str(side) for side in all_sides])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_yscale("log")
        ax.set_xlabel("PE array side (PEs per row = rows)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(title="Model", fontsize="small")
    fig.suptitle(f"Figure 12: FuseMax area-latency trade-off vs PE array side, {seq_len}")
    return fig


def save_all(rows_by_table: RowsByTable, out_dir: Path | str) -> list[Path]:
    """Render every figure whose tables are present into `out_dir` as PNG; the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = set(rows_by_table)
    jobs: list[tuple[str, set[str], Callable[[], Figure]]] = [
        (
            "fig6-utilization",
            {"attn-unfused", "attn-flat", "attn-binding"},
            lambda: fig6_utilization(rows_by_table),
        ),
        (
            "fig8-attention-speedup",
            {"attn-unfused"},
            lambda: _figure_of(fig8_attention_speedup(rows_by_table)),
        ),
        (
            "fig9-attention-energy",
            {"attn-unfused"},
            lambda: _figure_of(fig9_attention_energy(rows_by_table)),
        ),
        (
            "fig10-end2end-speedup",
            {"attn-flat", "end2end-flat", "attn-binding", "end2end-proposal"},
            lambda: _figure_of(fig10_end2end_speedup(rows_by_table)),
        ),
        (
            "fig11-end2end-energy",
            {"attn-flat", "end2end-flat", "attn-binding", "end2end-proposal"},
            lambda: _figure_of(fig11_end2end_energy(rows_by_table)),
        ),
        ("fig12-pareto", {"pareto"}, lambda: fig12_pareto(rows_by_table["pareto"])),
    ]
    models = _unique(model for model, _ in _points(rows_by_table))
    if "attn-binding" in tables and "BERT" in models:
        jobs.insert(
            1,
            (
                "fig7-einsum-utilization",
                {"attn-binding"},
                lambda: _figure_of(fig7_einsum_utilization(rows_by_table)),
            ),
        )
    written = []
    for name, needs, draw in jobs:
        if needs <= tables and any(rows_by_table[table] for table in needs):
            path = out_dir / f"{name}.png"
            draw().savefig(path, dpi=DPI)
            written.append(path)
    return written


def _normalized_bars(
    rows_by_table: RowsByTable,
    column: str,
    *,
    base_over_design: bool,
    ylabel: str,
    title: str,
    ax: Axes | None,
) -> Axes:
    ax = ax if ax is not None else _new_axes(WIDE)
    points = _points(rows_by_table, "attn-unfused")
    base = _column(rows_by_table, "attn-unfused", column, points)
    series = {}
    for label, table in ATTENTION_DESIGNS:
        if table in rows_by_table:
            values = _column(rows_by_table, table, column, points)
            series[label] = _ratios(base, values, base_over_design)
    _grouped_bars(ax, points, series)
    _finish(ax, ylabel, title)
    return ax


def _end_to_end_bars(
    rows_by_table: RowsByTable,
    column: str,
    *,
    base_over_design: bool,
    ylabel: str,
    title: str,
    ax: Axes | None,
) -> Axes:
    ax = ax if ax is not None else _new_axes(WIDE)
    points = _points(rows_by_table, "attn-flat")
    totals = {
        label: _sums(
            _column(rows_by_table, attention, column, points),
            _column(rows_by_table, rest, column, points),
        )
        for label, attention, rest in END_TO_END_DESIGNS
        if attention in rows_by_table and rest in rows_by_table
    }
    if "FLAT" not in totals:
        raise ValueError("end-to-end figures need tables attn-flat and end2end-flat")
    series = {
        label: _ratios(totals["FLAT"], values, base_over_design) for label, values in totals.items()
    }
    _grouped_bars(ax, points, series)
    _finish(ax, ylabel, title)
    return ax


def _grouped_bars(
    ax: Axes,
    points: Sequence[Point],
    series: Mapping[str, Sequence[float | None]],
    show_groups: bool = True,
) -> None:
    """One bar per series at each (model, seq_len); lengths as ticks, models beneath."""
    positions = _positions(points)
    width = 0.8 / max(len(series), 1)
    for slot, (label, values) in enumerate(series.items()):
        offset = (slot - (len(series) - 1) / 2) * width
        xs = [x + offset for x, value in zip(positions, values, strict=True) if value is not None]
        heights = [value for value in values if value is not None]
        ax.bar(xs, heights, width * 0.95, label=label)
    ax.set_xticks(positions, [seq_len for _, seq_len in points], fontsize="small")
    ax.set_xlim(min(positions, default=0) - 0.6, max(positions, default=0) + 0.6)
    if show_groups:
        models = _unique(model for model, _ in points)
        centers = [
            sum(x for x, (m, _) in zip(positions, points, strict=True) if m == model)
            / sum(1 for m, _ in points if m == model)
            for model in models
        ]
        _group_labels(ax, centers, models, "Model, by sequence length (tokens)", pad=16)


def _group_labels(
    ax: Axes, centers: Sequence[float], labels: Sequence[str], xlabel: str, pad: float
) -> None:
    """A second row of x labels (`pad` points below the axis) naming each bar group."""
    groups = ax.secondary_xaxis("bottom")
    groups.set_xticks(centers, labels, fontweight="bold")
    groups.tick_params(axis="x", length=0, pad=pad)
    groups.set_xlabel(xlabel)


def _finish(ax: Axes, ylabel: str, title: str) -> None:
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")


def _positions(points: Sequence[Point]) -> list[float]:
    """Bar-group centers: one unit apart, with an extra half unit between models."""
    positions: list[float] = []
    x = 0.0
    for index, (model, _) in enumerate(points):
        if index and points[index - 1][0] != model:
            x += 0.5
        positions.append(x)
        x += 1.0
    return positions


def _points(rows_by_table: RowsByTable, first: str | None = None) -> list[Point]:
    """(model, seq_len) points of the tables, models in first-seen order, lengths sorted."""
    names = [first] if first is not None else list(rows_by_table)
    if first is not None and first not in rows_by_table:
        raise ValueError(f"this figure needs table {first!r}")
    seen = {
        (str(row["model"]), str(row["seq_len"]))
        for name in names
        for row in rows_by_table[name]
        if "model" in row and "seq_len" in row
    }
    models = _unique(
        str(row["model"])
        for name in names
        for row in rows_by_table[name]
        if "model" in row and "seq_len" in row
    )
    order = {model: index for index, model in enumerate(models)}
    return sorted(seen, key=lambda point: (order[point[0]], seq_len_tokens(point[1])))


def _column(
    rows_by_table: RowsByTable, table: str, column: str, points: Sequence[Point]
) -> list[float | None]:
    index = _index(rows_by_table.get(table, ()))
    return [_number(index.get(point, {}).get(column)) for point in points]


def _index(rows: Rows) -> dict[Point, Mapping[str, Cell]]:
    return {(str(row.get("model")), str(row.get("seq_len"))): row for row in rows}


def _ratios(
    base: Sequence[float | None], values: Sequence[float | None], base_over_value: bool
) -> list[float | None]:
    ratios: list[float | None] = []
    for b, v in zip(base, values, strict=True):
        if b is None or v is None or (v if base_over_value else b) == 0:
            ratios.append(None)
        else:
            ratios.append(b / v if base_over_value else v / b)
    return ratios


def _sums(a: Sequence[float | None], b: Sequence[float | None]) -> list[float | None]:
    return [None if x is None or y is None else x + y for x, y in zip(a, b, strict=True)]


def _number(value: Cell | None) -> float | None:
    if value is None or isinstance(value, str):
        return None
    return float(value)


def _unique(items: Iterable[str]) -> list[str]:
    found: dict[str, None] = {}
    for item in items:
        found.setdefault(item, None)
    return list(found)


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
