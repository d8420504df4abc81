"""GPU mappers read the attention problem: masks by their tiles, GQA, score functions.

Every check is a relation computed from `attention_problem` (exact points, classified
tiles) or between two mapped variants, never a stored model output.
"""

from __future__ import annotations

import pytest

from attnsim.archs.gpu import GpuArch
from attnsim.archs.load import load_arch
from attnsim.einsum_ir import load_cascade, load_cascade_text
from attnsim.einsum_ir.analysis.structure import attention_problem
from attnsim.einsum_ir.ir import Cascade
from attnsim.mappers.registry import get_mapper
from attnsim.mappers.result import Result
from attnsim.mappers.spatial.view import MappingError

TILING = {"block_m": 128, "block_n": 64, "num_warps": 8, "num_stages": 3}
LONG = {"B": 1, "H": 16, "P": 16384, "M": 16384, "E": 128, "F": 128}
MID = {"B": 2, "H": 8, "P": 2048, "M": 2048, "E": 128, "F": 128}


def h200() -> GpuArch:
    arch = load_arch("h200")
    assert isinstance(arch, GpuArch)
    return arch


def mh(
    where: str = "",
    score: str = "",
    params: str = "",
    q: str = "b,h,",
    kv: str = "b,h,",
    decl: str = "{Q: [B, H, E, P], K: [B, H, E, M], V: [B, H, F, M]}",
) -> Cascade:
    """A multi-head 3-pass cascade: `where` on every keys x queries Einsum, `score` the
    expression of the scores from QK (default: QK itself), `params` its size symbols."""
    w = f" where {where}" if where else ""
    s = score or f"QK[{q}m,p]"
    text = f"""
cascade: variant
{f"params: {{{params}}}" if params else ""}
inputs: {decl}
einsums:
  - QK[{q}m,p] = Q[{q}e,p] * K[{kv}e,m]{w}
  - S[{q}m,p] = {s}{w}
  - GM[{q}p] = max[m](S[{q}m,p]){w}
  - SN[{q}m,p] = exp(S[{q}m,p] - GM[{q}p]){w}
  - SD[{q}p] = SN[{q}m,p]{w}
  - AV[{q}f,p] = SN[{q}m,p] / SD[{q}p] * V[{kv}f,m]{w}
outputs: [AV]
"""
    return load_cascade_text(text)


def run(mapper: str, cascade: Cascade, sizes: dict[str, int], **options: object) -> Result:
    ranks = set(cascade.all_ranks)
    bound = {k: v for k, v in sizes.items() if k in ranks or k in ("W", "S", "C")}
    result: Result = get_mapper(mapper)(**options).map(cascade, h200(), bound)
    return result


# ----------------------------------------------------------------------------- masks


@pytest.mark.parametrize("mapper", ["gpu-1pass", "gpu-2pass", "gpu-unfused"])
def test_causal_written_by_hand_equals_the_builtin(mapper: str) -> None:
    """Roles, not letters or file names: a user's causal cascade is the built-in's problem."""
    builtin = run(mapper, load_cascade("attention-3pass-mh-causal"), MID, **TILING)
    user = run(mapper, mh("m <= p"), MID, **TILING)
    assert user.latency_s == builtin.latency_s
    assert user.dram_traffic_bytes == builtin.dram_traffic_bytes
    assert user.flops == builtin.flops


