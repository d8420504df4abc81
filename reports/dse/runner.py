"""Run an experiment's design points: a local process pool (default) or a Dask cluster.

Points are expanded lazily, checked against the store in batches (finished ones are skipped),
evaluated in chunks by workers that cache loaded architectures, cascades and mappers, and
written back in small committed batches. A point that raises is recorded as a failure and the
sweep goes on; a point that kills its worker process is isolated and recorded the same way.
Under `refusals: record` a point whose mapper refuses it (`MappingError`: a cascade or an
architecture the mapper cannot price) is recorded as `refused`, with the mapper's reason: a
finished outcome, skipped on resume like a priced point, never ranked.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import itertools
import json
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from attnsim.archs.overrides import effective_values
from attnsim.reports.dse.design_sizes import design_sizes
from attnsim.reports.dse.experiment import Experiment, Point
from attnsim.reports.dse.feasibility import (
    FIT,
    WARNING_SEPARATOR,
    WARNINGS,
    constraints_json,
    fit_problem,
)
from attnsim.reports.dse.lifeline import tie_to_driver
from attnsim.reports.dse.progress import Progress
from attnsim.reports.dse.store import REFUSAL, Record, Store, point_columns

PointTuple = tuple[int, str, dict[str, Any], dict[str, Any]]  # seq, point_id, resolved, values
Chunk = list[PointTuple]
LOOKUP_BATCH = 512
DASK_CONNECT_TIMEOUT_S = 30


@dataclass(slots=True)
class Summary:
    """What one `run_experiment` call did."""

    total: int = 0
    skipped: int = 0
    ok: int = 0
    refused: int = 0
    failed: int = 0
    interrupted: bool = False
    elapsed_s: float = 0.0

    @property
    def done(self) -> int:
        """Points evaluated in this run."""
        return self.ok + self.refused + self.failed


# ----------------------------------------------------------------------------- workers


@functools.lru_cache(maxsize=32)
def _base_arch(preset: str, sha256: str) -> Any:
    from attnsim.archs.load import load_arch

    return load_arch(preset)


@functools.lru_cache(maxsize=4096)
def _arch(preset: str, sha256: str, overrides_json: str) -> Any:
    arch = _base_arch(preset, sha256)
    o = json.loads(overrides_json)
    if not o:
        return arch
    if not hasattr(arch, "with_overrides"):  # a GPU: its one override, the calibration
        from attnsim.archs.overrides import apply_overrides

        return apply_overrides(arch, o)
    return arch.with_overrides(
        clock_hz=o["clock_ghz"] * 1e9 if "clock_ghz" in o else None,
        dram_bandwidth_bytes_per_s=(
            o["dram_bandwidth_gib_per_s"] * 2**30 if "dram_bandwidth_gib_per_s" in o else None
        ),
        buffer_bytes=o.get("buffer_bytes"),
        array_shapes={k: (v[0], v[1]) for k, v in o.get("array_shapes", {}).items()},
        register_file_entries=o.get("register_file_entries"),
    )


@functools.lru_cache(maxsize=64)
def _cascade(ref_json: str) -> Any:
    import yaml

    from attnsim.einsum_ir import load_cascade, load_cascade_text

    ref = json.loads(ref_json)
    if "builtin" in ref:
        return load_cascade(ref["builtin"])
    if "file" in ref:
        return load_cascade(ref["file"])
    return load_cascade_text(yaml.safe_dump(ref["inline"]), f"<inline {ref['label']}>")


@functools.lru_cache(maxsize=256)
def _mapper(name: str, options_json: str) -> Any:
    from attnsim.mappers.registry import get_mapper

    options = json.loads(options_json)
    # list options are tuples (the only list kind in `mappers.options`); JSON made them lists
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    return get_mapper(name)(**options)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def make_row(result: Any, resolved: dict[str, Any], values: dict[str, Any], arch: Any) -> dict:
    """The flat row of a finished point: Result.to_row() plus derived and swept columns."""
    w = resolved["workload"]
    row: dict[str, Any] = {"point_id": "", "status": "ok", "design": resolved["design"]}
    row.update(result.to_row())
    row["edp_js"] = result.energy_pj * 1e-12 * result.latency_s
    row["workload"] = w["label"]
    row["seq_len"] = w["seq_len"] if w["seq_len"] is not None else w["sizes"].get("P")
    buffer = getattr(arch, "buffer", None)
    if buffer is not None:
        row["buffer_bytes"] = buffer.capacity_bytes
    row.update(point_columns(values))
    row.update({f"arch.{k}": v for k, v in effective_values(arch).items()})
    held = [o.peak_bytes for o in result.occupancy if o.level != "registers"]
    if held:  # the live state the mapping holds on chip (per block on a GPU)
        row["onchip_peak_bytes"] = max(held)
    row[FIT] = fit_problem(result)
    row[WARNINGS] = WARNING_SEPARATOR.join(result.warnings)
    return row


def refusal_row(resolved: dict[str, Any], values: dict[str, Any], reason: str) -> dict:
    """The flat row of a refused point: what it was (design, workload, mapper, ...) and why."""
    w, c = resolved["workload"], resolved["cascade"]
    row: dict[str, Any] = {"point_id": "", "status": "refused", "design": resolved["design"]}
    row["mapper"] = resolved["mapper"]["name"]
    row["cascade"] = c.get("builtin") or c.get("file") or c["label"]
    row["arch"] = resolved["arch"]["preset"]
    row["workload"] = w["label"]
    row["seq_len"] = w["seq_len"] if w["seq_len"] is not None else w["sizes"].get("P")
    try:
        sizes = design_sizes(w["sizes"], resolved.get("design_sizes", {}))
    except ValueError:
        sizes = w["sizes"]
    row.update({f"size.{k}": v for k, v in sizes.items()})
    row.update(point_columns(values))
    row[REFUSAL] = reason
    return row


def evaluate_point(p: PointTuple, refusals: bool = False) -> Record:
    """Map one design point; any exception becomes a failed record (never raised).

    With `refusals`, a `MappingError` (the mapper refuses the point) becomes a `refused`
    record whose error is the mapper's reason.
    """
    from attnsim.mappers.spatial.view import MappingError

    seq, pid, resolved, values = p
    start = time.perf_counter()
    point_json, values_json = _dumps(resolved), _dumps(values)
    try:
        a = resolved["arch"]
        arch = _arch(a["preset"], a.get("sha256", ""), _dumps(a["overrides"]))
        cascade = _cascade(_dumps(resolved["cascade"]))
        m = resolved["mapper"]
        mapper = _mapper(m["name"], _dumps(m["options"]))
        sizes = dict(resolved["workload"]["sizes"])
        if "design_sizes" in resolved:
            sizes = design_sizes(sizes, resolved["design_sizes"])
        result = mapper.map(cascade, arch, sizes)
        row = make_row(result, resolved, values, arch)
        row["point_id"] = pid
        elapsed = time.perf_counter() - start
        return Record(
            pid, seq, "ok", resolved["design"], point_json, values_json,
            json.dumps(row), result.to_json(), None, elapsed,
        )  # fmt: skip
    except MappingError as exc:
        if not refusals:
            return _failed(p, exc, time.perf_counter() - start)
        reason = str(exc).strip(chr(39))
        row = refusal_row(resolved, values, reason)
        row["point_id"] = pid
        elapsed = time.perf_counter() - start
        return Record(
            pid, seq, "refused", resolved["design"], point_json, values_json,
            json.dumps(row), None, reason, elapsed,
        )  # fmt: skip
    except Exception as exc:  # noqa: BLE001  (a bad point must not stop the sweep)
        return _failed(p, exc, time.perf_counter() - start)


def _failed(p: PointTuple, exc: Exception, elapsed: float) -> Record:
    seq, pid, resolved, values = p
    error = f"{type(exc).__name__}: {str(exc).strip(chr(39))}"
    return Record(
        pid, seq, "failed", resolved["design"], _dumps(resolved), _dumps(values),
        None, None, error, elapsed,
    )  # fmt: skip


def evaluate_chunk(chunk: Chunk, refusals: bool = False) -> list[Record]:
    """Evaluate a chunk of points in this worker (`refusals`: see `evaluate_point`)."""
    return [evaluate_point(p, refusals) for p in chunk]


def _init_worker(driver_pid: int) -> None:
    # Ctrl-C goes to the whole process group: only the driver handles it. SIGTERM (how an
    # interrupted run ends its workers) ends a worker, not the driver's handler it was forked with
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    tie_to_driver(driver_pid)  # a kill -9 of the driver must not leave workers running


def _pool(jobs: int) -> cf.ProcessPoolExecutor:
    return cf.ProcessPoolExecutor(jobs, initializer=_init_worker, initargs=(os.getpid(),))


# ----------------------------------------------------------------------------- progress


class ForeignStoreError(ValueError):
    """The output folder's store holds points of another experiment, or of an edited one."""


