"""The report page's model: what its sections are drawn from (rows marked, groups, baseline).

Also the small helpers the sections share.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attnsim.reports.dse.feasibility import (
    Tally,
    feasible_rows,
    mark_rows,
    tally,
)
from attnsim.reports.dse.pareto import Objective
from attnsim.reports.page import html as h
from attnsim.reports.page.compare import (
    compare_to_baseline,
    design_order,
    group_columns,
    group_label,
)
from attnsim.reports.page.report_data import (
    DEFAULT_OBJECTIVES,
    ReportData,
    by_workload,
    design_of,
    has_numbers,
    has_text,
    pareto_pairs,
    present_objectives,
    swept_parameters,
    unique_values,
    value_key,
)
from attnsim.reports.page.report_page import (
    csv_link,
)

EMBED_CSV_BYTES = 8 * 2**20  # CSVs up to this size are also downloadable from the page
MAX_PANELS = 48  # workload groups drawn per faceted figure


@dataclass
class Page:
    """What the sections of one report page are drawn from."""

    data: ReportData
    out_dir: Path
    rows: list[dict[str, Any]]  # the finished points, each marked feasible or not
    objectives: list[Objective]  # those some row has a number for
    params: list[str]  # swept parameters (`point.design` left out where it repeats `design`)
    varied: list[str]  # swept parameters with more than one value among the finished points
    task: list[str]  # the columns naming a workload group: points are compared within one
    baseline: str
    designs: list[str]  # baseline first
    compared: list[dict[str, Any]]  # each design's fastest feasible point per group

    @classmethod
    def of(cls, data: ReportData, out_dir: Path) -> Page:
        """The page of `data`, its tables to be written under `out_dir`."""
        rows = mark_rows(fill_unset(data.rows), data.constraints)
        params = swept_parameters(rows + data.failures)
        varied = [
            p for p in params if len({value_key(r[p]) for r in rows if r.get(p) is not None}) > 1
        ]
        task = group_columns(rows)
        designs = [str(d) for d in unique_values(design_of(r) for r in rows)]
        baseline = data.baseline if data.baseline in designs else (designs[0] if designs else "")
        return cls(
            data=data,
            out_dir=out_dir,
            rows=rows,
            objectives=present_objectives(rows, data.objectives),
            params=[p for p in params if not (p == "point.design" and has_text(rows, "design"))],
            varied=varied,
            task=task,
            baseline=baseline,
            designs=design_order(rows, baseline),
            compared=compare_to_baseline(rows, task, baseline),
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
        """The swept parameters that do not name the workload group."""
        return [p for p in self.params if p not in self.task and not names_group(p, self.task)]

    @property
    def title(self) -> str:
        """The page title, naming the experiment when known."""
        experiment = self.data.experiment
        return f"attnsim report: {experiment}" if experiment else "attnsim report"

    @property
    def groups(self) -> int:
        """How many workload groups the finished points form."""
        return len(by_workload(self.rows, self.task))

    def label(self, row: Mapping[str, Any]) -> str:
        """A row's workload group, as a panel title."""
        return group_label(row, self.task)

    @property
    def pairs(self) -> list[tuple[Objective, Objective]]:
        """The objective pairs drawn as Pareto plots: numbers on both axes, not all equal."""
        return [
            (x, y)
            for x, y in pareto_pairs(self.objectives or list(DEFAULT_OBJECTIVES))
            if informative(self.rows, x[0]) and informative(self.rows, y[0])
        ]


def fill_unset(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows whose swept values a sweep block left unset show what the point ran with.

    `point.design`, `point.workload`, `point.workload.seq_len` come from the row's design and
    workload; `point.arch.overrides.X` from `arch.X` (the preset's default where not set).
    """
    swept = set(swept_parameters(rows))
    sources = {"point.design": "design", "point.workload": "workload"}
    sources["point.workload.seq_len"] = "seq_len"
    sources["point.arch.overrides.buffer_bytes"] = "arch.buffer_bytes"
    for p in swept:
        if p.startswith("point.arch.overrides."):
            sources[p] = "arch." + p.removeprefix("point.arch.overrides.")
    out = []
    for row in rows:
        filled = dict(row)
        for p in swept:
            source = sources.get(p, "")
            if filled.get(p) is None and row.get(source) is None and source == "arch.buffer_bytes":
                source = "buffer_bytes"  # rows stored before the arch.* columns
            if filled.get(p) is None and row.get(source) is not None:
                filled[p] = row[source]
        out.append(filled)
    return out


# -- small helpers


def csv_links(page: Page, name: str, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]
               ) -> h.Markup:  # fmt: skip
    """`name` beside the page, and the same table from the page itself when small enough."""
    embedded = csv_link(f"{name} (from this page)", rows, columns)
    if len(embedded) > EMBED_CSV_BYTES:
        return h.tag("a", name, href=name)
    return h.render([h.tag("a", name, href=name), " or ", embedded])


def panel_rows(page: Page) -> list[dict[str, Any]]:
    """The rows of the first MAX_PANELS workload groups (the figures' panels)."""
    groups = list(by_workload(page.rows, page.task).values())[:MAX_PANELS]
    return [dict(r) for g in groups for r in g]


def informative(rows: Sequence[Mapping[str, Any]], column: str) -> bool:
    """Whether `column` has numbers that are not all equal (a GPU's area is 0 everywhere)."""
    values = {float(r[column]) for r in rows if has_numbers([r], column)}
    return len(values) > 1


def names_group(parameter: str, task: Sequence[str]) -> bool:
    """Whether a swept parameter is one of the group's columns under another name."""
    same = {"point.workload": "workload", "point.workload.seq_len": "seq_len"}
    return same.get(parameter) in task


def order_key(value: Any) -> tuple[int, Any]:
    """Sort key of a swept value: numbers (and `RxC` shapes by R) first, then text."""
    try:
        return (0, float(value))
    except (TypeError, ValueError):
        text = str(value)
        if "x" in text and text.replace("x", "").isdigit():
            return (0, float(text.split("x")[0]))
        return (1, text)


def share(result: Any, field: str) -> float:
    """A Result's `field` cycles as a fraction of its latency (at most 1)."""
    total = result.latency_cycles or 1.0
    return min(float(getattr(result, field)) / total, 1.0)
