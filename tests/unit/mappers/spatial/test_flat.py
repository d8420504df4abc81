from __future__ import annotations

import csv
from pathlib import Path

import pytest

from attnsim.archs.load import load_arch
from attnsim.einsum_ir.load import load_cascade, load_cascade_text
from attnsim.mappers.registry import get_mapper
from attnsim.mappers.spatial.flat import (
    ARTIFACT_READ_WARNING,
    FlatMapper,
    FlatOptions,
    flat_dataflow_from_row,
)
from attnsim.mappers.spatial.view import MappingError
from attnsim.mappers.workloads import LENGTHS, MODELS

REF = Path(__file__).resolve().parents[5] / "shared" / "reference" / "fusemax"
BIG = ("256K", "1M")
RENAMED = """
cascade: renamed-3pass
inputs: {X: [B, H, E, P], Y: [B, H, E, M], Z: [B, H, F, M]}
einsums:
  - S[b,h,m,p] = X[b,h,e,p] * Y[b,h,e,m]
  - MX[b,h,p] = max[m](S[b,h,m,p])
  - EX[b,h,m,p] = exp(S[b,h,m,p] - MX[b,h,p])
  - DEN[b,h,p] = EX[b,h,m,p]
  - W[b,h,m,p] = EX[b,h,m,p] / DEN[b,h,p]
  - O[b,h,f,p] = W[b,h,m,p] * Z[b,h,f,m]
outputs: [O]
"""


def _rows(name: str) -> list[dict[str, str]]:
    if not (REF / name).exists():
        return []  # no reference data: the parametrized test is reported as skipped
    with open(REF / name) as f:
        return [{k: v for k, v in r.items() if k} for r in csv.DictReader(f)]


def _dataflow(model: str, seq_len: str, artifact_compat: bool = True) -> FlatOptions:
    for r in _rows("flat_validation.csv"):
        if r["platform"] == "cloud" and r["models"] == model and r["seq_len"] == seq_len:
            return flat_dataflow_from_row(r, artifact_compat=artifact_compat)
    pytest.skip(f"no FLAT dataflow for {model} {seq_len}")


@pytest.fixture(scope="module")
def flat_arch():
    return load_arch("flat")


def _id(r: dict[str, str]) -> str:
    return f"{r['model']}-{r['seq_len']}"


@pytest.mark.parametrize("row", _rows("attn-flat.csv"), ids=_id)
def test_matches_artifact(row: dict[str, str], flat_arch) -> None:
    sizes = MODELS[row["model"]].attention_sizes(LENGTHS[row["seq_len"]])
    opts = _dataflow(row["model"], row["seq_len"])
    res = FlatMapper(opts).map(load_cascade("attention-3pass-mh"), flat_arch, sizes)
    pred = {
        "traffic": res.dram_traffic_bytes,
        "latency": res.latency_s,
        "util_2d": res.unit("array_2d").utilization,
        "util_1d": res.unit("array_1d").utilization,
        "QK": res.einsum("QK").utilization,
        "AV": res.einsum("AV").utilization,
    }
    for col, value in pred.items():
        assert value == pytest.approx(float(row[col]), rel=0.01), col
    energy_tol = 0.08 if row["seq_len"] in BIG else 0.02
    assert res.energy_pj == pytest.approx(float(row["energy"]), rel=energy_tol)
    assert (ARTIFACT_READ_WARNING in res.warnings) == ("AV" in opts.onchip)


def test_artifact_quirk_only_with_compat(flat_arch) -> None:
    sizes = MODELS["BERT"].attention_sizes(LENGTHS["64K"])
    cascade = load_cascade("attention-3pass-mh")
    compat = FlatMapper(_dataflow("BERT", "64K", True)).map(cascade, flat_arch, sizes)
    plain = FlatMapper(_dataflow("BERT", "64K", False)).map(cascade, flat_arch, sizes)
    assert ARTIFACT_READ_WARNING in compat.warnings
    assert ARTIFACT_READ_WARNING not in plain.warnings
    extra_rows = 64 * 12 * 65536 * 65536 / 256
    buf = "global_buffer"

    def buffer_reads(res) -> float:
        return next(e.count for e in res.energy if e.component == buf and e.action == "read")

    assert buffer_reads(compat) - buffer_reads(plain) == pytest.approx(extra_rows)
    assert compat.latency_s == plain.latency_s
    assert compat.dram_traffic_bytes == plain.dram_traffic_bytes


@pytest.mark.parametrize("seq_len", [1024, 65536, 2**20])
def test_search_fits_capacity(flat_arch, seq_len: int) -> None:
    res = get_mapper("flat")().map(
        load_cascade("attention-3pass-mh"), flat_arch, MODELS["BERT"].attention_sizes(seq_len)
    )
    occ = res.occupancy[0]
    assert occ.peak_bytes <= occ.capacity_bytes
    assert res.extra("search_feasible") >= 1
    assert res.extra("search_candidates") >= res.extra("search_feasible")
    assert ARTIFACT_READ_WARNING not in res.warnings
    # the search is never slower than the unfused baseline's phases run back to back
    unfused = get_mapper("unfused")().map(
        load_cascade("attention-3pass-mh"), flat_arch, MODELS["BERT"].attention_sizes(seq_len)
    )
    assert res.latency_s <= unfused.latency_s


