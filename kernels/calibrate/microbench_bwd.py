"""Calibration of the attention backward's kernels (kernels.triton.attn_bwd; GPU only).

`python -m attnsim.kernels.calibrate.microbench_bwd [--merge archs/calibration/h200.yaml]`
measures the loop step and the per-program fixed time of the backward's two tile kernels, as
the GPU model (`mappers.gpu.backward`) reads them: modes `bwd-dkdv` (the dK/dV kernel),
`bwd-dkdv-atomic` (the same with the dQ atomics) and `bwd-dq` (the separate dQ kernel), for
every tiling of `BWD_TILINGS` and head dims 64 and 128. It prints the entries as YAML;
`--merge FILE` writes them into a calibration file, replacing earlier entries of these modes.

Method (as `microbench_blocks` for the forward kernels): the real kernel launched alone on a
calibration shape of one wave, `k` programs per SM (k = 1 and the compiled kernel's
occupancy): one head with SMs x k tiles along the held rank (the dK/dV kernel holds key
tiles, seq_k = SMs x k x block_n; the dQ kernel query tiles), so every program runs the same
n steps along the streamed rank (n = STEPS) over the same tiles, through L2, as one head's
programs do in a real call (an earlier version gave each program a head of its own: its
tiles and atomics missed L2, and steps came out 1.5-2x the real kernel's), non-causal. With T(n) the
do_bench median and `floor` the time of an empty kernel:

    step = (T(n2) - T(n1)) / (n2 - n1)        fixed = T(n1) - n1 * step - floor

The calibration shapes (one head, 132+ tiles along one rank, 8 or 32 along the other) are
none of the validation or holdout shapes of benchmarks/bwd_probe.py.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

import triton

from attnsim.einsum_ir.spec import read_yaml

STEPS = (8, 32)
HEAD_DIMS = (64, 128)
MODES = ("bwd-dkdv", "bwd-dkdv-atomic", "bwd-dq")


def _ms(fn: Any) -> float:
    return float(triton.testing.do_bench(fn, warmup=10, rep=60, return_mode="median"))


def _caller(
    torch: Any, mode: str, d: int, tiling: tuple[int, int, int, int], programs: int, n: int
):  # type: ignore[no-untyped-def]
    """A zero-argument launch of one backward kernel on the calibration shape.

    One head whose held rank has `programs` tiles, so every program streams the same tiles
    of the other rank through L2 (and, atomic, adds into the same dQ rows), as the programs
    of one head do in a real call.
    """
    from attnsim.kernels.triton.attn_bwd import launch_dkdv, launch_dq

    bm, bn, w, st = tiling
    dt = torch.bfloat16
    held, streamed = programs * bn, n * bm
    sq, sk = (streamed, held) if mode != "bwd-dq" else (held, streamed)
    q, do = (torch.randn(1, 1, sq, d, device="cuda", dtype=dt) for _ in range(2))
    k, v = (torch.randn(1, 1, sk, d, device="cuda", dtype=dt) for _ in range(2))
    lse = torch.full((1, 1, sq), float(sk) ** 0.5, device="cuda", dtype=torch.float32)
    delta = torch.zeros((1, 1, sq), device="cuda", dtype=torch.float32)
    scale = d**-0.5
    if mode == "bwd-dq":
        dq = torch.empty_like(q)
        return lambda: launch_dq(q, k, v, do, dq, lse, delta, False, scale, bm, bn, w, st)
    atomic = mode == "bwd-dkdv-atomic"
    dq = torch.zeros(q.shape, device="cuda", dtype=torch.float32)
    dk, dv = torch.empty_like(k), torch.empty_like(v)
    return lambda: launch_dkdv(
        q, k, v, do, dq, dk, dv, lse, delta, False, scale, bm, bn, w, st, atomic
    )


def measure(torch: Any) -> dict[str, list[dict[str, Any]]]:
    """`attention_steps` and `attention_blocks` entries of the backward's modes."""
    from attnsim.kernels.calibrate.microbench_blocks import bench_floor_us, occupancy
    from attnsim.kernels.triton.attn_bwd import BWD_TILINGS

    sms = torch.cuda.get_device_properties(0).multi_processor_count
    floor = bench_floor_us(torch)
    steps, blocks = [], []
    for mode in MODES:
        for d in HEAD_DIMS:
            for tiling in BWD_TILINGS:
                bm, bn, w, st = tiling
                compiled = _caller(torch, mode, d, tiling, sms, STEPS[0])()
                per_sm = {1, occupancy(torch, compiled, w)} if compiled is not None else {1}
                for k in sorted(per_sm):
                    t = [_ms(_caller(torch, mode, d, tiling, sms * k, n)) * 1e3 for n in STEPS]
                    step = (t[1] - t[0]) / (STEPS[1] - STEPS[0])
                    fixed = t[0] - STEPS[0] * step - floor
                    # in the kernel's own terms: the dQ kernel holds a block_n query tile
                    # (its BLOCK_M) and streams block_m key tiles (mappers.gpu.backward.dq_plan)
                    held_m, held_n = (bn, bm) if mode == "bwd-dq" else (bm, bn)
                    common = dict(
                        mode=mode,
                        dtype="bf16",
                        head_dim=d,
                        block_m=held_m,
                        block_n=held_n,
                        num_warps=w,
                        num_stages=st,
                        blocks_per_sm=k,
                    )
                    steps.append({**common, "step_us": round(step, 4)})
                    blocks.append(
                        {
                            **common,
                            "blocks": sms * k,
                            "waves": 1,
                            "tiles": "device",
                            "fixed_us": round(fixed, 3),
                            "step_us": round(step, 4),
                        }
                    )
                    print(
                        f"  {mode} d{d} {bm}x{bn}/w{w}/s{st} k={k}: step {step:.3f} us, "
                        f"fixed {fixed:.2f} us",
                        file=sys.stderr,
                    )
    return {"attention_steps": steps, "attention_blocks": blocks}


