"""`gpu-lightning`: Lightning-2's kernel priced from the cascade's structure, or refused."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import pytest

from attnsim.archs.load import load_arch
from attnsim.einsum_ir import load_cascade
from attnsim.kernels.spec_lightning import lightning_tilings
from attnsim.mappers.gpu.lightning import time_lightning
from attnsim.mappers.gpu.rates import Tiling, device_rates
from attnsim.mappers.registry import get_mapper
from attnsim.mappers.spatial.view import MappingError

SIZES = {"B": 2, "H": 8, "P": 8192, "M": 8192, "E": 128, "F": 128}
PROBE = Path(__file__).parents[4] / "kernels/measurements/lightning/lightning-h200-2026-12-04.csv"


def test_lightning_2_is_priced_at_its_fastest_modelled_tiling() -> None:
    arch = load_arch("h200")
    result = get_mapper("gpu-lightning")().map(load_cascade("attention-lightning-2"), arch, SIZES)
    rates = device_rates(arch, "bf16")
    times = {
        t: time_lightning(2, 8, 8192, 128, 128, Tiling(*t), rates).time_s
        for t in lightning_tilings(128)
    }
    opts = dict(result.options)
    chosen = (opts["block_c"], opts["block_f"], opts["num_warps"], opts["num_stages"])
    assert result.latency_s == pytest.approx(min(times.values()), rel=1e-12)
    assert times[chosen] == min(times.values())
    assert result.flops > 0 and result.dram_traffic_bytes > 0
    assert any("per-head decay DL" in w for w in result.warnings)


def test_a_given_tiling_is_kept() -> None:
    mapper = get_mapper("gpu-lightning")(block_c=128, block_f=64, num_warps=8, num_stages=2)
    result = mapper.map(load_cascade("attention-lightning-2"), load_arch("h200"), SIZES)
    assert dict(result.options)["block_c"] == 128


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("attention-lightnet", "non-causal"),
        ("attention-linear", "non-causal"),
        ("attention-linear-causal-chunked", "no normalizer"),
        ("attention-linear-causal-recurrent", "no normalizer"),
        ("attention-linear-causal-quadratic", "no recurrent state"),
        ("attention-1pass-mh-causal", "no recurrent state"),
    ],
)
def test_what_the_kernel_does_not_compute_is_refused(name: str, reason: str) -> None:
    with pytest.raises(MappingError, match=reason):
        get_mapper("gpu-lightning")().map(load_cascade(name), load_arch("h200"), SIZES)


def test_cross_attention_is_refused() -> None:
    with pytest.raises(MappingError, match="self-attention"):
        get_mapper("gpu-lightning")().map(
            load_cascade("attention-lightning-2"), load_arch("h200"), {**SIZES, "P": 1024}
        )


def test_the_pick_is_within_10pct_of_the_best_measured_fused_tiling() -> None:
    """On the H200 probe's fused rows (timed, never fitted): the mapper's chosen tiling."""
    by_shape: dict[tuple[int, ...], dict[tuple[int, ...], float]] = defaultdict(dict)
    with PROBE.open() as fh:
        for r in csv.DictReader(fh):
            if r["family"] != "triton-lightning" or r["schedule"] != "fused" or r["status"] != "ok":
                continue
            shape = tuple(int(r[k]) for k in ("batch", "heads", "seq", "head_dim"))
            tiling = tuple(int(r[k]) for k in ("block_c", "block_f", "num_warps", "num_stages"))
            by_shape[shape][tiling] = float(r["median_ms"])
    arch, picks = load_arch("h200"), []
    for (b, h, s, d), measured in by_shape.items():
        sizes = {"B": b, "H": h, "P": s, "M": s, "E": d, "F": d}
        result = get_mapper("gpu-lightning")().map(
            load_cascade("attention-lightning-2"), arch, sizes
        )
        o = dict(result.options)
        chosen = (o["block_c"], o["block_f"], o["num_warps"], o["num_stages"])
        if chosen in measured:
            picks.append(measured[chosen] / min(measured.values()) - 1)
    assert len(picks) >= 0.8 * len(by_shape)
    assert sum(p <= 0.10 for p in picks) >= 0.9 * len(picks), picks


def test_gla_is_priced_on_the_gated_kernel_with_its_added_work_stated() -> None:
    """attention-gla: its gate GL (K's ranks, the state's decay) runs as the kernel's gates=."""
    arch = load_arch("h200")
    gla = get_mapper("gpu-lightning")().map(load_cascade("attention-gla"), arch, SIZES)
    opts = dict(gla.options)
    tiling = Tiling(opts["block_c"], opts["block_f"], opts["num_warps"], opts["num_stages"])
    rates = device_rates(arch, "bf16")
    gated = time_lightning(2, 8, 8192, 128, 128, tiling, rates, gated=True)
    assert gla.latency_s == pytest.approx(gated.time_s, rel=1e-12)
    assert gated.time_s > time_lightning(2, 8, 8192, 128, 128, tiling, rates).time_s
    plain = get_mapper("gpu-lightning")(**{k: v for k, v in opts.items() if k != "dtype"}).map(
        load_cascade("attention-lightning-2"), arch, SIZES
    )
    gate_bytes = 2 * 8 * 8192 * 128 * 4  # fp32 log gates, laid out like K
    assert gla.dram_traffic_bytes == plain.dram_traffic_bytes + gate_bytes
    assert dict(gla.extras)["gate_hbm_read_bytes"] == gate_bytes
    assert gla.flops == plain.flops  # the matrix products are the same
    text = " | ".join(gla.warnings)
    assert "GLA gates GL as gates=" in text
    measured = "the GLA kernel's chunk step as measured" in text
    unmeasured = "UNMEASURED (the calibration has no lightning-fused-gla entry)" in text
    assert measured != unmeasured  # one of the two, as the calibration has the mode or not
    assert "log-space transform (GL to log alpha" in text


