"""Spatial mappers price masks from the tile classification of their own tiling."""

from __future__ import annotations

import pytest

from attnsim import einsum_ir
from attnsim.archs.load import load_arch
from attnsim.einsum_ir import load_cascade, load_cascade_text
from attnsim.einsum_ir.analysis.structure import attention_problem
from attnsim.einsum_ir.load import builtin_text
from attnsim.mappers.result import Result
from attnsim.mappers.spatial.fusemax import FuseMaxMapper, FuseMaxOptions
from attnsim.mappers.spatial.unfused import UnfusedMapper, UnfusedOptions
from attnsim.mappers.spatial.view import MappingError

BIG = {"B": 1, "H": 2, "E": 128, "F": 128, "P": 16384, "M": 16384}


def variant(name: str, cond: str, params: str = "") -> einsum_ir.Cascade:
    """Built-in causal cascade `name` with its `m <= p` replaced by `cond`."""
    text = builtin_text(name).replace("where m <= p", f"where {cond}")
    if params:
        if "params: {" in text:
            text = text.replace("params: {", "params: {" + params + ", ")
        else:
            text = text.replace("inputs:", "params: {" + params + "}\ninputs:", 1)
    return load_cascade_text(text.replace(f"cascade: {name}", f"cascade: {name}-variant"))


def window(name: str) -> einsum_ir.Cascade:
    return variant(name, "m <= p and p - m < W", "W: 512")


def cycles(r: Result) -> dict[str, float]:
    return {e.einsum: e.compute_cycles for e in r.per_einsum}


def traffic_of(r: Result, tensor: str) -> tuple[float, float]:
    (item,) = [t for t in r.traffic if t.tensor == tensor]
    return item.read_bytes, item.write_bytes


def share(cascade: einsum_ir.Cascade, sizes: dict[str, int], rows: int, keys: int) -> float:
    tiles = attention_problem(cascade, sizes).tiles(rows, keys)
    return tiles.visited / tiles.tiles


@pytest.mark.parametrize("name", ["attention-1pass-mh-causal", "attention-3pass-mh-causal"])
def test_fusemax_window_follows_the_visited_tiles(name: str) -> None:
    arch = load_arch("fusemax")
    full = FuseMaxMapper().map(load_cascade(name.replace("-causal", "")), arch, BIG)
    cascade = window(name)
    win = FuseMaxMapper().map(cascade, arch, BIG)
    f = share(cascade, BIG, arch.array_2d.rows, arch.array_2d.cols)
    tiles = attention_problem(cascade, BIG).tiles(arch.array_2d.rows, arch.array_2d.cols)
    assert f < 0.05
    score = win.per_einsum[0].einsum
    pairs = BIG["B"] * BIG["H"] * BIG["P"] * BIG["M"]
    selects = pairs * tiles.partial / tiles.tiles / arch.array_2d.lanes  # `max`: 1 cycle
    for einsum, c in cycles(win).items():
        dense = cycles(full)[einsum]
        if einsum == score:
            assert c == pytest.approx(dense * f + selects, rel=1e-6)
        elif einsum != "AV" or "3pass" in name:  # the 1-pass final division is per row
            assert c == pytest.approx(dense * f, rel=1e-6)
    # the per-tile rescale on the 1D array is masked too: the whole latency follows
    assert win.compute_cycles / full.compute_cycles < 1.2 * f
    assert win.energy_pj / full.energy_pj < 1.2 * f
    assert win.flops < full.flops
    assert any("3907 empty skipped" in w for w in win.warnings)


def test_fusemax_without_skipping_is_dense_and_says_so() -> None:
    arch = load_arch("fusemax")
    full = FuseMaxMapper().map(load_cascade("attention-1pass-mh"), arch, BIG)
    dense = FuseMaxMapper(FuseMaxOptions(skip_empty_tiles=False)).map(
        window("attention-1pass-mh-causal"), arch, BIG
    )
    for einsum, c in cycles(dense).items():
        if einsum != "QK":  # the score pays the mask's compare-selects on top
            assert c == cycles(full)[einsum]
    assert cycles(dense)["QK"] > cycles(full)["QK"]
    assert dense.energy_pj >= full.energy_pj and dense.latency_cycles >= full.latency_cycles
    (warning,) = [w for w in dense.warnings if "masked tiles computed" in w]
    assert "window W=512" in warning and "3.08% of (query, key) pairs visible" in warning


