"""Pieces of the report page: its style and render check, sections, cards, tables, PNG files."""

from __future__ import annotations

import base64
import csv
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnsim.mappers.result import Result
from attnsim.reports.dse.feasibility import Tally
from attnsim.reports.page import html as h
from attnsim.reports.page.report_data import ReportData, Row, design_of, heading, traffic_by_tensor
from attnsim.reports.units import Quantity, Unit, format_quantity, pick_unit, quantity_of

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 110
SPREAD = 1000  # a column whose values span more than this shows a unit in every cell

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
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(520px, 100%), 1fr));
        gap: 1.5em; }
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
.plot { width: 100%; min-height: 200px; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[data-dir="asc"]::after { content: " ▲"; }
table.sortable th[data-dir="desc"]::after { content: " ▼"; }
input.filter { margin: 0.3em 0; padding: 0.2em 0.4em; font: inherit; width: min(24em, 100%); }
.warn { background: #fff6e0; border: 1px solid #e8c36a; border-radius: 6px; padding: 0.4em 1em; }
pre.spec { background: var(--band); padding: 0.6em; overflow: auto; max-height: 30em;
           font-size: 0.85em; }
.ratio-good { color: #1a7f37; } .ratio-bad { color: #b42318; }
@media (max-width: 900px) { .grid { grid-template-columns: 1fr; } main { padding: 0 0.6em 2em; }
  .card { min-width: 7em; } }
"""

# Draws every Plotly figure from its JSON spec, then marks <html data-render="ok"> (or
# "broken": plotly.js missing, a spec that fails, an <img> that does not decode); tables of
# class "sortable" sort on a header click (numbers by their raw value) and filter from the
# input that names them.
SCRIPT = """
(function () {
  var root = document.documentElement;
  var plots = Array.prototype.slice.call(document.querySelectorAll("div.plot"));
  var images = Array.prototype.slice.call(document.images);
  var drawn = 0, failed = 0;
  root.setAttribute("data-plots-total", String(plots.length));
  function mark() {
    root.setAttribute("data-plots-drawn", String(drawn));
    if (drawn + failed < plots.length) return;
    var loaded = images.filter(function (im) { return im.complete && im.naturalWidth > 0; });
    root.setAttribute("data-figures-total", String(images.length));
    root.setAttribute("data-figures-loaded", String(loaded.length));
    var ok = !failed && loaded.length === images.length;
    root.setAttribute("data-render", ok ? "ok" : "broken");
  }
  function draw(div) {
    var spec = JSON.parse(document.getElementById(div.getAttribute("data-spec")).textContent);
    var config = {responsive: true, displaylogo: false,
                  toImageButtonOptions: {format: "svg", filename: div.id}};
    return Plotly.newPlot(div, spec.data, spec.layout, config);
  }
  window.addEventListener("load", function () {
    if (typeof Plotly === "undefined") { failed = plots.length; mark(); return; }
    if (!plots.length) { mark(); return; }
    plots.forEach(function (div) {
      try {
        draw(div).then(function () { drawn++; mark(); }, function () { failed++; mark(); });
      } catch (e) { failed++; mark(); }
    });
  });
  function key(cell) {
    if (!cell) return "";
    var v = cell.getAttribute("data-v");
    return v !== null && v !== "" && !isNaN(+v) ? +v : cell.textContent;
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (t) {
    Array.prototype.forEach.call(t.tHead.rows[0].cells, function (th, i) {
      th.addEventListener("click", function () {
        var dir = th.getAttribute("data-dir") === "asc" ? -1 : 1;
        Array.prototype.forEach.call(t.tHead.rows[0].cells, function (o) {
          o.removeAttribute("data-dir");
        });
        th.setAttribute("data-dir", dir > 0 ? "asc" : "desc");
        var body = t.tBodies[0], rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = key(a.cells[i]), y = key(b.cells[i]);
          if (typeof x === "number" && typeof y === "number") return dir * (x - y);
          return dir * String(x).localeCompare(String(y));
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
  Array.prototype.forEach.call(document.querySelectorAll("input.filter"), function (input) {
    input.addEventListener("input", function () {
      var t = document.getElementById(input.getAttribute("data-table"));
      var q = input.value.toLowerCase();
      Array.prototype.forEach.call(t.tBodies[0].rows, function (r) {
        r.style.display = r.textContent.toLowerCase().indexOf(q) >= 0 ? "" : "none";
      });
    });
  });
})();
"""
RENDER_CHECK = SCRIPT  # the name tests and older callers use


def section(anchor: str, title: str, body: object) -> h.Markup:
    """A page section with its heading (h1 for the overview, h2 for the rest)."""
    level = "h1" if anchor == "overview" else "h2"
    return h.tag("section", h.tag(level, title), body, id=anchor)


def summary_cards(data: ReportData, varied: Sequence[str], counts: Tally) -> h.Markup:
    """The overview's counts: finished, infeasible, refused and failed points, designs, ..."""
    designs = len({design_of(r) for r in data.rows})
    cards = [
        (len(data.rows), "finished points"),
        (counts.infeasible, "infeasible (not ranked)"),
        *([(len(data.refusals), "refused by the mapper")] if data.refusals else []),
        (len(data.failures), "failed points"),
        (designs, "designs"),
        (len(varied), "swept parameters"),
    ]
    return h.tag(
        "div",
        [h.tag("div", h.tag("b", n), h.tag("span", label), class_="card") for n, label in cards],
        class_="cards",
    )


def shown_table(
    rows: Sequence[Row], columns: Sequence[str], limit: int, table_id: str | None = None
) -> h.Markup:
    """A sortable, filterable table of the first `limit` rows in engineering units.

    A note says when rows were left out.
    """
    note = (
        h.tag("p", f"First {limit} of {len(rows)} shown.", class_="note")
        if len(rows) > limit
        else None
    )
    return h.render([unit_table(rows[:limit], columns, table_id), note])


def unit_table(
    rows: Sequence[Row], columns: Sequence[str], table_id: str | None = None, **attrs: object
) -> h.Markup:
    """A sortable table, with a filter box when given an id.

    Each quantity column is in the one unit that suits its values (named in its heading), or
    each cell in its own when they span decades; raw values sort and show on hover.
    """
    units: dict[str, Unit] = {}
    cell_units: dict[str, Quantity] = {}
    headers: dict[str, str] = {}
    for column in columns:
        quantity = quantity_of(column)
        values = [v for r in rows if (v := _number(r.get(column))) is not None and v > 0]
        if quantity is not None and values and max(values) / min(values) > SPREAD:
            cell_units[column] = quantity  # decades apart: each cell in its own unit
            headers[column] = heading(column).split(" (")[0]
        elif quantity is not None:
            units[column] = pick_unit(quantity, [_number(r.get(column)) for r in rows])
            headers[column] = f"{heading(column).split(' (')[0]} ({units[column].symbol})"
        else:
            headers[column] = heading(column)
    head = h.tag("tr", [h.tag("th", headers[c], scope="col") for c in columns])
    body = []
    for row in rows:
        cells = []
        for column in columns:
            value = row.get(column)
            number = _number(value)
            if column in units and number is not None:
                text = units[column].format(number).rsplit(" ", 1)[0]
            elif column in cell_units and number is not None:
                text = format_quantity(number, cell_units[column])
            else:
                text = h.format_cell(value)
            cells.append(
                h.tag(
                    "td",
                    text,
                    class_="num" if number is not None else None,
                    data_v=repr(number) if number is not None else None,
                    title=repr(value) if isinstance(value, float) else None,
                )
            )
        body.append(h.tag("tr", cells))
    table = h.tag(
        "div",
        h.tag("table", h.tag("thead", head), h.tag("tbody", body), id=table_id,
              class_="sortable", **attrs),
        class_="scroll",
    )  # fmt: skip
    if table_id is None:
        return table
    search = h.tag(
        "input", type="search", class_="filter", data_table=table_id,
        placeholder="filter rows (any text)", aria_label="filter the table",
    )  # fmt: skip
    return h.render([search, table])


def csv_link(name: str, rows: Sequence[Row], columns: Sequence[str]) -> h.Markup:
    """A link that downloads `rows` as `name` from the page itself (a data: URI)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else _csv(row.get(c)) for c in columns])
    data = base64.b64encode(buffer.getvalue().encode("utf-8")).decode("ascii")
    return h.tag("a", name, href=f"data:text/csv;base64,{data}", download=name)


def plot_div(plot_id: str, spec: Mapping[str, Any], caption: str = "") -> h.Markup:
    """A Plotly figure: an empty div, its spec as JSON beside it, drawn by the page script."""
    text = json.dumps(spec, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    return h.tag(
        "figure",
        h.tag("div", class_="plot", id=plot_id, data_spec=f"{plot_id}-spec"),
        h.tag("script", h.Markup(text), type="application/json", id=f"{plot_id}-spec"),
        h.tag("figcaption", caption) if caption else None,
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) else float(value)


def _csv(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


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
