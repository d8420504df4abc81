"""CAB's four patterns (causal or not x self or cross) on every algorithm and every mapper.

Cross attention has P != M; causal cross attention is aligned bottom-right (`-causal-br`).
Every mapper maps each pattern (or refuses it with a reason), and its FLOPs are the counted
visible points: a spatial mapper's equal `count_ops` of the cascade (every scalar
operation of the executor's iteration spaces), a GPU mapper's the matmul convention
2 * (E + F) per visible (query, key) pair of every head.
"""

from __future__ import annotations

import pytest

from attnsim.archs.load import load_arch
from attnsim.einsum_ir import count_ops, load_cascade
from attnsim.einsum_ir.analysis.structure import attention_problem
from attnsim.einsum_ir.library.builder import Algorithm
from attnsim.mappers.registry import get_mapper, mapper_names
from attnsim.mappers.spatial.view import MappingError

PATTERNS = {  # name suffix, (P, M)
    "self": ("", (384, 384)),
    "causal-self": ("-causal", (384, 384)),
    "cross": ("", (192, 640)),
    "causal-cross": ("-causal-br", (192, 640)),
}
MAPPERS = [m for m in mapper_names() if m != "layer-matmuls"]
GPU_TILING = {"block_m": 64, "block_n": 64, "num_warps": 4, "num_stages": 2}


@pytest.mark.parametrize("mapper", MAPPERS)
@pytest.mark.parametrize("algorithm", [str(a) for a in Algorithm])
@pytest.mark.parametrize("pattern", PATTERNS)
def test_pattern_maps_with_counted_flops(mapper: str, algorithm: str, pattern: str) -> None:
    suffix, (p, m) = PATTERNS[pattern]
    name = f"attention-{algorithm}-mh{suffix}"
    cascade = load_cascade(name)
    sizes = {"B": 1, "H": 2, "P": p, "M": m, "E": 32, "F": 16}
    gpu = mapper.startswith("gpu-")
    fields = set(get_mapper(mapper).Options.__dataclass_fields__)
    options = {k: v for k, v in {**GPU_TILING, "rank_candidates": False}.items() if k in fields}
    options = options if gpu else {}
    if mapper == "gpu-decode" and not suffix:  # one query per sequence (a causal P = 1 is not)
        sizes["P"] = 1
    arch = load_arch("h200" if gpu else "fusemax")
    try:
        result = get_mapper(mapper)(**options).map(cascade, arch, sizes)
    except MappingError as exc:
        assert str(exc)
        pytest.skip(f"{mapper} refuses {name}: {exc}")
    ap = attention_problem(cascade, sizes)
    if gpu:
        expect = 2.0 * (32 + 16) * ap.points() * ap.instances * ap.query_group
    else:
        expect = float(count_ops(cascade, sizes).flops)
    assert result.flops == pytest.approx(expect, rel=1e-12)
    if pattern.startswith("causal"):
        dense = attention_problem(load_cascade(f"attention-{algorithm}-mh"), sizes)
        assert ap.points() < dense.points()
