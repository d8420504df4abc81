"""Feasibility of design points: the experiment's constraints, and designs that do not fit.

A point is infeasible when it breaks one of the experiment's constraints (`area <= 5e9`), or
when its `Result` says the design does not fit the hardware (on-chip state over the buffer
capacity, a GPU tiling that cannot run). Infeasible points stay in the store and the tables,
marked `feasible = False` with what they violate in `violated`; they are never ranked (best
points, Pareto fronts, sensitivity).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from attnsim.mappers.result import Result

FEASIBLE = "feasible"  # row column: True when the point keeps every constraint and fits
VIOLATED = "violated"  # row column: what it violates ("; " between items), "" when feasible
FIT = "fit_problem"  # row column (from the Result): why the design does not fit, "" if it does
WARNINGS = "warnings"  # row column (from the Result): its warnings, WARNING_SEPARATOR between
WARNING_SEPARATOR = " | "
DOES_NOT_FIT = "does not fit"  # how a fit problem is named among the violations

# Warnings by which mappers say a design does not fit (see mappers/spatial/fusemax.py, unfused.py,
# gpu_tiling.py). FLAT's "on-chip tiles ... exceed ...; spilled fraction" is a modelled spill,
# judged by its occupancy record instead (infeasible only when nothing is spilled).
_FIT_WARNINGS = (
    ("on-chip state of", "exceeds the"),  # FuseMax: the query tiles do not fit the buffer
    ("modeled as if it fit", ""),  # unfused: the 1D phase's rows do not fit the buffer
    ("cannot run as modelled", ""),  # GPU: shared memory, registers or schedule
)


@dataclass(frozen=True, slots=True)
class Constraint:
    """A bound on one row column: `column <= bound` (op "max") or `column >= bound` ("min")."""

    column: str
    op: str
    bound: float

    def holds(self, row: Mapping[str, Any]) -> bool:
        """Whether `row` satisfies this constraint (a missing or non-numeric value does not)."""
        value = row.get(self.column)
        if not isinstance(value, int | float) or isinstance(value, bool):
            return False
        return value <= self.bound if self.op == "max" else value >= self.bound

    def violation(self, row: Mapping[str, Any]) -> str:
        """'' when `row` keeps this constraint, else the constraint and the row's value."""
        if self.holds(row):
            return ""
        value = row.get(self.column)
        shown = f"{value:.4g}" if isinstance(value, int | float) else "missing"
        return f"{self} (is {shown})"

    def __str__(self) -> str:
        return f"{self.column} {'<=' if self.op == 'max' else '>='} {self.bound:g}"


def fit_problem(result: Result) -> str:
    """Why the design of `result` does not fit its hardware, or '' when it does.

    From the mapper's warnings (the first that says so) and the occupancy records: a level
    holding more than its capacity with nothing spilled does not fit.
    """
    for warning in result.warnings:
        if any(a in warning and b in warning for a, b in _FIT_WARNINGS):
            return warning
    for o in result.occupancy:
        if o.capacity_bytes > 0 and o.peak_bytes > o.capacity_bytes and o.spilled_bytes <= 0:
            return (
                f"{o.tensor} at {o.level} needs {o.peak_bytes:.6g}, more than its capacity "
                f"{o.capacity_bytes:.6g}"
            )
    return ""


def violations(row: Mapping[str, Any], constraints: Sequence[Constraint]) -> list[str]:
    """What `row` violates: each broken constraint, then the fit problem if any."""
    out = [v for c in constraints if (v := c.violation(row))]
    problem = row.get(FIT)
    if problem:
        out.append(f"{DOES_NOT_FIT}: {problem}")
    return out


def mark(row: Mapping[str, Any], constraints: Sequence[Constraint]) -> dict[str, Any]:
    """A copy of `row` with its `feasible` and `violated` columns (re)computed."""
    found = violations(row, constraints)
    return {**row, FEASIBLE: not found, VIOLATED: "; ".join(found)}


def mark_rows(
    rows: Iterable[Mapping[str, Any]], constraints: Sequence[Constraint]
) -> list[dict[str, Any]]:
    """`mark` applied to every row."""
    return [mark(r, constraints) for r in rows]


def is_feasible(row: Mapping[str, Any]) -> bool:
    """Whether a row is feasible: unmarked rows are, and so is a CSV cell other than False."""
    value = row.get(FEASIBLE, True)
    return not (value is False or str(value).lower() in ("false", "0"))


def feasible_rows(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The rows that may be ranked."""
    return [r for r in rows if is_feasible(r)]


@dataclass(slots=True)
class Tally:
    """How many points are feasible, and how many break each constraint or do not fit."""

    total: int = 0
    infeasible: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)  # constraint text or DOES_NOT_FIT

    @property
    def feasible(self) -> int:
        """Points that keep every constraint and fit."""
        return self.total - self.infeasible

    def add(self, row: Mapping[str, Any], constraints: Sequence[Constraint]) -> None:
        """Count one row."""
        self.total += 1
        reasons = [str(c) for c in constraints if not c.holds(row)]
        if row.get(FIT):
            reasons.append(DOES_NOT_FIT)
        if reasons:
            self.infeasible += 1
        for reason in reasons:
            self.by_reason[reason] = self.by_reason.get(reason, 0) + 1

    def describe(self) -> str:
        """'124 of 136 finished points feasible; 12 infeasible, not ranked (area_um2 <= ...: 12)'.

        A point may break several constraints, so the counts by reason may add up to more.
        """
        if not self.infeasible:
            return f"all {self.total} finished points feasible"
        reasons = ", ".join(f"{reason}: {n}" for reason, n in self.by_reason.items())
        return (
            f"{self.feasible} of {self.total} finished points feasible; {self.infeasible} "
            f"infeasible, not ranked ({reasons})"
        )


def tally(rows: Iterable[Mapping[str, Any]], constraints: Sequence[Constraint]) -> Tally:
    """The feasibility counts of `rows` under `constraints`."""
    t = Tally()
    for row in rows:
        t.add(row, constraints)
    return t


def constraints_json(constraints: Sequence[Constraint]) -> str:
    """Constraints as JSON (kept in the result store's metadata)."""
    return json.dumps([[c.column, c.op, c.bound] for c in constraints])


def constraints_from_json(text: str) -> list[Constraint]:
    """Inverse of `constraints_json`."""
    return [Constraint(str(c), str(op), float(b)) for c, op, b in json.loads(text)]
