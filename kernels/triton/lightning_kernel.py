"""Triton kernels of Lightning Attention-2 (family `triton-lightning`); launcher: `lightning`.

Causal linear attention with a per-head scalar decay lambda (Qin et al. 2024, "Lightning
Attention-2"): o_t = scale * sum_{s<=t} lambda^(t-s) (q_t . k_s) v_s, no softmax, no normalizer.
Chunked form with chunk size C (BLOCK_C), rows t, s local to the chunk:

    O_i = [(Q_i K_i^T) o D] V_i  +  diag(lambda^(t+1)) Q_i S_i      D[t,s] = lambda^(t-s), s <= t
    S_(i+1) = lambda^C S_i + (K_i o lambda^(C-1-s))^T V_i          S_0 = 0 (E x F per head)

Two schedules share the chunk body (`chunk_out`, `state_step`):
- fused: `lightning_out_kernel`, one program per (value-column block, batch*head) walks the
  chunks in order carrying S in fp32 registers (the LA-2 paper's form);
- split: `lightning_states_kernel` walks the sequence of one (E block, F block, batch*head)
  in steps of R chunks (R = state_chunks) and stores the state at every step's start (only
  K^T V work), then `lightning_out_kernel` runs one program per R chunks, all in parallel,
  each starting from its stored state (R = 1: one chunk per program, no state update).

Decay: the kernels read lambda (fp32, one per head) and take log2 of it, so every power is one
exp2; HAS_DECAY=False means lambda = 1 (plain causal linear attention).

Gates (HAS_GATES, gated linear attention, GLA: Yang et al. 2024, arXiv 2312.06635, Sec. 4):
per-key, per-feature log gates g[t,e] <= 0 (fp32, laid out like K) replace the decay,
S_t = diag(exp(g_t)) S_(t-1) + k_t v_t^T. Per chunk, b = the cumulative sum of g from the
chunk's first position (inclusive, C x E, non-increasing down the chunk):

    O_i = [((Q o e^b) (K o e^-b)^T) o causal] V_i  +  (Q o e^b) S_i
    S_(i+1) = diag(e^b_last) S_i + (K o e^(b_last - b))^T V_i    (from K o e^-b, reused)

Stabilisation: relative to the chunk's first position (b starts at the first key's own gate),
so e^b and e^(b_last - b) are <= 1 and only e^-b grows, to e^-(sum of the chunk's log gates);
the gated score product runs in fp32 (TF32 on the GPU: fp32's exponent range, where fp16's
would overflow at e^11). Exact while a chunk's log-gate sum stays above about -80 (fp32's exp
range: exp(88) overflows), e.g. mean log gate >= -1.25 at C = 64, >= -5 at C = 16; fla's
chunk_gla instead takes a reference per 16-key sub-chunk and computes the diagonal sub-blocks
element-wise, which bounds every factor at any gate but costs C/16 small products per chunk.
We take the chunk reference (one tensor-core product per chunk, as the ungated kernel) and
make the limit explicit: `lightning_fwd` checks it on CPU-resident gates; a smaller block_c
raises it.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def decay_tables(log2_lam, scale, BLOCK_C: tl.constexpr):
    """Chunk-invariant decay factors (scale folded into the output ones).

    Returns D (C x C: scale * lambda^(t-s) where s <= t, else 0), the inter-chunk row factors
    scale * lambda^(t+1), the key factors lambda^(C-1-s) of the state update, and lambda^C.
    """
    t = tl.arange(0, BLOCK_C)
    diff = t[:, None] - t[None, :]
    causal = diff >= 0
    # exponent clamped at 0 above the diagonal: no inf * 0 there before the mask
    intra = tl.where(causal, tl.math.exp2(log2_lam * tl.maximum(diff, 0).to(tl.float32)), 0.0)
    rows = tl.math.exp2(log2_lam * (t + 1).to(tl.float32)) * scale
    keys = tl.math.exp2(log2_lam * (BLOCK_C - 1 - t).to(tl.float32))
    chunk = tl.math.exp2(log2_lam * BLOCK_C)
    return intra * scale, rows, keys, chunk


@triton.jit
def chunk_out(q, k, v, s, intra, rows, DOT_PRECISION: tl.constexpr):
    """One chunk's output rows (fp32, C x F block): intra-chunk masked part plus Q S part."""
    a = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * intra
    o = tl.dot(q, s.to(q.dtype), input_precision=DOT_PRECISION) * rows[:, None]
    return tl.dot(a.to(v.dtype), v, o, input_precision=DOT_PRECISION)


