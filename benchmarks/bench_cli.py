"""The speed a user feels, as wall-clock seconds of fresh processes (the README quotes these).

Run: python benchmarks/bench_cli.py [--repeat N] [--out DIR]

Measures, each the median of N fresh processes (`python -m attnsim.reports.cli ...` from this tree):
- `attnsim --help` and `attnsim --version` (target: under 0.3 s);
- `attnsim map` of one FuseMax point (target: under 1 s);
- the README's main job (`attnsim run examples/fusemax-vs-flat.yaml`) into a new folder,
  once: its total and the report alone (`attnsim report DIR`, target: under 3 s);
- the main job re-run with nothing new (nothing is rewritten: report.html keeps its mtime).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAP = (
    "map --arch fusemax --cascade attention-1pass-mh --mapper fusemax "
    "--sizes B=1,H=16,P=4K,M=4K,E=64,F=64"
).split()


def timed(args: list[str]) -> float:
    """Wall seconds of one `python -m attnsim.reports.cli ARGS` process (must exit 0)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "attnsim.reports.cli", *args],
        capture_output=True, text=True, env=env, cwd=ROOT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"attnsim {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return elapsed


def median_of(args: list[str], repeat: int) -> float:
    """The median wall time of `repeat` runs."""
    return statistics.median(timed(args) for _ in range(repeat))


def main() -> int:
    """Print one line per measurement: seconds, target, command."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="main job's folder (default: tmp)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="attnsim-bench-")) / "fusemax-vs-flat"
    example = str(ROOT / "examples" / "fusemax-vs-flat.yaml")
    rows = [
        ("attnsim --help", median_of(["--help"], args.repeat), 0.3),
        ("attnsim --version", median_of(["--version"], args.repeat), 0.3),
        ("attnsim map (one FuseMax point)", median_of(MAP, args.repeat), 1.0),
    ]
    rows.append(("main job, fresh folder", timed(["run", example, "--out", str(out), "--quiet",
                                                  "--fresh"]), None))  # fmt: skip
    rows.append(("main job's report alone", median_of(["report", str(out)], args.repeat), 3.0))
    before = (out / "report.html").stat().st_mtime_ns
    rows.append(("main job re-run, nothing new", timed(["run", example, "--out", str(out),
                                                        "--quiet"]), None))  # fmt: skip
    kept = (out / "report.html").stat().st_mtime_ns == before
    print(f"{os.cpu_count()} CPUs, python {sys.version.split()[0]}, median of {args.repeat}")
    for name, seconds, target in rows:
        verdict = "" if target is None else ("ok" if seconds < target else "OVER")
        limit = f"< {target:g} s" if target is not None else ""
        print(f"{seconds:7.2f} s  {limit:9} {verdict:4}  {name}")
    print(f"re-run rewrote report.html: {'no' if kept else 'YES'}")
    return 0 if kept and all(t is None or s < t for _, s, t in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
