"""GPU only: whether a kernel slows down over sustained back-to-back calls (a probe).

    PYTHONPATH=. python benchmarks/sustained_probe.py --out DIR [--only LABEL,...]

For each case (a kernel build on one non-causal bf16 shape), after an idle 1.5 s (and an L2
flush), calls it back to back for about a second with a CUDA event pair around every call,
while `nvidia-smi` logs the SM clock, board power and the clock-event reasons every 20 ms;
then times it once more with `triton.testing.do_bench` (the suites' way: median, L2 flushed
between runs). Writes DIR/sustained-<device>-<date>.csv (per case: the first call, the median
of the first five, of the last half, do_bench's median, the wall times of the run) with
DIR/sustained-calls-<device>-<date>.csv (every call's time) and DIR/sustained-smi-<...>.csv.

Why: the ping-pong kernel at 128 x 128 with head dim 128 -- the fastest build, ~700 TFLOP/s
-- is priced 12-21% fast on long rows (16K keys and more, several waves) on both the H200 and
the H100, and only there: 128 x 64 and head dim 64 hold within 5%, and so do 8K-key shapes of
the same length in time. The model prices a step from short microbenchmarks. If the first calls
after idle run at the model's step and later ones slow down as the board reaches its power
cap, the gap is the clock under sustained tensor load (a device figure to measure); if the
first call is already slow, it is in the kernel's long-row behaviour.

It was the clock (H200 and H100, 2026-12-06). `--merge CAL FILE` fits the calibration's
`power_cap` from a summary file (`archs.calibration.power.fit_power_cap`: per case the useful
FLOPs, the first five calls' median as the full-clock time and do_bench's median as the
sustained one, do_bench's gap between calls taken as CAL's `bench_head_start_us`); the GPU
model prices 1-pass and 2-pass calls with it.

The `-sig` cases run sigmoid attention (`Score(sigmoid=True)`) on the same builds: the cap
was fitted on softmax calls, and the ping-pong sigmoid call at 1 x 16 x 8192, priced at the
fit's demand for its FLOP rate, ran 12-15% faster than priced on the H200 (2026-12-07), while
longer causal sigmoid calls needed the cap's full slowdown. `--only sigmoid` runs the
sigmoid cases and their softmax twins alone (the `sustained-sigmoid` step of
`device_pending.sh`). `--merge` fits on the softmax cases only (column `score`); a summary
written before that column existed is all softmax.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from attnsim.kernels.spec import device_slug
from attnsim.reports.page.tables import write_csv

# label: (batch, heads, seq, head_dim, (block_m, block_n, warps, stages), schedule)
PP128 = ((128, 128, 8, 3), "pingpong")
PP64 = ((128, 64, 8, 3), "pingpong")
PLAIN = ((128, 128, 8, 3), "plain")
# a case's score function: softmax unless its label says -sig (sigmoid)
CASES = {
    "pp128-h16-16k": (1, 16, 16384, 128, *PP128),
    "pp128-h4-16k": (1, 4, 16384, 128, *PP128),
    "pp128-h1-16k": (1, 1, 16384, 128, *PP128),
    "pp128-h16-8k-b2": (2, 16, 8192, 128, *PP128),
    "pp128-h8-12k": (1, 8, 12288, 128, *PP128),
    "pp128-h64-4k": (1, 64, 4096, 128, *PP128),
    "pp128-h16-32k": (1, 16, 32768, 128, *PP128),
    "pp64-h16-16k": (1, 16, 16384, 128, *PP64),
    "plain-h16-16k": (1, 16, 16384, 128, *PLAIN),
    "pp128-d64-h16-16k": (1, 16, 16384, 64, *PP128),
    "pp128-h16-8k": (1, 16, 8192, 128, *PP128),
    "pp128-sig-h16-8k": (1, 16, 8192, 128, *PP128),
    "pp64-h16-8k": (1, 16, 8192, 128, *PP64),
    "pp64-sig-h16-8k": (1, 16, 8192, 128, *PP64),
    "pp128-sig-h16-16k": (1, 16, 16384, 128, *PP128),
    "plain-sig-h16-16k": (1, 16, 16384, 128, *PLAIN),
}
# `--only sigmoid`: the sigmoid cases and their softmax twins
SIGMOID_CASES = ("pp128-h16-8k", "pp128-sig-h16-8k", "pp64-h16-8k", "pp64-sig-h16-8k",
                 "pp128-h16-16k", "pp128-sig-h16-16k", "plain-h16-16k",
                 "plain-sig-h16-16k")  # fmt: skip


def score_of(label: str) -> str:
    """A case's score function by its label: "sigmoid" for the -sig cases, else "softmax"."""
    return "sigmoid" if "-sig-" in label else "softmax"


