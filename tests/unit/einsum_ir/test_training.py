"""The backward built-ins against torch autograd of a float64 torch forward.

For every backward built-in (3-pass and 1-pass softmax, 1-pass sigmoid; one head, multi-head,
GQA; causal or not), the executor's DQ, DK, DV at small sizes equal the gradients autograd
takes of sum(O * DO), O the forward written directly in torch (softmax or sigmoid over the
keys, hidden pairs excluded). The forward's saved tensors (A; O and LSE) come from torch too.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from attnsim.einsum_ir import evaluate, load_cascade
from attnsim.einsum_ir.library import Heads, MaskForm, ScoreForm, training_entry, training_names

torch = pytest.importorskip("torch")

PREFIX = {Heads.SINGLE: ("", ""), Heads.MULTI: ("bh", "bh"), Heads.GROUPED: ("bgr", "bg")}
HEAD_SIZES = {
    Heads.SINGLE: {},
    Heads.MULTI: {"B": 1, "H": 3},
    Heads.GROUPED: {"B": 1, "G": 2, "R": 2},
}
SHAPES = [{"P": 12, "M": 16, "E": 4, "F": 6}, {"P": 9, "M": 8, "E": 8, "F": 4}]


def _shape(ranks: str, sizes: dict[str, int]) -> tuple[int, ...]:
    return tuple(sizes[r.upper()] for r in ranks)


def torch_forward(name: str, sizes: dict[str, int], seed: int) -> dict[str, object]:
    """Inputs, saved tensors and autograd gradients for backward built-in `name`."""
    fwd = training_entry(name)
    assert fwd is not None
    variant = fwd.forward
    q, kv = PREFIX[variant.heads]
    gen = torch.Generator().manual_seed(seed)

    def rand(ranks: str) -> object:
        return torch.randn(_shape(ranks, sizes), generator=gen, dtype=torch.float64)

    Q, K, V = rand(q + "ep"), rand(kv + "em"), rand(kv + "fm")
    DO = rand(q + "fp")
    for t in (Q, K, V):
        t.requires_grad_(True)
    S = torch.einsum(f"{q}ep,{kv}em->{q}mp", Q, K)
    m = torch.arange(sizes["M"]).unsqueeze(1)
    p = torch.arange(sizes["P"]).unsqueeze(0)
    visible = (m <= p) if variant.mask == MaskForm.CAUSAL else torch.ones_like(m <= p)
    if variant.score == ScoreForm.SIGMOID:
        A = torch.sigmoid(S - math.log(sizes["M"])) * visible
        LSE = None
    else:
        masked = S.masked_fill(~visible, -math.inf)
        LSE = torch.logsumexp(masked, dim=-2)
        A = torch.softmax(masked, dim=-2)
    out = torch.einsum(f"{q}mp,{kv}fm->{q}fp", A, V)
    dQ, dK, dV = torch.autograd.grad((out * DO).sum(), (Q, K, V))
    values = {"Q": Q, "K": K, "V": V, "DO": DO, "A": A, "O": out, "LSE": LSE}
    inputs = {k: v.detach().numpy() for k, v in values.items() if k in _input_names(name)}
    grads = {"DQ": dQ.numpy(), "DK": dK.numpy(), "DV": dV.numpy()}
    return {"inputs": inputs, "grads": grads}


def _input_names(name: str) -> set[str]:
    return {str(n) for n in load_cascade(name).input_names}


@pytest.mark.parametrize("shape", range(len(SHAPES)))
@pytest.mark.parametrize("name", training_names())
def test_backward_matches_autograd(name: str, shape: int) -> None:
    entry = training_entry(name)
    assert entry is not None
    sizes = {**SHAPES[shape], **HEAD_SIZES[entry.forward.heads]}
    ref = torch_forward(name, sizes, seed=shape)
    got = evaluate(load_cascade(name), ref["inputs"], sizes)  # type: ignore[arg-type]
    for grad in ("DQ", "DK", "DV"):
        want = ref["grads"][grad]  # type: ignore[index]
        assert got[grad].shape == want.shape, grad
        np.testing.assert_allclose(got[grad], want, rtol=1e-10, atol=1e-10, err_msg=grad)


def test_every_backward_names_its_forward_and_what_it_saved() -> None:
    names = training_names()
    assert len(names) == 18  # 3 forms x 3 head structures x 2 masks
    saved = {
        "attention-3pass-bwd-mh": {"A"},
        "attention-1pass-bwd-gqa-causal": {"O", "LSE"},
        "attention-1pass-bwd-mh-sigmoid": set(),
    }
    for name, tensors in saved.items():
        entry = training_entry(name)
        assert entry is not None and set(entry.saved) == tensors
        assert load_cascade(entry.forward.name).name == entry.forward.name
    assert training_entry("attention-1pass-mh") is None


def test_gqa_gradients_sum_over_the_group() -> None:
    """DK and DV of a KV head lack R: their Einsums reduce r (and p), as the forward shares."""
    cascade = load_cascade("attention-1pass-bwd-gqa")
    by_out = {str(e.output): e for e in cascade.einsums}
    for grad in ("DK", "DV"):
        assert {"r", "p"} <= set(by_out[grad].implicit_reduced_vars)
    assert "r" not in by_out["DQ"].implicit_reduced_vars