def test_sliding_window_prices_its_tiles_not_causal() -> None:
    """W = 1024 at S = 16K, head dim 128 on gpu-1pass (h200): issue 11's acceptance.

    FLOPs are the exact windowed work. The time ratio to causal lies between the exact-work
    ratio and the visited-tile ratio plus a stated slack: the time of the same grid with the
    narrowest window (W = 1: block start, Q load, O store and the diagonal tiles), which every
    query tile's block pays under both masks. Beyond that floor, time follows the tiles: the
    window's share of the time above the floor is its share of the tiles above the floor's,
    to 25% above (its partial tiles run the window's masked steps, measured slower).
    """
    window = mh("m <= p and p - m < W", params="W: 1024")
    causal = mh("m <= p")
    narrow = mh("m <= p and p - m < W", params="W: 1")
    sizes = {**LONG, "W": 1024}
    w_ap, c_ap = attention_problem(window, sizes), attention_problem(causal, LONG)
    n_ap = attention_problem(narrow, {**LONG, "W": 1})
    heads, d = LONG["B"] * LONG["H"], LONG["E"]
    exact = w_ap.points() / c_ap.points()
    assert 0.11 < exact < 0.13  # ~12% of causal
    pingpong = {"block_m": 128, "block_n": 128, "num_warps": 8, "num_stages": 3}
    for options in (TILING, {**pingpong, "schedule": "pingpong"}):
        w = run("gpu-1pass", window, sizes, **options)
        c = run("gpu-1pass", causal, LONG, **options)
        n = run("gpu-1pass", narrow, {**LONG, "W": 1}, **options)
        assert w.flops == 4 * heads * w_ap.points() * d
        assert c.flops == 4 * heads * c_ap.points() * d
        bm, bn = options["block_m"], options["block_n"]
        tw, tc, tn = w_ap.tiles(bm, bn), c_ap.tiles(bm, bn), n_ap.tiles(bm, bn)
        assert w_ap.points() <= tw.visited * bm * bn  # visited tiles x area bound the work
        assert w.extra("tiles_full") + w.extra("tiles_partial") == tw.visited
        visited = tw.visited / tc.visited
        # tile pricing at the full clock: the power cap slows the causal call (more TFLOP/s)
        # more than the windows (test_power_cap.py)
        tw_s, tc_s, tn_s = (r.latency_s / r.extra("power_cap_factor") for r in (w, c, n))
        ratio = tw_s / tc_s
        assert exact <= ratio <= visited + tn_s / tc_s, (exact, visited, ratio)
        above_floor = (tw_s - tn_s) / (tc_s - tn_s)
        tiles_above = (tw.visited - tn.visited) / (tc.visited - tn.visited)
        # the plain kernel's window tiles run its measured masked step (calibration mode
        # window), up to about twice an unmasked one, and a third key loop: a partial tile
        # weighs at least a full one, so the window's share is at least its tile share
        assert tiles_above * 0.98 <= above_floor <= tiles_above * 1.25
        implemented = "plain 1-pass Triton kernel implements it"
        assert any("window W=1024" in x and implemented in x for x in w.warnings)
    # each searched for its best tiling
    w, c = run("gpu-1pass", window, sizes), run("gpu-1pass", causal, LONG)
    assert w.flops == 4 * heads * w_ap.points() * d
    assert exact <= w.latency_s / c.latency_s < 0.25


def test_bottom_right_and_top_left_differ_where_their_tiles_differ() -> None:
    sizes = {**MID, "P": 1024, "M": 4096}
    top_left = mh("m <= p")
    bottom_right = mh("m <= p + M - P")
    tl = run("gpu-1pass", top_left, sizes, **TILING)
    br = run("gpu-1pass", bottom_right, sizes, **TILING)
    tl_tiles = attention_problem(top_left, sizes).tiles(128, 64)
    br_tiles = attention_problem(bottom_right, sizes).tiles(128, 64)
    assert br_tiles.visited > tl_tiles.visited
    assert br.latency_s > tl.latency_s and br.flops > tl.flops
    assert br.extra("tiles_full") + br.extra("tiles_partial") == br_tiles.visited
    # P = M: the same pairs, the same tiles, the same prediction
    same = {**MID, "P": 2048, "M": 2048}
    assert run("gpu-1pass", bottom_right, same, **TILING).latency_s == (
        run("gpu-1pass", top_left, same, **TILING).latency_s
    )


