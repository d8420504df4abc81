"""Static-mask variants of the zoo (variants.md Sec. 2.4): B2 (1-pass) plus a predicate.

Every variant here is the FuseMax 1-pass multi-head cascade whose per-key Einsums carry
the paper's mask as a `where` clause. Block structure is a union of bands over the
sequence cut into a fixed number of equal parts (the built-in's constant; groups, frames
and segments grow with the sequence), so the mask analysis classifies every tile exactly
and the mappers skip empty tiles; regions, sinks and windows are params.
"""

from __future__ import annotations

import math

from attnsim.einsum_ir.ir import Cascade, TensorName
from attnsim.einsum_ir.library.zoo_base import (
    MASKED_INIT,
    ONE_PASS_NOTE,
    STATIC_MASKS,
    Builder,
    ZooCascade,
    any_of,
    cascade,
    masked_one_pass,
    one_pass_lines,
    part_bounds,
    times,
)

SINKS_DEFAULT = 4  # SinkLoRA / StreamingLLM: 4 initial tokens
PRE_DEFAULT = 32  # AKI: text tokens before the image (system prompt)
IMG_DEFAULT = 576  # AKI: image tokens (LLaVA-1.5: 24 x 24 patches)
TXT_DEFAULT = 64  # AKI: prompt text tokens after the image
LONGLORA_GROUPS = 4  # LongLoRA / SinkLoRA: the group size is 1/4 of the sequence
FIT_GROUPS = 4  # FIT local layer: groups of the sequence
LGA_GROUPS = 4  # LGA: groups after the cross-view gather
CCAM_FRAMES = 4  # Video-CCAM: frames (and query groups)
VDIT_FRAMES = 8  # Efficient-vDiT: latent frames (Open-Sora-Plan 1.2, 29 frames -> 8)
VDIT_GLOBAL = 1  # Efficient-vDiT: global reference frames (the first ones)
MOA_CLASSES = 4  # MoA: head classes, one window each (laid end to end along the sequence)
MOA_WINDOWS = (512, 1024, 2048, 4096)  # MoA: window per class (W0..W3)
PINE_DOCS = 4  # PINE: documents (segments) in the document region
PINE_PREFIX_DEFAULT = 64  # PINE: tokens before the documents (system prompt)
PINE_DOC_DEFAULT = 256  # PINE: tokens per document
PINE_ROPE_BASE = 10000  # PINE: RoPE base (Llama-2, Qwen-1.5 use 10000 or more)


# ----------------------------------------------------------------------------- masks


def block_diagonal(parts: int) -> str:
    """Query and key in the same of `parts` equal parts of the sequence [0, M)."""
    return any_of(
        [part_bounds("m", k, parts, "M") + part_bounds("p", k, parts, "M") for k in range(parts)]
    )


def sinklora_mask(parts: int) -> str:
    """Causal, and within the query's group of M / parts positions or a sink (m < S)."""
    # Under m <= p, "same group k" is m >= k*M/parts and p < (k+1)*M/parts.
    options = [["m < S"]]
    for k in range(parts):
        key_from = [f"{parts}*m >= {times(k, 'M')}"] if k > 0 else []
        options.append([*key_from, f"{parts}*p < {times(k + 1, 'M')}"])
    return f"m <= p and ({any_of(options)})"


def aki_mask() -> str:
    """Causal, or an image query (PRE <= p < PRE + IMG) with a prompt-text key after it."""
    image = ["p >= PRE", "p < PRE + IMG"]
    text = ["m >= PRE + IMG", "m < PRE + IMG + TXT"]
    return f"m <= p or ({' and '.join(image + text)})"


def ccam_mask(frames: int) -> str:
    """Query group k (of `frames` equal parts of P) sees the keys of frames 0..k (of M)."""
    return any_of(
        [
            part_bounds("p", k, frames, "P") + [f"{frames}*m < {times(k + 1, 'M')}"]
            for k in range(frames)
        ]
    )


