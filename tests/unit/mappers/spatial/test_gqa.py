"""Shared tensors: K and V of grouped-query attention are read once per KV head."""

from __future__ import annotations

import pytest

from attnsim.archs.load import load_arch
from attnsim.einsum_ir import Cascade, load_cascade_text
from attnsim.einsum_ir.analysis.structure import attention_problem
from attnsim.mappers.result import Result
from attnsim.mappers.spatial.fusemax import FuseMaxMapper
from attnsim.mappers.spatial.unfused import UnfusedMapper

THREE_PASS = """
cascade: three-{name}
inputs: {{Q: [{q}E, P], K: [{kv}E, M], V: [{kv}F, M]}}
einsums:
  - QK[{qi}m,p] = Q[{qi}e,p] * K[{ki}e,m]
  - GM[{qi}p] = max[m](QK[{qi}m,p])
  - SN[{qi}m,p] = exp(QK[{qi}m,p] - GM[{qi}p])
  - SD[{qi}p] = SN[{qi}m,p]
  - A[{qi}m,p] = SN[{qi}m,p] / SD[{qi}p]
  - AV[{qi}f,p] = A[{qi}m,p] * V[{ki}f,m]
outputs: [AV]
"""

ONE_PASS = """
cascade: one-{name}
inputs: {{Q: [{q}E, P], K: [{kv}E, M], V: [{kv}F, M]}}
partitions: {{M: [M1, M0]}}
params: {{M0: 256}}
init: {{RM: -inf, RD: 0, RNV: 0}}
einsums:
  - QK[{qi}m1,m0,p] = Q[{qi}e,p] * K[{ki}e,m1,m0]
  - LM[{qi}m1,p] = max[m0](QK[{qi}m1,m0,p])
  - RM[{qi}m1+1,p] = max(RM[{qi}m1,p], LM[{qi}m1,p])
  - SLN[{qi}m1,m0,p] = exp(QK[{qi}m1,m0,p] - RM[{qi}m1+1,p])
  - SLD[{qi}m1,p] = SLN[{qi}m1,m0,p]
  - PRM[{qi}m1,p] = exp(RM[{qi}m1,p] - RM[{qi}m1+1,p])
  - SPD[{qi}m1,p] = PRM[{qi}m1,p] * RD[{qi}m1,p]
  - RD[{qi}m1+1,p] = SPD[{qi}m1,p] + SLD[{qi}m1,p]
  - SLNV[{qi}m1,f,p] = SLN[{qi}m1,m0,p] * V[{ki}f,m1,m0]
  - SPNV[{qi}m1,f,p] = PRM[{qi}m1,p] * RNV[{qi}m1,f,p]
  - RNV[{qi}m1+1,f,p] = SPNV[{qi}m1,f,p] + SLNV[{qi}m1,f,p]
  - AV[{qi}f,p] = RNV[{qi}M1,f,p] / RD[{qi}M1,p]
outputs: [AV]
"""


def gqa(template: str) -> Cascade:
    """Q[B,G,R,E,P] with K/V[B,G,...]: G KV heads, R query heads per KV head."""
    return load_cascade_text(
        template.format(name="gqa", q="B, G, R, ", kv="B, G, ", qi="b,g,r,", ki="b,g,")
    )


def mha(template: str) -> Cascade:
    return load_cascade_text(
        template.format(name="mha", q="B, H, ", kv="B, H, ", qi="b,h,", ki="b,h,")
    )


def kv_read_bytes(r: Result) -> float:
    return sum(t.read_bytes for t in r.traffic if t.tensor in ("K", "V"))


H, G = 32, 8
# Sizes at which every query row of an instance (R x P packed rows for GQA) keeps its
# state on chip, so K/V are streamed once per (KV) head; the 3-pass form buffers two
# key x query rows per query and needs shorter sequences for that.
SIZES = {
    "3pass": {"B": 2, "E": 128, "F": 128, "P": 512, "M": 1024},
    "1pass": {"B": 2, "E": 128, "F": 128, "P": 2048, "M": 4096},
}
TEMPLATES = {"3pass": THREE_PASS, "1pass": ONE_PASS}


@pytest.mark.parametrize("form", ["3pass", "1pass"])
@pytest.mark.parametrize("mapper", [FuseMaxMapper(), UnfusedMapper()], ids=["fusemax", "unfused"])
def test_gqa_reads_kv_once_per_kv_head(form: str, mapper: FuseMaxMapper) -> None:
    arch = load_arch("fusemax")
    grouped, multi = gqa(TEMPLATES[form]), mha(TEMPLATES[form])
    g_sizes = {**SIZES[form], "G": G, "R": H // G}
    h_sizes = {**SIZES[form], "H": H}
    ap = attention_problem(grouped, g_sizes)
    assert ap.sharing_of("K") == ap.sharing_of("V") == ("R",)
    a = mapper.map(grouped, arch, g_sizes)
    b = mapper.map(multi, arch, h_sizes)
    if mapper.name == "fusemax":
        assert a.extra("p2") == b.extra("p2") == 1  # all query rows resident
    assert kv_read_bytes(a) == pytest.approx(kv_read_bytes(b) * G / H, rel=1e-12)
    # the same attention otherwise: equal work, equal Q reads and output writes
    assert a.flops == b.flops
    for tensor in ("Q", "AV"):
        (ta,) = [t for t in a.traffic if t.tensor == tensor]
        (tb,) = [t for t in b.traffic if t.tensor == tensor]
        assert ta.total_bytes == tb.total_bytes
    assert a.dram_traffic_bytes < b.dram_traffic_bytes
    assert a.energy_pj < b.energy_pj


def test_fusemax_restreams_kv_per_query_block_when_packed_rows_do_not_fit() -> None:
    # 3-pass at M = 4096: the buffer holds 512 rows, so a KV head's K/V are streamed once
    # per block of 512 packed rows (128 positions x 4 heads): R times as many blocks as an
    # MHA head has, on G = H / R heads. The reads follow the blocks, not a fixed G / H.
    arch = load_arch("fusemax")
    sizes = {"B": 2, "E": 128, "F": 128, "P": 2048, "M": 4096}
    a = FuseMaxMapper().map(gqa(THREE_PASS), arch, {**sizes, "G": G, "R": H // G})
    b = FuseMaxMapper().map(mha(THREE_PASS), arch, {**sizes, "H": H})
    assert a.extra("p2") > 1 and a.extra("p0") * a.extra("p1") == b.extra("p0") * b.extra("p1")
    blocks = (G * a.extra("p2")) / (H * b.extra("p2"))
    assert kv_read_bytes(a) / kv_read_bytes(b) == pytest.approx(blocks, rel=1e-12)
