"""CPU only: the unfused kernels' compiled registers for sm_90, and the programs an SM holds.

Run: python benchmarks/unfused_registers.py [--out FILE.yaml] [--only softmax] [--ragged]  (~20 s)

Triton compiles for a named target without a GPU (`triton.compile` with a `GPUTarget`); its
bundled `cuobjdump -res-usage` reads the cubin's registers, spills (local memory) and static
shared memory. Registers are a property of the sm_90 binary (an H100 and an H200 run the
same one). This prints, per kernel and build (the QK^T and P.V tilings the calibration times;
the row softmax's one-block and two-loop builds), the compiled figures, the programs per SM
they allow (65536 registers and 2048 threads per SM; the kernel's own shared memory), and
the model's estimate of the same (`mappers.gpu.model.residency` of the planned kernel).
On 2026-12-07 the two-loop softmax (8192 lanes, 8 warps) compiled to 165 registers: one
program per SM, where the model estimates 88 (two); README, the unfused paragraphs.
Each build is declared as a launch on 16-byte aligned tensors and rows specializes it: every
pointer, stride and length divisible by 16 (the calibration's aligned entries), `heads` not.
`--ragged` compiles the row softmax's builds for rows that are no multiple of 16 keys instead
(VEC = 1, the lengths not declared divisible; the calibration's ragged entries).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REGISTERS_PER_SM = 65536  # sm_80 and sm_90 (archs/presets)
THREADS_PER_SM = 2048
SHARED_PER_SM = 228 * 1024
REGISTER_UNIT = 8  # registers are allocated per thread in steps of 8
USAGE = re.compile(r"REG:(\d+).*?SHARED:(\d+).*?LOCAL:(\d+)")


def parse_usage(text: str) -> tuple[int, int, int]:
    """(registers, shared bytes, local bytes) from `cuobjdump -res-usage` output."""
    m = USAGE.search(text)
    if m is None:
        raise ValueError(f"no 'REG:.. SHARED:.. LOCAL:..' line in cuobjdump output: {text!r}")
    regs, shared, local = (int(g) for g in m.groups())
    return regs, shared, local


def programs_per_sm(registers: int, warps: int, shared_bytes: int) -> int:
    """Programs one SM holds by registers, threads and shared memory (at least 0)."""
    threads = 32 * warps
    regs = -(-registers // REGISTER_UNIT) * REGISTER_UNIT
    by_regs = REGISTERS_PER_SM // max(1, regs * threads)
    by_threads = THREADS_PER_SM // threads
    by_shared = SHARED_PER_SM // shared_bytes if shared_bytes else by_threads
    return min(by_regs, by_threads, by_shared)


def compiled(fn: Any, signature: dict[str, str], constexprs: dict[str, Any], warps: int,
             stages: int, ragged: bool = False) -> tuple[int, int, int]:  # fmt: skip
    """Compile `fn` for sm_90 on the CPU; its (registers, shared bytes, local bytes).

    `ragged`: the integer arguments are not declared divisible by 16 (pointers still are).
    """
    import triton
    from triton.backends.compiler import GPUTarget

    sig = {**signature, **dict.fromkeys(constexprs, "constexpr")}
    # a launch's specialization: 16-byte aligned pointers, and integers divisible by 16 so
    # declared (strides and lengths of aligned rows; not `heads`)
    aligned = {
        (fn.arg_names.index(name),): [["tt.divisibility", 16]]
        for name, kind in signature.items()
        if kind.startswith("*") or (name != "heads" and not ragged)
    }
    src = triton.compiler.ASTSource(fn=fn, signature=sig, constexprs=constexprs, attrs=aligned)
    kernel = triton.compile(src, target=GPUTarget("cuda", 90, 32),
                            options={"num_warps": warps, "num_stages": stages})  # fmt: skip
    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "kernel.cubin")
        Path(path).write_bytes(kernel.asm["cubin"])
        out = subprocess.run([str(tool), "-res-usage", path], capture_output=True, text=True,
                             check=True).stdout  # fmt: skip
    regs, static_shared, local = parse_usage(out)
    return regs, max(static_shared, int(kernel.metadata.shared)), local


def builds(ragged: bool = False) -> list[dict[str, Any]]:
    """Every build this probe compiles: kernel, its arguments, and the model's plan of it.

    `ragged`: the row softmax's builds for ragged rows (VEC = 1) alone.
    """
    from attnsim.kernels.spec import SOFTMAX_MAX_BLOCK

    ptr, i32, f32 = "*bf16", "i32", "fp32"
    out: list[dict[str, Any]] = []
    for d in () if ragged else (64, 128):
        for bm, bn, w in ((128, 64, 4), (128, 128, 8), (64, 64, 4)):
            for causal in (False, True):
                common = {"BLOCK_M": bm, "BLOCK_N": bn, "HEAD_DIM": d, "CAUSAL": causal,
                          "DOT_PRECISION": "ieee"}  # fmt: skip
                qk_sig = {"Q": ptr, "K": ptr, "S": ptr, **dict.fromkeys(
                    ("stride_qb", "stride_qh", "stride_qs", "stride_kb", "stride_kh",
                     "stride_ks", "heads", "seq_q", "seq_k"), i32), "qk_scale": f32}  # fmt: skip
                pv_sig = {"P": ptr, "V": ptr, "Out": ptr, **dict.fromkeys(
                    ("stride_vb", "stride_vh", "stride_vs", "stride_ob", "stride_oh",
                     "stride_os", "heads", "seq_q", "seq_k"), i32)}  # fmt: skip
                tiling = {"block_m": bm, "block_n": bn, "num_warps": w, "num_stages": 3}
                base = {"head_dim": d, "causal": causal, **tiling}
                out.append({"kernel": "qk", "sig": qk_sig, "const": common, **base})
                out.append({"kernel": "pv", "sig": pv_sig, "const": common, **base})
    for block, single in ((4096, True), (SOFTMAX_MAX_BLOCK, True), (SOFTMAX_MAX_BLOCK, False)):
        w = 8 if block >= 4096 else 4
        for causal in (False, True):
            out.append({"kernel": "softmax", "head_dim": 0, "causal": causal, "block_m": 1,
                        "block_n": block, "num_warps": w, "num_stages": 3,
                        "path": "one block" if single else "two loops",
                        "rows": "ragged" if ragged else "aligned",
                        "sig": {"S": ptr, "seq_q": i32, "seq_k": i32},
                        "const": {"BLOCK": block, "CAUSAL": causal, "SINGLE": single,
                                  "VEC": 1 if ragged else 16}})  # fmt: skip
    return out


def model_estimate(b: dict[str, Any]) -> tuple[int, int]:
    """The model's registers per thread and programs per SM for build `b` (H200 preset)."""
    from attnsim.archs.gpu import GpuArch
    from attnsim.archs.load import load_arch
    from attnsim.kernels.spec import SOFTMAX_MAX_BLOCK, AttnShape
    from attnsim.mappers.gpu.kernels import _unfused
    from attnsim.mappers.gpu.model import Tiling, residency

    arch = load_arch("h200")
    assert isinstance(arch, GpuArch)
    d = b["head_dim"] or 64
    # a row length that takes this build's softmax path
    seq = b["block_n"] if b.get("path") != "two loops" else 2 * SOFTMAX_MAX_BLOCK
    shape = AttnShape(1, 1, seq, seq, d, d, b["causal"], "bf16", 2)
    tiling = Tiling(
        b["block_m"] if b["kernel"] != "softmax" else 128,
        b["block_n"] if b["kernel"] != "softmax" else 64,
        b["num_warps"],
        3,
    )
    plan = _unfused(shape, tiling, arch.sm_count, arch.l2_bytes)[
        ("qk", "softmax", "pv").index(b["kernel"])
    ]
    res = residency(arch, plan.smem_bytes, plan.registers_per_thread, plan.tiling.num_warps)
    return plan.registers_per_thread, res.blocks_per_sm


