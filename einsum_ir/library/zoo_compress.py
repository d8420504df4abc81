"""Compression and pooled-memory variants of the zoo (variants.md Sec. 2.5, 2.7).

The keys are summarised before the queries read them: Agent attention pools J agent tokens
from the queries, CCA pools each group of keys into one core token, LongVQ quantizes the
keys to S codewords, SeqBoat attends over the tokens its gate activates. Each cascade's
work follows its construction (agents, core tokens plus a local window, codewords, the
compacted length), never dense P x M. Data-dependent choices are modelled by a statistic
or computed from the inputs where the grammar can state them; each says which in its
`assumptions`.
"""

from __future__ import annotations

import dataclasses

from attnsim.einsum_ir.ir import Cascade, Partition, RankName, TensorName
from attnsim.einsum_ir.library.builder import KEY_TILE_DEFAULT
from attnsim.einsum_ir.library.zoo_base import (
    MASKED_INIT,
    MH_INPUTS,
    ONE_PASS_NOTE,
    SELECTION,
    Builder,
    ZooCascade,
    cascade,
    one_pass_lines,
)
from attnsim.einsum_ir.library.zoo_selection import selection_cascade

AGENTS_DEFAULT = 49  # Agent attention: J = 49 agents (7 x 7 pooled)
AGENT_POOL_DEFAULT = 64  # U0: queries per pool (8 x 8 patches: 49 pools of a 56 x 56 map)
CCA_GROUP_DEFAULT = 16  # CCA: group size g (M0), the reference code's pooling_size
CCA_WINDOW_DEFAULT = 1024  # CCA: local window W, the reference code's window_size
VQ_CODES_DEFAULT = 512  # LongVQ / Transformer-VQ: S codewords
SEQBOAT_WINDOW_DEFAULT = 256  # SeqBoat: single-sided local window (standalone default)
# A one-hot of the nearest codeword from squared distances: 1 at the minimum, 0 wherever the
# distance exceeds it by more than 1 / VQ_SHARPNESS (exact unless two codewords tie closer).
VQ_SHARPNESS = "1e12"

# ----------------------------------------------------------------------------- Agent attention

