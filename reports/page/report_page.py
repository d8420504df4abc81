"""Pieces of the report page: its style and render check, sections, cards, tables, PNG files."""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mappers.result import Result
from reports.dse.feasibility import Tally
from reports.page import html as h
from reports.page.report_data import ReportData, Row, design_of, heading, traffic_by_tensor

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 110

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


def section(anchor: str, title: str, body: object) -> h.Markup:
    """A page section with its heading (h1 for the overview, h2 for the rest)."""
    level = "h1" if anchor == "overview" else "h2"
    return h.tag("section", h.tag(level, title), body, id=anchor)


def summary_cards(data: ReportData, varied: Sequence[str], counts: Tally) -> h.Markup:
    """The overview's counts: finished, infeasible and failed points, designs, parameters."""
    designs = len({design_of(r) for r in data.rows})
    cards = [
        (len(data.rows), "finished points"),
        (counts.infeasible, "infeasible (not ranked)"),
        (len(data.failures), "failed points"),
        (designs, "designs"),
        (len(varied), "swept parameters"),
    ]
    return h.tag(
        "div",
        [h.tag("div", h.tag("b", n), h.tag("span", label), class_="card") for n, label in cards],
        class_="cards",
    )


def shown_table(rows: Sequence[Row], columns: Sequence[str], limit: int) -> h.Markup:
    """A scrolling table of the first `limit` rows, with a note when rows were left out."""
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


def breakdown_tables(subjects: Mapping[str, Result]) -> h.Markup:
    """Energy by component, cycles by Einsum and traffic by tensor of each labelled Result."""
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


class FigureFiles:
    """Saves each figure as PNG under a folder and returns its bytes for embedding."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def save(self, name: str, fig: Figure) -> bytes:
        """Write `fig` as `name`.png under the folder; return the PNG bytes."""
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=DPI)
        png = buffer.getvalue()
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"{name}.png").write_bytes(png)
        return png


# -- small helpers


def project(rows: Iterable[Row], columns: Sequence[str]) -> list[dict[str, Any]]:
    """The rows cut to `columns`, leaving out missing and None values (for CSV tables)."""
    return [{c: r[c] for c in columns if c in r and r[c] is not None} for r in rows]


def slug(column: str) -> str:
    """A column name as a file-name and anchor fragment (`point.` dropped, others `-`)."""
    return "".join(ch if ch.isalnum() else "-" for ch in column.removeprefix("point.")).strip("-")


def first_lines(text: str, limit: int = 600) -> str:
    """At most `limit` characters of `text`, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[:limit] + " …"


def attnsim_version() -> str:
    """The installed attnsim version, or "unknown"."""
    try:
        return metadata.version("attnsim")
    except metadata.PackageNotFoundError:
        return "unknown"