@triton.jit
def gated_chunk_out(q, k, v, s, b, intra, rows, DOT_PRECISION: tl.constexpr):
    """GLA: one chunk's output rows (fp32, C x F block) with cumulative log gates b (C x E).

    Also returns K o e^-b (the state update reuses it: b need not stay live). The gated
    operands are fp32 (e^-b exceeds fp16's range first), bf16 for bf16 inputs (fp32's
    exponent range; fla's chunk_gla rounds its gated operands to the input dtype too).
    """
    qg = q.to(tl.float32) * tl.math.exp(b)
    kg = k.to(tl.float32) * tl.math.exp(-b)
    if q.dtype == tl.bfloat16:
        qg = qg.to(tl.bfloat16)
        kg = kg.to(tl.bfloat16)
    # TF32 for fp32 operands of half-precision inputs (DOT_PRECISION), exact fp32 for fp32 ones
    a = tl.dot(qg, tl.trans(kg), input_precision=DOT_PRECISION) * intra
    o = tl.dot(qg.to(q.dtype), s.to(q.dtype), input_precision=DOT_PRECISION) * rows[:, None]
    return tl.dot(a.to(v.dtype), v, o, input_precision=DOT_PRECISION), kg


@triton.jit
def chunk_gates(g_p, HAS_GATES: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_E: tl.constexpr):
    """Cumulative log gates of one chunk from its first position (C x E, fp32) and their sum.

    Rows past the sequence end load as 0 (gate 1): b stays flat there, its keys are 0.
    Without gates: scalar zeros, never read (no C x E registers in the ungated kernels).
    """
    if HAS_GATES:
        g = tl.load(g_p, boundary_check=(0,), padding_option="zero").to(tl.float32)
        b = tl.cumsum(g, axis=0)
        last = tl.sum(g, axis=0)
    else:
        b = tl.full([], 0.0, tl.float32)
        last = tl.full([], 0.0, tl.float32)
    return b, last