def test_the_gate_is_read_from_the_state_recurrence() -> None:
    from attnsim.mappers.gpu.lightning_mapper import decay_inputs

    assert decay_inputs(load_cascade("attention-gla"), "KV") == {"GL"}
    assert decay_inputs(load_cascade("attention-lightning-2"), "KV") == {"DL"}
    assert decay_inputs(load_cascade("attention-linear-causal-chunked"), "KV") == set()


def test_the_gla_gap_the_warning_states_is_the_measured_one(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The unmeasured-GLA warning's ratio range is that of the committed GLA file, priced
    with the GLA kernel's own entries withheld."""
    import re
    from pathlib import Path

    from attnsim.mappers.gpu import lightning
    from attnsim.mappers.gpu.lightning_mapper import GLA_UNMEASURED_GAP
    from attnsim.reports import validation_kernels as vk
    from attnsim.reports import validation_probes  # noqa: F401  (registers the probe)

    monkeypatch.setattr(lightning, "gla_measured", lambda *_: False)
    data = Path(__file__).parents[4] / "kernels" / "measurements" / "lightning"
    points = vk.predict_rows([data / "gla-h200-2026-12-05.csv"])
    ratios = [p.measured_ms / p.predicted_ms for p in points]
    n, low, high = re.findall(r"the (\d+) fused GLA calls timed ran ([\d.]+)-([\d.]+)x",
                              GLA_UNMEASURED_GAP)[0]  # fmt: skip
    assert len(ratios) == int(n)
    assert min(ratios) == pytest.approx(float(low), abs=0.05)
    assert max(ratios) == pytest.approx(float(high), abs=0.05)


def test_gla_blocks_under_64_are_refused_on_sm90_with_the_reason() -> None:
    """The H200 (sm_90) faults on GLA's 32-wide blocks: asked for, or forced by F = 32."""
    arch = load_arch("h200")
    tiling = dict(block_c=32, block_f=64, num_warps=4, num_stages=2)
    with pytest.raises(MappingError, match="at least 64 on h200.*asked for block_c 32"):
        get_mapper("gpu-lightning")(**tiling).map(load_cascade("attention-gla"), arch, SIZES)
    with pytest.raises(MappingError, match="F = 32 leaves no such tiling"):
        get_mapper("gpu-lightning")().map(
            load_cascade("attention-gla"), arch, {**SIZES, "E": 32, "F": 32}
        )
    plain = get_mapper("gpu-lightning")(**tiling).map(
        load_cascade("attention-lightning-2"), arch, SIZES
    )
    assert dict(plain.options)["block_c"] == 32  # the ungated kernel runs them


def test_split_schedule_is_refused_with_the_measured_reason(capsys) -> None:  # type: ignore[no-untyped-def]
    """schedule=split is refused, and the figures the refusal quotes are what
    benchmarks/lightning_split_transfer.py computes from the committed file."""
    import importlib.util
    import re
    from pathlib import Path

    from attnsim.mappers.gpu.lightning_mapper import SPLIT_REFUSAL
    from attnsim.mappers.registry import get_mapper
    from attnsim.mappers.spatial.view import MappingError

    with pytest.raises(MappingError, match="schedule split is not modelled"):
        get_mapper("gpu-lightning")(schedule="split")
    root = Path(__file__).resolve().parents[4]
    spec = importlib.util.spec_from_file_location(
        "lightning_split_transfer", root / "benchmarks" / "lightning_split_transfer.py"
    )
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main([str(root / script.DEFAULT)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    rows, mape, signed = re.fullmatch(
        r"(\d+) rows: MAPE ([\d.]+)%, mean signed ([+-][\d.]+)%", last
    ).groups()  # type: ignore[union-attr]
    assert f"off by {round(float(mape))}% (mean, {float(signed):+.0f}% signed)" in SPLIT_REFUSAL
    assert f"on the {rows} split rows" in SPLIT_REFUSAL


def test_a_measured_gla_tiling_fits_whatever_the_register_estimate_says() -> None:
    """The H200 preset's GLA entries (measured on an H100, which the warning quotes) price the
    tiling the calibration ran; its register estimate over 255 is kept as an extra, not held
    against the tiling as a capacity it exceeds (the compiled kernel ran, spills and all)."""
    arch = load_arch("h200")
    gla = get_mapper("gpu-lightning")(block_c=64, block_f=64, num_warps=4, num_stages=2).map(
        load_cascade("attention-gla"), arch, SIZES
    )
    extras = dict(gla.extras)
    assert extras["registers_per_thread_estimate"] > arch.max_registers_per_thread
    assert extras["blocks_per_sm"] == 2  # the two-per-SM entry the calibration measured
    assert all(o.peak_bytes <= o.capacity_bytes for o in gla.occupancy)
    text = " | ".join(gla.warnings)
    assert "the GLA kernel's chunk step as measured" in text
    assert "the calibration says: attention_steps / attention_blocks of modes " in text
    assert "on NVIDIA H100 80GB HBM3" in text
