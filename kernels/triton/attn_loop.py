"""The one attention inner loop of the fused kernels (`@triton.jit` helpers).

The 1-pass kernel and both passes of the 2-pass kernel share it: `attn_inner` walks key
tiles, and a constexpr `MODE` picks what it does per tile (online softmax with rescaling;
statistics only; normalized output with known statistics). `attn_rows` is the whole
per-program body: it loads the query tile, runs the unmasked key range and then the masked
range (causal diagonal or the ragged last key tile) through `attn_inner` with a constexpr
`MASKED` flag, so the loop body exists once; `sparse_rows` is the block-sparse body (listed key
tiles only, through the same `attn_inner`). Tiles come through tensor descriptors (TMA) or
block pointers (`tiles`); `exp2_split` is the 1-pass POLY_EXP variant's software exponential.

Layout everywhere: (batch, heads, seq, head_dim), last dimension contiguous.
"""

from __future__ import annotations

import triton
import triton.language as tl

from attnsim.kernels.triton.attn_scores import modify_scores, tanh
from attnsim.kernels.triton.exp2 import exp2_split
from attnsim.kernels.triton.neighborhood_mask import in_windows, row_windows
from attnsim.kernels.triton.tiles import load_tile

# inner-loop modes (constexpr MODE)
MODE_ONLINE = tl.constexpr(0)  # 1-pass: online softmax, running max/sum, rescaled accumulator
MODE_STATS = tl.constexpr(1)  # 2-pass, pass 1: row max and row sum of exp only (no P.V)
MODE_OUTPUT = tl.constexpr(2)  # 2-pass, pass 2: exact probabilities from known max/sum, P.V
# LAZY_RESCALE threshold in log2 units: the stale max may trail the true one by up to 8, so
# probabilities stay <= 256 (exact in fp16/bf16 range; FlashAttention-4 uses the same idea).
RESCALE_TAU = tl.constexpr(8.0)
# sigmoid of log2-domain scores: sigmoid(s ln 2) = 0.5 tanh(s HALF_LN2) + 0.5
HALF_LN2 = tl.constexpr(0.34657359027997264)  # ln 2 / 2


@triton.jit
def online_step(
    acc,
    l_i,
    m_i,
    qk,
    v_src,
    start_n,
    seq_k,
    stride_vs,
    qk_scale,
    BLOCK_N: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    SCALED: tl.constexpr,
    LAZY_RESCALE: tl.constexpr,
    USE_TMA: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    POLY_EXP: tl.constexpr = 0,
    USE_ASM: tl.constexpr = False,
    SAFE: tl.constexpr = False,
):
    """One key tile of the online softmax (1-pass): update max, sum and the accumulator.

    `qk` holds raw scores q.k (SCALED=False: the log2-domain score is qk * qk_scale, folded
    into one FMA inside the exp2) or scores already in the log2 domain (SCALED=True: masked
    tiles, or Q pre-scaled by qk_scale), masked entries -inf.
    LAZY_RESCALE (FlashAttention-4's conditional rescale): the running max `m_i` is only
    raised, and the accumulator and sum rescaled, when some row's max grew by more than
    RESCALE_TAU (log2 units) in this tile; otherwise the stale max is kept and p <= 2**TAU.
    The final O = acc / l is exact either way (acc and l share the same stale max). The test
    is one reduction over the tile's rows, so the rescale is skipped for the whole tile.
    POLY_EXP (FlashAttention-4's exponential split): the probabilities come from
    `exp2_split(s, POLY_EXP, USE_ASM)`: POLY_EXP of every 4 on the FMA units (polynomial), the
    rest on the MUFU; the rescale factors stay on `tl.math.exp2` (one per row).
    SAFE (masked tiles of a sliding window, without LAZY_RESCALE): a row with no visible key
    so far keeps max -inf; its factors use 0 instead, so it stays 0 rather than NaN.
    """
    if SCALED:
        m_new = tl.maximum(m_i, tl.max(qk, 1))
    else:
        m_new = tl.maximum(m_i, tl.max(qk, 1) * qk_scale)
    if LAZY_RESCALE:
        if tl.max(m_new - m_i, 0) > RESCALE_TAU:
            alpha = tl.math.exp2(m_i - m_new)
            acc = acc * alpha[:, None]
            l_i = l_i * alpha
            m_i = m_new
    elif SAFE:
        m_ref = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.math.exp2(m_i - m_ref)
        acc = acc * alpha[:, None]
        l_i = l_i * alpha
        m_i = m_new
    else:
        alpha = tl.math.exp2(m_i - m_new)
        acc = acc * alpha[:, None]
        l_i = l_i * alpha
        m_i = m_new
    if SAFE:
        m_use = tl.where(m_i == float("-inf"), 0.0, m_i)
    else:
        m_use = m_i
    if SCALED:
        p = exp2_split(qk - m_use[:, None], POLY_EXP, USE_ASM)
    else:
        p = exp2_split(qk * qk_scale - m_use[:, None], POLY_EXP, USE_ASM)
    l_i = l_i + tl.sum(p, 1)
    v = load_tile(v_src, start_n, seq_k, stride_vs, BLOCK_N, HEAD_DIM, USE_TMA)
    acc = tl.dot(p.to(v.dtype), v, acc, input_precision=DOT_PRECISION)
    return acc, l_i, m_i


