"""reports.page.tables: CSV round trip, number parsing, the artifact's trailing empty column."""

from __future__ import annotations

from pathlib import Path

import pytest

from attnsim.reports.page.tables import (
    FUSEMAX_COLUMNS,
    format_table,
    parse_cell,
    read_csv,
    write_csv,
)

# The FuseMax artifact's tables live beside the repository (DESIGN.md: ../shared/reference).
REFERENCE = Path(__file__).resolve().parents[4].parent / "shared" / "reference" / "fusemax"
needs_reference = pytest.mark.skipif(
    not REFERENCE.is_dir(), reason=f"reference tables not found at {REFERENCE}"
)


def test_round_trip_keeps_column_order_and_exact_floats(tmp_path: Path) -> None:
    rows = [
        {"seq_len": "1K", "model": "BERT", "latency": 0.1 + 0.2, "traffic": 402653184},
        {"model": "TrXL", "seq_len": "4K", "latency": 1.0484918676489974e16, "traffic": 7},
    ]
    path = write_csv(tmp_path / "sub" / "t.csv", rows, ["model", "seq_len", "traffic", "latency"])
    assert path.read_text().splitlines()[0] == "model,seq_len,traffic,latency"
    assert path.read_text().splitlines()[1] == "BERT,1K,402653184,0.30000000000000004"
    back = read_csv(path)
    assert back == [
        {"model": "BERT", "seq_len": "1K", "traffic": 402653184, "latency": 0.1 + 0.2},
        {"model": "TrXL", "seq_len": "4K", "traffic": 7, "latency": 1.0484918676489974e16},
    ]
    assert isinstance(back[0]["traffic"], int)


def test_missing_cells_are_empty_and_dropped_on_read(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", [{"model": "BERT"}], ["model", "energy"])
    assert path.read_text() == "model,energy\nBERT,\n"
    assert read_csv(path) == [{"model": "BERT"}]


def test_unknown_column_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"not in \['model'\]: \['lantency'\]"):
        write_csv(tmp_path / "t.csv", [{"model": "BERT", "lantency": 1.0}], ["model"])


def test_trailing_empty_header_column_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "attn-unfused.csv"
    path.write_text("model,seq_len,traffic,\nBERT,1K,12\nTrXL,4K,13,\n")
    assert read_csv(path) == [
        {"model": "BERT", "seq_len": "1K", "traffic": 12},
        {"model": "TrXL", "seq_len": "4K", "traffic": 13},
    ]


@pytest.mark.parametrize(
    ("text", "value"),
    [("12", 12), ("-3", -3), ("2.5", 2.5), ("1e+16", 1e16), ("1K", "1K"), (" BERT ", "BERT")],
)
def test_parse_cell(text: str, value: object) -> None:
    assert parse_cell(text) == value
    assert type(parse_cell(text)) is type(value)


@needs_reference
def test_reference_unfused_reads_as_numbers() -> None:
    rows = read_csv(REFERENCE / "attn-unfused.csv")
    assert len(rows) == 12
    assert set(rows[0]) == {
        "model",
        "seq_len",
        "traffic",
        "latency",
        "energy",
        "util_2d",
        "util_1d",
    }
    assert rows[0]["traffic"] == 6845104128


def test_format_table_aligns_numbers_right_and_text_left() -> None:
    text = format_table(
        [{"model": "BERT", "latency": 0.0123456, "traffic": 12}, {"model": "T5", "traffic": 3456}],
        ["model", "latency", "traffic"],
    )
    assert text.splitlines() == [
        "model  latency  traffic",
        "-----  -------  -------",
        "BERT   0.01235       12",
        "T5                 3456",
    ]


@needs_reference
@pytest.mark.parametrize("table", sorted(FUSEMAX_COLUMNS))
def test_fusemax_columns_match_reference_headers(table: str) -> None:
    header = (REFERENCE / f"{table}.csv").read_text().splitlines()[0].split(",")
    assert FUSEMAX_COLUMNS[table] == tuple(name for name in header if name)
