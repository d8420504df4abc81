"""The compression and pooled-memory built-ins on the mappers: work follows the construction.

Each mapper prices a built-in in kind or refuses it with a reason (`test_zoo_mapping`
checks that for every zoo built-in). Here the priced work is checked against counts
computed independently from the sizes and the papers' rules: SeqBoat's window on the
compacted tokens (GPU matmul FLOPs 2 (E + F) per visible pair), LongVQ's codebook (work
linear in M: M S and P S terms, no P M term), CCA's core tokens plus adaptive window and
Agent attention's agents (priced by the unfused mapper when every tile is computed; the
default options refuse their non-band masks).
"""

from __future__ import annotations

import pytest

from attnsim.archs.load import load_arch
from attnsim.einsum_ir import count_ops, load_cascade
from attnsim.einsum_ir.reference_compress import cca_mask, seqboat_visible
from attnsim.mappers.registry import get_mapper, mapper_names
from attnsim.mappers.result import Result
from attnsim.mappers.spatial.view import MappingError

MAPPERS = [m for m in mapper_names() if m not in ("layer-matmuls", "gpu-bwd", "gpu-lightning")]
GPU = [m for m in MAPPERS if m.startswith("gpu-")]
SPATIAL = [m for m in MAPPERS if not m.startswith("gpu-")]
GPU_TILING = {"block_m": 64, "block_n": 64, "num_warps": 4, "num_stages": 2}
E = F = 32


def run(mapper: str, name: str, sizes: dict[str, int], **options: object) -> Result | None:
    """The mapper's Result, or None when it refuses (with a reason of some length)."""
    gpu = mapper.startswith("gpu-")
    fields = set(get_mapper(mapper).Options.__dataclass_fields__)
    given = {**GPU_TILING, "rank_candidates": False, **options} if gpu else options
    try:
        return get_mapper(mapper)(**{k: v for k, v in given.items() if k in fields}).map(
            load_cascade(name), load_arch("h200" if gpu else "fusemax"), sizes
        )
    except MappingError as exc:
        assert len(str(exc)) > 20, f"{mapper} refuses {name} without a reason: {exc}"
        return None


def points(name: str, sizes: dict[str, int]) -> dict[str, int]:
    return {e.output: e.points for e in count_ops(load_cascade(name), sizes).per_einsum}


# ----------------------------------------------------------------------------- SeqBoat

SEQBOAT = {"B": 3, "E": E, "F": F, "P": 1024, "M": 1024, "W": 100}


@pytest.mark.parametrize("mapper", [m for m in GPU if m != "gpu-decode"])
def test_seqboat_gpu_flops_follow_the_window_on_the_compacted_tokens(mapper: str) -> None:
    result = run(mapper, "attention-seqboat", SEQBOAT)
    assert result is not None
    pairs = int(seqboat_visible(1024, 1024, 100).sum())
    assert result.flops == pytest.approx(2.0 * (E + F) * pairs * 3, rel=1e-12)
    assert any("compacted length" in w for w in result.warnings)


def test_seqboat_decode_is_refused_for_its_window() -> None:
    assert run("gpu-decode", "attention-seqboat", {**SEQBOAT, "P": 1}) is None


@pytest.mark.parametrize("mapper", SPATIAL)
def test_seqboat_spatial_flops_are_the_windowed_operations(mapper: str) -> None:
    result = run(mapper, "attention-seqboat", SEQBOAT)
    assert result is not None
    assert result.flops == pytest.approx(
        count_ops(load_cascade("attention-seqboat"), SEQBOAT).flops
    )
    pairs = int(seqboat_visible(1024, 1024, 100).sum())
    assert points("attention-seqboat", SEQBOAT)["QK"] == E * pairs * 3
    dense = run(mapper, "attention-1pass", {k: SEQBOAT[k] for k in ("E", "F", "P", "M")})
    assert dense is not None and result.flops < 3 * dense.flops * 0.25


# ----------------------------------------------------------------------------- LongVQ

VQ = {"B": 1, "H": 2, "E": E, "F": F, "P": 512, "M": 8192, "S": 256}


def _vq_matmul_macs(sizes: dict[str, int]) -> int:
    """Assignment M S E, codeword sums M S F, queries P S (E + F), per batch and head."""
    m, p, s = sizes["M"], sizes["P"], sizes["S"]
    return sizes["B"] * sizes["H"] * (m * s * (E + F) + p * s * (E + F))


