"""Every zoo built-in on every mapper: priced in kind, or refused with a reason.

For the static masks, the mapped work follows the mask computed from the paper's
predicate (numpy, not the cascade's bands) within tile granularity:

- GPU mappers: matmul FLOPs are 2 (E + F) per visible pair, and the tiles the kernel model
  visits (`tiles_full + tiles_partial` at its block sizes) are the tiles of the numpy mask
  with a visible pair;
- spatial mappers: FLOPs are the cascade's counted operations, and the per-point Einsums'
  cycles relative to dense attention are the share of visited tiles at the tiling the
  mapper reports ("tiles of Q queries x K keys").
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from attnsim.archs.load import load_arch
from attnsim.einsum_ir import count_ops, load_cascade
from attnsim.einsum_ir.analysis.structure import MaskKind, StructureError, attention_problem
from attnsim.einsum_ir.library import ZOO
from attnsim.einsum_ir.library import zoo_heads as zm_heads
from attnsim.einsum_ir.library import zoo_masks as zm
from attnsim.einsum_ir.library.zoo_base import STATIC_MASKS
from attnsim.einsum_ir.reference_zoo import (
    aki_visible,
    block_visible,
    ccam_visible,
    moa_visible,
    sinklora_visible,
    vdit_visible,
)
from attnsim.mappers.registry import get_mapper, mapper_names
from attnsim.mappers.result import Result
from attnsim.mappers.spatial.view import MappingError

BoolArray = npt.NDArray[np.bool_]
# gpu-bwd prices backward built-ins only (tests/contract/test_training_refused.py) and
# gpu-lightning Lightning-2's function only (its own tests): both take part in the first test
MAPPERS = [m for m in mapper_names() if m not in ("layer-matmuls", "gpu-bwd", "gpu-lightning")]
GPU_TILING = {"block_m": 64, "block_n": 64, "num_warps": 4, "num_stages": 2}
E = F = 32
SIZES = {"B": 1, "H": 2, "E": E, "F": F, "P": 1024, "M": 1024}
MOA_WINDOWS = (16, 32, 64, 128)  # classes of 256 tokens at M = 1024
CROSS = {
    "attention-video-ccam": {"P": 512, "M": 1024},
    "attention-moa": {f"W{x}": w for x, w in enumerate(MOA_WINDOWS)},
}

# The paper's mask at (P, M), from the numpy references (integer division, not bands).
VISIBLE: dict[str, Callable[[int, int], BoolArray]] = {
    "attention-sinklora": lambda p, m: sinklora_visible(p, m, zm.SINKS_DEFAULT, zm.LONGLORA_GROUPS),
    "attention-fit": lambda p, m: block_visible(p, m, zm.FIT_GROUPS),
    "attention-lga": lambda p, m: block_visible(p, m, zm.LGA_GROUPS),
    "attention-aki": lambda p, m: aki_visible(p, m, zm.PRE_DEFAULT, zm.IMG_DEFAULT, zm.TXT_DEFAULT),
    "attention-video-ccam": lambda p, m: ccam_visible(p, m, zm.CCAM_FRAMES),
    "attention-efficient-vdit": lambda p, m: vdit_visible(p, m, zm.VDIT_FRAMES, zm.VDIT_GLOBAL),
    "attention-moa": lambda p, m: moa_visible(p, m, zm.SINKS_DEFAULT, MOA_WINDOWS),
}


def sizes_for(name: str, mapper: str) -> dict[str, int]:
    symbols = set(load_cascade(name).size_symbols)
    sizes = {k: v for k, v in {**SIZES, **CROSS.get(name, {})}.items() if k in symbols}
    if mapper == "gpu-decode":
        sizes["P"] = 1
    return sizes


def run(mapper: str, name: str, sizes: dict[str, int] | None = None) -> Result | None:
    gpu = mapper.startswith("gpu-")
    fields = set(get_mapper(mapper).Options.__dataclass_fields__)
    given = {**GPU_TILING, "rank_candidates": False} if gpu else {}
    options = {k: v for k, v in given.items() if k in fields}
    try:
        return get_mapper(mapper)(**options).map(
            load_cascade(name),
            load_arch("h200" if gpu else "fusemax"),
            sizes if sizes is not None else sizes_for(name, mapper),
        )
    except MappingError as exc:
        message = str(exc)
        assert len(message) > 20, f"{mapper} refuses {name} without a reason: {message!r}"
        return None


def tile_classes(visible: BoolArray, block_q: int, block_k: int) -> tuple[int, int]:
    """(visited, full) tiles of a boolean (P, M) mask cut into block_q x block_k tiles."""
    n_q, n_k = visible.shape
    visited = full = 0
    for q0 in range(0, n_q, block_q):
        for k0 in range(0, n_k, block_k):
            tile = visible[q0 : q0 + block_q, k0 : k0 + block_k]
            visited += bool(tile.any())
            full += bool(tile.all()) and tile.shape == (block_q, block_k)
    return visited, full


@pytest.mark.parametrize("mapper", [*MAPPERS, "gpu-lightning"])
@pytest.mark.parametrize("name", [e.name for e in ZOO])
def test_priced_in_kind_or_refused_with_a_reason(mapper: str, name: str) -> None:
    result = run(mapper, name)
    if result is None:
        return
    assert result.flops > 0 and result.latency_s > 0
    try:
        ap = attention_problem(load_cascade(name), sizes_for(name, mapper))
    except StructureError as exc:  # no (query, key) score problem: linear attention's state
        if mapper == "gpu-lightning":  # reads the carried state itself (its own tests)
            assert any("lightning_fwd" in w for w in result.warnings), result.warnings
            return
        # priced all the same: the result must say that it read the rank roles by letter
        assert any(str(exc) in w for w in result.warnings), result.warnings
        return
    if not ap.mask.is_dense:  # a priced mask is said to be priced
        assert any("mask" in w for w in result.warnings), result.warnings


# Two attention passes with different masks (importance, then attention): the band read
# from the first score Einsum is not the attention's; tests/contract/test_zoo_pine_mapping.py
OWN_MASK_CHECKS = frozenset({"attention-pine"})


def test_every_static_mask_is_priced_by_some_mapper_or_is_generic() -> None:
    for entry in ZOO:
        if entry.family != STATIC_MASKS or entry.name in OWN_MASK_CHECKS:
            continue
        ap = attention_problem(load_cascade(entry.name), sizes_for(entry.name, "fusemax"))
        priced = [m for m in MAPPERS if run(m, entry.name) is not None]
        assert priced or ap.mask.kind == MaskKind.GENERIC, entry.name
        assert (entry.name in VISIBLE) == (ap.mask.kind != MaskKind.GENERIC)


@pytest.mark.parametrize("mapper", [m for m in MAPPERS if m.startswith("gpu-")])
@pytest.mark.parametrize("name", sorted(VISIBLE))
def test_gpu_work_follows_the_mask(mapper: str, name: str) -> None:
    result = run(mapper, name)
    if result is None:
        pytest.skip(f"{mapper} refuses {name}")
    sizes = sizes_for(name, mapper)
    visible = VISIBLE[name](sizes["P"], sizes["M"])
    pairs = int(visible.sum())
    heads = sizes["B"] * sizes["H"]
    assert result.flops == pytest.approx(2.0 * (E + F) * pairs * heads, rel=1e-12)
    extras = dict(result.extras)
    assert extras["mask_points"] == pairs
    visited, full = tile_classes(visible, GPU_TILING["block_m"], GPU_TILING["block_n"])
    assert extras["tiles_full"] + extras["tiles_partial"] == visited
    assert extras["tiles_full"] <= full  # a tile covered by two bands together is masked


@pytest.mark.parametrize("mapper", [m for m in MAPPERS if not m.startswith("gpu-")])
@pytest.mark.parametrize("name", sorted(VISIBLE))
def test_spatial_work_follows_the_mask(mapper: str, name: str) -> None:
    result = run(mapper, name)
    sizes = sizes_for(name, mapper)
    dense = run(mapper, "attention-1pass-mh", {k: sizes[k] for k in ("B", "H", "E", "F", "P", "M")})
    assert result is not None and dense is not None
    assert result.flops == pytest.approx(count_ops(load_cascade(name), sizes).flops, rel=1e-12)
    visible = VISIBLE[name](sizes["P"], sizes["M"])
    qk = count_ops(load_cascade(name), sizes).per_einsum[0]
    assert qk.points == E * int(visible.sum()) * sizes["B"] * sizes["H"]
    tiling = re.compile(r"tiles of (\d+) queries x (\d+) keys")
    found = next(f for w in result.warnings if (f := tiling.search(w)))
    block_q, block_k = (int(g) for g in found.groups())
    visited, _ = tile_classes(visible, block_q, block_k)
    tiles = -(-sizes["P"] // block_q) * -(-sizes["M"] // block_k)
    cycles = {e.einsum: e.compute_cycles for e in result.per_einsum}
    dense_cycles = {e.einsum: e.compute_cycles for e in dense.per_einsum}
    assert cycles["SLNV"] / dense_cycles["SLNV"] == pytest.approx(visited / tiles, rel=1e-9)


# ----------------------------------------------------------------------------- head structure


def same_costs(a: Result | None, b: Result | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    costs = [(r.flops, r.dram_traffic_bytes, r.latency_s) for r in (a, b)]
    return costs[0] == costs[1]


@pytest.mark.parametrize("mapper", MAPPERS)
def test_bam_is_priced_as_grouped_query_attention(mapper: str) -> None:
    """Shared K/V across X experts is GQA with X query heads per K/V head: same costs."""
    base = {"B": 1, "E": E, "F": F, "M": 1024, "P": 1 if mapper == "gpu-decode" else 512}
    bam = run(mapper, "attention-bam", {**base, "H": 2, "X": 4})
    gqa = run(mapper, "attention-1pass-gqa", {**base, "G": 2, "R": 4})
    assert same_costs(bam, gqa)
    mha = run(mapper, "attention-1pass-mh", {**base, "H": 8})
    if bam is not None and mha is not None:  # X experts' queries share one K/V read
        assert bam.dram_traffic_bytes < mha.dram_traffic_bytes


@pytest.mark.parametrize("mapper", MAPPERS)
def test_moh_work_follows_the_active_queries(mapper: str) -> None:
    """P is each head's number of active queries: halving it halves the attention FLOPs."""
    base = {"B": 1, "H": 8, "E": E, "F": F, "M": 1024}
    full = run(mapper, "attention-moh", {**base, "P": 1 if mapper == "gpu-decode" else 1024})
    if full is None or mapper == "gpu-decode":
        return
    half = run(mapper, "attention-moh", {**base, "P": 512})
    assert half is not None
    assert half.flops == pytest.approx(full.flops / 2, rel=0.02)
    assert same_costs(half, run(mapper, "attention-1pass-mh", {**base, "P": 512}))


@pytest.mark.parametrize("mapper", MAPPERS)
def test_sigma_reads_keys_and_values_by_their_own_head_counts(mapper: str) -> None:
    sizes = {"B": 1, "E": 64, "F": 128, "M": 2048, "P": 1 if mapper == "gpu-decode" else 2048}
    result = run(mapper, "attention-sigma", sizes)
    if result is None:  # refused: the reason names the differing K and V sharing
        gpu = mapper.startswith("gpu-")
        reason = "K and V shared across different ranks" if gpu else "grouped differently"
        with pytest.raises(MappingError, match=reason):
            arch = load_arch("h200" if gpu else "fusemax")
            get_mapper(mapper)().map(load_cascade("attention-sigma"), arch, sizes)
        return
    reads = {t.tensor: t.read_bytes for t in result.traffic if t.level == "dram"}
    g, gv = zm_heads.SIGMA_KEY_HEADS, zm_heads.SIGMA_VALUES_PER_KEY
    assert reads["K"] / reads["V"] == pytest.approx(g * 64 / (g * gv * 128), rel=1e-9)
