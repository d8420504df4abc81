"""Turning per-Einsum cycles and dependencies into compute time.

Three schedules, chosen by the mapper and recorded in the Result's provenance:

- `sequential`: phases one after another (unfused attention);
- `overlapped`: units decoupled by buffering, the busiest unit sets the time;
- `pipelined`: each unit runs its tasks in a fixed order, tile after tile (FuseMax's 2D and
  1D arrays working on consecutive key tiles); a task starts when its unit is free and the
  tasks it depends on (in this tile, or in the previous tile for recurrences) are done.
  Tiles are separated by a barrier: a unit starts tile t only once every non-deferred task
  of tile t-1 has finished on every unit; deferred tasks (carry updates) run after the
  barrier, overlapping the next tile's first tasks. The time is the steady-state period;
  pipeline fill and drain are ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Task:
    """One Einsum (or stall) of a tile, on one unit, taking `cycles` (summed over all tiles).

    Attributes:
        name: Unique task name (the Einsum's output tensor).
        unit: The compute unit it runs on.
        cycles: Cycles it takes.
        deps: Tasks of the same tile it waits for.
        lagged_deps: Tasks of the previous tile it waits for (recurrence carries).
        deferred: Whether the task may run after the tile barrier (a carry update).
    """

    name: str
    unit: str
    cycles: float
    deps: tuple[str, ...] = ()
    lagged_deps: tuple[str, ...] = ()
    deferred: bool = False


def sequential_cycles(cycles: Sequence[float]) -> float:
    """Phases one after another."""
    return float(sum(cycles))


def overlapped_cycles(tasks: Sequence[Task]) -> float:
    """Units fully decoupled: the busiest unit's total."""
    per_unit: dict[str, float] = {}
    for t in tasks:
        per_unit[t.unit] = per_unit.get(t.unit, 0.0) + t.cycles
    return max(per_unit.values(), default=0.0)


def pipelined_cycles(tasks: Sequence[Task], tiles: int = 4) -> float:
    """Steady-state period of an in-order pipeline over tiles.

    Each unit runs its tasks in the order they appear in `tasks`, for tile 0, then tile 1, ...
    Costs are linear, so passing each task's total cycles (over all tiles) returns the total
    steady-state time. Raises ValueError on unknown or circular dependencies.
    """
    if not tasks:
        return 0.0
    names = [t.name for t in tasks]
    index = {n: k for k, n in enumerate(names)}
    for t in tasks:
        for d in t.deps + t.lagged_deps:
            if d not in index:
                raise ValueError(f"task {t.name} depends on unknown task {d}")
    previous_on_unit: dict[int, int | None] = {}
    last_on_unit: dict[str, int] = {}
    first_on_unit: dict[str, int] = {}
    for k, t in enumerate(tasks):
        previous_on_unit[k] = last_on_unit.get(t.unit)
        last_on_unit[t.unit] = k
        first_on_unit.setdefault(t.unit, k)
    barrier = [k for k, t in enumerate(tasks) if not t.deferred]
    finish: dict[tuple[int, int], float] = {}
    visiting: set[tuple[int, int]] = set()

    def done(k: int, tile: int) -> float:
        if tile < 0:
            return 0.0
        key = (k, tile)
        if key in finish:
            return finish[key]
        if key in visiting:
            raise ValueError(f"circular dependency through task {names[k]}")
        visiting.add(key)
        task = tasks[k]
        prev = previous_on_unit[k]
        if prev is not None:
            ready = done(prev, tile)
        else:  # first task of this unit in the tile: in order, and after the barrier
            ready = done(last_on_unit[task.unit], tile - 1)
            for j in barrier:
                ready = max(ready, done(j, tile - 1))
        for d in task.deps:
            ready = max(ready, done(index[d], tile))
        for d in task.lagged_deps:
            ready = max(ready, done(index[d], tile - 1))
        visiting.discard(key)
        finish[key] = ready + task.cycles
        return finish[key]

    ends = [max(done(k, tile) for k in range(len(tasks))) for tile in range(tiles)]
    return ends[-1] - ends[-2] if tiles > 1 else ends[0]