def main(argv: list[str] | None = None) -> int:
    """Compile every build, print the table (and write `--out`); 2 on a usage problem."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--out", type=Path, help="write the figures as YAML here")
    ap.add_argument("--only", choices=("qk", "softmax", "pv"), help="one kernel's builds")
    ap.add_argument("--ragged", action="store_true",
                    help="the row softmax's builds for rows of no multiple of 16 keys")  # fmt: skip
    args = ap.parse_args(argv)
    try:
        import triton  # noqa: F401
    except ImportError:
        print("error: needs triton (pip install triton==3.6.0)", file=sys.stderr)
        return 2
    if os.environ.get("TRITON_INTERPRET") == "1":
        print("error: TRITON_INTERPRET=1 makes kernels interpreted; unset it to compile",
              file=sys.stderr)  # fmt: skip
        return 2
    from attnsim.kernels.triton import attn_unfused

    fns = {"qk": attn_unfused.qk_kernel, "pv": attn_unfused.pv_kernel,
           "softmax": attn_unfused.softmax_kernel}  # fmt: skip
    rows = []
    print(f"{'kernel':8} {'build':42} {'regs':>5} {'spill B':>7} {'smem B':>7} {'per SM':>6}"
          f" {'model regs':>10} {'model per SM':>12}")  # fmt: skip
    for b in builds(args.ragged):
        if args.only and b["kernel"] != args.only:
            continue
        regs, smem, local = compiled(fns[b["kernel"]], b["sig"], b["const"], b["num_warps"],
                                     b["num_stages"], args.ragged)  # fmt: skip
        held = programs_per_sm(regs, b["num_warps"], smem)
        est_regs, est_held = model_estimate(b)
        what = (
            f"{b['path']} {b['block_n']} lanes, {b['rows']} rows"
            if b["kernel"] == "softmax"
            else f"d{b['head_dim']} {b['block_m']}x{b['block_n']}/w{b['num_warps']}"
        )
        what += " causal" if b["causal"] else ""
        print(f"{b['kernel']:8} {what:42} {regs:5d} {local:7d} {smem:7d} {held:6d}"
              f" {est_regs:10d} {est_held:12d}", flush=True)  # fmt: skip
        row = {k: v for k, v in b.items() if k not in ("sig", "const")}
        rows.append({**row, "registers": regs, "spill_bytes": local, "shared_bytes": smem,
                     "resident_per_sm": held, "model_registers": est_regs,
                     "model_resident_per_sm": est_held})  # fmt: skip
    if args.out:
        import yaml

        args.out.write_text(yaml.safe_dump({"target": "sm_90 (compiled on the CPU)",
                                            "builds": rows}, sort_keys=False))  # fmt: skip
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
