"""kernels.distributed algebra in one process: the softmax-state merge, shards, LASP-2 prefix.

Float64 on the CPU; the multi-process runs are in test_distributed_ring.py.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from attnsim.kernels.distributed.blocks import (
    decay_powers,
    linear_state,
    torch_linear_local,
    torch_softmax_block,
)
from attnsim.kernels.distributed.lasp2 import prefix_state
from attnsim.kernels.distributed.merge import empty_state, merge_into, merge_states
from attnsim.kernels.distributed.ring import shard, unshard

TOL = 1e-12


def _qkv(b=2, h=3, p=10, m=14, e=8, f=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(
        torch.randn(shape, generator=g, dtype=torch.float64)
        for shape in ((b, h, p, e), (b, h, m, e), (b, h, m, f))
    )


def test_merge_of_disjoint_key_sets_equals_the_whole_in_any_order():
    q, k, v = _qkv()
    full, full_lse = torch_softmax_block(q, k, v, False, 0.3)
    perm = torch.randperm(k.shape[2], generator=torch.Generator().manual_seed(1))
    parts = [perm[:3], perm[3:9], perm[9:]]  # disjoint, non-contiguous key subsets
    states = [torch_softmax_block(q, k[:, :, i], v[:, :, i], False, 0.3) for i in parts]
    for order in itertools.permutations(range(3)):
        out, lse = empty_state((2, 3, 10), 6, torch.float64, "cpu")
        for i in order:
            out, lse = merge_states(out, lse, *states[i])
        assert (out - full).abs().max() < TOL
        assert (lse - full_lse).abs().max() < TOL


def test_empty_state_is_the_identity_and_two_empties_stay_empty():
    q, k, v = _qkv()
    out, lse = torch_softmax_block(q, k, v, False, 0.5)
    zero, neg = empty_state((2, 3, 10), 6, torch.float64, "cpu")
    for merged in (merge_states(zero, neg, out, lse), merge_states(out, lse, zero, neg)):
        assert (merged[0] - out).abs().max() < TOL and (merged[1] - lse).abs().max() < TOL
    both, both_lse = merge_states(zero, neg, zero, neg)
    assert not both.isnan().any() and (both == 0).all() and torch.isneginf(both_lse).all()


def test_merge_into_updates_only_the_given_rows():
    q, k, v = _qkv()
    out, lse = torch_softmax_block(q, k[:, :, :7], v[:, :, :7], False, 0.5)
    late = torch_softmax_block(q[:, :, 5:], k[:, :, 7:], v[:, :, 7:], False, 0.5)
    before = out.clone()
    merge_into(out, lse, *late, rows=slice(5, None))
    full = torch_softmax_block(q, k, v, False, 0.5)[0]
    assert (out[:, :, 5:] - full[:, :, 5:]).abs().max() < TOL
    assert torch.equal(out[:, :, :5], before[:, :, :5])


def test_causal_block_masks_keys_after_the_query():
    q, k, v = _qkv(p=9, m=9)
    out, lse = torch_softmax_block(q, k, v, True, 0.4)
    for i in (0, 4, 8):
        row = torch_softmax_block(
            q[:, :, i : i + 1], k[:, :, : i + 1], v[:, :, : i + 1], False, 0.4
        )
        assert (out[:, :, i : i + 1] - row[0]).abs().max() < TOL
        assert (lse[:, :, i : i + 1] - row[1]).abs().max() < TOL


@pytest.mark.parametrize("balance", ["none", "zigzag", "striped"])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_shard_unshard_round_trip(balance, world):
    x = torch.arange(2 * 3 * 12 * world).reshape(2, 3, 12 * world, 1)
    parts = [shard(x, r, world, balance) for r in range(world)]
    assert torch.equal(unshard(parts, balance), x)


def test_zigzag_gives_rank_r_chunks_r_and_2w_minus_1_minus_r():
    x = torch.arange(8).reshape(1, 1, 8, 1)
    assert shard(x, 0, 2, "zigzag").flatten().tolist() == [0, 1, 6, 7]
    assert shard(x, 1, 2, "zigzag").flatten().tolist() == [2, 3, 4, 5]
    with pytest.raises(ValueError, match="multiple of 4"):
        shard(torch.zeros(1, 1, 6, 1), 0, 2, "zigzag")


def test_striped_gives_rank_r_every_wth_position_from_r():
    x = torch.arange(9).reshape(1, 1, 9, 1)
    assert shard(x, 1, 3, "striped").flatten().tolist() == [1, 4, 7]


def test_decay_powers():
    lam = torch.tensor([0.5, 0.9], dtype=torch.float64)
    got = decay_powers(lam, 2, 3, torch.float64, "cpu")
    assert torch.allclose(got, torch.stack([lam**2, lam**3, lam**4], dim=1), rtol=0, atol=TOL)
    assert decay_powers(None, 0, 3, torch.float64, "cpu") is None


@pytest.mark.parametrize("decay", [None, (0.6, 0.95)])
@pytest.mark.parametrize("world", [2, 4])
def test_lasp2_prefix_algebra_equals_the_whole_sequence(decay, world):
    q, k, v = _qkv(b=1, h=2, p=8 * world, m=8 * world)
    lam = None if decay is None else torch.tensor(decay, dtype=torch.float64)
    full = torch_linear_local(q, k, v, lam, 0.25)
    chunks = [t.chunk(world, dim=2) for t in (q, k, v)]
    states = [linear_state(chunks[1][r], chunks[2][r], lam) for r in range(world)]
    for r in range(world):
        qr, kr, vr = chunks[0][r], chunks[1][r], chunks[2][r]
        local = torch_linear_local(qr, kr, vr, lam, 0.25)
        prefix = prefix_state(states, r, lam, 8)
        w = torch.full((2, 8), 0.25, dtype=torch.float64)
        if lam is not None:
            w = w * decay_powers(lam, 1, 8, torch.float64, "cpu")
        out = local + (qr * w[None, :, :, None]) @ prefix
        assert (out - full[:, :, 8 * r : 8 * (r + 1)]).abs().max() < 1e-10
