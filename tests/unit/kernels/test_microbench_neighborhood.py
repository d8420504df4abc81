"""`kernels.calibrate.microbench_neighborhood`: its two layouts and its merge."""

from __future__ import annotations

import os

import pytest
import yaml

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"  # must precede the first import of triton
pytest.importorskip("triton")

from attnsim.kernels.calibrate.microbench_neighborhood import layouts, main  # noqa: E402
from attnsim.kernels.triton.attn_fwd import attention_fwd  # noqa: E402
from attnsim.kernels.triton.neighborhood import attention_neighborhood  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def test_every_tile_partial_is_the_neighborhood_and_every_tile_full_visits_the_same_tiles():
    """The tested layout computes the neighborhood's output (its full tiles only moved to the
    partial list); the untested one visits the same tiles with no element mask."""
    torch.manual_seed(0)
    bm, bn, d, kernel = 32, 16, 16, 2 * 16 + 1
    q, k, v = (torch.randn(1, 2, 8 * bm, d, device=DEVICE) for _ in range(3))
    partial, full, longest = layouts(torch, q, kernel, bm, bn)
    assert int(partial.full_counts.sum()) == 0 and int(full.partial_counts.sum()) == 0
    assert torch.equal(partial.partial_counts, full.full_counts)
    assert longest == int(full.full_counts.max())
    want = attention_neighborhood(q, k, v, kernel, block_m=bm, block_n=bn)
    got = attention_fwd(q, k, v, False, block_sparse=partial, num_warps=4, num_stages=1)
    assert torch.allclose(got, want, atol=1e-5)
    dense = attention_fwd(q, k, v, False, block_sparse=full, num_warps=4, num_stages=1)
    assert not torch.allclose(dense, want, atol=1e-3)  # keys outside the windows now count


def test_merge_adds_both_modes(tmp_path):
    from attnsim.archs.calibration import load_calibration

    step = {"dtype": "bf16", "head_dim": 64, "block_m": 128, "block_n": 64, "num_warps": 4,
            "num_stages": 3, "blocks_per_sm": 1}  # fmt: skip
    cal, entries = tmp_path / "cal.yaml", tmp_path / "entries.yaml"
    cal.write_text(yaml.safe_dump({
        "device": "NVIDIA H200", "date": "2026-12-05", "source": "test",
        "attention_steps": [{"mode": "online", **step, "step_us": 0.9},
                            {"mode": "neighborhood", **step, "step_us": 9.9}],
    }, sort_keys=False))  # fmt: skip
    entries.write_text(yaml.safe_dump({"attention_steps": [
        {"mode": "neighborhood", **step, "step_us": 1.7},
        {"mode": "neighborhood-full", **step, "step_us": 1.3},
    ]}, sort_keys=False))  # fmt: skip
    assert main(["--merge", str(cal), "--entries", str(entries), "--device", "X"]) == 0
    loaded = load_calibration(cal)
    got = sorted((p.mode, round(p.step_s * 1e6, 6)) for p in loaded.attention_steps)
    assert got == [("neighborhood", 1.7), ("neighborhood-full", 1.3), ("online", 0.9)]
    note = [n for n in yaml.safe_load(cal.read_text())["notes"] if "neighborhood" in n]
    assert len(note) == 1 and "on X" in note[0]
