"""Lightning-2's chunked form on the spatial mappers: work follows its chunks, not P x M.

Its intra-chunk mask (causal inside each chunk of M0 keys) reads as one band per chunk, so
only the diagonal chunks are computed (whole, as a tile); the per-query terms written with
`m == p + M - P` are priced at their own pairs; the state work is per chunk. Checked
against the construction: the chunks' pairs counted here, and linear growth in length.
"""

from __future__ import annotations

import re

import pytest

from attnsim.archs.load import load_arch
from attnsim.einsum_ir import count_ops, load_cascade
from attnsim.mappers.registry import get_mapper
from attnsim.mappers.result import Result
from attnsim.mappers.spatial.view import MappingError

B, H, E, F = 1, 4, 64, 64


def run(mapper: str, seq: int, chunk: int) -> Result:
    sizes = {"B": B, "H": H, "E": E, "F": F, "P": seq, "M": seq, "M0": chunk}
    result: Result = get_mapper(mapper)().map(
        load_cascade("attention-lightning-2"), load_arch("fusemax"), sizes
    )
    return result


@pytest.mark.parametrize("mapper", ["fusemax", "unfused"])
@pytest.mark.parametrize(("seq", "chunk"), [(2048, 64), (4096, 128), (3000, 64)])
def test_intra_chunk_work_is_the_diagonal_chunks(mapper: str, seq: int, chunk: int) -> None:
    result = run(mapper, seq, chunk)
    sizes = {"B": B, "H": H, "E": E, "F": F, "P": seq, "M": seq, "M0": chunk}
    per = {
        e.output: e.points
        for e in count_ops(load_cascade("attention-lightning-2"), sizes).per_einsum
    }
    (text,) = [w for w in result.warnings if "tiles of" in w and "computed" in w]
    found = re.search(r"(\d+) of \d+ tiles of (\d+) queries x (\d+) keys", text)
    assert found, text
    visited, rows, keys = (int(g) for g in found.groups())
    assert keys % chunk == 0  # a key tile holds whole chunks (fusemax: the chunk itself)
    # a query tile of `rows` rows meets the chunks on the diagonal: per head, about
    # seq / rows + seq / keys tiles, each computed whole with the mask's compare-select
    # (a ragged last tile less)
    assert visited <= -(-seq // rows) + -(-seq // keys)
    assert per["QK"] <= result.einsum("QK").ops <= B * H * visited * rows * keys * (E + 1)
    assert result.einsum("QK").ops < 0.2 * B * H * seq * seq * E  # far from quadratic
    for pinned in ("QD", "XKV"):  # one key per query: exactly their own pairs
        assert result.einsum(pinned).ops == per[pinned]
        assert any(f"{pinned}: its condition pins the key" in w for w in result.warnings)


def test_time_grows_linearly_with_length() -> None:
    short, long = run("fusemax", 8192, 128), run("fusemax", 65536, 128)
    assert 7.0 < long.latency_s / short.latency_s < 9.0
    assert long.flops / short.flops == pytest.approx(8.0, rel=0.05)


BLOCK_DIAGONAL = """
cascade: block-diag
inputs: {Q: [H, E, P], K: [H, E, M], V: [H, F, M]}
partitions: {M: [M1, M0]}
params: {M0: 128}
einsums:
  - QK[h,m1,m0,p] = Q[h,e,p] * K[h,e,m1,m0] where p - m + m0 < M0 and m - m0 <= p
  - LM[h,m1,p] = max[m0](QK[h,m1,m0,p]) where p - m + m0 < M0 and m - m0 <= p
  - RM[h,m1+1,p] = max(RM[h,m1,p], LM[h,m1,p])
  - SLN[h,m1,m0,p] = exp(QK[h,m1,m0,p] - RM[h,m1+1,p]) where p - m + m0 < M0 and m - m0 <= p
  - SLD[h,m1,p] = SLN[h,m1,m0,p] where p - m + m0 < M0 and m - m0 <= p
  - PRM[h,m1,p] = exp(RM[h,m1,p] - RM[h,m1+1,p])
  - RD[h,m1+1,p] = PRM[h,m1,p] * RD[h,m1,p] + SLD[h,m1,p]
  - SLNV[h,m1,f,p] = SLN[h,m1,m0,p] * V[h,f,m1,m0] where p - m + m0 < M0 and m - m0 <= p
  - RNV[h,m1+1,f,p] = PRM[h,m1,p] * RNV[h,m1,f,p] + SLNV[h,m1,f,p]
  - AV[h,f,p] = RNV[h,M1,f,p] / RD[h,M1,p]
init: {RM: -1e30, RD: 0, RNV: 0}
outputs: [AV]
"""


def test_a_mask_on_the_tile_position_keeps_the_cascades_tile() -> None:
    """Blocks of M0 = 128 (each query sees its own block): a mapper that binds its own key
    tile would change the blocks, so the cascade's M0 stays; the GPU mappers refuse."""
    from attnsim.einsum_ir import load_cascade_text

    cascade = load_cascade_text(BLOCK_DIAGONAL, "block.yaml")
    sizes = {"H": 2, "E": E, "F": F, "P": 4096, "M": 4096}
    result = get_mapper("fusemax")().map(cascade, load_arch("fusemax"), sizes)
    assert dict(result.sizes)["M0"] == 128
    visible = 4096 * 128  # per head: each query sees the 128 keys of its block
    per = {e.output: e.points for e in count_ops(cascade, sizes).per_einsum}
    assert per["QK"] == 2 * visible * E  # 2 heads
    # computed on 256-query x 128-key tiles: the diagonal block of each, whole
    assert per["QK"] <= result.einsum("QK").ops <= 2 * 4096 * 256 * (E + 1)
    with pytest.raises(MappingError, match="position inside the cascade's key tile"):
        get_mapper("gpu-1pass")().map(cascade, load_arch("h200"), sizes)