SUSTAIN_S = 1.0
IDLE_S = 1.5
SMI_FIELDS = "timestamp,clocks.sm,power.draw,temperature.gpu"
REASONS = ("sw_power_cap", "hw_slowdown", "sw_thermal_slowdown", "hw_power_brake_slowdown")


def _smi_query() -> str:
    """The nvidia-smi fields to log: the clock-event reasons under whichever name it knows."""
    for prefix in ("clocks_event_reasons", "clocks_throttle_reasons"):
        fields = SMI_FIELDS + "".join(f",{prefix}.{r}" for r in REASONS)
        ok = subprocess.run(["nvidia-smi", f"--query-gpu={fields}", "--format=csv"],
                            capture_output=True).returncode == 0  # fmt: skip
        if ok:
            return fields
    return SMI_FIELDS


def _wall() -> str:
    return dt.datetime.now().strftime("%Y/%m/%d %H:%M:%S.%f")[:-3]


MERGE_COLUMNS = (("batch", int), ("heads", int), ("seq", int), ("head_dim", int),
                 ("first5_median_ms", float), ("do_bench_median_ms", float))  # fmt: skip


Case = tuple[float, float, float]  # (FLOPs, first five calls' median s, do_bench's median s)


def read_cases(summary: Path) -> tuple[dict[str, tuple[str, Case]], list[str]]:
    """Per case label of a summary CSV: (score, case); and every bad cell as FILE:LINE: field."""
    import csv

    with summary.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    cases: dict[str, tuple[str, Case]] = {}
    problems = []
    for line, r in enumerate(rows, start=2):  # line 1: the header
        got: dict[str, float] = {}
        for key, kind in MERGE_COLUMNS:
            try:
                got[key] = kind(r[key])
                assert got[key] > 0
            except (KeyError, TypeError, ValueError, AssertionError):
                problems.append(f"{summary}:{line}: {key}: expected a positive {kind.__name__}, "
                                f"got {r.get(key)!r}")  # fmt: skip
        if len(got) == len(MERGE_COLUMNS):
            flops = 4.0 * got["batch"] * got["heads"] * got["seq"] ** 2 * got["head_dim"]
            case = (flops, got["first5_median_ms"] * 1e-3, got["do_bench_median_ms"] * 1e-3)
            cases[r.get("case") or f"line {line}"] = (r.get("score") or "softmax", case)
    return cases, problems


def _calibration(cal: Path) -> tuple[dict[str, Any], float] | None:
    """CAL's YAML and do_bench's gap (s), or None (said on stderr) without the gap."""
    from attnsim.einsum_ir.spec import read_yaml

    data = read_yaml(cal)  # the hardened reader: a bad file is a located SpecError
    gap_us = data.get("bench_head_start_us") if isinstance(data, dict) else None
    if not isinstance(gap_us, (int, float)) or not gap_us > 0:
        print(f"{cal}: needs bench_head_start_us (do_bench's gap between calls)", file=sys.stderr)
        return None
    return data, gap_us * 1e-6


def _softmax_cap(summary: Path, gap_s: float) -> Any:
    """The power cap fitted on a summary's softmax cases (None: the problems on stderr)."""
    from attnsim.archs.calibration.power import fit_power_cap

    cases, problems = read_cases(summary)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return None
    try:  # the cap is the softmax calls' fit
        soft = [c for score, c in cases.values() if score == "softmax"]
        return fit_power_cap(soft, gap_s, summary.name)
    except ValueError as exc:
        print(f"{summary}: {exc}", file=sys.stderr)
        return None


