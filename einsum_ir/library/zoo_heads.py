"""Head and K/V structure variants of the zoo (variants.md Sec. 2.3).

Each is FuseMax's 1-pass cascade with its own head ranks: which ranks Q, K and V carry
says which heads share keys and values (a tensor absent from a rank is shared across it),
so the mappers read the sharing from structure. Routing and gating weights that scale a
head's output act with the output projection (outside attention, as every built-in's
W_O); the notes say so and the tests apply them to the cascade's output.
"""

from __future__ import annotations

import re

from attnsim.einsum_ir.ir import Cascade, TensorName
from attnsim.einsum_ir.library.zoo_base import (
    HEAD_STRUCTURE,
    MASKED_INIT,
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
KDGQA_KV_HEADS = 4  # G: K/V heads (a default; the authors' module defaults to H // 2)

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


_KDGQA = ZooCascade(
    "attention-kdgqa",
    HEAD_STRUCTURE,
    "KDGQA key-driven GQA: a key-norm pre-pass allocates the H query heads to the G K/V "
    "heads (ragged groups), then GQA (2 passes over K)",
    f"""Key-driven grouped query attention, KDGQA (Khan et al., "Beyond Uniform Query
Distribution: Key-Driven Grouped Query Attention", arXiv 2408.08454, 2024; variants.md
Sec. 2.3 #1), as the authors' module computes it:
  NK[g] = sum_b ||K[b,g]||_F           (per-batch Frobenius norms, summed over the batch)
  x = (NK - min NK) / (max NK - min NK),   n_g = round(H x_g / sum x)  (halves to even)
  while sum n > H: n[first argmax] -= 1;  while sum n < H: n[first argmin] += 1
  query heads [C_g, C_g + n_g) (C_g = n_0 + ... + n_(g-1)) attend with K/V head g (GQA).
variants.md writes NK[g] = sqrt(sum_(b,m,e) K^2); the code sums the per-batch norms (same
B G M E MACs). The lowest-norm K/V head starts at n_g = 0 (x = 0), so it may serve no
query head. All norms equal (G = 1): 0/0 in the code; here x = 1 for every head (uniform).
Einsums: the norm pre-pass NB (B G M E MACs, pass 1 over K); the allocation (G-sized
work: min/max, `round`, the +-1 loop as a recurrence over an adjustment step, which
reuses the rank H as its counter: the loop ends within G/2 <= H steps), the group bounds C
(a recurrence over g) and the one-hot S[h,g] = [C_g <= h < C_(g+1)] (`step`); then each
query head's K/V, KH[h] = sum_g S[h,g] K[g] (and VH: a gather, counted as B H G M (E + F)
MACs), and the 1-pass cascade over KH, VH (pass 2: S needs the whole pre-pass, so the
attention cannot start before it; count_passes reports 2). Attention work is GQA's, H P M
(E + F) MACs per batch (not G times it); K is read twice (once per pass), V once.
Work per K/V head is proportional to n_g (e.g. 1 vs 6 query heads): a schedule parallel
over K/V heads is imbalanced; the allocation is shared by the whole batch.
{ONE_PASS_NOTE}""",
    2,
    heads="ragged-gqa",
    algorithm="pre-pass+1pass",
)
# The allocation of H query heads to G K/V heads from the key norms (see _KDGQA's notes).
KDGQA_ALLOCATION = (
    "NB[b,g] = K[b,g,e,m1,m0] * K[b,g,e,m1,m0]",
    "NK[g] = sum[b](sqrt(NB[b,g]))",
    "NMX[] = max[g](NK[g])",
    "NMN[] = min[g](NK[g])",
    "DEG[] = 1 - step(NMX[] - NMN[])",  # 1 when every norm is equal
    "NN[g] = (NK[g] - NMN[]) / (NMX[] - NMN[] + DEG[]) + DEG[]",
    "NS[] = NN[g]",
    "A0[g] = round(H * NN[g] / NS[])",
    # the +-1 loop: step h adjusts the allocation CUR[h,g] = A0[g] + ADJ[h,g] once
    "CUR[h,g] = A0[g] + ADJ[h,g]",
    "TOT[h] = CUR[h,g]",
    "CMX[h] = max[g](CUR[h,g])",
    "CMN[h] = min[g](CUR[h,g])",
    "FX[h] = min[g](g + G * step(CMX[h] - CUR[h,g]))",  # the first head of the largest count
    "FN[h] = min[g](g + G * step(CUR[h,g] - CMN[h]))",  # the first head of the smallest count
    "ADJ[h+1,g] = ADJ[h,g] + step(H - TOT[h]) * step(FN[h] - g + 0.5) * step(g - FN[h] + 0.5)"
    " - step(TOT[h] - H) * step(FX[h] - g + 0.5) * step(g - FX[h] + 0.5)",
    "NQ[g] = A0[g] + ADJ[H,g]",
    "C[g+1] = C[g] + NQ[g]",
    "S[h,g] = step(h - C[g] + 0.5) * step(C[g+1] - h - 0.5)",
    "KH[b,h,e,m1,m0] = S[h,g] * K[b,g,e,m1,m0]",
    "VH[b,h,f,m1,m0] = S[h,g] * V[b,g,f,m1,m0]",
)


def _kdgqa(entry: ZooCascade) -> Cascade:
    inputs = [
        ("Q", ("B", "H", "E", "P")),
        ("K", ("B", "G", "E", "M")),
        ("V", ("B", "G", "F", "M")),
    ]
    attention = [re.sub(r"\bV\[", "VH[", re.sub(r"\bK\[", "KH[", t)) for t in one_pass_lines()]
    init = (*MASKED_INIT, (TensorName("ADJ"), 0.0), (TensorName("C"), 0.0))
    assumptions = (
        "KDGQA's allocation runs on the data (key norms, rounding, the +-1 loop) but the "
        "per-head K/V gather KH = S.K is priced as a one-hot contraction (B H G M (E + F) "
        "MACs), where a kernel indexes K/V head g(h) at no arithmetic",
        "KDGQA: work per K/V head is proportional to its data-dependent query-head count n_g "
        "(unequal groups); the mapping does not model the imbalance across K/V heads",
        "KDGQA: the +-1 adjustment loop runs H steps (enough while G <= 2 H)",
    )
    return cascade(
        entry,
        inputs,
        [*KDGQA_ALLOCATION, *attention],
        (("G", KDGQA_KV_HEADS),),
        init=init,
        assumptions=assumptions,
    )


ENTRIES: tuple[ZooCascade, ...] = (_SIGMA, _BAM, _MOH, _KDGQA)
BUILDERS: dict[str, Builder] = {
    _SIGMA.name: _sigma,
    _BAM.name: _bam,
    _MOH.name: _moh,
    _KDGQA.name: _kdgqa,
}
