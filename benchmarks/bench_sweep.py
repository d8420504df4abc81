"""Benchmark sweep throughput: design points per minute per core through the runner.

Run: python benchmarks/bench_sweep.py [--points N] [--big N] [--jobs J] [--out DIR]

Prints, from one run on this machine:
- baseline: the FuseMax mapper called directly in a loop on the same points (no store,
  no expansion, no processes), in points/min;
- the runner on the same sweep with one in-process worker (`--jobs 1`): points/min/core
  and its overhead relative to the baseline;
- a big sweep (default 100,000 points) on `--jobs` processes, interrupted after a third and
  resumed, with its points/min/core and peak RSS of the driver and of the workers.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

from attnsim.reports.dse.experiment import load_experiment
from attnsim.reports.dse.runner import evaluate_point, run_experiment

SPEC = """\
name: bench
architectures:
  fusemax: {{preset: fusemax}}
cascades:
  one: attention-1pass-mh
workloads:
  w: {{sizes: {{B: 8, H: 12, E: 64, F: 64}}}}
mappers:
  fusemax: fusemax
designs:
  fm: {{arch: fusemax, cascade: one, mapper: fusemax}}
sweep:
  grid:
    workload.seq_len: [{seqs}]
    arch.overrides.buffer_bytes: [1MiB, 2MiB, 4MiB, 8MiB, 16MiB, 32MiB, 64MiB, 128MiB, 1GiB, 2GiB]
    arch.overrides.array_shapes.array_2d: [[64, 64], [128, 128], [256, 256], [512, 512]]
    workload.sizes.B: [{batches}]
outputs: {{formats: []}}
"""


def write_spec(folder: Path, points: int) -> Path:
    """A FuseMax sweep of about `points` points (40 architectures x lengths x batches)."""
    n = max(1, points // 40)
    batches = min(n, 25)
    lengths = max(1, n // batches)
    seqs = ", ".join(str(1024 + 64 * i) for i in range(lengths))
    path = folder / f"bench-{points}.yaml"
    text = SPEC.format(seqs=seqs, batches=", ".join(str(b + 1) for b in range(batches)))
    path.write_text(text)
    return path


def rss_mib(who: int) -> float:
    """Peak resident set size in MiB (Linux reports KiB)."""
    return resource.getrusage(who).ru_maxrss / 1024


def main() -> None:
    """Run the benchmark and print its numbers."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=4000, help="points for the per-core rate")
    parser.add_argument("--big", type=int, default=100_000, help="points in the big sweep")
    parser.add_argument("--jobs", type=int, default=2, help="processes for the big sweep")
    parser.add_argument("--out", type=Path, default=None, help="scratch folder (default: tmp)")
    args = parser.parse_args()
    folder = args.out or Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    folder.mkdir(parents=True, exist_ok=True)

    exp = load_experiment(write_spec(folder, args.points))
    points = [(p.seq, p.point_id, p.resolved, p.values) for p in exp.points()]
    # Baseline: the mapper alone (arch, cascade and mapper built once, as in a worker).
    from attnsim.reports.dse.runner import _arch, _cascade, _dumps, _mapper

    start = time.perf_counter()
    for _, _, r, _ in points:
        a, m = r["arch"], r["mapper"]
        arch = _arch(a["preset"], "", _dumps(a["overrides"]))
        _mapper(m["name"], _dumps(m["options"])).map(
            _cascade(_dumps(r["cascade"])), arch, dict(r["workload"]["sizes"])
        )
    base = len(points) / (time.perf_counter() - start) * 60
    _arch.cache_clear()  # the runner starts cold too
    start = time.perf_counter()
    for p in points:
        evaluate_point(p)
    worker = len(points) / (time.perf_counter() - start) * 60
    out = folder / "one"
    shutil.rmtree(out, ignore_errors=True)
    summary = run_experiment(exp, out, jobs=1, quiet=True)
    runner = summary.done / summary.elapsed_s * 60
    print(f"sweep of {len(points)} FuseMax points (B, length, buffer, array varied)")
    print(f"  baseline, mapper alone in a loop:   {base:10,.0f} points/min")
    print(f"  worker (mapper + row + JSON):       {worker:10,.0f} points/min")
    print(f"  runner, 1 core (expansion, store):  {runner:10,.0f} points/min/core "
          f"({runner / base:.0%} of baseline)")  # fmt: skip

    big = load_experiment(write_spec(folder, args.big))
    out = folder / "big"
    shutil.rmtree(out, ignore_errors=True)
    first = run_experiment(big, out, jobs=args.jobs, budget=big.count // 3, quiet=True)
    rest = run_experiment(big, out, jobs=args.jobs, quiet=True)
    elapsed = first.elapsed_s + rest.elapsed_s
    done = first.done + rest.done
    rate = done / elapsed * 60 / args.jobs
    print(f"big sweep: {big.count:,} points on {args.jobs} processes, stopped after "
          f"{first.done:,} and resumed ({rest.skipped:,} skipped, {rest.done:,} more): "
          f"{elapsed:.0f} s, {rate:,.0f} points/min/core, {rest.ok + first.ok:,} ok")  # fmt: skip
    print(f"peak RSS: driver {rss_mib(resource.RUSAGE_SELF):.0f} MiB, "
          f"largest worker {rss_mib(resource.RUSAGE_CHILDREN):.0f} MiB")  # fmt: skip
    if args.out is None:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
