"""Score-function and normalization variants of the zoo (variants.md Sec. 2.6).

Most are FuseMax's 1-pass cascade with a change at the end of the pass (a sink logit in
the denominator, a second attention matrix mixed in, a calibrated split of the weights) or
an extra term in the scores (a relative-position term); per-head learned scalars are
inputs over H. GAAM has no query-key product at all (three passes of per-element
statistics: the negative test of the pass analysis), and Kronecker attention has two key
ranks whose pair space is the softmax's domain.
"""

from __future__ import annotations

from attnsim.einsum_ir.ir import Cascade, TensorName
from attnsim.einsum_ir.library.zoo_base import (
    MASKED_INIT,
    MH_INPUTS,
    ONE_PASS_NOTE,
    SCORES,
    Builder,
    ZooCascade,
    cascade,
    one_pass_lines,
)

RCMHA_OFFSETS_DEFAULT = 2047  # D = P + M - 1 relative offsets at P = M = 1024
ACT_SINKS_DEFAULT = 1  # S: the sink set, the first S keys (the initial token)
GAAM_GAUSSIANS_DEFAULT = 4  # I: Gaussians per head [verify the paper's default]
GAAM_EPS = "0.00000001"  # the authors' eps (variance and normalizer clamp)
KRONECKER_SECOND_DEFAULT = 64  # N: keys of the second key rank

_BODY = one_pass_lines()[:-1]  # the 1-pass cascade without its final division
_FINAL = "RNV[b,h,M1,f,p] / RD[b,h,M1,p]"  # content attention at the end of the pass

# ----------------------------------------------------------------------------- sink logit

_SINK = ZooCascade(
    "attention-sink-logit",
    SCORES,
    "Learned per-head sink logit with a zero value: softmax over M + 1 keys (1 pass)",
    f"""Attention with a learned sink logit (Gu et al., "When Attention Sink Emerges in
Language Models: An Empirical View", arXiv 2410.10781, 2024, the learnable-sink variant;
variants.md Sec. 2.6 #54): every head h has a learned logit b_h (input SB[h]) for a virtual
key whose value is 0, so the weights are a softmax over M + 1 keys and may sum to less than
one over the real keys:
  AV[f,p] = sum_m e^QK[m,p] V[f,m] / (e^b_h + sum_m e^QK[m,p])
The write-up folds b_h into B2's initial state (RM[0,p] = b_h, RD[0,p] = 1); initial values
are scalars in the grammar, so the sink joins the denominator once, after the pass, at the
final running max: SD = RD + exp(SB - RM), AV = RNV / SD (the same value; one exp per row). If the
sink dominates by more than the exponent range, exp overflows and the output is 0, its
limit. Not the mask-based sinks of StreamingLLM (keeping the first keys, attention-moa).
{ONE_PASS_NOTE}""",
    1,
    score="softmax+sink",
)
_SINK_LINES = [
    *_BODY,
    "SD[b,h,p] = RD[b,h,M1,p] + exp(SB[h] - RM[b,h,M1,p])",  # the sink joins the sum
    "AV[b,h,f,p] = RNV[b,h,M1,f,p] / SD[b,h,p]",
]

# ----------------------------------------------------------------------------- GPSA

_GPSA = ZooCascade(
    "attention-gpsa",
    SCORES,
    "ConViT gated positional self-attention: sigmoid-gated mix of content softmax and a "
    "fixed positional attention matrix (1 pass)",
    f"""ConViT's gated positional self-attention, GPSA (d'Ascoli et al., "ConViT: Improving
Vision Transformers with Soft Convolutional Inductive Biases", ICML 2021, arXiv 2103.10697,
Eq. 5; variants.md Sec. 2.6 #39):
  A[m,p] = (1 - sigmoid(lambda_h)) softmax_m(QK)[m,p] + sigmoid(lambda_h) PP_h[m,p]
with PP_h = softmax_m(v_pos,h . r_(p,m)), r the relative 2-D offsets (dx, dy, dx^2 + dy^2)
of patches p and m. PP does not depend on the input: it is one constant matrix per head
(input PP[h,m,p], computed once per resolution), so its term is a plain product PP . V in
the same key loop, with no softmax state, and AV = (1 - g) RNV / RD + g (PP . V). The gate
parameter lambda_h is the input GL[h]. The tests build PP from the paper's v_pos and r.
FLOPs: content P M (E + F), positional P M F. ConViT normalizes A once more after the mix
(A / sum_m A); both terms sum to one per row, so that is the identity and is left out.
{ONE_PASS_NOTE}""",
    1,
    score="softmax+positional",
)
_GPSA_INPUTS = (*MH_INPUTS, ("GL", ("H",)), ("PP", ("H", "M", "P")))
_GPSA_LINES = [
    *_BODY,
    "PV[b,h,f,p] = PP[h,m1,m0,p] * V[b,h,f,m1,m0]",
    "GT[h] = sigmoid(GL[h])",
    f"AV[b,h,f,p] = (1 - GT[h]) * {_FINAL} + GT[h] * PV[b,h,f,p]",
]

