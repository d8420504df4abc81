"""`launch_order` in the forward kernel: every (query tile, head) program runs once.

The backward's head groups are tested in test_attn_bwd.py. The forward kernel takes the same
order as a trial (kernels.spec.FWD_HEAD_GROUP, 1 by default); here groups of 2 and 3 over 5
heads (a short last group), causal, in Triton's interpreter on CPU.
"""

from __future__ import annotations

import os

import torch

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    os.environ["TRITON_INTERPRET"] = "1"  # must precede the first import of triton

import pytest  # noqa: E402

from attnsim.kernels.spec import FWD_HEAD_GROUP  # noqa: E402
from attnsim.kernels.triton import attn_fwd  # noqa: E402

DEVICE = "cuda" if HAS_CUDA else "cpu"


def test_the_forward_defaults_to_head_major() -> None:
    assert FWD_HEAD_GROUP == 1 and attn_fwd.FWD_HEAD_GROUP == 1


@pytest.mark.parametrize("group", [1, 2, 3])
def test_causal_forward_covers_every_program(monkeypatch: pytest.MonkeyPatch, group: int) -> None:
    monkeypatch.setattr(attn_fwd, "FWD_HEAD_GROUP", group)
    monkeypatch.setattr(attn_fwd, "_PLANS", {})  # its key has no head group
    g = torch.Generator(device=DEVICE).manual_seed(7)
    q, k, v = (torch.randn(5, 1, 48, 16, generator=g, device=DEVICE) for _ in range(3))
    out = attn_fwd.attention_fwd(q, k, v, causal=True, block_m=16, block_n=16, num_warps=4,
                                 num_stages=2)  # fmt: skip
    want = torch.nn.functional.scaled_dot_product_attention(
        q.double(), k.double(), v.double(), is_causal=True
    )
    assert (out.double() - want).abs().max().item() < 1e-4
