"""Attention cascades from parts: algorithm x head structure x mask x score function.

`build(variant)` writes the Einsums of one `Variant` as text and parses them with the same
grammar user files use, so a built-in is exactly what the equivalent YAML file would load.
Every Einsum that works per key (it iterates m, or m0 of a key tile) carries the mask's
`where` clause; Einsums per key tile (m1) or per query do not.

Sources: the five softmax algorithms are FuseMax's (Nayak et al., MICRO 2024, arXiv
2406.10491, Sec. III and IV); sigmoid attention is FlashSigmoid (Ramapuram et al., 2024,
arXiv 2409.04431, b = -log n); ALiBi is Press et al. (ICLR 2022) with FlashAttention's
alignment (bias -slope * |p + M - P - m|); softcapping is Gemma 2's `C * tanh(S / C)`;
sinks + window is StreamingLLM (Xiao et al., ICLR 2024) / MoA's `m < S or p - m < W`.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass

from attnsim.einsum_ir.ir import Cascade, Einsum, Partition, RankName, TensorName
from attnsim.einsum_ir.parse import parse_einsum


class Algorithm(enum.StrEnum):
    """How softmax is scheduled over the keys (FuseMax's pass structure)."""

    THREE_PASS = "3pass"
    TWO_PASS_PLAIN = "2pass-plain"
    TWO_PASS_DEFERRED = "2pass-deferred"
    TWO_PASS_TILEMAX = "2pass-tilemax"
    ONE_PASS = "1pass"


class Heads(enum.StrEnum):
    """Head structure: which ranks index queries and which index keys and values."""

    SINGLE = "single"  # Q[E,P], K[E,M], V[F,M]
    MULTI = "mh"  # B, H on every tensor
    GROUPED = "gqa"  # Q over B, G, R; K/V over B, G (R = H / G query heads per KV head)
    MULTI_QUERY = "mqa"  # Q over B, R; K/V over B only (one KV head)


class MaskForm(enum.StrEnum):
    """Which (query, key) pairs are computed."""

    NONE = "none"
    CAUSAL = "causal"  # m <= p: top-left aligned (the legacy built-ins)
    CAUSAL_BR = "causal-br"  # m <= p + M - P: bottom-right aligned (decode, causal cross)
    WINDOW = "window"  # bottom-right causal, the last W keys up to the diagonal
    SINKS_WINDOW = "sinks-window"  # the window plus the first S keys (attention sinks)
    PREFIX = "prefix"  # prefix LM: the first L keys to every query, the rest causal


class ScoreForm(enum.StrEnum):
    """What turns scores into weights."""

    SOFTMAX = "softmax"
    SIGMOID = "sigmoid"  # sigmoid(S - log(M)), no normalization: 1 pass in any schedule


class ScoreModifier(enum.StrEnum):
    """A change to the scores before the weight function."""

    NONE = "none"
    ALIBI = "alibi"  # additive position bias -SL[head] * distance, SL an input per query head
    SOFTCAP = "softcap"  # C * tanh(S / C), C a param


# Defaults of the size symbols the parts declare; each is overridable like a rank size.
WINDOW_DEFAULT = 1024
SINKS_DEFAULT = 4
PREFIX_DEFAULT = 512  # L of the prefix-LM mask
SOFTCAP_DEFAULT = 50  # Gemma 2's attention logit cap
KEY_TILE_DEFAULT = 256  # M0 of the tiled forms (FuseMax's 256-wide PE array)
KV_HEADS_DEFAULT = 8  # G of GQA (Llama 3 8B, Mistral 7B)
GROUP_DEFAULT = 4  # R of GQA: query heads per KV head (H = 32)
MQA_HEADS_DEFAULT = 8  # R of MQA

# (description, notes) per algorithm; the notes are the legacy YAML files' comments.
ALGORITHM_TEXT: dict[Algorithm, tuple[str, str]] = {
    Algorithm.THREE_PASS: (
        "Stable softmax attention with a global max, then sum, then divide and weight V (3 passes)",
        """Numerically stable softmax attention in three passes over M.
Source: FuseMax (Nayak et al., MICRO 2024, arXiv 2406.10491), Sec. III.
  QK[m,p] = sum_e Q[e,p] K[e,m]      GM[p] = max_m QK[m,p]
  SN[m,p] = exp(QK[m,p] - GM[p])      SD[p] = sum_m SN[m,p]
  A[m,p] = SN[m,p] / SD[p]            AV[f,p] = sum_m A[m,p] V[f,m]
Passes over M: SN reads GM (all of M reduced) -> pass 2; A reads SD -> pass 3.""",
    ),
    Algorithm.TWO_PASS_PLAIN: (
        "Softmax attention without max subtraction (2 passes; may overflow)",
        """Softmax attention without max subtraction, in two passes over M.
Source: FuseMax (Nayak et al., MICRO 2024, arXiv 2406.10491), Sec. III.
  QK[m,p] = sum_e Q[e,p] K[e,m]      SN[m,p] = exp(QK[m,p])
  SD[p] = sum_m SN[m,p]              A[m,p] = SN[m,p] / SD[p]
  AV[f,p] = sum_m A[m,p] V[f,m]
exp may overflow for large scores. Passes over M: A reads SD -> pass 2.""",
    ),
    Algorithm.TWO_PASS_DEFERRED: (
        "Stable attention, division deferred past the V contraction (2 passes)",
        """Numerically stable attention with the softmax division deferred, two passes over M.
Source: FuseMax (Nayak et al., MICRO 2024, arXiv 2406.10491), Sec. IV.
  QK[m,p] = sum_e Q[e,p] K[e,m]      GM[p] = max_m QK[m,p]
  SN[m,p] = exp(QK[m,p] - GM[p])      SD[p] = sum_m SN[m,p]
  SNV[f,p] = sum_m SN[m,p] V[f,m]     AV[f,p] = SNV[f,p] / SD[p]
Passes over M: SN reads GM -> pass 2; AV iterates no part of M, so no third pass.""",
    ),
    Algorithm.TWO_PASS_TILEMAX: (
        "Attention with per-tile maxima rescaled by the global max (2 passes)",
        """Attention with tile-local maxima rescaled by the global max, two passes.
Source: FuseMax (Nayak et al., MICRO 2024, arXiv 2406.10491), Sec. IV.
M is split into tiles M1 x M0 (m = m1*M0 + m0):
  QK[m1,m0,p] = sum_e Q[e,p] K[e,m1,m0]    LM[m1,p] = max_m0 QK[m1,m0,p]
  SLN[m1,m0,p] = exp(QK[m1,m0,p] - LM[m1,p])
  SLD[m1,p] = sum_m0 SLN[m1,m0,p]          SLNV[m1,f,p] = sum_m0 SLN[m1,m0,p] V[f,m1,m0]
  GM[p] = max_m1 LM[m1,p]                  PRM[m1,p] = exp(LM[m1,p] - GM[p])
  SD[p] = sum_m1 SLD[m1,p] PRM[m1,p]       SNV[f,p] = sum_m1 SLNV[m1,f,p] PRM[m1,p]
  AV[f,p] = SNV[f,p] / SD[p]
Passes: PRM iterates m1 and reads GM (all of M reduced) -> pass 2, over M1 only.
A tile with no visible key has LM = -inf; its SLN, SLD, SLNV are masked to 0 and its
rescale factor is exp(-inf - finite) = 0, so no inf - inf (NaN) ever arises.""",
    ),
    Algorithm.ONE_PASS: (
        "FuseMax 1-pass attention with running max, denominator and numerator (1 pass)",
        """FuseMax 1-pass attention (Nayak et al., MICRO 2024, arXiv 2406.10491, Cascade 5 /
Sec. IV): M is split into key tiles M1 x M0; a running max (RM), running denominator (RD)
and running numerator (RNV) are carried across tiles as recurrences over m1, so the cascade
needs a single pass over M. The division by the denominator is deferred to the end.
A tile with no visible key has LM = -inf: RM keeps its previous value. Under the
bottom-right masks a row's leading tiles may all be hidden (a window), so RM starts at the
finite -1.0e30 instead of -inf: exp(RM[m1] - RM[m1+1]) is then exp(0) = 1 over the hidden
tiles (RD and RNV stay 0) and never exp(-inf + inf) = NaN.""",
    ),
}

SIGMOID_TEXT = (
    "Sigmoid attention: sigmoid(S - log(M)) weights, no max and no sum (1 pass)",
    """Sigmoid attention (FlashSigmoid: Ramapuram et al., arXiv 2409.04431):
  QK[m,p] = sum_e Q[e,p] K[e,m]      SA[m,p] = sigmoid(QK[m,p] - log(M))
  AV[f,p] = sum_m SA[m,p] V[f,m]
No running state besides the AV accumulator: key tiles are independent partial sums, so
any schedule makes one pass over M.""",
)

HEADS_TEXT: dict[Heads, tuple[str, str]] = {
    Heads.SINGLE: ("", ""),
    Heads.MULTI: (
        "multi-head",
        "Multi-head: batch B and heads H index every tensor (independent attention per b, h).",
    ),
    Heads.GROUPED: (
        "grouped-query (GQA)",
        "Grouped-query: G key/value heads with R query heads each (H = G * R); K and V lack R,\n"
        "so each K/V element serves the R query heads of its group. G and R are params\n"
        "(default 8 and 4, Llama 3 8B's), sized like ranks.",
    ),
    Heads.MULTI_QUERY: (
        "multi-query (MQA)",
        "Multi-query: R query heads share one K and V (GQA with G = 1); K and V lack R.\n"
        "R is a param (default 8), sized like a rank.",
    ),
}

MASK_TEXT: dict[MaskForm, tuple[str, str]] = {
    MaskForm.NONE: ("", ""),
    MaskForm.CAUSAL: (
        "causal",
        """Causal: query p attends keys m <= p (top-left aligned when P != M). Every Einsum that
iterates m (or m1 and m0) carries `where m <= p`: masked points contribute nothing and
masked outputs hold the reduction identity (0 for sums and maps, -inf for max), so masked
scores never reach a sum. Key 0 is visible to every query, so every row's max is finite.""",
    ),
    MaskForm.CAUSAL_BR: (
        "causal, bottom-right aligned",
        """Causal, bottom-right aligned (FlashAttention >= 2.1): query p attends keys
m <= p + M - P, so the last query sees every key (decode, chunked prefill, causal cross
attention). With P > M the first P - M queries see no key: their output is 0, as in
FlashAttention (a deferred division carries `where p + M - P >= 0`).""",
    ),
    MaskForm.WINDOW: (
        "sliding window W, causal bottom-right aligned",
        """Sliding window: query p attends the W keys up to its bottom-right aligned diagonal,
p + M - P - W < m <= p + M - P. W is a param (default 1024), sized and swept like a rank.""",
    ),
    MaskForm.SINKS_WINDOW: (
        "S sinks + window W, causal bottom-right aligned",
        """Attention sinks plus a sliding window (StreamingLLM; MoA): query p attends the first
S keys and the W keys up to its bottom-right aligned diagonal:
m <= p + M - P and (m < S or p + M - P - m < W). S (default 4) and W (default 1024)
are params, sized and swept like ranks.""",
    ),
}

MASK_TEXT[MaskForm.PREFIX] = (
    "prefix LM (L keys bidirectional), causal bottom-right aligned",
    """Prefix LM (Raffel et al., T5, JMLR 2020; Dong et al., UniLM, NeurIPS 2019): every query
attends the first L keys (the prefix, bidirectional) and, past it, the keys up to its
bottom-right aligned diagonal: m <= p + M - P or m < L. L is a param (default 512).""",
)

MODIFIER_TEXT: dict[ScoreModifier, tuple[str, str]] = {
    ScoreModifier.NONE: ("", ""),
    ScoreModifier.ALIBI: (
        "ALiBi bias",
        """ALiBi (Press et al., ICLR 2022): SC = QK - SL[head] * d with a per-query-head slope input
SL and d the query's distance to the key with FlashAttention's alignment,
d = p + M - P - m (d = p - m under the top-left causal mask; |d| without a mask).""",
    ),
    ScoreModifier.SOFTCAP: (
        "softcap C",
        """Logit softcapping (Gemma 2): SC = C * tanh(QK / C), C a param (default 50).""",
    ),
}


@dataclass(frozen=True, slots=True)
class Variant:
    """One point of the library's design space; `name` is its built-in name.

    Sigmoid weights need no max, sum or division, so the softmax schedules do not apply:
    a sigmoid variant has algorithm `1pass`.
    """

    algorithm: Algorithm
    heads: Heads = Heads.SINGLE
    mask: MaskForm = MaskForm.NONE
    score: ScoreForm = ScoreForm.SOFTMAX
    modifier: ScoreModifier = ScoreModifier.NONE

    def __post_init__(self) -> None:
        if self.score == ScoreForm.SIGMOID and self.algorithm != Algorithm.ONE_PASS:
            raise ValueError(f"sigmoid attention is 1 pass; got algorithm {self.algorithm}")

    @property
    def name(self) -> str:
        """`attention-ALGORITHM[-HEADS][-MASK][-sigmoid][-MODIFIER]`; defaults are omitted."""
        parts = ["attention", str(self.algorithm)]
        parts += [str(self.heads)] if self.heads != Heads.SINGLE else []
        parts += [str(self.mask)] if self.mask != MaskForm.NONE else []
        parts += [str(self.score)] if self.score != ScoreForm.SOFTMAX else []
        parts += [str(self.modifier)] if self.modifier != ScoreModifier.NONE else []
        return "-".join(parts)

    @property
    def score_text(self) -> str:
        """`softmax`, `sigmoid`, `softmax+alibi`, ..."""
        extra = f"+{self.modifier}" if self.modifier != ScoreModifier.NONE else ""
        return f"{self.score}{extra}"

    @property
    def passes(self) -> int:
        """Passes over the keys (FuseMax's notion)."""
        if self.score == ScoreForm.SIGMOID:
            return 1
        return {"3": 3, "2": 2, "1": 1}[str(self.algorithm)[0]]

    @property
    def description(self) -> str:
        """One line: the algorithm's, then the non-default parts after `; `."""
        base = (
            SIGMOID_TEXT[0]
            if self.score == ScoreForm.SIGMOID
            else ALGORITHM_TEXT[self.algorithm][0]
        )
        extras = [
            HEADS_TEXT[self.heads][0],
            MASK_TEXT[self.mask][0],
            MODIFIER_TEXT[self.modifier][0],
        ]
        extras = [e for e in extras if e]
        return base + (f"; {', '.join(extras)}" if extras else "")

    @property
    def notes(self) -> str:
        """What the cascade computes and why, with sources (several lines)."""
        algorithm = (
            SIGMOID_TEXT[1]
            if self.score == ScoreForm.SIGMOID
            else ALGORITHM_TEXT[self.algorithm][1]
        )
        parts = [
            algorithm,
            MASK_TEXT[self.mask][1],
            MODIFIER_TEXT[self.modifier][1],
            HEADS_TEXT[self.heads][1],
        ]
        return "\n".join(p for p in parts if p)


# ----------------------------------------------------------------------------- the parts


@dataclass(frozen=True, slots=True)
class _HeadRanks:
    query: tuple[str, ...]  # ranks before E/F on the query side and every intermediate
    key: tuple[str, ...]  # ranks before E/F on K and V
    slope: tuple[str, ...]  # ranks of the ALiBi slope: one per query head


_HEAD_RANKS = {
    Heads.SINGLE: _HeadRanks((), (), ()),
    Heads.MULTI: _HeadRanks(("B", "H"), ("B", "H"), ("H",)),
    Heads.GROUPED: _HeadRanks(("B", "G", "R"), ("B", "G"), ("G", "R")),
    Heads.MULTI_QUERY: _HeadRanks(("B", "R"), ("B",), ("R",)),
}

# The mask's condition, and the condition a row must meet to see any key (None: always).
_MASK_WHERE: dict[MaskForm, tuple[str, str | None]] = {
    MaskForm.NONE: ("", None),
    MaskForm.CAUSAL: ("m <= p", None),
    MaskForm.CAUSAL_BR: ("m <= p + M - P", "p + M - P >= 0"),
    MaskForm.WINDOW: ("m <= p + M - P and p + M - P - m < W", "p + M - P >= 0"),
    MaskForm.SINKS_WINDOW: (
        "m <= p + M - P and (m < S or p + M - P - m < W)",
        "p + M - P >= 0",
    ),
    MaskForm.PREFIX: ("m <= p + M - P or m < L", None),
}
# Shared-K/V cascades carry a default grouping (Llama 3 8B: 8 KV heads of 4 query heads;
# MQA: 8 query heads) so callers that size only B, M, P, E, F can use them; override G, R.
_HEAD_PARAMS: dict[Heads, tuple[tuple[str, int], ...]] = {
    Heads.GROUPED: (("G", KV_HEADS_DEFAULT), ("R", GROUP_DEFAULT)),
    Heads.MULTI_QUERY: (("R", MQA_HEADS_DEFAULT),),
}
_MASK_PARAMS: dict[MaskForm, tuple[tuple[str, int], ...]] = {
    MaskForm.WINDOW: (("W", WINDOW_DEFAULT),),
    MaskForm.SINKS_WINDOW: (("S", SINKS_DEFAULT), ("W", WINDOW_DEFAULT)),
    MaskForm.PREFIX: (("L", PREFIX_DEFAULT),),
}

# Einsum templates: (text, comment). In the text `{q}` is the query-side rank prefix
# ("b,h,"), `{kv}` the key-side one, `{s}` the score tensor the weights read (QK, or SC
# after a modifier), `{mod}` where the modifier Einsum goes. `{guard}` marks the Einsums
# per query row that would compute -inf - -inf or 0 / 0 on a row that sees no key (P > M
# under a bottom-right mask): they take the row guard `where p + M - P >= 0` (output 0).
_Template = tuple[tuple[str, str], ...]
_QK = ("QK[{q}m,p] = Q[{q}e,p] * K[{kv}e,m]", "scores")
_QK_TILED = ("QK[{q}m1,m0,p] = Q[{q}e,p] * K[{kv}e,m1,m0]", "")
_MOD = ("{mod}", "")
_TEMPLATES: dict[Algorithm, _Template] = {
    Algorithm.THREE_PASS: (
        _QK,
        _MOD,
        ("GM[{q}p] = max[m]({s}[{q}m,p])", "global max over all keys"),
        ("SN[{q}m,p] = exp({s}[{q}m,p] - GM[{q}p])", "pass 2: reads GM"),
        ("SD[{q}p] = SN[{q}m,p]", "softmax denominator"),
        ("A[{q}m,p] = SN[{q}m,p] / SD[{q}p]", "pass 3: reads SD"),
        ("AV[{q}f,p] = A[{q}m,p] * V[{kv}f,m]", ""),
    ),
    Algorithm.TWO_PASS_PLAIN: (
        _QK,
        _MOD,
        ("SN[{q}m,p] = exp({s}[{q}m,p])", "no max subtraction"),
        ("SD[{q}p] = SN[{q}m,p]", "softmax denominator"),
        ("A[{q}m,p] = SN[{q}m,p] / SD[{q}p]", "pass 2: reads SD"),
        ("AV[{q}f,p] = A[{q}m,p] * V[{kv}f,m]", ""),
    ),
    Algorithm.TWO_PASS_DEFERRED: (
        _QK,
        _MOD,
        ("GM[{q}p] = max[m]({s}[{q}m,p])", "global max over all keys"),
        ("SN[{q}m,p] = exp({s}[{q}m,p] - GM[{q}p])", "pass 2: reads GM"),
        ("SD[{q}p] = SN[{q}m,p]", "denominator"),
        ("SNV[{q}f,p] = SN[{q}m,p] * V[{kv}f,m]", "unnormalised numerator"),
        ("AV[{q}f,p] = SNV[{q}f,p] / SD[{q}p]{guard}", "deferred division (no M)"),
    ),
    Algorithm.TWO_PASS_TILEMAX: (
        (_QK_TILED[0], "scores, tiled"),
        _MOD,
        ("LM[{q}m1,p] = max[m0]({s}[{q}m1,m0,p])", "tile-local max"),
        ("SLN[{q}m1,m0,p] = exp({s}[{q}m1,m0,p] - LM[{q}m1,p])", "tile numerator"),
        ("SLD[{q}m1,p] = SLN[{q}m1,m0,p]", "tile denominator"),
        ("SLNV[{q}m1,f,p] = SLN[{q}m1,m0,p] * V[{kv}f,m1,m0]", "tile numerator x V"),
        ("GM[{q}p] = max[m1](LM[{q}m1,p])", "global max"),
        ("PRM[{q}m1,p] = exp(LM[{q}m1,p] - GM[{q}p]){guard}", "pass 2: reads GM"),
        ("SD[{q}p] = SLD[{q}m1,p] * PRM[{q}m1,p]", "rescaled denominator"),
        ("SNV[{q}f,p] = SLNV[{q}m1,f,p] * PRM[{q}m1,p]", "rescaled numerator"),
        ("AV[{q}f,p] = SNV[{q}f,p] / SD[{q}p]{guard}", "deferred division"),
    ),
    Algorithm.ONE_PASS: (
        _QK_TILED,
        _MOD,
        ("LM[{q}m1,p] = max[m0]({s}[{q}m1,m0,p])", ""),
        ("RM[{q}m1+1,p] = max(RM[{q}m1,p], LM[{q}m1,p])", ""),
        ("SLN[{q}m1,m0,p] = exp({s}[{q}m1,m0,p] - RM[{q}m1+1,p])", ""),
        ("SLD[{q}m1,p] = SLN[{q}m1,m0,p]", ""),
        ("PRM[{q}m1,p] = exp(RM[{q}m1,p] - RM[{q}m1+1,p])", ""),
        ("SPD[{q}m1,p] = PRM[{q}m1,p] * RD[{q}m1,p]", ""),
        ("RD[{q}m1+1,p] = SPD[{q}m1,p] + SLD[{q}m1,p]", ""),
        ("SLNV[{q}m1,f,p] = SLN[{q}m1,m0,p] * V[{kv}f,m1,m0]", ""),
        ("SPNV[{q}m1,f,p] = PRM[{q}m1,p] * RNV[{q}m1,f,p]", ""),
        ("RNV[{q}m1+1,f,p] = SPNV[{q}m1,f,p] + SLNV[{q}m1,f,p]", ""),
        ("AV[{q}f,p] = RNV[{q}M1,f,p] / RD[{q}M1,p]{guard}", ""),
    ),
}
_SIGMOID_TEMPLATE: _Template = (
    _QK,
    _MOD,
    ("SA[{q}m,p] = sigmoid({s}[{q}m,p] - log(M))", "weights: b = -log(M), no normalization"),
    ("AV[{q}f,p] = SA[{q}m,p] * V[{kv}f,m]", ""),
)
_TILED = frozenset({Algorithm.TWO_PASS_TILEMAX, Algorithm.ONE_PASS})


def _modifier_line(variant: Variant, tiled: bool, slope: str) -> tuple[str, str]:
    keys = "m1,m0" if tiled else "m"
    if variant.modifier == ScoreModifier.SOFTCAP:
        return (f"SC[{{q}}{keys},p] = C * tanh(QK[{{q}}{keys},p] / C)", "softcapped scores")
    if variant.modifier == ScoreModifier.ALIBI:
        m = "(m1 * M0 + m0)" if tiled else "m"
        if variant.mask == MaskForm.CAUSAL:
            distance = f"(p - {m})"
        elif variant.mask in (MaskForm.NONE, MaskForm.PREFIX):  # keys on both sides
            distance = f"abs(p + M - P - {m})"
        else:
            distance = f"(p + M - P - {m})"
        bias = f"SL[{slope}] * {distance}"
        return (f"SC[{{q}}{keys},p] = QK[{{q}}{keys},p] - {bias}", "ALiBi position bias")
    raise AssertionError(variant.modifier)


def template(variant: Variant) -> tuple[tuple[str, str], ...]:
    """The variant's Einsums as (text, comment) pairs, conditions included, in order."""
    ranks = _HEAD_RANKS[variant.heads]
    sigmoid = variant.score == ScoreForm.SIGMOID
    tiled = variant.algorithm in _TILED and not sigmoid
    lines = _SIGMOID_TEMPLATE if sigmoid else _TEMPLATES[variant.algorithm]
    where, row = _MASK_WHERE[variant.mask]
    slope = ",".join(r.lower() for r in ranks.slope)
    fill = {
        "q": "".join(f"{r.lower()}," for r in ranks.query),
        "kv": "".join(f"{r.lower()}," for r in ranks.key),
        "s": "QK" if variant.modifier == ScoreModifier.NONE else "SC",
        "guard": f" where {row}" if row else "",
        "mod": "",
    }
    result: list[tuple[str, str]] = []
    for text, comment in lines:
        if text == "{mod}":
            if variant.modifier == ScoreModifier.NONE:
                continue
            text, comment = _modifier_line(variant, tiled, slope)
        line = text.format(**fill)
        per_key = any(v in _key_vars(line) for v in ("m", "m0"))
        if where and per_key:
            line += f" where {where}"
        result.append((line, comment))
    return tuple(result)


def _key_vars(text: str) -> set[str]:
    einsum = parse_einsum(text)
    return set(einsum.iteration_vars)


@functools.cache
def build(variant: Variant) -> Cascade:
    """The cascade of one variant (memoized; cascades are immutable)."""
    ranks = _HEAD_RANKS[variant.heads]
    sigmoid = variant.score == ScoreForm.SIGMOID
    tiled = variant.algorithm in _TILED and not sigmoid
    inputs = [
        ("Q", (*ranks.query, "E", "P")),
        ("K", (*ranks.key, "E", "M")),
        ("V", (*ranks.key, "F", "M")),
    ]
    if variant.modifier == ScoreModifier.ALIBI:
        inputs.append(("SL", ranks.slope))
    params: list[tuple[str, int]] = [("M0", KEY_TILE_DEFAULT)] if tiled else []
    params += _HEAD_PARAMS.get(variant.heads, ())
    params += _MASK_PARAMS.get(variant.mask, ())
    if variant.modifier == ScoreModifier.SOFTCAP:
        params.append(("C", SOFTCAP_DEFAULT))
    init: tuple[tuple[TensorName, float], ...] = ()
    if variant.algorithm == Algorithm.ONE_PASS and not sigmoid:
        # A finite running-max start keeps hidden leading tiles NaN-free (see the notes).
        start = -1.0e30 if _MASK_WHERE[variant.mask][1] else -float("inf")
        init = ((TensorName("RM"), start), (TensorName("RD"), 0.0), (TensorName("RNV"), 0.0))
    einsums = []
    for text, _ in template(variant):
        parsed = parse_einsum(text)
        einsums.append(Einsum(parsed.out, parsed.expr, parsed.where))
    return Cascade(
        name=variant.name,
        inputs=tuple((TensorName(n), tuple(RankName(r) for r in rs)) for n, rs in inputs),
        einsums=tuple(einsums),
        outputs=(TensorName("AV"),),
        partitions=(Partition(RankName("M"), (RankName("M1"), RankName("M0"))),) if tiled else (),
        params=tuple((RankName(n), v) for n, v in params),
        init=init,
        description=variant.description,
        source=f"<builtin>/{variant.name}",
    )
