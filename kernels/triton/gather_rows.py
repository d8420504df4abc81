"""Row gather along the sequence: `y[b, h, i] = x[b, h, index[i]]` for (B, H, S, D) tensors.

What `torch.index_select(x, 2, index)` computes, as one Triton kernel whose programs each
copy `BLOCK_R` whole rows (D contiguous elements): loads and stores of full rows, so the copy
runs at HBM bandwidth. Measured on the H200 (2026-12-05, kernels/measurements/neighborhood),
`index_select` on dim 2 of a bf16 (B, H, S, 64-128) tensor reached about 1.2 TB/s of the
4.5 TB/s the GPU reads, which made the neighborhood kernel's four token permutations cost more
than the attention itself (`kernels.triton.neighborhood`).
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

BLOCK_R = 32  # rows per program


@triton.jit
def gather_rows_kernel(
    X, Y, Index, n_out, stride_xb, stride_xh, stride_xs, stride_yb, stride_yh, stride_ys,
    D: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    """Grid (ceil(n_out / BLOCK_R), heads, batch): rows r of y get rows Index[r] of x."""
    r = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    off_h = tl.program_id(1).to(tl.int64)
    off_b = tl.program_id(2).to(tl.int64)
    live = r < n_out
    src = tl.load(Index + r, mask=live, other=0).to(tl.int64)
    d = tl.arange(0, BLOCK_D)
    mask = live[:, None] & (d[None, :] < D)
    x_p = X + off_b * stride_xb + off_h * stride_xh + src[:, None] * stride_xs + d[None, :]
    y_p = Y + off_b * stride_yb + off_h * stride_yh + r[:, None].to(tl.int64) * stride_ys
    tl.store(y_p + d[None, :], tl.load(x_p, mask=mask), mask=mask)


def gather_rows(x: Any, index: Any) -> Any:
    """`x.index_select(2, index)` for a (B, H, S, D) tensor, by `gather_rows_kernel`.

    `index`: int64 or int32 (n,) on x's device, each in [0, S) (not checked on the device).
    Returns a new contiguous (B, H, n, D) tensor of x's dtype.
    """
    if x.dim() != 4 or index.dim() != 1:
        raise ValueError(f"gather_rows takes x (B, H, S, D) and index (n,), got "
                         f"{tuple(x.shape)} and {tuple(index.shape)}")  # fmt: skip
    if index.device != x.device:
        raise ValueError(f"index is on {index.device}, x on {x.device}")
    if x.stride(3) != 1:
        x = x.contiguous()
    b, h, _, d = x.shape
    n = index.shape[0]
    y = torch.empty((b, h, n, d), dtype=x.dtype, device=x.device)
    if y.numel() == 0:
        return y
    grid = (triton.cdiv(n, BLOCK_R), h, b)
    gather_rows_kernel[grid](
        x, y, index, n, x.stride(0), x.stride(1), x.stride(2), y.stride(0), y.stride(1),
        y.stride(2), D=d, BLOCK_R=BLOCK_R, BLOCK_D=triton.next_power_of_2(d), num_warps=4,
    )  # fmt: skip
    return y
