"""`attnsim run`, `attnsim check` and `attnsim export`: experiment files and their stores."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from attnsim.einsum_ir.spec import Problem, SpecError
from attnsim.reports.cli.parsers import Subparsers
from attnsim.reports.errors import UsageError

EXIT_POINTS_FAILED = 1
EXIT_INTERRUPTED = 130
SHOWN_ERRORS = 3  # failed points whose errors `run` prints
HUGE_SWEEP_POINTS = 1_000_000  # above this, `run` states the size and asks for --yes
STORE_BYTES_PER_POINT = 8 * 1024  # results.sqlite per point: 7.0 KB measured (FuseMax, FLAT)


def add_parser(subparsers: Subparsers[argparse.ArgumentParser]) -> None:
    """Register `run`, `check` and `export`."""
    p = subparsers.add_parser(
        "run",
        help="run an experiment's design-space sweep",
        description="Run an experiment's design-space sweep into a result store. Exit status: "
        "0 when every point evaluated in this run succeeded, 1 when any failed (the count and "
        "the first errors are printed; the tables and report are still written), 2 on an input "
        "error or when --out holds another experiment's points (nothing is run), 130 when "
        "interrupted. Finished points of the same experiment are kept and skipped. A second run "
        "into a folder in use stops (status 2); a sweep of more than "
        f"{HUGE_SWEEP_POINTS:,} points needs --yes.",
    )
    p.add_argument("experiment", type=Path, nargs="?", help="experiment YAML file")
    p.add_argument(
        "--example",
        metavar="NAME",
        help="run a shipped example experiment instead of a file (`--example list` lists them)",
    )
    p.add_argument("--out", type=Path, default=None, help="output directory (default: runs/NAME)")
    p.add_argument("--jobs", type=int, default=None, help="local worker processes (default: CPUs)")
    p.add_argument(
        "--executor", default="local", help="local (default) or dask://HOST:PORT (a scheduler)"
    )
    p.add_argument(
        "--budget", type=int, default=None, help="evaluate at most N new points in this run"
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument(
        "--yes",
        action="store_true",
        help=f"run a sweep of more than {HUGE_SWEEP_POINTS:,} points (its size and store are "
        "stated first)",
    )
    p.add_argument(
        "--fresh",
        action="store_true",
        help="discard the output folder's stored points first (needed when the folder holds "
        "another experiment's points, or points an edited experiment no longer has)",
    )
    p.set_defaults(handler=run)
    p = subparsers.add_parser(
        "check",
        help="validate experiment files and count their points",
        description="Validate experiment files (every problem as file:line:col: path: message, "
        "exit status 2) and print how many points each sweep expands to.",
        epilog=overrides_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("files", nargs="+", type=Path, help="experiment YAML files")
    p.set_defaults(handler=check)
    p = subparsers.add_parser("export", help="export a result store to CSV or JSON lines")
    p.add_argument("out_dir", type=Path, help="a run's output directory")
    p.add_argument("--format", choices=["csv", "jsonl"], default="csv")
    p.add_argument("--output", type=Path, default=None, help="file (default: DIR/results.FMT)")
    p.set_defaults(handler=export)


def overrides_help() -> str:
    """The architecture overrides an experiment may set (from `archs.overrides.OVERRIDES`)."""
    from attnsim.archs.overrides import OVERRIDES

    lines = ["architecture overrides (architectures.NAME.overrides, or arch.overrides.* paths):"]
    for o in OVERRIDES:
        name = f"{o.name}.ARRAY" if o.per_array else o.name
        lines.append(f"  {name:<28} {o.unit}: {o.meaning} [{', '.join(o.kinds)}]")
    return "\n".join(lines)


def check(args: argparse.Namespace) -> int:
    """Validate each file; print its point count, or every problem (exit status 2)."""
    from attnsim.reports.dse.experiment import load_experiment

    problems: list[Problem] = []
    for file in args.files:
        try:
            exp = load_experiment(file)
        except SpecError as exc:
            problems.extend(exc.problems)
            continue
        if exp.missing_mappers:
            print(f"{file}: skipped: needs mappers {', '.join(exp.missing_mappers)}")
            continue
        notes: list[str] = []
        trial = trial_problems(file, exp, notes)
        if trial:
            problems.extend(trial)
            continue
        blocks = ", ".join(f"{b.name} {b.count}" for b in exp.blocks)
        print(f"{file}: ok: {exp.count} points ({blocks})")
        for note in notes:
            print(f"{file}: note: {note}")
        if exp.count > HUGE_SWEEP_POINTS:
            print(f"{file}: note: {size_note(exp.count)}; `run` asks for --yes")
    if problems:
        raise SpecError(problems)
    return 0


TRIAL_POINTS_MAX = 10_000  # points scanned for each design's first one (a bound on check)


def trial_problems(file: str, exp: Any, notes: list[str] | None = None) -> list[Problem]:
    """Map each design's first point (per arch and mapper) as `run` would; a failure: a problem.

    A sweep may run a design on several architectures and mappers: each pair is tried.
    A mapper that cannot price a design's cascade on its architecture (a score function no
    unit performs, a mask outside its family) refuses every point of that design, so `check`
    says so instead of `run` failing them all. Under `refusals: record` such a refusal is an
    outcome `run` records, not a failure: it is appended to `notes` (design, mapper, reason).
    Failures that only some sizes meet still show at run time (`run` exits 1 and names them).
    """
    from attnsim.einsum_ir.spec import Reader
    from attnsim.reports.dse.runner import evaluate_point

    first: dict[tuple[str, str, str], Any] = {}
    for k, point in enumerate(exp.points()):
        if k >= TRIAL_POINTS_MAX:
            break
        r = point.resolved
        first.setdefault((r["design"], r["arch"]["label"], r["mapper"]["label"]), point)
    designs = Reader.from_file(file).get("designs")
    out: list[Problem] = []
    for (name, _, _), point in first.items():
        point_tuple = (point.seq, point.point_id, point.resolved, point.values)
        record = evaluate_point(point_tuple, exp.records_refusals)
        if record.status == "ok":
            continue
        values = ", ".join(f"{k}={v}" for k, v in point.values.items()) or "fixed values"
        if record.status == "refused":
            if notes is not None:
                mapper = point.resolved["mapper"]["name"]
                notes.append(
                    f"design {name!r}: refused by mapper {mapper!r} at its first point "
                    f"({values}); `run` records it as refused: {record.error}"
                )
            continue
        message = (
            f"design {name!r}: its first point ({values}) fails to map, so `run` would fail "
            f"its points: {record.error}"
        )
        node = designs.get(name) if designs is not None else None
        if node is None:
            out.append(Problem(file, 0, 0, f"designs.{name}", message))
        else:
            node.error(message)
            out.extend(node.problems[-1:])
    return out


def sigterm_as_interrupt(driver_pid: int) -> Callable[[int, FrameType | None], None]:
    """A SIGTERM handler: KeyboardInterrupt in process `driver_pid`, elsewhere the default.

    In the driver the run then keeps what it finished, as on Ctrl-C.
    Pool workers are forked with the driver's handlers, and an interrupted run ends its
    workers by SIGTERM (`dse.runner._end_workers`): with the driver's handler a worker raised
    KeyboardInterrupt instead of ending, and multiprocessing printed its traceback.
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        if os.getpid() != driver_pid:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise KeyboardInterrupt

    return handler


