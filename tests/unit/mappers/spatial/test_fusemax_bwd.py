"""FuseMax's fused backward (FlashAttention-2 as a spatial dataflow): work, traffic, buffer,
masks, GQA and what it refuses, each checked against first principles."""

from __future__ import annotations

import pytest

from attnsim.archs.load import load_arch
from attnsim.einsum_ir import load_cascade, load_cascade_text
from attnsim.einsum_ir.analysis.ops import count_ops
from attnsim.einsum_ir.analysis.training import is_matmul, matmul_flops
from attnsim.mappers.registry import get_mapper
from attnsim.mappers.result import Result
from attnsim.mappers.spatial.fusemax import FuseMaxMapper, FuseMaxOptions
from attnsim.mappers.spatial.view import MappingError
from attnsim.reports.dse.feasibility import fit_problem

MH = dict(B=1, H=8, M=4096, P=4096, E=128, F=128)
ARCH = load_arch("fusemax")


def _bwd(name: str, sizes: dict[str, int], **options: object) -> Result:
    return FuseMaxMapper(FuseMaxOptions(**options)).map(load_cascade(name), ARCH, dict(sizes))  # type: ignore[arg-type]


def _traffic(result: Result) -> dict[str, tuple[float, float]]:
    return {t.tensor: (t.read_bytes, t.write_bytes) for t in result.traffic}


def _busy(result: Result, unit: str) -> float:
    return next(u.busy_cycles for u in result.units if u.unit == unit)


def test_backward_matmuls_are_two_and_a_half_forward_matmuls() -> None:
    """FlashAttention-2's accounting (E = F, no mask): S, DV, DA, DQ, DK against QK, AV; the
    Result's operations are the executor's count of the backward's own."""
    cascade = load_cascade("attention-1pass-bwd-mh")
    result = _bwd("attention-1pass-bwd-mh", MH)
    matmuls = {e.output for e in cascade.einsums if is_matmul(e)}
    assert matmuls == {"S", "DV", "DA", "DQ", "DK"}
    macs = sum(e.ops for e in result.per_einsum if e.einsum in matmuls)
    forward = matmul_flops(load_cascade("attention-1pass-mh"), MH)
    assert 2 * macs == pytest.approx(2.5 * forward, rel=1e-12)
    assert result.flops == count_ops(cascade, MH).flops
    assert {e.einsum: e.unit for e in result.per_einsum} == {
        "D": "array_1d",
        **{t: "array_2d" for t in ("S", "A", "DV", "DA", "DS", "DQ", "DK")},
    }


def test_traffic_from_first_principles() -> None:
    """One head, 1024 x 1024, E = F = 64, key blocks of 256 keys: four blocks.

    The pre-pass reads DO and O once and writes D; the loop reads K and V once, Q, DO, LSE
    and D once per key block, writes DQ at every block and reads it at every block but the
    first, and writes DK and DV once. Words are 2 bytes."""
    sizes = dict(M=1024, P=1024, E=64, F=64)
    result = _bwd("attention-1pass-bwd", sizes, key_block=256)
    assert result.extra("key_blocks") == 4
    matrix, row = 1024 * 64 * 2, 1024 * 2
    assert _traffic(result) == {
        "DO": (matrix + 4 * matrix, 0.0),
        "O": (matrix, 0.0),
        "D": (4 * row, row),
        "K": (matrix, 0.0),
        "V": (matrix, 0.0),
        "Q": (4 * matrix, 0.0),
        "LSE": (4 * row, 0.0),
        "DQ": (3 * matrix, 4 * matrix),
        "DV": (0.0, matrix),
        "DK": (0.0, matrix),
    }
    # none of the key x query tensors moves
    assert not {"S", "A", "DA", "DS"} & set(_traffic(result))
    # buffer: K, V, DK, DV of 256 keys, Q, DO, LSE, D, DQ of 256 query rows
    occupancy = {o.tensor: o.peak_bytes for o in result.occupancy}
    assert occupancy["K, V, DV, DK (key block)"] == 256 * 4 * 64 * 2
    assert occupancy["Q, LSE, DO, D, DQ (query tile)"] == 256 * (3 * 64 + 2) * 2
    assert occupancy["total"] == 256 * 4 * 64 * 2 + 256 * (3 * 64 + 2) * 2


