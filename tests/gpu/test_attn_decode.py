"""Decode attention (`attention_decode`): unsplit, split-K and stream-K in one launch.

On CPU in Triton's interpreter on tiny caches: every strategy against a float64 reference
(GQA/MQA/MHA, keys not a multiple of block_n, split-K chunks left empty, stream-K shares that
cross 0, 1 and several segment boundaries or get no tile), ragged lengths down to 1 and 0,
a paged cache with a shuffled block table, K and V with different head dims (a non-power-of-
two key dim, V a view of K), workspace reuse and bad input. With CUDA compiled, bf16 at
head dim 128 and long caches. `test_decode_compile.py` compiles the kernel for sm_90 on CPU.
"""

from __future__ import annotations

import os

import torch

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    os.environ["TRITON_INTERPRET"] = "1"  # must precede the first import of triton

import pytest  # noqa: E402

from attnsim.kernels.triton import attn_decode  # noqa: E402
from attnsim.kernels.triton.attn_decode import (  # noqa: E402
    allocate_workspace,
    attention_decode,
    default_programs,
    default_splits,
    split_head_dim,
)

DEVICE = "cuda" if HAS_CUDA else "cpu"
FLOOR = {torch.float32: 1e-5, torch.float16: 1e-4, torch.bfloat16: 1e-3}


