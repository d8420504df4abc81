"""The block-sparse probe `reports.validation_kernels` reads (family `triton-blocksparse`).

Rows of `benchmarks/blocksparse_suite.py` (column `seed`): the layout is re-built from the
row's mask (random 128 x 128 blocks drawn with numpy's generator and the row's seed, or the
document lengths; causal or not) exactly as the GPU machine built it, and priced by
`mappers.gpu.blocksparse` at the row's tiling.
"""

from __future__ import annotations

from attnsim.reports.validation_kernels import Probe, Row, register, row_float, row_int

BLOCKSPARSE_FAMILY = "triton-blocksparse"  # kernels.triton.attn_fwd(block_sparse=)


def _shape(row: Row) -> str:
    b, h, s, d = (row_int(row, k) for k in ("batch", "heads", "seq", "head_dim"))
    causal = " causal" if row_int(row, "causal") else ""
    if row.get("mask") == "blocks":
        what = f"blocks {row_float(row, 'density'):.0%} seed {row_int(row, 'seed')}"
    else:
        what = f"documents {row.get('documents', '')}"
    return f"B={b} H={h} S={s} E={d} {what}{causal}"


def _config(row: Row) -> str:
    t = (row_int(row, k) for k in ("block_m", "block_n", "num_warps", "num_stages"))
    return "{}x{}/w{}/s{}".format(*t)


def layout_of_row(row: Row) -> object:
    """The row's `TileLayout` at its tiling (see the module docstring)."""
    from attnsim.mappers.gpu.blocksparse import (
        RANDOM_BLOCK,
        expand_blocks,
        layout_of,
        random_blocks,
    )

    s, bm, bn = row_int(row, "seq"), row_int(row, "block_m"), row_int(row, "block_n")
    causal = bool(row_int(row, "causal"))
    if row.get("mask") == "blocks":
        blocks = random_blocks(s, s, row_float(row, "density"), row_int(row, "seed"))
        allowed = expand_blocks(blocks, RANDOM_BLOCK, s, s, bm, bn)
        return layout_of(s, s, bm, bn, causal=causal, allowed=allowed)
    docs = [int(n) for n in (row.get("documents") or "").split("/") if n]
    return layout_of(s, s, bm, bn, causal=causal, documents=docs)


def _predict(row: Row, arch: object) -> tuple[float, str]:
    from attnsim.kernels.spec import TileLayout
    from attnsim.mappers.gpu.blocksparse import block_sparse_shape, evaluate_block_sparse
    from attnsim.mappers.gpu.model import Tiling

    layout = layout_of_row(row)
    assert isinstance(layout, TileLayout)
    shape = block_sparse_shape(
        row_int(row, "batch"), row_int(row, "heads"), row_int(row, "seq"),
        row_int(row, "seq"), row_int(row, "head_dim"), layout,
    )  # fmt: skip
    bm, bn, w, st = (row_int(row, k) for k in ("block_m", "block_n", "num_warps", "num_stages"))
    t = Tiling(bm, bn, w, st)
    e = evaluate_block_sparse(shape, t, arch)  # type: ignore[arg-type]
    main = max(e.kernels, key=lambda k: k.time_s)
    return e.time_s * 1e3, main.bound


BLOCKSPARSE = register(
    Probe(BLOCKSPARSE_FAMILY, "gpu-1pass", "seed", _shape, _config, _predict)  # fmt: skip
)