# ----------------------------------------------------------------------------- RCMHA

_RCMHA = ZooCascade(
    "attention-rcmha",
    SCORES,
    "RCMHA: Transformer-XL relative-position score term (Q + w) . R[p - m] plus content "
    "(Q + u) . K (1 pass)",
    f"""RCMHA, relative convolutional multi-head attention (Sugiharto, Aradea and Mubarok,
"RCMHA: Relative Convolutional Multi-Head Attention for Natural Language Modelling", arXiv
2308.03429, 2023; variants.md Sec. 2.6 #11), the score of Transformer-XL (Dai et al., arXiv
1901.02860, Sec. 3.3) with its two learned biases u, w (inputs UB[h,e], WB[h,e]):
  S[m,p] = sum_e (Q[e,p] + u[e]) K[e,m] + sum_e (Q[e,p] + w[e]) R[e, p - m]
R is the relative embedding (sinusoidal, projected per head: input R[h,e,d]), indexed by
the offset p - m. Access indices are `var +/- INT`, so the offset is its own rank D and the
score Einsum pins it with `where d == p - m + M - 1` (row d of R holds offset d - M + 1):
each (m, p) reads one row, 2 P M E MACs for the two score terms, no P x (P + M)
relative-shift buffer. D must be P + M - 1 (default {RCMHA_OFFSETS_DEFAULT}: P = M = 1024;
pass D with other sizes). Not modelled: the depthwise 1-D convolution of Q, K and V along
the sequence (kernel kappa, 3 M D_model kappa MACs): projection-side work before the
attention, like every built-in's projections.
{ONE_PASS_NOTE}""",
    1,
    score="softmax+relative",
)
_RCMHA_INPUTS = (
    *MH_INPUTS,
    ("UB", ("H", "E")),
    ("WB", ("H", "E")),
    ("R", ("H", "E", "D")),
)
_RELATIVE = "d == p - m + M - 1"
_RCMHA_LINES = [
    "QU[b,h,e,p] = Q[b,h,e,p] + UB[h,e]",
    "QW[b,h,e,p] = Q[b,h,e,p] + WB[h,e]",
    "SC[b,h,m1,m0,p] = QU[b,h,e,p] * K[b,h,e,m1,m0]",  # content
    f"SR[b,h,m1,m0,p] = QW[b,h,e,p] * R[h,e,d] where {_RELATIVE}",  # position
    "QK[b,h,m1,m0,p] = SC[b,h,m1,m0,p] + SR[b,h,m1,m0,p]",
    *_BODY[1:],
    f"AV[b,h,f,p] = {_FINAL}",
]

# ----------------------------------------------------------------------------- ACT

