"""`attnsim reproduce fusemax`: tables, figures and a comparison with the published numbers."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from attnsim.mappers.workloads import MODELS, length_label, parse_length
from attnsim.reports.cli.parsers import Subparsers
from attnsim.reports.errors import UsageError

REFERENCE_HELP = (
    "directory with the FuseMax artifact's published CSVs (default: shared/reference/fusemax "
    "beside the repository or the working directory, if present)"
)


def add_parser(subparsers: Subparsers[argparse.ArgumentParser]) -> None:
    """Register `reproduce`."""
    p = subparsers.add_parser("reproduce", help="reproduce a paper's tables and figures")
    p.add_argument("paper", choices=["fusemax"], help="which paper")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--models", default=",".join(MODELS), help="comma list of " + ", ".join(MODELS))
    p.add_argument("--lengths", default="1K,4K,16K,64K,256K,1M", help="comma list, e.g. 1K,4K")
    p.add_argument("--reference", type=Path, default=None, help=REFERENCE_HELP)
    p.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    p.add_argument(
        "--no-compare",
        action="store_true",
        help="write the tables and figures without comparing them to the published numbers",
    )
    p.set_defaults(handler=run)


def reference_candidates() -> list[Path]:
    """Where the published tables are looked for when --reference is not given."""
    found: list[Path] = []
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        for root in (base, base.parent):
            candidate = root / "shared" / "reference" / "fusemax"
            if candidate not in found:
                found.append(candidate)
    # the copy that ships with the package (reports/paper/data/fusemax/README.md says what)
    found.append(Path(__file__).resolve().parents[1] / "paper" / "data" / "fusemax")
    return found


def find_reference(given: Path | None) -> Path:
    """The reference directory to compare with; `UsageError` saying what to do when absent."""
    if given is not None:
        if not given.is_dir():
            raise UsageError(f"--reference: {given} is not a directory")
        return given
    for candidate in reference_candidates():
        if candidate.is_dir():
            return candidate
    looked = ", ".join(str(c) for c in reference_candidates())
    raise UsageError(
        "reproduce compares its tables with the FuseMax artifact's published result tables "
        f"(attn-*.csv, end2end-*.csv, pareto.csv), and found none (looked in {looked}). Pass "
        "--reference DIR with those files, or --no-compare to write the tables and figures "
        "without the comparison"
    )


def run(args: argparse.Namespace) -> int:
    """Reproduce, write, compare, plot."""
    from attnsim.reports.page import plots, tables
    from attnsim.reports.paper import compare
    from attnsim.reports.paper.reproduce import TABLES, reproduce

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise UsageError(f"--models: unknown {', '.join(unknown)}; known: {', '.join(MODELS)}")
    try:
        lengths = [parse_length(x) for x in args.lengths.split(",") if x.strip()]
    except ValueError as exc:
        raise UsageError(f"--lengths: {exc}") from None
    reference = None if args.no_compare else find_reference(args.reference)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    total = len(models) * (len(lengths) + 1)
    done = 0

    def progress(label: str) -> None:
        nonlocal done
        done += 1
        print(f"[{done}/{total}] {label}", file=sys.stderr, flush=True)

    rows = reproduce(models, lengths, progress=progress)
    for name in TABLES:
        tables.write_csv(out / f"{name}.csv", rows[name], tables.FUSEMAX_COLUMNS[name])
    elapsed = time.perf_counter() - start
    print(f"wrote {len(TABLES)} tables to {out} in {elapsed:.2f} s")
    means = compare.headline_means(rows)
    print(
        "headline means over "
        f"{means['points']:.0f} points (paper: 6.7x at 79% attention, 5.3x at 83% end to end):"
    )
    print(
        f"  attention: {means['attention_speedup']:.2f}x speedup over FLAT at "
        f"{means['attention_energy_ratio']:.1%} of its energy"
    )
    print(
        f"  end to end: {means['end_to_end_speedup']:.2f}x at "
        f"{means['end_to_end_energy_ratio']:.1%}"
    )
    if not args.no_plots:
        paths = plots.save_all(rows, out)
        print(f"wrote {len(paths)} figures")
    if reference is None:
        print("--no-compare: tables not compared with the published numbers")
        return 0
    comparison = compare.compare_tables(rows, reference)
    comparison.to_csv(out / "comparison.csv")
    summary = comparison.summary()
    (out / "comparison.txt").write_text(summary + "\n")
    print(summary)
    lengths_text = ",".join(length_label(n) for n in lengths)
    print(f"comparison against {reference} ({lengths_text}) written to {out / 'comparison.csv'}")
    return 0 if comparison.ok else 1
