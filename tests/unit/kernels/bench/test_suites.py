"""Timing suites of kernels.bench.harness (kernels/bench/suites.py); formulas: test_spec.py."""

from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"  # kernels.triton.common defines @triton.jit helpers

from attnsim.kernels.bench import harness as bench  # noqa: E402


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
    from attnsim.kernels.calibrate import microbench_unfused as mu

    seqs = {s.seq_k for s in holdout} | {s.seq_k for s in validation}
    assert not {mu.RAGGED_MATMUL_SHAPE[1], *(x[1] for x in mu.RAGGED_SOFTMAX_SHAPES)} & seqs
    from attnsim.kernels.bench.suites import fresh_shapes
    from attnsim.mappers.gpu.unfused_rates import row_alignment_bytes

    seqs |= {s.seq_k for s in fresh_shapes()}
    assert not {x[1] for x in mu.ALIGNMENT_SHAPES} & seqs  # nor the row-alignment ones
    assert [row_alignment_bytes(x[1], 2) for x in mu.ALIGNMENT_SHAPES] == [4, 2]
    configs = bench.build_configs("holdout", list(bench.FAMILIES), smem_limit=227 * 1024)
    assert bench.estimate_run_s(configs) < 5 * 60


def test_microbench_unfused_cli_help_and_no_gpu(capsys):
    import pytest

    from attnsim.kernels.calibrate import microbench_unfused

    with pytest.raises(SystemExit) as done:
        microbench_unfused.main(["--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0 and "--ragged" in out and "--row-alignment" in out
    import torch

    if not torch.cuda.is_available():
        for flag in ("--ragged", "--row-alignment"):
            assert microbench_unfused.main([flag]) == 2
            assert "needs a CUDA GPU" in capsys.readouterr().err


def test_regime_and_gqa_suites_are_disjoint_and_sample_their_regimes():
    from attnsim.kernels.bench.suites import (
        gqa_holdout_shapes,
        gqa_validation_shapes,
        regime_shapes,
    )

    regimes = regime_shapes()
    seen = set(bench.validation_shapes()) | set(bench.holdout_shapes())
    assert len(set(regimes)) == len(regimes) and not set(regimes) & seen
    assert any(s.seq_q <= 256 and s.seq_k >= 8192 for s in regimes)  # short chunk, long cache
    assert any(s.batch >= 32 and s.seq_k <= 512 for s in regimes)  # many short sequences
    assert any(s.causal and s.seq_k >= 32768 for s in regimes)  # long causal rows
    assert any(s.causal and s.seq_k % 128 for s in regimes)  # ragged causal
    gv, gh = gqa_validation_shapes(), gqa_holdout_shapes()
    assert all(s.kv_group > 1 for s in gv + gh) and not set(gv) & set(gh)
    configs = bench.build_configs("gqa-validation", list(bench.FAMILIES), smem_limit=227 * 1024)
    assert {c.family for c in configs} == {"triton-1pass", "sdpa-cudnn", "sdpa-flash"}
    for suite in ("regimes", "fresh", "gqa-validation", "gqa-holdout"):
        configs = bench.build_configs(suite, list(bench.FAMILIES), smem_limit=227 * 1024)
        assert bench.estimate_run_s(configs) < 5 * 60


def test_the_fresh_suite_is_disjoint_from_every_other():
    from attnsim.kernels.bench.suites import fresh_shapes, regime_shapes

    fresh = fresh_shapes()
    others = set(bench.validation_shapes()) | set(bench.holdout_shapes()) | set(regime_shapes())
    assert len(set(fresh)) == len(fresh) == 14 and not set(fresh) & others
