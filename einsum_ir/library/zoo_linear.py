"""Linear and recurrent attention variants of the zoo (variants.md Sec. 2.7).

No softmax: the keys and values are summarised in a state S[e,f] = sum_m phi(K)[e,m] V[f,m]
(decayed or gated in the recurrent variants) of E x F words per head, independent of M.
Causal attention is the same function in three costs: quadratic (masked Q K^T V), recurrent
(the state after every key, a recurrence over m) and chunked (a recurrence over key chunks
m1 of M0 keys plus a masked quadratic term inside the chunk), the form Lightning-2 and GLA
train with. Causal masks are bottom-right aligned: query p sits at key position
q = p + M - P (P = M: self-attention; P < M: the last P tokens, decode and chunked
prefill), sees the keys m <= q and reads the state after key q; a query with q < 0 sees no
key and outputs 0, FlashAttention's convention.
"""

from __future__ import annotations

from attnsim.einsum_ir.ir import Cascade, TensorName
from attnsim.einsum_ir.library.zoo_base import (
    LINEAR,
    MH_INPUTS,
    Builder,
    ZooCascade,
    cascade,
)

CHUNK_DEFAULT = 64  # M0: Lightning-2's block and GLA's chunk (64 in both papers' kernels)
GLA_TAU = 16  # GLA's gate temperature: alpha = sigmoid(x W)^(1/16)

# Katharopoulos et al.'s feature map phi(x) = elu(x) + 1 = max(x, 0) + exp(min(x, 0)) > 0.
PHI = "max({x}, 0) + exp(min({x}, 0))"
# log(sigmoid(x)) without cancellation where sigmoid saturates: min(x, 0) - log(1 + e^-|x|).
LOG_SIGMOID = "(min({x}, 0) - log(1 + exp(-abs({x}))))"
FEATURES = [
    "FQ[b,h,e,p] = " + PHI.format(x="Q[b,h,e,p]"),
    "FK[b,h,e,m] = " + PHI.format(x="K[b,h,e,m]"),
]
QPOS = "p + M - P"  # the key position of query p (bottom-right aligned)
CAUSAL = f"m <= {QPOS}"
AT_QUERY = f"m == {QPOS}"  # the one key position a query reads the state at
# Keys of the query's own chunk, up to the query: chunk start m - m0 <= q < start + M0.
IN_CHUNK = f"m <= {QPOS} and {QPOS} - m + m0 < M0"
VISIBLE_ROW = f"{QPOS} >= 0"  # the query sees at least one key
STATE_INIT = 0.0

MH_DECAY_INPUTS = (*MH_INPUTS, ("DL", ("H",)))
GATED_INPUTS = (*MH_INPUTS, ("GL", ("B", "H", "E", "M")))
LIGHTNET_INPUTS = (*MH_INPUTS, ("WL", ("B", "H", "E", "M")))

_NORMALIZED_NOTE = """Linear attention as Katharopoulos et al. define it ("Transformers are
RNNs: Fast Autoregressive Transformers with Linear Attention", ICML 2020, arXiv 2006.16236,
Eq. 4-6 and 16-20), feature map phi(x) = elu(x) + 1, with its normalizer:
  AV[f,p] = sum_m phi(Q)[e,p] phi(K)[e,m] V[f,m] / sum_m phi(Q)[e,p] phi(K)[e,m]
State per head: KV[e,f] = sum_m phi(K)[e,m] V[f,m] (E x F words) and KS[e] = sum_m phi(K)[e,m]
(E words), independent of M. Multi-head (B, H on every tensor), unscaled, no projections."""
_CAUSAL_NOTE = """Causal: query p (at key position q = p + M - P) sees keys m <= q; a query
with q < 0 sees none and outputs 0 (the division carries `where p + M - P >= 0`). The quadratic,
recurrent and chunked built-ins are the same function (the tests check it) at three costs:
P M (E + F) MACs; M E F (state updates) + P E F (reads); chunked M M0 (E + F) / 2 intra-chunk
+ 2 M E F inter-chunk."""