def _write(cal: Path, data: dict[str, Any]) -> None:
    import yaml

    text = cal.read_text(encoding="utf-8")
    header = "".join(line + "\n" for line in text.splitlines() if line.startswith("# Written"))
    cal.write_text(header + yaml.safe_dump(data, sort_keys=False, width=100), encoding="utf-8")
    print(f"power_cap {data['power_cap']} -> {cal}", file=sys.stderr)


def merge(cal: Path, summary: Path) -> int:
    """Fit `power_cap` from a summary CSV and write it into calibration file `cal`.

    A sigmoid weight already there (`--merge-sigmoid`, fitted against its own device's cap)
    is kept.
    """
    got = _calibration(cal)
    if got is None:
        return 2
    data, gap_s = got
    cap = _softmax_cap(summary, gap_s)
    if cap is None:
        return 2
    kept = {k: v for k, v in (data.get("power_cap") or {}).items() if k.startswith("sigmoid_")}
    data["power_cap"] = {"knee_tflops": round(cap.knee_flops_per_s / 1e12, 1),
                         "slowdown_per_tflops": round(cap.slowdown_per_flops_per_s * 1e12, 7),
                         "gap_us": data["bench_head_start_us"], "cases": cap.cases,
                         "source": summary.name, **kept}  # fmt: skip
    _write(cal, data)
    return 0