def vdit_mask(frames: int, global_frames: int) -> str:
    """Keys of the query's own frame, or of the first `global_frames` frames."""
    options = [[f"{frames}*m < {times(global_frames, 'M')}"]]
    options += [
        part_bounds("m", k, frames, "M") + part_bounds("p", k, frames, "M")
        for k in range(global_frames, frames)
    ]
    return any_of(options)  # a query of a global frame sees its own frame by the first option


def moa_mask(classes: int) -> str:
    """Head classes laid end to end along the sequence, each with its sinks and window.

    Class x holds positions [x M / classes, (x + 1) M / classes) for queries and keys alike;
    a query sees, causally and only inside its class, the class's first S keys and the keys
    within its window W<x>: the sinks are `classes*m < x*M + classes*S`.
    """
    options = []
    for x in range(classes):
        query = part_bounds("p", x, classes, "M")
        key = [f"{classes}*m >= {times(x, 'M')}"] if x else []
        sink = f"{classes}*m < {times(x, 'M')} + {classes}*S" if x else "m < S"
        options += [[*query, *key, sink], [*query, *key, f"p - m < W{x}"]]
    return f"m <= p and ({any_of(options)})"


# ----------------------------------------------------------------------------- records

_SINKLORA = ZooCascade(
    "attention-sinklora",
    STATIC_MASKS,
    "SinkLoRA SF-Attn: causal groups of M/4 tokens plus S sink tokens (1 pass)",
    f"""SinkLoRA's SF-Attn (Zhang, "SinkLoRA: Enhanced Efficiency and Chat Capabilities for
Long-Context Large Language Models", arXiv 2406.05678, 2024; variants.md Sec. 2.4 #7), the
training-time mask: causal attention inside groups of g = M/4 positions (LongLoRA's group
size: Chen et al., ICLR 2024, arXiv 2309.12307) plus the first S keys, the sink attention
tokens, for every query:
  m <= p and (m < S or floor(4m / M) = floor(4p / M))
LongLoRA's S2-Attn shifts the groups of half the heads by g/2; SF-Attn's segmentation and
reassembly returns those heads to the un-shifted groups, so every head has this mask
[verify against the paper's SF-Attn figure]. S (default {SINKS_DEFAULT}) is a param; the
{LONGLORA_GROUPS} groups are this built-in's. FLOPs per head ~ P (g/2 + S)(E + F); the
block-diagonal part tiles perfectly when the key tile divides g.
Not modelled: H2O KV eviction at inference (a data-dependent choice of heavy-hitter keys
from normalised column sums, which needs a second pass; variants.md).
{ONE_PASS_NOTE}""",
    1,
    mask="groups+sinks",
)
_FIT = ZooCascade(
    "attention-fit",
    STATIC_MASKS,
    "FIT local layer: bidirectional attention inside 4 groups of M/4 tokens (1 pass)",
    f"""FIT's local layer (Chen and Li, "FIT: Far-reaching Interleaved Transformers", arXiv
2305.12689, 2023; variants.md Sec. 2.4 #32): the data tokens are split into {FIT_GROUPS}
groups of n = M/{FIT_GROUPS} contiguous tokens that attend only inside their group
(block-diagonal, bidirectional):
  floor({FIT_GROUPS}m / M) = floor({FIT_GROUPS}p / M)
FIT's other layer types are dense attention at other sizes, i.e. other built-ins: the
global layer is self-attention over the U*L latents (attention-1pass-mh at P = M = U*L);
"read" (latents attend to their group's tokens) and "write" (tokens attend to their
group's latents) are per-group cross attention (attention-1pass-mh with B*U instances at
P = L, M = n and at P = n, M = L). FLOPs per head: M n (E + F). The group count is this
built-in's; the group size follows the sequence.
{ONE_PASS_NOTE}""",
    1,
    mask="block-diagonal",
)
_LGA = ZooCascade(
    "attention-lga",
    STATIC_MASKS,
    "Long-range grouping attention: cross-view gather, then 4 block-diagonal groups (1 pass)",
    f"""Long-range grouping attention, LGA (Yang et al., "Long-Range Grouping Transformer for
Multi-View 3D Reconstruction", ICCV 2023, arXiv 2308.08724; variants.md Sec. 2.4 #44): the
tokens of all views are divided into {LGA_GROUPS} groups, each sampling tokens across all
views, and attend only within their group. The gather is a permutation of the tokens
(data movement, no arithmetic) and is the inputs' layout: the cascade is the attention on
the gathered order, block-diagonal over {LGA_GROUPS} equal groups:
  floor({LGA_GROUPS}m / M) = floor({LGA_GROUPS}p / M)      (positions after the gather)
FLOPs per head: (V N)^2 (E + F) / {LGA_GROUPS} for V views of N tokens. The reference test
gathers the inputs with the strided sampling "token i of every view goes to group i mod
{LGA_GROUPS}" [verify the paper's sampling; any permutation costs the same] and checks the
scattered output against LGA evaluated on the original order.
{ONE_PASS_NOTE}""",
    1,
    mask="block-diagonal",
)
_AKI = ZooCascade(
    "attention-aki",
    STATIC_MASKS,
    "AKI modality-mutual attention: causal, image tokens also see the prompt text after "
    "them (1 pass)",
    f"""Modality-mutual attention of AKI (Wang, Wang, Suzuki and Kobayashi, "Seeing is
Understanding: Unlocking Causal Attention into Modality-Mutual Attention for Multimodal
LLMs", arXiv 2503.02597, 2025; variants.md Sec. 2.4 #67): causal attention relaxed so that
the image tokens also attend to the question text that follows the image:
  m <= p or (PRE <= p < PRE + IMG and PRE + IMG <= m < PRE + IMG + TXT)
Layout: PRE text tokens (system prompt), IMG image tokens, then TXT question tokens,
params with defaults PRE = {PRE_DEFAULT}, IMG = {IMG_DEFAULT} (LLaVA-1.5's 24 x 24
patches), TXT = {TXT_DEFAULT}. FLOPs: causal plus IMG * TXT (E + F) per head. Prefill:
decoding keeps the causal mask. Image K/V then depend on the question, so prefix caching of
image K/V breaks (a serving cost, not modelled here).
{ONE_PASS_NOTE}""",
    1,
    mask="causal+rectangle",
)
_CCAM = ZooCascade(
    "attention-video-ccam",
    STATIC_MASKS,
    f"Video-CCAM causal cross-attention mask: query group k sees frames 0..k of "
    f"{CCAM_FRAMES} (1 pass)",
    f"""Video-CCAM's causal cross-attention mask (Fei et al., "Video-CCAM: Enhancing
Video-Language Understanding with Causal Cross-Attention Masks for Short and Long Videos",
arXiv 2408.14023, 2024; variants.md Sec. 2.4 #81): the projector's P learnable queries are
split into T = {CCAM_FRAMES} groups and the M visual tokens into T frames; query group k
attends to the tokens of frames 0..k (block-lower-triangular cross attention):
  floor(T m / M) <= floor(T p / P)
Cross attention: P and M are independent (e.g. P = 1024 queries, M = T x 576 patches).
FLOPs ~ P M (E + F) (T + 1) / (2T). The frame count is this built-in's; frame and group
sizes follow M and P. Q is learned, so its projection can be cached; new frames only add
K/V blocks.
{ONE_PASS_NOTE}""",
    1,
    mask="block-causal-cross",
)
_VDIT = ZooCascade(
    "attention-efficient-vdit",
    STATIC_MASKS,
    f"Efficient-vDiT attention tile: each of {VDIT_FRAMES} frames sees itself and "
    f"{VDIT_GLOBAL} global frame (1 pass)",
    f"""Efficient-vDiT's sparse 3-D attention (Ding et al., "Efficient-vDiT: Efficient Video
Diffusion Transformers With Attention Tile", arXiv 2502.06155, 2025; variants.md Sec. 2.4
#74): the video is T = {VDIT_FRAMES} latent frames of M/T tokens (Open-Sora-Plan 1.2: 29
frames -> 8 latent frames); a query attends to the tokens of its own frame and of the
global reference frames, here the first {VDIT_GLOBAL}:
  floor(T m / M) = floor(T p / M) or floor(T m / M) < {VDIT_GLOBAL}
FLOPs per head ~ T S^2 (1 + |Global|)(E + F) for S = M/T tokens per frame, linear in T.
The paper picks the mask (how many global frames) per layer by a search [verify which
frames]; the frame and global counts are this built-in's. Its 7.4-7.8x speed-up also
counts fewer sampling steps (distillation), which no attention cascade models.
{ONE_PASS_NOTE}""",
    1,
    mask="frame-diagonal+global",
)
_MOA = ZooCascade(
    "attention-moa",
    STATIC_MASKS,
    f"MoA mixture of sparse attention: sinks plus a sliding window per head class "
    f"({MOA_CLASSES} classes laid end to end, P = M = {MOA_CLASSES} x tokens) (1 pass)",
    f"""MoA, mixture of sparse attention (Fu et al., "MoA: Mixture of Sparse Attention for
Automatic Large Language Model Compression", arXiv 2406.14909, 2024; variants.md Sec. 2.4
#17): every head keeps the first S keys and a causal sliding window of its own width:
  m <= p and (m < S or p - m < W_h)
MoA finds W_h = alpha_h + beta_h N per head by profiling; here the heads fall into
{MOA_CLASSES} classes with windows W0..W3 = {", ".join(str(w) for w in MOA_WINDOWS)} (params
for the length at hand, as S = {SINKS_DEFAULT}). Layout: the classes' sequences are laid
end to end along the sequence ranks, so one band union states every class's mask and the
mappers classify tiles exactly: with T tokens, size P = M = {MOA_CLASSES} T; head h of H
holds class x's head h at positions [x T, (x + 1) T) of Q, K and V, and a query sees only
keys of its own class (tiles across classes are empty). FLOPs per head ~ P min(M, S + W_h)
(E + F) per class. K/V caches differ in length per head (ragged allocation; the cascade
keeps every class's full T keys).
{ONE_PASS_NOTE}""",
    1,
    mask="per-class window+sinks",
)