@triton.jit
def sigmoid_step(
    acc, t, v_src, start_n, seq_k, stride_vs, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr,
    USE_TMA: tl.constexpr, DOT_PRECISION: tl.constexpr, FAST_TANH: tl.constexpr,
):  # fmt: skip
    """One key tile of sigmoid attention: acc += sigmoid(x) V, no max, no sum, no rescale.

    `t` holds the tanh argument x / 2 = (s + bias) ln 2 / 2 of log2-domain scores s (masked
    entries -inf, weight 0): sigmoid(x) = 0.5 tanh(x / 2) + 0.5, one SFU op with FAST_TANH.
    """
    p = 0.5 * tanh(t, FAST_TANH) + 0.5
    v = load_tile(v_src, start_n, seq_k, stride_vs, BLOCK_N, HEAD_DIM, USE_TMA)
    return tl.dot(p.to(v.dtype), v, acc, input_precision=DOT_PRECISION)


@triton.jit
def _keep(
    offs_m, offs_n, seq_k, CAUSAL: tl.constexpr, WINDOW: tl.constexpr, window, sinks,
    SEGMENTS: tl.constexpr = False, q_seg=0, k_seg=0,
):  # fmt: skip
    """Which (query, key) pairs of a masked tile are computed (see `attn_inner`).

    SEGMENTS 1: `q_seg` holds the tile's query segment ids, `k_seg` points at the sequence's key
    ids; 2: neighborhood windows (`neighborhood_mask`: `q_seg` the rows', `k_seg` key coordinates).
    """
    keep = offs_n[None, :] < seq_k
    if CAUSAL:
        keep = keep & (offs_m[:, None] >= offs_n[None, :])
    if WINDOW:
        near = (offs_m[:, None] - offs_n[None, :]) < window
        keep = keep & (near | (offs_n[None, :] < sinks))
    if SEGMENTS == 1:
        ks = tl.load(k_seg + offs_n, mask=offs_n < seq_k, other=-1)
        keep = keep & (q_seg[:, None] == ks[None, :])
    elif SEGMENTS == 2:
        keep = keep & in_windows(q_seg, k_seg, offs_n)
    return keep