def test_unfused_window_moves_scores_of_visited_tiles_only() -> None:
    arch = load_arch("fusemax")
    name = "attention-3pass-mh-causal"
    full = UnfusedMapper().map(load_cascade("attention-3pass-mh"), arch, BIG)
    cascade = window(name)
    win = UnfusedMapper().map(cascade, arch, BIG)
    f = share(cascade, BIG, arch.array_2d.rows, arch.array_2d.cols)
    for t_full, t_win in zip(full.traffic, win.traffic, strict=True):
        assert t_full.tensor == t_win.tensor
        ratio = f if t_full.tensor in ("QK", "SN", "A") else 1.0  # K, V, Q, AV: compulsory
        assert t_win.read_bytes == pytest.approx(t_full.read_bytes * ratio, rel=1e-9)
        assert t_win.write_bytes == pytest.approx(t_full.write_bytes * ratio, rel=1e-9)
    assert cycles(win)["AV"] == pytest.approx(cycles(full)["AV"] * f, rel=1e-6)
    assert win.latency_cycles / full.latency_cycles < 1.2 * f
    dense = UnfusedMapper(UnfusedOptions(skip_empty_tiles=False)).map(cascade, arch, BIG)
    assert dense.dram_traffic_bytes == full.dram_traffic_bytes
    assert any("masked tiles computed" in w for w in dense.warnings)


@pytest.mark.parametrize("mapper", [FuseMaxMapper(), UnfusedMapper()])
def test_causal_cross_attention_alignment_is_priced(mapper: object) -> None:
    arch = load_arch("fusemax")
    sizes = {"E": 64, "F": 64, "P": 1024, "M": 8192}
    top_left = load_cascade("attention-1pass-causal")
    bottom_right = variant("attention-1pass-causal", "m <= p + M - P")
    a = mapper.map(top_left, arch, sizes)  # type: ignore[attr-defined]
    b = mapper.map(bottom_right, arch, sizes)  # type: ignore[attr-defined]
    rows, keys = arch.array_2d.rows, arch.array_2d.cols
    f_a, f_b = share(top_left, sizes, rows, keys), share(bottom_right, sizes, rows, keys)
    assert f_a < f_b
    assert cycles(a)["SLNV"] / cycles(b)["SLNV"] == pytest.approx(f_a / f_b, rel=1e-6)
    assert a.latency_cycles < b.latency_cycles and a.energy_pj < b.energy_pj
    # equal alignment when P == M: same tiles, same costs
    square = {"E": 64, "F": 64, "P": 4096, "M": 4096}
    assert mapper.map(top_left, arch, square).latency_cycles == pytest.approx(  # type: ignore[attr-defined]
        mapper.map(bottom_right, arch, square).latency_cycles  # type: ignore[attr-defined]
    )


def test_fusemax_streams_only_visited_key_tiles_per_query_block() -> None:
    arch = load_arch("fusemax")
    sizes = {"B": 1, "H": 16, "E": 64, "F": 64, "P": 1 << 18, "M": 1 << 18}
    full = FuseMaxMapper().map(load_cascade("attention-1pass-mh"), arch, sizes)
    cascade = window("attention-1pass-mh-causal")
    win = FuseMaxMapper().map(cascade, arch, sizes)
    p0, p1 = int(win.extra("p0")), int(win.extra("p1"))
    assert win.extra("p2") > 1 and (p0, p1) == (int(full.extra("p0")), int(full.extra("p1")))
    streamed = share(cascade, sizes, p0 * p1, arch.array_2d.cols)
    for tensor in ("K", "V"):
        ratio = traffic_of(win, tensor)[0] / traffic_of(full, tensor)[0]
        assert ratio == pytest.approx(streamed, rel=1e-9)


@pytest.mark.parametrize("mapper", ["fusemax", "unfused"])
def test_generic_mask_is_refused_unless_computed_densely(mapper: str) -> None:
    arch = load_arch("fusemax")
    sizes = {"E": 64, "F": 64, "P": 2048, "M": 2048}
    cascade = variant("attention-1pass-causal", "2 * m <= p")
    make = {"fusemax": FuseMaxMapper, "unfused": UnfusedMapper}[mapper]
    with pytest.raises(
        MappingError, match=r"QK\[m1,m0,p\] = .* where 2 \* m <= p: .*'2 \* m <= p'"
    ):
        make().map(cascade, arch, sizes)
    dense = make(skip_empty_tiles=False).map(cascade, arch, sizes)  # type: ignore[arg-type]
    full = make().map(load_cascade("attention-1pass"), arch, sizes)
    assert dense.latency_cycles >= full.latency_cycles
    assert any("generic" in w and "computed densely" in w for w in dense.warnings)
