"""The score and normalization built-ins on every mapper: priced by construction, or refused.

The expected work is computed here from the sizes, per (batch, head), 2 FLOPs per MAC:

- sink logit and ACT: the softmax attention's work plus per-row terms (ACT: the sink
  accumulators over S keys and their rescale per key tile); the GPU kernels price the sink
  logit as plain softmax attention and say so, with the row terms' count of operations; they
  refuse ACT (its sink and rest accumulators: no kernel keeps two per row);
- GPSA: plus the positional product PP . V, 2 P M F;
- RCMHA: plus the relative-position contraction (Q + w) . R[p - m], 2 P M E, and the sum
  of the two score terms (P M);
- Kronecker: 2 P M N (E + F) dominant, cubic;
- GAAM: no (query, key) problem: refused by every mapper.

GPSA, RCMHA and Kronecker attention have terms no GPU kernel models (a keys x queries
input, an offset table, a second key rank): the GPU mappers refuse them, naming why.
"""

from __future__ import annotations

import pytest

from attnsim.archs.load import load_arch
from attnsim.einsum_ir import count_ops, load_cascade
from attnsim.mappers.registry import get_mapper, mapper_names
from attnsim.mappers.result import Result
from attnsim.mappers.spatial.view import MappingError

MAPPERS = [m for m in mapper_names() if m not in ("layer-matmuls", "gpu-bwd", "gpu-lightning")]
GPU_TILING = {"block_m": 64, "block_n": 64, "num_warps": 4, "num_stages": 2}
E = F = 32
N = 16
SIZES = {"B": 1, "H": 2, "E": E, "F": F, "P": 1024, "M": 1024}
HEADS = SIZES["B"] * SIZES["H"]
PM = SIZES["P"] * SIZES["M"]
GPU = [m for m in MAPPERS if m.startswith("gpu-")]
SPATIAL = [m for m in MAPPERS if not m.startswith("gpu-")]
REFUSED_ON_GPU = {
    "attention-gpsa": "keys x queries input (PP: a bias",
    "attention-rcmha": "R over D",
    "attention-kronecker": "K2 over N; V2 over N",
}


def run(mapper: str, name: str, given: dict[str, int]) -> Result | None:
    """The mapper's Result, or None when it refuses (with a reason of some length)."""
    gpu = mapper.startswith("gpu-")
    fields = set(get_mapper(mapper).Options.__dataclass_fields__)
    tiling = {**GPU_TILING, "rank_candidates": False} if gpu else {}
    options = {k: v for k, v in tiling.items() if k in fields}
    try:
        arch = load_arch("h200" if gpu else "fusemax")
        return get_mapper(mapper)(**options).map(load_cascade(name), arch, given)
    except MappingError as exc:
        assert len(str(exc)) > 20, f"{mapper} refuses {name} without a reason: {exc}"
        return None


def sizes(name: str, mapper: str, **extra: int) -> dict[str, int]:
    symbols = set(load_cascade(name).size_symbols)
    out = {k: v for k, v in {**SIZES, **extra}.items() if k in symbols}
    if mapper == "gpu-decode":
        out["P"] = 1
    return out


def dense(mapper: str) -> Result | None:
    return run(mapper, "attention-1pass-mh", sizes("attention-1pass-mh", mapper))


def extra_flops(name: str, mapper: str) -> float:
    """Mapped FLOPs of `name` less those of dense 1-pass attention at the same sizes."""
    result = run(mapper, name, sizes(name, mapper, N=N, D=2047))
    base = dense(mapper)
    assert result is not None and base is not None, f"{mapper} refuses {name}"
    return result.flops - base.flops


@pytest.mark.parametrize("mapper", MAPPERS)
def test_gaam_is_refused_everywhere(mapper: str) -> None:
    assert run(mapper, "attention-gaam", {"B": 1, "H": 2, "F": F, "M": 1024}) is None


@pytest.mark.parametrize("mapper", GPU)
@pytest.mark.parametrize("name", sorted(REFUSED_ON_GPU))
def test_gpu_refuses_terms_its_kernels_lack(mapper: str, name: str) -> None:
    with pytest.raises(MappingError, match=REFUSED_ON_GPU[name].replace("(", r"\(")):
        get_mapper(mapper)().map(
            load_cascade(name), load_arch("h200"), sizes(name, mapper, N=N, D=2047)
        )