AGENT_INPUTS = (
    *MH_INPUTS,
    ("AB", ("H", "J", "M")),  # agent bias (agents x keys), per head
    ("QB", ("H", "J", "P")),  # query bias (agents x queries), per head
)
_LIVE = "j < U"  # agents that hold a pool (U = ceil(P / U0) pools)
_AGENT_LINES = [
    # agents: the mean of each pool of U0 queries (pool u = queries u U0 .. u U0 + U0 - 1)
    "AGS[b,h,e,j] = Q[b,h,e,u,u0] where j == u",
    f"AG[b,h,e,j] = AGS[b,h,e,j] / min(U0, P - j * U0) where {_LIVE}",
    # aggregation: B2 over the keys with the J agents as queries
    f"SA[b,h,m1,m0,j] = AG[b,h,e,j] * K[b,h,e,m1,m0] where {_LIVE}",
    f"QK[b,h,m1,m0,j] = SA[b,h,m1,m0,j] + AB[h,j,m1,m0] where {_LIVE}",
    f"LM[b,h,m1,j] = max[m0](QK[b,h,m1,m0,j]) where {_LIVE}",
    "RM[b,h,m1+1,j] = max(RM[b,h,m1,j], LM[b,h,m1,j])",
    f"SLN[b,h,m1,m0,j] = exp(QK[b,h,m1,m0,j] - RM[b,h,m1+1,j]) where {_LIVE}",
    f"SLD[b,h,m1,j] = SLN[b,h,m1,m0,j] where {_LIVE}",
    "PRM[b,h,m1,j] = exp(RM[b,h,m1,j] - RM[b,h,m1+1,j])",
    "RD[b,h,m1+1,j] = PRM[b,h,m1,j] * RD[b,h,m1,j] + SLD[b,h,m1,j]",
    f"SLNV[b,h,m1,f,j] = SLN[b,h,m1,m0,j] * V[b,h,f,m1,m0] where {_LIVE}",
    "RNV[b,h,m1+1,f,j] = PRM[b,h,m1,j] * RNV[b,h,m1,f,j] + SLNV[b,h,m1,f,j]",
    "VA[b,h,f,j] = RNV[b,h,M1,f,j] / RD[b,h,M1,j]",
    # broadcast: every query's softmax over the agents (J-sized, no key rank)
    f"SB[b,h,j,p] = Q[b,h,e,p] * AG[b,h,e,j] where {_LIVE}",
    f"QA[b,h,j,p] = SB[b,h,j,p] + QB[h,j,p] where {_LIVE}",
    f"GM[b,h,p] = max[j](QA[b,h,j,p]) where {_LIVE}",
    f"SN[b,h,j,p] = exp(QA[b,h,j,p] - GM[b,h,p]) where {_LIVE}",
    f"SD[b,h,p] = SN[b,h,j,p] where {_LIVE}",
    f"SNV[b,h,f,p] = SN[b,h,j,p] * VA[b,h,f,j] where {_LIVE}",
    "AV[b,h,f,p] = SNV[b,h,f,p] / SD[b,h,p]",
]
_AGENT = ZooCascade(
    "attention-agent",
    SELECTION,
    f"Agent attention: J = {AGENTS_DEFAULT} agents pooled from Q aggregate K/V (B2 with J "
    "queries), then every query attends to the agents (1 pass)",
    f"""Agent attention (Han et al., "Agent Attention: On the Integration of Softmax and Linear
Attention", ECCV 2024, arXiv 2312.08874; variants.md Sec. 2.7 #5):
  AG[e,j]  = mean of the queries of pool j                      (agent tokens)
  VA[f,j]  = sum_m softmax_m(AG[.,j] . K[.,m] + AB[j,m]) V[f,m]  (agent aggregation)
  AV[f,p]  = sum_j softmax_j(Q[.,p] . AG[.,j] + QB[j,p]) VA[f,j] (agent broadcast)
The aggregation is FuseMax's 1-pass cascade with the agents as its queries (1 pass over
K/V); the broadcast reads only J-sized operands after it. Pools: the queries cut into
U = ceil(P / U0) pools of U0 consecutive positions (the paper pools a 2-D token map to
7 x 7 by adaptive average pooling: the tokens are taken in pool order, a permutation that
costs nothing); agent j is the mean of pool j for j < min(J, U) (agents beyond the pools
are left out of both softmaxes). Defaults J = {AGENTS_DEFAULT}, U0 = {AGENT_POOL_DEFAULT}
(J = U at P = 3136, a 56 x 56 map). The biases AB (agents x keys) and QB (agents x
queries) are the paper's agent and query position biases, inputs per head. Not modelled:
the depthwise convolution DWC(V) added to the output (a 3 x 3 convolution over the 2-D
token map, P F 9 MACs, outside attention). FLOPs: pooling P E adds, aggregation
J M (E + F) MACs, broadcast P J (E + F) MACs; exps J M + P J. Unscaled, as every built-in.
{ONE_PASS_NOTE}""",
    1,
    mask="none",
    algorithm="pooled agents",
    score="softmax x2",
)


def _agent(entry: ZooCascade) -> Cascade:
    params = (("J", AGENTS_DEFAULT), ("U0", AGENT_POOL_DEFAULT))
    assumptions = (
        "agent pooling: agent j is the mean of U0 consecutive queries (the paper's 2-D "
        "adaptive pooling with the tokens taken in pool order); agents beyond the "
        "ceil(P / U0) pools are left out",
    )
    base = cascade(entry, AGENT_INPUTS, _AGENT_LINES, params, assumptions=assumptions)
    pools = Partition(RankName("P"), (RankName("U"), RankName("U0")))
    return dataclasses.replace(base, partitions=(*base.partitions, pools))


# ----------------------------------------------------------------------------- CCA

