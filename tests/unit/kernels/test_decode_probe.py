"""The decode probe's shape suites, configurations and rows (benchmarks/decode_probe.py), on CPU."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("triton")


@pytest.fixture(scope="module")
def probe(benchmark_module):
    return benchmark_module("decode_probe")


def test_validation_and_holdout_are_disjoint_and_span_the_ranges(probe):
    suites = probe.shapes(132)
    key = lambda s: (s.batch, s.heads, s.kv_heads, s.seq_k, s.head_dim, s.lens)  # noqa: E731
    for name in ("", "ragged-", "paged-", "mla-"):
        val, hold = suites[f"{name}validation"], suites[f"{name}holdout"]
        assert val and hold and not {key(s) for s in val} & {key(s) for s in hold}
    dense = suites["validation"] + suites["holdout"]
    assert {min(s.batch for s in dense), max(s.batch for s in dense)} == {1, 64}
    assert {min(s.seq_k for s in dense), max(s.seq_k for s in dense)} == {1024, 512 * 1024}
    assert {min(s.heads for s in dense), max(s.heads for s in dense)} == {8, 128}
    assert {s.head_dim for s in dense} == {64, 128}
    assert any(s.kv_heads == 1 for s in dense) and any(s.kv_heads == s.heads for s in dense)
    assert all(s.heads % s.kv_heads == 0 for s in dense)
    assert {s.page_size for s in suites["paged-validation"] + suites["paged-holdout"]} == {64, 256}
    assert {s.heads for s in suites["mla-validation"]} == {16, 128}


def test_every_shape_fits_in_memory_and_pages(probe):
    for shapes in probe.shapes(132).values():
        for s in shapes:
            assert probe.peak_bytes(s) < 100e9, s
            if s.lens:
                assert len(s.lens) == s.batch and max(s.lens) == s.seq_k and min(s.lens) >= 1
            if s.page_size:
                assert s.seq_k % s.page_size == 0


def test_calib_segments_are_multiples_of_the_sms(probe):
    calib = probe.shapes(132)["calib"]
    unsplit = [s for s in calib if s.batch * s.kv_heads >= 132]
    assert sorted({s.batch * s.kv_heads for s in unsplit}) == [132, 264, 528]
    assert [c.strategy for c in probe.configs(unsplit[0], 132)] == ["unsplit"]
    one = [s for s in calib if s.batch * s.kv_heads == 1]
    assert one and {c.programs for c in probe.configs(one[0], 132)} == {132}


def test_configs_sweep_splits_and_flag_defaults(probe):
    shape = probe.Shape("validation", 1, 32, 8, 131072)
    cfgs = probe.configs(shape, 132)
    assert [c.splits for c in cfgs if c.strategy == "splitk" and not c.is_default] == [
        1,
        2,
        4,
        8,
        16,
        32,
        64,
    ]
    assert {c.programs for c in cfgs if c.strategy == "streamk"} == {132, 264, None}
    assert sum(c.is_default for c in cfgs) == 2  # split-K and stream-K defaults
    short = probe.Shape("validation", 1, 32, 8, 200)  # 4 tiles of 64 keys
    assert probe.split_sweep(short) == [1, 2, 4]
    mla = probe.shapes(132)["mla-validation"][0]
    assert {c.head_block for c in probe.configs(mla, 132)} == {16, 32, 64}


def test_rows_have_exactly_the_csv_columns(probe):
    shape = probe.Shape("ragged-validation", 2, 4, 2, 100, 64, 64, lens=(100, 3))
    base = {f: None for f in probe.FIELDS}
    row = probe.make_row(shape, probe.Config("splitk", splits=2), base, kernel_ms=0.5)
    assert tuple(row) == probe.FIELDS and row["seq_lens"] == "100;3"
    assert row["kv_bytes"] == 103 * 2 * (64 + 64) * 2
    with pytest.raises(ValueError, match="unknown columns"):
        probe.make_row(shape, probe.Config("unsplit"), base, bogus=1)
    mla = probe.Shape("mla-validation", 1, 128, 1, 10, 576, 512, mla=True)
    assert probe.kv_bytes(mla) == 10 * 576 * 2


def test_summary_line(probe):
    shape = probe.Shape("validation", 1, 32, 8, 1024)
    rows = [probe.make_row(shape, probe.Config("unsplit"), {"flash_ms": 0.02, "cudnn_ms": 0.01,
                                                            "efficient_ms": float("nan")},
                           kernel_ms=0.02)]  # fmt: skip
    line = probe.summary_line(shape, rows)
    assert "0.50x best SDPA" in line and "TB/s" in line


def test_tuned_configurations_are_the_calibrated_tilings_of_the_shapes_dims(probe):
    from attnsim.kernels.calibrate.microbench_decode_builds import TUNED_CONFIGS
    from attnsim.kernels.spec import decode_rows

    calibrated = {(e, f, decode_rows(g), bn, w, st) for e, f, g, bn, w, st in TUNED_CONFIGS}
    seen = set()
    for name, shapes in probe.shapes(132).items():
        for s in shapes:
            if name.startswith(("mla", "calib")):
                continue
            plain = probe.configs(s, 132)
            tuned = probe.configs(s, 132, tuned=True)
            assert tuned[: len(plain)] == plain  # the default tiling's configurations first
            rows = decode_rows(s.heads // s.kv_heads)
            for c in tuned[len(plain) :]:
                key = (s.head_dim, s.value_dim, rows, c.block_n, c.num_warps, c.num_stages)
                assert key in calibrated, (s, c)
                assert c.strategy in ("splitk", "streamk") and not c.is_default
                seen.add(key)
    # every tuned tiling is timed on some shape of the suites
    assert seen == calibrated