@pytest.mark.parametrize("mapper", GPU)
def test_gpu_prices_the_sink_logit_as_softmax_attention_and_says_so(mapper: str) -> None:
    name = "attention-sink-logit"
    result = run(mapper, name, sizes(name, mapper))
    base = dense(mapper)
    assert result is not None and base is not None
    assert result.flops == base.flops
    assert any("score parameters SB" in w for w in result.warnings)
    rows = SIZES["P"] if mapper != "gpu-decode" else 1
    counted = count_ops(load_cascade(name), sizes(name, mapper)).per_einsum
    sd = next(r.flops for r in counted if r.output == "SD")
    assert sd == 3 * HEADS * rows  # exp, add, subtract per row
    (note,) = [w for w in result.warnings if w.startswith("row terms SD")]
    assert f"({sd:.4g} ops," in note and "not counted" in note


@pytest.mark.parametrize("mapper", GPU)
def test_gpu_refuses_act_split_accumulators(mapper: str) -> None:
    with pytest.raises(MappingError, match=r"split over 2 accumulators \(SLNV, SSNV"):
        get_mapper(mapper)().map(
            load_cascade("attention-act"), load_arch("h200"), sizes("attention-act", mapper)
        )


@pytest.mark.parametrize("mapper", SPATIAL)
def test_spatial_sink_logit_adds_row_work_only(mapper: str) -> None:
    result = run(mapper, "attention-sink-logit", sizes("attention-sink-logit", mapper))
    if result is None:
        pytest.skip(f"{mapper} refuses it")
    extra = extra_flops("attention-sink-logit", mapper)
    assert 0 < extra <= 4 * HEADS * SIZES["P"]  # SD: exp, add, subtract per row


@pytest.mark.parametrize("mapper", SPATIAL)
def test_spatial_gpsa_adds_the_positional_product(mapper: str) -> None:
    if run(mapper, "attention-gpsa", sizes("attention-gpsa", mapper)) is None:
        pytest.skip(f"{mapper} refuses it")
    positional = 2 * HEADS * PM * F
    assert extra_flops("attention-gpsa", mapper) == pytest.approx(positional, rel=0.01)


@pytest.mark.parametrize("mapper", SPATIAL)
def test_spatial_rcmha_adds_the_relative_contraction(mapper: str) -> None:
    if run(mapper, "attention-rcmha", sizes("attention-rcmha", mapper, D=2047)) is None:
        pytest.skip(f"{mapper} refuses it")
    relative = 2 * HEADS * PM * E + HEADS * PM  # (Q + w) . R per pair, then SC + SR
    biases = 2 * HEADS * E * SIZES["P"]  # Q + u, Q + w
    assert extra_flops("attention-rcmha", mapper) == relative + biases
    cascade = load_cascade("attention-rcmha")
    ops = count_ops(cascade, sizes("attention-rcmha", mapper, D=2047))
    sr = next(e for e in ops.per_einsum if e.output == "SR")
    assert sr.points == HEADS * PM * E  # one row of R per pair: the offset is pinned


@pytest.mark.parametrize("mapper", SPATIAL)
def test_spatial_act_adds_the_sink_accumulators(mapper: str) -> None:
    if run(mapper, "attention-act", sizes("attention-act", mapper)) is None:
        pytest.skip(f"{mapper} refuses it")
    s, tiles = 1, SIZES["M"] // 64  # S = 1 sink; key tiles of the cascade's M0 = 64
    rows = HEADS * SIZES["P"]
    sinks = rows * s * (2 * F + 1)  # SSD, SSNV over the sink keys
    rescale = 2 * rows * tiles * (F + 1)  # RSD, RSNV at every key tile
    final = rows * (3 * F + 8)  # TD, CR, AV
    assert 0 < extra_flops("attention-act", mapper) <= sinks + rescale + final


@pytest.mark.parametrize("mapper", SPATIAL)
def test_spatial_kronecker_work_is_cubic(mapper: str) -> None:
    result = run(mapper, "attention-kronecker", sizes("attention-kronecker", mapper, N=N))
    if result is None:
        pytest.skip(f"{mapper} refuses it")
    pairs = 2 * HEADS * PM * N * (E + F)  # scores and value contraction over M x N pairs
    assert pairs <= result.flops <= 1.1 * pairs
