from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"  # kernels.common defines @triton.jit helpers

import pytest  # noqa: E402

from kernels import bench  # noqa: E402
from kernels.common import (  # noqa: E402
    AttnShape,
    attn_flops,
    bytes_1pass,
    bytes_2pass,
    bytes_unfused,
    causal_pairs,
    score_elements,
    smem_bytes_1pass,
)


def test_flops_hand_counts():
    # B=2, H=3, S=4, D=8: QK^T is 2*3*4*4 dot products of length 8 (2 FLOP each), P.V the same
    s = AttnShape(2, 3, 4, 4, 8, False)
    assert attn_flops(s) == 2 * (2 * 3 * 4 * 4 * 8 * 2) == 3072
    assert attn_flops(AttnShape(2, 3, 4, 4, 8, True)) == 1536
    # the reference file's shape: 4*16*16*4096^2*128 /2 causal
    assert attn_flops(AttnShape(4, 16, 4096, 4096, 128, True)) == 4 * 4 * 16 * 4096**2 * 128 // 2


def test_causal_pairs_brute_force():
    for sq in range(1, 9):
        for sk in range(1, 9):
            brute = sum(1 for i in range(sq) for j in range(sk) if j <= i)
            assert causal_pairs(sq, sk) == brute
    assert score_elements(AttnShape(2, 3, 5, 5, 8, True)) == 6 * 15


def test_bytes_hand_counts():
    s = AttnShape(1, 2, 10, 20, 8, False)
    q, kv, o = 2 * 10 * 8 * 2, 2 * 2 * 20 * 8 * 2, 2 * 10 * 8 * 2  # fp16: Q, K+V, O
    assert bytes_1pass(s, 2) == q + kv + o == 1920
    stats = 2 * 10 * 4 * 2
    k = 2 * 20 * 8 * 2
    assert bytes_2pass(s, 2) == (q + k + stats) + (q + kv + o + stats)
    assert bytes_unfused(s, 2) == q + kv + o + 4 * (2 * 10 * 20 * 2)
    sc = AttnShape(1, 1, 4, 4, 8, True)
    assert bytes_unfused(sc, 2) == bytes_1pass(sc, 2) + 4 * 10 * 2


def test_smem_estimate():
    # Q 128x128 + (3-1) stages of K and V 64x128, bf16
    assert smem_bytes_1pass(128, 64, 128, 3, 2) == 2 * (128 * 128 + 2 * 2 * 64 * 128)


def test_validation_suite_size_and_budget():
    configs = bench.build_configs("validation", list(bench.FAMILIES), smem_limit=227 * 1024)
    for fam in bench.FAMILIES:
        shapes = {c.shape for c in configs if c.family == fam}
        assert len(shapes) >= 40, fam
        seqs = {s.seq_q for s in shapes}
        assert min(seqs) == 512 and max(seqs) == 32768
        assert {s.head_dim for s in shapes} == {64, 128} and {s.causal for s in shapes} == {0, 1}
    for fam in bench.TRITON_FAMILIES:
        per_shape = len([c for c in configs if c.family == fam]) / len(
            {c.shape for c in configs if c.family == fam}
        )
        assert per_shape >= 2, fam
    assert bench.estimate_run_s(configs) < 8 * 60
    smoke = bench.build_configs("smoke", list(bench.FAMILIES), smem_limit=227 * 1024)
    assert bench.estimate_run_s(smoke) < 60


def test_holdout_suite_is_disjoint_from_validation_and_covers_the_odd_cases():
    holdout, validation = bench.holdout_shapes(), set(bench.validation_shapes())
    assert len(set(holdout)) == len(holdout) == 20
    assert not set(holdout) & validation
    assert not {(s.seq_q, s.head_dim) for s in holdout} <= {
        (s.seq_q, s.head_dim) for s in validation
    }
    assert any(s.seq_k % 16 for s in holdout)  # ragged rows (another code path)
    assert any(s.seq_q != s.seq_k for s in holdout)
    assert {s.head_dim for s in holdout} == {64, 128} and {s.causal for s in holdout} == {0, 1}
    # the unfused calibration's ragged shapes are in neither suite
    from kernels import microbench_unfused as mu

    seqs = {s.seq_k for s in holdout} | {s.seq_k for s in validation}
    assert not {mu.RAGGED_MATMUL_SHAPE[1], *(x[1] for x in mu.RAGGED_SOFTMAX_SHAPES)} & seqs
    configs = bench.build_configs("holdout", list(bench.FAMILIES), smem_limit=227 * 1024)
    assert bench.estimate_run_s(configs) < 5 * 60


def test_attn_shape_rejects_nonpositive():
    with pytest.raises(ValueError, match="seq_q"):
        AttnShape(1, 1, 0, 4, 8, False)


def test_microbench_unfused_cli_help_and_no_gpu(capsys):
    import pytest

    from kernels import microbench_unfused

    with pytest.raises(SystemExit) as done:
        microbench_unfused.main(["--help"])
    assert done.value.code == 0 and "--ragged" in capsys.readouterr().out
    import torch

    if not torch.cuda.is_available():
        assert microbench_unfused.main(["--ragged"]) == 2
        assert "needs a CUDA GPU" in capsys.readouterr().err