def merge(path: Path, found: dict[str, list[dict[str, Any]]], device: str) -> None:
    """Write the entries into a calibration file, replacing earlier ones of these modes."""
    merge_modes(path, found, MODES, "python -m attnsim.kernels.calibrate.microbench_bwd", device)


def merge_modes(path: Path, found: dict[str, list[dict[str, Any]]], modes: tuple[str, ...],
                source: str, device: str) -> None:  # fmt: skip
    """Replace the entries of `modes` in a calibration file by `found`, with a note."""
    import yaml

    text = path.read_text(encoding="utf-8")
    header = "".join(line + "\n" for line in text.splitlines() if line.startswith("# Written"))
    data = read_yaml(path)  # the hardened reader: a bad file is a located SpecError
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a calibration mapping")
    for key, entries in found.items():
        kept = [e for e in data.get(key, []) if e.get("mode") not in modes]
        data[key] = kept + entries
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    note = (
        f"attention_steps / attention_blocks of modes {', '.join(modes)}: `{source}` on "
        f"{device}, merged {stamp} (the real kernel, one wave, two streamed lengths)"
    )
    data["notes"] = [n for n in data.get("notes", []) if source not in n] + [note]
    path.write_text(header + yaml.safe_dump(data, sort_keys=False, width=100), encoding="utf-8")


def replace_entries(
    path: Path,
    section: str,
    entries: list[dict[str, Any]],
    key: Callable[[dict[str, Any]], Hashable],
    note: str = "",
    source: str = "",
) -> None:
    """Put `entries` in a calibration file's `section` in place of those with the same `key`.

    `note` joins the file's notes, replacing earlier notes that name `source`.
    """
    import yaml

    text = path.read_text(encoding="utf-8")
    header = "".join(line + "\n" for line in text.splitlines() if line.startswith("# Written"))
    data = read_yaml(path)  # the hardened reader: a bad file is a located SpecError
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a calibration mapping")
    new = {key(e) for e in entries}
    data[section] = [e for e in data.get(section, []) if key(e) not in new] + entries
    if note:
        data["notes"] = [n for n in data.get("notes", []) if not source or source not in n]
        data["notes"].append(note)
    path.write_text(header + yaml.safe_dump(data, sort_keys=False, width=100), encoding="utf-8")


def entries_main(
    argv: list[str] | None,
    description: str,
    name: str,
    measure: Callable[[Any], dict[str, list[dict[str, Any]]]],
    merge: Callable[[Path, dict[str, Any], str], None],
) -> int:
    """The command line of a calibration module that writes entries and merges them.

    `--out FILE` measures (GPU) and writes the entries; `--merge CAL --entries FILE` merges
    entries of an earlier run into a calibration file (no GPU needed).
    """
    import yaml

    p = argparse.ArgumentParser(description=description)
    p.add_argument("--out", type=Path, default=None, help="write the entries here (YAML)")
    p.add_argument("--merge", type=Path, default=None, help="calibration YAML to update")
    p.add_argument("--entries", type=Path, default=None, help="entries to merge (no GPU)")
    p.add_argument("--device", default="NVIDIA H200", help="device named in the note")
    args = p.parse_args(argv)
    if args.entries is not None:
        if args.merge is None:
            p.error("--entries needs --merge FILE")
        missing = [f"{f}" for f in (args.merge, args.entries) if not f.is_file()]
        if missing:
            p.error(f"no such file: {', '.join(missing)}")
        merge(args.merge, read_yaml(args.entries), args.device)
        return 0
    import torch

    if not torch.cuda.is_available():
        print(f"{name} needs a CUDA GPU", file=sys.stderr)
        return 2
    text = yaml.safe_dump(measure(torch), sort_keys=False)
    print(text)
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Measure, print the entries as YAML, and merge them with --merge FILE."""
    import torch
    import yaml

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--merge", type=Path, default=None, help="calibration YAML to update")
    p.add_argument("--out", type=Path, default=None, help="also write the entries here (YAML)")
    p.add_argument(
        "--entries",
        type=Path,
        default=None,
        help="merge these entries (an --out file of an earlier run) instead of "
        "measuring; with --merge, needs no GPU",
    )
    p.add_argument("--device", default="NVIDIA H200", help="device named in the note (--entries)")
    args = p.parse_args(argv)
    if args.entries is not None:
        if args.merge is None:
            p.error("--entries needs --merge FILE")
        merge(args.merge, read_yaml(args.entries), args.device)
        return 0
    if not torch.cuda.is_available():
        print("microbench_bwd needs a CUDA GPU", file=sys.stderr)
        return 2
    found = measure(torch)
    text = yaml.safe_dump(found, sort_keys=False)
    print(text)
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")
    if args.merge is not None:
        merge(args.merge, found, torch.cuda.get_device_name(0))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