@triton.jit
def attn_inner(
    acc,
    l_i,
    m_i,
    q,
    k_src,
    v_src,
    lo,
    hi,
    offs_m,
    seq_k,
    stride_ks,
    stride_vs,
    qk_scale,
    BLOCK_N: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    MODE: tl.constexpr,
    MASKED: tl.constexpr,
    CAUSAL: tl.constexpr,
    USE_TMA: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    PRESCALED: tl.constexpr = False,
    LAZY_RESCALE: tl.constexpr = False,
    WARP_SPECIALIZE: tl.constexpr = False,
    POLY_EXP: tl.constexpr = 0,
    USE_ASM: tl.constexpr = False,
    WINDOW: tl.constexpr = False,
    window=0,
    sinks=0,
    SIGMOID: tl.constexpr = False,
    SOFTCAP: tl.constexpr = False,
    ALIBI: tl.constexpr = False,
    softcap=0.0,
    alibi=0.0,
    sigmoid_bias=0.0,
    FAST_TANH: tl.constexpr = False,
    SPARSE: tl.constexpr = False,
    kv_list=0,
    SEGMENTS: tl.constexpr = False,
    q_seg=0,
    k_seg=0,
):
    """Walk key tiles [lo, hi) for one query tile; the only attention inner loop.

    Scores live in the log2 domain: s = (q.k) * qk_scale with qk_scale = scale * log2(e).
    MASKED tiles mask keys >= seq_k and, when CAUSAL, keys after the query (j > i); with
    WINDOW (causal only) also keys outside the sliding window (i - j >= window) that are not
    attention sinks (j >= sinks); unmasked tiles do no mask arithmetic at all. MODE_ONLINE
    keeps a running max `m_i`, sum `l_i` and rescales `acc` (`online_step`); MODE_STATS only
    updates `m_i`, `l_i`; MODE_OUTPUT takes the final `m_i` and 1/l (passed in `l_i`) and
    accumulates exact probabilities times V.

    SPARSE (MODE_ONLINE; `sparse_rows`): [lo, hi) counts entries of the key-tile list
    `kv_list` in units of BLOCK_N (entry n / BLOCK_N holds a key-tile index) instead of keys;
    masked tiles then also mask by segment when SEGMENTS (`_keep`) and use SAFE factors.
    The next entry is read a step ahead into a register: read in its own step, Triton 3.6
    staged it through shared memory (cp.async, one more CTA barrier a step) and loaded K/V
    one tile ahead instead of two (sm_90 SASS; `test_blocksparse_sass.py`).

    Score functions (MODE_ONLINE only): ALIBI and SOFTCAP modify the log2-domain scores
    (`modify_scores`) before the mask and the softmax; SIGMOID replaces the online softmax with
    `sigmoid_step` on scores plus `sigmoid_bias` (log2 domain), leaving `l_i`, `m_i` alone.

    1-pass variants (MODE_ONLINE only; all default off, the 2-pass kernel never sets them):
    PRESCALED: `q` was multiplied by qk_scale in the prologue, so scores need no scaling.
    LAZY_RESCALE, POLY_EXP (with USE_ASM): see `online_step`.
    WARP_SPECIALIZE: the unmasked MODE_ONLINE loop carries `tl.range(warp_specialize=True)`
    (one loop; the flag is a constexpr computed from WARP_SPECIALIZE, MODE and MASKED). On
    sm_90 Triton 3.6 hands such loops to `nvidia.passes.hopper.add_hopper_warpspec`: one
    producer warp group issuing the tensor-descriptor (TMA) loads that feed the wgmma, and one
    or two consumer warp groups (data-partitioned along BLOCK_M). Per the pass source
    (third_party/nvidia/hopper/lib/Transforms/WarpSpecialization.cpp) it does nothing, silently,
    unless: num_warps == 4 (the consumers then bring the kernel to 8 or 12 warps), the loop's
    num_stages > 1, and no `scf.if` in the kernel has an else region (a runtime `if` that
    assigns values has one: LAZY_RESCALE turns it off; constexpr `if`s are fine). Compiled for
    sm_90 on a CPU host (`triton.compile(..., target=GPUTarget("cuda", 90, 32))`): with 4
    warps it builds 1 producer + 2 consumer warp groups (12 warps; 128x128 hd128 needs 197 KB
    shared memory at 2 stages, 263 KB at 3: too much); it fails to compile ("PassManager::run
    failed", an MLIR dominance assertion) with block-pointer loads (USE_TMA off) or when the
    masked key loop follows, so callers drop that loop (`attn_rows` MASKED_TAIL). sm_100 uses
    a different pass; the interpreter ignores the keyword.
    (Tried and dropped, 2026-12: issuing the next tile's QK^T before this tile's softmax by
    hand. Triton 3.6 waits for that wgmma right after issuing it (WARPGROUP.DEPBAR.LE gsb0,
    0x0 before the first MUFU.EX2 in the SASS), so nothing overlaps, and with 128x128 tiles
    the extra K buffer exceeds shared memory.)
    """
    offs_n = tl.arange(0, BLOCK_N)
    ws: tl.constexpr = WARP_SPECIALIZE and MODE == 0 and not MASKED
    safe: tl.constexpr = WINDOW or SPARSE  # masked tiles may hide whole rows
    if True:  # one loop; the body is chosen by constexpr flags
        nxt = 0
        if SPARSE:
            nxt = tl.load(kv_list + lo // BLOCK_N, mask=lo < hi, other=0)
        for n0 in tl.range(lo, hi, BLOCK_N, warp_specialize=ws):
            if SPARSE:  # entry n0 / BLOCK_N of the list holds the key tile
                start_n = tl.multiple_of(nxt * BLOCK_N, BLOCK_N)
                nxt = tl.load(kv_list + n0 // BLOCK_N + 1, mask=n0 + BLOCK_N < hi, other=0)
            else:
                start_n = tl.multiple_of(n0, BLOCK_N)
            k = load_tile(k_src, start_n, seq_k, stride_ks, BLOCK_N, HEAD_DIM, USE_TMA)
            qk = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION)
            if MODE == 0 and (SIGMOID or SOFTCAP or ALIBI):
                plain_sigmoid: tl.constexpr = SIGMOID and not (SOFTCAP or ALIBI)
                if plain_sigmoid:  # the tanh argument (s + bias) ln 2 / 2: one FMA a score
                    if PRESCALED:
                        sc = qk * HALF_LN2 + sigmoid_bias * HALF_LN2
                    else:
                        sc = qk * (qk_scale * HALF_LN2) + sigmoid_bias * HALF_LN2
                else:
                    if PRESCALED:
                        sc = qk
                    else:
                        sc = qk * qk_scale
                    sc = modify_scores(
                        sc,
                        offs_m,
                        start_n + offs_n,
                        SOFTCAP,
                        ALIBI,
                        softcap,
                        alibi,
                        FAST_TANH,
                        ALIBI and CAUSAL and not SIGMOID and not SOFTCAP,
                    )
                if MASKED:
                    keep = _keep(
                        offs_m, start_n + offs_n, seq_k, CAUSAL, WINDOW, window, sinks, SEGMENTS,
                        q_seg, k_seg,
                    )  # fmt: skip
                    sc = tl.where(keep, sc, float("-inf"))
                if SIGMOID:
                    if not plain_sigmoid:
                        sc = (sc + sigmoid_bias) * HALF_LN2
                    acc = sigmoid_step(
                        acc, sc, v_src, start_n, seq_k, stride_vs, BLOCK_N, HEAD_DIM, USE_TMA,
                        DOT_PRECISION, FAST_TANH,
                    )  # fmt: skip
                else:
                    acc, l_i, m_i = online_step(
                        acc, l_i, m_i, sc, v_src, start_n, seq_k, stride_vs, qk_scale,
                        BLOCK_N, HEAD_DIM, True, LAZY_RESCALE, USE_TMA, DOT_PRECISION,
                        POLY_EXP, USE_ASM, safe and MASKED,
                    )  # fmt: skip
            elif MODE == 0:
                if MASKED:
                    keep = _keep(
                        offs_m, start_n + offs_n, seq_k, CAUSAL, WINDOW, window, sinks, SEGMENTS,
                        q_seg, k_seg,
                    )  # fmt: skip
                    if PRESCALED:
                        qk = tl.where(keep, qk, float("-inf"))
                    else:
                        qk = tl.where(keep, qk * qk_scale, float("-inf"))
                    acc, l_i, m_i = online_step(
                        acc, l_i, m_i, qk, v_src, start_n, seq_k, stride_vs, qk_scale,
                        BLOCK_N, HEAD_DIM, True, LAZY_RESCALE, USE_TMA, DOT_PRECISION,
                        POLY_EXP, USE_ASM, safe,
                    )  # fmt: skip
                else:
                    acc, l_i, m_i = online_step(
                        acc, l_i, m_i, qk, v_src, start_n, seq_k, stride_vs, qk_scale,
                        BLOCK_N, HEAD_DIM, PRESCALED, LAZY_RESCALE, USE_TMA, DOT_PRECISION,
                        POLY_EXP, USE_ASM,
                    )  # fmt: skip
            else:
                if MASKED:
                    keep = _keep(offs_m, start_n + offs_n, seq_k, CAUSAL, WINDOW, window, sinks)
                    qk = tl.where(keep, qk * qk_scale, float("-inf"))
                    if MODE == 2:
                        p = tl.math.exp2(qk - m_i[:, None])
                    else:
                        m_ij = tl.maximum(m_i, tl.max(qk, 1))
                        p = tl.math.exp2(qk - m_ij[:, None])
                else:
                    if MODE == 2:
                        p = tl.math.exp2(qk * qk_scale - m_i[:, None])
                    else:
                        m_ij = tl.maximum(m_i, tl.max(qk, 1) * qk_scale)
                        p = tl.math.exp2(qk * qk_scale - m_ij[:, None])
                if MODE == 2:
                    v = load_tile(v_src, start_n, seq_k, stride_vs, BLOCK_N, HEAD_DIM, USE_TMA)
                    p = p * l_i[:, None]  # l_i holds 1 / row sum in this mode
                    acc = tl.dot(p.to(v.dtype), v, acc, input_precision=DOT_PRECISION)
                else:
                    alpha = tl.math.exp2(m_i - m_ij)
                    l_i = l_i * alpha + tl.sum(p, 1)
                    m_i = m_ij
    return acc, l_i, m_i


@triton.jit
def attn_rows(
    q_src,
    k_src,
    v_src,
    acc,
    l_i,
    m_i,
    start_m,
    seq_q,
    seq_k,
    stride_qs,
    stride_ks,
    stride_vs,
    qk_scale,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    MODE: tl.constexpr,
    CAUSAL: tl.constexpr,
    USE_TMA: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    PRESCALE_Q: tl.constexpr = False,
    LAZY_RESCALE: tl.constexpr = False,
    WARP_SPECIALIZE: tl.constexpr = False,
    POLY_EXP: tl.constexpr = 0,
    USE_ASM: tl.constexpr = False,
    MASKED_TAIL: tl.constexpr = True,
    WINDOW: tl.constexpr = False,
    window=0,
    sinks=0,
    SIGMOID: tl.constexpr = False,
    SOFTCAP: tl.constexpr = False,
    ALIBI: tl.constexpr = False,
    softcap=0.0,
    alibi=0.0,
    sigmoid_bias=0.0,
    FAST_TANH: tl.constexpr = False,
):
    """One query tile of one head: unmasked key tiles first, then the masked ones.

    Key tiles that are fully visible (below the causal diagonal and inside seq_k) run without
    masks; the diagonal tiles (causal) or the ragged last tile (seq_k % BLOCK_N != 0) run
    with masks; tiles above the diagonal are never visited. Needs BLOCK_M % BLOCK_N == 0
    when CAUSAL so that the diagonal starts on a key-tile boundary. PRESCALE_Q (MODE_ONLINE):
    multiply the Q tile by qk_scale once (in fp32, rounded back to the input dtype) so that
    scores come out of the dot in the log2 domain; LAZY_RESCALE, WARP_SPECIALIZE (unmasked
    loop only), POLY_EXP and USE_ASM (all MODE_ONLINE only): see `attn_inner`.
    MASKED_TAIL=False drops the masked loop: only for callers that know it is empty (not
    CAUSAL and seq_k % BLOCK_N == 0). Triton 3.6's Hopper warp specialization fails (an MLIR
    dominance assertion, "PassManager::run failed") when another key loop follows the
    specialized one, so the 1-pass launcher passes False with WARP_SPECIALIZE.

    WINDOW (with CAUSAL; `window` >= 1 keys, `sinks` >= 0): a sliding window plus attention
    sinks. Key tiles in four ranges, each visited once: the tiles every row of the query tile
    sees whole (unmasked), the diagonal tiles, the window's leading tiles (masked), then the
    sink tiles left of the window (masked); all other tiles are skipped. The diagonal runs
    before the leading tiles so that every row has a finite running max before a tile can
    mask a whole row (its own key j = i is always visible); within the diagonal, a window
    narrower than the query tile can still hide a whole row from one key tile, which the
    masked steps' SAFE factors handle.
    """
    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    q = load_tile(q_src, start_m * BLOCK_M, seq_q, stride_qs, BLOCK_M, HEAD_DIM, USE_TMA)
    if MODE == 0 and PRESCALE_Q:
        q = (q.to(tl.float32) * qk_scale).to(q.dtype)
    prescaled: tl.constexpr = MODE == 0 and PRESCALE_Q
    hi_full = (seq_k // BLOCK_N) * BLOCK_N
    hi = seq_k
    if CAUSAL:
        hi_full = tl.minimum(hi_full, start_m * BLOCK_M)
        hi = tl.minimum(hi, (start_m + 1) * BLOCK_M)
    lo_full = 0
    if WINDOW:
        # first key every row of the tile sees: the last row's window start, rounded up
        last_start = tl.maximum(start_m * BLOCK_M + BLOCK_M - window, 0)
        lo_full = tl.minimum(tl.cdiv(last_start, BLOCK_N) * BLOCK_N, hi_full)
    acc, l_i, m_i = attn_inner(
        acc, l_i, m_i, q, k_src, v_src, lo_full, hi_full, offs_m, seq_k, stride_ks, stride_vs,
        qk_scale, BLOCK_N, HEAD_DIM, MODE, False, CAUSAL, USE_TMA, DOT_PRECISION,
        prescaled, LAZY_RESCALE, WARP_SPECIALIZE, POLY_EXP, USE_ASM,
        SIGMOID=SIGMOID, SOFTCAP=SOFTCAP, ALIBI=ALIBI, softcap=softcap, alibi=alibi,
        sigmoid_bias=sigmoid_bias, FAST_TANH=FAST_TANH,
    )  # fmt: skip
    if MASKED_TAIL:
        acc, l_i, m_i = attn_inner(
            acc, l_i, m_i, q, k_src, v_src, hi_full, hi, offs_m, seq_k, stride_ks, stride_vs,
            qk_scale, BLOCK_N, HEAD_DIM, MODE, True, CAUSAL, USE_TMA, DOT_PRECISION,
            prescaled, LAZY_RESCALE, False, POLY_EXP, USE_ASM, WINDOW, window, sinks,
            SIGMOID=SIGMOID, SOFTCAP=SOFTCAP, ALIBI=ALIBI, softcap=softcap, alibi=alibi,
            sigmoid_bias=sigmoid_bias, FAST_TANH=FAST_TANH,
        )  # fmt: skip
    if WINDOW:
        # the window's leading tiles: from the first row's window start, rounded down
        first_start = tl.maximum(start_m * BLOCK_M - window + 1, 0)
        lo_win = tl.minimum((first_start // BLOCK_N) * BLOCK_N, lo_full)
        acc, l_i, m_i = attn_inner(
            acc, l_i, m_i, q, k_src, v_src, lo_win, lo_full, offs_m, seq_k, stride_ks, stride_vs,
            qk_scale, BLOCK_N, HEAD_DIM, MODE, True, CAUSAL, USE_TMA, DOT_PRECISION,
            prescaled, LAZY_RESCALE, False, POLY_EXP, USE_ASM, WINDOW, window, sinks,
            SIGMOID=SIGMOID, SOFTCAP=SOFTCAP, ALIBI=ALIBI, softcap=softcap, alibi=alibi,
            sigmoid_bias=sigmoid_bias, FAST_TANH=FAST_TANH,
        )  # fmt: skip
        hi_sink = tl.minimum(tl.cdiv(sinks, BLOCK_N) * BLOCK_N, lo_win)
        acc, l_i, m_i = attn_inner(
            acc, l_i, m_i, q, k_src, v_src, 0, hi_sink, offs_m, seq_k, stride_ks, stride_vs,
            qk_scale, BLOCK_N, HEAD_DIM, MODE, True, CAUSAL, USE_TMA, DOT_PRECISION,
            prescaled, LAZY_RESCALE, False, POLY_EXP, USE_ASM, WINDOW, window, sinks,
            SIGMOID=SIGMOID, SOFTCAP=SOFTCAP, ALIBI=ALIBI, softcap=softcap, alibi=alibi,
            sigmoid_bias=sigmoid_bias, FAST_TANH=FAST_TANH,
        )  # fmt: skip
    return acc, l_i, m_i


@triton.jit
def sparse_rows(
    q_src, k_src, v_src, acc, l_i, m_i, start_m, seq_q, seq_k, stride_qs, stride_ks, stride_vs,
    qk_scale, row, full_width, q_seg, k_seg,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr,
    USE_TMA: tl.constexpr, DOT_PRECISION: tl.constexpr, PRESCALE_Q: tl.constexpr = False,
    POLY_EXP: tl.constexpr = 0, USE_ASM: tl.constexpr = False, SEGMENTS: tl.constexpr = False,
    SIGMOID: tl.constexpr = False, SOFTCAP: tl.constexpr = False, ALIBI: tl.constexpr = False,
    softcap=0.0, alibi=0.0, sigmoid_bias=0.0, FAST_TANH: tl.constexpr = False,
):  # fmt: skip
    """One query tile of one head, block-sparse (MODE_ONLINE): listed key tiles only.

    `row` points at the query tile's entry of the layout table (`blocksparse.BlockSparse`):
    [full count, partial count, `full_width` full indices, partial indices]. The full tiles
    run unmasked first (rows get a finite max early), then the partial tiles masked (keys
    past seq_k; causal; segments: `q_seg` / `k_seg` point at this sequence's ids, or at its
    neighborhood windows and key coordinates, SEGMENTS 2). Tiles in
    neither list are never loaded. A row that sees no key ends with l = 0 (the caller
    writes 0 there).
    """
    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    q = load_tile(q_src, start_m * BLOCK_M, seq_q, stride_qs, BLOCK_M, HEAD_DIM, USE_TMA)
    if PRESCALE_Q:
        q = (q.to(tl.float32) * qk_scale).to(q.dtype)
    n_full = tl.load(row)
    n_part = tl.load(row + 1)
    acc, l_i, m_i = attn_inner(
        acc, l_i, m_i, q, k_src, v_src, 0, n_full * BLOCK_N, offs_m, seq_k, stride_ks,
        stride_vs, qk_scale, BLOCK_N, HEAD_DIM, MODE_ONLINE, False, CAUSAL, USE_TMA,
        DOT_PRECISION, PRESCALE_Q, False, False, POLY_EXP, USE_ASM,
        SIGMOID=SIGMOID, SOFTCAP=SOFTCAP, ALIBI=ALIBI, softcap=softcap, alibi=alibi,
        sigmoid_bias=sigmoid_bias, FAST_TANH=FAST_TANH, SPARSE=True, kv_list=row + 2,
    )  # fmt: skip
    if SEGMENTS == 1:
        qs = tl.load(q_seg + offs_m, mask=offs_m < seq_q, other=-1)
    elif SEGMENTS == 2:  # neighborhood: the rows' windows, read once
        qs = row_windows(q_seg, offs_m)
    else:
        qs = 0
    acc, l_i, m_i = attn_inner(
        acc, l_i, m_i, q, k_src, v_src, 0, n_part * BLOCK_N, offs_m, seq_k, stride_ks,
        stride_vs, qk_scale, BLOCK_N, HEAD_DIM, MODE_ONLINE, True, CAUSAL, USE_TMA,
        DOT_PRECISION, PRESCALE_Q, False, False, POLY_EXP, USE_ASM,
        SIGMOID=SIGMOID, SOFTCAP=SOFTCAP, ALIBI=ALIBI, softcap=softcap, alibi=alibi,
        sigmoid_bias=sigmoid_bias, FAST_TANH=FAST_TANH, SPARSE=True, kv_list=row + 2 + full_width,
        SEGMENTS=SEGMENTS, q_seg=qs, k_seg=k_seg,
    )  # fmt: skip
    return acc, l_i, m_i