QPOS = "p + M - P"  # the key position of query p (bottom-right aligned)
# Key m (group m1 = its tile, offset m0) is local to query q while its group is not pooled
# for q: m <= q and the group's last key m - m0 + M0 - 1 is within W of q.
CCA_LOCAL = f"m <= {QPOS} and {QPOS} - m + m0 < M0 + W - 1"
# Group m1's core token, placed at the group's last key (m0 = M0 - 1), is visible to q once
# that key is at least W before q.
CCA_CORE = f"m0 == M0 - 1 and m + W <= {QPOS}"
CCA_INPUTS = (*MH_INPUTS, ("QM", ("B", "H", "E", "M")))
_CCA_LINES = [
    # pooling: per group, a softmax over its keys weighted by the group's last query
    "QL[b,h,e,m1] = QM[b,h,e,m1,m0] where m0 == M0 - 1",
    "PS[b,h,m1,m0] = QL[b,h,e,m1] * K[b,h,e,m1,m0]",
    "PM[b,h,m1] = max[m0](PS[b,h,m1,m0])",
    "PE[b,h,m1,m0] = exp(PS[b,h,m1,m0] - PM[b,h,m1])",
    "PD[b,h,m1] = PE[b,h,m1,m0]",
    "KN[b,h,e,m1] = PE[b,h,m1,m0] * K[b,h,e,m1,m0]",
    "VN[b,h,f,m1] = PE[b,h,m1,m0] * V[b,h,f,m1,m0]",
    "KC[b,h,e,m1] = KN[b,h,e,m1] / PD[b,h,m1]",
    "VC[b,h,f,m1] = VN[b,h,f,m1] / PD[b,h,m1]",
    # one online softmax over each tile's local keys and its group's core token
    f"QK[b,h,m1,m0,p] = Q[b,h,e,p] * K[b,h,e,m1,m0] where {CCA_LOCAL}",
    f"CS[b,h,m1,m0,p] = Q[b,h,e,p] * KC[b,h,e,m1] where {CCA_CORE}",
    f"LM[b,h,m1,p] = max[m0](QK[b,h,m1,m0,p]) where {CCA_LOCAL}",
    f"LC[b,h,m1,p] = max[m0](CS[b,h,m1,m0,p]) where {CCA_CORE}",
    "RM[b,h,m1+1,p] = max(RM[b,h,m1,p], max(LM[b,h,m1,p], LC[b,h,m1,p]))",
    f"SLN[b,h,m1,m0,p] = exp(QK[b,h,m1,m0,p] - RM[b,h,m1+1,p]) where {CCA_LOCAL}",
    f"SLC[b,h,m1,m0,p] = exp(CS[b,h,m1,m0,p] - RM[b,h,m1+1,p]) where {CCA_CORE}",
    f"SLD[b,h,m1,p] = SLN[b,h,m1,m0,p] where {CCA_LOCAL}",
    f"SCD[b,h,m1,p] = SLC[b,h,m1,m0,p] where {CCA_CORE}",
    "PRM[b,h,m1,p] = exp(RM[b,h,m1,p] - RM[b,h,m1+1,p])",
    "RD[b,h,m1+1,p] = PRM[b,h,m1,p] * RD[b,h,m1,p] + SLD[b,h,m1,p] + SCD[b,h,m1,p]",
    f"SLNV[b,h,m1,f,p] = SLN[b,h,m1,m0,p] * V[b,h,f,m1,m0] where {CCA_LOCAL}",
    f"SCV[b,h,m1,f,p] = SLC[b,h,m1,m0,p] * VC[b,h,f,m1] where {CCA_CORE}",
    "RNV[b,h,m1+1,f,p] = PRM[b,h,m1,p] * RNV[b,h,m1,f,p] + SLNV[b,h,m1,f,p] + SCV[b,h,m1,f,p]",
    "AV[b,h,f,p] = RNV[b,h,M1,f,p] / RD[b,h,M1,p]",
]
_CCA = ZooCascade(
    "attention-cca",
    SELECTION,
    f"Core Context Aware attention: groups of g = {CCA_GROUP_DEFAULT} keys pooled into core "
    f"tokens, one softmax over earlier core tokens plus a local window of W = "
    f"{CCA_WINDOW_DEFAULT} (1 pass)",
    f"""Core Context Aware attention (Chen et al., "Core Context Aware Attention for
Long-Context Language Modeling", arXiv 2412.12465; reference code
chenyaofo/CCA-Attention; variants.md Sec. 2.5 #22). Globality-pooling: the keys are cut
into groups of g = M0 (the key tile); each group's core token is its keys and values
weighted by a softmax over the group of the group's last query times its keys:
  PW[m1,m0] = softmax_m0(QM[.,last(m1)] . K[.,m1,m0]),  KC = sum_m0 PW K,  VC = sum_m0 PW V
Locality-preserved attention: query q (key position q = p + M - P) runs one softmax over
the core tokens of the groups whose last key is at least W before it, and over its own
causal keys of the groups not pooled for it (the adaptive window W' of the reference code's
`generate_mask`, W <= W' < W + g):
  core m1 visible: last(m1) + W <= q;   key m visible: m <= q and last(group(m)) + W > q
The core token of group m1 is placed at the group's last key (m0 = M0 - 1), so core and
local keys share one online-softmax loop over the tiles (1 pass over K/V; each group's
pooling needs only that group, so it streams). The reference code's Triton kernel uses the
window (q + 1) mod g + W, the same keys when g divides W (the defaults g = {CCA_GROUP_DEFAULT},
W = {CCA_WINDOW_DEFAULT}). QM is the queries at every key position (self-attention: QM = Q;
in decoding the cache keeps the pooled groups). Unscaled: the 1/sqrt(E) of the pooling and
of the attention are folded into QM and Q. FLOPs: pooling M E + M (E + F) MACs; attention
per query (visible core tokens + local keys) (E + F), about P (M / (2g) + W) (E + F) when
causal. Causal, bottom-right aligned; RoPE is the inputs'.""",
    1,
    mask="core tokens+local window",
    algorithm="1pass pooled",
)