def test_one_key_block_reads_no_dq_back() -> None:
    result = _bwd("attention-1pass-bwd-mh", MH)
    assert result.extra("key_block") == 4096 and result.extra("key_blocks") == 1
    assert _traffic(result)["DQ"] == (0.0, 8 * 4096 * 128 * 2)


def test_the_key_block_respects_the_buffer() -> None:
    """A smaller buffer budget: a smaller key block (never more than the budget holds) and
    more DRAM traffic; one too small for a single key tile says the state does not fit."""
    sizes = dict(MH, M=16384, P=16384)
    previous_block, previous_bytes = float("inf"), 0.0
    for budget in (16 << 20, 4 << 20, 1 << 20, 512 << 10):
        result = _bwd("attention-1pass-bwd-mh", sizes, buffer_budget_bytes=budget)
        total = next(o.peak_bytes for o in result.occupancy if o.tensor == "total")
        assert total <= budget
        assert result.extra("key_block") <= previous_block
        assert result.dram_traffic_bytes >= previous_bytes
        assert not fit_problem(result)
        previous_block, previous_bytes = result.extra("key_block"), result.dram_traffic_bytes
    assert previous_block < 16384
    tiny = _bwd("attention-1pass-bwd-mh", sizes, buffer_budget_bytes=64 << 10)
    assert tiny.extra("key_block") == 256 and tiny.extra("search_feasible") == 0
    assert "on-chip state of one key block of 256 keys" in fit_problem(tiny)


def test_a_given_key_block_is_checked() -> None:
    too_big = _bwd("attention-1pass-bwd-mh", dict(MH, M=32768, P=32768), key_block=32768)
    assert "exceeds the global_buffer capacity" in fit_problem(too_big)
    with pytest.raises(MappingError, match="not a multiple of the key tile"):
        _bwd("attention-1pass-bwd-mh", MH, key_block=300)
    with pytest.raises(MappingError, match="key_block=512 applies to backward cascades only"):
        _bwd("attention-1pass-mh", MH, key_block=512)


def test_causal_skips_the_empty_tiles_of_every_einsum() -> None:
    dense = _bwd("attention-1pass-bwd-mh", MH)
    causal = _bwd("attention-1pass-bwd-mh-causal", MH)
    # 16 x 16 tiles of 256 x 256: 136 computed (16 of them partial), 120 skipped
    assert _busy(causal, "array_2d") / _busy(dense, "array_2d") == pytest.approx(
        136 / 256, rel=0.01
    )
    assert any("136 of 256 tiles" in w for w in causal.warnings)
    assert causal.latency_s / dense.latency_s == pytest.approx(0.54, abs=0.03)
    # query tiles are loaded for the key blocks they see: with 8 blocks, 36 of 64 pairs
    blocked = _bwd("attention-1pass-bwd-mh-causal", MH, key_block=512)
    assert blocked.extra("streamed_share") == 36 / 64
    q_bytes = 8 * 4096 * 128 * 2
    assert _traffic(blocked)["Q"][0] == pytest.approx(8 * 36 / 64 * q_bytes)
    # DQ: written at every visit, read at every visit but a query tile's first
    assert _traffic(blocked)["DQ"] == pytest.approx((3.5 * q_bytes, 4.5 * q_bytes))


def test_gqa_sums_dk_and_dv_over_the_group_on_chip() -> None:
    """4 query heads share each K/V head: the same work as 8 x 4 heads of MHA, K and V read
    and DK, DV written once per K/V head."""
    gqa = _bwd("attention-1pass-bwd-gqa", dict(B=1, G=8, R=4, M=4096, P=4096, E=128, F=128))
    mha = _bwd("attention-1pass-bwd-mh", dict(MH, H=32))
    assert _busy(gqa, "array_2d") == pytest.approx(_busy(mha, "array_2d"))
    kv_head = 4096 * 128 * 2
    for name in ("K", "V"):
        assert _traffic(gqa)[name] == (8 * kv_head, 0.0)
        assert _traffic(mha)[name] == (32 * kv_head, 0.0)
    for name in ("DK", "DV"):
        assert _traffic(gqa)[name] == (0.0, 8 * kv_head)
    assert _traffic(gqa)["DQ"] == _traffic(mha)["DQ"]
    assert any("query group R (4 query heads" in w for w in gqa.warnings)
    causal = _bwd(
        "attention-1pass-bwd-gqa-causal", dict(B=1, G=8, R=4, M=4096, P=4096, E=128, F=128)
    )
    assert any("tiles of 64 queries x 256 keys" in w for w in causal.warnings)


