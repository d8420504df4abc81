"""The neighborhood probe `reports.validation_kernels` reads (family `triton-neighborhood`).

Rows of `benchmarks/neighborhood_probe.py` (column `kernel_h`): the row's problem (image,
per-axis kernel, dilation and causal flags) and tiles (q_tile, kv_tile as rows x cols) give the
layout the kernel ran (`mappers.gpu.neighborhood.neighborhood_layout`, checked against the
row's `positions`), priced as the whole call: the kernel on the plain 1-pass plan plus the
copies into and out of tile order. Baselines in the same files: `flex` (FlexAttention, the same
mask on row-major tokens), `sdpa-dense` (no mask) and `triton-neighborhood-kernel` (the kernel
alone on tokens already in tile order: the copies' share of a call).
"""

from __future__ import annotations

from attnsim.reports.validation_kernels import Probe, Row, register, row_int

NEIGHBORHOOD_FAMILY = "triton-neighborhood"  # kernels.triton.neighborhood.attention_neighborhood


def _axes(row: Row, name: str) -> tuple[int, int]:
    return row_int(row, f"{name}_h"), row_int(row, f"{name}_w")


def _shape(row: Row) -> str:
    b, h, e = (row_int(row, k) for k in ("batch", "heads", "head_dim"))
    (ih, iw), (kh, kw), (dh, dw) = (_axes(row, n) for n in ("image", "kernel", "dilation"))
    ch, cw = _axes(row, "causal")
    if ih == 1:
        return f"B={b} H={h} E={e} L={iw} k={kw} d={dw}{' causal' if cw else ''}"
    causal = f" causal {ch}x{cw}" if ch or cw else ""
    return f"B={b} H={h} E={e} {ih}x{iw} k={kh}x{kw} d={dh}x{dw}{causal}"


def _config(row: Row) -> str:
    w, s = row_int(row, "num_warps"), row_int(row, "num_stages")
    return f"{row.get('q_tile', '')}/{row.get('kv_tile', '')}/w{w}/s{s}"


def _tile(row: Row, key: str, block_key: str) -> tuple[int, int]:
    """A tile column 'RxC' whose product is the row's block size; ValueError naming it."""
    text, block = (row.get(key) or "").strip(), row_int(row, block_key)
    try:
        rows, cols = (int(x) for x in text.split("x"))
    except ValueError:
        rows = cols = 0
    if rows < 1 or cols < 1 or rows * cols != block:
        raise ValueError(f"{key}: expected rows x cols of {block_key} = {block} tokens "
                         f"(e.g. 8x16), got {text!r}")  # fmt: skip
    return rows, cols


Axes = tuple[int, int]


def _problem(row: Row) -> tuple[Axes, Axes, Axes, tuple[bool, bool]]:
    """(image, kernel, dilation, causal) of a row; ValueError naming the first bad field."""
    image, kernel, dilation = (_axes(row, n) for n in ("image", "kernel", "dilation"))
    for a, axis in enumerate(("h", "w")):
        checks = (
            ("image", image[a] >= 1, "a size >= 1"),
            ("dilation", dilation[a] >= 1, "an int >= 1"),
            ("kernel", kernel[a] % 2 == 1 and 1 <= kernel[a] * dilation[a] <= image[a],
             f"an odd size whose dilated span fits in the image ({image[a]})"),
        )  # fmt: skip
        for name, ok, what in checks:
            if not ok:
                key = f"{name}_{axis}"
                raise ValueError(f"{key}: expected {what}, got {row.get(key)!r}")
    causal = _axes(row, "causal")
    return image, kernel, dilation, (bool(causal[0]), bool(causal[1]))


def _predict(row: Row, arch: object) -> tuple[float, str]:
    from attnsim.mappers.gpu.blocksparse import evaluate_block_sparse
    from attnsim.mappers.gpu.model import Tiling
    from attnsim.mappers.gpu.neighborhood import (
        neighborhood_layout,
        neighborhood_shape,
        permute_time_s,
    )

    image, kernel, dilation, causal = _problem(row)
    q_tile, kv_tile = _tile(row, "q_tile", "block_m"), _tile(row, "kv_tile", "block_n")
    if not any(all(a[i] % b[i] == 0 for i in (0, 1)) for a, b in ((q_tile, kv_tile),
                                                                  (kv_tile, q_tile))):  # fmt: skip
        raise ValueError(f"kv_tile: expected a tile inside q_tile {q_tile} or containing it, "
                         f"got {row.get('kv_tile')!r}")  # fmt: skip
    plan = neighborhood_layout(image, kernel, dilation, causal, q_tile, kv_tile)
    if row_int(row, "positions", plan.seq) != plan.seq:
        raise ValueError(f"positions: the model's tile order runs {plan.seq}, the row "
                         f"{row.get('positions')!r}")  # fmt: skip
    shape = neighborhood_shape(row_int(row, "batch"), row_int(row, "heads"),
                               row_int(row, "head_dim"), plan)  # fmt: skip
    t = Tiling(row_int(row, "block_m"), row_int(row, "block_n"), row_int(row, "num_warps"),
               row_int(row, "num_stages"))  # fmt: skip
    ev = evaluate_block_sparse(shape, t, arch)  # type: ignore[arg-type]
    copies, _ = permute_time_s(shape, plan, arch)  # type: ignore[arg-type]
    main = max(ev.kernels, key=lambda k: k.time_s)
    return (ev.time_s + copies) * 1e3, main.bound + (" + copies" if copies else "")


NEIGHBORHOOD = register(
    Probe(NEIGHBORHOOD_FAMILY, "gpu-1pass", "kernel_h", _shape, _config, _predict)
)