def _entry(
    name: str, description: str, notes: str, algorithm: str, score: str, mask: str
) -> ZooCascade:
    return ZooCascade(
        name, LINEAR, description, notes, 1, mask=mask, algorithm=algorithm, score=score
    )


_LINEAR = _entry(
    "attention-linear",
    "Linear attention (Katharopoulos): phi(K)^T V summed once, read by every query (1 pass)",
    f"""{_NORMALIZED_NOTE}
Non-causal: the state is a complete sum over M, read by every query after the pass; the
division by the normalizer is deferred to the end (as B2's). FLOPs: M E F + P E F MACs.""",
    "state",
    "linear",
    "none",
)
_QUADRATIC = _entry(
    "attention-linear-causal-quadratic",
    "Causal linear attention, quadratic form: masked phi(Q)^T phi(K) times V (1 pass)",
    f"""{_NORMALIZED_NOTE}
Quadratic form: the causally masked score matrix phi(Q)^T phi(K) times V, as softmax
attention without the exponent (Katharopoulos Eq. 4 with the causal mask).
{_CAUSAL_NOTE}""",
    "quadratic",
    "linear",
    "causal-br",
)
_RECURRENT = _entry(
    "attention-linear-causal-recurrent",
    "Causal linear attention, recurrent form: the state after every key, read by its "
    "query (1 pass)",
    f"""{_NORMALIZED_NOTE}
Recurrent form (Katharopoulos Eq. 16-20, "transformers are RNNs"): the state is a
recurrence over the key positions, KV[m+1] = KV[m] + phi(K)[e,m] V[f,m], and query p reads
the state after its own key, KV[q+1] (a gather: the `where m == p + M - P` pins m).
{_CAUSAL_NOTE}""",
    "recurrent",
    "linear",
    "causal-br",
)
_CHUNKED = _entry(
    "attention-linear-causal-chunked",
    "Causal linear attention, chunked form: masked quadratic inside M0-key chunks plus an "
    "inter-chunk state recurrence over M1 (1 pass)",
    f"""{_NORMALIZED_NOTE}
Chunked form (the training form of Lightning-2, GLA and the `fla` kernels): M = M1 x M0
chunks; inside a chunk the causally masked quadratic term, across chunks the state
KV[m1+1] = KV[m1] + sum_m0 phi(K) V, read by the chunk's queries (exclusive of their own
chunk). The queries are laid out by key position (QM: a gather, P = M positions), so the
inter-chunk product is the chunk GEMM QM[e,m1,m0] KV[m1,e,f] the kernels run, and scattered
back to the query rank. Chunk size M0 = {CHUNK_DEFAULT} (a param).
{_CAUSAL_NOTE}""",
    "chunked",
    "linear",
    "causal-br",
)
_LIGHTNING = _entry(
    "attention-lightning-2",
    "Lightning Attention-2: per-head decay lambda^(q-m); intra-block masked Q K^T V plus "
    "inter-block state recurrence (1 pass)",
    f"""Lightning Attention-2 (Qin et al., "Lightning Attention-2: A Free Lunch for Handling
Unlimited Sequence Lengths in Large Language Models", arXiv 2401.04658, 2024, Algorithm 1;
the decay of TransNormerLLM, Qin et al., arXiv 2307.14995; variants.md Sec. 2.7 #21):
  O = ((Q^T K) * D) V^T with D[p,m] = lambda_h^(q - m) for m <= q, else 0
computed per block of M0 keys: the intra-block masked, decayed product plus the
inter-block term lambda^(m0 + 1) Q KV[m1], with the block-state recurrence
  KV[m1+1][e,f] = lambda^M0 KV[m1][e,f] + sum_m0 lambda^(M0 - 1 - m0) K[e,m1,m0] V[f,m1,m0].
The decay powers are tables (DK, DQ: lambda^k per head and chunk offset; DC = lambda^M0),
folded into K and into the gathered queries as the kernel does; the intra-block decay mask
is one exp per (key, query) pair. The per-head decay is lambda_h = sigmoid(DL[h]), DL an
input (TNL fixes lambda_h per head and layer; the sigmoid keeps any real input a decay in
(0, 1)). No feature map and no
normalizer (TNL normalizes the output with a norm layer outside the kernel). State per head:
KV[e,f], E x F words. Block size M0 = {CHUNK_DEFAULT} (a param). Causal masks as in the other
causal linear built-ins: query p at key position q = p + M - P.""",
    "chunked",
    "linear+decay",
    "causal-br",
)
_GLA = _entry(
    "attention-gla",
    "Gated linear attention (GLA): data-dependent per-feature decay alpha[e,m], chunked "
    "(intra-chunk gated scores plus inter-chunk gated state) (1 pass)",
    f"""Gated linear attention (Yang et al., "Gated Linear Attention Transformers with
Hardware-Efficient Training", ICML 2024, arXiv 2312.06635, Sec. 4; the gate of ViG, Liao et
al., arXiv 2405.18425; variants.md Sec. 2.7 #62): per-feature data-dependent decay
  S_t[e,f] = alpha_t[e] S_(t-1)[e,f] + K[e,t] V[f,t],    O[f,t] = sum_e Q[e,t] S_t[e,f]
with alpha_t = sigmoid(GL[e,t])^(1/{GLA_TAU}) (GLA's tau = {GLA_TAU}; GL is the gate projection's
output, an input). Chunked (GLA Sec. 4.2): BC[m1,m0+1,e] is the cumulative log gate inside
the chunk (a recurrence over m0), intra-chunk scores sum_e Q[e,p] K[e,m] exp(BC_q - BC_m),
inter-chunk exp(BC_q) Q . KV[m1] with
  KV[m1+1][e,f] = exp(BC[m1,M0,e]) KV[m1][e,f] + sum_m0 exp(BC[m1,M0,e] - BC[m1,m0+1,e]) K V.
The inter-chunk gates are folded into K (KD) and the gathered queries (QG) per element.
The intra-chunk gate is applied per (e, m, p) as exp of a difference (GLA's secondary
chunking does that on the diagonal sub-blocks and a Q~K~^T GEMM elsewhere). Causal, bottom-
right aligned; no normalizer. ViG's bidirectional form is two such scans (forward and
backward gates), not built. State per head: KV[e,f], E x F words; chunk M0 = {CHUNK_DEFAULT}.""",
    "chunked",
    "gated",
    "causal-br",
)
_LIGHTNING_BWD = _entry(
    "attention-lightning-2-bwd",
    "Lightning Attention-2's backward: DQ, DK, DV of the decayed causal linear attention, "
    "weights recomputed, quadratic form (1 pass)",
    """The training backward of attention-lightning-2 (same inputs, plus the output gradient
DO; no saved tensor: linear attention has no softmax statistics). With the decayed weights
  W[m,p] = lambda_h^(q - m) (Q . K)[m,p] for m <= q (q = p + M - P), else 0,  O = W^T V,
the gradients of sum(O o DO) are
  DV = W DO^T (sums p),  DS[m,p] = lambda_h^(q - m) (DO . V)[m,p],  DQ = DS K,  DK = DS^T Q
(five products of P x M, as the softmax backward; no row statistics). Written in the
quadratic form: the same gradients as Lightning-2's block-recurrent backward (Qin et al.,
arXiv 2401.04658, Algorithm 2: a forward recurrence of K^T V for DQ and a reverse one of
Q^T DO for DK, DV), at P M (2E + 3F)-order cost; the reverse recurrence is not
expressible as an Einsum cascade here (ranks run forward), so the chunked backward's cost
is not what this cascade shows. The decay logits DL get no gradient (TNL fixes lambda_h
per head). Key positions m, causal bottom-right as in the forward.""",
    "quadratic",
    "linear+decay",
    "causal-br",
)
_LIGHTNET = _entry(
    "attention-lightnet",
    "LightNet additive linear attention: positive weights w = exp(WL) with a running "
    "normalizer U = sum w, non-causal (one scan) (1 pass)",
    """LightNet (Qin et al., "You Only Scan Once: Efficient Multi-dimension Sequential Modeling
with LightNet", arXiv 2405.21022, 2024; variants.md Sec. 2.7 #8): additive recurrence
  U_t = U_(t-1) + w_t,   S_t = (U_(t-1) / U_t) S_(t-1) + ((w_t / U_t) K_t) V_t^T,   O = Q S
that is S_t = sum_(s<=t) (w_s / U_t) K_s V_s^T. For non-causal (multi-dimensional) data U is
the global sum, so one scan serves every scan order: accumulate sum_m w K V^T and sum_m w
and divide once at the end (deferred, as B2). Weights w = exp(WL), WL an input (the paper's
key-side projection) [verify the exact gate parameterization and the MD-TPE / MD-LRPE
positional terms, not modelled]. State per head: WKV[e,f] (E x F words) and U[e] (E).
FLOPs: M E F + P E F MACs + M E.""",
    "state",
    "linear+normalizer",
    "none",
)

