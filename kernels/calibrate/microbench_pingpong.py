"""Calibration of the 1-pass family's ping-pong kernel (kernels.gluon.attn_pingpong; sm_90 only).

`python -m attnsim.kernels.calibrate.microbench_pingpong [--merge archs/calibration/h200.yaml]`
measures what the
GPU model needs for tilings with schedule `pingpong` (mode `pingpong` in the calibration file)
and prints the entries as YAML; `--merge FILE` also writes them into a calibration file,
replacing its earlier `pingpong` entries and adding a note. `kernels.calibrate.microbench` (a full
calibration) runs the same measurements on an sm_90 device.

- `host_call_us["1pass-pingpong"]`: host time of one launcher call on a tiny problem (as
  `microbench_steps.measure_host` for the other launchers).
- `attention_steps` (mode pingpong, one block per SM): the key-tile step of the real kernel on
  one wave of one block per SM: one head (batch 1) with seq_q = 128 x SMs query rows, so every
  block streams the same K/V tiles through L2 as the blocks of one head do in a real call,
  timed at two key lengths (STEPS_SHORT and STEPS_LONG key tiles):
  step = (T_long - T_short) / (STEPS_LONG - STEPS_SHORT), which leaves out the block's fixed
  costs (those are `attention_blocks`). (An earlier version re-read a ring of four K/V tiles
  per head, one head per SM: 14-23% slower per step than the real kernel on the validation
  shapes, its per-SM heads' tiles contending in L2.)
- `attention_blocks` (mode pingpong, host descriptors): per-block fixed time, by
  `microbench_blocks.measure_blocks` (real kernel, one query tile per head, 2 and 8 key tiles).

The calibration shapes are not validation or holdout shapes (seq_q = 128 with 16 or more heads;
seq_q = 128 x SMs with seq_k = 64 or 256 key tiles).
"""

from __future__ import annotations

import datetime
import statistics
import sys
from pathlib import Path
from typing import Any

import triton

from attnsim.einsum_ir.spec import read_yaml
from attnsim.kernels.spec import PINGPONG_HEAD_DIMS as HEAD_DIMS
from attnsim.kernels.spec import PINGPONG_TILINGS as TILINGS
from attnsim.kernels.spec import host_call_key

STEPS_SHORT, STEPS_LONG = 16, 64
BLOCK_PLAN = tuple(("pingpong", d, t, "host") for d in HEAD_DIMS for t in TILINGS)


def _ms(fn: Any) -> float:
    return float(triton.testing.do_bench(fn, warmup=10, rep=50, return_mode="median"))


def measure_host(torch: Any) -> dict[str, float]:
    """{"1pass-pingpong": host µs per launcher call} on a tiny problem."""
    from attnsim.kernels.calibrate.microbench_steps import _host_per_call_us
    from attnsim.kernels.triton.attn_fwd import attention_fwd

    q, k, v = (torch.randn(1, 1, 128, 64, device="cuda", dtype=torch.bfloat16) for _ in range(3))

    def call() -> None:
        attention_fwd(q, k, v, False, block_m=128, block_n=64, num_warps=8, num_stages=3,
                      schedule="pingpong")  # fmt: skip

    us = round(_host_per_call_us(torch, call), 2)
    key = host_call_key("1pass", "pingpong")
    print(f"  host_call_us {key}: {us}", file=sys.stderr)
    return {key: us}


