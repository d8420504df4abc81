"""kernels.calibrate.microbench_bwd's host side: keys and the JIT re-enactment (CPU)."""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"  # must precede the first import of triton
pytest.importorskip("triton")

from attnsim.kernels.calibrate.microbench_bwd import HOST_CLASSES, _jit_bwd, host_key  # noqa: E402
from attnsim.kernels.triton.attn_bwd import attention_bwd, softmax_lse  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def test_host_keys_name_mode_and_mask():
    assert [host_key(m, c) for m, c in HOST_CLASSES] == [
        "bwd-atomic", "bwd-separate", "bwd-atomic-causal", "bwd-separate-causal",
    ]  # fmt: skip
    assert host_key("separate", True, "jit") == "bwd-jit-separate-causal"


@pytest.mark.parametrize("mode", ["atomic", "separate"])
def test_jit_reenactment_computes_the_launchers_gradients(mode):
    g = torch.Generator(device=DEVICE).manual_seed(0)
    q, k, v, o, do = (torch.randn(1, 2, 32, 16, generator=g, device=DEVICE) for _ in range(5))
    lse = softmax_lse(q, k, True)
    tiling = (16, 32, 4, 2)
    got = _jit_bwd(torch, q, k, v, o, do, lse, True, tiling, mode)()
    want = attention_bwd(q, k, v, o, do, lse, True, None, *tiling, mode)
    for a, b in zip(got, want, strict=True):
        assert torch.allclose(a, b, atol=1e-5)  # atomics may add in another order


def test_spread_entries_and_their_compile_jobs():
    from attnsim.kernels.calibrate.microbench_bwd import spread_jobs, spread_mode
    from attnsim.kernels.triton.attn_bwd import BWD_TILINGS

    assert spread_mode("bwd-dkdv-atomic", 16) == "bwd-dkdv-atomic-w16"
    assert spread_mode("bwd-dkdv", 0) == "bwd-dkdv"  # the calibration's own entries
    jobs = spread_jobs(132, 16)
    assert len(jobs) == 2 * 2 * len(BWD_TILINGS) * 3
    assert {j[1] for j in jobs} == {8, 16, 24}  # 132, 264, 396 programs in heads of 16 tiles
    assert all(j[1] == j[2] and j[5] is False for j in jobs)


def test_merging_spread_entries_keeps_the_one_head_entries(tmp_path):
    """`--merge CAL --entries W16.yaml` adds the `-w16` modes beside the one-head ones."""
    import yaml

    from attnsim.kernels.calibrate.microbench_bwd import merge

    def entry(mode: str, fixed: float) -> dict:
        return dict(mode=mode, dtype="bf16", head_dim=64, block_m=64, block_n=64, num_warps=4,
                    num_stages=3, blocks_per_sm=1, fixed_us=fixed, step_us=1.0)  # fmt: skip

    cal = tmp_path / "cal.yaml"
    base = [entry("bwd-dkdv-atomic", 14.9), entry("bwd-dq", 3.0)]
    cal.write_text(yaml.safe_dump({"device": "X", "attention_blocks": base, "notes": ["n"]}))
    merge(cal, {"attention_blocks": [entry("bwd-dkdv-atomic-w16", 6.0)]}, "NVIDIA H200")
    data = yaml.safe_load(cal.read_text())
    modes = {e["mode"]: e["fixed_us"] for e in data["attention_blocks"]}
    assert modes == {"bwd-dkdv-atomic": 14.9, "bwd-dq": 3.0, "bwd-dkdv-atomic-w16": 6.0}
    assert any("--spread 16" in n for n in data["notes"]) and "n" in data["notes"]
    # merging one-head entries again replaces those modes only, the spread note stays
    merge(cal, {"attention_blocks": [entry("bwd-dkdv-atomic", 15.0)]}, "NVIDIA H200")
    data = yaml.safe_load(cal.read_text())
    modes = {e["mode"]: e["fixed_us"] for e in data["attention_blocks"]}
    assert modes == {"bwd-dq": 3.0, "bwd-dkdv-atomic-w16": 6.0, "bwd-dkdv-atomic": 15.0}
    assert sum("microbench_bwd" in n for n in data["notes"]) == 2


def test_merging_the_gated_lightning_entries_keeps_the_ungated_note(tmp_path):
    """GLA's modes merged after Lightning's: both entry sets and both provenance notes stay;
    merging GLA's again replaces its own note only."""
    import yaml

    from attnsim.kernels.calibrate.microbench_lightning import merge

    def found(mode: str) -> dict:
        e = dict(mode=mode, dtype="bf16", head_dim=64, block_m=64, block_n=64, num_warps=4,
                 num_stages=2, blocks_per_sm=1, step_us=1.0)  # fmt: skip
        return {"attention_steps": [e], "attention_blocks": [{**e, "fixed_us": 2.0}]}

    cal = tmp_path / "cal.yaml"
    cal.write_text(yaml.safe_dump({"device": "NVIDIA H200", "notes": ["n"]}))
    merge(cal, found("lightning-fused"), "NVIDIA H200")
    merge(cal, found("lightning-fused-gla"), "NVIDIA H100 80GB HBM3")
    merge(cal, found("lightning-fused-gla"), "NVIDIA H100 80GB HBM3")
    data = yaml.safe_load(cal.read_text())
    assert [e["mode"] for e in data["attention_steps"]] == [
        "lightning-fused",
        "lightning-fused-gla",
    ]
    notes = data["notes"]
    assert notes[0] == "n" and len(notes) == 3
    assert "modes lightning-fused: " in notes[1] and "on NVIDIA H200," in notes[1]
    assert "modes lightning-fused-gla: " in notes[2] and "on NVIDIA H100 80GB HBM3," in notes[2]
