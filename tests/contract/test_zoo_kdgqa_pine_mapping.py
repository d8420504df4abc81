"""KDGQA on every mapper: its work follows the construction, or it is refused with a reason.

The construction (sizes B, H query heads, G K/V heads, P, M, E, F): a norm pre-pass of
B G M E multiply-adds over K, an allocation of G-sized work, the per-head gather of K and V
(B H G M (E + F) multiply-adds, a one-hot contraction) and GQA's attention, H P M (E + F)
multiply-adds per batch: not G times it. The GPU mappers refuse it (their kernels read
K/V by head; no kernel of theirs gathers a computed K/V head per query head).
"""

from __future__ import annotations

import pytest

from attnsim.einsum_ir import count_ops, load_cascade
from attnsim.einsum_ir.library.zoo_base import ZooCascade
from attnsim.einsum_ir.library.zoo_heads import ENTRIES
from attnsim.mappers.registry import get_mapper
from attnsim.mappers.spatial.view import MappingError
from tests.contract.test_zoo_mapping import MAPPERS, run

NAME = "attention-kdgqa"
SIZES = {"B": 2, "H": 8, "G": 4, "E": 32, "F": 32, "P": 512, "M": 1024}


def entry() -> ZooCascade:
    return next(e for e in ENTRIES if e.name == NAME)


def test_the_counted_work_follows_the_construction() -> None:
    b, h, g, e, f, p, m = (SIZES[k] for k in ("B", "H", "G", "E", "F", "P", "M"))
    per = {x.output: x for x in count_ops(load_cascade(NAME), SIZES).per_einsum}
    assert per["NB"].points == b * g * m * e  # the norm pre-pass
    assert per["KH"].points == b * h * g * m * e and per["VH"].points == b * h * g * m * f
    assert per["QK"].points == b * h * p * m * e  # GQA's scores: H heads, not G x H
    assert per["SLNV"].points == b * h * p * m * f


@pytest.mark.parametrize("mapper", [m for m in MAPPERS if not m.startswith("gpu-")])
def test_spatial_flops_are_the_attention_plus_pre_pass_and_gather(mapper: str) -> None:
    result = run(mapper, NAME, SIZES)
    if result is None:  # FLAT: no place for the pre-pass's square root on its 1D array
        return
    dense = run(mapper, "attention-1pass-mh", {k: v for k, v in SIZES.items() if k != "G"})
    assert dense is not None
    b, h, g, e, f, m = (SIZES[k] for k in ("B", "H", "G", "E", "F", "M"))
    construction = 2 * b * g * m * e + 2 * b * h * g * m * (e + f)
    extra = result.flops - dense.flops
    assert 0 <= extra - construction <= 64 * (h * g + b * g)  # + the allocation, O(H G)
    assert result.flops == pytest.approx(count_ops(load_cascade(NAME), SIZES).flops, rel=1e-12)
    assert any("cascade assumption" in w and "imbalance" in w for w in result.warnings)


def test_fusemax_reads_the_keys_once_per_pass() -> None:
    result = run("fusemax", NAME, SIZES)
    assert result is not None
    reads = {t.tensor: t.read_bytes for t in result.traffic if t.level == "dram"}
    assert reads["K"] == pytest.approx(2 * reads["V"], rel=1e-12)  # E == F: K twice, V once
    assert entry().passes == 2


@pytest.mark.parametrize("mapper", [m for m in MAPPERS if m.startswith("gpu-")])
def test_gpu_mappers_refuse_the_computed_head_gather(mapper: str) -> None:
    from attnsim.archs.load import load_arch

    sizes = {**SIZES, "P": 1} if mapper == "gpu-decode" else SIZES
    with pytest.raises(MappingError, match="K/V over G"):
        get_mapper(mapper)().map(load_cascade(NAME), load_arch("h200"), sizes)
