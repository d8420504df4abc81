"""The design-space report's data: result rows, failures, `Result` records and objectives.

Loads them from an output directory (`load_report_data`) and derives what the page shows:
headings, swept parameters, workload groups, Pareto fronts, best points, breakdown subjects.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attnsim.einsum_ir import SpecError
from attnsim.einsum_ir.spec import read_yaml
from attnsim.mappers.result import Result
from attnsim.reports.dse.feasibility import (
    FEASIBLE,
    VIOLATED,
    Constraint,
    constraints_from_json,
    feasible_rows,
    mark_rows,
)
from attnsim.reports.dse.pareto import Objective, pareto_rows
from attnsim.reports.page.tables import read_csv

Row = Mapping[str, Any]

# Headline metrics: column -> heading with its unit.
METRICS: dict[str, str] = {
    "latency_s": "Latency (s)",
    "energy_pj": "Energy (pJ)",
    "edp_js": "EDP (J·s)",
    "area_um2": "Area (µm²)",
    "dram_traffic_bytes": "DRAM traffic (bytes)",
    "latency_cycles": "Latency (cycles)",
    "compute_cycles": "Compute (cycles)",
    "memory_cycles": "Memory (cycles)",
    "flops": "FLOPs",
    "passes": "Passes",
    "onchip_peak_bytes": "Live on-chip state (bytes)",
    "refusal": "Refused because",
    "mapper": "Mapper",
    "bound": "Bound",
    "design": "Design",
    "point_id": "Point",
    "error": "Error",
    "n_warnings": "Warnings",
    FEASIBLE: "Feasible",
    VIOLATED: "Violates",
}
# Objective names an experiment file may use, and the column each stands for.
OBJECTIVE_ALIASES = {
    "latency": "latency_s",
    "energy": "energy_pj",
    "edp": "edp_js",
    "area": "area_um2",
    "traffic": "dram_traffic_bytes",
    "buffer": "buffer_bytes",
    "utilization": "util.array_2d",
}
DEFAULT_OBJECTIVES: tuple[Objective, ...] = (
    ("latency_s", "min"),
    ("energy_pj", "min"),
    ("edp_js", "min"),
    ("area_um2", "min"),
    ("dram_traffic_bytes", "min"),
)
PARETO_PAIRS: tuple[tuple[str, str], ...] = (
    ("latency_s", "energy_pj"),
    ("latency_s", "area_um2"),
    ("energy_pj", "area_um2"),
)
HEADLINE = ("latency_s", "energy_pj", "edp_js", "area_um2", "dram_traffic_bytes")
BREAKDOWN_POINTS = 5  # at most this many best points are broken down


@dataclass
class ReportData:
    """Everything a report is drawn from."""

    rows: list[dict[str, Any]]
    failures: list[dict[str, Any]] = field(default_factory=list)
    refusals: list[dict[str, Any]] = field(default_factory=list)  # refused points, with reasons
    results: list[Result] = field(default_factory=list)
    objectives: list[Objective] = field(default_factory=lambda: list(DEFAULT_OBJECTIVES))
    experiment: str = ""
    has_results_csv: bool = False
    constraints: list[Constraint] = field(default_factory=list)
    baseline: str = ""  # the design the others are compared with ('': the first design)
    description: str = ""
    experiment_text: str = ""  # the experiment file as run (embedded in the page)
    fingerprint: str = ""  # of the store and the experiment file: equal means nothing changed


# -- column helpers


def heading(column: str) -> str:
    """A column's heading, with its unit where it has one."""
    if column in METRICS:
        return METRICS[column]
    prefix, _, name = column.partition(".")
    if name:
        if prefix == "point":
            return name
        if prefix == "util":
            return f"{name} utilization"
        if prefix == "einsum_util":
            return f"{name} utilization (Einsum)"
        if prefix == "size":
            return f"{name} (size)"
        if prefix == "option":
            return f"option {name}"
    for suffix, unit in (("_s", "s"), ("_pj", "pJ"), ("_bytes", "bytes"), ("_um2", "µm²")):
        if column.endswith(suffix):
            return f"{column.removesuffix(suffix)} ({unit})"
    return column