def run(args: argparse.Namespace) -> int:
    """Run the sweep, export the tables, write the report."""
    from attnsim.reports.dse.experiment import load_experiment
    from attnsim.reports.dse.outdir import open_out_dir

    if args.example == "list":
        from attnsim.reports.examples import example_names, examples_dir

        print(f"examples in {examples_dir()}: attnsim run --example NAME")
        for name in example_names():
            print(f"  {name}")
        return 0
    args.experiment = _experiment_file(args.experiment, args.example)
    exp = load_experiment(args.experiment)
    if exp.missing_mappers:
        print(f"{args.experiment}: skipped: needs mappers {', '.join(exp.missing_mappers)}")
        return 0
    if exp.count == 0:  # load_experiment refuses empty blocks; never report success for nothing
        raise UsageError(f"{args.experiment}: the sweep expands to no points; nothing to run")
    if args.jobs is not None and args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    if args.budget is not None and args.budget < 0:
        raise UsageError("--budget must be >= 0")
    if not (args.executor == "local" or args.executor.startswith("dask://")):
        raise UsageError(f"--executor: expected local or dask://HOST:PORT, got {args.executor!r}")
    check_size(exp.count, args.yes, args.budget)
    out = args.out or Path(exp.out_dir)
    previous = signal.signal(signal.SIGTERM, sigterm_as_interrupt(os.getpid()))
    try:
        with open_out_dir(out):  # held until the tables and report are written
            return _run_locked(args, exp, out)
    finally:
        signal.signal(signal.SIGTERM, previous)


