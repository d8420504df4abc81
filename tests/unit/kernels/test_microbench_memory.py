"""`kernels.calibrate.microbench.hbm_read_kernel`: the read stream reads every element once."""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"  # must precede the first import of triton
pytest.importorskip("triton")

from attnsim.kernels.calibrate.microbench import hbm_read_kernel  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.mark.parametrize("programs", [1, 3, 8])
def test_the_read_stream_visits_each_block_once_over_its_programs(programs):
    block = 64
    x = torch.arange(10 * block, device=DEVICE, dtype=torch.float32).to(torch.bfloat16)
    out = torch.full((programs,), float("nan"), device=DEVICE)
    hbm_read_kernel[(programs,)](x, out, x.numel(), BLOCK=block)
    assert float(out.sum()) == pytest.approx(float(x.float().sum()), rel=1e-6)
    # program p reads blocks p, p + programs, ...: its share of the stream
    blocks = x.float().view(10, block).sum(1)
    for p in range(programs):
        assert float(out[p]) == pytest.approx(float(blocks[p::programs].sum()), rel=1e-6)
