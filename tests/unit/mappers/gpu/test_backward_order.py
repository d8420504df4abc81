"""The causal backward's launch order (head groups) in the GPU model, the H100 and the H200.

`kernels/measurements/h100/bwd-order-h100-2026-12-06.csv` and
`kernels/measurements/bwd/bwd-order-h200-2026-12-06.csv` (`benchmarks/bwd_order_probe.py`)
time each causal shape of the backward suites at head groups 1 (head-major, the build
before), 4, 8 and 16 in one run each. The model's ordering rule (`mappers.gpu.backward
._per_tile_groups`) was written, and its H200 predictions made, before either run; nothing is
fitted on them. The H100 is predicted with the H200's calibration carried over.
"""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

import pytest

from attnsim.archs.load import load_arch
from attnsim.kernels.spec import BWD_HEAD_GROUP, AttnShape
from attnsim.mappers.gpu.backward import bwd_plans, launch_group, time_bwd
from attnsim.mappers.gpu.rates import Tiling, device_rates
from attnsim.reports.validation_bwd import bwd_host

MEASURED = Path(__file__).resolve().parents[4] / "kernels" / "measurements"
# (order probe, a full probe of that machine and day for its host figures, preset)
RUNS = {
    "h100": (MEASURED / "h100" / "bwd-order-h100-2026-12-06.csv",
             MEASURED / "h100" / "bwd-h100-2026-12-06-planned.csv", "h100-sxm"),
    "h200": (MEASURED / "bwd" / "bwd-order-h200-2026-12-06.csv",
             MEASURED / "bwd" / "bwd-h200-2026-12-06-groups.csv", "h200"),
}  # fmt: skip
T = Tiling(64, 128, 8, 3)


def _shape(batch: int, heads: int, seq: int, causal: bool = True, group: int = 1) -> AttnShape:
    return AttnShape(batch, heads, seq, seq, 128, 128, causal, "bf16", 2, kv_group=group)


def _programs(plan) -> list[tuple[int, int]]:  # type: ignore[no-untyped-def]
    """(steps, masked steps) of every program, in launch order."""
    return [(g.steps, g.masked) for g in plan.groups for _ in range(g.count)]


@pytest.mark.parametrize("group", [1, 3, 8])
def test_the_order_permutes_the_same_programs(group: int) -> None:
    s = _shape(2, 5, 1024)
    base = {p.name: _programs(p) for p in bwd_plans(s, T, "separate", group=1)}
    for p in bwd_plans(s, T, "separate", group=group):
        got = _programs(p)
        assert sorted(got) == sorted(base[p.name])
        if p.name == "dkdv" and group > 1:  # the group's longest tiles lead
            first = max(base[p.name])
            assert got[: min(group, 10)] == [first] * min(group, 10)


def test_causal_calls_default_to_the_kernels_group_and_dense_ones_ignore_it() -> None:
    assert launch_group(_shape(1, 8, 512)) == BWD_HEAD_GROUP
    assert launch_group(_shape(1, 8, 512, causal=False)) == 1
    assert launch_group(_shape(1, 8, 512), 1) == 1
    with pytest.raises(ValueError, match="head_group must be >= 1"):
        launch_group(_shape(1, 8, 512), 0)
    rates = device_rates(load_arch("h200"), "bf16")
    dense = _shape(1, 32, 4096, causal=False)
    one, eight = (time_bwd(dense, T, "separate", rates, g) for g in (1, 8))
    assert one.time_s == eight.time_s and (one.head_group, eight.head_group) == (1, 8)
    causal = _shape(1, 32, 4096)
    grouped = time_bwd(causal, T, "separate", rates).time_s
    assert grouped < 0.95 * time_bwd(causal, T, "separate", rates, 1).time_s


