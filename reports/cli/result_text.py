"""Plain-text rendering of one `Result`: headline, per-Einsum, traffic, energy, warnings.

Tables are drawn by `rich` (columns sized to their contents and to the terminal, never run
together; plain text without colour when the output is not a terminal). Every quantity is
written in the engineering unit `reports.units` picks, as in the HTML report.
"""

from __future__ import annotations

import io
import shutil
from typing import Literal

from attnsim.mappers.result import Result
from attnsim.reports.units import AREA, COUNT, CYCLES, ENERGY, MEMORY, TIME, format_quantity

DEFAULT_WIDTH = 100  # columns when the output is not a terminal


def format_result(result: Result, width: int | None = None) -> str:
    """A multi-section report of one design point, at most `width` columns wide."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    width = width or shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns
    out = io.StringIO()
    console = Console(file=out, width=width, no_color=True, highlight=False, emoji=False)
    sizes = ", ".join(f"{k}={v}" for k, v in result.sizes)
    options = ", ".join(f"{k}={v}" for k, v in result.options)
    console.print(f"{result.cascade} on {result.arch} by {result.mapper} ({options})", markup=False)
    head = Table(box=None, show_header=False, pad_edge=False, padding=(0, 2, 0, 2))
    head.add_column(style=None, no_wrap=True)
    head.add_column(overflow="fold")
    head.add_row("sizes", sizes)
    # the rank the mapper counted passes over (the attention's keys: N for a selection)
    rank = dict(result.provenance).get("passes over", "M")
    head.add_row(f"passes over {rank}", str(result.passes))
    head.add_row(
        "latency",
        f"{format_quantity(result.latency_s, TIME)} ({_cycles(result.latency_cycles)}; "
        f"compute {_cycles(result.compute_cycles)}, memory {_cycles(result.memory_cycles)}; "
        f"bound: {result.bound})",
    )
    head.add_row("energy", format_quantity(result.energy_pj, ENERGY))
    head.add_row("DRAM traffic", format_quantity(result.dram_traffic_bytes, MEMORY))
    head.add_row("area", format_quantity(result.area_um2, AREA))
    console.print(head)

    def table(title: str, *columns: str) -> Table:
        t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
        for i, name in enumerate(columns):
            text = i < 2  # names fold in a narrow terminal; numbers stay whole
            justify: Literal["left", "right"] = "left" if text else "right"
            t.add_column(name, justify=justify, overflow="fold", no_wrap=not text)
        return t

    einsums = table("per Einsum", "Einsum", "unit", "pass", "ops", "cycles", "util.")
    for e in result.per_einsum:
        einsums.add_row(
            e.einsum, e.unit, str(e.pass_index), f"{e.ops:.4g}", _count(e.compute_cycles),
            f"{e.utilization:.4f}",
        )  # fmt: skip
    console.print(einsums)
    units = table("compute units", "unit", "", "busy cycles", "util.")
    for u in result.units:
        units.add_row(u.unit, "", _count(u.busy_cycles), f"{u.utilization:.4f}")
    console.print(units)
    traffic = table("traffic by tensor", "tensor", "level", "read", "written")
    for t in result.traffic:
        traffic.add_row(
            t.tensor, t.level, format_quantity(t.read_bytes, MEMORY),
            format_quantity(t.write_bytes, MEMORY),
        )  # fmt: skip
    console.print(traffic)
    energy = table("energy by component and action", "component", "action", "count", "energy")
    for item in result.energy:
        if item.count:
            energy.add_row(
                item.component, item.action, f"{item.count:.4g}",
                format_quantity(item.energy_pj, ENERGY),
            )  # fmt: skip
    console.print(energy)
    occupancy = table("occupancy", "level", "", "peak", "capacity", "spilled")
    for o in result.occupancy:
        occupancy.add_row(
            o.level, "", format_quantity(o.peak_bytes, MEMORY),
            format_quantity(o.capacity_bytes, MEMORY),
            format_quantity(o.spilled_bytes, MEMORY) if o.spilled_bytes else "",
        )  # fmt: skip
    console.print(occupancy)
    if result.extras:
        console.print("mapping: " + ", ".join(f"{k}={v:g}" for k, v in result.extras), markup=False)
    if result.warnings:
        console.print("assumptions and warnings:")
        for w in result.warnings:
            console.print(f"  - {w}", markup=False)
    return "\n".join(line.rstrip() for line in out.getvalue().rstrip().splitlines())


def _cycles(value: float) -> str:
    return format_quantity(value, CYCLES, 4)


def _count(value: float) -> str:
    return format_quantity(value, COUNT, 4)
