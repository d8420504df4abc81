"""GPU mappers: the 1-pass ping-pong schedule (kernels/gluon/attn_pingpong.py, sm_90 only)."""

from __future__ import annotations

import dataclasses
import functools

import pytest

from attnsim.archs.gpu import GpuArch
from attnsim.archs.load import load_arch
from attnsim.einsum_ir import load_cascade
from attnsim.einsum_ir.ir import Cascade
from attnsim.kernels.spec import AttnShape
from attnsim.mappers.gpu.kernels import kernel_plans, schedule_problem
from attnsim.mappers.gpu.model import Tiling, device_rates
from attnsim.mappers.gpu.tiling import (
    PINGPONG_CANDIDATES,
    GpuOptions,
    candidate_tilings,
    evaluate,
    pingpong_searched,
)
from attnsim.mappers.registry import get_mapper
from attnsim.mappers.result import Result
from attnsim.mappers.spatial.view import MappingError

SIZES = {"B": 4, "H": 16, "P": 4096, "M": 4096, "E": 128, "F": 128}
PP = Tiling(128, 128, 8, 3, "pingpong")
FIXED_PP = {"block_m": 128, "block_n": 128, "num_warps": 8, "num_stages": 3, "schedule": "pingpong"}


@functools.cache
def gpu(name: str) -> GpuArch:
    arch = load_arch(name)
    assert isinstance(arch, GpuArch)
    return arch


@functools.cache
def cascade_named(name: str) -> Cascade:
    return load_cascade(name)


def shape(**kw: object) -> AttnShape:
    base: dict[str, object] = dict(
        batch=4, heads=16, seq_q=4096, seq_k=4096, head_dim=128, value_dim=128, causal=False,
        dtype="bf16", elem_bytes=2,
    )  # fmt: skip
    base.update(kw)
    return AttnShape(**base)  # type: ignore[arg-type]


def run(mapper: str, arch: str, cascade: str = "attention-1pass-mh", **options: object) -> Result:
    sizes = dict(SIZES)
    sizes.update({k: v for k, v in options.items() if k in SIZES})  # type: ignore[misc]
    opts = {k: v for k, v in options.items() if k not in SIZES}
    result: Result = get_mapper(mapper)(**opts).map(cascade_named(cascade), gpu(arch), sizes)
    return result


def test_presets_carry_their_compute_capability() -> None:
    assert [gpu(a).compute_capability for a in ("h200", "h100-sxm", "a100-sxm")] == [9, 9, 8]


def test_tiling_label_and_candidates() -> None:
    assert str(Tiling(128, 64, 8, 3)) == "128x64/w8/s3"
    assert str(Tiling(128, 64, 8, 3, "pingpong")) == "128x64/w8/s3/pingpong"
    for causal in (False, True):
        plain = candidate_tilings(causal)
        assert {t.schedule for t in plain} == {"plain"}
        both = candidate_tilings(causal, pingpong=True)
        assert both[: len(plain)] == plain
        extra = both[len(plain) :]
        assert [(t.block_m, t.block_n, t.num_warps, t.num_stages) for t in extra] == list(
            PINGPONG_CANDIDATES
        )
        assert {t.schedule for t in extra} == {"pingpong"}


