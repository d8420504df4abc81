"""The training analysis: what crosses from forward to backward, and FLOP ratios.

FLOP ratios are FlashAttention-2's accounting (Dao, arXiv 2307.08691, Sec. 4): the forward
is 2 matmuls, the 1-pass backward 5 (2.5x), forward + backward 3.5x. The counts come from
`ops.count_ops` and are checked against explicit formulas and, independently, against
torch's FlopCounterMode over autograd of a dense torch forward (torch counts the matmuls
it runs: 2 forward, 4 backward, no recompute).
"""

from __future__ import annotations

import pytest

from attnsim.einsum_ir import load_cascade
from attnsim.einsum_ir.analysis.training import is_matmul, matmul_flops, training_report
from attnsim.einsum_ir.library import training_entry

SIZES = {"B": 1, "H": 2, "P": 64, "M": 64, "E": 16, "F": 16}


def report(name: str, sizes: dict[str, int] = SIZES):  # type: ignore[no-untyped-def]
    entry = training_entry(name)
    assert entry is not None
    forward = load_cascade(entry.forward.name)
    return training_report(forward, load_cascade(name), entry.saved_from, sizes)


def test_one_pass_backward_is_2_5x_and_training_3_5x_the_forward() -> None:
    for name in ("attention-1pass-bwd-mh", "attention-1pass-bwd-mh-causal"):
        r = report(name)
        assert r.backward_matmul_flops == 5 * r.forward_matmul_flops // 2
        assert r.training_ratio == 3.5


def test_matmul_flops_follow_the_formula_with_e_not_f() -> None:
    sizes = {**SIZES, "E": 8, "F": 24}
    b, h, p, m, e, f = (sizes[k] for k in "BHPMEF")
    r = report("attention-1pass-bwd-mh", sizes)
    assert r.forward_matmul_flops == 2 * b * h * p * m * (e + f)
    assert r.backward_matmul_flops == 2 * b * h * p * m * (3 * e + 2 * f)  # S, DQ, DK; DV, DA
    r3 = report("attention-3pass-bwd-mh", sizes)
    assert r3.backward_matmul_flops == 2 * b * h * p * m * (2 * e + 2 * f)  # no recompute


def test_causal_counts_only_visible_pairs() -> None:
    n = SIZES["P"]
    full, causal = report("attention-1pass-bwd-mh"), report("attention-1pass-bwd-mh-causal")
    visible = n * (n + 1) // 2
    assert causal.forward_matmul_flops * n * n == full.forward_matmul_flops * visible
    assert causal.backward_matmul_flops * n * n == full.backward_matmul_flops * visible
    assert causal.recomputed_flops * n * n == full.recomputed_flops * visible


def test_what_crosses_from_forward_to_backward() -> None:
    b, h, p, m, f = (SIZES[k] for k in "BHPMF")
    one, three = report("attention-1pass-bwd-mh"), report("attention-3pass-bwd-mh")
    words = {c.tensor: c for c in one.crossings}
    assert words["LSE"].words == b * h * p and not words["LSE"].forward_output
    assert words["O"].words == b * h * f * p and words["O"].forward_output
    assert words["LSE"].words_formula == "B*H*P"
    (a,) = three.crossings
    assert (a.tensor, a.words, a.words_formula) == ("A", b * h * p * m, "B*H*M*P")
    assert three.stored_words == m * one.stored_words  # A is M times LSE
    assert (one.recomputed, three.recomputed) == (("S", "A"), ())
    assert report("attention-1pass-bwd-mh-sigmoid").crossings == ()


def test_prepass_and_passes() -> None:
    b, h, p, f = (SIZES[k] for k in "BHPF")
    one, three = report("attention-1pass-bwd-mh"), report("attention-3pass-bwd-mh")
    (d,) = one.prepass
    assert (d.output, d.read_words, d.written_words) == ("D", 2 * b * h * p * f, b * h * p)
    assert (one.forward_passes, one.backward_passes, one.passes) == (1, 1, 2)
    assert (three.forward_passes, three.backward_passes, three.passes) == (3, 2, 5)
    assert three.prepass == ()  # its D reduces the keys: it runs in pass 1


def test_is_matmul_excludes_row_dot_products() -> None:
    kinds = {str(e.output): is_matmul(e) for e in load_cascade("attention-1pass-bwd-gqa").einsums}
    assert kinds == {
        "D": False,
        "S": True,
        "A": False,
        "DV": True,
        "DA": True,
        "DS": False,
        "DQ": True,
        "DK": True,
    }


@pytest.mark.parametrize("algorithm", ["1pass", "3pass"])
def test_counts_agree_with_torch_flop_counter(algorithm: str) -> None:
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    b, h, p, m, e, f = (SIZES[k] for k in "BHPMEF")
    q = torch.randn(b, h, e, p, dtype=torch.float64, requires_grad=True)
    k = torch.randn(b, h, e, m, dtype=torch.float64, requires_grad=True)
    v = torch.randn(b, h, f, m, dtype=torch.float64, requires_grad=True)
    with FlopCounterMode(display=False) as fwd_mode:
        s = torch.einsum("bhep,bhem->bhmp", q, k)
        o = torch.einsum("bhmp,bhfm->bhfp", torch.softmax(s, dim=-2), v)
    with FlopCounterMode(display=False) as bwd_mode:
        o.backward(torch.randn_like(o))
    torch_fwd, torch_bwd = fwd_mode.get_total_flops(), bwd_mode.get_total_flops()
    r = report(f"attention-{algorithm}-bwd-mh")
    assert r.forward_matmul_flops == torch_fwd
    recompute_qk = 2 * b * h * p * m * e  # the 1-pass backward recomputes S = Q K^T
    extra = recompute_qk if algorithm == "1pass" else 0
    assert r.backward_matmul_flops == torch_bwd + extra
    assert matmul_flops(load_cascade(f"attention-{algorithm}-bwd-mh"), SIZES) == torch_bwd + extra