def _cca(entry: ZooCascade) -> Cascade:
    assumptions = (
        "CCA pooling queries: QM, the query at every key position, is an input (QM = Q in "
        "self-attention; the cached queries in decoding); each group is pooled with its last "
        "position's query",
    )
    return cascade(
        entry,
        CCA_INPUTS,
        _CCA_LINES,
        (("W", CCA_WINDOW_DEFAULT),),
        key_tiles=CCA_GROUP_DEFAULT,
        assumptions=assumptions,
    )


# ----------------------------------------------------------------------------- LongVQ

VQ_INPUTS = (*MH_INPUTS, ("CB", ("H", "E", "S")))
_VQ_LINES = [
    # assignment: the nearest codeword of each key (|C|^2 - 2 K.C orders like |K - C|^2)
    "CN[h,s] = CB[h,e,s] * CB[h,e,s]",
    "KCB[b,h,s,m] = K[b,h,e,m] * CB[h,e,s]",
    "DS[b,h,s,m] = CN[h,s] - 2 * KCB[b,h,s,m]",
    "DM[b,h,m] = min[s](DS[b,h,s,m])",
    f"Z[b,h,s,m] = max(0, 1 - {VQ_SHARPNESS} * (DS[b,h,s,m] - DM[b,h,m]))",
    # per codeword: key count L and value sum UV (the state replacing the K/V cache)
    "L[b,h,s] = Z[b,h,s,m]",
    "UV[b,h,f,s] = Z[b,h,s,m] * V[b,h,f,m]",
    # queries: a softmax over the codewords weighted by their key counts; the running max
    # is over the used codewords (an unused one's score is pushed to -1e30)
    "UB[b,h,s] = (min(L[b,h,s], 1) - 1) * 1e30",
    "QC[b,h,s,p] = Q[b,h,e,p] * CB[h,e,s]",
    "SC[b,h,s,p] = QC[b,h,s,p] + UB[b,h,s]",
    "GM[b,h,p] = max[s](SC[b,h,s,p])",
    "SN[b,h,s,p] = exp(SC[b,h,s,p] - GM[b,h,p])",
    "SD[b,h,p] = SN[b,h,s,p] * L[b,h,s]",
    "SNV[b,h,f,p] = SN[b,h,s,p] * UV[b,h,f,s]",
    "AV[b,h,f,p] = SNV[b,h,f,p] / SD[b,h,p]",
]
_LONGVQ = ZooCascade(
    "attention-longvq",
    SELECTION,
    f"LongVQ / Transformer-VQ attention: keys quantized to S = {VQ_CODES_DEFAULT} codewords, "
    "queries attend to the codewords weighted by their key counts (1 pass, linear in M)",
    f"""LongVQ's vector-quantized attention (Liu et al., "LongVQ: Long Sequence Modeling with
Vector Quantization on Structured Memory", arXiv 2404.11163), whose core is
Transformer-VQ's (Lingle, "Transformer-VQ: Linear-Time Transformers via Vector
Quantization", ICLR 2024, arXiv 2309.16354; variants.md Sec. 2.7 #59): each key is replaced
by its nearest codeword Cb[., z(m)], and softmax attention over the quantized keys is
  AV[f,p] = sum_s e^(Q.Cb[s]) Uv[f,s] / sum_s e^(Q.Cb[s]) L[s]
  Uv[f,s] = sum_(m: z(m) = s) V[f,m],   L[s] = #(m: z(m) = s)
The assignment is computed from the inputs: distances |Cb[s]|^2 - 2 K.Cb[s] (M S E MACs;
|K|^2 is the same for every codeword), their minimum, and the one-hot of the minimum as
max(0, 1 - {VQ_SHARPNESS} (d - d_min)) (exact unless two codewords lie within 1e-12 of each
other). Uv and L are counted as a dense one-hot contraction (M S F MACs; a histogram
scatter-add would be M F adds). The query side is the
formula above over the S codewords, its max taken over the used codewords (an unused one's
score is pushed to -1e30: weight 0, no overflow), P S (E + F) MACs. 1 pass over K/V; a state
of S (F + 1) words per head replaces the K/V cache. Codebook CB per head, S =
{VQ_CODES_DEFAULT} (Transformer-VQ's) [verify LongVQ's codebook size]. Non-causal; not
built: the causal block-wise form (running Uv, L over blocks plus an exact intra-block term)
and LongVQ's structured-memory (SSM-style) combination [verify].
Unscaled, as every built-in.""",
    1,
    mask="none",
    algorithm="codebook state",
    score="softmax over codewords",
)