def check_size(points: int, yes: bool, budget: int | None) -> None:
    """Refuse a sweep above `HUGE_SWEEP_POINTS` without --yes, stating points and store size."""
    planned = points if budget is None else min(points, budget)
    if planned <= HUGE_SWEEP_POINTS or yes:
        return
    raise UsageError(
        f"the sweep expands to {points:,} points; {size_note(planned)}. Pass --yes to run "
        f"it, or --budget N (at most {HUGE_SWEEP_POINTS:,}) to run part of it"
    )


def size_note(points: int) -> str:
    """`evaluating N points needs about X of result store (about 8 KB per point)`."""
    store_bytes = points * STORE_BYTES_PER_POINT
    per_point = f"about {STORE_BYTES_PER_POINT // 1024} KB per point"
    return f"evaluating {points:,} points needs about {_size(store_bytes)} of store ({per_point})"


def _size(n_bytes: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n_bytes < 1024 or unit == "TB":
            return f"{n_bytes:,.0f} {unit}" if unit == "bytes" else f"{n_bytes:,.1f} {unit}"
        n_bytes /= 1024
    return ""


def _run_locked(args: argparse.Namespace, exp: Any, out: Path) -> int:
    """`run` inside the locked output folder."""
    from attnsim.reports.dse import store
    from attnsim.reports.dse.feasibility import tally
    from attnsim.reports.dse.runner import describe, run_experiment

    if args.fresh:
        gone = store.discard(out)
        if gone:
            print(f"--fresh: discarded {gone} stored points in {out}", file=sys.stderr)
    try:
        summary = run_experiment(exp, out, args.jobs, args.executor, args.budget, quiet=args.quiet)
    except UsageError:  # a damaged store (StoreError)
        raise
    except ValueError as exc:  # another experiment's store; the executor (Dask) setup
        raise UsageError(str(exc)) from None
    print(describe(summary), file=sys.stderr)
    if summary.interrupted:
        return _interrupted(out)
    try:
        if store.db_path(out).exists():
            counts = tally(store.iter_rows(out), exp.constraints)
            if counts.total:
                print(counts.describe(), file=sys.stderr)
        _write_outputs(args, exp, out)
    except KeyboardInterrupt:
        return _interrupted(out)
    if store.db_path(out).exists() and (refused := store.load_refusals(out)):
        print(refusal_summary(refused), file=sys.stderr)
    if summary.failed:
        print(failure_summary(summary.failed, summary.done, out), file=sys.stderr)
        return EXIT_POINTS_FAILED
    return 0


def refusal_summary(refused: list[dict[str, Any]]) -> str:
    """The stored refusals, grouped by design, mapper and reason, each with its points.

    Refused points (`refusals: record`) are a finished outcome: listed here, in the report's
    Refusals table and in the exports (status refused), never ranked.
    """
    from attnsim.reports.dse.store import REFUSAL

    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in refused:
        key = (str(row.get("design")), str(row.get("mapper")), str(row.get(REFUSAL)))
        groups.setdefault(key, []).append(row)
    designs = len({design for design, _, _ in groups})
    lines = [
        f"attnsim run: {len(refused)} points of {designs} designs refused by their mapper "
        "(status refused: listed in the report, never ranked):"
    ]
    for (design, mapper, reason), rows in groups.items():
        where = _points_text(rows)
        lines.append(f"  design {design}, mapper {mapper} ({where}): {reason}")
    return "\n".join(lines)


def _points_text(rows: list[dict[str, Any]]) -> str:
    """`3 points: workload w, seq_len 4K, 16K, 64K` for a group of refused rows."""
    from attnsim.reports.page.compare import group_label

    workloads = list(dict.fromkeys(str(r.get("workload")) for r in rows))
    lengths = list(dict.fromkeys(group_label(r, ["seq_len"]) for r in rows))
    count = f"{len(rows)} point" + ("s" if len(rows) != 1 else "")
    return f"{count}: workload {', '.join(workloads)}, seq_len {', '.join(lengths)}"


def _interrupted(out: Path) -> int:
    print(f"interrupted: finished points are kept in {out}; re-run to continue", file=sys.stderr)
    return EXIT_INTERRUPTED


def _write_outputs(args: argparse.Namespace, exp: Any, out: Path) -> None:
    """The experiment copy, the exported tables and the report."""
    from attnsim.reports.dse import store

    copy = Path(out) / "experiment.yaml"  # the report reads the experiment's objectives here
    text = Path(args.experiment).read_bytes()
    if not copy.is_file() or copy.read_bytes() != text:
        copy.write_bytes(text)
    if _up_to_date(out, exp):
        print(f"{out}: nothing changed since the tables and report were written; kept them")
    else:
        for fmt in exp.formats:
            export_fn = store.export_csv if fmt == "csv" else store.export_jsonl
            print(f"wrote {export_fn(out, constraints=exp.constraints)}")
        if exp.report:
            from attnsim.reports.page.report import write_report

            if not args.quiet:
                print(f"writing {Path(out) / 'report.html'} ...", file=sys.stderr, flush=True)
            print(f"wrote {write_report(out)}")


def _experiment_file(experiment: Path | None, example: str | None) -> Path:
    """The experiment file named on the command line: a path, or a shipped example's."""
    if (experiment is None) == (example is None):
        raise UsageError("give an experiment file or --example NAME (not both)")
    if example is not None:
        from attnsim.reports.examples import example_path

        return example_path(example)
    assert experiment is not None
    return experiment


def _up_to_date(out: Path, exp: object) -> bool:
    """Whether the report and exports come from this very store, experiment file and version.

    A re-run that evaluated nothing new then rewrites nothing.
    """
    from attnsim.reports.page.report import REPORT_NAME, stamp_of
    from attnsim.reports.page.report_data import inputs_fingerprint
    from attnsim.reports.page.report_page import attnsim_version

    if not getattr(exp, "report", False):
        return False
    names = [f"results.{fmt}" for fmt in getattr(exp, "formats", ())]
    if not all((Path(out) / n).is_file() for n in names):
        return False
    fingerprint = inputs_fingerprint(out)
    return bool(fingerprint) and stamp_of(Path(out) / REPORT_NAME) == (
        f"{fingerprint}-{attnsim_version()}"
    )


def failure_summary(failed: int, evaluated: int, out: Path) -> str:
    """How many points failed, the first errors (from the store), and where the rest are."""
    from attnsim.reports.dse import store

    lines = [f"attnsim run: {failed} of {evaluated} points evaluated in this run failed"]
    for f in store.load_failures(out)[:SHOWN_ERRORS]:
        values = ", ".join(
            f"{k.removeprefix('point.')}={v}" for k, v in f.items() if k.startswith("point.")
        )
        where = f"design {f['design']}" + (f", {values}" if values else "")
        lines.append(f"  {where}: {f['error']}")
    lines.append(f"every error: attnsim export {out} --format jsonl (status 'failed')")
    return "\n".join(lines)


def export(args: argparse.Namespace) -> int:
    """Export the store to CSV or JSON lines."""
    from attnsim.reports.dse import store

    if not store.db_path(args.out_dir).exists():
        raise UsageError(f"{args.out_dir}: no {store.DB_NAME} (run `attnsim run` first)")
    from attnsim.reports.dse.feasibility import constraints_from_json

    constraints = constraints_from_json(store.read_meta(args.out_dir).get("constraints", "[]"))
    fn = store.export_csv if args.format == "csv" else store.export_jsonl
    print(f"wrote {fn(args.out_dir, args.output, constraints)}")
    return 0