def measure_steps(torch: Any) -> list[dict[str, Any]]:
    """Tile-chain step of the ping-pong kernel per head dim and tiling (one block per SM)."""
    from attnsim.kernels.gluon.attn_pingpong import attention_fwd_pingpong

    sms = torch.cuda.get_device_properties(0).multi_processor_count
    points = []
    for d in HEAD_DIMS:
        for bm, bn, w, st in TILINGS:
            times = []
            for n in (STEPS_SHORT, STEPS_LONG):
                q = torch.randn(1, 1, sms * bm, d, device="cuda", dtype=torch.bfloat16)
                k, v = (
                    torch.randn(1, 1, n * bn, d, device="cuda", dtype=torch.bfloat16)
                    for _ in range(2)
                )
                o = torch.empty_like(q)

                def run(q=q, k=k, v=v, o=o, bn=bn, st=st) -> None:  # type: ignore[no-untyped-def]
                    attention_fwd_pingpong(q, k, v, block_n=bn, num_stages=st, out=o)

                times.append(statistics.median(_ms(run) for _ in range(3)) * 1e3)
                del q, k, v, o
                torch.cuda.empty_cache()
            step = (times[1] - times[0]) / (STEPS_LONG - STEPS_SHORT)
            point = {
                "mode": "pingpong",
                "dtype": "bf16",
                "head_dim": d,
                "block_m": bm,
                "block_n": bn,
                "num_warps": w,
                "num_stages": st,
                "blocks_per_sm": 1,
                "step_us": round(step, 4),
            }
            points.append(point)
            print(f"  {point} T={[round(t, 2) for t in times]}", file=sys.stderr)
    return points


def measure(torch: Any) -> dict[str, Any]:
    """Every ping-pong entry: {"host_call_us", "attention_steps", "attention_blocks"}."""
    from attnsim.kernels.calibrate import microbench_blocks

    out: dict[str, Any] = {}
    for name, fn in (("host_call_us", measure_host), ("attention_steps", measure_steps)):
        try:
            out[name] = fn(torch)
        except Exception as exc:  # noqa: BLE001 - keep the other figures
            print(f"  pingpong {name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    floor = microbench_blocks.bench_floor_us(torch)
    out["attention_blocks"] = microbench_blocks.measure_blocks(torch, floor, BLOCK_PLAN)
    return out


def merge(path: Path, found: dict[str, Any], device: str) -> None:
    """Write `found` into calibration file `path` (earlier pingpong entries replaced)."""
    import yaml

    text = path.read_text()
    header = "".join(line + "\n" for line in text.splitlines() if line.startswith("# Written"))
    record = read_yaml(path)  # the hardened reader; a bad file is a located SpecError
    if not isinstance(record, dict):
        raise ValueError(f"{path}: expected a calibration mapping")
    if record.get("device") != device:
        raise ValueError(f"{path} is for {record.get('device')!r}, this device is {device!r}")
    record.setdefault("host_call_us", {}).update(found.get("host_call_us", {}))
    for key in ("attention_steps", "attention_blocks"):
        kept = [e for e in record.get(key, []) if e.get("mode") != "pingpong"]
        record[key] = kept + list(found.get(key, []))
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    note = (
        "host_call_us 1pass-pingpong and the mode-pingpong attention_steps / attention_blocks: "
        f"`python -m attnsim.kernels.calibrate.microbench_pingpong --merge` on {date} "
        f"(kernels.gluon.attn_pingpong; "
        "steps from one wave of the real kernel at two key lengths, see that module)"
    )
    record["notes"] = [n for n in record.get("notes", []) if "microbench_pingpong" not in n]
    record["notes"].append(note)
    path.write_text(header + yaml.safe_dump(record, sort_keys=False, width=100))


def main(argv: list[str] | None = None) -> int:
    """Measure the ping-pong entries; print them as YAML and optionally merge them."""
    import argparse

    import torch
    import yaml

    p = argparse.ArgumentParser(
        prog="python -m attnsim.kernels.calibrate.microbench_pingpong", description=__doc__
    )
    p.add_argument("--merge", type=Path, help="calibration YAML to write the entries into")
    args = p.parse_args(argv)
    if not torch.cuda.is_available() or torch.cuda.get_device_capability(0)[0] != 9:
        print(
            "kernels.calibrate.microbench_pingpong needs a CUDA sm_90 (Hopper) GPU", file=sys.stderr
        )
        return 2
    found = measure(torch)
    print(yaml.safe_dump(found, sort_keys=False, width=100))
    if args.merge:
        merge(args.merge, found, torch.cuda.get_device_name())
        print(f"merged into {args.merge}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
