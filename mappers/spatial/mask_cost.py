"""What a mask costs a spatial mapper: the tiles it computes, skips and masks (`mask_cost`).

A mask in the band family is classified into full, partial and empty tiles at the compute
tiling; a partial tile is computed whole and pays one compare-and-select per pair; empty
tiles are skipped (with `skip_empty_tiles`). A mask outside the family is refused with
skipping and computed densely without.
"""

from __future__ import annotations

from dataclasses import dataclass

from attnsim.archs.model import ComputeArray
from attnsim.einsum_ir.analysis.masks import where_text
from attnsim.einsum_ir.analysis.structure import MaskKind
from attnsim.einsum_ir.analysis.tiles import TileCounts
from attnsim.einsum_ir.ir import Einsum
from attnsim.mappers.spatial.view import CascadeView, MappingError


@dataclass(frozen=True, slots=True)
class MaskCost:
    """How the cascade's mask meets a mapper's tiling, as shares of the dense work.

    A visited tile is computed whole (the array works in lockstep; masked pairs of a
    partial tile are computed and discarded), so its work is the dense tile's. A partial
    tile also pays one compare-and-select per pair (the mask, applied once to the scores;
    everything downstream follows from the masked score). A skipped (empty) tile costs
    nothing: the sequencer computes each query tile's key-tile range once (the loop bounds
    of FlashAttention-style kernels), so its loop overhead is taken as zero cycles.

    Attributes:
        is_masked: Whether the cascade masks any pair (False: every share is neutral).
        skip: Whether empty tiles are skipped (the mapper's `skip_empty_tiles`).
        visited: Share of (query tile, key tile) pairs computed (1 without skipping).
        selected: Share of the dense (query, key) pairs that pay a compare-and-select:
            those of partial tiles with skipping, of partial and empty tiles without.
        tiles: The classification at the compute tiling (None unmasked or generic).
        block_q: Query positions per compute tile (rows / query-group heads).
        block_k: Keys per compute tile.
        warnings: What was priced (and, without skipping, that masked tiles were computed).
    """

    is_masked: bool
    skip: bool
    visited: float = 1.0
    selected: float = 0.0
    tiles: TileCounts | None = None
    block_q: int = 0
    block_k: int = 0
    warnings: tuple[str, ...] = ()


