"""Block-sparse layouts of the 1-pass kernel (`attention_fwd(block_sparse=)`): record, builders.

A `BlockSparse` lists, per (batch, head, query tile), the key tiles the kernel visits, in two
lists: full tiles (every pair visible: run unmasked) and partial tiles (run with the element
mask: key j < seq_k; with `causal`, j <= i; with segments, q_segments[i] == k_segments[j]).
A key tile in neither list is never loaded. The lists have the shapes of FlexAttention's
`BlockMask` (full_kv_num_blocks / full_kv_indices, kv_num_blocks / kv_indices), so one
converts to the other. The builders classify every tile exactly from the element mask:
`block_sparse_from_block_mask`, `block_sparse_from_segments`, `block_sparse_from_documents`.
The kernel side is `attn_loop.sparse_rows`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from attnsim.kernels.triton.common import check_tiling

__all__ = [
    "BlockSparse",
    "block_sparse_from_block_mask",
    "block_sparse_from_documents",
    "block_sparse_from_segments",
    "kernel_meta",
]

_CHUNK_ELEMENTS = 1 << 24  # element-mask entries per classification step (bounds its memory)


@dataclass(frozen=True, eq=False)
class BlockSparse:
    """The key tiles of every query tile, split into full and partial ones (checked on creation).

    Lb is 1 (one layout for the whole batch) or the batch, Lh 1 or the query heads;
    Tq = ceil(seq_q / block_m), Tk = ceil(seq_k / block_n). Equality and hashing are by
    identity: a launch plan is cached per layout object, so reuse the object across calls.

    Attributes:
        seq_q: Query positions the layout is for.
        seq_k: Key positions the layout is for.
        block_m: Rows of a query tile; a call must use this block_m.
        block_n: Keys of a key tile; a call must use this block_n.
        full_counts: int32 (Lb, Lh, Tq): how many full key tiles each query tile visits.
        full_indices: int32 (Lb, Lh, Tq, Wf): the first `full_counts` entries of a row are
            key-tile indices in ascending order (the rest is padding, never read).
        partial_counts: int32 (Lb, Lh, Tq), as `full_counts` for partial tiles.
        partial_indices: int32 (Lb, Lh, Tq, Wp), as `full_indices` for partial tiles.
        causal: Partial tiles mask keys after the query (j > i, top-left aligned, as the
            kernel's causal flag); a call's `causal` must equal it.
        q_segments: Integer (Ls, seq_q) or (seq_q,) segment (document) ids or None; partial
            tiles mask pairs with q_segments[i] != k_segments[j]. Ls is 1 or the batch.
            Stored as int32 (Ls, seq_q).
        k_segments: (Ls, seq_k) or (seq_k,) ids; None means q_segments (needs seq_q == seq_k).
        table: The kernel's int32 (Lb, Lh, Tq, 2 + Wf + Wp) table, built here: per query tile
            [full count, partial count, full indices..., partial indices...].
    """

    seq_q: int
    seq_k: int
    block_m: int
    block_n: int
    full_counts: torch.Tensor
    full_indices: torch.Tensor
    partial_counts: torch.Tensor
    partial_indices: torch.Tensor
    causal: bool = False
    q_segments: torch.Tensor | None = None
    k_segments: torch.Tensor | None = None
    table: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        check_tiling(self.block_m, self.block_n, False)
        for name in ("seq_q", "seq_k"):
            n = getattr(self, name)
            if not isinstance(n, int) or n < 1:
                raise ValueError(f"BlockSparse.{name} must be an int >= 1, got {n!r}")
        device = _check_lists(self)
        qs, ks = _segments(self.q_segments, self.k_segments, self.seq_q, self.seq_k, device)
        object.__setattr__(self, "q_segments", qs)
        object.__setattr__(self, "k_segments", ks)
        full = _dense("full", self.full_counts.cpu(), self.full_indices.cpu(), self.key_tiles)
        part = _dense("partial", self.partial_counts.cpu(), self.partial_indices.cpu(),
                      self.key_tiles)  # fmt: skip
        both = full & part
        if both.any():
            b, h, t, kt = _first(both)
            raise ValueError(f"BlockSparse: key tile {kt} of query tile {t} (layout batch {b}, "
                             f"head {h}) is in both the full and the partial list")  # fmt: skip
        _check_full(self, full)
        parts = (self.full_counts[..., None], self.partial_counts[..., None],
                 self.full_indices, self.partial_indices)  # fmt: skip
        object.__setattr__(self, "table", torch.cat(parts, dim=-1).contiguous())

    @property
    def query_tiles(self) -> int:
        """Tq = ceil(seq_q / block_m)."""
        return -(-self.seq_q // self.block_m)

    @property
    def key_tiles(self) -> int:
        """Tk = ceil(seq_k / block_n)."""
        return -(-self.seq_k // self.block_n)

    @property
    def visited_tiles(self) -> int:
        """(query tile, key tile) pairs loaded over all layout rows (Lb * Lh of them)."""
        return int(self.full_counts.sum()) + int(self.partial_counts.sum())

    def element_tables(self) -> tuple[int, Any, Any]:
        """The partial tiles' element mask past keys < seq_k and causal, as the kernel reads it.

        (the kernel's SEGMENTS mode, per-query table, per-key table): (1, q_segments,
        k_segments) with segment ids, else (0, None, None). A neighborhood layout
        (`neighborhood.NeighborhoodSparse`) gives its windows and key coordinates (mode 2).
        """
        if self.q_segments is None:
            return 0, None, None
        return 1, self.q_segments, self.k_segments

    @property
    def density(self) -> float:
        """Visited tiles over all tiles, averaged over the layout rows."""
        rows = self.full_counts.numel()
        return self.visited_tiles / (rows * self.key_tiles)


def _first(mask: torch.Tensor) -> tuple[int, ...]:
    return tuple(int(x) for x in mask.nonzero()[0])


def _check_lists(bs: BlockSparse) -> torch.device:
    """Shapes, dtypes and devices of the four lists; returns their device."""
    tq = bs.query_tiles
    lists = ("full_counts", "full_indices", "partial_counts", "partial_indices")
    for name in lists:
        x = getattr(bs, name)
        if not isinstance(x, torch.Tensor) or x.dtype != torch.int32:
            raise ValueError(f"BlockSparse.{name} must be an int32 tensor, got "
                             f"{getattr(x, 'dtype', type(x).__name__)}")  # fmt: skip
        dims = 3 if name.endswith("counts") else 4
        if x.dim() != dims or x.shape[2] != tq:
            raise ValueError(f"BlockSparse.{name} must be {dims}-D with dim 2 = query tiles "
                             f"{tq} (ceil({bs.seq_q} / {bs.block_m})), got "
                             f"{tuple(x.shape)}")  # fmt: skip
        if x.device != bs.full_counts.device:
            raise ValueError("BlockSparse lists must sit on one device")
    lead = tuple(bs.full_counts.shape)
    for name in lists[1:]:
        other = tuple(getattr(bs, name).shape[:3])
        if other != lead:
            raise ValueError(f"BlockSparse.{name} leads with {other}, full_counts with {lead}: "
                             "all four lists share (Lb, Lh, Tq)")  # fmt: skip
    return bs.full_counts.device


def _segments(qs: Any, ks: Any, seq_q: int, seq_k: int, device: torch.device) -> tuple[Any, Any]:
    """Segment ids as int32 (Ls, seq) on `device` (or None, None)."""
    if qs is None:
        if ks is not None:
            raise ValueError("BlockSparse.k_segments needs q_segments")
        return None, None
    if ks is None:
        if seq_q != seq_k:
            raise ValueError(f"BlockSparse: seq_q {seq_q} != seq_k {seq_k}: give k_segments too")
        ks = qs
    out = []
    for name, x, seq in (("q_segments", qs, seq_q), ("k_segments", ks, seq_k)):
        bad = not isinstance(x, torch.Tensor) or x.dtype.is_floating_point or x.dtype == torch.bool
        if bad or x.is_complex():
            raise ValueError(f"BlockSparse.{name} must be an integer tensor")
        x = x[None] if x.dim() == 1 else x
        if x.dim() != 2 or x.shape[1] != seq:
            raise ValueError(f"BlockSparse.{name} must be ({seq},) or (Ls, {seq}), "
                             f"got {tuple(x.shape)}")  # fmt: skip
        if x.device != device:
            raise ValueError(f"BlockSparse.{name} must sit on the lists' device {device}")
        wide = x.to(torch.int64)
        if x.numel() and (int(wide.min()) < -(2**31) or int(wide.max()) >= 2**31):
            raise ValueError(f"BlockSparse.{name} ids must fit in int32")
        out.append(x.to(torch.int32).contiguous())
    if out[0].shape[0] != out[1].shape[0]:
        raise ValueError(f"BlockSparse: q_segments has {out[0].shape[0]} rows, k_segments "
                         f"{out[1].shape[0]}")  # fmt: skip
    return out[0], out[1]


def _dense(name: str, counts: torch.Tensor, indices: torch.Tensor, tk: int) -> torch.Tensor:
    """The listed tiles as a bool (Lb, Lh, Tq, Tk); checks counts, range and order."""
    width = indices.shape[-1]
    bad = (counts < 0) | (counts > width)
    if bad.any():
        where = _first(bad)
        raise ValueError(f"BlockSparse.{name}_counts{list(where)} = {int(counts[where])} is "
                         f"outside 0..{width} (the width of {name}_indices)")  # fmt: skip
    valid = torch.arange(width) < counts[..., None]
    out_of_range = valid & ((indices < 0) | (indices >= tk))
    if out_of_range.any():
        where = _first(out_of_range)
        raise ValueError(f"BlockSparse.{name}_indices{list(where)} = {int(indices[where])} is "
                         f"not a key tile (0..{tk - 1})")  # fmt: skip
    unsorted = valid[..., 1:] & (indices[..., 1:] <= indices[..., :-1])
    if unsorted.any():
        where = _first(unsorted)
        raise ValueError(f"BlockSparse.{name}_indices{list(where[:3])} must list key tiles in "
                         f"ascending order without repeats")  # fmt: skip
    hits = torch.zeros((*counts.shape, tk), dtype=torch.int32)
    hits.scatter_add_(-1, indices.clamp(0, max(tk - 1, 0)).long(), valid.to(torch.int32))
    return hits > 0


def _check_full(bs: BlockSparse, full: torch.Tensor) -> None:
    """Every full tile must have all its pairs visible (they run without a mask)."""
    tq, tk, bm, bn = bs.query_tiles, bs.key_tiles, bs.block_m, bs.block_n
    key_end = (torch.arange(tk) + 1) * bn  # one past the tile's last key
    ok = (key_end <= bs.seq_k)[None, :].expand(tq, tk)  # the ragged last tile is never full
    if bs.causal:
        ok = ok & (key_end[None, :] - 1 <= torch.arange(tq)[:, None] * bm)
    ok = ok[None]  # (Ls, Tq, Tk)
    if bs.q_segments is not None and bs.k_segments is not None:
        qlo, qhi = _tile_range(bs.q_segments.cpu(), bm)
        klo, khi = _tile_range(bs.k_segments.cpu(), bn)
        one = (qlo == qhi)[:, :, None] & (klo == khi)[:, None, :]
        ok = ok & one & (qlo[:, :, None] == klo[:, None, :])
    lb, ls = full.shape[0], ok.shape[0]
    if lb != ls and 1 not in (lb, ls):
        raise ValueError(f"BlockSparse: layout batch {lb} and segment batch {ls} differ")
    bad = full & ~ok[:, None]
    if bad.any():
        b, h, t, kt = _first(bad)
        raise ValueError(f"BlockSparse: full key tile {kt} of query tile {t} (layout batch {b}, "
                         f"head {h}) has masked pairs (ragged last tile, causal diagonal or "
                         "segment edge): list it as partial")  # fmt: skip


def _tile_range(ids: torch.Tensor, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per tile of `block` positions (the last one ragged): min and max id, (Ls, tiles)."""
    ls, seq = ids.shape
    tiles = -(-seq // block)
    pad = tiles * block - seq
    lo = torch.cat([ids, ids[:, -1:].expand(ls, pad)], 1).view(ls, tiles, block).amin(-1)
    hi = torch.cat([ids, ids[:, -1:].expand(ls, pad)], 1).view(ls, tiles, block).amax(-1)
    return lo, hi


def kernel_meta(
    bs: BlockSparse, q: Any, k: Any, causal: bool, block_m: int | None, block_n: int | None
) -> dict[str, Any]:
    """Check a call against its layout; return the kernel's block-sparse keyword arguments.

    q (B, H, seq_q, D) and k (B, G, seq_k, D) as `attention_fwd` takes them; block_m /
    block_n None (the layout's) or equal to the layout's. ValueError lists what differs.
    """
    if not isinstance(bs, BlockSparse):
        raise ValueError(f"block_sparse must be a BlockSparse, got {type(bs).__name__}")
    b, h, sq = q.shape[:3]
    sk = k.shape[2]
    lb, lh, tq, row = bs.table.shape
    qs = bs.q_segments
    problems = []
    if (sq, sk) != (bs.seq_q, bs.seq_k):
        problems.append(f"seq_q, seq_k {sq}, {sk} (layout: {bs.seq_q}, {bs.seq_k})")
    for name, given, want in (("block_m", block_m, bs.block_m), ("block_n", block_n, bs.block_n)):
        if given is not None and given != want:
            problems.append(f"{name} {given} (layout: {want}; the tile size is the layout's)")
    if lb not in (1, b) or lh not in (1, h):
        problems.append(f"batch, heads {b}, {h} (layout rows: {lb}, {lh}; each 1 or equal)")
    if qs is not None and qs.shape[0] not in (1, b):
        problems.append(f"batch {b} (segment rows: {qs.shape[0]}; 1 or equal)")
    if bool(causal) != bs.causal:
        problems.append(f"causal={bool(causal)} (layout built with causal={bs.causal})")
    if q.device != bs.table.device:
        problems.append(f"device {q.device} (layout on {bs.table.device})")
    if problems:
        raise ValueError("block_sparse does not fit the call: " + "; ".join(problems))
    mode, q_table, k_table = bs.element_tables()
    several = mode == 1 and q_table.shape[0] > 1
    return dict(
        BLOCK_SPARSE=True, SEGMENTS=mode, layout=bs.table, layout_row=row,
        layout_stride_b=lh * tq * row if lb > 1 else 0, layout_stride_h=tq * row if lh > 1 else 0,
        full_width=bs.full_indices.shape[3],
        # the kernel forms its segment pointers either way (SEGMENTS off: any pointer, unread)
        q_segments=bs.table if q_table is None else q_table,
        k_segments=bs.table if k_table is None else k_table,
        q_segments_stride=sq if several else 0, k_segments_stride=sk if several else 0,
    )  # fmt: skip


# ----------------------------------------------------------------------------- builders


def block_sparse_from_block_mask(
    block_mask: torch.Tensor,
    seq_q: int,
    seq_k: int,
    block_m: int,
    block_n: int,
    causal: bool = False,
    q_segments: torch.Tensor | None = None,
    k_segments: torch.Tensor | None = None,
) -> BlockSparse:
    """A layout from a bool block mask (Tq, Tk) or (Lb, Lh, Tq, Tk): True = may visit.

    Of the allowed tiles, those with no visible pair under the element mask (keys < seq_k,
    `causal`, segments) are dropped, those whose pairs are all visible are full, the rest
    partial. Without causal and segments every allowed tile is full except a ragged last
    key tile (seq_k % block_n != 0), which is partial.
    """
    check_tiling(block_m, block_n, False)
    tq, tk = -(-seq_q // block_m), -(-seq_k // block_n)
    if not isinstance(block_mask, torch.Tensor) or block_mask.dtype != torch.bool:
        raise ValueError("block_mask must be a bool tensor")
    if block_mask.dim() == 2:
        block_mask = block_mask[None, None]
    if block_mask.dim() != 4 or tuple(block_mask.shape[2:]) != (tq, tk):
        raise ValueError(f"block_mask must be (Tq, Tk) or (Lb, Lh, Tq, Tk) with Tq, Tk = {tq}, "
                         f"{tk} (tiles of {block_m} queries, {block_n} keys), got "
                         f"{tuple(block_mask.shape)}")  # fmt: skip
    qs, ks = _segments(q_segments, k_segments, seq_q, seq_k, block_mask.device)
    return _build(block_mask, seq_q, seq_k, block_m, block_n, causal, qs, ks)


def block_sparse_from_segments(
    q_segments: torch.Tensor,
    block_m: int,
    block_n: int,
    causal: bool = False,
    k_segments: torch.Tensor | None = None,
) -> BlockSparse:
    """A layout for a segment (document) mask: query i sees key j iff their ids are equal.

    Ids (seq,) or (Ls, seq), any integers, in any order (packed documents need not be
    contiguous); with `causal` also j <= i. Tiles with no visible pair are left out.
    """
    qs = q_segments[None] if q_segments.dim() == 1 else q_segments
    ks = qs if k_segments is None else k_segments
    ks = ks[None] if ks.dim() == 1 else ks
    check_tiling(block_m, block_n, False)
    qs, ks = _segments(qs, ks, qs.shape[-1], ks.shape[-1], qs.device)
    return _build(None, qs.shape[1], ks.shape[1], block_m, block_n, causal, qs, ks)


def block_sparse_from_documents(
    lengths: Sequence[int] | Sequence[Sequence[int]],
    block_m: int,
    block_n: int,
    causal: bool = False,
    device: torch.device | str | None = None,
) -> BlockSparse:
    """A layout for documents packed back to back: `lengths` of one sequence, or per batch.

    Document d of a sequence covers the positions after those of documents 0..d-1; every
    sequence of the batch has the same total length (seq_q = seq_k = that total).
    """
    rows: list[Any] = [lengths] if all(isinstance(n, int) for n in lengths) else list(lengths)
    ids = []
    for r in rows:
        lens = [int(n) for n in r]
        if not lens or min(lens) < 1:
            raise ValueError(f"document lengths must be ints >= 1, got {lens}")
        ids.append(torch.repeat_interleave(torch.arange(len(lens)), torch.tensor(lens)))
    if len({len(x) for x in ids}) != 1:
        raise ValueError(f"every sequence needs the same total length, got {[len(x) for x in ids]}")
    segs = torch.stack(ids).to(device=device, dtype=torch.int32)
    return block_sparse_from_segments(segs, block_m, block_n, causal)


def _build(
    allowed: Any, seq_q: int, seq_k: int, bm: int, bn: int, causal: bool, qs: Any, ks: Any
) -> BlockSparse:
    """Classify every tile (allowed by the block mask, if any) and list the kept ones."""
    device = qs.device if qs is not None else allowed.device
    any_vis, all_vis = _classify(seq_q, seq_k, bm, bn, causal, qs, ks, device)
    any_vis, all_vis = any_vis[:, None], all_vis[:, None]  # (Ls, 1, Tq, Tk)
    if allowed is not None:
        lb, ls = allowed.shape[0], any_vis.shape[0]
        if lb != ls and 1 not in (lb, ls):
            raise ValueError(f"block_mask batch {lb} and segment batch {ls} differ")
        allowed = allowed.to(device)
        any_vis, all_vis = any_vis & allowed, all_vis & allowed
    fc, fi = _lists(all_vis)
    pc, pi = _lists(any_vis & ~all_vis)
    return BlockSparse(seq_q, seq_k, bm, bn, fc, fi, pc, pi, causal=bool(causal),
                       q_segments=qs, k_segments=ks)  # fmt: skip


def _classify(seq_q: int, seq_k: int, bm: int, bn: int, causal: bool, qs: Any, ks: Any,
              device: Any) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Per (segment row, query tile, key tile): has any visible pair; has all pairs visible.

    Query rows past seq_q belong to no one (ignored); keys past seq_k are never visible.
    Works through the element mask a few query tiles at a time.
    """
    tq, tk = -(-seq_q // bm), -(-seq_k // bn)
    ls = 1 if qs is None else qs.shape[0]
    j = torch.arange(tk * bn, device=device)
    if qs is not None:
        qs = torch.nn.functional.pad(qs, (0, tq * bm - seq_q), value=-1)
        ks = torch.nn.functional.pad(ks, (0, tk * bn - seq_k), value=-1)
    step = max(1, _CHUNK_ELEMENTS // (ls * bm * tk * bn))
    any_parts, all_parts = [], []
    for t0 in range(0, tq, step):
        t1 = min(t0 + step, tq)
        i = torch.arange(t0 * bm, t1 * bm, device=device)
        vis = (j < seq_k)[None, None, :].expand(1, len(i), len(j))
        if causal:
            vis = vis & (j[None, None, :] <= i[None, :, None])
        if qs is not None:
            vis = vis & (qs[:, t0 * bm : t1 * bm, None] == ks[:, None, :])
        rows = (i < seq_q)[None, :, None]
        shape = (vis.shape[0], t1 - t0, bm, tk, bn)
        any_parts.append((vis & rows).reshape(shape).any(4).any(2))
        all_parts.append((vis | ~rows).reshape(shape).all(4).all(2))
    return torch.cat(any_parts, 1), torch.cat(all_parts, 1)


def _lists(tiles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Counts and ascending indices (padded to the longest row, width >= 1) of a bool mask."""
    tiles = tiles.contiguous()
    counts = tiles.sum(-1, dtype=torch.int32)
    order = torch.sort((~tiles).to(torch.int8), dim=-1, stable=True).indices  # True first
    width = max(1, int(counts.max())) if counts.numel() else 1
    return counts, order[..., :width].to(torch.int32).contiguous()
