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
