"""The attention problem a cascade states: roles, sharing, mask and score function."""

from __future__ import annotations

import pytest

from attnsim.einsum_ir import builtin_names, library, load_cascade, load_cascade_text
from attnsim.einsum_ir.analysis.structure import (
    MaskKind,
    Modifier,
    ScoreKind,
    StructureError,
    attention_problem,
)
from attnsim.einsum_ir.analysis.tiles import Band

SIZES = {"B": 2, "H": 3, "G": 2, "R": 4, "P": 96, "M": 160, "E": 8, "F": 4}


def sized(cascade_ranks: tuple[str, ...]) -> dict[str, int]:
    return {k: v for k, v in SIZES.items() if k in cascade_ranks}


def three_pass(where: str = "", q: str = "", kv: str = "", decl: str = "") -> str:
    """A 3-pass softmax cascade; `q`/`kv` prefix query-side / key-side indices ("b,g,r,")."""
    w = f" where {where}" if where else ""
    inputs = decl or "{Q: [E, P], K: [E, M], V: [F, M]}"
    return f"""
cascade: three
inputs: {inputs}
einsums:
  - QK[{q}m,p] = Q[{q}e,p] * K[{kv}e,m]{w}
  - GM[{q}p] = max[m](QK[{q}m,p]){w}
  - SN[{q}m,p] = exp(QK[{q}m,p] - GM[{q}p]){w}
  - SD[{q}p] = SN[{q}m,p]{w}
  - AV[{q}f,p] = SN[{q}m,p] / SD[{q}p] * V[{kv}f,m]{w}
outputs: [AV]
"""


# The original 20 built-ins; the others are checked part by part in test_library_builder.py.
LEGACY = [n for n in builtin_names() if n in {v.name for v in library.LEGACY}]


@pytest.mark.parametrize("name", LEGACY)
def test_builtins_roles(name: str) -> None:
    cascade = load_cascade(name)
    ap = attention_problem(cascade, sized(cascade.all_ranks))
    assert (ap.roles.key, ap.roles.query) == ("M", "P")
    assert ap.roles.score_dims == ("E",) and ap.roles.value_dims == ("F",)
    assert set(ap.roles.batch) == ({"B", "H"} if "-mh" in name else set())
    assert ap.score.kind == ScoreKind.SOFTMAX
    assert ap.score.passes == int(name.split("-")[1][0])
    assert ap.notes == ()
    if "causal" in name:
        assert ap.mask.kind == MaskKind.CAUSAL and ap.mask.causal_alignment == "top-left"
    else:
        assert ap.mask.kind == MaskKind.NONE
    assert all(rs == () for _, rs in ap.shared)


def test_roles_do_not_depend_on_letters() -> None:
    # the 3-pass causal cascade with every rank renamed: K->J (keys), P->T (queries), ...
    text = """
cascade: renamed
inputs: {A: [X, T], Bk: [X, J], C: [Y, J]}
einsums:
  - S[j,t] = A[x,t] * Bk[x,j] where j <= t
  - Mx[t] = max[j](S[j,t]) where j <= t
  - N[j,t] = exp(S[j,t] - Mx[t]) where j <= t
  - D[t] = N[j,t] where j <= t
  - O[y,t] = N[j,t] / D[t] * C[y,j] where j <= t
outputs: [O]
"""
    ap = attention_problem(load_cascade_text(text), {"X": 4, "T": 9, "J": 11, "Y": 3})
    r = ap.roles
    assert (r.key, r.query, r.score_dims, r.value_dims) == ("J", "T", ("X",), ("Y",))
    assert ap.mask.kind == MaskKind.CAUSAL and ap.score.kind == ScoreKind.SOFTMAX
    assert ap.points() == sum(min(t + 1, 11) for t in range(9))


def test_gqa_sharing_and_window() -> None:
    text = three_pass(
        "m <= p and p - m < 32",
        q="b,g,r,",
        kv="b,g,",
        decl="{Q: [B, G, R, E, P], K: [B, G, E, M], V: [B, G, F, M]}",
    )
    cascade = load_cascade_text(text)
    ap = attention_problem(cascade, sized(cascade.all_ranks))
    assert ap.roles.query_groups == ("R",) and set(ap.roles.batch) == {"B", "G"}
    assert ap.query_group == 4 and ap.instances == 2 * 2
    assert ap.sharing_of("K") == ("R",) and ap.sharing_of("V") == ("R",)
    assert ap.sharing_of("Q") == ()
    assert ap.mask.kind == MaskKind.WINDOW and ap.mask.window == 32
    assert ap.mask.bands == (Band(d_lo=-31, d_hi=0),)
    assert ap.points() == sum(min(p + 1, 32) for p in range(96))


def test_bottom_right_alignment() -> None:
    text = three_pass("m <= p + 64")
    ap = attention_problem(load_cascade_text(text), {"E": 2, "F": 2, "P": 96, "M": 160})
    assert ap.mask.kind == MaskKind.CAUSAL and ap.mask.causal_alignment == "bottom-right"
    ap = attention_problem(load_cascade_text(text), {"E": 2, "F": 2, "P": 96, "M": 100})
    assert ap.mask.kind == MaskKind.CAUSAL and ap.mask.causal_alignment == ""


def test_generic_mask_is_named_not_priced() -> None:
    text = three_pass("2 * m <= p")
    ap = attention_problem(load_cascade_text(text), {"E": 2, "F": 2, "P": 9, "M": 9})
    assert ap.mask.kind == MaskKind.GENERIC
    with pytest.raises(StructureError, match="linear family"):
        ap.tiles(4, 4)


