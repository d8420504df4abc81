"""The selection built-ins on every mapper: work follows the selected count, not M.

Computed here from the sizes (not from the cascades): the attention over the selection is
B H P N (E + F) multiply-adds for HCAM (N = k x N0 selected keys) and B H U I N (E + F) for
Routing (I queries and N keys per cluster); the selectors add HCAM's pooling M E and summary
scores P U E, and Routing's assignment (P + M) U E. The spatial mappers that price them
count exactly the cascade's operations; the GPU mappers refuse them, naming the selector's
inputs (their kernels run attention only), and FLAT refuses the selector's contraction.
"""

from __future__ import annotations

import pytest

from attnsim.archs.load import load_arch
from attnsim.einsum_ir import count_ops, load_cascade
from attnsim.mappers.registry import get_mapper, mapper_names
from attnsim.mappers.result import Result
from attnsim.mappers.spatial.view import MappingError

B, H, E, F, P = 1, 2, 32, 32, 512
HCAM = {"B": B, "H": H, "E": E, "F": F, "P": P, "M0": 16, "N0": 16, "N": 64}
ROUTING = {"B": B, "H": H, "E": E, "F": F, "U": 16, "I": P // 16, "N": 64, "N0": 64}
MAPPERS = [m for m in mapper_names() if m not in ("layer-matmuls", "gpu-bwd", "gpu-lightning")]
SPATIAL = [m for m in MAPPERS if not m.startswith("gpu-") and m != "flat"]


def run(mapper: str, name: str, sizes: dict[str, int]) -> Result:
    gpu = mapper.startswith("gpu-")
    return get_mapper(mapper)().map(
        load_cascade(name), load_arch("h200" if gpu else "fusemax"), sizes
    )


def points(name: str, sizes: dict[str, int]) -> dict[str, int]:
    return {str(o.output): o.points for o in count_ops(load_cascade(name), sizes).per_einsum}


def hcam_macs(m: int, n: int) -> dict[str, int]:
    chunks = -(-m // HCAM["M0"])
    heads = B * H
    return {
        "KT": heads * E * m,  # pooling: every memory key once
        "KS": heads * E * chunks,  # one divide per summary
        "CS": heads * P * chunks * E,  # summary scores
        "QK": heads * P * n * E,  # attention inside the selected chunks only
        "SLNV": heads * P * n * F,
    }


@pytest.mark.parametrize(("m", "n"), [(1024, 64), (4096, 64), (1024, 128), (1000, 48)])
def test_hcam_work_follows_the_selected_chunks(m: int, n: int) -> None:
    sizes = {**HCAM, "M": m, "N": n}
    found = points("attention-hcam", sizes)
    for tensor, macs in hcam_macs(m, n).items():
        assert found[tensor] == macs, tensor
    for mapper in SPATIAL:
        result = run(mapper, "attention-hcam", sizes)
        assert result.flops == pytest.approx(count_ops(load_cascade("attention-hcam"), sizes).flops)
        assert any("cascade assumption: HCAM" in w for w in result.warnings)
        # the Result's passes count the chunks' keys N; the memory M takes 2 (selector, picks)
        note = f"passes: {result.passes} over the attention's own keys; over M"
        assert any(w.startswith(note) and "takes 2" in w for w in result.warnings)


def test_hcam_attention_does_not_grow_with_the_memory() -> None:
    """4x the memory adds only the selector's terms (pooling and summary scores)."""
    for mapper in SPATIAL:
        small = run(mapper, "attention-hcam", {**HCAM, "M": 1024})
        large = run(mapper, "attention-hcam", {**HCAM, "M": 4096})
        extra_chunks = (4096 - 1024) // HCAM["M0"]
        # summary scores (a multiply-add per point), pooling sums, one divide per summary
        selector = B * H * (2 * P * extra_chunks * E + (4096 - 1024) * E + extra_chunks * E)
        assert large.flops - small.flops == pytest.approx(selector)


@pytest.mark.parametrize(
    ("m", "clusters", "window"), [(1024, 16, 64), (4096, 64, 64), (900, 9, 100)]
)
def test_routing_work_follows_the_cluster_windows(m: int, clusters: int, window: int) -> None:
    sizes = {**ROUTING, "M": m, "P": m, "U": clusters, "I": m // clusters, "N": window}
    found = points("attention-routing", sizes)
    heads = B * H
    assert found["QU"] == heads * m * clusters * E  # assignment of the queries
    assert found["KU"] == heads * m * clusters * E  # ... and of the keys
    assert found["QK"] == heads * clusters * (m // clusters) * window * E  # = P w E
    assert found["SLNV"] == heads * m * window * F
    for mapper in SPATIAL:
        result = run(mapper, "attention-routing", sizes)
        assert result.flops == pytest.approx(
            count_ops(load_cascade("attention-routing"), sizes).flops
        )


@pytest.mark.parametrize("mapper", [m for m in MAPPERS if m.startswith("gpu-")])
@pytest.mark.parametrize(
    ("name", "sizes", "inputs"),
    [
        ("attention-hcam", {**HCAM, "M": 1024}, "K over M"),
        ("attention-routing", {**ROUTING, "M": 1024, "P": 1024}, "Q over P; K over M"),
    ],
)
def test_gpu_mappers_refuse_the_selector(
    mapper: str, name: str, sizes: dict[str, int], inputs: str
) -> None:
    if mapper == "gpu-decode":
        sizes = {**sizes, "P": 1}
    with pytest.raises(MappingError, match=rf"\({inputs}\).*selector's operands"):
        run(mapper, name, sizes)


@pytest.mark.parametrize(
    ("name", "sizes"),
    [("attention-hcam", {**HCAM, "M": 1024}), ("attention-routing", {**ROUTING, "M": 1024})],
)
def test_flat_refuses_the_selector_contraction(name: str, sizes: dict[str, int]) -> None:
    with pytest.raises(MappingError, match="does not iterate the key rank N"):
        run("flat", name, {**sizes, "P": 512})


# ----------------------------------------------------------------------------- HiP, DCAL

HIP = {"B": B, "H": H, "E": E, "F": F, "I": 32, "U": 4, "N": 512, "N0": 256, "J": 512}


@pytest.mark.parametrize(("m", "rounds"), [(8192, 3), (32768, 5), (131072, 7)])
def test_hip_work_follows_the_kept_blocks_and_the_tree_walk(m: int, rounds: int) -> None:
    """P k b_k (E + F) for the attention plus P 2k E per round, not P M."""
    sizes = {**HIP, "M": m, "M0": m // HIP["J"], "L": rounds}
    found = points("attention-hip", sizes)
    queries = B * H * HIP["U"] * HIP["I"]  # P = U x b_q rows, every head
    assert found["S0"] == queries * HIP["J"] * E  # round 1: the 2k segment centres
    assert found["SR"] == queries * rounds * HIP["J"] * E  # later rounds: 2k halves each
    assert found["QK"] == queries * HIP["N"] * E  # attention over the k kept blocks
    assert found["SLNV"] == queries * HIP["N"] * F
    for mapper in SPATIAL:
        result = run(mapper, "attention-hip", sizes)
        assert result.flops == pytest.approx(count_ops(load_cascade("attention-hip"), sizes).flops)
        assert result.flops < 2 * queries * m * (E + F) / 4  # far below dense attention
        assert any("cascade assumption: HiP" in w for w in result.warnings)


DCAL = {"B": B, "H": 12, "E": 64, "F": 64, "R": 78, "L": 11, "M0": 256}


@pytest.mark.parametrize("tokens", [785, 197])
def test_dcal_work_is_glca_plus_the_rollout_chain(tokens: int) -> None:
    """GLCA R M (E + F); the chain L H P M E scores and L H P M weighted sums."""
    sizes = {**DCAL, "M": tokens, "P": tokens}
    found = points("attention-dcal", sizes)
    heads = B * DCAL["H"]
    assert found["QK"] == heads * DCAL["R"] * tokens * DCAL["E"]
    assert found["SLNV"] == heads * DCAL["R"] * tokens * DCAL["F"]
    assert found["CQK"] == heads * tokens * DCAL["E"]  # the current layer's CLS row
    assert found["RQK"] == DCAL["L"] * heads * tokens * tokens * DCAL["E"]
    assert found["RA"] == DCAL["L"] * heads * tokens * tokens
    assert found["RO"] == B * DCAL["L"] * tokens  # the identity term: one point per token
    for mapper in SPATIAL:
        result = run(mapper, "attention-dcal", sizes)
        assert result.passes == 2
        assert result.flops == pytest.approx(count_ops(load_cascade("attention-dcal"), sizes).flops)
        # the rollout's per-key Einsums feed another output, not the attention: no MLA reading
        assert not [w for w in result.warnings if "MLA" in w or "latent" in w], mapper


@pytest.mark.parametrize("mapper", [m for m in MAPPERS if m.startswith("gpu-")] + ["flat"])
def test_hip_and_dcal_are_refused_where_not_priced(mapper: str) -> None:
    for name, sizes in (
        ("attention-hip", {**HIP, "M": 8192}),
        ("attention-dcal", {**DCAL, "M": 785, "P": 785}),
    ):
        dcal = name == "attention-dcal" and mapper != "flat"
        reason = "3 outputs \\(AV, CR, RO\\)" if dcal else ""
        with pytest.raises(MappingError, match=reason):
            run(mapper, name, sizes)