_ACT = ZooCascade(
    "attention-act",
    SCORES,
    "ACT attention calibration: sink weights scaled by beta_h, the removed mass given to "
    "the other keys in proportion; sink set = first S keys (1 pass)",
    f"""ACT, the attention calibration technique (Yu et al., "Unveiling and Harnessing Hidden
Attention Sinks: Enhancing Large Language Models without Training through Attention
Calibration", ICML 2024, arXiv 2406.15765; variants.md Sec. 2.6 #29): for the sink set S
and s[p] = sum_(m in S) A[m,p],
  A'[m,p] = beta A[m,p] (m in S),   A'[m,p] = A[m,p] (1 - beta s) / (1 - s) (otherwise)
so every row still sums to one. The write-up's verified 1-pass form: two B2 accumulators,
sink and rest, share the running max; at the end D = RD_s + RD_o, s = RD_s / D and
  AV = (beta RNV_s + (D - beta RD_s) RNV_o / RD_o) / D.
Passes: 1, the decode / calibration form with a given sink set. ACT detects the sinks on
the same input from column statistics of the normalized A (tokens whose attention exceeds
a threshold, in heads chosen offline [verify the threshold rule]): that is 3 passes (row
stats, column stats, calibrated output) and a comparison on tensor values, which the
grammar does not have, so detection is not built: the sink set is a statistic, the first
S keys (default {ACT_SINKS_DEFAULT}, the initial token; ACT also finds sinks at later
tokens, which cost the same at the same count). beta is per head (input CB[h]; heads ACT
leaves alone have beta = 1, the plain softmax) [verify the paper's beta]. A row whose keys
are all sinks (M <= S) has no rest to give the mass to: its output is beta A V.
Extra work over B2: the sink accumulators (S keys per row), their rescale at every key
tile (P M1 (F + 1): they share the running max) and P (F + 4) per row at the end. A kernel
could hold the sink state at its own max and rescale it once (P F): that needs a rank for
the gathered sink keys, and ranks come from inputs in the grammar, so it is not written.
{ONE_PASS_NOTE}""",
    1,
    score="softmax+calibrated",
)
_SINK_KEY = "m < S"
_REST_KEY = "m >= S"
_ACT_INPUTS = (*MH_INPUTS, ("CB", ("H",)))
# the rest's state is B2's masked start (a virtual key of weight 0); the sinks' starts empty
_ACT_INIT = (*MASKED_INIT, (TensorName("RSD"), 0.0), (TensorName("RSNV"), 0.0))
_ACT_LINES = [
    *_BODY[:4],  # QK, LM, RM, SLN over every key (the shared running max)
    "PRM[b,h,m1,p] = exp(RM[b,h,m1,p] - RM[b,h,m1+1,p])",
    f"SLD[b,h,m1,p] = SLN[b,h,m1,m0,p] where {_REST_KEY}",
    "RD[b,h,m1+1,p] = PRM[b,h,m1,p] * RD[b,h,m1,p] + SLD[b,h,m1,p]",
    f"SLNV[b,h,m1,f,p] = SLN[b,h,m1,m0,p] * V[b,h,f,m1,m0] where {_REST_KEY}",
    "RNV[b,h,m1+1,f,p] = PRM[b,h,m1,p] * RNV[b,h,m1,f,p] + SLNV[b,h,m1,f,p]",
    f"SSD[b,h,m1,p] = SLN[b,h,m1,m0,p] where {_SINK_KEY}",
    "RSD[b,h,m1+1,p] = PRM[b,h,m1,p] * RSD[b,h,m1,p] + SSD[b,h,m1,p]",
    f"SSNV[b,h,m1,f,p] = SLN[b,h,m1,m0,p] * V[b,h,f,m1,m0] where {_SINK_KEY}",
    "RSNV[b,h,m1+1,f,p] = PRM[b,h,m1,p] * RSNV[b,h,m1,f,p] + SSNV[b,h,m1,f,p]",
    "TD[b,h,p] = RSD[b,h,M1,p] + RD[b,h,M1,p]",
    # the rest's share of the row's mass after calibration, over its own sum (0: no rest)
    "CR[b,h,p] = (TD[b,h,p] - CB[h] * RSD[b,h,M1,p]) / RD[b,h,M1,p] where M > S",
    "AV[b,h,f,p] = (CB[h] * RSNV[b,h,M1,f,p] + CR[b,h,p] * RNV[b,h,M1,f,p]) / TD[b,h,p]",
]

# ----------------------------------------------------------------------------- GAAM

