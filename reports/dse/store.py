"""The result store: one SQLite row per design point (keyed by point_id), and its exports.

The database (`DIR/results.sqlite`, WAL mode while a run writes it) is written in small
committed batches, so an interrupted run keeps every finished point; closing it checkpoints
the log and leaves one file. Its `meta` table names the experiment that owns it (name, hash of
its points, constraints). A point's status is `ok` (priced), `refused` (its mapper refused it,
under `refusals: record`; the reason is its error) or `failed`. Readers: `load_rows`,
`load_refusals`, `load_failures`, `load_results`, `read_meta`; exports: `export_csv`,
`export_jsonl` (both mark each point feasible or not, and keep refused points).
"""

from __future__ import annotations

import csv
import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attnsim.mappers.result import Result
from attnsim.reports.dse.feasibility import (
    FEASIBLE,
    FIT,
    VIOLATED,
    WARNING_SEPARATOR,
    WARNINGS,
    Constraint,
    fit_problem,
    mark,
)
from attnsim.reports.errors import UsageError

DB_NAME = "results.sqlite"
REFUSAL = "refusal"  # row column of a refused point: the mapper's reason
# Files a run writes next to the store (besides pareto-*.csv and figures/*.png).
RUN_OUTPUTS = (
    "results.csv",
    "results.jsonl",
    "report.html",
    "best_points.csv",
    "experiment.yaml",
)
SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    point_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    design TEXT NOT NULL,
    point_json TEXT NOT NULL,
    values_json TEXT NOT NULL,
    row_json TEXT,
    result_json TEXT,
    error TEXT,
    elapsed_s REAL
);
CREATE INDEX IF NOT EXISTS points_seq ON points (seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
# A priced point is never overwritten; a failure or refusal is replaced when the point is
# evaluated again (a refusal only when refusals are not recorded: see `Store.finished`).
# Either way a point keeps the smallest sweep position it was seen at, so the row order does
# not depend on which duplicate finished first.
UPSERT = """
INSERT INTO points VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (point_id) DO UPDATE SET
    seq = min(points.seq, excluded.seq),
    status = CASE WHEN points.status = 'ok' THEN points.status ELSE excluded.status END,
    row_json = CASE WHEN points.status = 'ok' THEN points.row_json ELSE excluded.row_json END,
    result_json = CASE WHEN points.status = 'ok' THEN points.result_json
        ELSE excluded.result_json END,
    error = CASE WHEN points.status = 'ok' THEN points.error ELSE excluded.error END,
    elapsed_s = CASE WHEN points.status = 'ok' THEN points.elapsed_s ELSE excluded.elapsed_s END
"""


@dataclass(frozen=True, slots=True)
class Record:
    """The outcome of one design point, as a worker returns it."""

    point_id: str
    seq: int
    status: str  # "ok", "refused" or "failed"
    design: str
    point_json: str
    values_json: str
    row_json: str | None
    result_json: str | None
    error: str | None
    elapsed_s: float

    def as_tuple(self) -> tuple[Any, ...]:
        """Column values in table order."""
        return (
            self.point_id,
            self.seq,
            self.status,
            self.design,
            self.point_json,
            self.values_json,
            self.row_json,
            self.result_json,
            self.error,
            self.elapsed_s,
        )


def db_path(out_dir: str | Path) -> Path:
    """The store file of an output directory."""
    return Path(out_dir) / DB_NAME


def discard(out_dir: str | Path) -> int:
    """Delete the store of `out_dir` and the files a run writes from it; returns points gone.

    Only files attnsim writes are removed (the store, its exports, the report, its tables and
    figures, the experiment copy); anything else in the folder is left alone.
    """
    out = Path(out_dir)
    gone = 0
    if db_path(out).exists():
        try:
            gone = sum(1 for _ in _read(out, "SELECT point_id FROM points"))
        except (sqlite3.DatabaseError, StoreError):  # a damaged store goes all the same
            gone = 0
    names = [DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", *RUN_OUTPUTS]
    for path in [out / n for n in names] + [*out.glob("pareto-*.csv"), *out.glob("figures/*.png")]:
        path.unlink(missing_ok=True)
    return gone


class StoreError(UsageError):
    """A result store that cannot be opened or read (damaged, or not a store at all)."""


def _store_error(out_dir: str | Path, exc: sqlite3.Error) -> StoreError:
    return StoreError(
        f"{db_path(out_dir)}: not a usable result store ({exc}); move it away, or pass "
        "--fresh to `attnsim run` to discard it"
    )


class Store:
    """An open result store (one writer: the process driving the run)."""

    def __init__(self, out_dir: str | Path) -> None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(db_path(out_dir), timeout=60)
        try:
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.executescript(SCHEMA)
            self.conn.execute("SELECT point_id, seq, status FROM points LIMIT 1").fetchall()
            self.conn.commit()
        except sqlite3.Error as exc:
            self.conn.close()
            raise _store_error(out_dir, exc) from None

    def set_meta(self, key: str, value: str) -> None:
        """Record a piece of run metadata (experiment name, file, spec text)."""
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
        self.conn.commit()

    @property
    def meta(self) -> dict[str, str]:
        """The run metadata (see `set_meta`)."""
        return dict(self.conn.execute("SELECT key, value FROM meta"))

    @property
    def point_count(self) -> int:
        """Points stored, finished or failed."""
        return int(self.conn.execute("SELECT count(*) FROM points").fetchone()[0])

    def count_other(self, point_ids: Iterable[str]) -> int:
        """How many stored points (finished or failed) are not among `point_ids`."""
        self.conn.execute("CREATE TEMP TABLE IF NOT EXISTS wanted (point_id TEXT PRIMARY KEY)")
        self.conn.execute("DELETE FROM wanted")
        self.conn.executemany(
            "INSERT OR IGNORE INTO wanted VALUES (?)", ((pid,) for pid in point_ids)
        )
        query = "SELECT count(*) FROM points WHERE point_id NOT IN (SELECT point_id FROM wanted)"
        other = int(self.conn.execute(query).fetchone()[0])
        self.conn.execute("DROP TABLE wanted")
        self.conn.commit()
        return other

    def finished(
        self, ids_and_seqs: list[tuple[str, int]], statuses: Sequence[str] = ("ok",)
    ) -> set[str]:
        """Which of these point ids are finished (status in `statuses`); lowers their position."""
        if not ids_and_seqs:
            return set()
        done: set[str] = set()
        kinds = ",".join("?" * len(statuses))
        for start in range(0, len(ids_and_seqs), 500):
            part = ids_and_seqs[start : start + 500]
            marks = ",".join("?" * len(part))
            cur = self.conn.execute(
                f"SELECT point_id FROM points WHERE status IN ({kinds}) AND point_id IN ({marks})",
                [*statuses, *[pid for pid, _ in part]],
            )
            done.update(pid for (pid,) in cur)
        lower = [(seq, pid, seq) for pid, seq in ids_and_seqs if pid in done]
        if lower:
            self.conn.executemany("UPDATE points SET seq = ? WHERE point_id = ? AND seq > ?", lower)
            self.conn.commit()
        return done

    def write(self, records: Iterable[Record]) -> None:
        """Insert or update a batch of records and commit (one transaction)."""
        self.conn.executemany(UPSERT, [r.as_tuple() for r in records])
        self.conn.commit()

    def counts(self) -> dict[str, int]:
        """Number of points per status."""
        cur = self.conn.execute("SELECT status, count(*) FROM points GROUP BY status")
        return {status: n for status, n in cur}

    def close(self) -> None:
        """Checkpoint the write-ahead log into the database file, leave WAL mode, and close.

        Leaving WAL mode removes the `-wal` and `-shm` files, so the store is one file that
        read-only readers can open without creating them. While another connection still
        reads the store (a progress monitor), the log stays and is merged by the next writer.
        """
        try:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self.conn.execute("PRAGMA journal_mode=DELETE")
        except sqlite3.OperationalError:  # locked by a reader: the next run checkpoints
            pass
        finally:
            self.conn.close()


def _read(out_dir: str | Path, query: str) -> Iterator[tuple[Any, ...]]:
    path = db_path(out_dir)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no result store (run `attnsim run` first)")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60)
    try:
        yield from conn.execute(query)
    except sqlite3.DatabaseError as exc:
        raise _store_error(out_dir, exc) from None
    finally:
        conn.close()


def iter_rows(out_dir: str | Path) -> Iterator[dict[str, Any]]:
    """Finished points' flat rows, in sweep order, one at a time.

    Rows stored before the `fit_problem` or `warnings` columns existed get them from their
    `Result`.
    """
    query = (
        f"SELECT row_json, CASE WHEN instr(row_json, '\"{FIT}\"') = 0 "
        f"OR instr(row_json, '\"{WARNINGS}\"') = 0 THEN result_json END "
        "FROM points WHERE status='ok' ORDER BY seq"
    )
    for text, result in _read(out_dir, query):
        yield _row(text, result)


def _row(row_json: str, result_json: str | None) -> dict[str, Any]:
    """A stored row, with `fit_problem` and `warnings` from its Result when stored without."""
    row: dict[str, Any] = json.loads(row_json)
    if result_json is not None and (FIT not in row or WARNINGS not in row):
        result = Result.from_json(result_json)
        row.setdefault(FIT, fit_problem(result))
        row.setdefault(WARNINGS, WARNING_SEPARATOR.join(result.warnings))
    return row


def read_meta(out_dir: str | Path) -> dict[str, str]:
    """The store's run metadata (empty when it has none)."""
    try:
        return {k: v for k, v in _read(out_dir, "SELECT key, value FROM meta")}
    except sqlite3.OperationalError:  # a store without a meta table
        return {}


def load_rows(out_dir: str | Path) -> list[dict[str, Any]]:
    """One flat dict per finished design point (see `reports.dse.runner.make_row` for keys)."""
    return list(iter_rows(out_dir))


def load_refusals(out_dir: str | Path) -> list[dict[str, Any]]:
    """One flat row per refused point: design, workload, mapper, ..., point.* and `refusal`."""
    query = "SELECT row_json FROM points WHERE status = 'refused' ORDER BY seq"
    return [json.loads(text) for (text,) in _read(out_dir, query)]


def load_failures(out_dir: str | Path) -> list[dict[str, Any]]:
    """One dict per failed point: point_id, design, error, and its point.* values."""
    query = (
        "SELECT point_id, design, error, values_json FROM points "
        "WHERE status NOT IN ('ok', 'refused') ORDER BY seq"
    )
    out = []
    for pid, design, error, values in _read(out_dir, query):
        row = {"point_id": pid, "status": "failed", "design": design, "error": error}
        row.update(point_columns(json.loads(values)))
        out.append(row)
    return out


def load_results(out_dir: str | Path) -> list[Result]:
    """The `Result` of every finished point, in sweep order (for breakdowns)."""
    query = "SELECT result_json FROM points WHERE status='ok' ORDER BY seq"
    return [Result.from_json(text) for (text,) in _read(out_dir, query)]


def fingerprint(out_dir: str | Path) -> str:
    """A hash of what the store holds: its points (ids, status, errors) and its metadata.

    Equal fingerprints mean equal tables and reports (a finished point is never rewritten), so
    a re-run that added nothing need not write them again.
    """
    digest = hashlib.sha256()
    query = "SELECT point_id, status, coalesce(error, '') FROM points ORDER BY seq"
    for pid, status, error in _read(out_dir, query):
        digest.update(f"{pid}\t{status}\t{error}\n".encode())
    for key, value in sorted(read_meta(out_dir).items()):
        digest.update(f"{key}\t{value}\n".encode())
    return digest.hexdigest()[:20]


def point_columns(values: dict[str, Any]) -> dict[str, Any]:
    """Swept values as `point.<path>` columns (a [rows, cols] shape as `RxC`)."""
    out: dict[str, Any] = {}
    for path, v in values.items():
        if isinstance(v, list):
            v = "x".join(str(x) for x in v)
        out[f"point.{path}"] = v
    return out


def export_csv(
    out_dir: str | Path, path: str | Path | None = None, constraints: Sequence[Constraint] = ()
) -> Path:
    """Write finished rows to CSV (columns: union over rows, first-seen order); two passes.

    Each row is marked (`feasible`, `violated`) under `constraints` (see `reports.dse.feasibility`).
    Refused points follow the priced ones: `status` refused, the mapper's reason in `refusal`,
    no numbers, never feasible.
    """
    target = Path(path) if path else Path(out_dir) / "results.csv"
    refused = [
        {**r, FEASIBLE: False, VIOLATED: "refused by its mapper"} for r in load_refusals(out_dir)
    ]
    columns: dict[str, None] = {}
    for row in iter_rows(out_dir):
        columns.update(dict.fromkeys(row))
    for row in refused:
        columns.update(dict.fromkeys(row))
    columns.update(dict.fromkeys((FEASIBLE, VIOLATED)))
    tmp = target.with_suffix(target.suffix + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), restval="")
        writer.writeheader()
        for row in iter_rows(out_dir):
            writer.writerow(mark(row, constraints))
        writer.writerows(refused)
    tmp.replace(target)
    return target


def export_jsonl(
    out_dir: str | Path, path: str | Path | None = None, constraints: Sequence[Constraint] = ()
) -> Path:
    """Write one JSON object per point: id, status, design, point, values, result or error.

    A finished point also has `feasible` and `violated` (under `constraints`); a refused one
    has `status` refused and the mapper's reason as `refusal`.
    """
    target = Path(path) if path else Path(out_dir) / "results.jsonl"
    query = (
        "SELECT point_id, status, design, point_json, values_json, row_json, result_json, error "
        "FROM points ORDER BY seq"
    )
    tmp = target.with_suffix(target.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for pid, status, design, point, values, row, result, error in _read(out_dir, query):
            obj: dict[str, Any] = {
                "point_id": pid,
                "status": status,
                "design": design,
                "point": json.loads(point),
                "values": json.loads(values),
            }
            if result is not None:
                obj["result"] = json.loads(result)
            if status == "refused":
                obj[REFUSAL] = error
            elif row is not None:
                marked = mark(_row(row, result), constraints)
                obj[FEASIBLE], obj[VIOLATED] = marked[FEASIBLE], marked[VIOLATED]
            if error is not None and status != "refused":
                obj["error"] = error
            f.write(json.dumps(obj, sort_keys=True) + "\n")
    tmp.replace(target)
    return target
