"""FuseMax mapper: the published ablation tables, computed from presets, workloads and mappings."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from attnsim.archs.load import load_arch
from attnsim.einsum_ir import load_cascade
from attnsim.mappers.spatial.fusemax import FuseMaxMapper, FuseMaxOptions
from attnsim.mappers.spatial.view import MappingError
from attnsim.mappers.workloads import LENGTHS, MODELS

REFERENCE = Path(__file__).resolve().parents[5] / "shared" / "reference" / "fusemax"
STEPS = {"binding": "attn-binding", "arch": "attn-arch", "cascade": "attn-cascade"}
EINSUM_COLUMNS = ("QK", "LM", "SLN", "SLD", "SLNV")


def reference_rows(table: str) -> list[dict[str, str]]:
    path = REFERENCE / f"{table}.csv"
    if not path.exists():
        pytest.skip(f"reference data not found at {path}")
    return list(csv.DictReader(path.open()))


def tolerance(column: str, seq_len: str) -> float:
    if column == "energy":
        return 0.08 if seq_len in ("256K", "1M") else 0.02
    return 0.01


def run_step(step: str, model: str, seq_len: str):  # type: ignore[no-untyped-def]
    arch = load_arch("flat" if step == "cascade" else "fusemax")
    # The artifact sized +Cascade's query tiling for FuseMax's 16 MiB buffer.
    budget = load_arch("fusemax").buffer.capacity_bytes if step == "cascade" else 0
    options = FuseMaxOptions(step, artifact_compat=True, buffer_budget_bytes=budget)
    cascade = load_cascade("attention-1pass-mh")
    return FuseMaxMapper(options).map(
        cascade, arch, MODELS[model].attention_sizes(LENGTHS[seq_len])
    )


@pytest.mark.parametrize("step", list(STEPS))
def test_ablation_steps_match_published_tables(step: str) -> None:
    failures = []
    for row in reference_rows(STEPS[step]):
        result = run_step(step, row["model"], row["seq_len"])
        produced = {
            "traffic": result.dram_traffic_bytes,
            "latency": result.latency_s,
            "energy": result.energy_pj,
            "util_2d": result.unit("array_2d").utilization,
            "util_1d": result.unit("array_1d").utilization,
        }
        for name in EINSUM_COLUMNS:
            if name in row:
                produced[name] = result.einsum(name).utilization
        for column, value in produced.items():
            ref = float(row[column])
            err = abs(value / ref - 1)
            if err > tolerance(column, row["seq_len"]):
                failures.append(
                    f"{row['model']} {row['seq_len']} {column}: {value:.6g} vs "
                    f"{ref:.6g} ({err:.2%})"
                )
    assert not failures, "\n".join(failures)


def test_artifact_compat_is_visible_in_warnings() -> None:
    result = run_step("cascade", "BERT", "1K")
    assert any("artifact-compat" in w for w in result.warnings)
    assert any("query tiling planned for" in w for w in result.warnings)
    clean = FuseMaxMapper(FuseMaxOptions("cascade")).map(
        load_cascade("attention-1pass-mh"), load_arch("flat"), MODELS["BERT"].attention_sizes(1024)
    )
    assert not any("artifact-compat" in w for w in clean.warnings)
    assert clean.energy_pj > result.energy_pj  # exp energy is charged without the quirk


def test_user_cascade_with_other_names_maps_like_the_builtin() -> None:
    builtin = load_cascade("attention-1pass")
    renamed_text = (Path(__file__).parent / "renamed_1pass.yaml").read_text()
    from attnsim.einsum_ir import load_cascade_text

    renamed = load_cascade_text(renamed_text, "renamed_1pass.yaml")
    sizes = {"M": 8192, "P": 4096, "E": 64, "F": 64}
    arch = load_arch("fusemax")
    a = FuseMaxMapper().map(builtin, arch, sizes)
    b = FuseMaxMapper().map(renamed, arch, sizes)
    assert b.latency_cycles == pytest.approx(a.latency_cycles)
    assert b.energy_pj == pytest.approx(a.energy_pj)
    assert b.dram_traffic_bytes == pytest.approx(a.dram_traffic_bytes)


def test_multi_pass_cascade_buffers_or_spills_crossing_tensors() -> None:
    arch = load_arch("fusemax")
    three = load_cascade("attention-3pass")
    small = FuseMaxMapper().map(three, arch, {"M": 1024, "P": 1024, "E": 64, "F": 64})
    big = FuseMaxMapper().map(three, arch, {"M": 1 << 16, "P": 1 << 16, "E": 64, "F": 64})
    assert small.passes == big.passes == 3
    assert not any("spilled" in w for w in small.warnings)
    assert any("spilled to DRAM: QK, SN" in w for w in big.warnings)
    # Spilling the M x P crossing tensors costs far more traffic than streaming K and V.
    assert big.dram_traffic_bytes > 4 * (1 << 32)
    for r in (small, big):
        assert all(o.peak_bytes <= o.capacity_bytes or o.spilled_bytes for o in r.occupancy)


def test_bad_options_are_clear_errors() -> None:
    with pytest.raises(MappingError) as info:
        FuseMaxOptions("fast", p1=-1)
    assert str(info.value) == (
        "fusemax options: step: expected one of 'cascade', 'arch', 'binding', got 'fast'; "
        "p1: expected an integer >= 0 (0: the largest that fits), got -1"
    )
    with pytest.raises(MappingError, match="needs a 2D and a 1D array"):
        arch = load_arch("fusemax")
        one_array = type(arch)(
            **{
                **{f: getattr(arch, f) for f in arch.__dataclass_fields__},
                "arrays": (arch.array_2d,),
            }
        )
        FuseMaxMapper().map(
            load_cascade("attention-1pass"), one_array, {"M": 512, "P": 512, "E": 64, "F": 64}
        )


def test_open_p1_is_searched_with_statistics_and_explicit_p1_is_checked() -> None:
    arch = load_arch("fusemax")
    cascade = load_cascade("attention-1pass-mh")
    sizes = MODELS["BERT"].attention_sizes(1 << 20)
    searched = FuseMaxMapper().map(cascade, arch, sizes)
    blocks = (1 << 20) // 256
    divisors = [d for d in range(1, blocks + 1) if blocks % d == 0]
    assert searched.extra("search_candidates") == len(divisors)
    assert 0 < searched.extra("search_feasible") < len(divisors)
    # The largest feasible divisor wins: one step larger no longer fits.
    bigger = divisors[divisors.index(int(searched.extra("p1"))) + 1]
    too_big = FuseMaxMapper(FuseMaxOptions(p1=bigger)).map(cascade, arch, sizes)
    assert any("exceeds the global_buffer capacity" in w for w in too_big.warnings)
    assert "search_candidates" not in dict(too_big.extras)
