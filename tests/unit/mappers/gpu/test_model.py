"""GPU mappers: first-principles checks of the threadblock model and the tiling search."""

from __future__ import annotations

import math

import pytest

from attnsim.archs.gpu import GpuArch
from attnsim.archs.load import load_arch
from attnsim.einsum_ir import load_cascade
from attnsim.kernels.spec import AttnShape
from attnsim.mappers.gpu.kernels import kernel_plans
from attnsim.mappers.gpu.model import Tiling, device_rates, residency
from attnsim.mappers.registry import get_mapper
from attnsim.mappers.result import Result
from attnsim.mappers.spatial.view import MappingError

SIZES = {"B": 4, "H": 16, "P": 4096, "M": 4096, "E": 128, "F": 128}
TILING = {"block_m": 128, "block_n": 64, "num_warps": 8, "num_stages": 3}


def h200() -> GpuArch:
    arch = load_arch("h200")
    assert isinstance(arch, GpuArch)
    return arch


def run(mapper: str, cascade: str = "attention-1pass-mh", **options: object) -> Result:
    sizes = dict(SIZES)
    sizes.update({k: v for k, v in options.items() if k in SIZES})  # type: ignore[misc]
    opts = {k: v for k, v in options.items() if k not in SIZES}
    result: Result = get_mapper(mapper)(**opts).map(load_cascade(cascade), h200(), sizes)
    return result


@pytest.mark.parametrize("mapper", ["gpu-1pass", "gpu-2pass", "gpu-unfused"])
def test_result_is_physical(mapper: str) -> None:
    r = run(mapper, **TILING)
    rates = device_rates(h200(), "bf16")
    assert r.latency_s >= r.flops / rates.peak_matmul_flops_per_s
    assert r.latency_s >= r.dram_traffic_bytes / rates.hbm_read_bytes_per_s * 0.9
    compulsory = 2 * 4 * 16 * 4096 * 128 * 4  # Q, K, V read and O written, bf16
    assert r.dram_traffic_bytes >= compulsory
    assert r.latency_cycles >= max(r.compute_cycles, r.memory_cycles)
    assert r.bound in (
        "tensor-core",
        "sfu",
        "cuda-core",
        "l2",
        "hbm",
        "launch",
        "occupancy/tail",
        "host launch",
        "memory access",
    )
    assert 0 < r.extra("achieved_tflops") < 990
    assert Result.from_json(r.to_json()) == r
    assert any("overlap" in w or "hidden" in w for w in r.warnings)


def test_fused_beats_two_pass_beats_unfused_at_long_sequences() -> None:
    times = [run(m, **TILING).latency_s for m in ("gpu-1pass", "gpu-2pass", "gpu-unfused")]
    assert times[0] < times[1] < times[2]


def test_causal_comes_from_the_cascade_and_skips_tiles() -> None:
    full = run("gpu-1pass", **TILING)
    causal = run("gpu-1pass", "attention-1pass-mh-causal", **TILING)
    assert causal.extra("causal") == 1.0 and full.extra("causal") == 0.0
    # FLOPs of the exact visible pairs: the triangle with its diagonal, S (S + 1) / 2 per head
    s, b, h, d = SIZES["P"], SIZES["B"], SIZES["H"], SIZES["E"]
    assert causal.flops == 4 * b * h * d * s * (s + 1) // 2
    assert causal.flops == pytest.approx(full.flops / 2, rel=1 / s)
    # half the tiles plus diagonal masking: between 45% and 70% of the full time
    assert 0.45 < causal.latency_s / full.latency_s < 0.7


def test_causal_tile_counts() -> None:
    shape = AttnShape(1, 1, 512, 512, 64, 64, True, "bf16", 2)
    (plan,) = kernel_plans("1pass", shape, Tiling(128, 64, 4, 3), 132, 50 * 2**20)
    steps = [(g.steps, g.masked) for g in plan.groups]
    # full tiles below, 2 diagonal tiles each; the kernel runs the longest query tiles first
    assert steps == [(6, 2), (4, 2), (2, 2), (0, 2)]


def test_time_scales_with_work_in_the_many_wave_regime() -> None:
    small = run("gpu-1pass", **TILING, B=8)
    big = run("gpu-1pass", **TILING, B=16)
    assert big.latency_s / small.latency_s == pytest.approx(2.0, rel=0.05)


