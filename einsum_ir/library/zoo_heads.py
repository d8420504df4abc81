"""Head and K/V structure variants of the zoo (variants.md Sec. 2.3).

Each is FuseMax's 1-pass cascade with its own head ranks: which ranks Q, K and V carry
says which heads share keys and values (a tensor absent from a rank is shared across it),
so the mappers read the sharing from structure. Routing and gating weights that scale a
head's output act with the output projection (outside attention, as every built-in's
W_O); the notes say so and the tests apply them to the cascade's output.
"""

from __future__ import annotations

from attnsim.einsum_ir.ir import Cascade
from attnsim.einsum_ir.library.zoo_base import (
    HEAD_STRUCTURE,
    ONE_PASS_NOTE,
    Builder,
    ZooCascade,
    cascade,
    one_pass_lines,
)

SIGMA_KEY_HEADS = 2  # G: key heads (K compressed hardest)
SIGMA_VALUES_PER_KEY = 4  # GV: value heads per key head (G * GV = 8 value heads)
SIGMA_QUERIES_PER_VALUE = 4  # R: query heads per value head (H = 32)
BAM_EXPERTS = 4  # X: attention experts (seed models upcycled)

_SIGMA = ZooCascade(
    "attention-sigma",
    HEAD_STRUCTURE,
    "Sigma DiffQKV: fewer, smaller key heads than value heads (G key heads, G*GV value "
    "heads, G*GV*R query heads) (1 pass)",
    f"""Sigma's DiffQKV attention (Lin et al., "Sigma: Differential Rescaling of Query, Key and
Value for Efficient Language Models", arXiv 2501.13629, 2025; variants.md Sec. 2.3 #41):
keys are compressed harder than values, in head count and in head dim:
  QK[h,m,p] = sum_e Q[h,e,p] K[gk(h),e,m]       AV[h,f,p] = sum_m A[h,m,p] V[gv(h),f,m]
with G key heads of dim E and G*GV value heads of dim F (E <= F: set them as sizes), and
H = G*GV*R query heads: query head (g, gv, r) reads key head g and value head (g, gv).
K lacks GV and R, V lacks R, so a key tile serves GV*R query heads and a value tile R:
the two sharing groups differ. Defaults G = {SIGMA_KEY_HEADS}, GV = {SIGMA_VALUES_PER_KEY},
R = {SIGMA_QUERIES_PER_VALUE} (8 value heads, 32 query heads). KV cache bytes per token:
G E + G GV F. Not modelled: selective V fetching (a data-dependent top-k over M that adds
a second pass over the chosen V rows) and augmented Q (a larger Q-side projection: a
projection cost, not an attention one) [verify how augmented Q meets E].
{ONE_PASS_NOTE}""",
    1,
    heads="diff-kv",
)
_BAM = ZooCascade(
    "attention-bam",
    HEAD_STRUCTURE,
    "BAM soft mixture of attention experts with shared K/V: X experts' queries over one "
    "K/V per head (1 pass)",
    f"""BAM's mixture of attention experts with shared keys and values (Zhang et al., "BAM!
Just Like That: Simple and Efficient Parameter Upcycling for Mixture of Experts", arXiv
2408.08274, 2024; variants.md Sec. 2.3 #66): each of X experts has its own query (and
output) projection, K and V are shared, and soft routing runs every expert:
  AV[b,h,x,f,p] = softmax_m(sum_e Q[b,h,x,e,p] K[b,h,e,m]) . V[b,h,f,m]
  Y[b,d,p] = sum_x GX[b,x,p] sum_(h,f) AV[b,h,x,f,p] WO[x,h,f,d]   (with the projection)
K and V lack X: each K/V tile serves the X experts' queries, GQA with X query heads per
key/value head (X = {BAM_EXPERTS}). The router weights GX scale each expert's projected
output, so they act with the per-expert output projections W_O, outside the attention
(the tests apply them). FLOPs: X times the attention of one expert. BAM runs attention in
parallel with the FFN (a parallel block): a schedule across layers, not modelled here.
{ONE_PASS_NOTE}""",
    1,
    heads="experts-shared-kv",
)
_MOH = ZooCascade(
    "attention-moh",
    HEAD_STRUCTURE,
    "MoH mixture-of-head attention: each head attends for the queries routed to it, "
    "P = active queries per head (1 pass)",
    f"""MoH, multi-head attention as head-routing mixture of experts (Jin et al., "MoH:
Multi-Head Attention as Head-Routing Mixture-of-Experts", arXiv 2410.11842, 2024;
variants.md Sec. 2.3 #6): H_S shared heads are active for every token and each token
activates its top-k of the H_R routed heads; the output is the gated head sum
  Y[d,t] = sum_h G[h,t] sum_f O_h[f,t] WO[h,f,d]      (G = 0 for inactive (h, t) pairs)
Attention work is spent only on active (head, token) pairs, which a kernel gets by
compacting each head's active queries (gather, dense attention, scatter). The routing is a
data-dependent selection, modelled by its statistic: the query rank P of this cascade is
the number of active queries per head (a size; on average T (H_S + k) / H for T tokens,
e.g. 75% of T for MoH-LLaMA3-8B), keys and values stay all M tokens (keys are not
routed). Every head gets the same P: the imbalance between shared and routed heads is not
modelled. The gates and the head sum act with the output projection W_O (outside
attention; the tests apply them and scatter the compacted rows back).
{ONE_PASS_NOTE}""",
    1,
    heads="routed-mh",
)


def _sigma(entry: ZooCascade) -> Cascade:
    inputs = [
        ("Q", ("B", "G", "GV", "R", "E", "P")),
        ("K", ("B", "G", "E", "M")),
        ("V", ("B", "G", "GV", "F", "M")),
    ]
    params = (("G", SIGMA_KEY_HEADS), ("GV", SIGMA_VALUES_PER_KEY), ("R", SIGMA_QUERIES_PER_VALUE))
    return cascade(entry, inputs, one_pass_lines("", "b,g,gv,r,", "b,g,", "b,g,gv,"), params)


def _bam(entry: ZooCascade) -> Cascade:
    inputs = [
        ("Q", ("B", "H", "X", "E", "P")),
        ("K", ("B", "H", "E", "M")),
        ("V", ("B", "H", "F", "M")),
    ]
    lines = one_pass_lines("", "b,h,x,", "b,h,", "b,h,")
    return cascade(entry, inputs, lines, (("X", BAM_EXPERTS),))


def _moh(entry: ZooCascade) -> Cascade:
    inputs = [
        ("Q", ("B", "H", "E", "P")),
        ("K", ("B", "H", "E", "M")),
        ("V", ("B", "H", "F", "M")),
    ]
    return cascade(entry, inputs, one_pass_lines())


ENTRIES: tuple[ZooCascade, ...] = (_SIGMA, _BAM, _MOH)
BUILDERS: dict[str, Builder] = {_SIGMA.name: _sigma, _BAM.name: _bam, _MOH.name: _moh}