def reference(q, k, v, seq_lens=None, dtype=torch.float64):
    """softmax(q k^T / sqrt(E)) v per head, K/V heads repeated, keys past seq_lens masked."""
    group = q.shape[1] // k.shape[1]
    q, k, v = (t.to(dtype) for t in (q, k, v))
    k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
    s = ((q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5).float().to(dtype)
    if seq_lens is not None:
        n = torch.arange(k.shape[2], device=k.device)
        s = s.masked_fill(n >= seq_lens.long()[:, None, None, None], float("-inf"))
    p = torch.softmax(s.float() if dtype != torch.float64 else s, dim=-1).to(dtype)
    return torch.nan_to_num(p) @ v  # a sequence of length 0 gives zeros


def inputs(b, h, g, s, e, dtype, f=None, seed=0):
    gen = torch.Generator(device=DEVICE).manual_seed(seed)

    def mk(heads, n, d):
        return torch.randn(b, heads, n, d, generator=gen, device=DEVICE).to(dtype)

    return mk(h, 1, e), mk(g, s, e), mk(g, s, f or e)


def check(q, k, v, seq_lens=None, kv=None, **kw):
    """Run the kernel (on `kv` = (k, v) in another layout if given) and compare."""
    out = attention_decode(q, *(kv or (k, v)), seq_lens=seq_lens, **kw)
    assert out.shape == (*q.shape[:3], v.shape[3]) and torch.isfinite(out).all()
    exact = reference(q, k, v, seq_lens)
    naive = (reference(q, k, v, seq_lens, dtype=q.dtype).double() - exact).abs().max().item()
    err = (out.double() - exact).abs().max().item()
    assert err <= 2 * naive + FLOOR[q.dtype], (err, naive)
    return out


STRATEGIES = [("unsplit", {}), ("splitk", {"splits": 3}), ("streamk", {"programs": 5})]


@pytest.mark.parametrize("h, g", [(4, 2), (8, 1), (4, 4)])
@pytest.mark.parametrize("strategy, opts", STRATEGIES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_decode_matches_reference(h, g, strategy, opts, dtype):
    q, k, v = inputs(2, h, g, 150, 16, dtype)  # 150 keys: a ragged last tile
    check(q, k, v, strategy=strategy, block_n=16, **opts)


def test_more_splits_than_tiles_leaves_empty_chunks_harmless():
    q, k, v = inputs(1, 2, 1, 40, 16, torch.float32)  # 3 tiles, chunks of 1: splits 3..6 idle
    check(q, k, v, strategy="splitk", splits=7, block_n=16)
    check(q, k, v, strategy="splitk", splits=2, block_n=16)  # chunks of 2 and 1 tiles


def shares(total, programs):
    """Stream-K: the tile range of each program, as the kernel computes it."""
    return [(p * total // programs, (p + 1) * total // programs) for p in range(programs)]


@pytest.mark.parametrize(
    "b, g, programs, crossings",
    [
        (1, 2, 2, {0}),  # each program owns exactly one segment: written directly
        (1, 2, 3, {0, 1}),  # 8 tiles: [0, 2), [2, 5), [5, 8): the middle one crosses one
        (2, 2, 1, {3}),  # one program walks all 4 segments
        (2, 4, 3, {2, 3}),  # 32 tiles in shares of 10 or 11
        (1, 2, 20, {0}),  # more programs than tiles: 12 programs get no tile
    ],
)
def test_streamk_shares_cross_segment_boundaries(b, g, programs, crossings):
    tiles = 4  # 64 keys in tiles of 16
    starts = range(0, b * g * tiles + 1, tiles)
    seen = {sum(1 for s in starts if lo < s < hi) for lo, hi in shares(b * g * tiles, programs)}
    assert seen == crossings  # the case really exercises what its comment says
    q, k, v = inputs(b, 2 * g, g, 64, 16, torch.float32, seed=programs)
    check(q, k, v, strategy="streamk", programs=programs, block_n=16)


@pytest.mark.parametrize("strategy, opts", [*STRATEGIES, ("streamk", {"programs": 1}),
                                            ("streamk", {"programs": 60})])  # fmt: skip
def test_ragged_lengths(strategy, opts):
    q, k, v = inputs(4, 4, 2, 150, 16, torch.float32, seed=1)
    lens = torch.tensor([1, 150, 37, 0], dtype=torch.int32, device=DEVICE)
    out = check(q, k, v, seq_lens=lens, strategy=strategy, block_n=16, **opts)
    assert not out[3].any()  # an empty sequence gives zeros


def paged(k, v, lens, page_size, seed=0):
    """Scatter a contiguous (B, G, S, .) cache into shuffled pages; returns k, v, table."""
    b, g, _, _ = k.shape
    per_seq = [-(-int(n) // page_size) for n in lens]
    width = max(per_seq)
    order = torch.randperm(sum(per_seq) + 3, generator=torch.Generator().manual_seed(seed))
    table = torch.zeros(b, width, dtype=torch.int32)
    kp = torch.randn(len(order), g, page_size, k.shape[3]).to(k.dtype)
    vp = torch.randn(len(order), g, page_size, v.shape[3]).to(v.dtype)
    used = 0
    for i, n_pages in enumerate(per_seq):
        for j in range(n_pages):
            page = int(order[used])
            used += 1
            table[i, j] = page
            rows = slice(j * page_size, min((j + 1) * page_size, int(lens[i])))
            n = rows.stop - rows.start
            kp[page, :, :n] = k[i, :, rows].cpu()
            vp[page, :, :n] = v[i, :, rows].cpu()
    return kp.to(k.device), vp.to(k.device), table.to(k.device)


@pytest.mark.parametrize("strategy, opts", STRATEGIES)
def test_paged_cache_with_shuffled_block_table(strategy, opts):
    q, k, v = inputs(3, 4, 2, 128, 16, torch.float32, seed=2)
    lens = torch.tensor([70, 5, 128], dtype=torch.int32, device=DEVICE)
    kp, vp, table = paged(k, v, lens.tolist(), 32)
    check(q, k, v, seq_lens=lens, kv=(kp, vp), block_table=table, strategy=strategy,
          block_n=16, **opts)  # fmt: skip


@pytest.mark.parametrize("strategy, opts", STRATEGIES)
def test_key_tail_and_value_dims(strategy, opts):
    q, k, v = inputs(2, 4, 1, 50, 48, torch.float32, f=16, seed=3)  # E = 32 + 16, F = 16
    check(q, k, v, strategy=strategy, block_n=16, **opts)
    check(q, k, k[..., :32], strategy=strategy, block_n=16, **opts)  # V aliases K (MLA)


def test_split_head_dim():
    assert split_head_dim(576) == (512, 64)
    assert split_head_dim(192) == (128, 64)
    assert split_head_dim(128) == (128, 0)
    with pytest.raises(ValueError, match="key head dim 40"):
        split_head_dim(40)  # 32 + 8: tail too small for tl.dot


def test_workspace_reused_across_shapes_and_left_clean():
    attn_decode._WORKSPACES.clear()
    q, k, v = inputs(1, 4, 2, 100, 16, torch.float32, seed=4)
    check(q, k, v, strategy="splitk", splits=4, block_n=16)
    (ws,) = attn_decode._WORKSPACES.values()
    assert not ws.count.any()
    q, k, v = inputs(2, 2, 1, 70, 16, torch.float32, seed=5)  # other shape, same workspace
    check(q, k, v, strategy="streamk", programs=3, block_n=16)
    (ws2,) = attn_decode._WORKSPACES.values()
    assert ws2 is ws and not ws.count.any()
    q, k, v = inputs(3, 8, 1, 100, 16, torch.float32, seed=6)  # needs more: regrown
    check(q, k, v, strategy="splitk", splits=4, block_n=16)
    (ws3,) = attn_decode._WORKSPACES.values()
    assert ws3 is not ws and not ws3.count.any()


def test_explicit_workspace():
    q, k, v = inputs(1, 4, 2, 100, 16, torch.float32, seed=7)
    small = allocate_workspace(DEVICE, 16, 16, 1)
    with pytest.raises(ValueError, match=r"workspace too small.*\(1024, 64, 2\)"):
        attention_decode(q, k, v, strategy="splitk", splits=2, block_n=16, workspace=small)
    ws = allocate_workspace(DEVICE, 1024, 64, 2)  # 2 segments x 2 splits x 16 rows x 16 dims
    check(q, k, v, strategy="splitk", splits=2, block_n=16, workspace=ws)
    assert not ws.count.any()


def test_defaults():
    assert default_splits(1, 8, 131072, 132) == 33  # 8 programs -> 264, two waves
    assert default_splits(64, 8, 131072, 132) == 1  # 512 programs already
    assert default_splits(1, 8, 1024, 132) == 2  # chunks of at least MIN_CHUNK keys
    assert default_programs(132) == 132


def test_decode_arguments_are_checked():
    q, k, v = inputs(1, 6, 4, 32, 16, torch.float32)
    with pytest.raises(ValueError, match="must divide"):
        attention_decode(q, k, v)
    q, k, v = inputs(1, 4, 2, 32, 16, torch.float32)
    with pytest.raises(ValueError, match="splits must be"):
        attention_decode(q, k, v, splits=0)
    with pytest.raises(ValueError, match="programs must be"):
        attention_decode(q, k, v, strategy="streamk", programs=0)
    with pytest.raises(ValueError, match="strategy must be"):
        attention_decode(q, k, v, strategy="lean")
    with pytest.raises(ValueError, match="q must be"):
        attention_decode(k, k, v)
    with pytest.raises(ValueError, match="seq_lens must be int32"):
        attention_decode(q, k, v, seq_lens=torch.ones(1, dtype=torch.int64))
    with pytest.raises(ValueError, match="multiple of block_n"):
        attention_decode(q, k, v, block_table=torch.zeros(1, 2, dtype=torch.int32))
    with pytest.raises(ValueError, match="block_n must be"):
        attention_decode(q, k, v, block_n=24)
    with pytest.raises(ValueError, match="value head dim"):
        attention_decode(q, k, v[..., :12])
    with pytest.raises(ValueError, match="share one dtype"):
        attention_decode(q, k, v.half())


@pytest.mark.gpu
@pytest.mark.parametrize("b, h, g, s", [(1, 32, 8, 65536), (8, 32, 8, 8192), (2, 16, 1, 20000)])
@pytest.mark.parametrize("strategy", ["unsplit", "splitk", "streamk"])
def test_gpu_decode(b, h, g, s, strategy):
    q, k, v = inputs(b, h, g, s, 128, torch.bfloat16)
    check(q, k, v, strategy=strategy)
    check(q, k, v, strategy=strategy)  # again: the counters were left at 0


@pytest.mark.gpu
@pytest.mark.parametrize("strategy", ["splitk", "streamk"])
def test_gpu_paged_ragged(strategy):
    q, k, v = inputs(4, 32, 8, 4096, 128, torch.bfloat16, seed=8)
    lens = torch.tensor([4096, 1, 3000, 777], dtype=torch.int32, device=DEVICE)
    kp, vp, table = paged(k, v, lens.tolist(), 256)
    check(q, k, v, seq_lens=lens, kv=(kp, vp), block_table=table, strategy=strategy)