def test_underfilled_gpu_is_occupancy_bound() -> None:
    r = run("gpu-1pass", **TILING, B=1, H=1, P=1024, M=65536)
    assert r.extra("grid_blocks") == 8
    assert r.bound == "occupancy/tail"


def test_tiny_problem_is_dominated_by_fixed_costs() -> None:
    r = run("gpu-1pass", **TILING, B=1, H=1, P=16, M=16)
    rates = device_rates(h200(), "bf16")
    host = rates.host_call_s("1pass", 1) - rates.bench_head_start_s
    # the GPU's own fixed costs (launch) or the host's launcher time less do_bench's head start
    assert r.latency_s >= max(rates.launch_s, host)
    assert r.bound in ("launch", "occupancy/tail", "host launch")
    big = run("gpu-1pass", **TILING, B=1, H=1, P=64, M=64)
    assert big.latency_s == pytest.approx(r.latency_s, rel=0.5)  # 16x the work, ~same time


def test_host_bound_calls_follow_the_launcher_time() -> None:
    from dataclasses import replace

    from attnsim.mappers.gpu.model import call_time
    from attnsim.mappers.gpu.problem import attention_shape
    from attnsim.mappers.gpu.tiling import evaluate

    arch = h200()
    assert arch.calibration is not None
    cal = replace(arch.calibration, host_call_s=(("2pass", 200e-6),), bench_head_start_s=50e-6)
    rates = device_rates(replace(arch, calibration=cal), "bf16")
    shape = attention_shape(load_cascade("attention-1pass-mh"), {**SIZES, "P": 64, "M": 64}, "bf16")
    ev = evaluate("2pass", shape, Tiling(64, 64, 4, 3), rates)
    total, host_bound = call_time(ev.kernels, rates, "2pass")
    assert host_bound and ev.host_bound
    # the last kernel is submitted 150 us into the GPU's clock and then runs
    assert total == pytest.approx(150e-6 + ev.kernels[-1].time_s)
    big = replace(rates, bench_head_start_s=1.0)  # host always ahead: GPU time only
    gpu, bound = call_time(ev.kernels, big, "2pass")
    floor = rates.bench_floor_s - rates.launch_s  # do_bench's floor, once per call
    assert not bound and gpu == pytest.approx(floor + sum(k.time_s for k in ev.kernels))


def test_residency_limits() -> None:
    arch = h200()
    res = residency(arch, smem_bytes=100 * 1024, registers_per_thread=64, warps=4)
    assert (res.blocks_per_sm, res.limiter, res.problem) == (2, "shared memory", "")
    res = residency(arch, smem_bytes=1024, registers_per_thread=128, warps=8)
    assert (res.blocks_per_sm, res.limiter) == (2, "registers")
    assert "spill" in residency(arch, 1024, 300, 4).problem
    assert "shared memory per block" in residency(arch, 300 * 1024, 64, 4).problem


def test_search_ranks_valid_tilings_and_records_statistics() -> None:
    r = run("gpu-1pass")
    assert r.extra("tiling_rank") == 1
    assert r.extra("tiling_valid") <= r.extra("tiling_candidates")
    assert r.extra("tiling_best_us") == pytest.approx(r.latency_s * 1e6)
    assert r.extra("tiling_best_us") <= r.extra("tiling_median_us") <= r.extra("tiling_worst_us")
    fixed = run("gpu-1pass", **TILING)
    assert fixed.extra("tiling_rank") >= 1 and fixed.latency_s >= r.latency_s


def test_spilling_tiling_is_flagged_and_not_picked() -> None:
    r = run("gpu-1pass", block_m=128, block_n=128, num_warps=4, num_stages=3)
    assert r.extra("tiling_rank") == 0
    assert any("would spill" in w for w in r.warnings)
    searched = run("gpu-1pass", num_warps=4)
    assert dict(searched.options)["num_warps"] == 4
    assert searched.extra("registers_per_thread") <= 255


