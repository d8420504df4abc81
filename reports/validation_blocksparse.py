"""The block-sparse probe `reports.validation_kernels` reads (family `triton-blocksparse`).

Rows of `benchmarks/blocksparse_suite.py` (column `seed`): the layout is re-built from the
row's mask (random 128 x 128 blocks drawn with numpy's generator and the row's seed, or the
document lengths; causal or not) exactly as the GPU machine built it, and priced by
`mappers.gpu.blocksparse` at the row's tiling. Rows of the earlier
`benchmarks/blocksparse_probe.py` (column `target_density`, FlexAttention timed beside) drew
their random blocks with torch's CPU generator seeded by the density: re-drawn the same way
(torch needed for those rows).
"""

from __future__ import annotations

from attnsim.reports.validation_kernels import Probe, Row, register, row_float, row_int

BLOCKSPARSE_FAMILY = "triton-blocksparse"  # kernels.triton.attn_fwd(block_sparse=)


def _shape(row: Row) -> str:
    b, h, s, d = (row_int(row, k) for k in ("batch", "heads", "seq", "head_dim"))
    flag = (row.get("causal") or "").strip().lower()
    causal = " causal" if flag in ("1", "true") else ""
    if row.get("mask") == "blocks" and "target_density" in row:
        what = f"blocks {row_float(row, 'target_density'):.0%} (torch draw)"
    elif row.get("mask") == "blocks":
        what = f"blocks {row_float(row, 'density'):.0%} seed {row_int(row, 'seed')}"
    else:
        what = f"documents {row.get('documents', '')}"
    return f"B={b} H={h} S={s} E={d} {what}{causal}"


def _config(row: Row) -> str:
    t = (row_int(row, k) for k in ("block_m", "block_n", "num_warps", "num_stages"))
    return "{}x{}/w{}/s{}".format(*t)


def _density(row: Row, key: str) -> float:
    """A block density column in (0, 1]; ValueError naming the field otherwise."""
    value = row_float(row, key)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{key}: expected a block density in (0, 1], got {row.get(key)!r}")
    return value


def _checked_documents(row: Row, seq: int) -> list[int]:
    """The row's document lengths, checked against its sequence length."""
    text = row.get("documents") or ""
    try:
        lens = _documents(text)
    except ValueError:
        lens = []
    if not lens or min(lens) < 1 or sum(lens) != seq:
        raise ValueError(
            f"documents: expected lengths >= 1 joined by '/' (or NxL) summing to seq "
            f"{seq}, got {text!r}"
        )
    return lens


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
        blocks = random_blocks(s, s, _density(row, "density"), row_int(row, "seed"))
        allowed = expand_blocks(blocks, RANDOM_BLOCK, s, s, bm, bn)
        return layout_of(s, s, bm, bn, causal=causal, allowed=allowed)
    return layout_of(s, s, bm, bn, causal=causal, documents=_checked_documents(row, s))


def _documents(text: str) -> list[int]:
    """'8x2048' (equal documents) or '512/4096/...' as lengths."""
    if "x" in text:
        n, length = text.split("x")
        return [int(length)] * int(n)
    return [int(n) for n in text.split("/") if n]


def legacy_layout_of_row(row: Row) -> object:
    """A blocksparse_probe.py row's layout (its random blocks from torch's CPU generator)."""
    from attnsim.mappers.gpu.blocksparse import layout_of

    s, bm, bn = row_int(row, "seq"), row_int(row, "block_m"), row_int(row, "block_n")
    causal = (row.get("causal") or "").strip().lower() in ("true", "1")
    if row.get("mask") == "blocks":
        from attnsim.kernels.bench.blocksparse_draws import probe_random_blocks

        blocks = probe_random_blocks(-(-s // bm), _density(row, "target_density"))
        return layout_of(s, s, bm, bn, causal=causal, allowed=blocks)
    return layout_of(s, s, bm, bn, causal=causal, documents=_checked_documents(row, s))


def _predict(row: Row, arch: object) -> tuple[float, str]:
    from attnsim.kernels.spec import TileLayout
    from attnsim.mappers.gpu.blocksparse import block_sparse_shape, evaluate_block_sparse
    from attnsim.mappers.gpu.model import Tiling

    layout = legacy_layout_of_row(row) if "target_density" in row else layout_of_row(row)
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
BLOCKSPARSE_FLEX_PROBE = register(
    Probe(BLOCKSPARSE_FAMILY, "gpu-1pass", "target_density", _shape, _config, _predict)
)