def claim_store(store: Store, exp: Experiment, out_dir: str | Path) -> None:
    """Check that `store` holds only points of `exp`, then record `exp` as its owner.

    A store made by the same experiment (same name, same points hash) is resumed. After an
    edit that only adds points (or changes objectives or constraints) it is resumed too; one
    that holds points the experiment no longer has, or points of another experiment, raises
    `ForeignStoreError` (nothing is written), so stale points never reach a report.
    """
    meta, stored = store.meta, store.point_count
    owner = meta.get("experiment")
    if stored and owner is not None and owner != exp.name:
        where = f" (from {meta['file']})" if meta.get("file") else ""
        raise ForeignStoreError(
            f"{out_dir} holds {stored} points of experiment {owner!r}{where}, not of "
            f"{exp.name!r}: an output folder belongs to one experiment. Choose another folder "
            f"(--out DIR), or pass --fresh to discard the {stored} stored points"
        )
    if stored and meta.get("points_hash") != exp.points_hash:
        other = store.count_other(p.point_id for p in exp.points())
        if other:
            raise ForeignStoreError(
                f"{out_dir} holds {other} of its {stored} points that experiment {exp.name!r} "
                f"does not have (its file, a file it names or attnsim changed since they were "
                f"run); they would mix into the tables and report. Choose another folder "
                f"(--out DIR), or pass --fresh to discard the stored points"
            )
    store.set_meta("experiment", exp.name)
    store.set_meta("file", str(Path(exp.file).resolve()))
    store.set_meta("points_hash", exp.points_hash)
    store.set_meta("constraints", constraints_json(exp.constraints))
    store.set_meta("objectives", json.dumps(exp.objectives))
    store.set_meta("baseline", exp.baseline)