@pytest.mark.parametrize("mapper", ["gpu-2pass", "gpu-unfused"])
def test_window_on_the_other_families(mapper: str) -> None:
    window = mh("m <= p and p - m < W", params="W: 256")
    sizes = {**MID, "W": 256}
    w = run(mapper, window, sizes, **TILING)
    c = run(mapper, mh("m <= p"), MID, **TILING)
    ap = attention_problem(window, sizes)
    assert w.flops == 4 * MID["B"] * MID["H"] * ap.points() * MID["E"]
    assert w.latency_s < c.latency_s
    assert w.dram_traffic_bytes <= c.dram_traffic_bytes


def test_unfused_moves_scores_of_visited_tiles_only() -> None:
    window = mh("m <= p and p - m < W", params="W: 256")
    sizes = {**MID, "W": 256}
    full = run("gpu-unfused", load_cascade("attention-3pass-mh"), MID, **TILING)
    w = run("gpu-unfused", window, sizes, **TILING)
    tiles = attention_problem(window, sizes).tiles(128, 64)
    heads, b = MID["B"] * MID["H"], 2
    qkvo = heads * 4 * MID["P"] * MID["E"] * b
    # dense: 4 moves of every score (QK^T writes, softmax reads and writes, P.V reads)
    dense_scores = full.dram_traffic_bytes - qkvo
    assert dense_scores == 4 * heads * MID["P"] * MID["M"] * b
    window_scores = w.dram_traffic_bytes - qkvo
    assert window_scores == 4 * heads * tiles.visited * 128 * 64 * b


def test_sinks_add_their_tiles_to_the_window() -> None:
    sizes = {**LONG, "P": 8192, "M": 8192, "W": 512, "S": 64}
    window = mh("m <= p and p - m < W", params="W: 512")
    sinks = mh("m <= p and (m < S or p - m < W)", params="W: 512, S: 64")
    w = run("gpu-1pass", window, {k: v for k, v in sizes.items() if k != "S"}, **TILING)
    s = run("gpu-1pass", sinks, sizes, **TILING)
    ap = attention_problem(sinks, sizes)
    assert s.flops == 4 * LONG["B"] * LONG["H"] * ap.points() * LONG["E"]
    assert s.flops > w.flops and s.latency_s > w.latency_s
    assert s.extra("tiles_full") + s.extra("tiles_partial") == ap.tiles(128, 64).visited


def test_generic_mask_is_refused_with_its_structure() -> None:
    with pytest.raises(MappingError, match="variant.*2 \\* m <= p.*band family"):
        run("gpu-1pass", mh("2 * m <= p"), MID)


# ----------------------------------------------------------------------------- GQA

GQA = {"B": 2, "G": 8, "R": 4, "P": 4096, "M": 4096, "E": 128, "F": 128}
MHA = {"B": 2, "H": 32, "P": 4096, "M": 4096, "E": 128, "F": 128}


def gqa(where: str = "") -> Cascade:
    return mh(
        where,
        q="b,g,r,",
        kv="b,g,",
        decl="{Q: [B, G, R, E, P], K: [B, G, E, M], V: [B, G, F, M]}",
    )


@pytest.mark.parametrize("where", ["", "m <= p"])
def test_gqa_reads_kv_once_per_kv_head(where: str) -> None:
    g = run("gpu-1pass", gqa(where), GQA, **TILING)
    m = run("gpu-1pass", mh(where), MHA, **TILING)
    b = 2
    q_bytes = MHA["B"] * MHA["H"] * MHA["P"] * MHA["E"] * b  # Q read by both alike
    kv_gqa = g.extra("hbm_read_bytes") - q_bytes
    kv_mha = m.extra("hbm_read_bytes") - q_bytes
    assert kv_mha == MHA["B"] * MHA["H"] * MHA["M"] * (MHA["E"] + MHA["F"]) * b
    assert kv_gqa == kv_mha * GQA["G"] / MHA["H"]
    assert g.flops == m.flops
    assert g.extra("kv_heads") == GQA["B"] * GQA["G"]
    assert g.latency_s <= m.latency_s
    assert any("GQA" in w and "both 1-pass kernels (plain and ping-pong)" in w for w in g.warnings)
    assert not any("GQA" in w for w in m.warnings)


