"""kernels.triton.blocksparse: the layout record's checks and the builders' tile classification.

Host code only (no kernel runs here; the kernel's tests are tests/gpu/test_attn_blocksparse.py).
The builders are checked against a classification written plainly (every element of every
tile) and against FlexAttention's `create_block_mask` on the same mask (the same lists).
"""

from __future__ import annotations

import os

import torch

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    os.environ["TRITON_INTERPRET"] = "1"  # must precede the first import of triton

import pytest  # noqa: E402

from attnsim.kernels.triton.blocksparse import (  # noqa: E402
    BlockSparse,
    block_sparse_from_block_mask,
    block_sparse_from_documents,
    block_sparse_from_segments,
    kernel_meta,
)


def plain_tiles(keep, bm, bn):
    """(full, partial) bool (Tq, Tk) of an element mask (Sq, Sk), element by element."""
    sq, sk = keep.shape
    tq, tk = -(-sq // bm), -(-sk // bn)
    full = torch.zeros(tq, tk, dtype=torch.bool)
    part = torch.zeros(tq, tk, dtype=torch.bool)
    for t in range(tq):
        for kt in range(tk):
            rows = keep[t * bm : (t + 1) * bm]  # rows past seq_q do not exist
            cols = torch.zeros(rows.shape[0], bn, dtype=torch.bool)
            piece = rows[:, kt * bn : (kt + 1) * bn]
            cols[:, : piece.shape[1]] = piece  # keys past seq_k are never visible
            full[t, kt] = bool(cols.all())
            part[t, kt] = bool(cols.any()) and not full[t, kt]
    return full, part


def listed(counts, indices, b=0, h=0):
    """The listed tiles of layout row (b, h) as a bool (Tq, Tk) (Tk from the largest index)."""
    tq = counts.shape[2]
    out = torch.zeros(tq, 64, dtype=torch.bool)
    for t in range(tq):
        idx = indices[b, h, t, : counts[b, h, t]].tolist()
        assert idx == sorted(set(idx)), idx
        out[t, idx] = True
    return out


def element_mask(sq, sk, causal, qs=None, ks=None):
    i = torch.arange(sq)[:, None]
    j = torch.arange(sk)[None, :]
    keep = torch.ones(sq, sk, dtype=torch.bool)
    if causal:
        keep &= j <= i
    if qs is not None:
        keep &= qs[:, None] == ks[None, :]
    return keep


@pytest.mark.parametrize("sq, sk", [(64, 64), (96, 80), (100, 70), (40, 130)])
@pytest.mark.parametrize("causal", [False, True])
def test_segments_classified_as_written(sq, sk, causal):
    g = torch.Generator().manual_seed(sq * 7 + sk)
    qs = torch.randint(0, 3, (sq,), generator=g)  # unsorted ids: segments need not be contiguous
    ks = torch.randint(0, 3, (sk,), generator=g)
    bs = block_sparse_from_segments(qs, 32, 16, causal, k_segments=ks)
    full, part = plain_tiles(element_mask(sq, sk, causal, qs, ks), 32, 16)
    tk = full.shape[1]
    assert torch.equal(listed(bs.full_counts, bs.full_indices)[:, :tk], full)
    assert torch.equal(listed(bs.partial_counts, bs.partial_indices)[:, :tk], part)
    assert bs.q_segments.dtype == torch.int32 and bs.q_segments.shape == (1, sq)


def test_block_mask_layout_is_full_except_ragged_and_diagonal():
    g = torch.Generator().manual_seed(1)
    mask = torch.rand(3, 5, generator=g) < 0.5
    bs = block_sparse_from_block_mask(mask, 96, 70, 32, 16)  # key tile 4 is ragged (64..69)
    full = listed(bs.full_counts, bs.full_indices)[:, :5]
    part = listed(bs.partial_counts, bs.partial_indices)[:, :5]
    assert torch.equal(full | part, mask)
    assert torch.equal(part, mask & (torch.arange(5) == 4))
    causal = block_sparse_from_block_mask(torch.ones(3, 5, dtype=torch.bool), 96, 70, 32, 16, True)
    f, p = plain_tiles(element_mask(96, 70, True), 32, 16)
    assert torch.equal(listed(causal.full_counts, causal.full_indices)[:, :5], f)
    assert torch.equal(listed(causal.partial_counts, causal.partial_indices)[:, :5], p)


def test_documents_per_batch_and_density():
    bs = block_sparse_from_documents([[32, 32, 64], [128]], 32, 32)
    assert bs.full_counts.shape == (2, 1, 4) and bs.partial_counts.sum() == 0
    assert bs.full_counts[0, 0].tolist() == [1, 1, 2, 2]
    assert bs.full_counts[1, 0].tolist() == [4] * 4
    assert bs.visited_tiles == 6 + 16 and bs.density == pytest.approx(22 / 32)
    causal = block_sparse_from_documents([40, 24], 16, 16, causal=True)
    ids = causal.q_segments[0]
    f, p = plain_tiles(element_mask(64, 64, True, ids, ids), 16, 16)
    assert torch.equal(listed(causal.full_counts, causal.full_indices)[:, :4], f)
    assert torch.equal(listed(causal.partial_counts, causal.partial_indices)[:, :4], p)


@pytest.mark.parametrize("sq, sk", [(128, 128), (96, 80), (96, 70)])
@pytest.mark.parametrize("causal", [False, True])
def test_same_lists_as_flex_attention(sq, sk, causal):
    """FlexAttention's create_block_mask on the same mask gives the same full and partial lists.

    seq_q is a multiple of block_m here: on a ragged last query tile FlexAttention counts the
    missing rows as masked (partial) where the builders ignore them (full if the rows that
    exist see every key of the tile).
    """
    from torch.nn.attention.flex_attention import create_block_mask

    g = torch.Generator().manual_seed(sq + sk)
    qs = torch.sort(torch.randint(0, 4, (2, sq), generator=g), -1).values
    ks = qs if sq == sk else torch.sort(torch.randint(0, 4, (2, sk), generator=g), -1).values

    def mask_mod(b, h, q, kv):
        same = qs[b, q] == ks[b, kv]
        return same & (q >= kv) if causal else same

    flex = create_block_mask(mask_mod, 2, None, sq, sk, device="cpu", BLOCK_SIZE=(32, 16))
    ours = block_sparse_from_segments(qs, 32, 16, causal, k_segments=ks)
    for b in range(2):
        pairs = (
            (flex.full_kv_num_blocks, flex.full_kv_indices, ours.full_counts, ours.full_indices),
            (flex.kv_num_blocks, flex.kv_indices, ours.partial_counts, ours.partial_indices),
        )
        for fc, fi, oc, oi in pairs:
            assert torch.equal(listed(fc, fi, b), listed(oc, oi, b))


def _lists(rows):
    """counts, indices (1, 1, Tq, W) int32 from a list of index lists."""
    width = max(1, max(len(r) for r in rows))
    idx = torch.zeros(1, 1, len(rows), width, dtype=torch.int32)
    for t, r in enumerate(rows):
        idx[0, 0, t, : len(r)] = torch.tensor(r, dtype=torch.int32)
    return torch.tensor([[[len(r) for r in rows]]], dtype=torch.int32), idx


def make(full, partial, seq_q=64, seq_k=64, **kw):
    fc, fi = _lists(full)
    pc, pi = _lists(partial)
    return BlockSparse(seq_q, seq_k, 32, 16, fc, fi, pc, pi, **kw)


def test_a_layout_written_by_hand():
    bs = make([[0, 2], []], [[3], [0, 1, 2, 3]])
    assert bs.table.tolist() == [[[[2, 1, 0, 2, 3, 0, 0, 0], [0, 4, 0, 0, 0, 1, 2, 3]]]]
    assert bs.visited_tiles == 7 and bs.query_tiles == 2 and bs.key_tiles == 4


@pytest.mark.parametrize(
    "full, partial, kw, message",
    [
        ([[0, 0]], [[]], {}, "query tiles 2"),
        ([[1, 0], []], [[], []], {}, "ascending order without repeats"),
        ([[4], []], [[], []], {}, "is not a key tile"),
        ([[1], []], [[1], []], {}, "in both the full and the partial list"),
        ([[3], []], [[], []], dict(seq_k=60), "has masked pairs"),  # ragged last tile
        ([[], [2]], [[], []], dict(causal=True), "has masked pairs"),  # diagonal tile
        ([[], [1]], [[], []], dict(causal=True), None),  # below the diagonal: fine
        ([[0], []], [[], []], dict(q_segments=torch.tensor([0] * 8 + [1] * 56)), "masked pairs"),
        ([[], [1]], [[], []], dict(q_segments=torch.tensor([0] * 8 + [1] * 56)), None),
        ([[0], []], [[], []], dict(q_segments=torch.zeros(64), k_segments=None), "integer"),
        ([[0], []], [[], []], dict(k_segments=torch.zeros(64, dtype=torch.int32)), "needs q_segm"),
        ([[0], []], [[], []], dict(q_segments=torch.zeros(60, dtype=torch.int32)), "must be (64,)"),
    ],
)
def test_bad_layouts_are_refused(full, partial, kw, message):
    if message is None:
        make(full, partial, **kw)
        return
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make(full, partial, **kw)


def test_bad_lists_are_refused():
    fc, fi = _lists([[0], [1]])
    with pytest.raises(ValueError, match="int32 tensor"):
        BlockSparse(64, 64, 32, 16, fc.long(), fi, fc, fi)
    with pytest.raises(ValueError, match="outside 0..1"):
        BlockSparse(64, 64, 32, 16, fc * 2, fi, fc, fi + 2)
    with pytest.raises(ValueError, match="share"):
        BlockSparse(64, 64, 32, 16, fc, fi, fc.expand(2, 1, 2).contiguous(), fi)
    with pytest.raises(ValueError, match="block_m must be a power of two"):
        BlockSparse(64, 64, 24, 16, fc, fi, fc, fi)


def test_call_is_checked_against_the_layout():
    bs = block_sparse_from_documents([[32, 32], [64]], 32, 16, causal=True)
    q = torch.zeros(2, 4, 64, 16)
    k = torch.zeros(2, 2, 64, 16)
    meta = kernel_meta(bs, q, k, True, None, 16)
    assert meta["BLOCK_SPARSE"] and meta["SEGMENTS"] and meta["layout"] is bs.table
    assert meta["layout_stride_b"] == 2 * bs.table.shape[3] and meta["layout_stride_h"] == 0
    assert meta["q_segments_stride"] == 64
    with pytest.raises(ValueError, match="block_m 64 .*; causal=False"):
        kernel_meta(bs, q, k, False, 64, None)
    with pytest.raises(ValueError, match="seq_q, seq_k 64, 48"):
        kernel_meta(bs, q, k[:, :, :48], True, None, None)
    with pytest.raises(ValueError, match="segment rows: 2"):
        kernel_meta(bs, q[:1], k[:1], True, None, None)
    with pytest.raises(ValueError, match="must be a BlockSparse"):
        kernel_meta("layout", q, k, True, None, None)  # type: ignore[arg-type]


def test_builders_refuse_bad_input():
    with pytest.raises(ValueError, match=r"\(Tq, Tk\) or \(Lb, Lh, Tq, Tk\) with Tq, Tk = 2, 4"):
        block_sparse_from_block_mask(torch.ones(2, 3, dtype=torch.bool), 64, 64, 32, 16)
    with pytest.raises(ValueError, match="bool tensor"):
        block_sparse_from_block_mask(torch.ones(2, 4), 64, 64, 32, 16)
    with pytest.raises(ValueError, match="same total length"):
        block_sparse_from_documents([[32, 32], [16]], 32, 16)
    with pytest.raises(ValueError, match="ints >= 1"):
        block_sparse_from_documents([32, 0], 32, 16)
