"""Result rows as CSV files and as aligned text tables for the terminal.

A row is a flat mapping from column name to a cell: a string, an int or a float. A row
that lacks a column has no value there (an empty CSV cell).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

Cell = str | int | float
Row = dict[str, Cell]

_ATTENTION = ("model", "seq_len", "traffic", "latency", "energy", "util_2d", "util_1d")
_END_TO_END = ("model", "seq_len", "traffic", "latency", "energy")
# Columns of each FuseMax artifact table, in file order (attn-unfused.csv's trailing empty
# header column left out). Units: traffic bytes, latency s, energy pJ, area µm².
FUSEMAX_COLUMNS: dict[str, tuple[str, ...]] = {
    "attn-unfused": _ATTENTION,
    "attn-flat": _ATTENTION + ("QK", "AV"),
    "attn-cascade": _ATTENTION + ("QK", "SLNV"),
    "attn-arch": _ATTENTION + ("QK", "LM", "SLN", "SLD", "SLNV"),
    "attn-binding": _ATTENTION + ("QK", "LM", "SLN", "SLD", "SLNV"),
    "end2end-flat": _END_TO_END,
    "end2end-proposal": _END_TO_END,
    "pareto": (
        "accel",
        "model",
        "PE_dim",
        "traffic",
        "mem_lat",
        "comp_2d_lat",
        "comp_1d_lat",
        "latency",
        "array_2d_area",
        "area",
    ),
}


def write_csv(path: Path | str, rows: Iterable[Mapping[str, Cell]], columns: Sequence[str]) -> Path:
    """Write `rows` to `path` as CSV with exactly `columns`, in that order.

    Floats are written with `repr` (shortest text that reads back to the same float), so a
    table survives a write/read round trip bit for bit. Cells a row lacks are left empty;
    keys a row has beyond `columns` are an error (a misspelled column would else vanish).

    Returns:
        The path written.
    """
    path = Path(path)
    known = set(columns)
    lines: list[list[str]] = []
    for index, row in enumerate(rows):
        extra = sorted(key for key in row if key not in known and key != "")
        if extra:
            raise ValueError(f"row {index} has columns not in {list(columns)}: {extra}")
        lines.append([_cell_text(row.get(column)) for column in columns])
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(lines)
    return path


def read_csv(path: Path | str) -> list[Row]:
    """Read a CSV file into rows, parsing numbers (int where integral text, else float).

    Columns with an empty name (such as the trailing comma of the FuseMax artifact's
    `attn-unfused.csv` header) and empty cells are dropped, so a row only holds values.
    """
    with Path(path).open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        rows: list[Row] = []
        for fields in reader:
            if not any(field.strip() for field in fields):
                continue
            row: Row = {}
            for name, text in zip(header, fields, strict=False):
                if name.strip() and text.strip():
                    row[name] = parse_cell(text)
            rows.append(row)
    return rows


def parse_cell(text: str) -> Cell:
    """`text` as an int, else a float, else the stripped string ("1K" stays a string)."""
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def format_table(
    rows: Iterable[Mapping[str, Cell]], columns: Sequence[str], *, digits: int = 4
) -> str:
    """An aligned text table: a header, a rule, one line per row.

    Numbers are right-aligned, floats shown with `digits` significant digits; strings are
    left-aligned; missing cells are blank.
    """
    rows = list(rows)
    body = [[_display(row.get(column), digits) for column in columns] for row in rows]
    numeric = [
        all(isinstance(row[column], int | float) for row in rows if column in row)
        for column in columns
    ]
    widths = [
        max([len(column)] + [len(line[i]) for line in body]) for i, column in enumerate(columns)
    ]

    def render(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(width) if is_number else cell.ljust(width)
            for cell, width, is_number in zip(cells, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    lines = [render(list(columns)), "  ".join("-" * width for width in widths)]
    lines.extend(render(line) for line in body)
    return "\n".join(lines)


def _cell_text(value: Cell | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _display(value: Cell | None, digits: int) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < 10**digits:
            return str(int(value))
        return f"{value:.{digits}g}"
    return str(value)
