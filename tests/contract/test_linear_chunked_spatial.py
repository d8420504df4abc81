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