def pending_points(
    points: Iterator[Point],
    store: Store,
    on_skip: Callable[[int], None],
    budget: int | None,
    refusals: bool = False,
) -> Iterator[PointTuple]:
    """Points not yet finished in the store (checked in batches), at most `budget` of them.

    With `refusals` (`refusals: record`) a refused point is finished too; without, it is
    evaluated again (and fails).
    """
    left = budget if budget is not None else -1
    statuses = ("ok", "refused") if refusals else ("ok",)
    while left != 0:
        batch = list(itertools.islice(points, LOOKUP_BATCH))
        if not batch:
            return
        done = store.finished([(p.point_id, p.seq) for p in batch], statuses)
        skipped = 0
        for p in batch:
            if p.point_id in done:
                skipped += 1
                continue
            if left == 0:
                break
            left -= 1
            yield (p.seq, p.point_id, p.resolved, p.values)
        if skipped:
            on_skip(skipped)


def _chunks(points: Iterator[PointTuple], size: int) -> Iterator[Chunk]:
    while chunk := list(itertools.islice(points, size)):
        yield chunk


def run_experiment(
    exp: Experiment,
    out_dir: str | Path,
    jobs: int | None = None,
    executor: str = "local",
    budget: int | None = None,
    stream: TextIO | None = None,
    quiet: bool = False,
) -> Summary:
    """Evaluate every unfinished point of `exp` into `out_dir`'s store; see the module doc.

    `executor` is `local` or `dask://HOST:PORT`; `jobs` is the local pool size (default: the
    CPU count; 1 runs in this process); `budget` caps the points evaluated by this call.
    Raises `ForeignStoreError` when `out_dir` holds points of another experiment
    (`claim_store`).
    """
    jobs = jobs or os.cpu_count() or 1
    store = Store(out_dir)
    try:
        claim_store(store, exp, out_dir)
    except ForeignStoreError:
        store.close()
        raise
    summary = Summary(total=exp.count)
    progress = Progress(exp.count, stream, quiet, budget)
    start = time.monotonic()

    def on_skip(n: int) -> None:
        summary.skipped += n
        progress.advance(n)

    def on_records(records: list[Record]) -> None:
        store.write(records)
        bad = sum(r.status == "failed" for r in records)
        refused = sum(r.status == "refused" for r in records)
        summary.ok += len(records) - bad - refused
        summary.refused += refused
        summary.failed += bad
        progress.advance(len(records), len(records), bad, refused)

    refusals = exp.records_refusals
    todo = pending_points(exp.points(), store, on_skip, budget, refusals)
    try:
        if executor.startswith("dask://"):
            _run_dask(executor, todo, on_records, refusals)
        elif executor != "local":
            raise ValueError(f"unknown executor {executor!r}; expected local or dask://HOST:PORT")
        elif jobs == 1:
            for chunk in _chunks(todo, 16):
                on_records(evaluate_chunk(chunk, refusals))
        else:
            _run_pool(jobs, todo, on_records, _chunk_size(exp.count, jobs), refusals)
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        progress.close()
        store.close()
        summary.elapsed_s = time.monotonic() - start
    return summary


