"""Result store: round trip, upsert rules (no duplicates, ok never overwritten), exports."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from attnsim.mappers.result import Result
from attnsim.reports.dse.store import (
    Record,
    Store,
    export_csv,
    export_jsonl,
    load_failures,
    load_results,
    load_rows,
)


def result(latency: float) -> Result:
    return Result(
        cascade="c", arch="a", mapper="m", options=(("p1", 2),), sizes=(("P", 4),), passes=1,
        latency_cycles=10.0, latency_s=latency, compute_cycles=10.0, memory_cycles=5.0,
        bound="compute", energy_pj=3.0, dram_traffic_bytes=8.0,
    )  # fmt: skip


def ok(pid: str, seq: int, latency: float = 1.0) -> Record:
    r = result(latency)
    row = {"point_id": pid, "status": "ok", **r.to_row(), "point.x": seq}
    return Record(pid, seq, "ok", "d", "{}", json.dumps({"x": seq}), json.dumps(row),
                  r.to_json(), None, 0.1)  # fmt: skip


def failed(pid: str, seq: int) -> Record:
    return Record(pid, seq, "failed", "d", "{}", json.dumps({"x": seq}), None, None,
                  "ValueError: bad", 0.1)  # fmt: skip


def test_round_trip_order_and_exports(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write([ok("b", 1, 2.0), ok("a", 0, 1.0), failed("c", 2)])
    assert store.finished([("a", 0), ("c", 2), ("z", 9)]) == {"a"}
    store.close()
    rows = load_rows(tmp_path)
    assert [r["point_id"] for r in rows] == ["a", "b"]  # sweep order, not completion order
    assert rows[1]["latency_s"] == 2.0 and rows[1]["point.x"] == 1
    assert load_results(tmp_path) == [result(1.0), result(2.0)]
    assert load_failures(tmp_path) == [
        {"point_id": "c", "status": "failed", "design": "d", "error": "ValueError: bad",
         "point.x": 2}
    ]  # fmt: skip
    with export_csv(tmp_path).open() as f:
        table = list(csv.DictReader(f))
    assert [r["point_id"] for r in table] == ["a", "b"] and table[0]["latency_s"] == "1.0"
    lines = [json.loads(x) for x in export_jsonl(tmp_path).read_text().splitlines()]
    assert [x["status"] for x in lines] == ["ok", "ok", "failed"]
    assert Result.from_json(json.dumps(lines[0]["result"])) == result(1.0)
    assert lines[2]["error"] == "ValueError: bad"


def test_no_duplicates_ok_kept_failure_replaced_smallest_seq(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write([ok("a", 5, 1.0), failed("b", 3)])
    store.write([ok("a", 2, 9.0)])  # a duplicate: the finished row stays, the position drops
    store.write([ok("b", 7, 4.0)])  # a failure is replaced when the point succeeds
    store.write([failed("b", 8)])  # ...and a later failure never overwrites a success
    assert store.counts() == {"ok": 2}
    store.close()
    rows = load_rows(tmp_path)
    assert [(r["point_id"], r["latency_s"]) for r in rows] == [("a", 1.0), ("b", 4.0)]
    assert load_failures(tmp_path) == []


def test_finished_lowers_the_stored_position(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write([ok("a", 9), ok("b", 1)])
    assert store.finished([("a", 0)]) == {"a"}
    store.close()
    assert [r["point_id"] for r in load_rows(tmp_path)] == ["a", "b"]


def test_warnings_reach_the_csv_also_for_rows_stored_without_them(tmp_path: Path) -> None:
    import dataclasses

    warned = dataclasses.replace(result(1.0), warnings=("H100 not calibrated", "state > buffer"))
    row = {"point_id": "w", "status": "ok", **warned.to_row()}  # stored before the column
    store = Store(tmp_path)
    store.write([Record("w", 0, "ok", "d", "{}", "{}", json.dumps(row), warned.to_json(), None, 0)])
    store.close()
    assert load_rows(tmp_path)[0]["warnings"] == "H100 not calibrated | state > buffer"
    with export_csv(tmp_path).open() as f:
        (line,) = csv.DictReader(f)
    assert line["warnings"] == "H100 not calibrated | state > buffer"
