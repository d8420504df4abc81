"""The report sections that answer the study's question.

Versus the baseline, sensitivity per workload, breakdowns side by side, and the warnings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attnsim.reports.dse.feasibility import (
    FEASIBLE,
    WARNING_SEPARATOR,
    WARNINGS,
)
from attnsim.reports.page import html as h
from attnsim.reports.page.compare import (
    CROSSOVER,
    ENERGY_RATIO,
    GROUP,
    SPEEDUP,
    crossovers,
    geometric_means,
    has_ratios,
)
from attnsim.reports.page.interactive import (
    axis_unit,
    design_colors,
    facets,
    hover_text,
    ratio_figure,
    scaled,
    stacked_figure,
)
from attnsim.reports.page.report_data import (
    by_workload,
    design_of,
    heading,
    result_for,
    traffic_by_tensor,
    value_key,
)
from attnsim.reports.page.report_model import (
    MAX_PANELS,
    Page,
    csv_links,
    informative,
    order_key,
    share,
)
from attnsim.reports.page.report_page import (
    plot_div,
    project,
    section,
    shown_table,
    slug,
    unit_table,
)
from attnsim.reports.page.tables import write_csv


def _crossover_part(page: Page) -> list[Any]:
    """The crossover table (designs overtaking the baseline along seq_len), if any."""
    rows = crossovers(page.compared, page.baseline)
    if not rows:
        return []
    cols = ["design", "workload", CROSSOVER, "slower_at", "speedup_before", "speedup_after",
            "verdict"]  # fmt: skip
    cols = [c for c in cols if any(r.get(c) is not None for r in rows)]
    rows = [{c: r.get(c) for c in cols} for r in rows]
    write_csv(page.out_dir / "crossover.csv", rows, cols)
    return [
        h.tag("h3", "Crossover length"),
        h.tag(
            "p",
            "The shortest swept length from which each design is faster than the "
            f"baseline ({page.baseline}) at that and every longer length, per workload; the "
            "crossover lies between the two lengths shown.",
            class_="note",
        ),  # fmt: skip
        unit_table(rows, cols),
    ]


def baseline_section(page: Page) -> h.Markup:
    """Speedup and energy ratio of each design against the baseline, per workload group."""
    title = f"Versus the baseline: {page.baseline}" if page.baseline else "Versus the baseline"
    if not has_ratios(page.compared):
        text = (
            "Only one design has feasible points, so there is nothing to compare."
            if len(page.designs) < 2
            else f"The baseline {page.baseline} has no feasible point in a workload group that "
            "another design also has."
        )
        return section("baseline", title, [h.tag("p", text)])
    caption = (
        f"Each design's fastest feasible point in each workload group against the baseline's "
        f"({page.baseline}; the experiment's `baseline:`, else its first design)"
    )
    means = geometric_means(page.compared)
    mean_rows = [
        {"design": d, SPEEDUP: means[d].get(SPEEDUP), ENERGY_RATIO: means[d].get(ENERGY_RATIO),
         "groups": int(means[d]["groups"])}
        for d in page.designs if d in means
    ]  # fmt: skip
    columns = [GROUP, "design", SPEEDUP, ENERGY_RATIO, "latency_s", "energy_pj", "area_um2",
               *page.other_params, FEASIBLE, "point_id"]  # fmt: skip
    columns = [c for c in columns if any(r.get(c) is not None for r in page.compared)]
    write_csv(page.out_dir / "baseline.csv", project(page.compared, columns), columns)
    body = [
        plot_div("speedup", ratio_figure(page.compared, SPEEDUP, "Speedup", page.designs,
                 page.baseline), f"Speedup (baseline latency / design latency). {caption}."),
        plot_div("energy-ratio", ratio_figure(page.compared, ENERGY_RATIO, "Energy ratio",
                 page.designs, page.baseline),
                 f"Energy ratio (design energy / baseline energy; below 1 saves energy). "
                 f"{caption}."),
        h.tag("h3", "Geometric means over the workload groups"),
        unit_table(mean_rows, ["design", SPEEDUP, ENERGY_RATIO, "groups"]),
        *_crossover_part(page),
        h.tag("h3", "Per workload group"),
        shown_table(page.compared, columns, 10**9, "baseline-table"),
        h.tag("p", "Also as ", csv_links(page, "baseline.csv", page.compared, columns), ".",
              class_="note"),
    ]  # fmt: skip
    return section("baseline", title, body)


def sensitivity_section(page: Page) -> h.Markup:
    """Per varied non-workload parameter and objective: one panel per group where it varies."""
    blocks: list[object] = []
    objectives = [c for c, _ in page.objectives if informative(page.rows, c)][:2]
    colors = design_colors(page.designs)
    for parameter in [p for p in page.varied if p in page.other_params]:
        for objective in objectives:
            spec = sensitivity_figure(page, parameter, objective, colors)
            if spec is None:
                continue
            name = f"sensitivity-{slug(parameter)}-{slug(objective)}"
            blocks.append(plot_div(name, spec, (
                f"{heading(objective)} against {heading(parameter)}, per workload group where "
                "it varies: each design's best feasible value at each setting (over the other "
                "parameters); hover for the point.")))  # fmt: skip
    if not blocks:
        blocks.append(h.tag("p", "No parameter besides the workload varies within a workload."))
    return section("sensitivity", "Sensitivity to swept parameters", blocks)


def sensitivity_figure(
    page: Page, parameter: str, objective: str, colors: Mapping[str, str]
) -> dict[str, Any] | None:
    """Panels of `objective` against `parameter` per group where it varies (None: nowhere)."""
    panels = []
    y_title, unit = axis_unit(objective, page.ranked)
    seen: set[str] = set()
    for group in list(by_workload(page.ranked, page.task).values())[:MAX_PANELS]:
        rows = [r for r in group if r.get(parameter) is not None and r.get(objective) is not None]
        if len({value_key(r[parameter]) for r in rows}) < 2:
            continue
        traces = []
        for design in page.designs:
            best: dict[Any, Mapping[str, Any]] = {}
            for r in rows:
                if design_of(r) != design:
                    continue
                k = value_key(r[parameter])
                if k not in best or float(r[objective]) < float(best[k][objective]):
                    best[k] = r
            if not best:
                continue
            ordered = sorted(best.values(), key=lambda r: order_key(r[parameter]))
            traces.append({
                "type": "scatter", "mode": "lines+markers", "name": design, "legendgroup": design,
                "showlegend": design not in seen, "marker": {"color": colors[design]},
                "line": {"color": colors[design]},
                "x": [str(r[parameter]) for r in ordered],
                "y": [scaled(r, objective, unit) for r in ordered],
                "text": [hover_text(r, page.other_params, [objective]) for r in ordered],
                "hovertemplate": "%{text}<extra></extra>",
            })  # fmt: skip
            seen.add(design)
        panels.append((page.label(group[0]), traces))
    if not panels:
        return None
    return facets(panels, heading(parameter), y_title)


def breakdowns_section(page: Page) -> h.Markup:
    """Energy by component and traffic by tensor of the compared points, designs side by side."""
    energy, traffic, latency = [], [], []
    for group in list(by_workload(page.compared, [GROUP]).values())[:MAX_PANELS]:
        e_parts, t_parts = {}, {}
        for row in group:
            result = result_for(row, page.data.results)
            if result is None:
                continue
            e_parts[str(row["design"])] = result.energy_by_component()
            t_parts[str(row["design"])] = traffic_by_tensor(result)
            latency.append({GROUP: row[GROUP], "design": row["design"],
                            "latency_s": result.latency_s,
                            "compute_s": result.latency_s * share(result, "compute_cycles"),
                            "memory_s": result.latency_s * share(result, "memory_cycles"),
                            "bound": result.bound,
                            **{f"util.{u.unit}": u.utilization for u in result.units}})  # fmt: skip
        if e_parts:
            energy.append((str(group[0][GROUP]), e_parts))
            traffic.append((str(group[0][GROUP]), t_parts))
    title = "Breakdowns of the compared points"
    if not energy:
        nothing = "No result records match the compared points, so there is nothing to break down."
        return section("breakdowns", title, [h.tag("p", nothing)])
    columns = list(dict.fromkeys(k for r in latency for k in r))
    body = [
        h.tag("p", "Each design's fastest feasible point per workload group (as compared with "
              "the baseline), side by side.", class_="note"),
        plot_div("breakdown-energy", stacked_figure(energy, "energy_pj", "Energy"),
                 "Energy by component"),
        plot_div("breakdown-traffic", stacked_figure(traffic, "traffic_bytes", "DRAM traffic"),
                 "DRAM traffic by tensor (read + written)"),
        h.tag("h3", "Latency: compute and memory time, array utilization"),
        shown_table(latency, columns, 10**9, "latency-table"),
    ]  # fmt: skip
    return section("breakdowns", title, body)


def warnings_section(page: Page) -> h.Markup:
    """Each distinct modelling warning, how many points and which designs it touches."""
    found: dict[str, dict[str, Any]] = {}
    for row in page.rows:
        for warning in str(row.get(WARNINGS) or "").split(WARNING_SEPARATOR):
            if warning:
                entry = found.setdefault(warning, {"warning": warning, "points": 0, "d": {}})
                entry["points"] += 1
                entry["d"].setdefault(design_of(row), None)
    rows = [{**e, "designs": ", ".join(e.pop("d"))} for e in found.values()]
    rows.sort(key=lambda e: -e["points"])
    title = f"Warnings ({len(rows)} distinct)"
    if not rows:
        return section("warnings", title, [h.tag("p", "No point carries a modelling warning.")])
    note = h.tag("p", "What the models assumed or approximated, per point in the "
                 "`warnings` column of results.csv.", class_="note")  # fmt: skip
    table = unit_table(rows, ["warning", "points", "designs"], "warnings-table")
    return section("warnings", title, [note, h.tag("div", table, class_="warn")])