def _longvq(entry: ZooCascade) -> Cascade:
    assumptions = (
        "codeword assignment: each key's nearest codeword (argmin of squared distance), "
        f"computed as the one-hot max(0, 1 - {VQ_SHARPNESS} (d - d_min)); the per-codeword sums "
        "are counted as a dense one-hot contraction (M S F MACs), not a scatter-add",
    )
    return cascade(
        entry,
        VQ_INPUTS,
        _VQ_LINES,
        (("S", VQ_CODES_DEFAULT),),
        init=(),
        key_tiles=None,
        assumptions=assumptions,
    )


# ----------------------------------------------------------------------------- SeqBoat

SEQBOAT_INPUTS = (
    ("Q", ("B", "E", "P")),
    ("K", ("B", "E", "M")),
    ("V", ("B", "F", "M")),
)
SEQBOAT_MASK = f"m <= {QPOS} and {QPOS} - m <= W"
_SEQBOAT = ZooCascade(
    "attention-seqboat",
    SELECTION,
    f"SeqBoat (Sparse Modular Activation): single-head local attention (window W = "
    f"{SEQBOAT_WINDOW_DEFAULT}) over the M' tokens the SSM gate activates (1 pass)",
    f"""SeqBoat's sparsely activated attention (Ren et al., "Sparse Modular Activation for
Efficient Sequence Modeling", NeurIPS 2023, arXiv 2306.11197; code renll/SeqBoat;
variants.md Sec. 2.7 #14): an SSM (Mega's multi-dimensional damped EMA) runs over all
tokens; a router on its output activates a subset of them; the activated tokens are
compacted (gather, M' <= M), a single-head gated attention unit runs local attention on the
compacted sequence, and the result is scattered back and scaled by the router probability.
Local attention as in the code's `local_attention` (exact window): a compacted query sees
the causal keys at most W compacted positions back,
  m <= q and q - m <= W        (q = p + M - P; P = M = M' self-attention)
W = {SEQBOAT_WINDOW_DEFAULT} (the standalone layer's single-sided window) is a param.
Modelled by its statistic: the sizes P and M of this cascade are the compacted length M'
(the activated tokens of the sample; ragged across samples and layers in a batch), Q, K and
V are the gathered tokens. Not modelled: the SSM scan over all tokens (an EMA of dimension
N per channel, M D N work: a convolution or a scan outside attention) and the router, so
the cascade counts 1 pass where the write-up counts 1 (SSM) + 1 (attention): the whole
layer is `attention-seqboat-sma` (2 passes); the gather and
scatter (data movement); the relative position bias over the original positions; the
bidirectional form (a two-sided window); and the code's default squared-ReLU attention
(relu(s)^2 / W instead of softmax) [verify which SeqBoat runs per task]. FLOPs:
M' (W + 1) (E + F) MACs at most, linear in M'. Single head (B only), unscaled.
{ONE_PASS_NOTE}""",
    1,
    heads="single",
    mask="causal window",
    algorithm="1pass compacted",
)


