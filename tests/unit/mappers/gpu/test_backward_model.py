"""The backward's kernel plans (mappers.gpu.backward): tiles, work and launches."""

from __future__ import annotations

import dataclasses

import pytest

from attnsim.archs.gpu import GpuArch
from attnsim.archs.load import load_arch
from attnsim.einsum_ir import load_cascade
from attnsim.einsum_ir.analysis.tiles import Band, mask_points
from attnsim.kernels.spec import AttnShape
from attnsim.mappers.gpu.backward import (
    bwd_plans,
    dkdv_writers,
    host_key,
    host_keys,
    key_tiles,
    spread_mode,
    time_bwd,
    transpose_bands,
)
from attnsim.mappers.gpu.rates import Tiling, device_rates
from attnsim.mappers.registry import get_mapper

T = Tiling(32, 128, 8, 3)


def _shape(causal: bool, group: int = 1, seq: int = 1024) -> AttnShape:
    return AttnShape(2, 8, seq, seq, 64, 64, causal, "bf16", 2, kv_group=group)


@pytest.mark.parametrize(
    "bands", [(Band(d_hi=0),), (Band(d_lo=-63, d_hi=0),), (Band(m_hi=3, d_hi=0), Band(d_lo=-9))]
)
def test_transposed_mask_has_the_same_pairs_swapped(bands: tuple[Band, ...]) -> None:
    assert mask_points(transpose_bands(bands), 300, 200) == mask_points(bands, 200, 300)
    assert transpose_bands(transpose_bands(bands)) == bands


