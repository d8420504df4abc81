"""1-D and 2-D neighborhood attention on the 1-pass kernel (family `triton-neighborhood`).

`attention_neighborhood` runs the plain 1-pass kernel with a block-sparse layout built from the
neighborhood's geometry (`neighborhood_layout`): per 2-D query tile, the key tiles its
neighborhoods reach, those inside every window run unmasked, the edge tiles masked by the
windows (`neighborhood_mask`), the others never loaded (Faster Neighborhood Attention's
tile-level skipping; Hassani et al., 2024).

Why tokens are permuted on the host rather than gathered in the kernel: a 2-D tile's rows are
not contiguous in row-major order. Gathering them by computed pointers would give up the
kernel's tensor-descriptor (TMA) loads and add address arithmetic to every tile, and dilation
would need strided tiles; putting Q, K and V in tile order once (one row gather each,
`kernels.triton.gather_rows`, one more for O) keeps the kernel exactly the block-sparse
kernel, which is measured and modelled, with one extra constexpr mask mode. The copies cost
4 passes over the activations; NATTEN's Hopper and Blackwell kernels make the same choice
(token permutation). A caller that keeps its tokens in tile order across layers passes
`in_tile_order=True` and pays nothing, and where the tile order is row-major (1-D without
dilation, tiles as wide as the image) nothing moves.

`neighborhood_mask` and `neighborhood_reference` write the mask plainly from NATTEN's window
rule in image coordinates (`get_window_start`), independent of the layout's sub-grid form.
"""

from __future__ import annotations

from typing import Any

import torch

from attnsim.kernels.triton.attn_fwd import attention_fwd
from attnsim.kernels.triton.common import check_qkv, default_tiling
from attnsim.kernels.triton.neighborhood_layout import (
    Neighborhood,
    NeighborhoodSparse,
    neighborhood_sparse,
)

__all__ = [
    "Neighborhood",
    "NeighborhoodSparse",
    "attention_neighborhood",
    "neighborhood_mask",
    "neighborhood_of",
    "neighborhood_reference",
]

DEFAULT_BLOCK_N = 64  # key tiles of 64 (8 x 8 in 2-D): less waste at a window's edge
# a repeated call's layout by its arguments: no geometry checks or builder lookup per call
_CALLS: dict[tuple[Any, ...], NeighborhoodSparse] = {}


def neighborhood_of(
    q: Any, kernel_size: Any, dilation: Any = 1, image: Any = None, causal: Any = False,
    block_m: Any = None, block_n: Any = None,
) -> Neighborhood:  # fmt: skip
    """The problem of a call on q (B, H, tokens, D) (`attention_neighborhood`'s arguments).

    `image`: (height, width), a 1-D length, or None (1-D over q's tokens); default tiles:
    block_m the head dim's default (`common.default_tiling`), block_n `DEFAULT_BLOCK_N`.
    """
    return Neighborhood.of(
        q.shape[2] if image is None else image if isinstance(image, int) else tuple(image),
        kernel_size, dilation, causal,
        default_tiling(q.shape[3])[0] if block_m is None else block_m,
        DEFAULT_BLOCK_N if block_n is None else block_n,
    )  # fmt: skip