def swept_parameters(rows: Sequence[Row]) -> list[str]:
    """The `point.*` columns in first-seen order (swept parameters), varied or not."""
    found: dict[str, None] = {}
    for row in rows:
        for key in row:
            if key.startswith("point."):
                found.setdefault(key, None)
    return list(found)


def design_of(row: Row) -> str:
    """A row's design label (`design`, else mapper/cascade)."""
    design = row.get("design")
    if design not in (None, ""):
        return str(design)
    return "/".join(str(row[key]) for key in ("mapper", "cascade") if key in row) or "design"


def present_objectives(rows: Sequence[Row], objectives: Sequence[Objective]) -> list[Objective]:
    """The objectives some row has a number for."""
    return [
        (column, direction)
        for column, direction in objectives
        if any(as_number(row.get(column)) is not None for row in rows)
    ]


def workload_parameters(rows: Sequence[Row]) -> list[str]:
    """The swept `point.workload*` columns that vary.

    Points are compared only within one value of these: a design is not better for running
    a smaller workload.
    """
    return [
        p
        for p in swept_parameters(rows)
        if p.startswith("point.workload")
        and len({value_key(r[p]) for r in rows if r.get(p) is not None}) > 1
    ]


def by_workload(rows: Sequence[Row], task: Sequence[str]) -> dict[tuple[Any, ...], list[Row]]:
    """Rows grouped by their values of the `task` columns, groups in first-seen order."""
    groups: dict[tuple[Any, ...], list[Row]] = {}
    for row in rows:
        groups.setdefault(tuple(value_key(row.get(p)) for p in task), []).append(row)
    return groups


def grouped_front(
    rows: Sequence[Row], objectives: Sequence[Objective], task: Sequence[str] = ()
) -> list[Row]:
    """The Pareto-optimal rows within each workload group (`task` values), group by group.

    Only feasible rows compete (see `reports.dse.feasibility`): an infeasible point is never on
    a front, and does not push a feasible one off it.
    """
    groups = by_workload(feasible_rows(rows), task).values()
    return [r for group in groups for r in pareto_rows(group, objectives)]


