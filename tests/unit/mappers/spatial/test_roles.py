"""Spatial mappers read rank roles from the cascade's structure, never from its letters."""

from __future__ import annotations

import pytest

from attnsim.archs.load import load_arch
from attnsim.einsum_ir import load_cascade, load_cascade_text
from attnsim.mappers.spatial.fusemax import FuseMaxMapper, FuseMaxOptions
from attnsim.mappers.spatial.unfused import UnfusedMapper

# attention-1pass-mh-causal with every rank renamed: B->N, H->A, E->X, F->Y, P->T, M->J
# (J1/J0 its key tiles), and every tensor renamed too.
RENAMED_1PASS = """
cascade: renamed-1pass-mh-causal
inputs: {QQ: [N, A, X, T], KK: [N, A, X, J], VV: [N, A, Y, J]}
partitions: {J: [J1, J0]}
params: {J0: 256}
init: {RMAX: -inf, RDEN: 0, RNUM: 0}
einsums:
  - S[n,a,j1,j0,t] = QQ[n,a,x,t] * KK[n,a,x,j1,j0] where j <= t
  - TM[n,a,j1,t] = max[j0](S[n,a,j1,j0,t]) where j <= t
  - RMAX[n,a,j1+1,t] = max(RMAX[n,a,j1,t], TM[n,a,j1,t])
  - EX[n,a,j1,j0,t] = exp(S[n,a,j1,j0,t] - RMAX[n,a,j1+1,t]) where j <= t
  - TS[n,a,j1,t] = EX[n,a,j1,j0,t] where j <= t
  - FX[n,a,j1,t] = exp(RMAX[n,a,j1,t] - RMAX[n,a,j1+1,t])
  - SC[n,a,j1,t] = FX[n,a,j1,t] * RDEN[n,a,j1,t]
  - RDEN[n,a,j1+1,t] = SC[n,a,j1,t] + TS[n,a,j1,t]
  - TO[n,a,j1,y,t] = EX[n,a,j1,j0,t] * VV[n,a,y,j1,j0] where j <= t
  - SO[n,a,j1,y,t] = FX[n,a,j1,t] * RNUM[n,a,j1,y,t]
  - RNUM[n,a,j1+1,y,t] = SO[n,a,j1,y,t] + TO[n,a,j1,y,t]
  - OUT[n,a,y,t] = RNUM[n,a,J1,y,t] / RDEN[n,a,J1,t]
outputs: [OUT]
"""

RENAMED_3PASS = """
cascade: renamed-3pass-mh
inputs: {QQ: [N, A, X, T], KK: [N, A, X, J], VV: [N, A, Y, J]}
einsums:
  - S[n,a,j,t] = QQ[n,a,x,t] * KK[n,a,x,j]
  - GMX[n,a,t] = max[j](S[n,a,j,t])
  - EX[n,a,j,t] = exp(S[n,a,j,t] - GMX[n,a,t])
  - DEN[n,a,t] = EX[n,a,j,t]
  - W[n,a,j,t] = EX[n,a,j,t] / DEN[n,a,t]
  - OUT[n,a,y,t] = W[n,a,j,t] * VV[n,a,y,j]
outputs: [OUT]
"""

LETTERS = {"B": "N", "H": "A", "E": "X", "F": "Y", "P": "T", "M": "J"}


def _same(a: float, b: float) -> None:
    assert b == pytest.approx(a, rel=1e-12)


@pytest.mark.parametrize(
    ("builtin", "text"),
    [("attention-1pass-mh-causal", RENAMED_1PASS), ("attention-3pass-mh", RENAMED_3PASS)],
)
@pytest.mark.parametrize(
    "mapper", ["fusemax-binding", "fusemax-arch", "fusemax-cascade", "unfused"]
)
def test_renamed_letters_map_like_the_builtin(builtin: str, text: str, mapper: str) -> None:
    sizes = {"B": 2, "H": 4, "E": 64, "F": 64, "P": 3000, "M": 5000}
    renamed_sizes = {LETTERS[k]: v for k, v in sizes.items()}
    arch = load_arch("fusemax")
    m = (
        UnfusedMapper()
        if mapper == "unfused"
        else FuseMaxMapper(FuseMaxOptions(mapper.split("-")[1]))
    )
    a = m.map(load_cascade(builtin), arch, sizes)
    b = m.map(load_cascade_text(text), arch, renamed_sizes)
    for field in ("latency_cycles", "compute_cycles", "energy_pj", "dram_traffic_bytes", "flops"):
        _same(getattr(a, field), getattr(b, field))
    assert [u.busy_cycles for u in a.units] == pytest.approx([u.busy_cycles for u in b.units])
    assert sorted(t.total_bytes for t in a.traffic) == pytest.approx(
        sorted(t.total_bytes for t in b.traffic)
    )
    assert dict(a.extras) == dict(b.extras)
