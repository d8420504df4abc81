"""Serving cascades: multi-head latent attention (naive and absorbed), decode, split-K.

These do not fit the algorithm x heads x mask x score product of `builder`, so each is a
named cascade of its own, written as Einsum text and parsed with the user grammar (the
same as a YAML file would load). `serving_cascade(name)` builds one; `SERVING` lists them.

Ranks (FuseMax's letters, /shared/reference/variants.md Sec. 0.1): P queries, M keys,
E query/key head dim, F value head dim, B batch, H query heads, G KV heads, R query heads
per KV head (GQA) -- or, in the MLA cascades, the RoPE dim --, C the MLA latent dim.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

from attnsim.einsum_ir.ir import Cascade, Einsum, Partition, RankName, TensorName
from attnsim.einsum_ir.library.builder import (
    KEY_TILE_DEFAULT,
    Algorithm,
    Heads,
    MaskForm,
    Variant,
    build,
)
from attnsim.einsum_ir.parse import parse_einsum

# DeepSeek-V3's attention (DeepSeek-AI, arXiv 2412.19437, Sec. 2.1.1): 128 heads,
# latent d_c = 512, decoupled RoPE dim d_h^R = 64 (head dims E = F = 128 are left to sizes).
MLA_HEADS_DEFAULT = 128
MLA_LATENT_DEFAULT = 512
MLA_ROPE_DEFAULT = 64
SPLIT_TILES_DEFAULT = 16  # key tiles per split (M1): 16 x 256 = 4096 keys per split

# The 1-pass running state over key tiles m1 (FuseMax Cascade 5), `{q}` the query-side rank
# prefix, `{s}` the split prefix ("m2," for split-K), `{v}` the value access's text and
# `{f}` the value dim's index.
_ONE_PASS_STATE = (
    "LM[{q}{s}m1,p] = max[m0](QK[{q}{s}m1,m0,p])",
    "RM[{q}{s}m1+1,p] = max(RM[{q}{s}m1,p], LM[{q}{s}m1,p])",
    "SLN[{q}{s}m1,m0,p] = exp(QK[{q}{s}m1,m0,p] - RM[{q}{s}m1+1,p])",
    "SLD[{q}{s}m1,p] = SLN[{q}{s}m1,m0,p]",
    "PRM[{q}{s}m1,p] = exp(RM[{q}{s}m1,p] - RM[{q}{s}m1+1,p])",
    "SPD[{q}{s}m1,p] = PRM[{q}{s}m1,p] * RD[{q}{s}m1,p]",
    "RD[{q}{s}m1+1,p] = SPD[{q}{s}m1,p] + SLD[{q}{s}m1,p]",
    "SLNV[{q}{s}m1,{f},p] = SLN[{q}{s}m1,m0,p] * {v}",
    "SPNV[{q}{s}m1,{f},p] = PRM[{q}{s}m1,p] * RNV[{q}{s}m1,{f},p]",
    "RNV[{q}{s}m1+1,{f},p] = SPNV[{q}{s}m1,{f},p] + SLNV[{q}{s}m1,{f},p]",
)
_INIT = ((TensorName("RM"), -float("inf")), (TensorName("RD"), 0.0), (TensorName("RNV"), 0.0))
_MLA_INPUTS = (
    ("Q", ("B", "H", "E", "P")),  # no-RoPE part of the queries
    ("QR", ("B", "H", "R", "P")),  # RoPE part of the queries
    ("CKV", ("B", "C", "M")),  # the latent KV cache: one per token, shared by every head
    ("KR", ("B", "R", "M")),  # the shared RoPE key: one per token
    ("WUK", ("H", "C", "E")),  # key up-projection
    ("WUV", ("H", "C", "F")),  # value up-projection
)
_MLA_PARAMS: tuple[tuple[str, int], ...] = (
    ("M0", KEY_TILE_DEFAULT),
    ("H", MLA_HEADS_DEFAULT),
    ("C", MLA_LATENT_DEFAULT),
    ("R", MLA_ROPE_DEFAULT),
)

_MLA_SOURCE = """Source: DeepSeek-V2 (DeepSeek-AI, arXiv 2405.04434, Sec. 2.1.2-2.1.3) and
DeepSeek-V3 (arXiv 2412.19437, Sec. 2.1.1); the cascade follows /shared/reference/
variants.md Sec. 2.3 #56 (TransMLA / MLA). Per token the cache holds the latent CKV[c,m]
(C = d_c = 512) and one RoPE key KR[r,m] (R = d_h^R = 64) shared by every head; the
score is Q.K_nope + QR.KR (K concatenated with the RoPE key). Unscaled, as every built-in
(the 1/sqrt(E + R) folds into Q and QR). Defaults H = 128, C = 512, R = 64 (DeepSeek-V3)."""

_MLA_NAIVE_NOTES = f"""Multi-head latent attention, naive (prefill) form: the latent cache
is up-projected to per-head keys and values, then 1-pass softmax attention (FuseMax Cascade 5):
  K[b,h,e,m] = sum_c WUK[h,c,e] CKV[b,c,m]      V[b,h,f,m] = sum_c WUV[h,c,f] CKV[b,c,m]
  QK[b,h,m,p] = sum_e Q[b,h,e,p] K[b,h,e,m] + sum_r QR[b,h,r,p] KR[b,r,m]
  AV[b,h,f,p] = softmax_m(QK) . V
