"""kernels.distributed.blocks on the project's Triton kernels (interpreter on a CPU-only host).

`attn_fwd.attention_fwd_lse` (the 1-pass kernel storing each row's LSE) against the float64
torch block, on contiguous and sliced (zig-zag half) inputs, and the distributed forwards with
the Triton blocks on 2 forked gloo processes (fp32 against float64: 1e-5).
"""

from __future__ import annotations

import json
import os

import torch

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    os.environ["TRITON_INTERPRET"] = "1"  # must precede the first import of triton

import pytest  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402

from attnsim.kernels.distributed.blocks import (  # noqa: E402
    torch_linear_local,
    torch_softmax_block,
    triton_linear_local,
    triton_softmax_block,
)
from attnsim.kernels.distributed.check import CASES, run_checks  # noqa: E402
from attnsim.kernels.distributed.launch import spawn  # noqa: E402

DEVICE = "cuda" if HAS_CUDA else "cpu"


def _qkv(seq=64, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(1, 2, seq, d, generator=g).to(DEVICE) for _ in range(3)]


@pytest.mark.parametrize("causal", [False, True])
def test_attention_fwd_lse_matches_the_float64_block(causal):
    q, k, v = _qkv()
    out, lse = triton_softmax_block(q, k, v, causal, 0.3)
    ref, ref_lse = torch_softmax_block(*(t.double() for t in (q, k, v)), causal, 0.3)
    assert lse.dtype == torch.float32 and lse.shape == (1, 2, 64)
    assert (out.double() - ref).abs().max() < 1e-5
    assert (lse.double() - ref_lse).abs().max() < 1e-5


def test_attention_fwd_lse_on_half_views():
    q, k, v = _qkv()
    out, lse = triton_softmax_block(q[:, :, 32:], k[:, :, :32], v[:, :, :32], False, 0.3)
    ref, ref_lse = torch_softmax_block(
        *(t.double() for t in (q[:, :, 32:], k[:, :, :32], v[:, :, :32])), False, 0.3
    )
    assert (out.double() - ref).abs().max() < 1e-5
    assert (lse.double() - ref_lse).abs().max() < 1e-5


def test_triton_linear_local_matches_the_float64_reference():
    q, k, v = _qkv(seq=40)
    lam = torch.tensor([0.7, 0.95])
    out = triton_linear_local(q, k, v, lam, 0.25)
    ref = torch_linear_local(*(t.double() for t in (q, k, v)), lam.double(), 0.25)
    assert (out.double() - ref).abs().max() < 1e-4


def _triton_worker(rank, world, out_dir):
    torch.set_num_threads(1)
    rows = run_checks(
        (1, 2, 64 * world, 16), torch.float32, DEVICE, triton_softmax_block, triton_linear_local
    )
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as fh:
        json.dump(rows, fh)


@pytest.mark.skipif(HAS_CUDA or "fork" not in mp.get_all_start_methods(), reason="CPU, fork")
def test_distributed_forwards_with_triton_blocks(tmp_path):
    spawn(_triton_worker, 2, (str(tmp_path),), start_method="fork")
    rows = json.loads((tmp_path / "rank0.json").read_text())
    assert [row["case"] for row in rows] == [case.label for case in CASES]
    for row in rows:
        assert row["max_abs_err"] < 1e-4 and row["rel_err"] < 1e-5, row


# The STORE_LSE instantiation compiled for sm_90 on any host (Triton's CUDA pipeline through
# ptxas, in a subprocess: under TRITON_INTERPRET=1 kernels are not compilable): host-built
# descriptors, causal (the ring's diagonal block), and in-kernel descriptors (the zig-zag
# halves' strided views); the shared memory must stay that of the kernel without LSE.
SM90_SCRIPT = r"""
from attnsim.kernels.triton.sm90 import compile_fwd

for mode, causal in ((2, True), (1, False)):
    shared = [
        compile_fwd((128, 128, 8, 3), 128, mode, CAUSAL=causal, USE_ASM=True, FAST_TANH=True,
                    STORE_LSE=store).metadata.shared
        for store in (False, True)
    ]
    print("compiled", mode, causal, shared[0] == shared[1], flush=True)
"""


def test_store_lse_compiles_for_sm90():
    pytest.importorskip("triton.backends.nvidia")
    from attnsim.kernels.triton.sm90 import run_script

    out = run_script(SM90_SCRIPT)
    assert out.count("True\n") == 2, out
