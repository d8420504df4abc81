"""Dynamic, content-based selection variants of the zoo (variants.md Sec. 2.5).

A selector scores a reduced set of the keys (chunk summaries, centroids, representative
keys), a data-dependent top-k or sort picks the keys each query attends to, and attention
runs over the picked keys only. The grammar has no top-k, sort or data-dependent index, so
each built-in is modelled by its statistic:

- the selector's work that *can* be written (pooling, scores against summaries or
  centroids) is written as Einsums, counted in FLOPs and passes, and its scores are an
  output of the cascade (the top-k or sort that consumes them runs outside the grammar);
- the selected count is a size (a param with the paper's default) and the gathered keys and
  values are inputs over a rank of their own (`N`, the selected keys), so the attention's
  work and traffic follow the selected count, not the full context `M`;
- every such choice is stated in the cascade's `assumptions`, which every mapper's Result
  repeats as warnings.

The gathered operands are declared as picks of the memory (`gathers`: KC from K by CS): the
pass analysis then knows the attention reads the memory again once the selector's result is
complete (a top-k over every summary, centroid or block), and counts that sweep over M as
the write-up does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from attnsim.einsum_ir.ir import Cascade, Gather, Partition, RankName, TensorName
from attnsim.einsum_ir.library.builder import KEY_TILE_DEFAULT
from attnsim.einsum_ir.library.zoo_base import (
    MASKED_INIT,
    SELECTION,
    Builder,
    ZooCascade,
    declare,
    einsums,
    one_pass_lines,
)

Parts = tuple[tuple[str, tuple[str, ...]], ...]

# HCAM (Lampinen et al. 2021): memory chunks of M0 keys, the top-k of them attended in detail.
HCAM_CHUNK = 16  # M0 = N0: keys per chunk [verify against the paper's appendix]
HCAM_TOP_K = 4  # k: chunks attended in detail [verify]
# Routing Transformer (Roy et al. 2021): U ~ sqrt(M) centroids, windows of w = M / U tokens.
ROUTING_CLUSTERS = 32  # U [verify the per-task cluster counts]
ROUTING_WINDOW = 256  # N = I = w = M / U tokens per cluster (M = 8192)
# DCAL (Zhu et al. 2022): ViT-B/16 at 448 x 448 (784 patches + CLS), GLCA on the last layer.
DCAL_QUERIES = 78  # R: 10% of the tokens for fine-grained classification [verify]
DCAL_LAYERS = 11  # L: the layers before GLCA's, whose maps the rollout chain multiplies [verify]
# HiP (Lee et al. 2024), the authors' defaults: mask_k = 512 keys, b_q = 32, b_k = 2.
HIP_BLOCKS = 256  # k: key blocks kept per query block (mask_k = 512 keys / b_k = 2)
HIP_SELECTED = 512  # N = k b_k
HIP_QUERY_BLOCK = 32  # I = b_q
HIP_SEGMENT = 16  # M0 = M / 2k at M = 8192
HIP_ROUNDS = 3  # L = log2(M / N) - 1 at M = 8192

# The online softmax over the selected chunks' summary scores (HCAM's renormalized top-k
# weights), FuseMax's B2 with one chunk output OJ in place of one value.
_CHUNK_COMBINE = [
    "RM[b,h,n1+1,p] = max(RM[b,h,n1,p], CQ[b,h,n1,p])",
    "PRM[b,h,n1,p] = exp(RM[b,h,n1,p] - RM[b,h,n1+1,p])",
    "CE[b,h,n1,p] = exp(CQ[b,h,n1,p] - RM[b,h,n1+1,p])",
    "RD[b,h,n1+1,p] = PRM[b,h,n1,p] * RD[b,h,n1,p] + CE[b,h,n1,p]",
    "RNV[b,h,n1+1,f,p] = PRM[b,h,n1,p] * RNV[b,h,n1,f,p] + CE[b,h,n1,p] * OJ[b,h,n1,f,p]",
    "AV[b,h,f,p] = RNV[b,h,N1,f,p] / RD[b,h,N1,p]",
]


def selection_cascade(
    entry: ZooCascade,
    inputs: Sequence[tuple[str, Sequence[str]]],
    lines: Sequence[str],
    partitions: Parts,
    params: tuple[tuple[str, int], ...],
    outputs: tuple[str, ...],
    assumptions: tuple[str, ...],
    init: tuple[tuple[TensorName, float], ...] = (),
    gathers: tuple[tuple[str, str, tuple[str, ...], str], ...] = (),
) -> Cascade:
    """A selection cascade: its own partitions (the memory's and the selection's).

    `gathers`: (input, the input it picks from, the tensors whose values pick, the input's
    rank holding the picks), for the pass analysis (`einsum_ir.ir.Gather`).
    """
    return Cascade(
        name=entry.name,
        inputs=declare(inputs),
        einsums=einsums(lines),
        outputs=tuple(TensorName(o) for o in outputs),
        partitions=tuple(
            Partition(RankName(rank), tuple(RankName(p) for p in parts))
            for rank, parts in partitions
        ),
        params=tuple((RankName(n), v) for n, v in params),
        init=init,
        description=entry.description,
        source=f"<builtin>/{entry.name}",
        assumptions=assumptions,
        gathers=tuple(
            Gather(TensorName(t), TensorName(src), tuple(TensorName(b) for b in by), RankName(r))
            for t, src, by, r in gathers
        ),
    )


# ----------------------------------------------------------------------------- HCAM

_HCAM = ZooCascade(
    "attention-hcam",
    SELECTION,
    "HCAM hierarchical chunk attention: scores against chunk summaries (mean keys), then "
    "attention inside the top-k chunks, weighted by their renormalized summary weights "
    "(2 passes over M)",
    f"""Hierarchical Chunk Attention Memory (Lampinen, Chan, Banino and Hill, "Towards mental
time travel: a hierarchical memory for reinforcement learning agents", NeurIPS 2021, arXiv
2105.14039, Sec. 2 and Fig. 1c; variants.md Sec. 2.5 #37). The memory of M keys is cut into
chunks of M0 keys; a chunk's summary is the mean of its keys. A query attends over all the
summaries (relevance weights softmax_u(q . KS[u])), keeps the top-k chunks, runs ordinary
attention inside each of them and sums the k chunk outputs with the relevance weights
renormalized over the k chunks:
  KS[e,u] = mean_m0 K[e,u,m0]        CS[u,p] = sum_e Q[e,p] KS[e,u]        (all U chunks)
  O[f,p] = sum_(j in topk) softmax_j(CS[u_j,p]) softmax_m0(Q . K_j) V_j
(renormalizing the softmax over all U to the top k is the softmax over the k selected
scores). Modelled by its statistic: the top-k is not expressible, so the summary scores CS
are an output (the top-k runs on them outside the grammar) and the k selected chunks are
inputs KC[e,n], VC[f,n] over N = k x N0 selected keys, N0 = M0 keys per chunk (set N0 = M0).
A selected chunk's summary score is recomputed from its own scores, mean_n0 QK = q . KS[u_j]
(linearity: no gathered summary needed). The combine is the online (1-pass) softmax over the
chunks with each chunk's output in place of a value. Defaults: M0 = N0 = {HCAM_CHUNK},
N = {HCAM_TOP_K * HCAM_CHUNK} (k = {HCAM_TOP_K}) [verify the paper's chunk size and k]. FLOPs: M E
(summaries; HCAM computes them once when a chunk is written) + P U E (summary scores) + P N (E + F)
(attention in the chunks) + the per-chunk combine.
Passes: 2 over M, as the write-up counts: 1 over the U summaries, then 1 over the k chunks
(KC is declared a pick of K by the summary scores CS, so it is read after their sweep).
Not modelled: the memory's write path (chunking as the episode runs) and multi-head
per-layer details of the agent.""",
    2,
    mask="top-k chunks",
    algorithm="chunk-select",
)
_HCAM_INPUTS = (
    ("Q", ("B", "H", "E", "P")),
    ("K", ("B", "H", "E", "M")),
    ("KC", ("B", "H", "E", "N")),
    ("VC", ("B", "H", "F", "N")),
)
_HCAM_LINES = [
    # the selector: chunk summaries and every query's summary scores (the top-k's input)
    "KT[b,h,e,m1] = K[b,h,e,m1,m0]",
    "KS[b,h,e,m1] = KT[b,h,e,m1] / M0",
    "CS[b,h,m1,p] = Q[b,h,e,p] * KS[b,h,e,m1]",
    # attention inside each selected chunk n1 (one chunk: an ordinary softmax over n0)
    "QK[b,h,n1,n0,p] = Q[b,h,e,p] * KC[b,h,e,n1,n0]",
    "CT[b,h,n1,p] = QK[b,h,n1,n0,p]",
    "CQ[b,h,n1,p] = CT[b,h,n1,p] / N0",  # the chunk's summary score q . KS[u_j]
    "LM[b,h,n1,p] = max[n0](QK[b,h,n1,n0,p])",
    "SLN[b,h,n1,n0,p] = exp(QK[b,h,n1,n0,p] - LM[b,h,n1,p])",
    "SLD[b,h,n1,p] = SLN[b,h,n1,n0,p]",
    "SLNV[b,h,n1,f,p] = SLN[b,h,n1,n0,p] * VC[b,h,f,n1,n0]",
    "OJ[b,h,n1,f,p] = SLNV[b,h,n1,f,p] / SLD[b,h,n1,p]",
    *_CHUNK_COMBINE,
]
_HCAM_ASSUMPTIONS = (
    "HCAM's top-k chunk selection is modelled by its statistic: k = N / N0 selected chunks "
    "(N a size); the summary scores CS are an output and the top-k on them runs outside "
    "the cascade",
    "the k selected chunks are inputs KC, VC (gathered keys and values, N = k x N0 of "
    "them) shared by the P queries of the call: exact for one query per step (HCAM's agent) "
    "and decode; for queries that pick different chunks their K/V traffic is a lower bound",
    "chunks are whole (the memory is zero-padded to M1 x M0 keys: a summary is the chunk's "
    "sum / M0) and N0 = M0",
)


def _hcam(entry: ZooCascade) -> Cascade:
    return selection_cascade(
        entry,
        _HCAM_INPUTS,
        _HCAM_LINES,
        (("M", ("M1", "M0")), ("N", ("N1", "N0"))),
        (("M0", HCAM_CHUNK), ("N0", HCAM_CHUNK), ("N", HCAM_TOP_K * HCAM_CHUNK)),
        ("AV", "CS"),
        _HCAM_ASSUMPTIONS,
        MASKED_INIT,
        (("KC", "K", ("CS",), "N"),),
    )


# ----------------------------------------------------------------------------- Routing


def renamed_one_pass(query: str, key: str, value: str, prefix: str) -> list[str]:
    """FuseMax's 1-pass Einsums over keys N (tiles N1 x N0) and queries I.

    `query`, `key` and `value` name the inputs read as Q, K and V; `prefix` is the index
    prefix of every tensor (`b,h,u,`).
    """
    lines = []
    for text in one_pass_lines("", prefix, prefix, prefix):
        text = re.sub(r"\bQ\[", f"{query}[", text)
        text = re.sub(r"\bK\[", f"{key}[", text)
        text = re.sub(r"\bV\[", f"{value}[", text)
        text = text.replace("m1", "n1").replace("m0", "n0").replace("M1", "N1")
        lines.append(re.sub(r",p\]", ",i]", text))
    return lines


_ROUTING = ZooCascade(
    "attention-routing",
    SELECTION,
    "Routing Transformer: tokens assigned to U centroids ((P + M) U E), then attention "
    "inside each cluster's window of w = M / U keys (block-diagonal after the sort) "
    "(2 passes over M)",
    f"""Routing attention (Roy, Saffar, Vaswani and Grangier, "Efficient Content-Based Sparse
Attention with Routing Transformers", TACL 2021, arXiv 2003.05997, Sec. 4; variants.md
Sec. 2.5 #31): U centroids C[e,u] (online k-means); every query and key is scored against
them, QU[u,p] = Q . C and KU[u,m] = K . C ((P + M) U E MACs), and in the balanced form each
centroid takes the top w = M / U queries and the top w keys by those scores (a sort per
centroid), so after the sort attention is block-diagonal: cluster u's I queries attend to its
N keys,
  AV[u,f,i] = sum_n softmax_n(sum_e QR[u,e,i] KR[u,e,n]) VR[u,f,n]
and the outputs are scattered back to the queries' positions. Modelled by its statistic: the
assignment scores QU, KU are outputs (the top-w sort runs outside the grammar) and the
routed queries, keys and values are inputs QR[u,e,i], KR[u,e,n], VR[u,f,n] with I queries and
N keys per cluster (sizes; the paper's balanced windows: I = P / U, N = M / U). Attention
per cluster is FuseMax's 1-pass cascade over N (tiles N0). Defaults U = {ROUTING_CLUSTERS},
I = N = {ROUTING_WINDOW} (M = P = 8192) [verify the paper's per-task U]. FLOPs: (P + M) U E
(assignment) + U I N (E + F) = P w (E + F) (attention).
Passes: 2 over K, as the write-up counts: the assignment over all M, then the clustered
attention (KR is declared a pick of K by the key assignment scores KU, and QR of Q by QU: the
sort needs the complete assignment).
Not modelled: the causal mask inside a cluster (it compares the tokens' original positions,
data-dependent after the sort), the centroid EMA update (training), the normalization of
Q and K before the assignment [verify], the local-attention half of the heads (an
`attention-1pass` window built-in per head class), and tokens in several or no windows.""",
    2,
    mask="clusters",
    algorithm="routed",
)
_ROUTING_INPUTS = (
    ("Q", ("B", "H", "E", "P")),
    ("K", ("B", "H", "E", "M")),
    ("C", ("H", "E", "U")),
    ("QR", ("B", "H", "U", "E", "I")),
    ("KR", ("B", "H", "U", "E", "N")),
    ("VR", ("B", "H", "U", "F", "N")),
)
_ROUTING_LINES = [
    # the selector: every query's and key's scores against the centroids (the sort's input)
    "QU[b,h,u,p] = Q[b,h,e,p] * C[h,e,u]",
    "KU[b,h,u,m] = K[b,h,e,m] * C[h,e,u]",
    *renamed_one_pass("QR", "KR", "VR", "b,h,u,"),
]
_ROUTING_ASSUMPTIONS = (
    "the Routing Transformer's balanced assignment (top w tokens per centroid, a sort) is "
    "modelled by its statistic: the scores QU, KU against the U centroids are outputs and "
    "the sort runs outside the cascade",
    "the routed queries, keys and values are inputs QR, KR, VR: I queries and N keys per "
    "cluster (sizes; balanced windows I = P / U, N = M / U), attention block-diagonal over "
    "the U clusters; the scatter of the outputs back to the query positions is not priced",
    "no causal mask inside a cluster (it compares original positions, data-dependent after "
    "the sort)",
)


def _routing(entry: ZooCascade) -> Cascade:
    return selection_cascade(
        entry,
        _ROUTING_INPUTS,
        _ROUTING_LINES,
        (("N", ("N1", "N0")),),
        (
            ("N0", KEY_TILE_DEFAULT),
            ("U", ROUTING_CLUSTERS),
            ("I", ROUTING_WINDOW),
            ("N", ROUTING_WINDOW),
        ),
        ("AV", "QU", "KU"),
        _ROUTING_ASSUMPTIONS,
        MASKED_INIT,
        (("QR", "Q", ("QU",), "I"), ("KR", "K", ("KU",), "N")),
    )


# ----------------------------------------------------------------------------- HiP

_HIP = ZooCascade(
    "attention-hip",
    SELECTION,
    "HiP hierarchically pruned attention: a tree walk scores 2k representative keys per "
    "round for log2(M / (k b_k)) rounds, then block-sparse attention over the k kept blocks "
    "(3 passes over M)",
    f"""Hierarchically Pruned Attention (Lee, Park, Lee, Suh, Kim, Jeong, Kim, Lee, Jeon and
Hwang, "A Training-Free Sub-quadratic Cost Transformer Model Serving Framework With
Hierarchically Pruned Attention", arXiv 2406.09827, Sec. 3 and Alg. 1; variants.md Sec. 2.5
#51). Per query block of b_q rows, the key range is cut into 2k segments; each is scored by
its representative (centre) key, sc = max over the block's rows of q . K[centre], and the top
k are kept; then, round after round, every kept segment is halved, the 2k halves are scored
by their centres and the top k kept, until the segments are key blocks of b_k keys: 1 +
log2(M / (2 k b_k)) = log2(M / (k b_k)) rounds. Attention then runs over the k kept blocks
(N = k b_k keys) only. Modelled by its statistic: the top-k rounds are not expressible, so
  S0[m1,i] = sum_e QB[e,i] K[e,m1,centre]       (round 1: M1 = 2k segments of M0 keys)
  SR[l,j,i] = sum_e QB[e,i] KR[l,e,j]           (rounds 2.. : L rounds of J = 2k halves)
are outputs (the block max over the I = b_q rows and the top-k run on them outside the
grammar), the queries come in U blocks of I rows (QB[u,e,i], P = U I), the later rounds'
representatives are inputs KR[u,l,e,j] and the kept blocks are inputs KG[u,e,n], VG[u,f,n]
per query block; attention is FuseMax's 1-pass cascade over N (tiles N0) per query block.
Round 1 reads K at fixed positions (each segment's centre, m0 = floor(M0 / 2), a where
clause), so its FLOPs are counted per representative. Defaults follow the authors' code
(hip_attention: mask_k = 512 keys, block_size_q = 32, block_size_k = 2): k = 256 blocks,
N = {HIP_SELECTED}, I = {HIP_QUERY_BLOCK}, J = {2 * HIP_BLOCKS}, and for M = 8192 M0 = {HIP_SEGMENT}
(M / 2k) and L = {HIP_ROUNDS} (log2(M / N) - 1), set M0 and L with M; U = 1 query block (a
prefill has U = P / I). FLOPs: P 2k E (round 1)
+ P L 2k E (later rounds), i.e. P 2k log2(M / (k b_k)) E, + P N (E + F) (attention) + the
1-pass rescales.
Passes: 3 over M, the write-up's tree walk + 1: round 1's sweep of the 2k segment centres
(a strided read), then the later rounds as one batch over the halves KR (a pick of K by
round 1's scores S0), then the kept blocks KG, VG (picks of K by the last scores SR). The
later rounds are L dependent top-k steps; batched here (an assumption), they count as one
sweep of the representative keys.
Not modelled: the causal mask inside the kept blocks and the per-block ranges of a causal
prefill, the authors' sliding window and dense first layers, the b_k-key representative
blocks of the kernels (b_k times the estimator's MACs) [verify against the paper's Alg. 1],
mask caching across decode steps, KV offloading.""",
    3,
    mask="top-k blocks",
    algorithm="tree-select",
)
_HIP_INPUTS = (
    ("QB", ("B", "H", "U", "E", "I")),
    ("K", ("B", "H", "E", "M")),
    ("KR", ("B", "H", "U", "L", "E", "J")),
    ("KG", ("B", "H", "U", "E", "N")),
    ("VG", ("B", "H", "U", "F", "N")),
)
_HIP_LINES = [
    # the tree walk: round 1 scores each segment's centre key, later rounds the given halves
    "S0[b,h,u,m1,i] = QB[b,h,u,e,i] * K[b,h,e,m1,m0] where 2*m0 >= M0 - 1 and 2*m0 <= M0",
    "SR[b,h,u,l,j,i] = QB[b,h,u,e,i] * KR[b,h,u,l,e,j]",
    # block-sparse attention: each query block over its k kept blocks
    *renamed_one_pass("QB", "KG", "VG", "b,h,u,"),
]
_HIP_ASSUMPTIONS = (
    "HiP's tree walk is modelled by its statistic: every round's top-k (and the block max "
    "over the b_q rows) runs outside the cascade on the representative scores S0, SR; the "
    "later rounds' representatives KR are inputs, J = 2k per round for L rounds (sizes: set "
    "L = log2(M / N) - 1 and M0 = M / 2k with M)",
    "the k kept key blocks are inputs KG, VG per query block (N = k x b_k keys); queries come "
    "in U blocks of I = b_q rows (P = U x I); no causal mask inside the kept blocks",
    "round 1 reads K only at the 2k segment centres: its FLOPs follow the 2k representatives, "
    "but a mapper that charges K's full size over-states round 1's K traffic (M keys read "
    "where HiP reads 2k)",
)


def _hip(entry: ZooCascade) -> Cascade:
    return selection_cascade(
        entry,
        _HIP_INPUTS,
        _HIP_LINES,
        (("M", ("M1", "M0")), ("N", ("N1", "N0"))),
        (
            ("M0", HIP_SEGMENT),
            ("N0", KEY_TILE_DEFAULT),
            ("N", HIP_SELECTED),
            ("I", HIP_QUERY_BLOCK),
            ("U", 1),
            ("L", HIP_ROUNDS),
            ("J", 2 * HIP_BLOCKS),
        ),
        ("AV", "S0", "SR"),
        _HIP_ASSUMPTIONS,
        MASKED_INIT,
        (("KR", "K", ("S0",), "J"), ("KG", "K", ("SR",), "N")),
    )


# ----------------------------------------------------------------------------- DCAL

_DCAL = ZooCascade(
    "attention-dcal",
    SELECTION,
    "DCAL global-local cross-attention: the top-R queries by CLS attention rollout attend to "
    "all M keys; the rollout's CLS row is a chain of vector x (A + I) / 2 products over layers "
    "(2 passes)",
    f"""Global-Local Cross-Attention of DCAL (Zhu, Ke, Li, Liu, Tian and Shan, "Dual
Cross-Attention Learning for Fine-Grained Visual Categorization and Object
Re-Identification", CVPR 2022, arXiv 2205.02151, Sec. 3.2; variants.md Sec. 2.5 #13). The
accumulated attention of layer i is the rollout S_i = Abar_i Abar_(i-1) ... Abar_1 with
Abar_l = (A_l + I) / 2 (A_l: layer l's attention map, heads averaged [verify]; rows of Abar
sum to 1, so the renormalization is the identity). GLCA takes the top-R tokens of its CLS
row S_i[cls, :] and lets their queries attend to all M keys and values of layer i:
  AV[f,r] = sum_m softmax_m(sum_e QS[e,r] K[e,m]) V[f,m]
The current layer multiplies on the left, so the CLS row of S_i is not the previous CLS row
times Abar_i (variants.md's r_l = r_(l-1) Abar_l multiplies the layers in the opposite
order): it is a chain of vector x matrix products started at the current layer's CLS row,
  v = Abar_i[cls, :],  v <- v Abar_l for l = i-1, ..., 1,  each step
  RO[l,t] = sum_p RW[l,p] Abar_l[p,t] = (1/2H) sum_(h,p) RW[l,p] softmax_m(QL.KL)[p,t] + RW[l,t] / 2
(t: token, read over the key rank and written over P with `where p == m`, so RO is the
next step's RW)
so it needs every earlier layer's whole map (kept, or recomputed from its queries QL and
keys KL, as here: a softmax row normalized before the weighted sum over p, 2 passes over
the keys). Modelled: the CLS row CR of the current layer (from its CLS query QC and K) and
the L chain steps as one batch over L, each step's incoming vector RW[l,p] an input (the
chain feeds step l's RO into step l+1's RW: a sequence over layers that turns the key rank
into the query rank, which the grammar cannot state); the top-R is data-dependent, so
CR and RO are outputs and the R selected queries are an input QS[e,r] (R a size). GLCA is
FuseMax's 1-pass cascade over M with R query rows. Defaults: R = {DCAL_QUERIES} (10% of the
785 tokens of ViT-B/16 at 448 px) and L = {DCAL_LAYERS} (GLCA on the 12th layer) [verify];
set P = M (the earlier maps are self-attention). FLOPs: R M (E + F) (GLCA) + H M E (CLS
row) + L H P M (E + 2) (the chain: scores, weighted sum) and the softmax terms.
Passes: the write-up counts 2 per layer for the rollout and 1 for GLCA. count_passes over M
shows 2: pass 1 runs GLCA and the row statistics (CLS row and every layer's map, the
layers in parallel), pass 2 the normalized CLS row and the chain's weighted sums; the
dependence of GLCA's queries on the complete rollout (the top-R) and of each step on the
previous one are outside the grammar.
Not modelled: PWCA (training only: keys and values of a paired image concatenated, M'=2M),
the top-R gather itself, GLCA's output feeding the classifier.""",
    2,
    mask="top-R queries",
    algorithm="rollout-select",
)
_DCAL_INPUTS = (
    ("QS", ("B", "H", "E", "R")),
    ("K", ("B", "H", "E", "M")),
    ("V", ("B", "H", "F", "M")),
    ("QC", ("B", "H", "E")),
    ("QL", ("B", "H", "L", "E", "P")),
    ("KL", ("B", "H", "L", "E", "M")),
    ("RW", ("B", "L", "P")),
)
_DCAL_LINES = [
    # GLCA: the R selected queries attend to every key of the layer (1 pass)
    *(re.sub(r",p\]", ",r]", re.sub(r"\bQ\[", "QS[", t)) for t in one_pass_lines()),
    # the current layer's CLS row (heads averaged) plus the identity at the CLS token m = 0,
    # FuseMax's 2-pass softmax: running max and rescaled denominator, then the normalized row
    "CQK[b,h,m1,m0] = QC[b,h,e] * K[b,h,e,m1,m0]",
    "CLM[b,h,m1] = max[m0](CQK[b,h,m1,m0])",
    "CRM[b,h,m1+1] = max(CRM[b,h,m1], CLM[b,h,m1])",
    "CLD[b,h,m1] = exp(CQK[b,h,m1,m0] - CRM[b,h,m1+1])",
    "CRD[b,h,m1+1] = exp(CRM[b,h,m1] - CRM[b,h,m1+1]) * CRD[b,h,m1] + CLD[b,h,m1]",
    "CA[b,m1,m0] = exp(CQK[b,h,m1,m0] - CRM[b,h,M1]) / CRD[b,h,M1]",
    "CR[b,p] = 0.5 * CA[b,m] / H + 0.5 * step(0.5 - p) where p == m",
    # one chain step per earlier layer l: RO[l] = RW[l] (A_l + I) / 2, A_l's rows normalized
    # (the same 2-pass softmax per row p, then the sum over p weighted by RW / row sum)
    "RQK[b,h,l,m1,m0,p] = QL[b,h,l,e,p] * KL[b,h,l,e,m1,m0]",
    "RLM[b,h,l,m1,p] = max[m0](RQK[b,h,l,m1,m0,p])",
    "RRM[b,h,l,m1+1,p] = max(RRM[b,h,l,m1,p], RLM[b,h,l,m1,p])",
    "RLD[b,h,l,m1,p] = exp(RQK[b,h,l,m1,m0,p] - RRM[b,h,l,m1+1,p])",
    "RRD[b,h,l,m1+1,p] = exp(RRM[b,h,l,m1,p] - RRM[b,h,l,m1+1,p]) * RRD[b,h,l,m1,p]"
    " + RLD[b,h,l,m1,p]",
    "RWN[b,h,l,p] = RW[b,l,p] / RRD[b,h,l,M1,p]",
    "RA[b,l,m1,m0] = RWN[b,h,l,p] * exp(RQK[b,h,l,m1,m0,p] - RRM[b,h,l,M1,p])",
    "RO[b,l,p] = 0.5 * RA[b,l,m] / H + 0.5 * RW[b,l,p] where p == m",
]
_DCAL_ASSUMPTIONS = (
    "DCAL's top-R query selection is modelled by its statistic: the rollout's CLS row "
    "(CR, then the chain steps RO) is an output, the top-R runs outside the cascade and the "
    "R selected queries are an input QS (R a size)",
    "the rollout chain's steps run as one batch over the L earlier layers, each step's "
    "incoming vector RW an input (step l's RO is step l+1's RW); the earlier layers' maps "
    "are recomputed from their queries QL and keys KL (P = M tokens), heads averaged",
    "the CLS token is token 0; GLCA has no mask (ViT tokens attend to all tokens)",
)


# the 2-pass rows start like FuseMax's masked state: a virtual key of logit -1e30, weight 1
_ROW_INIT = tuple(
    (TensorName(name), value)
    for name, value in (("CRM", -1.0e30), ("CRD", 1.0), ("RRM", -1.0e30), ("RRD", 1.0))
)


def _dcal(entry: ZooCascade) -> Cascade:
    return selection_cascade(
        entry,
        _DCAL_INPUTS,
        _DCAL_LINES,
        (("M", ("M1", "M0")),),
        (("M0", KEY_TILE_DEFAULT), ("R", DCAL_QUERIES), ("L", DCAL_LAYERS)),
        ("AV", "CR", "RO"),
        _DCAL_ASSUMPTIONS,
        (*MASKED_INIT, *_ROW_INIT),
    )


ENTRIES: tuple[ZooCascade, ...] = (_HCAM, _ROUTING, _HIP, _DCAL)
BUILDERS: dict[str, Builder] = {
    _HCAM.name: _hcam,
    _ROUTING.name: _routing,
    _HIP.name: _hip,
    _DCAL.name: _dcal,
}