# ----------------------------------------------------------------------------- Einsums

_LINEAR_LINES = [
    *FEATURES,
    "KV[b,h,e,f] = FK[b,h,e,m] * V[b,h,f,m]",
    "KS[b,h,e] = FK[b,h,e,m]",
    "QKV[b,h,f,p] = FQ[b,h,e,p] * KV[b,h,e,f]",
    "QKS[b,h,p] = FQ[b,h,e,p] * KS[b,h,e]",
    "AV[b,h,f,p] = QKV[b,h,f,p] / QKS[b,h,p]",
]
_QUADRATIC_LINES = [
    *FEATURES,
    f"QK[b,h,m,p] = FQ[b,h,e,p] * FK[b,h,e,m] where {CAUSAL}",
    f"QKS[b,h,p] = QK[b,h,m,p] where {CAUSAL}",
    f"QKV[b,h,f,p] = QK[b,h,m,p] * V[b,h,f,m] where {CAUSAL}",
    f"AV[b,h,f,p] = QKV[b,h,f,p] / QKS[b,h,p] where {VISIBLE_ROW}",
]
_RECURRENT_LINES = [
    *FEATURES,
    "KV[b,h,m+1,e,f] = KV[b,h,m,e,f] + FK[b,h,e,m] * V[b,h,f,m]",
    "KS[b,h,m+1,e] = KS[b,h,m,e] + FK[b,h,e,m]",
    f"QKV[b,h,f,p] = FQ[b,h,e,p] * KV[b,h,m+1,e,f] where {AT_QUERY}",
    f"QKS[b,h,p] = FQ[b,h,e,p] * KS[b,h,m+1,e] where {AT_QUERY}",
    f"AV[b,h,f,p] = QKV[b,h,f,p] / QKS[b,h,p] where {VISIBLE_ROW}",
]
# The inter-chunk product runs per chunk on the queries laid out by key position (the chunk
# GEMM of the kernels): gathered at their key positions, multiplied by the chunk's state at
# the key positions that hold a query, and scattered back to the query rank.
HAS_QUERY = "m >= M - P"
_CHUNKED_LINES = [
    *FEATURES,
    # intra-chunk: the masked quadratic term over the query's own chunk
    f"QK[b,h,m1,m0,p] = FQ[b,h,e,p] * FK[b,h,e,m1,m0] where {IN_CHUNK}",
    f"IKS[b,h,p] = QK[b,h,m1,m0,p] where {IN_CHUNK}",
    f"IKV[b,h,f,p] = QK[b,h,m1,m0,p] * V[b,h,f,m1,m0] where {IN_CHUNK}",
    # inter-chunk: the state before each chunk, a recurrence over the chunks
    "CKV[b,h,m1,e,f] = FK[b,h,e,m1,m0] * V[b,h,f,m1,m0]",
    "CKS[b,h,m1,e] = FK[b,h,e,m1,m0]",
    "KV[b,h,m1+1,e,f] = KV[b,h,m1,e,f] + CKV[b,h,m1,e,f]",
    "KS[b,h,m1+1,e] = KS[b,h,m1,e] + CKS[b,h,m1,e]",
    f"QM[b,h,e,m1,m0] = FQ[b,h,e,p] where {AT_QUERY}",
    f"XKV[b,h,f,m1,m0] = QM[b,h,e,m1,m0] * KV[b,h,m1,e,f] where {HAS_QUERY}",
    f"XKS[b,h,m1,m0] = QM[b,h,e,m1,m0] * KS[b,h,m1,e] where {HAS_QUERY}",
    f"QKV[b,h,f,p] = XKV[b,h,f,m1,m0] where {AT_QUERY}",
    f"QKS[b,h,p] = XKS[b,h,m1,m0] where {AT_QUERY}",
    f"AV[b,h,f,p] = (IKV[b,h,f,p] + QKV[b,h,f,p]) / (IKS[b,h,p] + QKS[b,h,p]) where {VISIBLE_ROW}",
]
# Lightning-2's decay tables (lambda^k per head and chunk offset), as its kernel precomputes.
_LIGHTNING_LINES = [
    "LG[h] = " + LOG_SIGMOID.format(x="DL[h]"),  # log lambda_h < 0
    "DK[h,m0] = exp((M0 - 1 - m0) * LG[h])",  # a key's decay to its chunk's end
    "DQ[h,m0] = exp((m0 + 1) * LG[h])",  # a query's decay from its chunk's start
    "DC[h] = exp(M0 * LG[h])",  # one chunk's decay
    f"QK[b,h,m1,m0,p] = Q[b,h,e,p] * K[b,h,e,m1,m0] where {IN_CHUNK}",
    f"SD[b,h,m1,m0,p] = exp(({QPOS} - m1 * M0 - m0) * LG[h]) * QK[b,h,m1,m0,p] where {IN_CHUNK}",
    f"IKV[b,h,f,p] = SD[b,h,m1,m0,p] * V[b,h,f,m1,m0] where {IN_CHUNK}",
    "KD[b,h,e,m1,m0] = DK[h,m0] * K[b,h,e,m1,m0]",
    "CKV[b,h,m1,e,f] = KD[b,h,e,m1,m0] * V[b,h,f,m1,m0]",
    "KV[b,h,m1+1,e,f] = DC[h] * KV[b,h,m1,e,f] + CKV[b,h,m1,e,f]",
    f"QD[b,h,e,m1,m0] = DQ[h,m0] * Q[b,h,e,p] where {AT_QUERY}",
    f"XKM[b,h,f,m1,m0] = QD[b,h,e,m1,m0] * KV[b,h,m1,e,f] where {HAS_QUERY}",
    f"XKV[b,h,f,p] = XKM[b,h,f,m1,m0] where {AT_QUERY}",
    "AV[b,h,f,p] = IKV[b,h,f,p] + XKV[b,h,f,p]",
]
_GLA_LINES = [
    f"LA[b,h,e,m] = {LOG_SIGMOID.format(x='GL[b,h,e,m]')} / {GLA_TAU}",  # log alpha < 0
    "BC[b,h,m1,m0+1,e] = BC[b,h,m1,m0,e] + LA[b,h,e,m1,m0]",  # cumulative log gate in a chunk
    f"BQ[b,h,e,p] = BC[b,h,m1,m0+1,e] where {AT_QUERY}",  # ... at the query's position
    f"QK[b,h,m1,m0,p] = Q[b,h,e,p] * K[b,h,e,m1,m0] * exp(BQ[b,h,e,p] - BC[b,h,m1,m0+1,e]) "
    f"where {IN_CHUNK}",
    f"IKV[b,h,f,p] = QK[b,h,m1,m0,p] * V[b,h,f,m1,m0] where {IN_CHUNK}",
    "KD[b,h,e,m1,m0] = exp(BC[b,h,m1,M0,e] - BC[b,h,m1,m0+1,e]) * K[b,h,e,m1,m0]",
    "CKV[b,h,m1,e,f] = KD[b,h,e,m1,m0] * V[b,h,f,m1,m0]",
    "GT[b,h,m1,e] = exp(BC[b,h,m1,M0,e])",  # the chunk's gate product
    "KV[b,h,m1+1,e,f] = GT[b,h,m1,e] * KV[b,h,m1,e,f] + CKV[b,h,m1,e,f]",
    f"QG[b,h,e,m1,m0] = exp(BC[b,h,m1,m0+1,e]) * Q[b,h,e,p] where {AT_QUERY}",
    f"XKM[b,h,f,m1,m0] = QG[b,h,e,m1,m0] * KV[b,h,m1,e,f] where {HAS_QUERY}",
    f"XKV[b,h,f,p] = XKM[b,h,f,m1,m0] where {AT_QUERY}",
    "AV[b,h,f,p] = IKV[b,h,f,p] + XKV[b,h,f,p]",
]
# Lightning-2's backward, quadratic: the decayed causal weights recomputed, five products
_DECAY = f"exp(({QPOS} - m) * LG[h])"
_LIGHTNING_BWD_LINES = [
    "LG[h] = " + LOG_SIGMOID.format(x="DL[h]"),
    f"W[b,h,m,p] = {_DECAY} * Q[b,h,e,p] * K[b,h,e,m] where {CAUSAL}",
    f"DV[b,h,f,m] = W[b,h,m,p] * DO[b,h,f,p] where {CAUSAL}",
    f"DS[b,h,m,p] = {_DECAY} * DO[b,h,f,p] * V[b,h,f,m] where {CAUSAL}",
    f"DQ[b,h,e,p] = DS[b,h,m,p] * K[b,h,e,m] where {CAUSAL}",
    f"DK[b,h,e,m] = DS[b,h,m,p] * Q[b,h,e,p] where {CAUSAL}",
]
_LIGHTNET_LINES = [
    "W[b,h,e,m] = exp(WL[b,h,e,m])",
    "U[b,h,e] = W[b,h,e,m]",
    "WKV[b,h,e,f] = W[b,h,e,m] * K[b,h,e,m] * V[b,h,f,m]",
    "QU[b,h,e,p] = Q[b,h,e,p] / U[b,h,e]",
    "AV[b,h,f,p] = QU[b,h,e,p] * WKV[b,h,e,f]",
]