_PINE = ZooCascade(
    "attention-pine",
    STATIC_MASKS,
    f"PINE position-bias elimination: {PINE_DOCS} documents see each other bidirectionally "
    "and are re-positioned (RoPE) per query by attention importance (2 passes)",
    f"""PINE (Wang, Zhang, Li, Huang, Han, Ji, Kakade, Peng and Ji, "Eliminating Position Bias
of Language Models: A Mechanistic Approach", arXiv 2407.01100, ICLR 2025; variants.md Sec.
2.4 #77), prefill, as the authors' code (github.com/wzq016/PINE) computes it. Layout: PRE
prefix tokens (system prompt), ND = {PINE_DOCS} documents of DOC tokens, then the question
(suffix), P = M; params PRE = {PINE_PREFIX_DEFAULT}, DOC = {PINE_DOC_DEFAULT}; RoPE base
{PINE_ROPE_BASE} (the built-in's). Q and K come un-rotated, as halves (Llama's rotate_half layout:
q = [QA; QB], E = head dim / 2, frequency theta_e = 10000^(-e/E)).
  Pass 1, importance (no RoPE): a doc query softmaxes over the other documents' keys, a
question query over all documents' keys; importance of doc d for doc s is the attention
mass on d summed over s's tokens, for a question token its own mass on d (the code also
divides by the document length, a common factor with equal lengths).
  Positions: the code stacks the documents (each at PRE + (ND-1) DOC + offset) and, per
doc query segment s, moves doc d back by rank_s(d) DOC, own doc first (rank 0), then by
descending importance (stable argsort), so the more important documents sit closer to
the query; a question token orders all ND documents by its own importance. Pass 2 is
attention with RoPE at those positions under the mask
  m <= p or (doc(m) != doc(p), both in the documents)
(doc queries see the prefix, their own doc causally and every other doc).
Einsums: the importance pass (online softmax with ND per-document accumulators W_d), the
ranks rank(d) = #(d' before d) with `step` (ties to the lower index, as the stable
argsort), the key rotation at the original positions (KRA, KRB) and, for each key
document d, the query rotated at the angle that gives the re-assigned relative position
(QRA_d, QRB_d: RoPE scores depend only on the position difference), then scores per key
region merged into QK and FuseMax's 1-pass cascade. Passes: 2 (the ranks need all of pass
1). Work: pass 1 2E MACs per (query, other-document key) pair (scores, no V), pass 2 the
masked attention, plus (ND + 1) P E query and M E key rotations (cos, sin, 6 ops each).
The write-up models K'[s,e,m], keys rotated per query segment (ND M E rotations; the
question's per-token ordering adds one rotation of K per question token in the authors'
code). The grammar cannot pick K'[seg(p)] for a query without a one-hot contraction (ND
times the QK work): a `where` cannot tie a segment rank to positions with a symbolic DOC.
Rotating each query once per key document is the same arithmetic up to rounding and
keeps K rotated once (it trades K re-rotation for ND + 1 rotated copies of each query).
Not modelled: decoding (each generated token re-orders the documents as a question
token does).
{ONE_PASS_NOTE}""",
    2,
    mask="pine bidirectional docs",
    algorithm="importance pass+1pass",
)