@pytest.mark.parametrize(
    ("device", "gain_mean", "gain_max", "error_mean", "error_max"),
    [
        # H100: group 8 is 0.86-1.02x of head-major, 0.94x on average; the model's ratio
        # -2.0% on average, worst 6.8%
        ("h100", 0.96, 1.03, 0.03, 0.08),
        # H200: 0.86-1.00x, 0.95x on average; the model's ratio -1.2%, worst 6.4%
        ("h200", 0.96, 1.01, 0.02, 0.07),
    ],
)  # fmt: skip
def test_the_model_predicts_the_measured_gain_of_head_groups(
    device: str, gain_mean: float, gain_max: float, error_mean: float, error_max: float
) -> None:
    order, probe, preset = RUNS[device]
    rows = [r for r in csv.DictReader(order.open()) if r["family"] == "triton-bwd"]
    assert rows and all(r["status"] == "ok" for r in rows)
    arch, _ = bwd_host(probe, load_arch(preset))
    rates = device_rates(arch, "bf16")  # type: ignore[arg-type]
    by: dict[tuple[int, ...], dict[int, dict[str, str]]] = {}
    for r in rows:
        key = tuple(int(r[k]) for k in ("batch", "heads", "kv_heads", "seq", "head_dim"))
        by.setdefault(key, {})[int(r["head_group"])] = r
    errors, gains = [], []
    for (b, h, g, n, d), runs in by.items():
        r = runs[1]
        s = AttnShape(b, h, n, n, d, d, True, "bf16", 2, kv_group=h // g)
        t = Tiling(*(int(r[k]) for k in ("block_m", "block_n", "num_warps", "num_stages")))
        diag = bool(int(r.get("diag_loop") or 1))  # files before the column: the diagonal loop
        first = bool(int(r.get("dp_first") or 0))  # files before the column: dP after dV
        model = {x: time_bwd(s, t, r["dq_mode"], rates, x, diag, first).time_s for x in (1, 8)}
        measured = {x: float(runs[x]["median_ms"]) for x in (1, 8)}
        gains.append(measured[8] / measured[1])
        errors.append((model[8] / model[1]) / gains[-1] - 1)
    assert len(errors) == 22
    assert statistics.mean(gains) < gain_mean and max(gains) < gain_max
    assert abs(statistics.mean(errors)) < error_mean and max(map(abs, errors)) < error_max


def test_the_mapper_prices_and_states_the_launch_order() -> None:
    from attnsim.einsum_ir import load_cascade
    from attnsim.mappers.registry import get_mapper

    cascade = load_cascade("attention-1pass-bwd-mh-causal")
    sizes = dict(B=1, H=32, P=4096, M=4096, E=128, F=128)
    arch = load_arch("h200")
    tiling = dict(block_m=64, block_n=128, num_warps=8, num_stages=3, dq_mode="separate")
    own = get_mapper("gpu-bwd")(**tiling).map(cascade, arch, sizes)
    major = get_mapper("gpu-bwd")(**tiling, head_group=1).map(cascade, arch, sizes)
    assert dict(own.options)["head_group"] == BWD_HEAD_GROUP
    assert dict(major.options)["head_group"] == 1
    assert own.latency_s < 0.95 * major.latency_s
    assert any(w.startswith("launch order: tile-major within groups of 8") and
               "kernels' own" in w for w in own.warnings)  # fmt: skip
    assert any(w.startswith("launch order: head-major") and "asked for" in w
               for w in major.warnings)  # fmt: skip


def test_the_mapper_states_the_causal_loops_it_priced() -> None:
    """A causal call names the dK/dV kernel's loop build (the kernels' own: one loop, every
    step masked); a dense call has no such note."""
    from attnsim.einsum_ir import load_cascade
    from attnsim.kernels.spec import BWD_DIAG_LOOP
    from attnsim.mappers.registry import get_mapper

    sizes = dict(B=1, H=8, P=2048, M=2048, E=64, F=64)
    arch = load_arch("h200")
    mapper = get_mapper("gpu-bwd")()
    causal = mapper.map(load_cascade("attention-1pass-bwd-mh-causal"), arch, sizes)
    dense = mapper.map(load_cascade("attention-1pass-bwd-mh"), arch, sizes)
    notes = [w for w in causal.warnings if w.startswith("causal dK/dV kernel:")]
    assert len(notes) == 1 and ("one loop" in notes[0]) == (not BWD_DIAG_LOOP), notes
    assert not any(w.startswith("causal dK/dV kernel:") for w in dense.warnings)