@triton.jit
def store_chunk(
    q_p, k_p, v_p, o_p, g_p, s, intra, rows, Out, HAS_GATES: tl.constexpr,
    BLOCK_C: tl.constexpr, HEAD_E: tl.constexpr, DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """Load one chunk (rows past the sequence end as 0), store its output rows.

    Returns K (with gates: K o e^-b), V and the chunk's log-gate sum (0 without gates).
    """
    q = tl.load(q_p, boundary_check=(0,), padding_option="zero")
    k = tl.load(k_p, boundary_check=(0,), padding_option="zero")
    v = tl.load(v_p, boundary_check=(0,), padding_option="zero")
    b, last = chunk_gates(g_p, HAS_GATES, BLOCK_C, HEAD_E)
    if HAS_GATES:
        o, k = gated_chunk_out(q, k, v, s, b, intra, rows, DOT_PRECISION)
    else:
        o = chunk_out(q, k, v, s, intra, rows, DOT_PRECISION)
    tl.store(o_p, o.to(Out.dtype.element_ty), boundary_check=(0,))
    return k, v, last


@triton.jit
def state_step(s, k, v, keys, chunk, DOT_PRECISION: tl.constexpr):
    """S <- lambda^C S + K^T (lambda^(C-1-s) o V) (fp32; rows past the sequence end load as 0).

    The decay scales V's rows, not K's: K then feeds the product straight from shared memory
    (on sm_90 the fused kernel needs 247 registers per thread instead of 255 plus spills).
    """
    vd = (v * keys[:, None]).to(v.dtype)
    return tl.dot(tl.trans(k), vd, s * chunk, input_precision=DOT_PRECISION)


@triton.jit
def gated_state_step(s, kg, v, last, DOT_PRECISION: tl.constexpr):
    """GLA: S <- diag(e^last) S + (K o e^(last - b))^T V, from kg = K o e^-b (fp32 update).

    The gate is per (key, feature), so it scales K (not V as the scalar decay does); both
    factors e^last and e^(last - b) are <= 1.
    """
    kd = (kg.to(tl.float32) * tl.math.exp(last)[None, :]).to(v.dtype)
    return tl.dot(tl.trans(kd), v, s * tl.math.exp(last)[:, None], input_precision=DOT_PRECISION)


@triton.jit
def next_state(s, k, v, last, keys, chunk, HAS_GATES: tl.constexpr,
               DOT_PRECISION: tl.constexpr):  # fmt: skip
    """The state after one chunk: gated (GLA; k is then K o e^-b) or with the decay tables."""
    if HAS_GATES:
        s = gated_state_step(s, k, v, last, DOT_PRECISION)
    else:
        s = state_step(s, k, v, keys, chunk, DOT_PRECISION)
    return s


@triton.jit
def head_log2_decay(Decay, off_h, HAS_DECAY: tl.constexpr):
    """log2 lambda of head `off_h` (0 without decay)."""
    log2_lam = tl.full([], 0.0, tl.float32)
    if HAS_DECAY:
        log2_lam = tl.log2(tl.load(Decay + off_h).to(tl.float32))
    return log2_lam


@triton.jit
def rows_ptr(base, seq, stride_s, width, col, BLOCK_C: tl.constexpr, BLOCK_W: tl.constexpr):
    """Block pointer to the first chunk's rows, columns col..col+BLOCK_W, of one head."""
    return tl.make_block_ptr(
        base, (seq, width), (stride_s, 1), (0, col), (BLOCK_C, BLOCK_W), (1, 0)
    )


# the lengths stay plain ints: a new length reuses the compiled kernel
@triton.jit(do_not_specialize=["seq", "n_chunks", "chunks_per_prog", "n_states"])
def lightning_out_kernel(
    Q, K, V, Out, States, Decay, Gates,
    seq, heads, n_chunks, chunks_per_prog, n_states, scale,
    stride_qb, stride_qh, stride_qs, stride_kb, stride_kh, stride_ks,
    stride_vb, stride_vh, stride_vs, stride_ob, stride_oh, stride_os,
    stride_gb, stride_gh, stride_gs,
    BLOCK_C: tl.constexpr, BLOCK_F: tl.constexpr, HEAD_E: tl.constexpr, HEAD_F: tl.constexpr,
    HAS_DECAY: tl.constexpr, LOAD_STATE: tl.constexpr, CARRY: tl.constexpr,
    DOT_PRECISION: tl.constexpr, HAS_GATES: tl.constexpr = False,
):  # fmt: skip
    """Output rows; grid (HEAD_F / BLOCK_F, ceil(n_chunks / chunks_per_prog), batch*heads).

    Program j computes chunks j * chunks_per_prog onwards, in order, starting from S = 0 or,
    with LOAD_STATE, from States[bh, j] (of n_states per head, `lightning_states_kernel`);
    CARRY updates S after each chunk (needed when a program has more than one chunk).
    Fused schedule: one program per head and value block (chunks_per_prog = n_chunks, no
    LOAD_STATE, CARRY). Split: LOAD_STATE, all programs in parallel. HAS_GATES: GLA's log
    gates (Gates, laid out like K) instead of the decay (HAS_DECAY is then False).
    """
    col = tl.program_id(0) * BLOCK_F
    j = tl.program_id(1)
    off_bh = tl.program_id(2)
    off_b = (off_bh // heads).to(tl.int64)
    off_h = (off_bh % heads).to(tl.int64)
    log2_lam = head_log2_decay(Decay, off_h, HAS_DECAY)
    intra, rows, keys, chunk = decay_tables(log2_lam, scale, BLOCK_C)
    first = j * chunks_per_prog
    start = first * BLOCK_C
    q_p = rows_ptr(Q + off_b * stride_qb + off_h * stride_qh, seq, stride_qs, HEAD_E, 0,
                   BLOCK_C, HEAD_E)  # fmt: skip
    k_p = rows_ptr(K + off_b * stride_kb + off_h * stride_kh, seq, stride_ks, HEAD_E, 0,
                   BLOCK_C, HEAD_E)  # fmt: skip
    v_p = rows_ptr(V + off_b * stride_vb + off_h * stride_vh, seq, stride_vs, HEAD_F, col,
                   BLOCK_C, BLOCK_F)  # fmt: skip
    o_p = rows_ptr(Out + off_b * stride_ob + off_h * stride_oh, seq, stride_os, HEAD_F, col,
                   BLOCK_C, BLOCK_F)  # fmt: skip
    g_p = rows_ptr(
        Gates + off_b * stride_gb + off_h * stride_gh, seq, stride_gs, HEAD_E, 0, BLOCK_C, HEAD_E
    )  # fmt: skip (never read without gates)
    g_p = tl.advance(g_p, (start, 0))
    q_p = tl.advance(q_p, (start, 0))
    k_p = tl.advance(k_p, (start, 0))
    v_p = tl.advance(v_p, (start, 0))
    o_p = tl.advance(o_p, (start, 0))
    if LOAD_STATE:
        s_base = States + (off_bh.to(tl.int64) * n_states + j) * (HEAD_E * HEAD_F)
        e_idx = tl.arange(0, HEAD_E)[:, None] * HEAD_F
        s = tl.load(s_base + e_idx + col + tl.arange(0, BLOCK_F)[None, :])
        if CARRY:  # updated in fp32; else it only feeds Q S in the input dtype as stored
            s = s.to(tl.float32)
    else:
        s = tl.zeros([HEAD_E, BLOCK_F], dtype=tl.float32)
    if CARRY:
        for _ in range(0, tl.minimum(chunks_per_prog, n_chunks - first)):
            k, v, last = store_chunk(q_p, k_p, v_p, o_p, g_p, s, intra, rows, Out, HAS_GATES,
                                     BLOCK_C, HEAD_E, DOT_PRECISION)  # fmt: skip
            s = next_state(s, k, v, last, keys, chunk, HAS_GATES, DOT_PRECISION)
            if HAS_GATES:  # not carried without gates (the fused kernel is at 247 registers)
                g_p = tl.advance(g_p, (BLOCK_C, 0))
            q_p = tl.advance(q_p, (BLOCK_C, 0))
            k_p = tl.advance(k_p, (BLOCK_C, 0))
            v_p = tl.advance(v_p, (BLOCK_C, 0))
            o_p = tl.advance(o_p, (BLOCK_C, 0))
    else:  # one chunk (chunks_per_prog = 1): straight-line code, fewer registers than a loop
        store_chunk(q_p, k_p, v_p, o_p, g_p, s, intra, rows, Out, HAS_GATES, BLOCK_C, HEAD_E,
                    DOT_PRECISION)  # fmt: skip


@triton.jit(do_not_specialize=["seq", "n_chunks"])
def lightning_states_kernel(
    K, V, States, Decay, Gates,
    seq, heads, n_chunks,
    stride_kb, stride_kh, stride_ks, stride_vb, stride_vh, stride_vs,
    stride_gb, stride_gh, stride_gs,
    BLOCK_C: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_F: tl.constexpr,
    HEAD_E: tl.constexpr, HEAD_F: tl.constexpr, HAS_DECAY: tl.constexpr,
    DOT_PRECISION: tl.constexpr, HAS_GATES: tl.constexpr = False,
):  # fmt: skip
    """Split schedule, pass 1: grid (HEAD_E / BLOCK_E, HEAD_F / BLOCK_F, batch*heads).

    Writes States[bh, i] (HEAD_E x HEAD_F, contiguous) = S_i, the state at the start of chunk i,
    for i < n_chunks (S_0 = 0).
    """
    row0 = tl.program_id(0) * BLOCK_E
    col = tl.program_id(1) * BLOCK_F
    off_bh = tl.program_id(2)
    off_b = (off_bh // heads).to(tl.int64)
    off_h = (off_bh % heads).to(tl.int64)
    log2_lam = head_log2_decay(Decay, off_h, HAS_DECAY)
    _intra, _rows, keys, chunk = decay_tables(log2_lam, 1.0, BLOCK_C)
    k_p = rows_ptr(K + off_b * stride_kb + off_h * stride_kh, seq, stride_ks, HEAD_E, row0,
                   BLOCK_C, BLOCK_E)  # fmt: skip
    v_p = rows_ptr(V + off_b * stride_vb + off_h * stride_vh, seq, stride_vs, HEAD_F, col,
                   BLOCK_C, BLOCK_F)  # fmt: skip
    g_p = rows_ptr(
        Gates + off_b * stride_gb + off_h * stride_gh,
        seq,
        stride_gs,
        HEAD_E,
        row0,
        BLOCK_C,
        BLOCK_E,
    )  # fmt: skip (never read without gates)
    size = HEAD_E * HEAD_F
    base = States + off_bh.to(tl.int64) * n_chunks * size
    tile = (row0 + tl.arange(0, BLOCK_E))[:, None] * HEAD_F + col + tl.arange(0, BLOCK_F)[None, :]
    s = tl.zeros([BLOCK_E, BLOCK_F], dtype=tl.float32)
    for i in range(0, n_chunks - 1):
        tl.store(base + i * size + tile, s.to(States.dtype.element_ty))
        k = tl.load(k_p, boundary_check=(0,), padding_option="zero")
        v = tl.load(v_p, boundary_check=(0,), padding_option="zero")
        b, last = chunk_gates(g_p, HAS_GATES, BLOCK_C, BLOCK_E)
        if HAS_GATES:
            k = k.to(tl.float32) * tl.math.exp(-b)
        s = next_state(s, k, v, last, keys, chunk, HAS_GATES, DOT_PRECISION)
        if HAS_GATES:
            g_p = tl.advance(g_p, (BLOCK_C, 0))
        k_p = tl.advance(k_p, (BLOCK_C, 0))
        v_p = tl.advance(v_p, (BLOCK_C, 0))
    tl.store(base + (n_chunks - 1) * size + tile, s.to(States.dtype.element_ty))