def test_user_cascade_names(flat_arch) -> None:
    sizes = MODELS["TrXL"].attention_sizes(LENGTHS["16K"])
    opts = _dataflow("TrXL", "16K")
    a = FlatMapper(opts).map(load_cascade("attention-3pass-mh"), flat_arch, sizes)
    b = FlatMapper(opts).map(load_cascade_text(RENAMED), flat_arch, sizes)
    assert b.latency_s == pytest.approx(a.latency_s, rel=1e-12)
    assert b.energy_pj == pytest.approx(a.energy_pj, rel=1e-12)
    assert b.dram_traffic_bytes == pytest.approx(a.dram_traffic_bytes, rel=1e-12)
    assert b.einsum("O").utilization == pytest.approx(a.einsum("AV").utilization)
    searched = FlatMapper().map(load_cascade_text(RENAMED), flat_arch, sizes)
    assert searched.occupancy[0].peak_bytes <= searched.occupancy[0].capacity_bytes


def test_stationarity_changes_the_nest(flat_arch) -> None:
    sizes = MODELS["BERT"].attention_sizes(LENGTHS["4K"])
    cascade = load_cascade("attention-3pass-mh")
    out = FlatMapper(FlatOptions(qk_stationarity="output", av_stationarity="output")).map(
        cascade, flat_arch, sizes
    )
    wt = FlatMapper(FlatOptions(qk_stationarity="weight", av_stationarity="weight")).map(
        cascade, flat_arch, sizes
    )
    # output-stationary QK spreads M x P over the whole array; weight-stationary spreads
    # K's E x M, and E = 64 fills a quarter of the 256 columns
    assert wt.einsum("QK").compute_cycles == 4 * out.einsum("QK").compute_cycles
    assert wt.einsum("QK").utilization == pytest.approx(out.einsum("QK").utilization)


def test_options_validation_and_row() -> None:
    with pytest.raises(MappingError, match="onchip: unknown 'QKV'; expected a list of Q, K,"):
        FlatOptions(onchip=("QKV",))
    with pytest.raises(MappingError, match=r"spilled_fraction: expected a number in \[0, 1\]"):
        FlatOptions(spilled_fraction=float("nan"))
    with pytest.raises(MappingError, match="qk_stationarity"):
        FlatOptions(qk_stationarity="row")
    row = {
        "Q_loc": "onchip",
        "K_loc": "offchip",
        "QK_loc": "offchip",
        "A_loc": "offchip",
        "V_loc": "offchip",
        "AV_loc": "onchip",
        "QK_stationarity": "weight",
        "AV_stationarity": "weight",
        "fusion_granularity": "row",
        "P1": "1024",
        "proportion_spilled": "0",
    }
    opts = flat_dataflow_from_row(row, artifact_compat=True)
    assert opts == FlatOptions(("Q", "AV"), "weight", "weight", "row", 1024, 0.0, True)


def test_rejects_cascade_without_two_contractions(flat_arch) -> None:
    one = load_cascade_text("""
cascade: one-matmul
inputs: {Q: [E, P], K: [E, M]}
einsums:
  - QK[m,p] = Q[e,p] * K[e,m]
outputs: [QK]
""")
    with pytest.raises(MappingError, match="no key rank"):
        FlatMapper().map(one, flat_arch, {"E": 4, "P": 256, "M": 256})


def test_fields_given_constrain_the_search_and_budget_samples_it() -> None:
    from attnsim.archs.load import load_spatial_arch
    from attnsim.einsum_ir import load_cascade
    from attnsim.mappers.spatial.flat import FlatMapper

    arch = load_spatial_arch("flat")
    cascade = load_cascade("attention-3pass-mh")
    sizes = {"B": 2, "H": 4, "M": 4096, "P": 4096, "E": 64, "F": 64}
    full = FlatMapper().map(cascade, arch, sizes)
    row = FlatMapper(granularity="row").map(cascade, arch, sizes)
    assert dict(row.options)["granularity"] == "row"
    assert row.extra("search_space") < full.extra("search_space")
    assert row.latency_cycles >= full.latency_cycles  # a constrained search is never better
    sampled = FlatMapper(search_budget=50).map(cascade, arch, sizes)
    assert sampled.extra("search_candidates") == 50
    assert sampled.extra("search_space") == full.extra("search_space")
    assert sampled.latency_cycles >= full.latency_cycles
    fixed = FlatMapper(
        onchip=("QK", "A"), qk_stationarity="output", av_stationarity="output", granularity="head"
    ).map(cascade, arch, sizes)
    assert "search_space" not in dict(fixed.extras)


def test_loop_nest_covers_ranks_off_the_array_side() -> None:
    # issue 19: 300 // 256 = 1 step of 256 lanes dropped 44 of 300 elements
    from attnsim.mappers.spatial.flat_cost import _steps_and_lanes

    assert _steps_and_lanes(300, 256) == (2, 150)
    assert _steps_and_lanes(512, 256) == (2, 256)  # multiples of the side: as before
    assert _steps_and_lanes(100, 256) == (1, 100)
    assert _steps_and_lanes(64, 1) == (64, 1)
    sizes = {"B": 1, "H": 2, "M": 300, "P": 300, "E": 64, "F": 64}
    res = FlatMapper().map(load_cascade("attention-3pass-mh"), load_arch("flat"), sizes)
    moved = {t.tensor: t.read_bytes + t.write_bytes for t in res.traffic}
    word = load_arch("flat").word_bytes
    for name in ("Q", "K", "V", "AV"):
        assert moved[name] >= 2 * 300 * 64 * word, name