def attention_neighborhood(
    q: Any, k: Any, v: Any, kernel_size: Any, dilation: Any = 1, image: Any = None,
    causal: Any = False, scale: float | None = None, block_m: Any = None, block_n: Any = None,
    num_warps: int | None = None, num_stages: int | None = None, in_tile_order: bool = False,
) -> Any:  # fmt: skip
    """Neighborhood attention forward; returns O (B, H, tokens, D) like q.

    q (B, H, tokens, D), k and v (B, G, tokens, D) (G divides H: GQA), tokens in row-major
    image order; `image` (height, width), or None for 1-D (or its length: needed with
    `in_tile_order`, where q holds the tile order's positions). Per axis (a scalar: the 1-D
    axis, or both axes; or a (rows, cols) pair): `kernel_size` keys (odd), `dilation`,
    `causal` (the window ends at the query). `block_m` / `block_n`: the query and key tile,
    an int (1-D: 1 x n; 2-D: near-square, e.g. 128 -> 8 x 16, 64 -> 8 x 8) or a (rows, cols)
    shape, one containing the other; defaults 128 x 64 tokens. `num_warps`, `num_stages`: the
    kernel's (None: its defaults). `in_tile_order`: q, k, v are already in the layout's tile
    order (`neighborhood_sparse(neighborhood_of(...), device).to_tiles`), and so is the output.
    """
    args: tuple[Any, ...] | None = (q.shape[2:], q.device, kernel_size, dilation, image, causal,
                                     block_m, block_n)  # fmt: skip
    try:
        lay = _CALLS.get((args, in_tile_order))
    except TypeError:  # unhashable arguments (lists): no per-call cache
        args, lay = None, None
    if lay is None:
        g = neighborhood_of(q, kernel_size, dilation, image, causal, block_m, block_n)
        lay = neighborhood_sparse(g, q.device)
        want = lay.seq_q if in_tile_order else g.tokens
        if q.shape[2] != want:
            what = "positions of the tile order" if in_tile_order else "tokens of the image"
            raise ValueError(f"q has {q.shape[2]} tokens; {g.image} has {want} {what}")
        if args is not None and len(_CALLS) < 1024:
            _CALLS[(args, in_tile_order)] = lay
    if not in_tile_order:
        check_qkv(q, k, v, groups=True)
        q, k, v = (lay.to_tiles(x) for x in (q, k, v))
    o = attention_fwd(q, k, v, False, scale, num_warps=num_warps, num_stages=num_stages,
                      block_sparse=lay)  # fmt: skip
    return o if in_tile_order else lay.from_tiles(o)


def _axis_visible(n: int, k: int, d: int, causal: bool, device: Any) -> torch.Tensor:
    """Which keys (bool (n, n)) of one axis a query sees (NATTEN's rule, image coordinates)."""
    i = torch.arange(n, device=device)
    j = i[None, :]
    same = (j % d) == (i % d)[:, None]
    if causal:
        return same & (j <= i[:, None]) & (j >= (i - (k - 1) * d)[:, None])
    ns = k // 2
    near_end = torch.where(
        i % d < n % d, n - n % d + i % d - 2 * ns * d, (n // d) * d + i % d - k * d
    )
    start = torch.where(i + ns * d >= n, near_end, i - ns * d)
    start = torch.where(i - ns * d < 0, i % d, start)
    return same & (j >= start[:, None]) & (j <= (start + (k - 1) * d)[:, None])


def neighborhood_mask(g: Neighborhood, device: Any = "cpu") -> torch.Tensor:
    """Whether query token i sees key token j: bool (tokens, tokens), row-major image order."""
    vis_y, vis_x = (
        _axis_visible(g.image[a], g.kernel[a], g.dilation[a], g.causal[a], device) for a in (0, 1)
    )
    t = torch.arange(g.tokens, device=device)
    y, x = t // g.image[1], t % g.image[1]
    return vis_y[y[:, None], y[None, :]] & vis_x[x[:, None], x[None, :]]


def neighborhood_reference(
    q: Any, k: Any, v: Any, g: Neighborhood, scale: float | None = None, dtype: Any = torch.float64
) -> Any:
    """Attention with the mask written plainly (`neighborhood_mask`), in `dtype`."""
    group = q.shape[1] // k.shape[1]
    q, k, v = (t.to(dtype) for t in (q, k, v))
    k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
    s = (q @ k.transpose(-1, -2)) * (q.shape[-1] ** -0.5 if scale is None else scale)
    s = s.masked_fill(~neighborhood_mask(g, q.device), float("-inf"))
    return torch.softmax(s, dim=-1) @ v
