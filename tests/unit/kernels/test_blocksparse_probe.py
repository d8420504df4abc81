"""The block-sparse probe's cases and mask plumbing (benchmarks/blocksparse_probe.py), on CPU.

What the probe asserts on the GPU before timing is checked here on small sizes: our layout and
FlexAttention's block mask from the probe's mask_mod list the same tiles, and the element
mask the probe checks outputs against is the one mask_mod describes.
"""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"  # must precede the first import of triton
pytest.importorskip("triton")


@pytest.fixture(scope="module")
def probe(benchmark_module):
    return benchmark_module("blocksparse_probe")


def test_cases_cover_the_brief(probe):
    blocks = [c for c in probe.CASES if c.mask == "blocks" and not c.causal]
    assert [c.density for c in blocks] == [0.05, 0.1, 0.2, 0.3, 0.5]
    docs = [c for c in probe.CASES if c.mask == "documents"]
    assert all(len(c.lengths) == 8 and sum(c.lengths) == probe.SEQ for c in docs)
    assert {c.causal for c in docs} == {False, True}
    assert (probe.BATCH, probe.HEADS, probe.HEAD_DIM) == (1, 32, 128)
    assert docs[0].documents == "8x2048" and "/" in docs[-1].documents
    assert len({c.label for c in probe.CASES}) == len(probe.CASES)


@pytest.mark.parametrize("which", range(4))
def test_flex_block_mask_and_element_mask_agree_with_the_layout(probe, which):
    from torch.nn.attention.flex_attention import create_block_mask, create_mask

    seq, block = 512, 64
    case = [
        probe.Case("blocks", False, 0.2),
        probe.Case("blocks", True, 0.3),
        probe.Case("documents", True, lengths=(64,) * 8),
        probe.Case("documents", False, lengths=(16, 256, 64, 48, 32, 32, 48, 16)),
    ][which]
    bs, mask_mod, keep = probe.layout(case, seq, block, "cpu")
    flex = create_block_mask(mask_mod, None, None, seq, seq, device="cpu", BLOCK_SIZE=block)
    assert probe.same_lists(bs, flex)
    assert torch.equal(create_mask(mask_mod, None, None, seq, seq, device="cpu")[0, 0], keep)
    assert bs.key_tiles == seq // block and 0 < bs.density <= 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="CPU only (a GPU runs the probe itself)")
def test_a_case_runs_end_to_end_at_toy_size(probe, monkeypatch):
    """run_case on CPU (the interpreter; eager FlexAttention; one call as the 'time'): every
    check passes and the row fills the CSV's columns with main()'s identifying ones."""
    from torch.nn.attention.flex_attention import flex_attention

    for name, value in (("SEQ", 256), ("HEADS", 2), ("HEAD_DIM", 16), ("BLOCK", 64),
                        ("TILING", dict(num_warps=4, num_stages=2))):  # fmt: skip
        monkeypatch.setattr(probe, name, value)
    monkeypatch.setattr(probe, "_time", lambda fn: (fn(), 1.0, 1.0, 1.0)[1:])
    monkeypatch.setattr(probe._Flex, "run", lambda self, q, k, v, m: flex_attention(
        q, k, v, block_mask=m))  # fmt: skip
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)
    q, k, v = (torch.randn(1, 2, 256, 16) for _ in range(3))
    case = probe.Case("documents", True, lengths=(16, 64, 32, 48, 32, 32, 16, 16))
    row = probe.run_case(case, q, k, v, probe._Flex(), {})
    assert row["max_abs_err"] < 1e-5 and row["flex_max_abs_err"] < 1e-5
    assert 0 < row["pair_density"] < row["tile_density"] <= 1
    ids = {"device", "family", "batch", "heads", "seq", "head_dim", "torch", "triton", "timestamp"}
    assert set(row) | ids == set(probe.FIELDS)