def test_more_hbm_bandwidth_helps_only_memory_bound_kernels() -> None:
    arch = h200()
    import dataclasses

    assert arch.calibration is not None
    faster = dataclasses.replace(
        arch,
        calibration=dataclasses.replace(
            arch.calibration,
            hbm_copy_bandwidth_bytes_per_s=2
            * (arch.calibration.hbm_copy_bandwidth_bytes_per_s or 0),
            hbm_read_bandwidth_bytes_per_s=2
            * (arch.calibration.hbm_read_bandwidth_bytes_per_s or 0),
        ),
    )
    cascade = load_cascade("attention-1pass-mh")
    gains = {}
    for mapper in ("gpu-unfused", "gpu-1pass"):
        m = get_mapper(mapper)(**TILING)
        base, fast = m.map(cascade, arch, SIZES), m.map(cascade, faster, SIZES)
        assert fast.latency_s <= base.latency_s
        gains[mapper] = base.latency_s / fast.latency_s
    assert gains["gpu-1pass"] < 1.01 < gains["gpu-unfused"]


def test_refusals_say_why() -> None:
    cascade = load_cascade("attention-1pass-mh")
    with pytest.raises(MappingError, match="needs a GPU architecture"):
        get_mapper("gpu-1pass")().map(cascade, load_arch("fusemax"), SIZES)
    with pytest.raises(MappingError, match="dtype"):
        get_mapper("gpu-1pass")(dtype="int8")
    with pytest.raises(MappingError, match="power of two"):
        get_mapper("gpu-1pass")(block_m=96)


def test_single_head_cascade_defaults_batch_and_heads() -> None:
    r = get_mapper("gpu-1pass")(**TILING).map(
        load_cascade("attention-1pass"), h200(), {"P": 4096, "M": 4096, "E": 64, "F": 64}
    )
    assert r.flops == 4 * 4096 * 4096 * 64
    assert math.isfinite(r.latency_s)