def _seqboat(entry: ZooCascade) -> Cascade:
    assumptions = (
        "token activation (SeqBoat's router on the SSM output): P and M are the compacted "
        "length M' (the activated tokens), a size; Q, K and V are the gathered tokens; the "
        "SSM scan, the router and the gather/scatter are not priced",
    )
    lines = one_pass_lines(SEQBOAT_MASK, "b,", "b,", "b,")
    lines = [line.replace("[b,h,", "[b,") for line in lines]
    return cascade(
        entry,
        SEQBOAT_INPUTS,
        lines,
        (("W", SEQBOAT_WINDOW_DEFAULT),),
        init=MASKED_INIT,
        assumptions=assumptions,
    )


# The whole SMA layer: the SSM scan over all M tokens, its router logits, and the local
# attention over the activated tokens declared as picks of the full-length Q, K, V by them.
SEQBOAT_STATE_DEFAULT = 16  # S: Mega's EMA dimension per channel (its `ndim`, 16)
SEQBOAT_MODEL_DIM_DEFAULT = 1024  # D: the channels the SSM runs over
SEQBOAT_ACTIVE_DEFAULT = 2048  # N = U: activated tokens (half of a 4K sequence); set N: M / 2
SEQBOAT_SMA_INPUTS = (
    ("X", ("B", "D", "M")),  # the layer input, all M tokens
    ("AS", ("D", "S")),  # the EMA's damped decay per channel and state
    ("BS", ("D", "S")),  # its input weights
    ("CS", ("D", "S")),  # its output weights
    ("WG", ("D",)),  # the router's weights (one module: activated or not)
    ("Q", ("B", "E", "P")),
    ("K", ("B", "E", "M")),
    ("V", ("B", "F", "M")),
    ("QC", ("B", "E", "U")),  # the activated queries: picks of Q by the router logits G
    ("KC", ("B", "E", "N")),  # the activated keys and values: picks of K and V by G
    ("VC", ("B", "F", "N")),
)
CPOS = "u + N - U"  # the compacted key position of compacted query u
SEQBOAT_SMA_MASK = f"n <= {CPOS} and {CPOS} - n <= W"
_SEQBOAT_SMA_LINES = [
    # the SSM (a damped EMA of dimension S per channel) over all tokens: one sweep of M
    "SU[b,d,s,m] = BS[d,s] * X[b,d,m]",
    "SS[b,d,s,m+1] = AS[d,s] * SS[b,d,s,m] + SU[b,d,s,m]",
    "Y[b,d,m] = CS[d,s] * SS[b,d,s,m+1]",
    # the router's logit per token: activated where G > 0 (the pick itself is a gather)
    "G[b,m] = WG[d] * Y[b,d,m]",
    # local 1-pass attention over the U activated queries and N activated keys
    f"QK[b,n1,n0,u] = QC[b,e,u] * KC[b,e,n1,n0] where {SEQBOAT_SMA_MASK}",
    f"LM[b,n1,u] = max[n0](QK[b,n1,n0,u]) where {SEQBOAT_SMA_MASK}",
    "RM[b,n1+1,u] = max(RM[b,n1,u], LM[b,n1,u])",
    f"SLN[b,n1,n0,u] = exp(QK[b,n1,n0,u] - RM[b,n1+1,u]) where {SEQBOAT_SMA_MASK}",
    f"SLD[b,n1,u] = SLN[b,n1,n0,u] where {SEQBOAT_SMA_MASK}",
    "PRM[b,n1,u] = exp(RM[b,n1,u] - RM[b,n1+1,u])",
    "RD[b,n1+1,u] = PRM[b,n1,u] * RD[b,n1,u] + SLD[b,n1,u]",
    f"SLNV[b,n1,f,u] = SLN[b,n1,n0,u] * VC[b,f,n1,n0] where {SEQBOAT_SMA_MASK}",
    "RNV[b,n1+1,f,u] = PRM[b,n1,u] * RNV[b,n1,f,u] + SLNV[b,n1,f,u]",
    "AV[b,f,u] = RNV[b,N1,f,u] / RD[b,N1,u]",
]
_SEQBOAT_SMA = ZooCascade(
    "attention-seqboat-sma",
    SELECTION,
    "SeqBoat's whole SMA layer: an SSM scan over all M tokens, router logits, then local "
    f"attention (window W = {SEQBOAT_WINDOW_DEFAULT}) over the activated tokens (2 passes: 1 + 1)",
    f"""SeqBoat's Sparse Modular Activation layer as the write-up counts it (Ren et al.,
NeurIPS 2023, arXiv 2306.11197; variants.md Sec. 2.7 #14): 1 pass for the SSM scan plus 1
attention pass over the compacted tokens. The SSM is Mega's damped EMA of dimension S per
channel, written as its recurrence over the M tokens,
  SS[d,s,m+1] = AS[d,s] SS[d,s,m] + BS[d,s] X[d,m]        Y[d,m] = sum_s CS[d,s] SS[d,s,m+1]
(M D S multiply-adds each for the input, the decay and the output; Mega computes it as a
long convolution, the same work up to the FFT's); the router's logit per token is
G[m] = sum_d WG[d] Y[d,m], a token is activated where G > 0 (the code's argmax over
modules, one module here). The activated queries, keys and values are declared picks of
the full-length Q, K, V by G (`gathers`): QC over U, KC and VC over N activated tokens
(U = N for self-attention; their number is data-dependent: params N = U =
{SEQBOAT_ACTIVE_DEFAULT}, set them to the activated count, e.g. sizes N: M / 2, U: P / 2),
read in the pass after G is complete. The attention is `attention-seqboat`'s: causal exact
window of W compacted positions,
  n <= u + N - U and u + N - U - n <= W,
the online (1-pass) softmax over key tiles of N0. Q, K and V are taken as the projections
of the layer (computed outside the cascade); only their activated rows are read. Not
modelled: the scatter back to the M positions and the router-probability scaling (data
movement and one multiply per output), the relative position bias, Mega's gating around
the attention unit, the squared-ReLU score option. FLOPs: 3 M D S (SSM) + M D (router) +
U (W + 1) (E + F) MACs at most (attention).
{ONE_PASS_NOTE}""",
    2,
    heads="single",
    mask="causal window",
    algorithm="ssm + compacted",
)


