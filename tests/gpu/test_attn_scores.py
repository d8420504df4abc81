"""Score functions in the 1-pass kernel: sigmoid attention, softcapping, ALiBi (`Score`).

On CPU in Triton's interpreter on tiny shapes (causal and not, with a window, GQA); with
CUDA compiled, plus bf16 at head dim 128. The reference writes each function plainly in
float64: S = scale q.k; ALiBi S - m_h |i - j| with m_h = 2**(-8 (h + 1) / H); softcap
C tanh(S / C); sigmoid O = sigmoid(S + b) V with b = -log(seq_k) by default.
"""

from __future__ import annotations

import math
import os

import torch

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    os.environ["TRITON_INTERPRET"] = "1"  # must precede the first import of triton

import pytest  # noqa: E402

from attnsim.kernels.triton.attn_fwd import Score, attention_fwd  # noqa: E402

DEVICE = "cuda" if HAS_CUDA else "cpu"
FLOOR = {torch.float32: 1e-5, torch.float16: 1e-4, torch.bfloat16: 1e-3}


def reference(q, k, v, causal, score, window=None, dtype=torch.float64):
    group = q.shape[1] // k.shape[1]
    q, k, v = (t.to(dtype) for t in (q, k, v))
    k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
    s = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    i = torch.arange(q.shape[2], device=s.device)[:, None]
    j = torch.arange(k.shape[2], device=s.device)[None, :]
    if score.alibi:
        h = q.shape[1]
        slopes = torch.tensor([2 ** (-8 * (n + 1) / h) for n in range(h)], device=s.device)
        s = s - slopes.to(dtype)[:, None, None] * (i - j).abs().to(dtype)
    if score.softcap is not None:
        s = score.softcap * torch.tanh(s / score.softcap)
    keep = torch.ones_like(s, dtype=torch.bool)
    if causal:
        keep = keep & (j <= i)
    if window is not None:
        keep = keep & (i - j < window)
    if score.sigmoid:
        bias = score.bias(k.shape[2])
        p = torch.sigmoid(s + bias).masked_fill(~keep, 0.0)
    else:
        s = s.masked_fill(~keep, float("-inf"))
        p = torch.softmax(s.float() if dtype != torch.float64 else s, dim=-1).to(dtype)
    return p @ v


def inputs(b, h, g, sq, sk, d, dtype, seed=0):
    gen = torch.Generator(device=DEVICE).manual_seed(seed)

    def mk(heads, s):
        return (2 * torch.randn(b, heads, s, d, generator=gen, device=DEVICE)).to(dtype)

    return mk(h, sq), mk(g, sk), mk(g, sk)


def check(q, k, v, causal, score, window=None, **kw):
    out = torch.full(q.shape, float("nan"), dtype=q.dtype, device=q.device)
    attention_fwd(q, k, v, causal, out=out, score=score, window=window, **kw)
    assert torch.isfinite(out).all()
    ref = reference(q, k, v, causal, score, window)
    naive = reference(q, k, v, causal, score, window, dtype=q.dtype)
    err = (out.double() - ref).abs().max().item()
    naive_err = (naive.double() - ref).abs().max().item()
    assert err <= 2 * naive_err + FLOOR[q.dtype], (err, naive_err)
    return out


TINY = dict(block_m=32, block_n=16, num_warps=4, num_stages=2)
SCORES = [
    Score(sigmoid=True),
    Score(sigmoid=True, sigmoid_bias=0.5),
    Score(softcap=2.0),
    Score(alibi=True),
    Score(alibi=True, softcap=5.0),
    Score(sigmoid=True, alibi=True),
]


def _id(s: Score) -> str:
    parts = ["sigmoid" if s.sigmoid else "softmax"]
    parts += [f"cap{s.softcap}"] if s.softcap is not None else []
    parts += ["alibi"] if s.alibi else []
    parts += [f"b{s.sigmoid_bias}"] if s.sigmoid_bias is not None else []
    return "-".join(parts)


@pytest.mark.parametrize("score", SCORES, ids=_id)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_scores_match_reference(score, causal, dtype):
    q, k, v = inputs(1, 4, 4, 64, 64 if causal else 40, 16, dtype)
    check(q, k, v, causal, score, **TINY)


