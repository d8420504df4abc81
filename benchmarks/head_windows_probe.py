"""GPU only: per-head (MoA-style elastic) windows against uniform windows and causal attention.

Run: PYTHONPATH=. python benchmarks/head_windows_probe.py

At 1 x 32 heads x 16K tokens, head dim 128 (bf16), tiling 128x64/8 warps/3 stages: causal
attention; a uniform window of 4K; a uniform window of the per-head widths' mean; and per-head
windows of 512, 1K, 2K and 4K (8 heads each). Each output is checked against float32
attention on heads 0, 8, 16, 24 (one per width). Prints the medians (do_bench, L2 flushed);
the per-head call should cost about what the mean window costs, well under the widest.
"""

from __future__ import annotations

import functools
import sys

import torch
import triton.testing

from attnsim.kernels.triton.attn_fwd import attention_fwd

B, H, S, D = 1, 32, 16384, 128
TILING = dict(block_m=128, block_n=64, num_warps=8, num_stages=3)
WIDTHS = [512] * 8 + [1024] * 8 + [2048] * 8 + [4096] * 8


def main() -> int:
    """Check, time and print (module docstring)."""
    if not torch.cuda.is_available():
        print("head_windows_probe needs a CUDA GPU", file=sys.stderr)
        return 2
    g = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (torch.randn(B, H, S, D, device="cuda", generator=g, dtype=torch.bfloat16)
               for _ in range(3))  # fmt: skip
    out = attention_fwd(q, k, v, True, window=WIDTHS, **TILING)
    i, j = torch.arange(S, device="cuda")[:, None], torch.arange(S, device="cuda")[None, :]
    for h in (0, 8, 16, 24):
        s = (q[0, h].float() @ k[0, h].float().T) * D**-0.5
        keep = (j <= i) & (i - j < WIDTHS[h])
        ref = torch.softmax(s.masked_fill(~keep, float("-inf")), -1) @ v[0, h].float()
        err = (out[0, h].float() - ref).abs().max().item()
        assert err < 2e-2, (h, err)
    bench = functools.partial(triton.testing.do_bench, warmup=25, rep=100, return_mode="median")
    mean = sum(WIDTHS) // len(WIDTHS)
    runs = {
        "causal": functools.partial(attention_fwd, q, k, v, True, **TILING),
        "uniform 4096": functools.partial(attention_fwd, q, k, v, True, window=4096, **TILING),
        f"uniform {mean} (mean)": functools.partial(
            attention_fwd, q, k, v, True, window=mean, **TILING
        ),  # fmt: skip
        "per-head 512/1K/2K/4K": functools.partial(
            attention_fwd, q, k, v, True, window=WIDTHS, **TILING
        ),  # fmt: skip
    }
    for name, run in runs.items():
        print(f"{name:>24}: {bench(run):.4f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
