"""PINE on every mapper: its work follows the construction, or it is refused with a reason.

The construction (per head, E = half the head dim, layout PRE + 4 docs of DOC + question):
the importance pass scores every (query, key) pair of `importance` below with the full head
dim (2 E multiply-adds, no V), the attention pass every pair of `attention` (2 E + F
multiply-adds), plus per-pair softmax work, (4 + 1) rotated copies of each non-prefix query
and one rotation of K. The spatial mappers that have the units price the counted work (the
FLOPs of `count_ops`); FLAT lowers cos/sin onto its 1D array as FuseMax does, then finds
one of the two key x query contractions its dataflow maps (the scores are sums over the
rotated halves), and the GPU mappers refuse the rotated halves QA, QB, KA, KB (their
kernels take one Q, K and V).
"""

from __future__ import annotations

import numpy as np
import pytest

from attnsim.einsum_ir import count_ops, load_cascade
from attnsim.einsum_ir.analysis.ops import OpKind
from attnsim.einsum_ir.library import zoo_masks as zm
from attnsim.mappers.registry import get_mapper
from attnsim.mappers.spatial.view import MappingError
from tests.contract.test_zoo_mapping import MAPPERS, run

NAME = "attention-pine"
PRE, DOC, HALF, F, N, HEADS = 64, 128, 16, 32, 1024, 2
SIZES = {"B": 1, "H": HEADS, "E": HALF, "F": F, "P": N, "M": N, "PRE": PRE, "DOC": DOC}


def pairs() -> tuple[int, int]:
    """(importance, attention) visible pairs per head, from PINE's definition."""
    p, m = np.arange(N)[:, None], np.arange(N)[None, :]
    docs = zm.PINE_DOCS

    def doc_of(x: np.ndarray) -> np.ndarray:
        return np.where((x >= PRE) & (x < PRE + docs * DOC), (x - PRE) // DOC, -1)

    other_doc = (doc_of(m) >= 0) & (doc_of(m) != doc_of(p))
    importance = other_doc & (p >= PRE)
    attention = (m <= p) | (other_doc & (doc_of(p) >= 0))
    return int(importance.sum()), int(attention.sum())


def construction_flops() -> int:
    """Score and value multiply-adds of both passes (2 FLOPs each), all heads."""
    first, second = pairs()
    return HEADS * (2 * 2 * HALF * first + 2 * (2 * HALF + F) * second)


@pytest.mark.parametrize("mapper", ["fusemax", "unfused"])
def test_spatial_flops_follow_the_two_passes(mapper: str) -> None:
    result = run(mapper, NAME, SIZES)
    assert result is not None
    counted = count_ops(load_cascade(NAME), SIZES)
    negations = counted.total[OpKind.NEG]  # a sign flip: free on the arrays
    assert result.flops == pytest.approx(counted.flops - negations, rel=1e-12)
    first, second = pairs()
    main = construction_flops()
    # softmax work per pair (exp, max, sums, the per-region merge), the rotations and the
    # O(P) ranking work on top of the multiply-adds
    rotations = HEADS * HALF * ((zm.PINE_DOCS + 1) * N + N) * 8
    assert main < result.flops <= main + HEADS * 16 * (first + second) + rotations
    dense = run(
        mapper, "attention-1pass-mh", {"B": 1, "H": HEADS, "E": 2 * HALF, "F": F, "P": N, "M": N}
    )
    assert dense is not None and result.flops > 1.3 * dense.flops * second / N**2
    warnings = " ".join(result.warnings)
    assert "cascade assumption: PINE" in warnings and "cos approximated" in warnings
    assert "mask" in warnings  # the mapper says whose conditions its tiles follow


def test_flat_refuses_the_importance_pass() -> None:
    with pytest.raises(MappingError, match="FLAT maps two key x query contractions.* has 1"):
        from attnsim.archs.load import load_arch

        get_mapper("flat")().map(load_cascade(NAME), load_arch("fusemax"), SIZES)


@pytest.mark.parametrize("mapper", [m for m in MAPPERS if m.startswith("gpu-")])
def test_gpu_mappers_refuse_the_rotated_halves(mapper: str) -> None:
    from attnsim.archs.load import load_arch

    sizes = {**SIZES, "P": 1} if mapper == "gpu-decode" else SIZES
    with pytest.raises(MappingError, match="cannot price inputs QA, QB, KA, KB, V"):
        get_mapper(mapper)().map(load_cascade(NAME), load_arch("h200"), sizes)