@pytest.mark.parametrize("causal", ["", "-causal"])
@pytest.mark.parametrize("length", [1024, 8192])
def test_fused_backward_beats_the_unfused_one(causal: str, length: int) -> None:
    sizes = dict(MH, M=length, P=length)
    name = f"attention-1pass-bwd-mh{causal}"
    fused = _bwd(name, sizes)
    unfused = get_mapper("unfused")().map(load_cascade(name), ARCH, sizes)
    assert fused.latency_s < unfused.latency_s / 3
    assert fused.dram_traffic_bytes < unfused.dram_traffic_bytes / 5
    assert fused.energy_pj < unfused.energy_pj
    assert fused.flops == unfused.flops


def test_backward_takes_about_two_and_a_half_forwards() -> None:
    forward = FuseMaxMapper().map(load_cascade("attention-1pass-mh"), ARCH, dict(MH))
    backward = _bwd("attention-1pass-bwd-mh", MH)
    assert backward.latency_s / forward.latency_s == pytest.approx(2.43, abs=0.05)
    assert backward.bound == "compute"


def test_step_cascade_binds_the_element_wise_einsums_to_the_1d_array() -> None:
    """FLAT-like binding: the five matmuls on the 2D array, A and DS on the 1D array, whose
    tiles cross between the arrays through the buffer."""
    result = _bwd("attention-1pass-bwd-mh", MH, step="cascade")
    units = {e.einsum: e.unit for e in result.per_einsum}
    assert {t for t, u in units.items() if u == "array_1d"} == {"D", "A", "DS"}
    crossing = next(o for o in result.occupancy if "between arrays" in o.tensor)
    assert crossing.tensor == "S, A, DA, DS (tiles between arrays)"
    assert crossing.peak_bytes == 4 * 256 * 256 * 2
    assert result.latency_s > 2 * _bwd("attention-1pass-bwd-mh", MH).latency_s


def test_an_array_without_exp_moves_the_einsum_and_says_so() -> None:
    result = FuseMaxMapper().map(load_cascade("attention-1pass-bwd-mh"), load_arch("flat"), MH)
    assert "A: array_2d lacks exp; bound to array_1d instead" in result.warnings
    assert {e.einsum: e.unit for e in result.per_einsum}["A"] == "array_1d"


def test_sigmoid_backward_has_no_prepass_and_no_statistics() -> None:
    result = _bwd("attention-1pass-bwd-mh-sigmoid", MH)
    assert set(_traffic(result)) == {"Q", "K", "V", "DO", "DQ", "DK", "DV"}
    assert result.extra("prepass_cycles") == 0


def test_recompute_versus_store_is_stated() -> None:
    result = _bwd("attention-1pass-bwd-mh", MH)
    note = next(w for w in result.warnings if w.startswith("recompute vs store"))
    assert "S, A, DA, DS stay on chip" in note
    assert "recomputed from the forward's inputs instead of stored: S, A" in note
    assert "the forward stored O, LSE" in note
    assert result.extra("recomputed_ops") > 0


RENAMED = """
cascade: renamed-1pass-bwd-mh-causal
inputs: {QQ: [B, H, E, P], KK: [B, H, E, M], VV: [B, H, F, M], OO: [B, H, F, P],
         STAT: [B, H, P], GO: [B, H, F, P]}
einsums:
  - RS[b,h,p] = GO[b,h,f,p] * OO[b,h,f,p]
  - SC[b,h,m,p] = QQ[b,h,e,p] * KK[b,h,e,m] where m <= p
  - W[b,h,m,p] = exp(SC[b,h,m,p] - STAT[b,h,p]) where m <= p
  - GV[b,h,f,m] = W[b,h,m,p] * GO[b,h,f,p] where m <= p
  - GW[b,h,m,p] = GO[b,h,f,p] * VV[b,h,f,m] where m <= p
  - GS[b,h,m,p] = W[b,h,m,p] * (GW[b,h,m,p] - RS[b,h,p]) where m <= p
  - GQ[b,h,e,p] = GS[b,h,m,p] * KK[b,h,e,m] where m <= p
  - GK[b,h,e,m] = GS[b,h,m,p] * QQ[b,h,e,p] where m <= p
outputs: [GQ, GK, GV]
"""