def _doc_lo(d: int) -> str:
    """First position of document d (PRE + d*DOC), as a linear form."""
    return "PRE" if d == 0 else f"PRE + {times(d, 'DOC')}"


def _in_doc(var: str, d: int) -> list[str]:
    return [f"{var} >= {_doc_lo(d)}", f"{var} < {_doc_lo(d + 1)}"]


def _is_doc(var: str, d: int) -> str:
    """1 where the index `var` lies in document d, else 0 (an expression)."""
    return f"step({var} - ({_doc_lo(d)}) + 0.5) * step({_doc_lo(d + 1)} - {var} - 0.5)"


def pine_importance_mask(docs: int) -> str:
    """Pass 1: keys in the documents, queries in a document (another one) or after them."""
    options = []
    for d in range(docs):
        if d:
            options.append([*_in_doc("m", d), "p >= PRE", f"p < {_doc_lo(d)}"])
        options.append([*_in_doc("m", d), f"p >= {_doc_lo(d + 1)}"])
    return any_of(options)


def pine_mask(docs: int) -> str:
    """Pass 2: causal, or a doc query and a later document (bidirectional across docs)."""
    later = [[*_in_doc("m", d), "p >= PRE", f"p < {_doc_lo(d)}"] for d in range(1, docs)]
    return any_of([["m <= p"], *later])