@pytest.mark.parametrize(
    ("family", "s", "t", "cc", "message"),
    [
        ("1pass", shape(), PP, 9.0, ""),
        ("1pass", shape(head_dim=64, value_dim=64, causal=True), PP, 9.0, ""),
        ("1pass", shape(), Tiling(128, 64, 8, 2, "pingpong"), 9.0, ""),
        ("2pass", shape(), Tiling(64, 64, 4, 3), 8.0, ""),  # plain: always runnable here
        ("1pass", shape(seq_q=4000), PP, 9.0, "needs seq_q (P) a multiple of 128"),
        (
            "1pass",
            shape(head_dim=256, value_dim=256),
            PP,
            9.0,
            "needs head dims E = F in (64, 128)",
        ),
        ("1pass", shape(head_dim=64, value_dim=128), PP, 9.0, "needs head dims E = F"),
        ("1pass", shape(dtype="fp32", elem_bytes=4), PP, 9.0, "needs fp16/bf16, got fp32"),
        ("2pass", shape(), PP, 9.0, "schedule 'pingpong' is a 1-pass kernel"),
        ("unfused", shape(), PP, 9.0, "schedule 'pingpong' is a 1-pass kernel"),
        ("1pass", shape(), PP, 8.0, "needs an sm_90 (Hopper) GPU (compute_capability 8"),
        ("1pass", shape(), PP, 10.0, "needs an sm_90 (Hopper) GPU"),
        ("1pass", shape(), PP, None, "(compute_capability not given)"),
        ("1pass", shape(), Tiling(64, 128, 4, 3, "pingpong"), 9.0, "block_m 128 with num_warps 8"),
        ("1pass", shape(), Tiling(128, 32, 8, 3, "pingpong"), 9.0, "block_n in (64, 128)"),
        ("1pass", shape(), Tiling(128, 64, 8, 4, "pingpong"), 9.0, "num_stages in (2, 3)"),
        ("1pass", shape(), Tiling(128, 64, 8, 3, "fast"), 9.0, "unknown schedule 'fast'"),
    ],
)
def test_schedule_problem_names_the_requirement(
    family: str, s: AttnShape, t: Tiling, cc: float | None, message: str
) -> None:
    problem = schedule_problem(family, s, t, cc)
    if message:
        assert message in problem, problem
    else:
        assert problem == ""


def test_pingpong_is_searched_only_where_it_runs() -> None:
    h200, a100 = gpu("h200"), gpu("a100-sxm")
    assert pingpong_searched("1pass", shape(), h200)
    assert pingpong_searched("1pass", shape(causal=True, head_dim=64, value_dim=64), h200)
    assert pingpong_searched("1pass", shape(), gpu("h100-sxm"))
    assert not pingpong_searched("1pass", shape(), a100)
    assert not pingpong_searched(
        "1pass", shape(), dataclasses.replace(h200, compute_capability=None)
    )
    assert not pingpong_searched("2pass", shape(), h200)
    assert not pingpong_searched("1pass", shape(seq_q=4000), h200)
    assert not pingpong_searched("1pass", shape(head_dim=256, value_dim=256), h200)


def test_h200_search_ranks_the_pingpong_candidates() -> None:
    r = run("gpu-1pass", "h200")
    options = dict(r.options)
    assert options["schedule"] in ("plain", "pingpong")
    assert list(options) == ["block_m", "block_n", "num_warps", "num_stages", "schedule", "dtype"]
    assert r.extra("tiling_candidates") == len(candidate_tilings(False, pingpong=True))
    plain_only = run("gpu-1pass", "h200", schedule="plain")
    assert plain_only.extra("tiling_candidates") == len(candidate_tilings(False))
    assert dict(plain_only.options)["schedule"] == "plain"
    assert r.latency_s <= plain_only.latency_s  # a larger search space is never slower
    # both ping-pong candidates are runnable on the H200 and modelled as such
    rates = device_rates(gpu("h200"), "bf16")
    for t in candidate_tilings(False, pingpong=True)[-len(PINGPONG_CANDIDATES) :]:
        e = evaluate("1pass", shape(), t, rates)
        assert e.problem == "" and e.kernels[0].name == "attn_fwd_pingpong", e.problem
    assert Result.from_json(r.to_json()) == r


def test_h200_search_of_the_pingpong_schedule_only() -> None:
    r = run("gpu-1pass", "h200", schedule="pingpong")
    options = dict(r.options)
    assert options["schedule"] == "pingpong"
    t = (options["block_m"], options["block_n"], options["num_warps"], options["num_stages"])
    assert t in PINGPONG_CANDIDATES
    assert r.extra("tiling_candidates") == len(PINGPONG_CANDIDATES)
    assert 0 < r.extra("kernel_attn_fwd_pingpong_us") <= r.latency_s * 1e6
    # a partial tiling the ping-pong kernel cannot take leaves the plain candidates only
    four = run("gpu-1pass", "h200", num_warps=4)
    assert dict(four.options)["schedule"] == "plain"
    assert four.extra("tiling_candidates") == len(
        [t for t in candidate_tilings(False) if t.num_warps == 4]
    )


