"""The backward's builds in the calibration: compiling a build, scaling entries to another.

`kernels.spec.BWD_DP_FIRST` chooses the dK/dV kernel's step order; `microbench_bwd` names the
entries of the dP-first build's dK/dV modes with `DP_FIRST_SUFFIX` (`mappers.gpu.backward`
prices each build with its own modes). Where a device's calibration holds only the earlier
build's entries, `scale_build` (`microbench_bwd --scale-build CAL EARLIER NEWER`) derives the
dP-first build's from them and the ratio of the two builds measured on another device.
"""

from __future__ import annotations

import argparse
import datetime
import re
import sys
from pathlib import Path
from typing import Any

from attnsim.einsum_ir.spec import SpecError, read_yaml
from attnsim.kernels.calibrate.microbench_bwd import (
    DKDV_MODES,
    DP_FIRST_SUFFIX,
    HEAD_DIMS,
    dp_first_build,
)


def build_jobs() -> list[tuple[Any, ...]]:
    """`compile_build` arguments of `measure`'s one-head launches (the build's own kernels)."""
    from attnsim.kernels.triton.attn_bwd import BWD_TILINGS

    first = dp_first_build()
    return [
        (first, 1, 1, 1, 1024, d, False, t, mode)
        for mode in ("atomic", "separate")
        for d in HEAD_DIMS
        for t in BWD_TILINGS
    ]


def compile_build(dp_first: bool, *args: Any) -> int:
    """`attn_bwd.compile_bwd(*args)` of the build `dp_first` (in a worker process)."""
    from attnsim.kernels.triton import attn_bwd

    attn_bwd.BWD_DP_FIRST = dp_first
    return attn_bwd.compile_bwd(*args)


_ENTRY_KEY = ("dtype", "head_dim", "block_m", "block_n", "num_warps", "num_stages", "blocks_per_sm")
_DKDV_MODE = re.compile(r"(?P<base>bwd-dkdv(?:-atomic)?)(?P<spread>-w\d+)?")


def scale_build(cal: Path, earlier: Path, newer: Path, device: str) -> str:
    """Write into `cal` the dK/dV entries of the dP-first build, scaled from the earlier's.

    Each is `cal`'s entry of the earlier build times the ratio newer / earlier of two runs of
    `microbench_bwd` on one device.
    `earlier`: entries of a run with `--earlier-order` (modes `bwd-dkdv[-atomic]`); `newer`:
    of the dP-first build (modes `...-dpfirst`), both with `--out`. Each entry's step and
    fixed time scale by the ratio of its own mode, head dim, tiling and programs per SM; the
    spread entries (`-wW`) take their one-head mode's ratio. Replaces earlier `-dpfirst`
    entries of `cal`. Returns a summary line; a missing pair is a ValueError naming it.
    """
    import yaml

    runs = {}
    for path, want in ((earlier, ""), (newer, DP_FIRST_SUFFIX)):
        data = read_yaml(path)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected the mapping `--out` writes")
        runs[want] = {
            (e["mode"], *(e.get(k) for k in _ENTRY_KEY)): e
            for section in ("attention_steps", "attention_blocks")
            for e in data.get(section) or []
            if isinstance(e, dict) and e.get("mode") in tuple(m + want for m in DKDV_MODES)
        }
        if not runs[want]:
            modes = ", ".join(m + want for m in DKDV_MODES)
            raise ValueError(f"{path}: no entries of modes {modes}")
    text = cal.read_text(encoding="utf-8")
    header = "".join(line + "\n" for line in text.splitlines() if line.startswith("# Written"))
    data = read_yaml(cal)
    if not isinstance(data, dict):
        raise ValueError(f"{cal}: expected a calibration mapping")
    ratios: list[float] = []
    missing: list[str] = []
    for section in ("attention_steps", "attention_blocks"):
        kept, added = [], []
        for i, e in enumerate(data.get(section) or []):
            if not isinstance(e, dict):
                raise ValueError(f"{cal}: {section}[{i}]: expected a mapping, got {e!r}")
            mode = str(e.get("mode", ""))
            if mode.startswith("bwd-dkdv") and DP_FIRST_SUFFIX in mode:
                continue  # an earlier scaling: replaced
            kept.append(e)
            m = _DKDV_MODE.fullmatch(mode)
            if m is None:
                continue
            key = tuple(e.get(k) for k in _ENTRY_KEY)
            old = runs[""].get((m["base"], *key))
            new = runs[DP_FIRST_SUFFIX].get((m["base"] + DP_FIRST_SUFFIX, *key))
            if old is None or new is None:
                missing.append(f"{section} {e['mode']} {dict(zip(_ENTRY_KEY, key, strict=True))}")
                continue
            scaled = dict(e, mode=m["base"] + DP_FIRST_SUFFIX + (m["spread"] or ""))
            for field in ("step_us", "fixed_us"):
                if field in e and field in old and field in new and old[field]:
                    r = _number(new, field, newer) / _number(old, field, earlier)
                    scaled[field] = round(_number(e, field, cal, f"{section}[{i}]") * r, 4)
                    if field == "step_us" and section == "attention_steps":
                        ratios.append(r)
            added.append(scaled)
        data[section] = kept + added
    if missing:
        raise ValueError(f"no entry in {earlier} or {newer} for: " + "; ".join(missing))
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    head = f"attention_steps / attention_blocks of modes bwd-dkdv[-atomic]{DP_FIRST_SUFFIX}[-wW]: "
    note = (
        f"{head}this file's entries of the earlier build (dP after dV) times the ratio of the "
        f"dP-first build's to the earlier build's entry (step and fixed time, same mode, head "
        f"dim, tiling and programs per SM; spread entries the one-head ratio), both measured "
        f"by `python -m attnsim.kernels.calibrate.microbench_bwd` on {device} ({earlier.name}, "
        f"{newer.name}); merged {stamp} (`--scale-build`)"
    )
    data["notes"] = [n for n in data.get("notes", []) if not n.startswith(head)] + [note]
    cal.write_text(header + yaml.safe_dump(data, sort_keys=False, width=100), encoding="utf-8")
    return (
        f"{len(ratios)} dK/dV step entries scaled into {cal}: step ratio "
        f"{min(ratios):.3f}-{max(ratios):.3f} (median {sorted(ratios)[len(ratios) // 2]:.3f})"
    )


def _number(e: dict[str, Any], field: str, path: Path, where: str = "") -> float:
    """`e[field]` as a float, or a ValueError naming the file, entry and field."""
    try:
        return float(e[field])
    except (TypeError, ValueError):
        at = where or f"entry {e.get('mode')} {e.get('head_dim')}"
        raise ValueError(f"{path}: {at}: {field}: expected a number, got {e[field]!r}") from None


def scale_build_cli(parser: argparse.ArgumentParser, paths: list[Path], device: str) -> int:
    """`microbench_bwd --scale-build CAL EARLIER NEWER`: 0, or 2 with the problem on stderr."""
    missing = [str(f) for f in paths if not f.is_file()]
    if missing:
        parser.error(f"--scale-build: no such file: {', '.join(missing)}")
    cal, earlier, newer = paths
    try:
        print(scale_build(cal, earlier, newer, device))
    except (ValueError, KeyError, SpecError) as exc:
        print(f"microbench_bwd --scale-build: {exc}", file=sys.stderr)
        return 2
    return 0