def best_points(
    rows: Sequence[Row], objectives: Sequence[Objective], task: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """The best feasible row for each objective within each workload group (ties: the first).

    Each is a copy of its row tagged with `best_for` (text) and `objective` (the column).
    Infeasible rows (see `reports.dse.feasibility`) are never best.
    """
    return [
        best
        for group in by_workload(feasible_rows(rows), task).values()
        for best in _best_points(group, objectives)
    ]


def _best_points(rows: Sequence[Row], objectives: Sequence[Objective]) -> list[dict[str, Any]]:
    best: list[dict[str, Any]] = []
    for column, direction in objectives:
        scored = [
            (value, i)
            for i, row in enumerate(rows)
            if (value := as_number(row.get(column))) is not None
        ]
        if not scored:
            continue
        sign = 1.0 if direction == "min" else -1.0
        _, index = min(scored, key=lambda item: (sign * item[0], item[1]))
        best.append(
            {
                "best_for": f"{'lowest' if sign > 0 else 'highest'} {heading(column)}",
                "objective": column,
                **rows[index],
            }
        )
    return best


def pareto_pairs(objectives: Sequence[Objective]) -> list[tuple[Objective, Objective]]:
    """The objective pairs to draw.

    Always latency-energy, latency-area and energy-area; then each objective outside the
    headline metrics (such as a utilization) against latency. The front over all objectives
    together is a table of its own.
    """
    direction = dict(objectives)
    pairs: list[tuple[Objective, Objective]] = [
        ((x, direction.get(x, "min")), (y, direction.get(y, "min"))) for x, y in PARETO_PAIRS
    ]
    for column, way in objectives:
        if column not in HEADLINE:
            pairs.append((("latency_s", direction.get("latency_s", "min")), (column, way)))
    return pairs


# -- breakdowns of one Result


def traffic_by_tensor(result: Result) -> dict[str, float]:
    """Bytes (read + written) per tensor, keyed `level:tensor` when several levels appear."""
    levels = {t.level for t in result.traffic}
    totals: dict[str, float] = {}
    for t in result.traffic:
        key = t.tensor if len(levels) == 1 else f"{t.level}:{t.tensor}"
        totals[key] = totals.get(key, 0.0) + t.total_bytes
    return totals


def einsum_cycles(result: Result) -> dict[str, float]:
    """Compute cycles per Einsum, keyed `Einsum (unit)`."""
    totals: dict[str, float] = {}
    for e in result.per_einsum:
        key = f"{e.einsum} ({e.unit})"
        totals[key] = totals.get(key, 0.0) + e.compute_cycles
    return totals


# -- matching rows to their Result records


def result_for(row: Row, results: Iterable[Result]) -> Result | None:
    """The Result a row was made from, or None.

    Matched by the point_id in the Result's provenance when it has one, else by the same
    mapper, cascade, arch and headline numbers.
    """
    point_id = row.get("point_id")
    candidates = list(results)
    for r in candidates:
        if point_id is not None and dict(r.provenance).get("point_id") == point_id:
            return r
    key = _match_key(row)
    for r in candidates:
        if _match_key(r.to_row()) == key:
            return r
    return None


def breakdown_subjects(best: Sequence[Row], results: Sequence[Result]) -> dict[str, Result]:
    """Distinct best points (by point_id) with their Result, labelled 'objective: design'."""
    subjects: dict[str, Result] = {}
    seen: set[Any] = set()
    for row in best:
        ident = row.get("point_id", id(row))
        if ident in seen:
            continue
        seen.add(ident)
        result = result_for(row, results)
        if result is None:
            continue
        objective = heading(str(row.get("objective", "")))
        subjects[f"best {objective}: {design_of(row)}"] = result
        if len(subjects) == BREAKDOWN_POINTS:
            break
    return subjects


# -- loading


def load_report_data(out_dir: Path | str) -> ReportData:
    """Rows, failures, refusals, Results and objectives of an output directory.

    Reads the store through `reports.dse.store` (load_rows, load_failures, load_refusals,
    load_results); when that module or the database is absent, reads `results.csv` instead
    (its refused rows as refusals; no failures, no breakdowns). Objectives come from
    `experiment.yaml` when present; constraints from the store's metadata (else
    `experiment.yaml`). Every row is marked feasible or not.

    Raises:
        FileNotFoundError: the directory holds neither the store nor results.csv.
    """
    out_dir = Path(out_dir)
    csv_path = out_dir / "results.csv"
    store = _optional_module("attnsim.reports.dse.store")
    data = ReportData(rows=[], has_results_csv=csv_path.is_file())
    if store is not None and (out_dir / "results.sqlite").is_file():
        data.rows = [dict(row) for row in store.load_rows(out_dir)]
        if hasattr(store, "load_failures"):
            data.failures = [dict(row) for row in store.load_failures(out_dir)]
        if hasattr(store, "load_refusals"):
            data.refusals = [dict(row) for row in store.load_refusals(out_dir)]
        if hasattr(store, "load_results"):
            data.results = list(store.load_results(out_dir))
    elif csv_path.is_file():
        table = [dict(row) for row in read_csv(csv_path)]
        data.rows = [row for row in table if row.get("status", "ok") == "ok"]
        data.refusals = [row for row in table if row.get("status") == "refused"]
    else:
        raise FileNotFoundError(
            f"{out_dir} has no results (neither results.sqlite nor results.csv)"
        )
    experiment_path = out_dir / "experiment.yaml"
    if experiment_path.is_file():
        data.experiment_text = experiment_path.read_text(encoding="utf-8", errors="replace")
        info = _experiment_info(experiment_path)
        data.experiment, objectives, data.constraints, data.baseline, data.description = info
        if objectives:
            data.objectives = objectives
    has_store = store is not None and (out_dir / "results.sqlite").is_file()
    meta = store.read_meta(out_dir) if has_store else {}
    data.baseline = meta.get("baseline") or data.baseline
    data.fingerprint = inputs_fingerprint(out_dir)
    if "constraints" in meta:  # the run's own record wins over the copied file
        data.constraints = constraints_from_json(meta["constraints"])
        data.experiment = data.experiment or meta.get("experiment", "")
        if not experiment_path.is_file() and json.loads(meta.get("objectives", "[]")):
            data.objectives = [(str(c), str(d)) for c, d in json.loads(meta["objectives"])]
    data.rows = mark_rows(data.rows, data.constraints)
    return data


# -- small helpers


def as_number(value: Any) -> float | None:
    """`value` as a float when it is a number (not a bool, not NaN), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return None if math.isnan(value) else value


def has_text(rows: Sequence[Row], column: str) -> bool:
    """Whether some row has a non-empty value in `column`."""
    return any(r.get(column) not in (None, "") for r in rows)


def has_numbers(rows: Sequence[Row], column: str) -> bool:
    """Whether some row has a number in `column`."""
    return any(as_number(r.get(column)) is not None for r in rows)


def value_key(value: Any) -> Any:
    """A hashable, type-stable key for a parameter value (1 and 1.0 are the same value)."""
    number = as_number(value)
    if number is not None:
        return number
    return value if isinstance(value, str | bool | None) else repr(value)


def unique_values(items: Iterable[Any]) -> list[Any]:
    """`items` without repeats (by `value_key`), in first-seen order."""
    found: dict[Any, Any] = {}
    for item in items:
        found.setdefault(value_key(item), item)
    return list(found.values())


def _match_key(row: Row) -> tuple[Any, ...]:
    return tuple(
        row.get(k)
        for k in (
            "mapper",
            "cascade",
            "arch",
            "latency_s",
            "energy_pj",
            "dram_traffic_bytes",
            "area_um2",
        )
    )


def _optional_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return None


def inputs_fingerprint(out_dir: Path | str) -> str:
    """A hash of a run's store and experiment file ('' without a store): the report's inputs."""
    out_dir = Path(out_dir)
    store = _optional_module("attnsim.reports.dse.store")
    if store is None or not (out_dir / "results.sqlite").is_file():
        return ""
    experiment = out_dir / "experiment.yaml"
    text = experiment.read_bytes() if experiment.is_file() else b""
    digest = hashlib.sha256(store.fingerprint(out_dir).encode() + b"\0" + text)
    return digest.hexdigest()[:20]


def _experiment_info(path: Path) -> tuple[str, list[Objective], list[Constraint], str, str]:
    """The experiment's name, objectives, constraints, baseline and description.

    Read with `reports.dse.experiment` when present, else a plain YAML read of `name` and
    `objectives`.
    """
    experiment = _optional_module("attnsim.reports.dse.experiment")
    if experiment is not None:
        try:
            loaded = experiment.load_experiment(path)
        except (SpecError, OSError, ValueError):
            pass  # e.g. relative paths that only resolve next to the original file
        else:
            named = [(str(c), str(d)) for c, d in loaded.objectives]
            return (
                str(loaded.name),
                named,
                list(loaded.constraints),
                str(loaded.baseline),
                str(loaded.description),
            )
    try:
        spec = read_yaml(path)  # the hardened reader: no tags, alias bombs or bad bytes
    except SpecError:
        return "", [], [], "", ""
    if not isinstance(spec, dict):
        return "", [], [], "", ""
    objectives: list[Objective] = []
    for item in spec.get("objectives") or []:
        if isinstance(item, str):
            objectives.append((OBJECTIVE_ALIASES.get(item, item), "min"))
        elif isinstance(item, dict) and "metric" in item:  # {metric: energy, direction: min}
            name = str(item["metric"])
            direction = str(item.get("direction", "min"))
            objectives.append((OBJECTIVE_ALIASES.get(name, name), direction))
    constraints: list[Constraint] = []
    for item in spec.get("constraints") or []:
        if isinstance(item, dict) and "metric" in item:  # {metric: area, max: 5e9}
            column = OBJECTIVE_ALIASES.get(str(item["metric"]), str(item["metric"]))
            constraints.extend(
                Constraint(column, op, float(item[op])) for op in ("max", "min") if op in item
            )
    return (
        str(spec.get("name", path.parent.name)),
        objectives,
        constraints,
        str(spec.get("baseline", "")),
        str(spec.get("description", "")),
    )