def test_a100_search_has_no_pingpong_candidates() -> None:
    r = run("gpu-1pass", "a100-sxm")
    assert dict(r.options)["schedule"] == "plain"
    assert r.extra("tiling_candidates") == len(candidate_tilings(False))
    causal = run("gpu-1pass", "a100-sxm", cascade="attention-1pass-mh-causal")
    assert causal.extra("tiling_candidates") == len(candidate_tilings(True))


def test_fixed_pingpong_on_a100_is_modelled_with_a_warning() -> None:
    r = run("gpu-1pass", "a100-sxm", **FIXED_PP)
    assert dict(r.options)["schedule"] == "pingpong"
    assert r.extra("tiling_rank") == 0  # not a runnable candidate
    assert any(
        w.startswith("tiling 128x128/w8/s3/pingpong cannot run as modelled: ")
        and "needs an sm_90 (Hopper) GPU" in w
        for w in r.warnings
    ), r.warnings
    with pytest.raises(MappingError, match="no candidate tiling fits a100-sxm: .*sm_90"):
        run("gpu-1pass", "a100-sxm", schedule="pingpong")


def test_fixed_pingpong_on_h200_models_its_own_kernel() -> None:
    r = run("gpu-1pass", "h200", rank_candidates=False, **FIXED_PP)
    plain = run("gpu-1pass", "h200", rank_candidates=False, **{**FIXED_PP, "schedule": "plain"})
    assert not any("cannot run" in w for w in r.warnings)
    assert [e.einsum for e in r.per_einsum] == ["attn_fwd_pingpong"]
    assert [e.einsum for e in plain.per_einsum] == ["attn_fwd"]
    assert r.latency_s != plain.latency_s
    assert r.extra("registers_per_thread") == 240  # setmaxnreg of the consumer warp groups
    # Q, three K/V slots (bf16, hd128, BLOCK_N 128) and four mbarriers
    assert r.extra("smem_bytes_per_block") == 2 * (128 * 128 + 3 * 128 * 256) + 8 * 4
    assert r.dram_traffic_bytes == plain.dram_traffic_bytes  # same data moved
    assert dict(r.options)["schedule"] == "pingpong"


def test_kernel_plans_refuse_pingpong_for_other_families() -> None:
    (plan,) = kernel_plans("1pass", shape(), PP, 132, 50 * 2**20)
    assert plan.name == "attn_fwd_pingpong" and plan.mode == "pingpong"
    for family in ("2pass", "unfused"):
        with pytest.raises(ValueError, match=f"'pingpong' is a 1-pass kernel, not {family}"):
            kernel_plans(family, shape(), PP, 132, 50 * 2**20)


def test_schedule_option_is_checked() -> None:
    with pytest.raises(
        MappingError, match=r"schedule: expected one of '', 'plain', 'pingpong', got 'bogus'"
    ):
        GpuOptions(schedule="bogus")
    with pytest.raises(MappingError, match="schedule: expected one of"):
        get_mapper("gpu-1pass")(schedule="PINGPONG")
    assert GpuOptions().schedule == "" and GpuOptions(**FIXED_PP).fixed == PP
    assert GpuOptions(block_m=128, block_n=128, num_warps=8, num_stages=3).fixed == Tiling(
        128, 128, 8, 3, "plain"
    )


@pytest.mark.parametrize("mapper", ["gpu-2pass", "gpu-unfused"])
def test_other_families_refuse_the_pingpong_schedule(mapper: str) -> None:
    cascade = {"gpu-2pass": "attention-2pass-tilemax-mh", "gpu-unfused": "attention-3pass-mh"}
    with pytest.raises(MappingError, match=f"{mapper}: schedule 'pingpong' is a 1-pass kernel"):
        run(mapper, "h200", cascade=cascade[mapper], schedule="pingpong")
    with pytest.raises(MappingError, match="1-pass kernel"):
        run(mapper, "h200", cascade=cascade[mapper], **FIXED_PP)
    plain_tiling = {**FIXED_PP, "schedule": "plain", "rank_candidates": False}
    plain = run(mapper, "h200", cascade=cascade[mapper], **plain_tiling)
    assert dict(plain.options)["schedule"] == "plain"