def test_measured_chain_step_sets_the_fused_step_time() -> None:
    from dataclasses import replace

    from attnsim.archs.calibration import StepPoint
    from attnsim.mappers.gpu.problem import attention_shape
    from attnsim.mappers.gpu.tiling import evaluate

    arch = h200()
    assert arch.calibration is not None
    shape = attention_shape(load_cascade("attention-1pass-mh"), SIZES, "bf16")
    tiling = Tiling(128, 64, 8, 3)
    times = []
    for step_us in (2.0, 4.0):
        point = StepPoint("online", "bf16", 128, 128, 64, 8, 3, 1, step_us * 1e-6)
        # without the shared-K/V later-wave entries: their step is a ratio to the real
        # chain step, which this synthetic one replaces
        one_tile = tuple(b for b in arch.calibration.attention_blocks if b.q_tiles == 1)
        cal = replace(
            arch.calibration, attention_steps=(point,), host_call_s=(), attention_blocks=one_tile
        )
        rates = device_rates(replace(arch, calibration=cal), "bf16")
        (k,) = evaluate("1pass", shape, tiling, rates).kernels
        times.append(k.scheduled_s)
        steps_per_sm = 4 * 16 * (4096 // 128) * (4096 // 64) / arch.sm_count
        assert k.scheduled_s >= steps_per_sm * step_us * 1e-6
    assert times[1] == pytest.approx(2 * times[0], rel=0.05)


def test_measured_unfused_kernels_scale_by_their_work() -> None:
    """Unfused kernels timed alone on a calibration shape give a rate per unit of work."""
    from dataclasses import replace

    from attnsim.archs.calibration import UnfusedPoint
    from attnsim.mappers.gpu.tiling import evaluate

    arch = h200()
    assert arch.calibration is not None
    tiling = Tiling(128, 64, 4, 3)
    points = tuple(
        UnfusedPoint(
            name, causal, d, *(tiling_ if name != "softmax" else (0, 0, 0, 0)), 24, 4096, t
        )
        for name, t in (("qk", 400e-6), ("softmax", 500e-6), ("pv", 600e-6))
        for causal in (False, True)
        for d in ((64,) if name == "softmax" else (64, 128))
        for tiling_ in ((128, 64, 4, 3),)
    )
    cal = replace(arch.calibration, unfused_kernels=points, host_call_s=())
    rates = device_rates(replace(arch, calibration=cal), "bf16")

    def kernels(bh: int, seq: int, causal: bool) -> tuple[float, ...]:
        s = AttnShape(1, bh, seq, seq, 64, 64, causal, "bf16", 2)
        return tuple(k.scheduled_s for k in evaluate("unfused", s, tiling, rates).kernels)

    # the calibration shape itself reproduces the measured times
    assert kernels(24, 4096, False) == pytest.approx((400e-6, 500e-6, 600e-6), rel=1e-6)
    assert kernels(24, 4096, True) == pytest.approx((400e-6, 500e-6, 600e-6), rel=1e-6)
    # twice the heads: twice the work of every kernel, over the grid's wave share (QK^T and
    # P.V, `unfused_waves`; the calibration shape's own share cancels); each kernel's two
    # dependent HBM round trips (first load, last store) are paid once per launch
    from attnsim.mappers.gpu.kernels import kernel_plans

    def shares(bh: int) -> list[float]:
        s = AttnShape(1, bh, 4096, 4096, 64, 64, False, "bf16", 2)
        plans = kernel_plans("unfused", s, tiling, arch.sm_count, arch.l2_bytes, cal,
                             arch.sm_count, arch.hbm_latency_s)  # fmt: skip
        return [p.measured_share for p in plans]

    trips = 2 * arch.hbm_latency_s
    ratio = [a / b for a, b in zip(shares(24), shares(48), strict=True)]
    assert ratio[0] != 1.0 and ratio[1] == 1.0  # the softmax has no share
    twice = tuple(
        2 * (t - trips) * r + trips for t, r in zip((400e-6, 500e-6, 600e-6), ratio, strict=True)
    )
    assert kernels(48, 4096, False) == pytest.approx(twice, rel=1e-6)
    # one head: the longest block (one SM's share) bounds the P.V kernel
    one = kernels(1, 4096, False)
    assert one[2] >= 600e-6 / 24 * 0.99


def test_blocks_left_alone_on_an_sm_run_faster() -> None:
    from attnsim.mappers.gpu.model import _block_times, time_kernel

    rates = device_rates(h200(), "bf16")
    shape = AttnShape(1, 4, 4096, 4096, 64, 64, True, "bf16", 2)
    (plan,) = kernel_plans("1pass", shape, Tiling(64, 64, 4, 3), 660, 50 * 2**20)
    kt = time_kernel(plan, rates)
    # one partial wave of unequal causal blocks: shorter than the longest block at full
    # residency for the whole kernel, never shorter than that block alone on its SM
    longest_shared = max(_block_times(plan, rates, kt.resident_per_sm).values())
    longest_alone = max(_block_times(plan, rates, 1).values())
    assert longest_alone <= kt.scheduled_s < longest_shared


@pytest.mark.parametrize(
    "sq,sk,block,causal",
    [(100, 100, 16, True), (37, 50, 16, True), (64, 30, 8, True), (9000, 9000, 8192, True),
     (40, 40, 64, True), (100, 70, 16, False)],
)  # fmt: skip
def test_softmax_work_counts_block_steps(sq: int, sk: int, block: int, causal: bool) -> None:
    """A softmax row steps through ceil(visible keys / BLOCK) blocks (brute-force count)."""
    import math

    from attnsim.mappers.gpu.unfused_rows import softmax_lane_blocks as _softmax_lane_blocks

    s = AttnShape(1, 1, sq, sk, 16, 16, causal, "bf16", 2)
    visible = [min(sk, i + 1) if causal else sk for i in range(sq)]
    assert _softmax_lane_blocks(s, block) == sum(math.ceil(n / block) for n in visible)


_RAGGED_TILING = Tiling(128, 64, 4, 3)


def _unfused_entries(seq: int, scale: float):  # type: ignore[no-untyped-def]
    """Synthetic unfused calibration entries at one seq (QK^T, softmax, P.V), times x scale."""
    from attnsim.archs.calibration import UnfusedPoint

    return tuple(
        UnfusedPoint(name, False, d, *t, 24, seq, scale * base)
        for name, base in (("qk", 400e-6), ("softmax", 500e-6), ("pv", 600e-6))
        for d, t in (((0, (0, 0, 0, 0)),) if name == "softmax" else ((64, (128, 64, 4, 3)),))
    )


def _with_entries(points):  # type: ignore[no-untyped-def]
    from dataclasses import replace

    arch = h200()
    assert arch.calibration is not None
    cal = replace(arch.calibration, unfused_kernels=points, host_call_s=())
    return replace(arch, calibration=cal)


def _unfused_times(points, seq: int) -> tuple[float, ...]:  # type: ignore[no-untyped-def]
    """Each unfused kernel's scheduled time at 1 x 24 x seq, head dim 64, with `points`."""
    from attnsim.mappers.gpu.tiling import evaluate

    rates = device_rates(_with_entries(points), "bf16")
    s = AttnShape(1, 24, seq, seq, 64, 64, False, "bf16", 2)
    return tuple(k.scheduled_s for k in evaluate("unfused", s, _RAGGED_TILING, rates).kernels)


def _unfused_sources(points, seq: int) -> set[str]:  # type: ignore[no-untyped-def]
    """The plans' `measured_from` at 1 x 24 x seq, head dim 64, with `points`."""
    cal = _with_entries(points).calibration
    s = AttnShape(1, 24, seq, seq, 64, 64, False, "bf16", 2)
    plans = kernel_plans("unfused", s, _RAGGED_TILING, 132, 50 * 2**20, cal, 132)
    return {p.measured_from for p in plans}


def test_ragged_rows_take_the_ragged_calibration_entries() -> None:
    """seq_k % 16 != 0 compiles the unfused kernels without vector access: own entries."""
    entries, times = _unfused_entries, _unfused_times
    both = entries(4096, 1.0) + entries(4088, 3.0)
    # each calibration shape reproduces its own entries: the class decides the rate
    assert times(both, 4096) == pytest.approx((400e-6, 500e-6, 600e-6), rel=1e-6)
    assert times(both, 4088) == pytest.approx((1200e-6, 1500e-6, 1800e-6), rel=1e-6)
    # a ragged shape near an aligned one is far slower with ragged entries only...
    ragged_rate = times(both, 4072)
    assert all(r > 2.5 * a for r, a in zip(ragged_rate, times(both, 4080), strict=True))
    # ...and without ragged entries it falls back to the aligned ones (and says so)
    assert times(entries(4096, 1.0), 4088) == pytest.approx(times(both, 4096), rel=0.01)
    assert all("none calibrated" in n for n in _unfused_sources(entries(4096, 1.0), 4088))


def test_ragged_rows_take_the_entries_of_their_own_row_alignment() -> None:
    """Ragged entries of 16-, 4- and 2-byte aligned rows (bf16 S = 4088, 4090, 4089): a call
    takes those of its own rows' alignment; with 16-byte entries only, 4- and 2-byte rows
    take them and the plans say so."""
    from attnsim.mappers.gpu.unfused_rates import row_alignment_bytes

    entries, times, sources = _unfused_entries, _unfused_times, _unfused_sources
    assert [row_alignment_bytes(n, 2) for n in (4096, 4088, 4090, 4089, 2654, 7787)] == [
        16, 16, 4, 2, 4, 2,
    ]  # fmt: skip
    assert row_alignment_bytes(7787, 4) == 4
    every = entries(4096, 1.0) + entries(4088, 2.0) + entries(4090, 3.0) + entries(4089, 4.0)
    sixteen = entries(4096, 1.0) + entries(4088, 2.0)
    # each calibration shape reproduces its own entries: the row alignment decides the rate
    for seq, scale in ((4088, 2.0), (4090, 3.0), (4089, 4.0)):
        want = (400e-6 * scale, 500e-6 * scale, 600e-6 * scale)
        assert times(every, seq) == pytest.approx(want, rel=1e-6), seq
        own = f"rows {row_alignment_bytes(seq, 2)}-byte aligned, as this call's"
        assert all(own in n for n in sources(every, seq))
    # next to a 16-byte neighbour (4088's entries), 4-byte rows take 4090's (1.5x the time
    # less memory) and 2-byte rows 4089's (2x)
    for n16, n in ((2648, 2654), (4072, 4074), (7792, 7787)):
        pairs = zip(times(every, n16), times(every, n), strict=True)
        assert all(b > 1.4 * a for a, b in pairs), n
    # 16-byte entries only: the less aligned rows take them, named in the plans
    assert times(sixteen, 4090) == pytest.approx(times(sixteen, 4088), rel=0.01)
    four = sources(sixteen, 2654)
    assert all("score rows start 4-byte aligned, the entries' 16-byte" in n for n in four)
    assert all("start 2-byte aligned" in n for n in sources(sixteen, 7787))
    assert all("start" not in n for n in sources(sixteen, 4096))
