"""Compile every decode-kernel instantiation for sm_90 on the CPU (no GPU needed).

`triton.compile` on an `ASTSource` with an explicit signature and a `GPUTarget` runs Triton's
whole CUDA pipeline through ptxas, so compile errors show here before device time is spent.
It runs in a subprocess: the other decode tests set TRITON_INTERPRET, under which `triton.jit`
builds interpreter functions that cannot be compiled. The subprocess prints each case's
registers, spills and shared memory (ptxas -v) for information.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# (name, strategy, ragged, paged, e_main, e_tail, f, v_is_k, block_r, block_n, num_warps)
CASES = [
    ("unsplit", 0, False, False, 128, 0, 128, False, 16, 64, 4),
    ("splitk", 1, False, False, 128, 0, 128, False, 16, 64, 4),
    ("streamk", 2, False, False, 128, 0, 128, False, 16, 64, 4),
    ("splitk-ragged-paged", 1, True, True, 64, 0, 64, False, 32, 64, 4),
    ("streamk-ragged-paged", 2, True, True, 128, 0, 128, False, 16, 64, 8),
    ("mla-splitk-fused", 1, False, False, 512, 64, 512, True, 32, 32, 8),
    ("mla-streamk-paged", 2, True, True, 512, 64, 512, True, 16, 32, 8),
]


def compile_case(case: tuple) -> str:  # type: ignore[type-arg]
    """Compile one case for sm_90; returns a line with its resource use."""
    import tempfile

    import triton
    from triton.backends.compiler import GPUTarget

    from attnsim.kernels.triton.attn_decode_kernel import decode_kernel

    name, strategy, ragged, paged, e_main, e_tail, f, v_is_k, block_r, block_n, warps = case
    pointers = {n: "*bf16" for n in ("Q", "QT", "KM", "KT", "V", "Out")}
    pointers.update(Part="*fp32", Lse="*fp32", Count="*i32", SeqLens="*i32", Table="*i32")
    consts = dict(
        BLOCK_R=block_r, BLOCK_N=block_n, E_MAIN=e_main, E_TAIL=e_tail, F=f,
        PAGE_SIZE=256 if paged else 1, BATCH_BLOCK=64, STRATEGY=strategy, RAGGED=ragged,
        PAGED=paged, V_IS_K=v_is_k, DOT_PRECISION="tf32",
    )  # fmt: skip
    signature = {
        p.name: pointers.get(p.name)
        or ("constexpr" if p.name in consts else "fp32" if p.name == "qk_scale" else "i32")
        for p in decode_kernel.params
    }
    src = triton.compiler.ASTSource(decode_kernel, signature, consts)
    kernel = triton.compile(src, target=GPUTarget("cuda", 90, 32),
                            options=dict(num_warps=warps, num_stages=2))  # fmt: skip
    assert kernel.asm.get("cubin"), name
    ptxas = Path(triton.__file__).parent / "backends/nvidia/bin/ptxas"
    info = ""
    if ptxas.exists():
        with tempfile.NamedTemporaryFile("w", suffix=".ptx", delete=False) as fh:
            fh.write(kernel.asm["ptx"])
        res = subprocess.run([str(ptxas), "-v", "--gpu-name", "sm_90a", fh.name, "-o",
                              os.devnull], capture_output=True, text=True)  # fmt: skip
        os.unlink(fh.name)
        info = " ".join(line.split(":", 1)[-1].strip() for line in res.stderr.splitlines()
                        if "registers" in line or "spill" in line)  # fmt: skip
    return f"{name}: ok, shared {kernel.metadata.shared} B; {info}"


def test_decode_kernel_compiles_for_sm90():
    pytest.importorskip("triton.backends.nvidia")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    res = subprocess.run([sys.executable, __file__], capture_output=True, text=True, env=env,
                         timeout=600)  # fmt: skip
    print(res.stdout)
    assert res.returncode == 0, res.stderr[-4000:]
    assert res.stdout.count(": ok,") == len(CASES)


if __name__ == "__main__":
    for case in CASES:
        print(compile_case(case), flush=True)