@pytest.mark.parametrize(
    "options",
    [
        {"schedule": "pingpong", "num_warps": 4},  # the kernel has 8 consumer warps
        {"schedule": "pingpong", "num_stages": 2},  # the kernel takes 2, the search has 3 only
    ],
    ids=["warps4", "stages2"],
)
def test_options_that_exclude_every_candidate_say_so(options: dict[str, object]) -> None:
    with pytest.raises(MappingError, match="no candidate tiling"):
        run("gpu-1pass", "h200", **options)


def test_uncalibrated_pingpong_step_is_the_busiest_unit() -> None:
    """Without ping-pong calibration entries the warp groups' turns hide the softmax chain."""
    from attnsim.mappers.gpu.model import _block_times, step_times

    arch = gpu("h200")
    assert arch.calibration is not None
    kept = tuple(p for p in arch.calibration.attention_steps if p.mode != "pingpong")
    blocks = tuple(p for p in arch.calibration.attention_blocks if p.mode != "pingpong")
    cal = dataclasses.replace(arch.calibration, attention_steps=kept, attention_blocks=blocks)
    rates = device_rates(dataclasses.replace(arch, calibration=cal), "bf16")
    s = shape()
    (pp,) = kernel_plans("1pass", s, PP, 132, arch.l2_bytes)
    st = step_times(pp.step, rates, 8)
    busiest = max(st.tensor_s, st.sfu_s, st.cuda_core_s)
    assert busiest < st.tensor_s + st.sfu_s + st.cuda_core_s  # there is a chain to hide
    # one block of 10 steps minus one of 0 steps: ten rounds at the busiest unit's time
    one = dataclasses.replace(pp, groups=(dataclasses.replace(pp.groups[0], steps=10),))
    zero = dataclasses.replace(pp, groups=(dataclasses.replace(pp.groups[0], steps=0),))
    (t10,) = _block_times(one, rates, 1).values()
    (t0,) = _block_times(zero, rates, 1).values()
    assert (t10 - t0) / 10 == pytest.approx(busiest, rel=1e-9)


def test_long_head_dim_128_calls_say_what_sustained_load_did_to_them() -> None:
    """Where the calibration has no power cap (the datasheet A100 here), 1-pass calls of a
    millisecond or more at head dim 128 carry the sustained-load warning (README: their median
    ran slower than priced on the H200 and H100); shorter calls, head dim 64 and other
    families do not. The H200 prices the cap instead (test_power_cap.py)."""

    def flagged(r: Result) -> bool:
        return any("power-capped clock" in w for w in r.warnings)

    long = run("gpu-1pass", "a100-sxm", B=1, H=16, P=16384, M=16384)
    assert long.latency_s >= 1e-3 and flagged(long)
    assert f"a {long.latency_s * 1e3:.1f} ms 1-pass call" in " ".join(long.warnings)
    short = run("gpu-1pass", "a100-sxm", B=1, H=1, P=1024, M=1024)
    assert short.latency_s < 1e-3 and not flagged(short)
    d64 = run("gpu-1pass", "a100-sxm", B=1, H=16, P=32768, M=32768, E=64, F=64)
    assert d64.latency_s >= 1e-3 and not flagged(d64)
    two = run("gpu-2pass", "a100-sxm", "attention-2pass-tilemax-mh", B=1, H=16, P=16384, M=16384)
    assert two.latency_s >= 1e-3 and not flagged(two)
    capped = run("gpu-1pass", "h200", B=1, H=16, P=16384, M=16384, **FIXED_PP)
    assert not flagged(capped) and any(w.startswith("power cap:") for w in capped.warnings)