_GAAM = ZooCascade(
    "attention-gaam",
    SCORES,
    "GAAM Gaussian adaptive attention: mean/variance over the sequence, a product of "
    "Gaussians per element, normalized (3 passes, no query-key product)",
    f"""Gaussian adaptive attention, GAAM (Ioannides et al., "Gaussian Adaptive Attention is
All You Need: Robust Contextual Representations Across Multiple Modalities", arXiv
2401.11143, 2024; the authors' module gaussian_adaptive_attention.py; variants.md Sec. 2.6
#2): per head and feature f, along the sequence M:
  mu = mean_m X,  var = var_m X (unbiased) + eps,
  G[f,m] = prod_i exp(-(X - mu - delta_i)^2 / (2 c_i^2 var)) / sqrt(2 pi c_i^2),
  Y[f,m] = X[f,m] G[f,m] / max(sum_m G[f,m], eps)       (eps = 1e-8)
with I learned (delta_i, c_i) per head (inputs DG[h,i], CG[h,i]; I = {GAAM_GAUSSIANS_DEFAULT}
Gaussians [verify the paper's count]). There is no query-key product: a learned, normalized
reweighting of each element, whose output is indexed by the sequence rank it reduces.
Passes: 3 (the write-up's count): the sums of X and X^2 (pass 1; var = (sum X^2 - (sum X)^2
/ M) / (M - 1), the one-pass form), then G and its sum (pass 2: the Gaussians need the final
mu and var inside a nonlinear exponent, with no running rescale as softmax's max has), then
Y (pass 3: needs the final sum). A negative test for the pass lower bound. M = 1 gives var
= eps (the authors' unbiased var is 0/0 there; the divisor is max(M - 1, 1)). The authors
split the normalized axis into the heads; here each head's tensor X[b,h,f,m] is its own
sequence of M positions. Memory-bound elementwise and reduction work, no GEMM: the
attention mappers refuse it or price it by its operations.""",
    3,
    heads="mh",
    algorithm="3pass",
    score="gaussian",
)
_GAAM_INPUTS = (("X", ("B", "H", "F", "M")), ("DG", ("H", "I")), ("CG", ("H", "I")))
_DEV = "(X[b,h,f,m] - MU[b,h,f] - DG[h,i])"
_GAAM_LINES = [
    "S1[b,h,f] = X[b,h,f,m]",
    "S2[b,h,f] = X[b,h,f,m] * X[b,h,f,m]",
    "MU[b,h,f] = S1[b,h,f] / M",
    f"VAR[b,h,f] = (S2[b,h,f] - S1[b,h,f] * MU[b,h,f]) / max(M - 1, 1) + {GAAM_EPS}",
    "LC[h] = 0.5 * log(6.283185307179586 * CG[h,i] * CG[h,i])",  # sum_i log sqrt(2 pi c^2)
    f"DV[b,h,f,m] = {_DEV} * {_DEV} / (2 * CG[h,i] * CG[h,i])",
    "G[b,h,f,m] = exp(-DV[b,h,f,m] / VAR[b,h,f] - LC[h])",
    "Z[b,h,f] = G[b,h,f,m]",
    f"Y[b,h,f,m] = X[b,h,f,m] * G[b,h,f,m] / max(Z[b,h,f], {GAAM_EPS})",
]

# ----------------------------------------------------------------------------- Kronecker

