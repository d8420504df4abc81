"""GPU only: registers and programs per SM of the decode kernel's builds, paged and not.

Run: PYTHONPATH=. python benchmarks/decode_builds_probe.py --out $OUT/decode-builds.yaml

`kernels.calibrate.microbench_decode_builds` read the compiled kernel's registers (and the
programs an SM holds with them) for contiguous caches only. A paged cache (`block_table`) or
ragged lengths (`seq_lens`) compile other builds of the same kernel (constexprs PAGED,
RAGGED), whose registers may cross a residency step (128 registers at 8 warps: two programs
per SM; 129: one). This probe compiles each build once through `attention_decode` on a tiny
problem (the launcher's own specialization: that of a real call) and writes, per build, the
compiled kernel's `registers` and `resident_per_sm` (`microbench_blocks.occupancy`). No
timing: registers are a property of the sm_90 binary, the same on an H100 and an H200.
Ragged stream-K compiles once per BATCH_BLOCK (the batch's next power of two): those builds
are compiled at each of BATCH_BLOCKS. Not yet read by the model (see
kernels/measurements/decode/README.md, "Builds").
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path
from typing import Any

# (head_dim, K/V group, block_n, num_warps, num_stages): the paged suites' tilings
CONFIGS = (
    *((128, 4, *t) for t in ((64, 4, 2), (64, 4, 4), (64, 8, 2), (64, 8, 3), (128, 8, 3))),
    *((64, 4, *t) for t in ((64, 4, 2), (64, 8, 2))),
)
STRATEGIES = ("unsplit", "splitk", "streamk")
PAGE = 256
# ragged stream-K compiles per BATCH_BLOCK (the batch's next power of two): one build each
BATCH_BLOCKS = (2, 4, 8, 16, 32, 64)


def build(torch: Any, e: int, group: int, bn: int, w: int, st: int, strategy: str,
          paged: bool, ragged: bool, batch: int = 2) -> dict[str, Any]:  # fmt: skip
    """Compile one build through a tiny call of `batch` sequences; its registers and residency."""
    from attnsim.kernels.calibrate.microbench_blocks import occupancy
    from attnsim.kernels.spec import decode_rows
    from attnsim.kernels.triton.attn_decode import _PLANS, attention_decode

    b, g, seq, dt = batch, 2, 4 * PAGE, torch.bfloat16
    q = torch.randn(b, g * group, 1, e, device="cuda", dtype=dt)
    kw: dict[str, Any] = dict(strategy=strategy, block_n=bn, num_warps=w, num_stages=st)
    kw |= dict(splits=2) if strategy == "splitk" else {}
    kw |= dict(programs=8) if strategy == "streamk" else {}
    if ragged:
        lens = [seq if i % 2 == 0 else seq // 2 for i in range(b)]
        kw["seq_lens"] = torch.tensor(lens, device="cuda", dtype=torch.int32)
    if paged:
        pages = seq // PAGE
        kw["block_table"] = torch.arange(b * pages, device="cuda", dtype=torch.int32).view(b, pages)
        k = torch.randn(b * pages, g, PAGE, e, device="cuda", dtype=dt)
        v = torch.randn(b * pages, g, PAGE, e, device="cuda", dtype=dt)
    else:
        k = torch.randn(b, g, seq, e, device="cuda", dtype=dt)
        v = torch.randn(b, g, seq, e, device="cuda", dtype=dt)
    _PLANS.plans.clear()
    attention_decode(q, k, v, **kw)
    torch.cuda.synchronize()
    compiled = [p.launch.compiled for p in _PLANS.plans.values() if p.launch.compiled]
    entry = dict(head_dim=e, value_dim=e, rows=decode_rows(group), block_n=bn, num_warps=w,
                 num_stages=st, strategy=strategy, paged=paged, ragged=ragged,
                 batch_block=b if strategy == "streamk" and ragged else 1)  # fmt: skip
    if compiled:
        entry |= dict(registers=int(compiled[0].n_regs),
                      spills=int(getattr(compiled[0], "n_spills", 0) or 0),
                      resident_per_sm=occupancy(torch, compiled[0], w))  # fmt: skip
    return entry


def runs() -> list[tuple[tuple[int, ...], str, bool, bool, int]]:
    """(config, strategy, paged, ragged, batch) of every build compiled, in order."""
    out = [
        (c, s, p, r, 2)
        for c, s, p, r in itertools.product(CONFIGS, STRATEGIES, (False, True), (False, True))
        if not (s == "streamk" and r)
    ]
    out += [(c, "streamk", p, True, n) for c in CONFIGS for p in (False, True)
            for n in BATCH_BLOCKS]  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    """Compile every build, print and write the entries; 2 without a CUDA GPU."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="YAML file to write")
    args = p.parse_args(argv)
    import torch
    import yaml

    if not torch.cuda.is_available():
        print("decode_builds_probe: needs a CUDA GPU", file=sys.stderr)
        return 2
    out = []
    for cfg, strategy, paged, ragged, batch in runs():
        try:
            entry = build(torch, *cfg, strategy, paged, ragged, batch)
        except Exception as exc:  # noqa: BLE001 - recorded, the others go on
            entry = dict(config=list(cfg), strategy=strategy, paged=paged, ragged=ragged,
                         error=f"{type(exc).__name__}: {str(exc)[:200]}")  # fmt: skip
        print(entry, flush=True)
        out.append(entry)
    name = torch.cuda.get_device_name(0)
    args.out.write_text(yaml.safe_dump({"device": name, "builds": out}, sort_keys=False), "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