def test_key_tiles_walk_the_queries_that_see_them() -> None:
    tiles = key_tiles(_shape(True), 32, 128)
    visits = [
        a + m for a, m in zip(tiles.full_per_query_tile, tiles.partial_per_query_tile, strict=True)
    ]
    assert visits[0] == 1024 // 32  # the first key tile is seen by every query tile
    assert visits == sorted(visits, reverse=True)  # later keys: fewer queries
    dense = key_tiles(_shape(False), 32, 128)
    assert sum(dense.full_per_query_tile) == (1024 // 32) * (1024 // 128)


@pytest.mark.parametrize("causal", [False, True])
def test_flops_are_two_and_a_half_forwards(causal: bool) -> None:
    s = _shape(causal)
    plans = {p.name: p for p in bwd_plans(s, T, "separate")}
    assert set(plans) == {"prepass", "dkdv", "dq"}
    total = plans["dkdv"].flops + plans["dq"].flops
    # 4 dots in dK/dV + 3 in dQ = QK^T and dO V^T recomputed once more + the 5 of the
    # backward: 3.5x the forward's, exactly when dense; causal tiles on the diagonal are
    # visited whole, so between the visible pairs' and the dense count
    if causal:
        dense = _shape(False).flops
        assert 3.5 * s.flops < total < 3.5 * (s.flops + 0.15 * dense)
    else:
        assert total == pytest.approx(3.5 * s.flops)


def test_atomic_mode_zeroes_dq_in_the_prepass_and_casts_it() -> None:
    s = _shape(False)
    plans = bwd_plans(s, T, "atomic")
    assert [p.name for p in plans] == ["prepass", "dkdv", "dq-cast"]
    assert len(plans[1].step.dots) == 5
    rows = s.batch * s.heads * s.seq_q
    separate = bwd_plans(s, T, "separate")[0]
    assert separate.hbm_write_bytes == 4 * rows  # D alone
    assert plans[0].hbm_write_bytes == 4 * rows + 4 * s.head_dim * rows  # D and dQ's zeros
    assert plans[0].hbm_read_bytes == separate.hbm_read_bytes


def test_gqa_programs_walk_their_group() -> None:
    mha = bwd_plans(_shape(False), T, "separate")[1]
    gqa = bwd_plans(_shape(False, group=4), T, "separate")[1]
    assert gqa.blocks * 4 == mha.blocks
    assert gqa.groups[0].steps == 4 * mha.groups[0].steps
    assert gqa.hbm_write_bytes * 4 == mha.hbm_write_bytes  # dK, dV per K/V head


def test_time_grows_with_length_and_rejects_bad_mode() -> None:
    rates = device_rates(load_arch("h200"), "bf16")
    short = time_bwd(_shape(False, seq=1024), T, "separate", rates).time_s
    long = time_bwd(_shape(False, seq=4096), T, "separate", rates).time_s
    assert 8 < long / short < 17  # quadratic work, fixed costs amortized
    with pytest.raises(ValueError, match="dq_mode"):
        bwd_plans(_shape(False), T, "both")


# ----------------------------------------------------------------------------- the host side
TINY = AttnShape(16, 8, 512, 512, 64, 64, False, "bf16", 2)  # ~0.1 ms on the H200's GPU
LARGE = AttnShape(1, 32, 8192, 8192, 128, 128, True, "bf16", 2)  # ~4-16 ms


def _with_host(**calls_us: float) -> GpuArch:
    """The H200 preset with these backward `host_call_us` figures only (none: no figure).

    The preset's own backward figures (`microbench_bwd --merge-host`) are left out, so the
    figures given are the only ones the model can find.
    """
    arch = load_arch("h200")
    assert isinstance(arch, GpuArch) and arch.calibration is not None
    cal = arch.calibration
    calls = {
        **{k: v for k, v in cal.host_call_s if not k.startswith("bwd")},
        **{k.replace("_", "-"): us * 1e-6 for k, us in calls_us.items()},
    }
    return dataclasses.replace(
        arch, calibration=dataclasses.replace(cal, host_call_s=tuple(sorted(calls.items())))
    )


def test_host_keys_most_specific_first() -> None:
    assert host_keys("atomic", True) == ("bwd-atomic-causal", "bwd-atomic", "bwd")
    assert host_keys("separate", False) == ("bwd-separate", "bwd")
    rates = device_rates(_with_host(bwd_separate=50.0, bwd=70.0), "bf16")
    assert host_key(rates, "separate", True) == "bwd-separate"
    assert host_key(rates, "atomic", True) == "bwd"
    assert host_key(device_rates(_with_host(), "bf16"), "atomic", False) == ""
    assert host_key(device_rates(load_arch("h200"), "bf16"), "atomic", False) == "bwd-atomic"


@pytest.mark.parametrize("mode", ["atomic", "separate"])
def test_host_bound_tiny_call_runs_at_the_host_figure(mode: str) -> None:
    base = device_rates(_with_host(), "bf16")
    gpu = time_bwd(TINY, T, mode, base)
    head = base.bench_head_start_s
    assert not gpu.host_bound and gpu.host_key == ""
    x = 400e-6  # well past the GPU's ~0.1 ms: the launcher bounds the call
    slow = time_bwd(TINY, T, mode, device_rates(_with_host(**{f"bwd_{mode}": x * 1e6}), "bf16"))
    assert slow.host_bound and slow.host_key == f"bwd-{mode}"
    assert slow.host_s == pytest.approx(x)
    last = slow.kernels[-1].time_s
    # the last kernel is submitted when the launcher returns, less do_bench's head start
    assert slow.time_s == pytest.approx(x - head + last, rel=1e-9)
    slower = time_bwd(
        TINY, T, mode, device_rates(_with_host(**{f"bwd_{mode}": x * 1e6 + 100}), "bf16")
    )
    assert slower.time_s - slow.time_s == pytest.approx(100e-6, rel=1e-6)


def test_causal_figure_is_read_for_causal_calls_only() -> None:
    arch = _with_host(bwd_atomic=30.0, bwd_atomic_causal=500.0)
    rates = device_rates(arch, "bf16")
    causal = dataclasses.replace(TINY, causal=True)
    assert time_bwd(causal, T, "atomic", rates).host_key == "bwd-atomic-causal"
    assert time_bwd(causal, T, "atomic", rates).host_bound
    assert time_bwd(TINY, T, "atomic", rates).host_key == "bwd-atomic"
    assert not time_bwd(TINY, T, "atomic", rates).host_bound


@pytest.mark.parametrize("mode", ["atomic", "separate"])
def test_large_call_is_unchanged_by_the_host_figure(mode: str) -> None:
    base = device_rates(_with_host(), "bf16")
    plain = time_bwd(LARGE, T, mode, base)
    n = len(plain.kernels)
    # a launcher whose first launch comes within do_bench's head start: not seen at all
    quick_us = 0.9 * n * base.bench_head_start_s * 1e6
    quick = time_bwd(LARGE, T, mode, device_rates(_with_host(bwd=quick_us), "bf16"))
    assert quick.time_s == plain.time_s and not quick.host_bound
    # a slower one delays the long kernel by at most its own lead (not host-bound)
    slow = time_bwd(LARGE, T, mode, device_rates(_with_host(bwd=400.0), "bf16"))
    assert not slow.host_bound and slow.time_s > 1e-3
    assert 0 < slow.time_s - plain.time_s <= 400e-6 - base.bench_head_start_s


def test_without_a_measured_figure_each_launch_costs_one_host_launch() -> None:
    rates = device_rates(_with_host(), "bf16")
    for mode, launches in (("atomic", 3), ("separate", 3)):
        t = time_bwd(TINY, T, mode, rates)
        assert t.host_key == "" and len(t.kernels) == launches
        assert t.host_s == pytest.approx(launches * rates.host_launch_s)


def test_result_states_the_host_figure_and_bound() -> None:
    cascade = load_cascade("attention-1pass-bwd-mh")
    sizes = dict(B=16, H=8, P=512, M=512, E=64, F=64)
    mapper = get_mapper("gpu-bwd")(block_m=32, block_n=128, num_warps=8, num_stages=3,
                                   dq_mode="separate")  # fmt: skip
    plain = mapper.map(cascade, _with_host(), sizes)
    note = next(w for w in plain.warnings if w.startswith("host:"))
    assert "not measured: 3 kernel launches" in note and "not host-bound" in note
    preset = mapper.map(cascade, load_arch("h200"), sizes)  # the merged probe figure
    note = next(w for w in preset.warnings if w.startswith("host:"))
    assert "costs 42.9 us" in note and "host_call_us bwd-separate" in note
    assert plain.bound != "host launch"
    hosted = mapper.map(cascade, _with_host(bwd_separate=400.0), sizes)
    note = next(w for w in hosted.warnings if w.startswith("host:"))
    assert "costs 400.0 us" in note and "host_call_us bwd-separate" in note
    assert "the call is host-bound" in note
    assert hosted.bound == "host launch"
    extras = dict(hosted.extras)
    assert extras["host_call_us"] == pytest.approx(400.0) and extras["host_bound"] == 1.0
    assert hosted.latency_s > plain.latency_s


def test_streamed_operands_are_read_once_while_they_fit_in_l2() -> None:
    """The query side (dK/dV kernel) and K/V (dQ kernel): once per wave beyond half the L2."""
    l2 = 50 * 2**20
    per_row = (64 + 64) * 2  # Q and dO rows (or K and V), bf16
    for seq in (1024, 65536):  # 2 x 16.8 MB (65536 rows) fits 50 MiB: read once
        s = _shape(False, seq=seq)
        once = bwd_plans(s, T, "separate")
        waves = bwd_plans(s, T, "separate", (132, 132), l2)
        assert [p.hbm_read_bytes for p in waves] == [p.hbm_read_bytes for p in once]
    s = _shape(False, seq=262144)  # 2 x 67 MB of query rows per head: past half the L2
    once = {p.name: p for p in bwd_plans(s, T, "separate")}
    waves = {p.name: p for p in bwd_plans(s, T, "separate", (264, 132), l2)}
    q_side = 2 * 8 * 262144 * (per_row + 8)  # B x H query rows with LSE and D (fp32)
    kv = 2 * 8 * 262144 * per_row
    dkdv_reads = -(-(262144 // T.block_n) // 264)  # key-tile programs per wave of 264
    dq_reads = -(-(262144 // T.block_n) // 132)  # the dQ kernel's query tiles (block_n rows)
    assert waves["dkdv"].hbm_read_bytes == kv + dkdv_reads * q_side
    assert waves["dq"].hbm_read_bytes == q_side + dq_reads * kv
    assert once["dkdv"].hbm_read_bytes == kv + q_side
    assert waves["prepass"] == once["prepass"]


def test_long_backward_traffic_grows_with_the_waves() -> None:
    """gpu-bwd's DRAM bytes per unique byte: flat while rows fit the L2, then growing."""
    arch = load_arch("h200")
    bwd = load_cascade("attention-1pass-bwd-mh")
    ratios = []
    for n in (16384, 262144):
        r = get_mapper("gpu-bwd")().map(bwd, arch, {"B": 1, "H": 32, "E": 128, "F": 128,
                                                    "P": n, "M": n})  # fmt: skip
        unique = 32 * n * (4 * 128 * 2 + 8) + 32 * n * 2 * 128 * 2  # Q K V O dO LSE D dQ dK dV
        ratios.append(r.dram_traffic_bytes / unique)
    # at 16K each kernel reads its operands once (the three kernels: about 2x the unique
    # bytes); at 256K every wave of programs re-reads the streamed side
    assert ratios[0] < 3.0 and ratios[1] > 3 * ratios[0]


def test_dkdv_priced_with_the_entries_of_the_nearest_programs_per_head() -> None:
    """`microbench_bwd --spread 16` entries price calls of about 16 key tiles per head.

    The one-head entries ran a wave of the SMs' programs on one head's dQ rows; a call with
    16 key tiles per K/V head is nearer the spread entries, one with 128 nearer the wave.
    """
    arch = load_arch("h200")
    rates = device_rates(arch, "bf16")
    assert arch.calibration is not None
    spread = {p.mode for p in arch.calibration.attention_blocks if p.mode.endswith("-w16")}
    assert spread == {"bwd-dkdv-w16", "bwd-dkdv-atomic-w16"} | {
        f"bwd-dkdv{a}-dpfirst-w16" for a in ("", "-atomic")
    }  # both builds (the dP-first one's scaled, `kernels.calibrate.bwd_builds`)
    t64 = Tiling(64, 64, 4, 3)
    short, long = _shape(False, seq=1024), _shape(False, seq=8192)
    assert (dkdv_writers(short, t64), dkdv_writers(long, t64)) == (16, 128)
    assert spread_mode(rates, True, 64, 16) == "bwd-dkdv-atomic-w16"
    assert spread_mode(rates, False, 64, 30) == "bwd-dkdv-w16"
    assert spread_mode(rates, True, 64, 128) == "bwd-dkdv-atomic"
    assert spread_mode(rates, True, 96, 16) == "bwd-dkdv-atomic"  # nothing else measured
    assert spread_mode(device_rates(load_arch("a100-sxm"), "bf16"), True, 64, 16) == (
        "bwd-dkdv-atomic"
    )
    assert spread_mode(rates, True, 64, 16, dp_first=True) == "bwd-dkdv-atomic-dpfirst-w16"
    timed = time_bwd(short, t64, "atomic", rates, dp_first=False)
    assert timed.plans[1].mode == "bwd-dkdv-atomic-w16"
    assert time_bwd(long, t64, "atomic", rates, dp_first=False).plans[1].mode == "bwd-dkdv-atomic"
    assert time_bwd(short, t64, "atomic", rates).plans[1].mode == "bwd-dkdv-atomic-dpfirst-w16"
    # the spread entries' fixed time (6 us at 2 per SM against 14.9 us on one head's dQ rows)
    # makes the short call cheaper than the one-head entries price it
    one_head = bwd_plans(short, t64, "atomic", dkdv_mode="bwd-dkdv-atomic")
    from attnsim.mappers.gpu.model import time_kernel

    assert timed.kernels[1].time_s < time_kernel(one_head[1], rates).time_s


def test_result_names_the_dkdv_entries_it_priced_with() -> None:
    cascade = load_cascade("attention-1pass-bwd-mh")
    mapper = get_mapper("gpu-bwd")(block_m=64, block_n=64, num_warps=4, num_stages=3,
                                   dq_mode="atomic")  # fmt: skip
    r = mapper.map(cascade, load_arch("h200"), dict(B=4, H=32, P=1024, M=1024, E=64, F=64))
    note = next(w for w in r.warnings if w.startswith("dK/dV kernel:"))
    assert "16 programs per K/V head" in note and "bwd-dkdv-atomic-dpfirst-w16" in note
    r = mapper.map(cascade, load_arch("h200"), dict(B=1, H=8, P=8192, M=8192, E=64, F=64))
    note = next(w for w in r.warnings if w.startswith("dK/dV kernel:"))
    assert "128 programs per K/V head" in note and "entries bwd-dkdv-atomic-dpfirst (one" in note


def test_each_dkdv_build_is_priced_with_its_own_entries() -> None:
    """The dP-first build (the kernels' own) reads modes `...-dpfirst`, the earlier build the
    plain ones; a calibration without the former prices it with the latter and says so."""
    arch = load_arch("h200")
    rates = device_rates(arch, "bf16")
    assert arch.calibration is not None
    s = AttnShape(1, 32, 8192, 8192, 128, 128, False, "bf16", 2)
    t = Tiling(64, 128, 8, 3)
    first, earlier = (time_bwd(s, t, "separate", rates, dp_first=x) for x in (True, False))
    assert (first.plans[1].mode, earlier.plans[1].mode) == ("bwd-dkdv-dpfirst", "bwd-dkdv")
    assert first.dp_first and not earlier.dp_first
    assert time_bwd(s, t, "separate", rates).plans[1].mode == "bwd-dkdv-dpfirst"  # the default
    # the dK/dV kernel's loop time scales with its entries' step ratio; the other kernels stay
    step = {p.mode: p.step_s for p in arch.calibration.attention_steps
            if p.head_dim == 128 and (p.block_m, p.block_n, p.num_warps, p.num_stages)
            == (64, 128, 8, 3) and p.blocks_per_sm == 1}  # fmt: skip
    ratio = step["bwd-dkdv-dpfirst"] / step["bwd-dkdv"]
    assert ratio < 0.97  # the H100 measured the dP-first step faster at this tiling
    got = first.kernels[1].time_s / earlier.kernels[1].time_s
    assert got == pytest.approx(ratio, rel=0.03)
    assert [k.time_s for k in first.kernels[::2]] == [k.time_s for k in earlier.kernels[::2]]
    # without the dP-first entries: the earlier build's figures, and the Result says so
    cal = dataclasses.replace(
        arch.calibration,
        attention_steps=tuple(
            p for p in arch.calibration.attention_steps if "dpfirst" not in p.mode
        ),  # fmt: skip
        attention_blocks=tuple(
            p for p in arch.calibration.attention_blocks if "dpfirst" not in p.mode
        ),  # fmt: skip
    )
    bare = dataclasses.replace(arch, calibration=cal)
    assert time_bwd(s, t, "separate", device_rates(bare, "bf16")).plans[1].mode == "bwd-dkdv"
    cascade = load_cascade("attention-1pass-bwd-mh")
    mapper = get_mapper("gpu-bwd")(block_m=64, block_n=128, num_warps=8, num_stages=3,
                                   dq_mode="separate")  # fmt: skip
    sizes = dict(B=1, H=32, P=8192, M=8192, E=128, F=128)
    notes = [
        next(w for w in mapper.map(cascade, a, sizes).warnings if w.startswith("dK/dV step order"))
        for a in (arch, bare)
    ]
    assert "priced with that build's entries (bwd-dkdv-dpfirst)" in notes[0]
    assert "no entries of that build" in notes[1] and "(bwd-dkdv)" in notes[1]


def test_datasheet_gpus_name_no_calibration_entries() -> None:
    """The A100 (datasheet figures) prices the dK/dV kernel on the unit model: no note names
    calibration entries it does not have; the H100 (transferred) names the H200's."""
    cascade = load_cascade("attention-1pass-bwd-mh")
    sizes = dict(B=4, H=32, P=1024, M=1024, E=64, F=64)
    mapper = get_mapper("gpu-bwd")()
    a100 = mapper.map(cascade, load_arch("a100-sxm"), sizes)
    assert not any(w.startswith("dK/dV kernel:") for w in a100.warnings)
    h100 = mapper.map(cascade, load_arch("h100-sxm"), sizes)
    assert any(w.startswith("dK/dV kernel:") and "-w16" in w for w in h100.warnings)


@pytest.mark.slow
def test_the_atomic_datasheet_note_states_the_h200_file_without_calibration() -> None:
    """Measured / priced per dQ mode, the H200's backward file priced from the datasheet
    alone, as `ATOMIC_DATASHEET_RATIOS` states (the atomic pick is the one not to trust)."""
    from pathlib import Path

    from attnsim.mappers.gpu.backward_mapper import ATOMIC_DATASHEET_FILE, ATOMIC_DATASHEET_RATIOS
    from attnsim.reports.validation_kernels import predict_rows

    root = Path(__file__).resolve().parents[4]
    points = predict_rows([root / ATOMIC_DATASHEET_FILE], calibration="none")
    got = {}
    for mode in ("atomic", "separate"):
        ratios = [p.measured_ms / p.predicted_ms for p in points if p.config.endswith(mode)]
        assert len(ratios) >= 100
        got[mode] = (round(min(ratios), 2), round(max(ratios), 2))
    assert got == ATOMIC_DATASHEET_RATIOS, f"update ATOMIC_DATASHEET_RATIOS to {got}"


def test_an_uncalibrated_atomic_backward_says_its_price_is_not_to_be_trusted() -> None:
    cascade = load_cascade("attention-1pass-bwd-mh")
    sizes = dict(B=1, H=16, P=4096, M=4096, E=128, F=128)
    for arch, mode, noted in [("a100-sxm", "atomic", True), ("a100-sxm", "separate", False),
                              ("h200", "atomic", False)]:  # fmt: skip
        r = get_mapper("gpu-bwd")(dq_mode=mode).map(cascade, load_arch(arch), sizes)
        note = [w for w in r.warnings if w.startswith("dQ by fp32 atomics, priced from a")]
        assert bool(note) == noted, (arch, mode)
        if noted:
            assert "do not trust an atomic pick" in note[0] and "6.58x" in note[0]