_KRONECKER = ZooCascade(
    "attention-kronecker",
    SCORES,
    "Kronecker (tensor) attention: queries attend to key pairs (m, n), joint softmax over "
    "M x N, values V1 * V2 (1 pass over M, N inside every key tile)",
    f"""Tensor attention with Kronecker-structured keys and values (Alman and Song, "How to
Capture Higher-order Correlations? Generalizing Matrix Softmax Attention to Kronecker
Computation", ICLR 2024, arXiv 2310.04064; variants.md Sec. 2.6 #82):
  S[m,n,p] = sum_e Q[e,p] K1[e,m] K2[e,n],   A = softmax over the pairs (m, n),
  AV[f,p] = sum_(m,n) A[m,n,p] V1[f,m] V2[f,n]
(the column-wise Kronecker products K1 (x) K2 and V1 (x) V2 as M N keys). 1 pass over M with
B2's online softmax; every M0-key tile runs over all N keys of the second rank, so K2 and V2
(N (E + F) words per head) are re-read once per key tile unless kept on chip. Work: Q . K1
once (P M E MACs), then P M N E MACs for the scores, P M N exps, P M N F MACs contracting
V2 and P M F contracting V1. Cubic: the paper's near-linear algorithm approximates with
bounded entries; this is the exact form. N defaults to {KRONECKER_SECOND_DEFAULT}.
{ONE_PASS_NOTE}""",
    1,
    algorithm="1pass-pairs",
    score="softmax-pairs",
)
_KRONECKER_INPUTS = (
    ("Q", ("B", "H", "E", "P")),
    ("K1", ("B", "H", "E", "M")),
    ("K2", ("B", "H", "E", "N")),
    ("V1", ("B", "H", "F", "M")),
    ("V2", ("B", "H", "F", "N")),
)
_KRONECKER_LINES = [
    "QK1[b,h,e,m1,m0,p] = Q[b,h,e,p] * K1[b,h,e,m1,m0]",
    "QK[b,h,m1,m0,n,p] = QK1[b,h,e,m1,m0,p] * K2[b,h,e,n]",
    "LM[b,h,m1,p] = max[m0,n](QK[b,h,m1,m0,n,p])",
    "RM[b,h,m1+1,p] = max(RM[b,h,m1,p], LM[b,h,m1,p])",
    "SLN[b,h,m1,m0,n,p] = exp(QK[b,h,m1,m0,n,p] - RM[b,h,m1+1,p])",
    "SLD[b,h,m1,p] = SLN[b,h,m1,m0,n,p]",
    "PRM[b,h,m1,p] = exp(RM[b,h,m1,p] - RM[b,h,m1+1,p])",
    "RD[b,h,m1+1,p] = PRM[b,h,m1,p] * RD[b,h,m1,p] + SLD[b,h,m1,p]",
    "SNV[b,h,m1,m0,f,p] = SLN[b,h,m1,m0,n,p] * V2[b,h,f,n]",
    "SLNV[b,h,m1,f,p] = SNV[b,h,m1,m0,f,p] * V1[b,h,f,m1,m0]",
    "RNV[b,h,m1+1,f,p] = PRM[b,h,m1,p] * RNV[b,h,m1,f,p] + SLNV[b,h,m1,f,p]",
    f"AV[b,h,f,p] = {_FINAL}",
]


def _gaam(entry: ZooCascade) -> Cascade:
    return cascade(
        entry,
        _GAAM_INPUTS,
        _GAAM_LINES,
        params=(("I", GAAM_GAUSSIANS_DEFAULT),),
        outputs=("Y",),
        init=(),
        key_tiles=None,
    )


_GPSA_ASSUMES = (
    "GPSA's positional attention PP[h,m,p] is an input: input-independent, computed once "
    "per resolution (softmax of v_pos . r over the keys), not per forward pass",
)
_RCMHA_ASSUMES = (
    "RCMHA's relative table R has D = P + M - 1 rows (offsets p - m); a pair whose row "
    "p - m + M - 1 falls outside D gets no positional term: set D with P and M",
)
_ACT_ASSUMES = (
    "ACT's sink set is the first S keys, given (found at prefill): the detection from "
    "column statistics of the normalized attention (3 passes) is not modelled",
)

ENTRIES: tuple[ZooCascade, ...] = (_SINK, _GPSA, _RCMHA, _ACT, _GAAM, _KRONECKER)
BUILDERS: dict[str, Builder] = {
    _SINK.name: lambda e: cascade(e, (*MH_INPUTS, ("SB", ("H",))), _SINK_LINES),
    _GPSA.name: lambda e: cascade(e, _GPSA_INPUTS, _GPSA_LINES, assumptions=_GPSA_ASSUMES),
    _RCMHA.name: lambda e: cascade(
        e,
        _RCMHA_INPUTS,
        _RCMHA_LINES,
        params=(("D", RCMHA_OFFSETS_DEFAULT),),
        assumptions=_RCMHA_ASSUMES,
    ),
    _ACT.name: lambda e: cascade(
        e,
        _ACT_INPUTS,
        _ACT_LINES,
        params=(("S", ACT_SINKS_DEFAULT),),
        init=_ACT_INIT,
        assumptions=_ACT_ASSUMES,
    ),
    _GAAM.name: _gaam,
    _KRONECKER.name: lambda e: cascade(
        e, _KRONECKER_INPUTS, _KRONECKER_LINES, params=(("N", KRONECKER_SECOND_DEFAULT),)
    ),
}
