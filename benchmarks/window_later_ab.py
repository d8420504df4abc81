r"""Window suite A/B: a device's own window entries, without and with later waves (CPU only).

    python benchmarks/window_later_ab.py --suite FILE --entries FILE [--arch h100-sxm]

`--entries`: a `microbench_masks --window-only` file; `--suite`: a masks-probe window file of
the same device. Three prices of every window row: the preset as it is (for the H100, the
H200's calibration carried over), its mode-`window` entries replaced by the file's first-wave
ones, and by all of them (later waves too). Prints MAPE, worst point, the mean error per window
length and the window/causal ratios within 10% (`reports.validation_kernels.RATIO_TOLERANCE`).
`--skip TILING` (repeatable, `BMxBN/wW/sS@HEAD_DIM`): leave a tiling's rows and later entries
out (a later entry measured wrong). The H100's 2026-12-06 run:

    python benchmarks/window_later_ab.py \\
        --suite kernels/measurements/h100/masks-window-h100-2026-12-06.csv \\
        --entries kernels/measurements/h100/microbench-masks-window-h100-2026-12-06.yaml \\
        --skip 128x64/w4/s3@64 --skip 64x64/w4/s3@64
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import statistics
import sys
from pathlib import Path
from typing import Any

import yaml

from attnsim.archs.calibration import BlockPoint, StepPoint
from attnsim.archs.gpu import GpuArch


def _step(e: dict[str, Any]) -> StepPoint:
    t = (e["block_m"], e["block_n"], e["num_warps"], e["num_stages"])
    return StepPoint(e["mode"], e["dtype"], e["head_dim"], *t, e["blocks_per_sm"],
                     e["step_us"] * 1e-6)  # fmt: skip


def _block(e: dict[str, Any]) -> BlockPoint:
    t = (e["block_m"], e["block_n"], e["num_warps"], e["num_stages"])
    return BlockPoint(e["mode"], e["dtype"], e["head_dim"], *t, e["blocks"], e["blocks_per_sm"],
                      e["fixed_us"] * 1e-6, e["step_us"] * 1e-6, waves=e["waves"],
                      tiles=e["tiles"], loop_s=e["loop_us"] * 1e-6,
                      q_tiles=e.get("q_tiles", 1))  # fmt: skip


def _tiling(p: BlockPoint) -> str:
    return f"{p.block_m}x{p.block_n}/w{p.num_warps}/s{p.num_stages}@{p.head_dim}"


STEP_FIELDS = ("mode", "dtype", "head_dim", "block_m", "block_n", "num_warps", "num_stages",
               "blocks_per_sm", "step_us")  # fmt: skip
BLOCK_FIELDS = (*STEP_FIELDS, "blocks", "waves", "tiles", "fixed_us", "loop_us")


def entry_problems(path: Path) -> list[str]:
    """Every missing field of the entries file, as `FILE: section[i]: field: message`."""
    try:
        found = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        return [f"{path}: not YAML: {exc}"]
    if not isinstance(found, dict):
        return [f"{path}: expected a mapping with attention_steps and attention_blocks"]
    out = []
    for section, fields in (("attention_steps", STEP_FIELDS), ("attention_blocks", BLOCK_FIELDS)):
        for i, e in enumerate(found.get(section) or []):
            missing = [f for f in fields if not isinstance(e, dict) or f not in e]
            out += [f"{path}: {section}[{i}]: {f}: missing (expected a microbench_masks "
                    "--window-only entry)" for f in missing]  # fmt: skip
    return out


def variant(arch: GpuArch, found: dict[str, Any], later: bool, skip: set[str]) -> GpuArch:
    """`arch` with its window entries replaced by `found`'s (first waves, or all of them)."""
    cal = arch.calibration
    assert cal is not None
    steps = tuple(p for p in cal.attention_steps if p.mode != "window")
    steps += tuple(_step(e) for e in found.get("attention_steps", []))
    ours = [_block(e) for e in found.get("attention_blocks", [])]
    ours = [p for p in ours if p.waves == 1 or (later and _tiling(p) not in skip)]
    blocks = tuple(p for p in cal.attention_blocks if p.mode != "window") + tuple(ours)
    new = dataclasses.replace(cal, attention_steps=steps, attention_blocks=blocks)
    return dataclasses.replace(arch, calibration=new)


def summary(name: str, points: list[Any], skip: set[str]) -> str:
    """MAPE, worst point, mean error per window length and the ratios within 10%."""
    from attnsim.reports import validation_kernels as vk

    def kept(p: Any) -> bool:
        head = next(x for x in p.shape.split() if x.startswith("E="))[2:]
        return f"{p.config}@{head}" not in skip

    points = [p for p in points if kept(p)]
    errs = [100 * (p.predicted_ms / p.measured_ms - 1) for p in points]
    by_w: dict[int, list[float]] = collections.defaultdict(list)
    for p, e in zip(points, errs, strict=True):
        w = next((x for x in p.shape.split() if x.startswith("W=")), "W=0")
        by_w[int(w[2:])].append(e)
    bands = ", ".join(f"W={w}: {statistics.fmean(v):+.1f}%" for w, v in sorted(by_w.items()))
    lines = [f"{name}: MAPE {statistics.fmean(abs(e) for e in errs):.2f}% over {len(errs)} "
             f"rows, worst {max(errs, key=abs):+.1f}%; mean error {bands}"]  # fmt: skip
    for key, ratios in vk.ratio_errors(points).items():
        within = sum(r <= vk.RATIO_TOLERANCE for r in ratios)
        lines.append(f"  {key}: {within}/{len(ratios)} within 10%, worst {max(ratios):.1%}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the three prices' summaries."""
    import attnsim.archs.load as load
    from attnsim.reports import validation_kernels as vk

    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--suite", type=Path, required=True)
    p.add_argument("--entries", type=Path, required=True)
    p.add_argument("--arch", default="h100-sxm")
    p.add_argument("--skip", action="append", default=[], help="BMxBN/wW/sS@HEAD_DIM")
    args = p.parse_args(argv)
    missing = [str(f) for f in (args.suite, args.entries) if not f.is_file()]
    if missing:
        print(f"no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    problems = entry_problems(args.entries)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 2
    found = yaml.safe_load(args.entries.read_text(encoding="utf-8"))
    base = load.load_arch(args.arch)
    assert isinstance(base, GpuArch)
    skip = set(args.skip)
    real = load.load_arch
    try:
        for name, arch in (
            ("preset", base),
            ("first waves", variant(base, found, False, skip)),
            ("later waves too", variant(base, found, True, skip)),
        ):
            load.load_arch = lambda *_a, _arch=arch, **_k: _arch  # type: ignore[assignment]
            print(summary(name, vk.predict_rows([args.suite]), skip))
    finally:
        load.load_arch = real
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