def merge_sigmoid(cal: Path, pairs: Path, capfile: Path) -> int:
    """Fit `power_cap.sigmoid_weight` from PAIRS' sigmoid cases and their softmax twins.

    Against the cap fitted on CAPFILE's softmax cases (a summary of the same device as PAIRS;
    PAIRS itself may be it), with CAL's do_bench gap; written into CAL's `power_cap`, which
    must exist.
    """
    from attnsim.archs.calibration.power import fit_sigmoid_weight

    got = _calibration(cal)
    if got is None:
        return 2
    data, gap_s = got
    if not isinstance(data.get("power_cap"), dict):
        print(
            f"{cal}: no power_cap to weight (merge a summary with --merge first)", file=sys.stderr
        )
        return 2
    cap = _softmax_cap(capfile, gap_s)
    cases, problems = read_cases(pairs)
    if cap is None or problems:
        print("\n".join(problems), file=sys.stderr)
        return 2
    twins = [(cases[label.replace("-sig", "")][1], case) for label, (score, case) in cases.items()
             if score == "sigmoid" and label.replace("-sig", "") in cases]  # fmt: skip
    try:
        weight = fit_sigmoid_weight(twins, cap)
    except ValueError as exc:
        print(f"{pairs}: {exc}", file=sys.stderr)
        return 2
    data["power_cap"]["sigmoid_weight"] = weight
    data["power_cap"]["sigmoid_source"] = (
        f"{pairs.name} ({len(twins)} sigmoid cases against their softmax twins; the cap fitted "
        f"on {capfile.name}'s softmax cases: knee {cap.knee_flops_per_s / 1e12:.0f} TFLOP/s, "
        f"slope {cap.slowdown_per_flops_per_s * 1e12:.7f} per TFLOP/s)"
    )
    _write(cal, data)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Log clocks, run every case, write the three CSVs (or --merge a summary, no GPU)."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--out", type=Path)
    ap.add_argument(
        "--only",
        default="",
        help="comma-separated case labels, or sigmoid: the "
        "sigmoid cases and their softmax twins (default: all)",
    )
    ap.add_argument("--merge", nargs=2, type=Path, metavar=("CAL", "FILE"),
                    help="fit power_cap from summary FILE into CAL (no GPU)")  # fmt: skip
    ap.add_argument("--merge-sigmoid", nargs=3, type=Path, metavar=("CAL", "PAIRS", "CAP"),
                    help="fit CAL's power_cap.sigmoid_weight from summary PAIRS' sigmoid cases "
                    "and their softmax twins, against the cap of summary CAP's softmax cases "
                    "(the same device as PAIRS; no GPU)")  # fmt: skip
    args = ap.parse_args(argv)
    for option, files, fn in (("--merge-sigmoid", args.merge_sigmoid, merge_sigmoid),
                              ("--merge", args.merge, merge)):  # fmt: skip
        if files is None:
            continue
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            ap.error(f"{option}: no such file: {', '.join(missing)}")
        from attnsim.einsum_ir.spec import SpecError

        try:
            return int(fn(*files))
        except SpecError as exc:  # a malformed calibration file: located, every problem
            print(f"sustained_probe: error: {exc}", file=sys.stderr)
            return 2
    if args.out is None:
        ap.error("give --out DIR (measure) or --merge CAL FILE")
    only = set(args.only.split(",")) - {""}
    if "sigmoid" in only:
        only = (only - {"sigmoid"}) | set(SIGMOID_CASES)
    unknown = sorted(only - set(CASES))
    if unknown:
        ap.error(f"--only: no such case: {', '.join(unknown)} (cases: {', '.join(CASES)}, or "
                 "sigmoid)")  # fmt: skip
    import torch
    import triton.testing

    from attnsim.kernels.triton.attn_fwd import attention_fwd
    from attnsim.kernels.triton.attn_options import Score

    if not torch.cuda.is_available():
        print("sustained_probe needs a CUDA GPU", file=sys.stderr)
        return 2
    cases = {k: v for k, v in CASES.items() if not only or k in only}
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = f"{device_slug(torch.cuda.get_device_name())}-{dt.date.today().isoformat()}"
    flush = torch.empty(256 * 2**20, dtype=torch.int8, device="cuda")
    summary, calls = [], []
    with (args.out / f"sustained-smi-{stamp}.csv").open("w") as smi_out:
        cmd = ["nvidia-smi", f"--query-gpu={_smi_query()}", "--format=csv", "-lms", "20"]
        smi = subprocess.Popen(cmd, stdout=smi_out, stderr=subprocess.DEVNULL)
        try:
            for label, (b, h, s, d, (bm, bn, w, st), sched) in cases.items():
                q, k, v = (torch.randn(b, h, s, d, device="cuda", dtype=torch.bfloat16)
                           for _ in range(3))  # fmt: skip

                score = Score(sigmoid=score_of(label) == "sigmoid")

                def call(q=q, k=k, v=v, bm=bm, bn=bn, w=w, st=st, sched=sched, score=score):  # type: ignore[no-untyped-def]
                    return attention_fwd(q, k, v, False, block_m=bm, block_n=bn, num_warps=w,
                                         num_stages=st, schedule=sched, score=score)  # fmt: skip

                call()  # compile
                flush.zero_()
                torch.cuda.synchronize()
                time.sleep(IDLE_S)
                wall0, t0 = _wall(), time.monotonic()
                times: list[float] = []
                while time.monotonic() - t0 < SUSTAIN_S or len(times) < 8:
                    e0, e1 = (
                        torch.cuda.Event(enable_timing=True),
                        torch.cuda.Event(enable_timing=True),
                    )
                    e0.record()
                    call()
                    e1.record()
                    e1.synchronize()
                    times.append(e0.elapsed_time(e1))
                wall1 = _wall()
                bench = float(
                    triton.testing.do_bench(call, warmup=25, rep=200, return_mode="median")
                )
                half = times[len(times) // 2 :]
                flop = 4 * b * h * s * s * d
                row = dict(case=label, batch=b, heads=h, seq=s, head_dim=d,
                           tiling=f"{bm}x{bn}/w{w}/s{st}", schedule=sched,
                           score=score_of(label), calls=len(times),
                           first_ms=round(times[0], 5),
                           first5_median_ms=round(statistics.median(times[:5]), 5),
                           last_half_median_ms=round(statistics.median(half), 5),
                           do_bench_median_ms=round(float(bench), 5),
                           tflops_first=round(flop / times[0] / 1e9, 1),
                           tflops_last=round(flop / statistics.median(half) / 1e9, 1),
                           wall_start=wall0, wall_end=wall1)  # fmt: skip
                summary.append(row)
                calls += [dict(case=label, call=i, ms=round(t, 5)) for i, t in enumerate(times)]
                print(row, file=sys.stderr, flush=True)
                del q, k, v
                torch.cuda.empty_cache()
        finally:
            smi.terminate()
            smi.wait()
    for name, rows in (("sustained", summary), ("sustained-calls", calls)):
        if rows:
            write_csv(args.out / f"{name}-{stamp}.csv", rows, list(rows[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