@pytest.mark.parametrize("mapper", MAPPERS)
def test_longvq_work_follows_the_codebook(mapper: str) -> None:
    sizes = {**VQ, "P": 1} if mapper == "gpu-decode" else VQ
    result = run(mapper, "attention-longvq", sizes)
    if result is None:  # the GPU kernels and FLAT price a score per (query, key) pair
        assert mapper.startswith("gpu-") or mapper == "flat"
        return
    assert result.flops == pytest.approx(count_ops(load_cascade("attention-longvq"), sizes).flops)
    macs = _vq_matmul_macs(sizes)
    # the MACs (2 operations each) plus element-wise work of a few operations per M S and
    # P S point: no P M term (dense attention here would be 2 (E + F) P M H = 1.07e9)
    assert 2 * macs < result.flops < 1.1 * 2 * macs
    assert any("codeword assignment" in w for w in result.warnings)


# ----------------------------------------------------------------------------- CCA

CCA = {"B": 1, "H": 2, "E": E, "F": F, "P": 2048, "M": 2048, "M0": 16, "W": 256}


@pytest.mark.parametrize("mapper", GPU)
def test_cca_group_aligned_window_is_refused_by_the_gpu_mappers(mapper: str) -> None:
    """Its local window is aligned to its own groups (m0, the key tile): no kernel follows it."""
    sizes = {**CCA, "P": 1} if mapper == "gpu-decode" else CCA
    assert run(mapper, "attention-cca", sizes) is None


@pytest.mark.parametrize("mapper", ["fusemax", "unfused"])
def test_cca_spatial_work_follows_core_tokens_and_local_tiles(mapper: str) -> None:
    """The group-aligned window reads as one band per group (key tile): the local Einsums
    run on the window's tiles (whole tiles: at least the visible pairs, at most the tiles
    the window touches), the core Einsums (one key per group) at exactly their own pairs."""
    result = run(mapper, "attention-cca", CCA)
    assert result is not None
    per = points("attention-cca", CCA)
    for core in ("CS", "SCV"):
        assert result.einsum(core).ops == per[core]
        assert any(f"{core}: its condition pins the key" in w for w in result.warnings)
    local = cca_mask(2048, 16, 256)[:, -2048:]  # the keys after the pooled core tokens
    touched = sum(
        16 * 256 for q0 in range(0, 2048, 256) for k0 in range(0, 2048, 16)
        if local[q0:q0 + 256, k0:k0 + 16].any()
    )  # fmt: skip
    heads = CCA["B"] * CCA["H"]
    # QK, the score Einsum, also pays the mask's compare-select per pair of a partial tile
    for name, per_pair in (("QK", E + 1), ("SLNV", F)):
        assert per[name] <= result.einsum(name).ops <= heads * touched * per_pair


def test_cca_work_follows_core_tokens_and_local_keys() -> None:
    visible = cca_mask(2048, 16, 256)
    pools = visible.shape[1] - 2048
    core, local = int(visible[:, :pools].sum()), int(visible[:, pools:].sum())
    per = points("attention-cca", CCA)
    assert per["CS"] == 2 * E * core and per["QK"] == 2 * E * local
    assert per["SCV"] == 2 * F * core and per["SLNV"] == 2 * F * local
    assert core + local < 0.3 * 2048 * 2049 / 2  # under a third of dense causal here
    result = run("unfused", "attention-cca", CCA, skip_empty_tiles=False)
    assert result is not None
    assert result.flops == pytest.approx(count_ops(load_cascade("attention-cca"), CCA).flops)
    assert any("masked tiles computed (skip_empty_tiles=false)" in w for w in result.warnings)


# ----------------------------------------------------------------------------- Agent attention

AGENT = {"B": 1, "H": 2, "E": E, "F": F, "P": 3136, "M": 3136, "J": 49, "U0": 64}


@pytest.mark.parametrize("mapper", MAPPERS)
def test_agent_is_refused_by_default(mapper: str) -> None:
    sizes = {**AGENT, "P": 1} if mapper == "gpu-decode" else AGENT
    assert run(mapper, "attention-agent", sizes) is None


def test_agent_work_follows_the_agents() -> None:
    per = points("attention-agent", AGENT)
    heads, agents = 2, 49  # 3136 / 64 = 49 pools
    assert per["SA"] == heads * agents * 3136 * E and per["SLNV"] == heads * agents * 3136 * F
    assert per["SB"] == heads * 3136 * agents * E and per["SNV"] == heads * 3136 * agents * F
    result = run("unfused", "attention-agent", AGENT, skip_empty_tiles=False)
    assert result is not None
    assert result.flops == pytest.approx(count_ops(load_cascade("attention-agent"), AGENT).flops)
    macs = heads * 2 * agents * 3136 * (E + F)
    assert 2 * macs < result.flops < 2.2 * macs  # vs dense 2 (E + F) P M per head: 64x more