def _pine_doc_keys(d: int) -> str:
    later = [[*_in_doc("m", d), "p >= PRE", f"p < {_doc_lo(d)}"]] if d else []
    return any_of([[*_in_doc("m", d), "m <= p"], *later])


def pine_lines(docs: int) -> list[str]:
    """PINE's Einsums: importance pass, ranks, rotations, merged scores, 1-pass attention."""
    bh, key, q = "b,h,", "b,h,e,m1,m0", "b,h,e,p"
    mask1, mask2 = pine_importance_mask(docs), pine_mask(docs)
    m = "(m1 * M0 + m0)"
    suffix = _doc_lo(docs)
    lines = [
        f"TH[e] = exp(-e * {math.log(PINE_ROPE_BASE)!r} / E)",  # RoPE base^(-e/E)
        f"KC[e,m1,m0] = cos({m} * TH[e])",
        f"KS[e,m1,m0] = sin({m} * TH[e])",
        f"KRA[{key}] = KA[{key}] * KC[e,m1,m0] - KB[{key}] * KS[e,m1,m0]",
        f"KRB[{key}] = KB[{key}] * KC[e,m1,m0] + KA[{key}] * KS[e,m1,m0]",
        # pass 1: attention mass per document, without RoPE (online softmax)
        f"S1[{bh}m1,m0,p] = QA[{q}] * KA[{key}] + QB[{q}] * KB[{key}] where {mask1}",
        f"L1[{bh}m1,p] = max[m0](S1[{bh}m1,m0,p]) where {mask1}",
        f"R1[{bh}m1+1,p] = max(R1[{bh}m1,p], L1[{bh}m1,p])",
        f"N1[{bh}m1,m0,p] = exp(S1[{bh}m1,m0,p] - R1[{bh}m1+1,p]) where {mask1}",
        f"C1[{bh}m1,p] = exp(R1[{bh}m1,p] - R1[{bh}m1+1,p])",
    ]
    for d in range(docs):
        lines.append(f"U{d}[{bh}m1,p] = N1[{bh}m1,m0,p] where {pine_importance_mask_for(d, docs)}")
    units = " + ".join(f"U{d}[{bh}m1,p]" for d in range(docs))
    lines.append(f"D1[{bh}m1+1,p] = C1[{bh}m1,p] * D1[{bh}m1,p] + {units}")
    for d in range(docs):
        lines.append(f"W{d}[{bh}m1+1,p] = C1[{bh}m1,p] * W{d}[{bh}m1,p] + U{d}[{bh}m1,p]")
        lines.append(f"IT{d}[{bh}p] = W{d}[{bh}M1,p] / D1[{bh}M1,p] where p >= PRE")
    # importance of doc d for doc query segment s: the mass summed over s's tokens
    for s in range(docs):
        for d in range(docs):
            if d != s:
                lines.append(f"IM{s}_{d}[b,h] = IT{d}[{bh}p] where {' and '.join(_in_doc('p', s))}")
    # per query: its segment's importance (own doc above every other: IM <= DOC), or its own
    for d in range(docs):
        terms = [f"{_is_doc('p', s)} * IM{s}_{d}[b,h]" for s in range(docs) if s != d]
        terms.append(f"{_is_doc('p', d)} * (DOC + 1)")
        terms.append(f"step(p - ({suffix}) + 0.5) * IT{d}[{bh}p]")
        lines.append(f"J{d}[{bh}p] = {' + '.join(terms)} where p >= PRE")
    # rank of doc d: the docs before it (more important, or as important and lower index)
    for d in range(docs):
        before = [f"(1 - step(J{d}[{bh}p] - J{o}[{bh}p]))" for o in range(d)]
        before += [f"step(J{o}[{bh}p] - J{d}[{bh}p])" for o in range(d + 1, docs)]
        lines.append(f"RK{d}[{bh}p] = {' + '.join(before)} where p >= PRE")
    # query positions: documents stacked at PRE + (ND-1) DOC + offset, the rest in order
    stack = " + ".join(f"{_is_doc('p', s)} * {docs - 1 - s}" for s in range(docs - 1))
    lines += [
        f"QP[p] = p + DOC * ({stack})",
        "QC[e,p] = cos(QP[p] * TH[e])",
        "QS[e,p] = sin(QP[p] * TH[e])",
        f"QRA[{q}] = QA[{q}] * QC[e,p] - QB[{q}] * QS[e,p]",
        f"QRB[{q}] = QB[{q}] * QC[e,p] + QA[{q}] * QS[e,p]",
    ]
    for d in range(docs):
        # key doc d sits at PRE + (ND-1-rank) DOC + offset; K is rotated at PRE + d DOC +
        # offset, so the query turns by the difference
        lines += [
            f"AN{d}[{bh}p] = QP[p] + DOC * (RK{d}[{bh}p] - {docs - 1 - d}) where p >= PRE",
            f"QC{d}[{q}] = cos(AN{d}[{bh}p] * TH[e]) where p >= PRE",
            f"QS{d}[{q}] = sin(AN{d}[{bh}p] * TH[e]) where p >= PRE",
            f"QRA{d}[{q}] = QA[{q}] * QC{d}[{q}] - QB[{q}] * QS{d}[{q}] where p >= PRE",
            f"QRB{d}[{q}] = QB[{q}] * QC{d}[{q}] + QA[{q}] * QS{d}[{q}] where p >= PRE",
            f"QK{d}[{bh}m1,m0,p] = QRA{d}[{q}] * KRA[{key}] + QRB{d}[{q}] * KRB[{key}] "
            f"where {_pine_doc_keys(d)}",
        ]
    lines.append(
        f"QKO[{bh}m1,m0,p] = QRA[{q}] * KRA[{key}] + QRB[{q}] * KRB[{key}] "
        f"where (m < PRE and m <= p) or (m >= {suffix} and m <= p)"
    )
    scores = " + ".join([*(f"QK{d}[{bh}m1,m0,p]" for d in range(docs)), f"QKO[{bh}m1,m0,p]"])
    lines.append(f"QK[{bh}m1,m0,p] = {scores} where {mask2}")
    return lines + one_pass_lines(mask2)[1:]