def test_gqa_on_the_unfused_kernels() -> None:
    g = run("gpu-unfused", gqa(), GQA, **TILING)
    m = run("gpu-unfused", mh(), MHA, **TILING)
    saved = (MHA["H"] - GQA["G"]) * MHA["B"] * MHA["M"] * (MHA["E"] + MHA["F"]) * 2
    assert m.extra("hbm_read_bytes") - g.extra("hbm_read_bytes") == saved


# ----------------------------------------------------------------------------- scores


SOFTCAP = "C * tanh(QK[b,h,m,p] / C)"
ALIBI = "QK[b,h,m,p] - 0.5 * (p - m)"


@pytest.mark.parametrize("mapper", ["gpu-1pass", "gpu-2pass", "gpu-unfused"])
@pytest.mark.parametrize(
    ("score", "params", "name"), [(SOFTCAP, "C: 30", "softcap"), (ALIBI, "", "position bias")]
)
def test_score_modifiers_are_priced(mapper: str, score: str, params: str, name: str) -> None:
    plain = run(mapper, mh(), MID, **TILING)
    modified = run(mapper, mh(score=score, params=params), MID, **TILING)
    assert modified.latency_s > plain.latency_s
    assert modified.flops == plain.flops  # the matmuls are the same
    assert any(
        name in w and "plain 1-pass Triton kernel implements it" in w for w in modified.warnings
    )


def test_softcap_costs_more_than_a_position_bias() -> None:
    """tanh on the SFU and two multiplies per score against one FMA."""
    cap = run("gpu-1pass", mh(score=SOFTCAP, params="C: 30"), MID, **TILING)
    bias = run("gpu-1pass", mh(score=ALIBI), MID, **TILING)
    assert cap.latency_s > bias.latency_s


def sigmoid_cascade() -> Cascade:
    return load_cascade_text(
        """
cascade: sigmoid-attention
inputs: {Q: [B, H, E, P], K: [B, H, E, M], V: [B, H, F, M]}
einsums:
  - QK[b,h,m,p] = Q[b,h,e,p] * K[b,h,e,m]
  - SA[b,h,m,p] = sigmoid(QK[b,h,m,p] - 8.0)
  - AV[b,h,f,p] = SA[b,h,m,p] * V[b,h,f,m]
outputs: [AV]
"""
    )


@pytest.mark.parametrize("mapper", ["gpu-1pass", "gpu-unfused"])
def test_sigmoid_drops_the_softmax_statistics(mapper: str) -> None:
    plain = run(mapper, mh(), MID, **TILING)
    sig = run(mapper, sigmoid_cascade(), MID, **TILING)
    assert sig.latency_s < plain.latency_s
    assert sig.latency_s != plain.latency_s
    assert sig.flops == plain.flops
    assert any(
        "sigmoid" in w and "plain 1-pass Triton kernel implements it" in w for w in sig.warnings
    )


def test_sigmoid_has_no_two_pass_form() -> None:
    with pytest.raises(MappingError, match="sigmoid-attention.*sigmoid.*2-pass"):
        run("gpu-2pass", sigmoid_cascade(), MID)


def test_linear_attention_is_refused() -> None:
    linear = load_cascade_text(
        """
cascade: linear-attention
inputs: {Q: [E, P], K: [E, M], V: [F, M]}
einsums:
  - KV[e,f] = K[e,m] * V[f,m]
  - AV[f,p] = Q[e,p] * KV[e,f]
outputs: [AV]
"""
    )
    with pytest.raises(MappingError, match="linear-attention.*linear attention"):
        run("gpu-1pass", linear, {"P": 1024, "M": 1024, "E": 64, "F": 64})
