"""The 1-pass forward kernel compiled for sm_90 on any host, and its SASS by opcode.

Triton's CUDA pipeline runs through ptxas without a GPU, so tests on CPU machines can check
what an instantiation compiles to (shared memory, instruction mix). Not under
TRITON_INTERPRET=1 (the interpreter replaces `triton.jit`): `run_script` runs a script in a
fresh interpreter with that variable removed.
"""

from __future__ import annotations

import collections
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

TMA_HOST = 2  # attn_fwd's USE_TMA: descriptors built on the host
_FP32_ARGS = ("qk_scale", "softcap", "sigmoid_bias")
_INT_POINTERS = ("layout", "q_segments", "k_segments", "head_windows")
_OPCODE = re.compile(r"[^\t]*\t(?:@!?U?P\w+\s+)?([A-Z0-9_]+)")


def compile_fwd(
    tiling: tuple[int, int, int, int] = (128, 128, 8, 3),
    head_dim: int = 128,
    use_tma: int = TMA_HOST,
    **constexprs: Any,
) -> Any:
    """`attn_fwd_kernel` with these constexprs (and tiling, head dim), compiled for sm_90.

    Returns Triton's compiled kernel (`.metadata.shared`, `.asm["sass"]`). Defaults of the
    other constexprs are the kernel's own; DOT_PRECISION tf32, bf16 tensors.
    """
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from attnsim.kernels.triton.attn_fwd import attn_fwd_kernel as fn

    bm, bn, warps, stages = tiling
    const = dict(BLOCK_M=bm, BLOCK_N=bn, HEAD_DIM=head_dim, CAUSAL=False, USE_TMA=use_tma,
                 DOT_PRECISION="tf32") | constexprs  # fmt: skip
    sig = {}
    for p in fn.params:
        rows = bm if p.name in ("Q", "Out") else bn
        if p.is_constexpr:
            sig[p.name] = "constexpr"
        elif p.name in ("Q", "K", "V", "Out"):
            sig[p.name] = (
                f"tensordesc<bf16[{rows}, {head_dim}]>" if use_tma == TMA_HOST else "*bf16"
            )
        elif p.name in _INT_POINTERS:
            sig[p.name] = "*i32"
        elif p.name == "lse":
            sig[p.name] = "*fp32"
        else:
            sig[p.name] = "fp32" if p.name in _FP32_ARGS else "i32"
    consts = {p.name: const.get(p.name, p.default) for p in fn.params if p.is_constexpr}
    return triton.compile(ASTSource(fn, sig, consts), target=GPUTarget("cuda", 90, 32),
                          options=dict(num_warps=warps, num_stages=stages))  # fmt: skip


def sass_opcodes(compiled: Any) -> collections.Counter[str]:
    """Static instruction count of a compiled kernel's SASS by opcode (FFMA, MUFU, ...)."""
    ops: collections.Counter[str] = collections.Counter()
    for line in compiled.asm["sass"].splitlines():
        m = _OPCODE.match(line)
        if m:
            ops[m.group(1)] += 1
    return ops


def run_script(script: str, timeout_s: float = 600) -> str:
    """Run Python `script` in a subprocess without TRITON_INTERPRET; its stdout.

    Raises RuntimeError with the end of its stderr when it fails.
    """
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, timeout=timeout_s)  # fmt: skip
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-4000:])
    return res.stdout