@pytest.mark.parametrize("device, folder", [("H100", "h100"), ("H200", "regimes")])
def test_the_sustained_load_figures_are_the_probes(device: str, folder: str) -> None:
    """SUSTAINED_LOAD's clock range and slowdown per GPU come from its committed sustained
    probe run: per head-dim-128 case of 4 or more heads, the median clock of the last third
    of its samples and its last fifth of calls over its first fifth."""
    import ast
    import csv
    import datetime
    import re
    import statistics
    from pathlib import Path

    from attnsim.mappers.gpu.tiling import SUSTAINED_LOAD

    where = Path(__file__).resolve().parents[4] / "kernels" / "measurements" / folder
    run = f"{device.lower()}-2026-12-06"
    cases = [ast.literal_eval(line) for line in (where / f"sustained-{run}.log")
             .read_text().splitlines() if line.startswith("{")]  # fmt: skip
    with (where / f"sustained-calls-{run}.csv").open() as fh:
        calls = list(csv.DictReader(fh))
    with (where / f"sustained-smi-{run}.csv").open() as fh:
        smi = [[c.strip() for c in r] for r in list(csv.reader(fh))[1:]]

    def t(s: str) -> datetime.datetime:
        return datetime.datetime.strptime(s, "%Y/%m/%d %H:%M:%S.%f")

    clocks, slow = [], []
    for c in cases:
        if c["head_dim"] != 128 or c["heads"] * c["batch"] < 4:
            continue
        a, b = t(c["wall_start"]), t(c["wall_end"])
        mhz = [int(r[1].split()[0]) for r in smi if a <= t(r[0]) <= b]
        clocks.append(statistics.median(mhz[-(len(mhz) // 3) :]))
        ms = [float(r["ms"]) for r in calls if r["case"] == c["case"]]
        k = len(ms) // 5
        slow.append(statistics.median(ms[-k:]) / statistics.median(ms[:k]) - 1)
    assert len(clocks) >= 7
    text = SUSTAINED_LOAD.rsplit(f"on the {device}", 1)[1]
    lo, hi = (int(x) for x in re.findall(r"from 1980 to (\d+)-(\d+) MHz", text)[0])
    assert (min(clocks), max(clocks)) == (lo, hi)
    lo_pct, hi_pct = (int(x) for x in re.findall(r"calls (\d+)-(\d+)% slower", text)[0])
    assert (round(100 * min(slow)), round(100 * max(slow))) == (lo_pct, hi_pct)


@pytest.mark.parametrize(
    ("cascade", "extra", "message"),
    [
        ("attention-1pass-mh-window", {"W": 1024}, "dense or causal attention only"),
        ("attention-1pass-mh-sinks-window", {"W": 1024, "S": 4}, "dense or causal attention only"),
        ("attention-1pass-mh-causal-alibi", {}, "no softcap or position bias"),
        ("attention-1pass-mh-softcap", {"C": 50}, "no softcap or position bias"),
        ("attention-1pass-mh-sigmoid", {}, ""),
        ("attention-1pass-mh-causal-sigmoid", {}, ""),
    ],
)
def test_the_search_takes_the_pingpong_kernel_only_for_what_it_runs(
    cascade: str, extra: dict[str, int], message: str
) -> None:
    """Windows, sinks, ALiBi and softcap run on the plain kernel only: the search leaves the
    ping-pong kernel out, and a fixed ping-pong tiling is modelled with a warning that names
    why it cannot run (it once chose a ping-pong "window kernel" no code implements)."""
    sizes = dict(B=1, H=8, M=4096, P=4096, E=128, F=128, **extra)
    searched = get_mapper("gpu-1pass")().map(cascade_named(cascade), gpu("h200"), sizes)
    candidates = dict(searched.extras)["tiling_candidates"]
    fixed = get_mapper("gpu-1pass")(
        schedule="pingpong", block_m=128, block_n=128, num_warps=8, num_stages=3,
        rank_candidates=False,
    ).map(cascade_named(cascade), gpu("h200"), sizes)  # fmt: skip
    cannot = [w for w in fixed.warnings if "cannot run as modelled" in w]
    plain = len(candidate_tilings(masked="causal" in cascade or "window" in cascade))
    if message:
        assert len(cannot) == 1 and message in cannot[0], cannot
        assert candidates == plain
    else:
        assert not cannot
        assert candidates == plain + len(PINGPONG_CANDIDATES)
