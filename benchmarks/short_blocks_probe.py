"""GPU only: what a later wave of blocks costs by row length, 1-32 key tiles (a probe).

    PYTHONPATH=. python benchmarks/short_blocks_probe.py --out FILE

Why (issue 18): on the H200 grids of thousands of blocks over short rows (the `regimes`
suite's batch x heads > 128 at <= 512 keys, and the validation suite's 512-1K-key rows at
64 x 64 tiles, 8-16 key tiles a block) ran 8-17% faster than the model prices them; the
same tiling's rows of 64 tiles are priced within 1%. The model prices a later-wave block as
its calibrated fixed time plus its steps, and `kernels.calibrate.microbench_blocks` derives
that fixed time from blocks of 2 and 8 key tiles only. Whether shorter and longer blocks
follow that line is what this measures: the time of one later wave of blocks by row length.

Method: the kernels of `microbench_blocks` (the plain 1-pass kernel with host-built and
in-kernel descriptors, the ping-pong kernel, the 2-pass passes) on its calibration shapes
(one query tile per head, or Q_TILES sharing a head's K/V; non-causal; seq_k = n * BLOCK_N)
for n in STEPS. Grids: one wave (sm_count x k blocks, k = the compiled kernel's blocks per
SM) and WAVES waves; the time of one later wave (k blocks per SM, started as slots free) is

    wave_us(n) = (T_WAVES(n) - T_1(n)) / (WAVES - 1)

Entries (calibration format, mode `<mode>-later`; nothing reads them yet): `steps: n`,
`wave_us`, `q_tiles`, and the raw times `t1_us`, `tw_us`. `--compare FILE` prints them
against the model's wave time for the same grids (CPU).

`--q-sweep DIR`: (before the wave transient) four-query-tile grids were priced within a few
percent (H100, 2026-12-06) while the suites' heads of 8-16 query tiles were not; this times
calls of 4096 query tiles
with 1, 2, 4, 8 or 16 of them per head through the suites' own harness (`kernels.bench`:
rotating inputs, its do_bench settings), so `attnsim validate gpu DIR/qsweep-*.csv` shows
the model's error by query tiles per head and the harness's part apart from the shape's.

`--wave-sweep FILE`: whether a later wave's cost depends on how many waves the call has (the
calibration's later-wave figures come from 4-wave grids; the q-sweep's 31-wave calls of
4-tile blocks ran ~1.4 us a block faster than those figures). Grids of 1-64 waves of blocks
of 4 and 16 key tiles, one or four query tiles per head, each timed with the calibration's
do_bench settings (`short`: 5 ms warm-up, 30 ms) and the suites' (`long`: 100 ms, 400 ms).
Entries: `waves`, `steps`, `q_tiles`, `bench`, `t_us` (median call time).
`--merge-transients CAL SWEEP...` turns such files into the calibration's `wave_transients`
(`wave_transients` below; the GPU model's one-off transient per call of several waves).

`--merge-later CAL FILE...` puts --out files' later waves in the calibration's `later_waves`
(`archs.calibration.later_waves`): the GPU model prices no later-wave block of a measured
kernel, tiling, query tiles and length faster than its wave here.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

STEPS = (1, 2, 4, 8, 16, 32)
WAVES = 8
Q_TILES = (1, 4)
BUDGET_S = 240.0


def plan() -> tuple[tuple[str, int, tuple[int, int, int, int], str], ...]:
    """(mode, head dim, tiling, tiles) of every kernel measured (see the module docstring)."""
    from attnsim.kernels.calibrate import microbench_blocks, microbench_pingpong

    # in order of use: what the suites' calls run (the plain kernel through host-built
    # descriptors, the ping-pong kernel), then in-kernel descriptors and the 2-pass passes
    plain = microbench_blocks.BLOCK_PLAN
    host = tuple(p for p in plain if p[0] == "online" and p[3] == "host")
    rest = tuple(p for p in plain if p not in host)
    return host + microbench_pingpong.BLOCK_PLAN + rest


def measure(torch: Any) -> dict[str, list[dict[str, Any]]]:
    """`<mode>-later` entries for every kernel of `plan()`."""
    import triton

    from attnsim.kernels.calibrate.microbench_blocks import _caller, resident, within_budget
    from attnsim.kernels.calibrate.microbench_masks import _common
    from attnsim.kernels.triton.common import ensure_allocator

    ensure_allocator()
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    out: list[dict[str, Any]] = []
    for mode, d, tiling, tiles in within_budget(plan(), BUDGET_S):
        try:
            k = resident(torch, mode, d, tiling, sms, STEPS[0], tiles)
            for q_tiles in Q_TILES:
                for n in STEPS:
                    times = []
                    for waves in (1, WAVES):
                        call, _ = _caller(torch, mode, d, tiling, sms * k * waves, n, tiles,
                                          q_tiles)  # fmt: skip
                        times.append(float(triton.testing.do_bench(call, warmup=5, rep=30)) * 1e3)
                        del call
                        torch.cuda.empty_cache()
                    wave = (times[1] - times[0]) / (WAVES - 1)
                    entry = {**_common(f"{mode}-later", d, tiling, k), "tiles": tiles,
                             "q_tiles": q_tiles, "steps": n, "waves": WAVES,
                             "wave_us": round(wave, 3), "t1_us": round(times[0], 2),
                             "tw_us": round(times[1], 2)}  # fmt: skip
                    out.append(entry)
                    print(f"  {mode} d{d} {tiling} {tiles} k={k} q{q_tiles} n={n}: "
                          f"T={[round(t, 2) for t in times]} wave {wave:.2f} us",
                          file=sys.stderr)  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - keep the other kernels
            print(f"  skip {mode} d{d} {tiling} {tiles}: {exc}"[:300], file=sys.stderr)
    return {"attention_blocks": out}


# --q-sweep: (tiling, schedule) of the head-dim-128 1-pass builds whose many-block calls the
# suites priced slow (64 x 64 by 10-16%, ping-pong 128 x 128 by 6-17%), and a control (128 x 64)
SWEEP_TILINGS = (((64, 64, 4, 3), "plain"), ((128, 128, 8, 3), "pingpong"),
                 ((128, 128, 8, 3), "plain"), ((128, 64, 8, 3), "plain"))  # fmt: skip
SWEEP_Q_TILES = (1, 2, 4, 8, 16)
SWEEP_KEYS = (512, 2048)
SWEEP_BLOCKS = 4096  # query tiles of every call: ~15 waves at 2 blocks per SM, 31 at one


def sweep_configs() -> list[Any]:
    """The suites' harness configurations of the q-sweep (see `main`'s --q-sweep)."""
    from attnsim.kernels.bench.suites import Config
    from attnsim.kernels.spec import kernel_shape

    out = []
    for tiling, schedule in SWEEP_TILINGS:
        for keys in SWEEP_KEYS:
            for q in SWEEP_Q_TILES:
                heads = SWEEP_BLOCKS // q
                shape = kernel_shape(heads // 16, 16, q * tiling[0], keys, 128, False)
                out.append(Config("triton-1pass", shape, tiling, schedule))
    return out


# --wave-sweep: the suites' 1-pass builds at head dim 128 (host descriptors, ping-pong)
WAVE_PLAN = (("online", 128, (64, 64, 4, 3), "host"), ("online", 128, (128, 128, 8, 3), "host"),
             ("pingpong", 128, (128, 128, 8, 3), "device"))  # fmt: skip
WAVE_COUNTS = (1, 2, 4, 8, 16, 32, 64)
WAVE_STEPS = (4, 16)
WAVE_BENCH = {"short": (5, 30), "long": (100, 400)}  # do_bench (warmup_ms, rep_ms)


def transient_plan() -> tuple[tuple[str, int, tuple[int, int, int, int], str], ...]:
    """--transients: the 1-pass builds of `plan()` (host descriptors, ping-pong) WAVE_PLAN lacks."""
    timed = {p[:3] for p in WAVE_PLAN}
    builds = [p for p in plan() if p[0] == "pingpong" or p[3] == "host"]
    return tuple(p for p in builds if p[:3] not in timed)


def wave_sweep(
    torch: Any,
    kernels: tuple[tuple[str, int, tuple[int, int, int, int], str], ...] = WAVE_PLAN,
    counts: tuple[int, ...] = WAVE_COUNTS,
    steps: tuple[int, ...] = WAVE_STEPS,
) -> dict[str, list[dict[str, Any]]]:
    """Call time by wave count (see the module docstring's --wave-sweep)."""
    import triton

    from attnsim.kernels.calibrate.microbench_blocks import _caller, resident
    from attnsim.kernels.calibrate.microbench_masks import _common
    from attnsim.kernels.triton.common import ensure_allocator

    ensure_allocator()
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    out: list[dict[str, Any]] = []
    for mode, d, tiling, tiles in kernels:
        try:
            k = resident(torch, mode, d, tiling, sms, steps[0], tiles)
            for q_tiles in Q_TILES:
                for n in steps:
                    for waves in counts:
                        call, _ = _caller(torch, mode, d, tiling, sms * k * waves, n, tiles,
                                          q_tiles)  # fmt: skip
                        for bench, (warm, rep) in WAVE_BENCH.items():
                            t = float(triton.testing.do_bench(call, warmup=warm, rep=rep)) * 1e3
                            out.append({**_common(f"{mode}-waves", d, tiling, k), "tiles": tiles,
                                        "q_tiles": q_tiles, "steps": n, "waves": waves,
                                        "bench": bench, "t_us": round(t, 2)})  # fmt: skip
                        print(f"  {mode} {tiling} q{q_tiles} n={n} W={waves}: "
                              f"{[e['t_us'] for e in out[-2:]]}", file=sys.stderr)  # fmt: skip
                        del call
                        torch.cuda.empty_cache()
        except Exception as exc:  # noqa: BLE001 - keep the other kernels
            print(f"  skip {mode} d{d} {tiling} {tiles}: {exc}"[:300], file=sys.stderr)
    return {"attention_waves": out}


TRANSIENT_STEPS = 4  # the block length whose grids give the transient (see wave_transients)


def wave_transients(entries: list[dict[str, Any]], source: str = "") -> list[dict[str, Any]]:
    """`wave_transients` calibration entries from a --wave-sweep file's entries (no GPU).

    Per kernel, tiling and query tiles per head, from the grids of TRANSIENT_STEPS key tiles a
    block (time T(W) of W waves: the faster of the two do_bench settings): the steady wave
    (T(32) - T(8)) / 24 and the transient T(4) - T(1) - 3 x steady, the excess of the call's
    second to fourth waves (the calibration's later-wave grids run 4). Longer blocks are not
    used: their 32-wave grids run long enough for the power cap to slow the later waves
    (16-tile blocks on the H200: up to 10% slower per wave at 32-64 waves than at 8-16).
    """
    times: dict[tuple[Any, ...], dict[int, float]] = {}
    for e in entries:
        if e["steps"] != TRANSIENT_STEPS:
            continue
        key = (e["mode"].removesuffix("-waves"), e["head_dim"], e["block_m"], e["block_n"],
               e["num_warps"], e["num_stages"], e["q_tiles"])  # fmt: skip
        got = times.setdefault(key, {})
        got[e["waves"]] = min(got.get(e["waves"], math.inf), float(e["t_us"]))
    out = []
    for (mode, d, bm, bn, w, st, q), t in times.items():
        if not {1, 4, 8, 32} <= t.keys():
            continue
        steady = (t[32] - t[8]) / 24
        names = ("mode", "head_dim", "block_m", "block_n", "num_warps", "num_stages", "q_tiles")
        out.append({**dict(zip(names, (mode, d, bm, bn, w, st, q), strict=True)),
                    "steps": TRANSIENT_STEPS, "transient_us": round(t[4] - t[1] - 3 * steady, 3),
                    "steady_wave_us": round(steady, 3), "source": source})  # fmt: skip
    return out


LATER_ENTRY_KEYS = ("mode", "head_dim", "block_m", "block_n", "num_warps", "num_stages",
                    "blocks_per_sm", "tiles", "q_tiles", "steps", "waves", "wave_us")  # fmt: skip
WAVE_ENTRY_KEYS = ("mode", "head_dim", "block_m", "block_n", "num_warps", "num_stages",
                   "q_tiles", "steps", "waves", "t_us")  # fmt: skip


def probe_entries(files: list[Path], section: str, keys: tuple[str, ...]) -> list[Any]:
    """Every file's `section` entries, after checking each has `keys`.

    All the files' problems are raised at once as one `SpecError` (file:line: field: message).
    """
    from attnsim.einsum_ir.spec import Problem, Reader, SpecError

    problems: list[Problem] = []
    out: list[Any] = []
    for path in files:
        root = Reader.from_file(path)
        root.problems = problems
        if root.node is None or not root.check("map"):
            continue
        entries = root.req(section, "list")
        if entries is None:
            continue
        for item in entries.each():
            if item.check("map"):
                for key in keys:
                    item.req(key)
        out += list(entries.value)
    if problems:
        raise SpecError(problems)
    return out


def merge_transients(cal: Path, sweeps: list[Path]) -> int:
    """Put the sweeps' transients in a calibration file's `wave_transients` (replacing all)."""
    from attnsim.kernels.calibrate.microbench_bwd import replace_entries

    probe_entries(sweeps, "attention_waves", WAVE_ENTRY_KEYS)  # every file's problems at once
    found = [e for f in sweeps
             for e in wave_transients(probe_entries([f], "attention_waves", WAVE_ENTRY_KEYS),
                                      f.name)]  # fmt: skip
    names = ", ".join(f.name for f in sweeps)
    note = (f"wave_transients: `benchmarks/short_blocks_probe.py --merge-transients` from "
            f"{names} ({len(found)} kernels; steps {TRANSIENT_STEPS})")  # fmt: skip
    replace_entries(cal, "wave_transients", found, lambda e: 0, note, "--merge-transients")
    print(f"{len(found)} wave_transients entries -> {cal}", file=sys.stderr)
    return 0


FAMILY = {"online": ("1pass", 0), "pingpong": ("1pass", 0), "stats": ("2pass", 0),
          "output": ("2pass", 1)}  # fmt: skip


def modelled_wave_us(entry: dict[str, Any], arch_name: str = "h200") -> float:
    """The GPU model's time of one later wave for a probe entry (no GPU).

    The probe's two grids as attention calls (batch 1, one head per q_tiles blocks, non-causal)
    through `mappers.gpu.tiling.evaluate` with the entry's tiling; the kernel the probe timed
    (the 2-pass family's pass of the entry's mode).
    """
    from attnsim.archs import load_arch
    from attnsim.mappers.gpu.problem import AttnShape
    from attnsim.mappers.gpu.rates import Tiling, device_rates
    from attnsim.mappers.gpu.tiling import evaluate

    arch = load_arch(arch_name)
    rates = device_rates(arch, "bf16")  # type: ignore[arg-type]
    mode = entry["mode"].removesuffix("-later")
    family, kernel = FAMILY[mode]
    d, bm, bn = entry["head_dim"], entry["block_m"], entry["block_n"]
    schedule = "pingpong" if mode == "pingpong" else "plain"
    t = Tiling(bm, bn, entry["num_warps"], entry["num_stages"], schedule)
    times = []
    for waves in (1, entry["waves"]):
        heads = arch.sm_count * entry["blocks_per_sm"] * waves // entry["q_tiles"]
        q = entry["q_tiles"] * bm
        shape = AttnShape(1, heads, q, entry["steps"] * bn, d, d, False, "bf16", 2)
        k = evaluate(family, shape, t, rates).kernels[kernel]
        times.append(k.scheduled_s * 1e6)
    return (times[1] - times[0]) / (entry["waves"] - 1)


def compare(path: Path, arch_name: str) -> str:
    """Measured against modelled later-wave times of a probe file, one line per entry."""
    import yaml

    lines = ["mode          d  tiling          tiles  q  n  measured_us modelled_us error%"]
    for e in yaml.safe_load(path.read_text(encoding="utf-8"))["attention_blocks"]:
        if e["mode"] == "online-later" and e["tiles"] != "host":
            continue  # the model takes host descriptors for these shapes (seq_q % block_m == 0)
        model = modelled_wave_us(e, arch_name)
        tiling = f"{e['block_m']}x{e['block_n']}/w{e['num_warps']}/s{e['num_stages']}"
        err = 100 * (model / e["wave_us"] - 1) if e["wave_us"] > 0 else float("nan")
        lines.append(f"{e['mode']:13s} {e['head_dim']:3d} {tiling:15s} {e['tiles']:6s} "
                     f"{e['q_tiles']:d} {e['steps']:2d} {e['wave_us']:11.2f} {model:11.2f} "
                     f"{err:+6.1f}")  # fmt: skip
    return "\n".join(lines)


def later_waves(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`later_waves` calibration entries from an --out file's entries (no GPU).

    One entry per kernel, tiling, descriptor path and query tiles a head: its lengths
    (`steps`, increasing) and their wave times.
    """
    keys = ("head_dim", "block_m", "block_n", "num_warps", "num_stages", "blocks_per_sm",
            "tiles", "q_tiles", "waves")  # fmt: skip
    curves: dict[tuple[Any, ...], dict[str, Any]] = {}
    for e in sorted(entries, key=lambda e: e["steps"]):
        if not e["mode"].endswith("-later") or not e["wave_us"] > 0:
            continue
        mode = e["mode"].removesuffix("-later")
        got = curves.setdefault((mode, *(e[k] for k in keys)),
                                {"mode": mode, **{k: e[k] for k in keys}, "steps": [],
                                 "wave_us": []})  # fmt: skip
        got["steps"].append(e["steps"])
        got["wave_us"].append(e["wave_us"])
    return list(curves.values())


def merge_later(cal: Path, files: list[Path]) -> int:
    """Put the files' later waves in a calibration file's `later_waves` (replacing all)."""
    from attnsim.kernels.calibrate.microbench_bwd import replace_entries

    found = later_waves(probe_entries(files, "attention_blocks", LATER_ENTRY_KEYS))
    note = (f"later_waves: `benchmarks/short_blocks_probe.py --merge-later` from "
            f"{', '.join(f.name for f in files)} ({len(found)} kernels x query tiles)")  # fmt: skip
    replace_entries(cal, "later_waves", found, lambda e: 0, note, "--merge-later")
    print(f"{len(found)} later_waves entries -> {cal}", file=sys.stderr)
    return 0


def _merged(merge: Any, cal: Path, files: list[Path]) -> int:
    """Run a merge; a malformed probe or calibration file is reported (located), status 2."""
    from attnsim.einsum_ir.spec import SpecError

    try:
        return int(merge(cal, files))
    except SpecError as exc:
        print(f"short_blocks_probe: error: {exc}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    """Measure and write the entries as YAML (--out FILE), or compare a file with the model."""
    import argparse

    import yaml

    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--out", type=Path, help="write the entries here (YAML)")
    p.add_argument("--compare", type=Path, help="print a probe file against the model (no GPU)")
    p.add_argument("--arch", default="h200", help="GPU preset for --compare (default h200)")
    p.add_argument("--q-sweep", type=Path, metavar="DIR",
                   help="time calls of 4096 query tiles with 1-16 of them per head (keys 512, "
                   "2048) through the suites' harness into DIR (a measurement CSV that "
                   "`attnsim validate gpu` reads)")  # fmt: skip
    p.add_argument(
        "--wave-sweep",
        type=Path,
        metavar="FILE",
        help="time grids of 1-64 waves of 4- and 16-tile blocks into FILE (YAML)",
    )
    p.add_argument(
        "--transients",
        action="store_true",
        help="with --wave-sweep: only the grids wave_transients reads (1-32 waves "
        "of 4-tile blocks), for the 1-pass builds the sweep does not time",
    )
    p.add_argument(
        "--merge-transients",
        type=Path,
        nargs="+",
        metavar="FILE",
        help="CAL SWEEP...: put --wave-sweep files' transients in calibration file CAL, "
        "replacing its earlier ones (no GPU)",
    )
    p.add_argument(
        "--merge-later",
        type=Path,
        nargs="+",
        metavar="FILE",
        help="CAL FILE...: put --out files' later waves in calibration file CAL, replacing its "
        "earlier ones (no GPU)",
    )
    args = p.parse_args(argv)
    for option, given in (("--merge-transients", args.merge_transients),
                          ("--merge-later", args.merge_later)):  # fmt: skip
        missing = [str(f) for f in given or () if not f.is_file()]
        if missing:
            p.error(f"{option}: no such file: {', '.join(missing)}")
        if given is not None and len(given) < 2:
            p.error(f"{option} needs CAL and at least one FILE")
    if args.merge_later is not None:
        cal, *files = args.merge_later
        return _merged(merge_later, cal, files)
    if args.merge_transients is not None:
        cal, *sweeps = args.merge_transients
        return _merged(merge_transients, cal, sweeps)
    if args.compare is not None:
        if not args.compare.is_file():
            p.error(f"--compare: no such file: {args.compare}")
        print(compare(args.compare, args.arch))
        return 0
    if args.q_sweep is not None:
        from attnsim.kernels.bench.harness import run

        return 1 if run(sweep_configs(), args.q_sweep, "qsweep", "bf16") else 0
    if args.out is None and args.wave_sweep is None:
        p.error("give --out FILE (measure), --wave-sweep FILE, --q-sweep DIR or --compare FILE")
    import torch

    if not torch.cuda.is_available():
        print("short_blocks_probe needs a CUDA GPU", file=sys.stderr)
        return 2
    if args.out:
        path, found = args.out, measure(torch)
    elif args.transients:  # the grids `wave_transients` reads, for the other 1-pass builds
        found = wave_sweep(torch, transient_plan(), (1, 4, 8, 16, 32), (TRANSIENT_STEPS,))
        path = args.wave_sweep
    else:
        path, found = args.wave_sweep, wave_sweep(torch)
    path.write_text(yaml.safe_dump(found, sort_keys=False), encoding="utf-8")
    print(f"{sum(len(v) for v in found.values())} entries: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
