"""`gather_rows` against `index_select` under the Triton interpreter (CPU tensors)."""

from __future__ import annotations

import pytest
import torch

from attnsim.kernels.triton.gather_rows import BLOCK_R, gather_rows


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("d", [16, 24, 64])
def test_gather_rows_equals_index_select(dtype: torch.dtype, d: int) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 40, d).to(dtype)
    n = BLOCK_R + 7  # a partial last block; indices repeat and skip rows
    index = torch.randint(0, 40, (n,))
    assert torch.equal(gather_rows(x, index), x.index_select(2, index))


def test_gather_rows_reads_strided_heads() -> None:
    """A (B, S, H, D) tensor viewed as (B, H, S, D): strides, not a copy, pick the rows."""
    x = torch.randn(2, 40, 3, 16).transpose(1, 2)
    index = torch.arange(39, -1, -1)
    assert torch.equal(gather_rows(x, index), x.index_select(2, index))


def test_gather_rows_refuses_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"x \(B, H, S, D\) and index \(n,\)"):
        gather_rows(torch.zeros(2, 3, 4), torch.zeros(2, dtype=torch.int64))