def test_scores_with_window_and_gqa():
    q, k, v = inputs(1, 4, 2, 80, 80, 16, torch.float32)
    check(q, k, v, True, Score(sigmoid=True), window=20, **TINY)
    check(q, k, v, True, Score(softcap=3.0, alibi=True), window=20, **TINY)
    check(q, k, v, True, Score(alibi=True), window=20, **TINY)


@pytest.mark.parametrize("heads", [1, 8])
def test_causal_alibi_as_a_column_shift_over_many_tiles(heads):
    """Causal softmax ALiBi adds alibi (j - r0) per key (the row term cancels in softmax):
    exact over many key tiles, a ragged last tile, and slopes from steep (far keys vanish)
    to shallow."""
    q, k, v = inputs(1, heads, heads, 150, 150, 16, torch.float32, seed=3)
    check(q, k, v, True, Score(alibi=True), **TINY)


@pytest.mark.parametrize("heads", [1, 8])
@pytest.mark.parametrize("seq_k", [150, 97])
def test_non_causal_alibi_over_many_tiles(heads, seq_k):
    """Non-causal ALiBi -m_h |i - j| over key tiles before, across and after each query tile
    (a ragged last key tile; more keys than queries and fewer; steep to shallow slopes)."""
    q, k, v = inputs(1, heads, heads, 130, seq_k, 16, torch.float32, seed=4)
    check(q, k, v, False, Score(alibi=True), **TINY)


def test_score_functions_change_the_output():
    """Each function computes something else than plain softmax (the flags reach the kernel)."""
    q, k, v = inputs(1, 2, 2, 32, 32, 16, torch.float32)
    plain = attention_fwd(q, k, v, False, **TINY)
    for score in SCORES:
        assert not torch.allclose(attention_fwd(q, k, v, False, score=score, **TINY), plain)


def test_score_arguments_are_checked():
    with pytest.raises(ValueError, match="softcap must be > 0"):
        Score(softcap=0.0)
    with pytest.raises(ValueError, match="sigmoid_bias needs sigmoid"):
        Score(sigmoid_bias=1.0)
    assert Score(sigmoid=True).bias(1024) == pytest.approx(-math.log(1024))
    q, k, v = inputs(1, 2, 2, 128, 128, 16, torch.float32)
    for score in (Score(softcap=2.0), Score(alibi=True), Score(sigmoid=True, alibi=True)):
        with pytest.raises(ValueError, match="no softcap or ALiBi"):
            attention_fwd(q, k, v, False, score=score, schedule="pingpong")


PINGPONG = dict(block_m=128, num_warps=8, schedule="pingpong")


@pytest.mark.gpu
@pytest.mark.parametrize("bias", [None, 0.5], ids=["bias-log", "bias0.5"])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(
    "case",
    [((2, 8, 8, 1024, 1024, 128), 128, torch.bfloat16),
     ((1, 4, 4, 512, 1000, 64), 64, torch.float16),  # ragged keys
     ((1, 4, 4, 384, 1536, 128), 64, torch.bfloat16),  # seq_q < seq_k
     ((1, 8, 2, 512, 512, 128), 128, torch.bfloat16)],  # GQA: 4 query heads per K/V head
    ids=lambda c: "x".join(map(str, c[0])) + f"-n{c[1]}",
)  # fmt: skip
def test_gpu_pingpong_sigmoid(case, causal, bias):
    """The ping-pong kernel's sigmoid (kernels/gluon/attn_pingpong.py, SIGMOID), on sm_90."""
    from attnsim.kernels.gluon.attn_pingpong import pingpong_unsupported

    (b, h, g, sq, sk, d), bn, dtype = case
    score = Score(sigmoid=True, sigmoid_bias=bias)
    for seed in (0, 1):  # the second call takes the armed direct launch with new data
        q, k, v = inputs(b, h, g, sq, sk, d, dtype, seed=seed)
        why = pingpong_unsupported(q, k, v, None, causal, (128, bn, 8, 3))
        if why:
            pytest.skip(why)
        check(q, k, v, causal, score, block_n=bn, num_stages=3, **PINGPONG)


@pytest.mark.gpu
@pytest.mark.parametrize("score", SCORES, ids=_id)
@pytest.mark.parametrize("causal", [False, True])
def test_gpu_scores(score, causal):
    q, k, v = inputs(2, 8, 8, 1024, 1024, 128, torch.bfloat16)
    check(q, k, v, causal, score, block_m=128, block_n=64, num_warps=8, num_stages=3)
