"""The study's question: each design against the experiment's baseline, workload by workload.

Points are compared only within one workload group (the workload and its sizes: a design is
not better for running a smaller problem). Within a group each design is represented by its
fastest feasible point; its speedup is the baseline's latency over its own, its energy ratio
its energy over the baseline's. Infeasible points never represent a design.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from attnsim.reports.dse.feasibility import feasible_rows
from attnsim.reports.page.report_data import (
    Row,
    as_number,
    by_workload,
    design_of,
    has_numbers,
    has_text,
    unique_values,
    workload_parameters,
)

SPEEDUP = "speedup"  # baseline latency / design latency (> 1: faster than the baseline)
ENERGY_RATIO = "energy_ratio"  # design energy / baseline energy (< 1: less energy)
GROUP = "group"  # the group's label, e.g. "BERT · 16K"


def group_columns(rows: Sequence[Row]) -> list[str]:
    """The columns that name a workload group.

    `workload` and `seq_len` (every stored row has them, whether the sweep varied them or a
    block fixed them), then any other varied `point.workload.*` value; for rows without those
    columns (tables from elsewhere), the varied `point.workload*` values.
    """
    columns = [c for c in ("workload", "seq_len") if has_text(rows, c)]
    covered = {"point.workload", "point.workload.seq_len"} if columns else set()
    return columns + [p for p in workload_parameters(rows) if p not in covered]


def group_label(row: Row, columns: Sequence[str]) -> str:
    """A group's name: its values joined by ' · ', lengths as 1K/4K/1M."""
    return " · ".join(_short(row.get(c)) for c in columns) or "all points"


def design_order(rows: Sequence[Row], baseline: str) -> list[str]:
    """Designs in first-seen order, the baseline first."""
    designs = [str(d) for d in unique_values(design_of(r) for r in rows)]
    return ([baseline] if baseline in designs else []) + [d for d in designs if d != baseline]


def compare_to_baseline(
    rows: Sequence[Row], columns: Sequence[str], baseline: str
) -> list[dict[str, Any]]:
    """One row per (group, design): the design's fastest feasible point in the group.

    Each has `speedup` and `energy_ratio` against the baseline's (None when the baseline has no
    feasible point there), groups in first-seen order, designs baseline first.
    """
    order = design_order(rows, baseline)
    out: list[dict[str, Any]] = []
    for group in by_workload(feasible_rows(rows), columns).values():
        fastest: dict[str, Row] = {}
        for row in group:
            latency = as_number(row.get("latency_s"))
            if latency is None:
                continue
            design = design_of(row)
            best = fastest.get(design)
            if best is None or latency < float(best["latency_s"]):
                fastest[design] = row
        base = fastest.get(baseline)
        for design in order:
            chosen = fastest.get(design)
            if chosen is None:
                continue
            out.append(
                {
                    **chosen,
                    GROUP: group_label(chosen, columns),
                    "design": design,
                    SPEEDUP: _ratio(base, chosen, "latency_s") if base else None,
                    ENERGY_RATIO: _ratio(chosen, base, "energy_pj") if base else None,
                }
            )
    return out


def geometric_means(compared: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Per design: geometric-mean speedup and energy ratio over the groups that have both."""
    values: dict[str, dict[str, list[float]]] = {}
    for row in compared:
        for key in (SPEEDUP, ENERGY_RATIO):
            value = as_number(row.get(key))
            if value is not None and value > 0:
                values.setdefault(str(row["design"]), {}).setdefault(key, []).append(value)
    return {
        design: {k: math.exp(sum(map(math.log, v)) / len(v)) for k, v in ratios.items()}
        | {"groups": float(max(len(v) for v in ratios.values()))}
        for design, ratios in values.items()
    }


CROSSOVER = "crossover_seq_len"  # the shortest swept length from which a design stays faster


def crossovers(compared: Sequence[Mapping[str, Any]], baseline: str) -> list[dict[str, Any]]:
    """Per design and workload swept over `seq_len`: where it overtakes the baseline.

    Within one workload (the group without its length), the design's speedups in length
    order: the crossover is the shortest swept length from which the design is faster than
    the baseline (speedup > 1) at that and every longer length. `crossover_seq_len` is None
    when it never is, or is faster at every length (`verdict` says which); `slower_at` and
    `faster_at` are the swept lengths on either side of the crossover, with their speedups.
    Only workloads with at least two lengths where both the design and the baseline have a
    point are listed.
    """
    series: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for row in compared:
        design, length = str(row["design"]), as_number(row.get("seq_len"))
        speedup = as_number(row.get(SPEEDUP))
        if design == baseline or length is None or speedup is None:
            continue
        series.setdefault((design, str(row.get("workload", ""))), []).append((length, speedup))
    out = []
    for (design, workload), points in series.items():
        points.sort()
        if len(points) < 2:
            continue
        at = next((i for i in range(len(points)) if all(sp > 1 for _, sp in points[i:])), None)
        found: dict[str, Any] = {"design": design, "workload": workload, CROSSOVER: None}
        if at is None:
            found["verdict"] = f"slower than {baseline} at the longest length"
        elif at == 0:
            found["verdict"] = f"faster than {baseline} at every length"
        else:
            (before, sp_before), (after, sp_after) = points[at - 1], points[at]
            found.update({CROSSOVER: int(after), "slower_at": int(before),
                        "speedup_before": sp_before, "speedup_after": sp_after,
                        "verdict": f"overtakes {baseline} between {_short(before)} and "
                                   f"{_short(after)} tokens"})  # fmt: skip
        out.append(found)
    return out


def has_ratios(compared: Sequence[Row]) -> bool:
    """Whether any design has a ratio (a baseline point and another design share a group)."""
    return has_numbers(compared, SPEEDUP) and len({r["design"] for r in compared}) > 1


def _ratio(numerator: Row, denominator: Row, column: str) -> float | None:
    top, bottom = as_number(numerator.get(column)), as_number(denominator.get(column))
    if top is None or bottom is None or bottom == 0:
        return None
    return top / bottom


def _short(value: Any) -> str:
    number = as_number(value)
    if number is not None and number.is_integer() and number >= 1024:
        n = int(number)
        for size, suffix in ((2**30, "G"), (2**20, "M"), (2**10, "K")):
            if n % size == 0:
                return f"{n // size}{suffix}"
    if number is not None and number.is_integer():
        return str(int(number))
    return "" if value is None else str(value)
