"""GPU presets, `kind: gpu` loading with exact messages, and the calibration format."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from attnsim.archs.calibration import load_calibration
from attnsim.archs.gpu import GpuArch
from attnsim.archs.load import load_arch, load_arch_text, load_spatial_arch, preset_names
from attnsim.einsum_ir.spec import SpecError

GPU_PRESETS = ("a100-sxm", "h100-sxm", "h200")


def test_gpu_presets_are_listed_by_kind() -> None:
    assert preset_names("gpu") == GPU_PRESETS
    assert not set(GPU_PRESETS) & set(preset_names("spatial"))
    assert set(preset_names()) == set(preset_names("gpu")) | set(preset_names("spatial"))


@pytest.mark.parametrize("name", GPU_PRESETS)
def test_gpu_preset_figures_are_sane(name: str) -> None:
    arch = load_arch(name)
    assert isinstance(arch, GpuArch) and arch.name == name
    assert arch.sm_count >= 100 and 1e9 < arch.clock_hz < 2.5e9
    # dense bf16 per SM per clock: 1024 FLOP on Ampere, 4096 on Hopper
    per_clock = arch.tensor_flops_per_s("bf16") / (arch.sm_count * arch.clock_hz)
    assert per_clock == pytest.approx(4096 if name != "a100-sxm" else 2048, rel=0.02)
    assert arch.sfu_ops_per_clock_per_sm == 16
    assert arch.shared_memory_per_block_bytes < arch.shared_memory_per_sm_bytes
    assert arch.max_warps_per_sm * 32 == arch.max_threads_per_sm
    assert arch.hbm_bandwidth_bytes_per_s > 1e12 and arch.l2_bytes >= 40 * 2**20
    assert arch.sources


def test_h200_has_its_calibration() -> None:
    arch = load_arch("h200")
    assert isinstance(arch, GpuArch) and arch.calibration is not None
    cal = arch.calibration
    assert cal.device == "NVIDIA H200"
    raw = yaml.safe_load(Path(cal.path).read_text())
    bf16 = max(p["tflops"] for p in raw["matmul"] if p["dtype"] == "bf16")
    assert cal.peak_matmul_flops_per_s("bf16") == pytest.approx(bf16 * 1e12)
    assert cal.hbm_copy_bandwidth_bytes_per_s == pytest.approx(
        raw["hbm_copy_bandwidth_gb_per_s"] * 1e9
    )
    assert cal.host_launch_s == pytest.approx(raw["host_launch_us"] * 1e-6)
    for family, us in raw.get("host_call_us", {}).items():
        assert cal.host_call(family) == pytest.approx(us * 1e-6)
    assert len(cal.attention_steps) == len(raw.get("attention_steps", []))


def test_calibration_new_figures_load_and_default(tmp_path: Path) -> None:
    base = {"device": "X", "date": "2026-01-01", "source": "test"}
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(base))
    old = load_calibration(path)
    assert old.host_call("1pass") is None and old.bench_head_start_s is None
    assert old.attention_steps == () and old.step("online", 64, 128, 64, 4, 2) is None
    step = {
        "mode": "online",
        "dtype": "bf16",
        "head_dim": 64,
        "block_m": 128,
        "block_n": 64,
        "num_warps": 4,
        "num_stages": 3,
        "step_us": 1.0,
    }
    new = {
        **base,
        "host_call_us": {"1pass": 50.0, "2pass": 90.0},
        "bench_head_start_us": 40.0,
        "attention_steps": [
            {**step, "blocks_per_sm": 1},
            {**step, "blocks_per_sm": 2, "step_us": 1.5},
            {**step, "block_n": 128, "blocks_per_sm": 1, "step_us": 2.0},
        ],
    }
    path.write_text(yaml.safe_dump(new))
    cal = load_calibration(path)
    assert cal.host_call("1pass") == pytest.approx(50e-6) and cal.host_call("unfused") is None
    assert cal.bench_head_start_s == pytest.approx(40e-6)
    one = cal.step("online", 64, 128, 64, 4, 1)
    two = cal.step("online", 64, 128, 64, 4, 4)
    assert one is not None and one.step_s == pytest.approx(1e-6) and one.blocks_per_sm == 1
    assert two is not None and two.step_s == pytest.approx(1.5e-6)
    near = cal.step("online", 64, 128, 128, 8, 1)  # nearest measured tiling
    assert near is not None and near.block_n == 128
    assert cal.step("stats", 64, 128, 64, 4, 1) is None


def test_spatial_only_loader_refuses_a_gpu() -> None:
    with pytest.raises(SpecError, match="expected a spatial architecture"):
        load_spatial_arch("h200")


def _gpu_text() -> str:
    text = Path(load_arch("h100-sxm").source).read_text()
    return text


def test_gpu_problems_are_reported_together_with_locations() -> None:
    text = (
        _gpu_text()
        .replace("sm_count: 132", "sm_count: -1")
        .replace("board_power_w: 700", "board_power_w: 700\nclock_mhz: 5")
    )
    with pytest.raises(SpecError) as info:
        load_arch_text(text, "bad.yaml")
    messages = [str(p) for p in info.value.problems]
    assert any(
        m.startswith("bad.yaml:") and "sm_count: expected a positive integer, got -1" in m
        for m in messages
    )
    assert any("unknown key 'clock_mhz'" in m for m in messages)


def test_unknown_kind_names_both_kinds() -> None:
    with pytest.raises(SpecError, match="expected kind 'spatial' or 'gpu', got 'tpu'"):
        load_arch_text("architecture: x\nkind: tpu\n", "bad.yaml")


def test_calibration_round_trip_and_tile_lookup(tmp_path: Path) -> None:
    record = {
        "device": "NVIDIA H200",
        "date": "2026-12-01",
        "source": "test",
        "versions": {"torch": "2.11"},
        "exp2_gops_per_s": 3800,
        "launch_overhead_us": 2.0,
        "matmul": [
            {"kernel": "torch.matmul", "dtype": "bf16", "m": 8, "n": 8, "k": 8, "tflops": 800},
            {
                "kernel": "triton",
                "dtype": "bf16",
                "m": 8,
                "n": 8,
                "k": 8,
                "block_m": 128,
                "block_n": 64,
                "block_k": 64,
                "num_warps": 8,
                "num_stages": 3,
                "tflops": 600,
            },
            {
                "kernel": "triton",
                "dtype": "bf16",
                "m": 8,
                "n": 8,
                "k": 8,
                "block_m": 64,
                "block_n": 64,
                "block_k": 64,
                "num_warps": 4,
                "num_stages": 3,
                "tflops": 400,
            },
        ],
    }
    path = tmp_path / "cal.yaml"
    path.write_text(yaml.safe_dump(record))
    cal = load_calibration(path)
    assert cal.exp2_per_s == pytest.approx(3.8e12) and cal.launch_overhead_s == pytest.approx(2e-6)
    near = cal.tile_matmul("bf16", 128, 64, 64, 8)
    assert near is not None and near[1] == 0 and near[0].tflops == 600
    near = cal.tile_matmul("fp16", 64, 32, 64, 4)
    assert near is not None and near[0].tflops == 400 and near[1] == pytest.approx(1.5)


def test_calibration_errors_name_the_field(tmp_path: Path) -> None:
    path = tmp_path / "cal.yaml"
    path.write_text(
        textwrap.dedent("""\
        device: X
        date: '2026'
        source: t
        exp2_gops_per_s: fast
        matmul: [{kernel: triton, dtype: bf16, m: 8, n: 8, tflops: 1}]
        """)
    )
    with pytest.raises(SpecError) as info:
        load_calibration(path)
    messages = [str(p) for p in info.value.problems]
    assert f"{path}:4:18: exp2_gops_per_s: expected a number, got 'fast'" in messages
    assert f"{path}:5:10: matmul[0]: missing required key 'k'" in messages


def test_microbench_record_loads(tmp_path: Path) -> None:
    pytest.importorskip("triton")
    from attnsim.kernels.calibrate.microbench import calibration_record

    record = calibration_record(
        "NVIDIA H200",
        {"hbm_copy_bandwidth_gb_per_s": 4200.0, "host_launch_us": 5.0},
        [{"kernel": "torch.matmul", "dtype": "bf16", "m": 8, "n": 8, "k": 8, "tflops": 790.0}],
        {"torch": "2.11"},
        "2026-12-01T00:00:00Z",
    )
    path = tmp_path / "h200.yaml"
    path.write_text(yaml.safe_dump(record, sort_keys=False))
    cal = load_calibration(path)
    assert cal.source == "kernels.calibrate.microbench" and cal.host_launch_s == pytest.approx(5e-6)


def test_calibration_unfused_kernels_load_and_lookup(tmp_path: Path) -> None:
    path = tmp_path / "cal.yaml"
    path.write_text(
        "device: X\ndate: '2026-12-01'\nsource: test\nhbm_copy_bandwidth_gb_per_s: 4000\n"
        "hbm_read_bandwidth_gb_per_s: 3900\nunfused_kernels:\n"
        "- {kernel: pv, causal: 1, head_dim: 64, block_m: 128, block_n: 64, num_warps: 4,"
        " num_stages: 3, batch_heads: 24, seq: 4096, time_us: 900.0}\n"
        "- {kernel: pv, causal: 1, head_dim: 128, block_m: 128, block_n: 128, num_warps: 8,"
        " num_stages: 3, batch_heads: 24, seq: 4096, time_us: 1200.0}\n"
        "- {kernel: softmax, causal: 0, batch_heads: 6, seq: 16384, time_us: 700.0}\n"
    )
    cal = load_calibration(path)
    assert len(cal.unfused_kernels) == 3
    (soft,) = cal.unfused("softmax", False, 64, 128, 64, 4)
    assert soft.time_s == pytest.approx(700e-6) and soft.head_dim == 0
    # each entry remembers the bandwidth of its own calibration run (what-ifs change the device)
    assert soft.hbm_read_bytes_per_s == pytest.approx(3.9e12)
    assert soft.hbm_write_bytes_per_s == pytest.approx(4.0e12)
    near = cal.unfused("pv", True, 128, 128, 128, 8)
    assert [p.head_dim for p in near] == [128, 64]
    assert cal.unfused("pv", False, 64, 128, 64, 4) == []


def test_compute_capability_is_optional_and_checked() -> None:
    assert [load_arch(n).compute_capability for n in GPU_PRESETS] == [8.0, 9.0, 9.0]
    text = _gpu_text()
    assert "compute_capability: 9.0" in text
    without = "".join(
        line for line in text.splitlines(True) if not line.startswith("compute_capability:")
    )
    arch = load_arch_text(without, "custom.yaml")
    assert isinstance(arch, GpuArch) and arch.compute_capability is None
    for bad, message in (
        ("-9", "compute_capability: expected a positive number, got -9"),
        ("sm90", "compute_capability: expected a number, got 'sm90'"),
    ):
        with pytest.raises(SpecError) as info:
            load_arch_text(
                text.replace("compute_capability: 9.0", f"compute_capability: {bad}"), "bad.yaml"
            )
        assert any(
            str(p).startswith("bad.yaml:") and message in str(p) for p in info.value.problems
        ), info.value.problems