def pine_importance_mask_for(d: int, docs: int) -> str:
    """Pass 1, keys of document d only: its queries are the other docs' and the question's."""
    before = [[*_in_doc("m", d), "p >= PRE", f"p < {_doc_lo(d)}"]] if d else []
    return any_of([*before, [*_in_doc("m", d), f"p >= {_doc_lo(d + 1)}"]])


def _pine(entry: ZooCascade) -> Cascade:
    inputs = [
        ("QA", ("B", "H", "E", "P")),
        ("QB", ("B", "H", "E", "P")),
        ("KA", ("B", "H", "E", "M")),
        ("KB", ("B", "H", "E", "M")),
        ("V", ("B", "H", "F", "M")),
    ]
    docs = PINE_DOCS
    init = (
        *MASKED_INIT,
        (TensorName("R1"), -1.0e30),
        (TensorName("D1"), 1.0),
        *((TensorName(f"W{d}"), 0.0) for d in range(docs)),
    )
    params = (("PRE", PINE_PREFIX_DEFAULT), ("DOC", PINE_DOC_DEFAULT))
    assumptions = (
        f"PINE: the document order per query is computed on the data (importance pass, "
        f"ranks by `step`); the layout is fixed: PRE prefix tokens, {docs} documents of DOC "
        "tokens, the question after them (P = M)",
        "PINE: the per-query-segment key rotation K'[s,e,m] is priced as the equivalent "
        f"rotation of each query once per key document ({docs} + 1 rotated copies of Q, K "
        "rotated once), and the per-region scores are merged into QK with "
        f"{docs} adds per visible score",
        "PINE: cos and sin are counted as one operation each (RoPE's cos and sin of one "
        "angle share their range reduction on real hardware)",
    )
    return cascade(entry, inputs, pine_lines(docs), params, init=init, assumptions=assumptions)