The up-projections iterate the keys but not the queries: B*H*M*C*(E+F) MACs per sweep.
{_MLA_SOURCE}"""

_MLA_ABSORBED_NOTES = f"""Multi-head latent attention, absorbed (decode) form: WUK is folded
into the queries and WUV into the output, so attention runs over the latent itself:
  QC[b,h,c,p] = sum_e Q[b,h,e,p] WUK[h,c,e]                 (absorption, no key rank)
  QK[b,h,m,p] = sum_c QC[b,h,c,p] CKV[b,c,m] + sum_r QR[b,h,r,p] KR[b,r,m]
  OC[b,h,c,p] = softmax_m(QK) . CKV  (the latent is the values too)
  AV[b,h,f,p] = sum_c OC[b,h,c,p] WUV[h,c,f]                (up-projection, no key rank)
CKV feeds both the scores and the value contraction: one tensor, read once per sweep, for
every head (MQA with head dim C + R for keys and C for values).
{_MLA_SOURCE}"""

_SPLITK_NOTES = """Split-K decode (FlashDecoding: Dao, Haziza, Massa, Sizov, 2023,
https://crfm.stanford.edu/2023/10/12/flashdecoding.html; the merge of Lean Attention,
Sanovar et al., arXiv 2405.10480, variants.md Sec. 2.2 #38), grouped-query heads.
The key rank is split three ways, M -> M2 x M1 x M0 (m = (m2 * M1 + m1) * M0 + m0): M2
splits of M1 key tiles of M0 keys. Each split m2 runs FuseMax's 1-pass recurrence over its
own tiles m1 and ends with its partial state: running max RM[m2,M1], denominator RD[m2,M1]
and unnormalised numerator RNV[m2,M1,f]. The merge rescales the splits by the global max:
  GM[p] = max_m2 RM[m2,M1,p]            WS[m2,p] = exp(RM[m2,M1,p] - GM[p])
  SD[p] = sum_m2 WS RD[m2,M1,p]         SNV[f,p] = sum_m2 WS RNV[m2,M1,f,p]
  AV[f,p] = SNV[f,p] / SD[p]
K and V are read once; the merge reads M2 partial states, not the keys. M1 (tiles per
split, default 16) and M0 (default 256) are params; the split count M2 = ceil(M / (M1 M0))
is derived. G and R default to 8 and 4 (Llama 3 8B)."""

_DECODE_NOTES = """Grouped-query decode: the 1-pass GQA cascade with a bottom-right aligned causal
mask and one query per sequence by default (P = 1): the query sees every cached key. P = 1 is
only a size: the cascade is `attention-1pass-gqa-causal-br`; a P > 1 here is a chunk of
new queries (speculative decoding, chunked prefill). The R query heads of a KV head are
the packed query rows a mapper streams the group's K/V for once."""


@dataclass(frozen=True, slots=True)
class ServingCascade:
    """One named serving cascade of the library.

    Attributes:
        name: Its built-in name.
        description: One line.
        notes: What it computes and its sources (several lines).
    """

    name: str
    description: str
    notes: str


SERVING: tuple[ServingCascade, ...] = (
    ServingCascade(
        "attention-mla-naive",
        "Multi-head latent attention, naive form: latent up-projected to per-head K/V (1 pass)",
        _MLA_NAIVE_NOTES,
    ),
    ServingCascade(
        "attention-mla-absorbed",
        "Multi-head latent attention, absorbed form: attention over the latent as K and V (1 pass)",
        _MLA_ABSORBED_NOTES,
    ),
    ServingCascade(
        "attention-splitk-gqa",
        "Split-K (FlashDecoding) GQA attention: 1-pass partial state per split plus a merge "
        "over the splits (1 pass)",
        _SPLITK_NOTES,
    ),
    ServingCascade(
        "attention-decode-gqa",
        "GQA decode: 1-pass grouped-query attention, causal bottom-right, P = 1 by default "
        "(1 pass)",
        _DECODE_NOTES,
    ),
)


def serving_names() -> tuple[str, ...]:
    """Names of the serving cascades, sorted."""
    return tuple(sorted(s.name for s in SERVING))


def serving_entry(name: str) -> ServingCascade | None:
    """The serving cascade record of that name, or None."""
    return next((s for s in SERVING if s.name == name), None)


def _cascade(
    entry: ServingCascade,
    inputs: tuple[tuple[str, tuple[str, ...]], ...],
    lines: list[str],
    parts: tuple[str, ...],
    params: tuple[tuple[str, int], ...],
) -> Cascade:
    einsums = []
    for text in lines:
        parsed = parse_einsum(text)
        einsums.append(Einsum(parsed.out, parsed.expr, parsed.where))
    return Cascade(
        name=entry.name,
        inputs=tuple((TensorName(n), tuple(RankName(r) for r in rs)) for n, rs in inputs),
        einsums=tuple(einsums),
        outputs=(TensorName("AV"),),
        partitions=(Partition(RankName("M"), tuple(RankName(p) for p in parts)),),
        params=tuple((RankName(n), v) for n, v in params),
        init=_INIT,
        description=entry.description,
        source=f"<builtin>/{entry.name}",
    )


def _mla(entry: ServingCascade, absorbed: bool) -> Cascade:
    q = "b,h,"
    if absorbed:
        head = [
            "QC[b,h,c,p] = Q[b,h,e,p] * WUK[h,c,e]",
            "SC[b,h,m1,m0,p] = QC[b,h,c,p] * CKV[b,c,m1,m0]",
        ]
        value, dim = "CKV[b,c,m1,m0]", "c"
    else:
        head = [
            "K[b,h,e,m1,m0] = WUK[h,c,e] * CKV[b,c,m1,m0]",
            "V[b,h,f,m1,m0] = WUV[h,c,f] * CKV[b,c,m1,m0]",
            "SC[b,h,m1,m0,p] = Q[b,h,e,p] * K[b,h,e,m1,m0]",
        ]
        value, dim = "V[b,h,f,m1,m0]", "f"
    lines = [
        *head,
        "SR[b,h,m1,m0,p] = QR[b,h,r,p] * KR[b,r,m1,m0]",
        "QK[b,h,m1,m0,p] = SC[b,h,m1,m0,p] + SR[b,h,m1,m0,p]",
        *(t.format(q=q, s="", v=value, f=dim) for t in _ONE_PASS_STATE),
    ]
    if absorbed:
        lines += [
            "OC[b,h,c,p] = RNV[b,h,M1,c,p] / RD[b,h,M1,p]",
            "AV[b,h,f,p] = OC[b,h,c,p] * WUV[h,c,f]",
        ]
    else:
        lines.append("AV[b,h,f,p] = RNV[b,h,M1,f,p] / RD[b,h,M1,p]")
    return _cascade(entry, _MLA_INPUTS, lines, ("M1", "M0"), _MLA_PARAMS)


def _splitk(entry: ServingCascade) -> Cascade:
    q = "b,g,r,"
    value = "V[b,g,f,m2,m1,m0]"
    lines = [
        "QK[b,g,r,m2,m1,m0,p] = Q[b,g,r,e,p] * K[b,g,e,m2,m1,m0]",
        *(t.format(q=q, s="m2,", v=value, f="f") for t in _ONE_PASS_STATE),
        "GM[b,g,r,p] = max[m2](RM[b,g,r,m2,M1,p])",
        "WS[b,g,r,m2,p] = exp(RM[b,g,r,m2,M1,p] - GM[b,g,r,p])",
        "SD[b,g,r,p] = WS[b,g,r,m2,p] * RD[b,g,r,m2,M1,p]",
        "SNV[b,g,r,f,p] = WS[b,g,r,m2,p] * RNV[b,g,r,m2,M1,f,p]",
        "AV[b,g,r,f,p] = SNV[b,g,r,f,p] / SD[b,g,r,p]",
    ]
    inputs = (
        ("Q", ("B", "G", "R", "E", "P")),
        ("K", ("B", "G", "E", "M")),
        ("V", ("B", "G", "F", "M")),
    )
    params = (("M1", SPLIT_TILES_DEFAULT), ("M0", KEY_TILE_DEFAULT), ("G", 8), ("R", 4))
    return _cascade(entry, inputs, lines, ("M2", "M1", "M0"), params)


def _decode(entry: ServingCascade) -> Cascade:
    base = build(Variant(Algorithm.ONE_PASS, Heads.GROUPED, MaskForm.CAUSAL_BR))
    return dataclasses.replace(
        base,
        name=entry.name,
        params=(*base.params, (RankName("P"), 1)),
        description=entry.description,
        source=f"<builtin>/{entry.name}",
    )


@functools.cache
def serving_cascade(name: str) -> Cascade | None:
    """The serving cascade of that name (memoized), or None when there is none."""
    entry = serving_entry(name)
    if entry is None:
        return None
    if name.startswith("attention-mla-"):
        return _mla(entry, absorbed=name.endswith("absorbed"))
    if name == "attention-splitk-gqa":
        return _splitk(entry)
    return _decode(entry)