def _seqboat_sma(entry: ZooCascade) -> Cascade:
    assumptions = (
        "token activation: the activated tokens (router logit G > 0) are the picks QC, KC, VC "
        "of Q, K, V; their number N = U is a size you set (data-dependent); the scatter "
        "back to all tokens is not priced",
    )
    return selection_cascade(
        entry,
        SEQBOAT_SMA_INPUTS,
        _SEQBOAT_SMA_LINES,
        (("N", ("N1", "N0")),),
        (
            ("N0", KEY_TILE_DEFAULT),
            ("W", SEQBOAT_WINDOW_DEFAULT),
            ("S", SEQBOAT_STATE_DEFAULT),
            ("D", SEQBOAT_MODEL_DIM_DEFAULT),
            ("N", SEQBOAT_ACTIVE_DEFAULT),
            ("U", SEQBOAT_ACTIVE_DEFAULT),
        ),
        ("AV", "G"),
        assumptions,
        init=(*MASKED_INIT, (TensorName("SS"), 0.0)),
        gathers=(("QC", "Q", ("G",), "U"), ("KC", "K", ("G",), "N"), ("VC", "V", ("G",), "N")),
    )


ENTRIES: tuple[ZooCascade, ...] = (_AGENT, _CCA, _LONGVQ, _SEQBOAT, _SEQBOAT_SMA)
BUILDERS: dict[str, Builder] = {
    _AGENT.name: _agent,
    _CCA.name: _cca,
    _LONGVQ.name: _longvq,
    _SEQBOAT.name: _seqboat,
    _SEQBOAT_SMA.name: _seqboat_sma,
}