def _moa(entry: ZooCascade) -> Cascade:
    windows = tuple((f"W{k}", w) for k, w in enumerate(MOA_WINDOWS))
    return masked_one_pass(entry, moa_mask(MOA_CLASSES), (("S", SINKS_DEFAULT), *windows))


_AKI_PARAMS = (("PRE", PRE_DEFAULT), ("IMG", IMG_DEFAULT), ("TXT", TXT_DEFAULT))

ENTRIES: tuple[ZooCascade, ...] = (_AKI, _VDIT, _FIT, _LGA, _MOA, _SINKLORA, _CCAM, _PINE)
BUILDERS: dict[str, Builder] = {
    _SINKLORA.name: lambda e: masked_one_pass(
        e, sinklora_mask(LONGLORA_GROUPS), (("S", SINKS_DEFAULT),)
    ),
    _FIT.name: lambda e: masked_one_pass(e, block_diagonal(FIT_GROUPS)),
    _LGA.name: lambda e: masked_one_pass(e, block_diagonal(LGA_GROUPS)),
    _AKI.name: lambda e: masked_one_pass(e, aki_mask(), _AKI_PARAMS),
    _CCAM.name: lambda e: masked_one_pass(e, ccam_mask(CCAM_FRAMES)),
    _VDIT.name: lambda e: masked_one_pass(e, vdit_mask(VDIT_FRAMES, VDIT_GLOBAL)),
    _MOA.name: _moa,
    _PINE.name: _pine,
}