def test_sigmoid_and_linear() -> None:
    sig = """
cascade: sig
inputs: {Q: [E, P], K: [E, M], V: [F, M]}
einsums:
  - QK[m,p] = Q[e,p] * K[e,m]
  - SA[m,p] = sigmoid(QK[m,p] - 2.0)
  - AV[f,p] = SA[m,p] * V[f,m]
outputs: [AV]
"""
    ap = attention_problem(load_cascade_text(sig), {"E": 2, "F": 2, "P": 4, "M": 4})
    assert ap.score.kind == ScoreKind.SIGMOID and ap.score.passes == 1
    lin = """
cascade: lin
inputs: {Q: [E, P], K: [E, M], V: [F, M]}
einsums:
  - KV[e,f] = K[e,m] * V[f,m]
  - AV[f,p] = Q[e,p] * KV[e,f]
outputs: [AV]
"""
    # no score per (query, key) pair: the queries read the keys only through the state KV
    with pytest.raises(StructureError, match=r"lin: linear attention: .*state KV\[E,F\]"):
        attention_problem(load_cascade_text(lin), {"E": 2, "F": 2, "P": 4, "M": 4})


def test_no_key_rank() -> None:
    text = """
cascade: mm
inputs: {A: [I, J], B: [J, K]}
einsums:
  - C[i,k] = A[i,j] * B[j,k]
outputs: [C]
"""
    with pytest.raises(StructureError, match="no key rank"):
        attention_problem(load_cascade_text(text), {"I": 2, "J": 2, "K": 2})


def test_sinks_window_with_size_symbols() -> None:
    # bottom-right causal window W with S sinks, both size symbols (W sweepable as a size)
    cond = "m <= p + M - P and (m < S or p + M - P - m < W)"
    text = three_pass(cond).replace("inputs:", "params: {W: 64, S: 4}\ninputs:")
    cascade = load_cascade_text(text)
    for w in (64, 128):
        ap = attention_problem(cascade, {"E": 2, "F": 2, "P": 50, "M": 300, "W": w})
        assert ap.mask.kind == MaskKind.SINKS_WINDOW
        assert (ap.mask.window, ap.mask.sinks, ap.mask.causal_alignment) == (w, 4, "bottom-right")
        expect = sum(
            sum(1 for m in range(300) if m <= p + 250 and (m < 4 or p + 250 - m < w))
            for p in range(50)
        )
        assert ap.points() == expect


def test_score_modifiers() -> None:
    text = """
cascade: mods
inputs: {Q: [E, P], K: [E, M], V: [F, M]}
params: {C: 30}
einsums:
  - QK[m,p] = Q[e,p] * K[e,m]
  - S[m,p] = C * tanh(QK[m,p] / C) - 0.5 * (p - m)
  - GM[p] = max[m](S[m,p])
  - SN[m,p] = exp(S[m,p] - GM[p])
  - SD[p] = SN[m,p]
  - AV[f,p] = SN[m,p] / SD[p] * V[f,m]
outputs: [AV]
"""
    ap = attention_problem(load_cascade_text(text), {"E": 2, "F": 2, "P": 4, "M": 4})
    assert ap.score.kind == ScoreKind.SOFTMAX
    assert {Modifier.SOFTCAP, Modifier.POSITION_BIAS, Modifier.SCALE} <= set(ap.score.modifiers)


def test_bias_tensor_over_keys_and_queries() -> None:
    # a bias input carries both the key and the query rank: P stays the query rank (K and V
    # lack it) and the score function says a bias tensor is added
    text = """
cascade: biased
inputs: {Q: [E, P], K: [E, M], V: [F, M], BI: [M, P]}
einsums:
  - QK[m,p] = Q[e,p] * K[e,m]
  - S[m,p] = QK[m,p] + BI[m,p]
  - GM[p] = max[m](S[m,p])
  - SN[m,p] = exp(S[m,p] - GM[p])
  - SD[p] = SN[m,p]
  - AV[f,p] = SN[m,p] / SD[p] * V[f,m]
outputs: [AV]
"""
    ap = attention_problem(load_cascade_text(text), {"E": 2, "F": 2, "P": 4, "M": 5})
    assert (ap.roles.key, ap.roles.query, ap.roles.batch) == ("M", "P", ())
    assert ap.score.kind == ScoreKind.SOFTMAX and Modifier.BIAS in ap.score.modifiers


@pytest.mark.parametrize(
    ("name", "read"),
    [
        ("attention-linear", False),
        ("attention-linear-causal-recurrent", False),
        ("attention-linear-causal-chunked", True),
        ("attention-linear-causal-quadratic", True),
        ("attention-lightning-2", True),
        ("attention-gla", True),
        ("attention-lightnet", False),
    ],
)
def test_linear_attention_reads_as_its_state(name: str, read: bool) -> None:
    # The keys reach the queries through a state of E x F per head: the score function is
    # linear even where chunks compute masked scores (Lightning-2, GLA: whose gate input is
    # no MLA latent; the chunked and quadratic causal forms, whose feature map phi(K) is a
    # function of the keys alone, no score), and a cascade with no score per (query, key)
    # pair says which state it has.
    sizes = {"B": 1, "H": 2, "M": 256, "P": 256, "E": 16, "F": 16}
    if read:
        assert attention_problem(load_cascade(name), sizes).score.kind == ScoreKind.LINEAR
    else:
        with pytest.raises(StructureError, match=r"linear attention: .*state .*KV\[E,F\]"):
            attention_problem(load_cascade(name), sizes)