def test_tensors_are_read_from_the_structure_not_their_names() -> None:
    builtin = _bwd("attention-1pass-bwd-mh-causal", MH, key_block=1024)
    renamed = FuseMaxMapper(FuseMaxOptions(key_block=1024)).map(
        load_cascade_text(RENAMED), ARCH, dict(MH)
    )
    for field in ("latency_cycles", "energy_pj", "dram_traffic_bytes", "flops"):
        assert getattr(renamed, field) == pytest.approx(getattr(builtin, field), rel=1e-12)
    assert _traffic(renamed)["GQ"] == _traffic(builtin)["DQ"]
    assert _traffic(renamed)["STAT"] == _traffic(builtin)["LSE"]


@pytest.mark.parametrize(
    "name", ["attention-3pass-bwd-mh", "attention-3pass-bwd-gqa-causal", "attention-3pass-bwd"]
)
def test_the_3pass_backward_is_refused_saying_why(name: str) -> None:
    sizes = {k: v for k, v in MH.items() if k in load_cascade(name).all_ranks}
    with pytest.raises(MappingError) as info:
        _bwd(name, sizes)
    text = str(info.value)
    assert "reads the stored key x query tensor(s) A" in text
    assert "takes 2 passes over M" in text
    assert "map a 1-pass backward (attention-1pass-bwd*)" in text and "unfused mapper" in text


def _edited(old: str, new: str) -> str:
    assert old in RENAMED
    return RENAMED.replace(old, new)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            _edited("STAT: [B, H, P]", "STAT: [B, H, P], TEMP: [B, H]").replace(
                "- STAT[b,h,p])", "- STAT[b,h,p]) * TEMP[b,h]"
            ),
            "input TEMP carries neither the key rank M nor the query rank P",
        ),
        (
            _edited(
                "  - SC[b,h,m,p] = QQ[b,h,e,p] * KK[b,h,e,m]",
                "  - K2[b,h,e,m] = KK[b,h,e,m] * KK[b,h,e,m]\n"
                "  - SC[b,h,m,p] = QQ[b,h,e,p] * K2[b,h,e,m]",
            ),
            "iterates the keys but not the queries",
        ),
        (
            _edited("outputs: [GQ, GK, GV]", "outputs: [GQ, GK, GV, GS]"),
            "a key x query output",
        ),
    ],
)
def test_what_the_dataflow_does_not_model_is_refused(text: str, message: str) -> None:
    with pytest.raises(MappingError, match=message):
        FuseMaxMapper().map(load_cascade_text(text), ARCH, dict(MH))


def test_options_the_backward_does_not_use_are_named() -> None:
    result = _bwd("attention-1pass-bwd-mh", MH, p1=2, artifact_compat=True, step="arch")
    assert any(w.startswith("p1=2 ignored") for w in result.warnings)
    assert any(w.startswith("artifact_compat: no quirk") for w in result.warnings)
    assert any(w.startswith("step arch binds and schedules the backward as binding")
               for w in result.warnings)  # fmt: skip
    assert result.latency_s == _bwd("attention-1pass-bwd-mh", MH).latency_s
    with pytest.raises(MappingError, match="no chunk to search"):
        _bwd("attention-1pass-bwd-mh", MH, chunk_search=True)


def test_flat_maps_a_backward_with_its_own_dataflow() -> None:
    """FLAT's backward (test_flat_bwd.py) is its own mapping, not this one's."""
    result = get_mapper("flat")().map(load_cascade("attention-1pass-bwd-mh"), ARCH, dict(MH))
    assert result.mapper == "flat"


def test_the_result_round_trips() -> None:
    result = _bwd("attention-1pass-bwd-gqa-causal", dict(B=1, G=2, R=4, M=2048, P=1024, E=64, F=64))
    assert Result.from_json(result.to_json()) == result
    assert all(0 <= u.utilization <= 1 for u in result.units)