def _chunk_size(total: int, workers: int) -> int:
    # Big enough to amortize a round trip (~1 ms per FuseMax point), small enough to balance
    # and to commit often.
    return max(1, min(64, total // (workers * 8) or 1))


def _run_pool(
    jobs: int,
    todo: Iterator[PointTuple],
    on_records: Callable[[list[Record]], None],
    size: int,
    refusals: bool = False,
) -> None:
    suspects: list[PointTuple] = []
    pool = _pool(jobs)
    inflight: dict[cf.Future[list[Record]], Chunk] = {}

    def collect(return_when: str) -> None:
        nonlocal pool
        done, _ = cf.wait(inflight, return_when=return_when)
        broken = False
        for fut in done:
            chunk = inflight.pop(fut)
            try:
                on_records(fut.result())
            except BrokenProcessPool:
                suspects.extend(chunk)
                broken = True
        if broken:  # every other chunk in flight died with the pool: retry them in isolation
            for chunk in inflight.values():
                suspects.extend(chunk)
            inflight.clear()
            pool.shutdown(wait=False, cancel_futures=True)
            pool = _pool(jobs)

    try:
        for chunk in _chunks(todo, size):
            while len(inflight) >= 2 * jobs:
                collect(cf.FIRST_COMPLETED)
            inflight[pool.submit(evaluate_chunk, chunk, refusals)] = chunk
        while inflight:
            collect(cf.FIRST_COMPLETED)
        for p in sorted(suspects):  # one at a time: a crash now is this point's own
            fut = pool.submit(evaluate_chunk, [p], refusals)
            try:
                on_records(fut.result())
            except BrokenProcessPool:
                on_records([_crashed(p)])
                pool.shutdown(wait=False, cancel_futures=True)
                pool = _pool(jobs)
    except BaseException:
        _end_workers(pool)
        raise
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _end_workers(pool: cf.ProcessPoolExecutor) -> None:
    """Stop `pool` and end its workers now, for a run left by Ctrl-C or an error.

    A Ctrl-C that lands while the pool forks its workers leaves them without the manager
    thread that hands them their stop sentinel, and interpreter exit joins a process's live
    multiprocessing children: the run would hang after saying it was interrupted. The workers
    hold nothing a run keeps (the driver stores every chunk it collects), so ending them
    loses nothing.
    """
    pool.shutdown(wait=False, cancel_futures=True)
    workers = multiprocessing.active_children()  # the driver's only children are its workers
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.join(timeout=5)


def _crashed(p: PointTuple) -> Record:
    seq, pid, resolved, values = p
    return Record(
        pid, seq, "failed", resolved["design"], _dumps(resolved), _dumps(values),
        None, None, "WorkerCrash: the worker process died while mapping this point", 0.0,
    )  # fmt: skip


def _run_dask(
    address: str,
    todo: Iterator[PointTuple],
    on_records: Callable[[list[Record]], None],
    refusals: bool = False,
) -> int:
    try:
        from distributed import Client, wait
    except ImportError:
        raise ValueError(
            "the Dask executor needs dask.distributed: pip install 'attnsim[dask]'"
        ) from None
    target = address.removeprefix("dask://")
    target = target if "://" in target else f"tcp://{target}"
    try:
        client = Client(target, timeout=f"{DASK_CONNECT_TIMEOUT_S}s")
    except (OSError, TimeoutError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(
            f"--executor {address}: cannot reach the Dask scheduler at {target} within "
            f"{DASK_CONNECT_TIMEOUT_S} s ({reason}); is it running? (dask scheduler --port PORT)"
        ) from None
    with client:
        workers = max(1, sum(client.nthreads().values()))
        size = 64
        inflight: list[Any] = []
        for chunk in _chunks(todo, size):
            while len(inflight) >= 2 * workers:
                done, not_done = wait(inflight, return_when="FIRST_COMPLETED")
                for fut in done:
                    on_records(fut.result())
                inflight = list(not_done)
            inflight.append(client.submit(evaluate_chunk, chunk, refusals, pure=False))
        for fut in inflight:
            on_records(fut.result())
    return workers


def describe(summary: Summary) -> str:
    """One line saying what a run did."""
    parts = [f"{summary.ok} ok"]
    parts += [f"{summary.refused} refused by their mapper"] if summary.refused else []
    parts += [f"{summary.failed} failed", f"{summary.skipped} already done"]
    rate = summary.done / summary.elapsed_s if summary.elapsed_s > 0 else 0.0
    text = f"{summary.done} points evaluated in {summary.elapsed_s:.1f} s ({rate:,.0f}/s): "
    return text + ", ".join(parts)


__all__ = [
    "ForeignStoreError",
    "Progress",
    "Summary",
    "describe",
    "evaluate_chunk",
    "evaluate_point",
    "make_row",
    "claim_store",
    "run_experiment",
]