def _positions(cv: CascadeView, rows: int) -> int:
    """Query positions in `rows` packed query rows (a GQA group's heads share a position)."""
    return max(1, min(rows // cv.query_group, cv.sizes[cv.query_rank]))


def mask_cost(cv: CascadeView, rows: int, key_tile: int, skip: bool, mapper: str) -> MaskCost:
    """Price the mask for compute tiles of `rows` query rows x `key_tile` keys.

    Raises:
        MappingError: A mask outside the band family with `skip` on (its empty tiles cannot
            be found); names the Einsum and the condition.
    """
    block_q = _positions(cv, rows)
    block_k = max(1, min(key_tile, cv.sizes[cv.key_rank]))
    ap = cv.problem
    if ap is None:  # no attention structure (linear attention, a lone matmul): by letter
        return _letter_mask(cv, skip, mapper, block_q, block_k)
    mask = ap.mask
    if mask.is_dense:
        return MaskCost(False, skip)
    notes = [f"mask: {n}" for n in ap.notes if "keys x queries" in n]
    if mask.kind == MaskKind.GENERIC:
        einsum = next(e for e in cv.cascade.einsums if e.where)
        return _generic(einsum, skip, mapper, block_q, block_k, notes)
    tiles = ap.tiles(block_q, block_k)
    return _band_cost(mask.describe(), tiles, skip, notes, ap.seq_q * ap.seq_k)


def _letter_mask(cv: CascadeView, skip: bool, mapper: str, block_q: int, block_k: int) -> MaskCost:
    """The mask of a cascade with no attention structure, read with the ranks by letter.

    The conditions of its first Einsum over both the keys and the queries give the tiles
    (others follow them; a note says so); outside the band family they are generic.
    """
    from attnsim.einsum_ir.analysis.masks import where_bands
    from attnsim.einsum_ir.analysis.tiles import classify_tiles

    q_var = cv.query_rank.lower()
    grid = [e for e in cv.cascade.einsums if cv.iterates_key(e) and q_var in e.iteration_vars]
    wheres = list(dict.fromkeys(e.where for e in grid if e.where))
    if not wheres:
        first = next((e for e in cv.cascade.einsums if e.where), None)
        if first is None:
            return MaskCost(False, skip)
        return _generic(first, skip, mapper, block_q, block_k, [])
    einsum = next(e for e in grid if e.where == wheres[0])
    inner = cv.key_parts[-1]
    tile = (inner.lower(), cv.sizes[inner], cv.sizes[cv.key_rank])
    sizes = {str(k): v for k, v in cv.sizes.items()}
    bands = where_bands(wheres[0], cv.key_rank.lower(), q_var, sizes,
                        tile if len(cv.key_parts) > 1 else None)  # fmt: skip
    notes = []
    if len(wheres) > 1:
        notes.append(
            f"mask: keys x queries Einsums carry different conditions; tiles follow "
            f"{einsum.output}'s: {where_text(wheres[0])}"
        )
    if bands is None:
        return _generic(einsum, skip, mapper, block_q, block_k, notes)
    seq_q, seq_k = cv.sizes[cv.query_rank], cv.sizes[cv.key_rank]
    padded = -(-seq_q // block_q) * block_q
    tiles = classify_tiles(bands, padded, seq_k, block_q, block_k)
    return _band_cost(f"band [{where_text(wheres[0])}]", tiles, skip, notes, seq_q * seq_k)


def _band_cost(
    described: str, tiles: TileCounts, skip: bool, notes: list[str], pairs: int
) -> MaskCost:
    """A mask in the band family at its tile classification (see `mask_cost`)."""
    block_q, block_k = tiles.block_q, tiles.block_k
    visible = tiles.points / pairs
    layout = f"tiles of {block_q} queries x {block_k} keys"
    if skip:
        text = (
            f"mask {described}: {tiles.visited} of {tiles.tiles} {layout} computed "
            f"({tiles.partial} partial, one compare-select per pair), {tiles.empty} empty "
            f"skipped; {visible:.2%} of (query, key) pairs visible"
        )
        return MaskCost(
            True,
            skip,
            tiles.visited / tiles.tiles,
            tiles.partial / tiles.tiles,
            tiles,
            block_q,
            block_k,
            (*notes, text),
        )
    text = (
        f"masked tiles computed (skip_empty_tiles=false): mask {described} leaves "
        f"{visible:.2%} of (query, key) pairs visible, yet all {tiles.tiles} {layout} are "
        f"computed ({tiles.empty} empty, {tiles.partial} partial)"
    )
    return MaskCost(
        True,
        skip,
        1.0,
        (tiles.partial + tiles.empty) / tiles.tiles,
        tiles,
        block_q,
        block_k,
        (*notes, text),
    )


def _generic(
    einsum: Einsum, skip: bool, mapper: str, block_q: int, block_k: int, notes: list[str]
) -> MaskCost:
    """A mask outside the band family: refused with skipping, computed densely without."""
    from attnsim.einsum_ir.parse import format_where

    text = format_where(einsum.where)
    if skip:
        raise MappingError(
            f"{mapper}: {einsum}: the mask condition {text!r} is outside the band family "
            "(bounds on the query, the key and their difference), so its empty tiles cannot "
            "be found; set skip_empty_tiles=false to compute every tile"
        )
    return MaskCost(
        True,
        skip,
        selected=1.0,
        block_q=block_q,
        block_k=block_k,
        warnings=(
            *notes,
            f"mask [{text}] (generic) computed densely (skip_empty_tiles=false): every "
            "tile computed, every pair masked with a compare-select",
        ),
    )


def streamed_share(cv: CascadeView, mask: MaskCost, block_rows: int) -> float:
    """Share of key tiles loaded per outer query block of `block_rows` rows.

    With skipping, a key tile is loaded for a block when some query tile of it visits it.
    """
    if not (mask.is_masked and mask.skip and mask.tiles is not None):
        return 1.0
    counts = cv.attention.tiles(_positions(cv, block_rows), mask.block_k)
    return counts.visited / counts.tiles


def select_actions(cv: CascadeView, mask: MaskCost, unit: ComputeArray) -> dict[str, int]:
    """The mask's compare-and-select actions on `unit` (a `max` where the PE has one)."""
    if not mask.selected:
        return {}
    pairs = cv.instances * cv.query_rows * cv.sizes[cv.key_rank]
    op = "max" if unit.supports("max") else "add"
    return {op: round(pairs * mask.selected)}