def _init(*names: str) -> tuple[tuple[TensorName, float], ...]:
    return tuple((TensorName(n), STATE_INIT) for n in names)


def _build(
    entry: ZooCascade,
    lines: list[str],
    init: tuple[str, ...] = (),
    chunks: bool = False,
    inputs: tuple[tuple[str, tuple[str, ...]], ...] = MH_INPUTS,
) -> Cascade:
    key_tiles = CHUNK_DEFAULT if chunks else None
    return cascade(entry, inputs, lines, init=_init(*init), key_tiles=key_tiles)


# The zoo's backward cascades and the forward each differentiates (the pairing
# `attnsim cascade passes/show` reports, as for the training built-ins).
BACKWARD_OF = {_LIGHTNING_BWD.name: _LIGHTNING.name}

ENTRIES: tuple[ZooCascade, ...] = (
    _LINEAR,
    _QUADRATIC,
    _RECURRENT,
    _CHUNKED,
    _LIGHTNING,
    _GLA,
    _LIGHTNET,
    _LIGHTNING_BWD,
)
BUILDERS: dict[str, Builder] = {
    _LINEAR.name: lambda e: _build(e, _LINEAR_LINES),
    _QUADRATIC.name: lambda e: _build(e, _QUADRATIC_LINES),
    _RECURRENT.name: lambda e: _build(e, _RECURRENT_LINES, ("KV", "KS")),
    _CHUNKED.name: lambda e: _build(e, _CHUNKED_LINES, ("KV", "KS"), chunks=True),
    _LIGHTNING.name: lambda e: _build(
        e, _LIGHTNING_LINES, ("KV",), chunks=True, inputs=MH_DECAY_INPUTS
    ),
    _GLA.name: lambda e: _build(e, _GLA_LINES, ("BC", "KV"), chunks=True, inputs=GATED_INPUTS),
    _LIGHTNET.name: lambda e: _build(e, _LIGHTNET_LINES, inputs=LIGHTNET_INPUTS),
    _LIGHTNING_BWD.name: lambda e: cascade(
        e,
        (*MH_DECAY_INPUTS, ("DO", ("B", "H", "F", "P"))),
        _LIGHTNING_BWD_LINES,
        outputs=("DQ", "DK", "DV"),
        init=(),
        key_tiles=None,
    ),
}
