"""The static-mask zoo against numpy written from each paper's definition (float64).

Every case evaluates the cascade with the reference executor and compares it with an
independent implementation: masks from the paper's predicate with integer division (not
the cascades' band unions), plain softmax attention. Sizes cover P != M, lengths that the
groups do not divide, key tiles that do not divide M, and groups left empty at tiny sizes.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from attnsim.einsum_ir import count_ops, load_cascade
from attnsim.einsum_ir.analysis.ops import OpKind
from attnsim.einsum_ir.analysis.structure import MaskKind, attention_problem
from attnsim.einsum_ir.execute import evaluate, random_inputs
from attnsim.einsum_ir.library import zoo_masks as zm
from attnsim.einsum_ir.reference import REFERENCES
from attnsim.einsum_ir.reference_zoo import (
    aki_visible,
    block_visible,
    ccam_visible,
    masked_softmax_attention,
    moa_visible,
    sinklora_visible,
    vdit_visible,
)

Array = npt.NDArray[np.float64]
TOL = {"rtol": 1e-12, "atol": 1e-12}
HEADS = {"B": 2, "H": 3, "E": 4, "F": 3}

CASES = {
    "attention-sinklora": [
        {"M": 16, "P": 16, "M0": 4, "S": 2},
        {"M": 23, "P": 23, "M0": 5, "S": 3},  # groups of 5-6 positions, tiles of 5
        {"M": 12, "P": 7, "M0": 4, "S": 1},  # P < M (top-left causal)
        {"M": 3, "P": 5, "M0": 2, "S": 1},  # M < 4: some groups have no key
    ],
    "attention-fit": [
        {"M": 16, "P": 16, "M0": 4},
        {"M": 18, "P": 18, "M0": 7},
        {"M": 2, "P": 6, "M0": 2},
    ],
    "attention-lga": [{"M": 20, "P": 20, "M0": 6}, {"M": 9, "P": 4, "M0": 4}],
    "attention-aki": [
        {"M": 20, "P": 20, "M0": 4, "PRE": 3, "IMG": 6, "TXT": 5},
        {"M": 20, "P": 20, "M0": 8, "PRE": 1, "IMG": 4, "TXT": 30},  # text runs past M
        {"M": 16, "P": 10, "M0": 4, "PRE": 2, "IMG": 3, "TXT": 4},
    ],
    "attention-video-ccam": [
        {"M": 16, "P": 8, "M0": 4},  # cross: 4 frames of 4 tokens, 4 query groups of 2
        {"M": 22, "P": 9, "M0": 5},
        {"M": 3, "P": 6, "M0": 2},
    ],
    "attention-efficient-vdit": [
        {"M": 24, "P": 24, "M0": 6},
        {"M": 30, "P": 30, "M0": 8},
        {"M": 16, "P": 5, "M0": 4},
    ],
    "attention-moa": [
        {"M": 20, "P": 20, "M0": 4, "S": 2, "W0": 2, "W1": 3, "W2": 5, "W3": 9},
        {"M": 17, "P": 11, "M0": 6, "S": 1, "W0": 1, "W1": 4, "W2": 2, "W3": 6},
        {"M": 10, "P": 13, "M0": 3, "S": 2, "W0": 1, "W1": 1, "W2": 3, "W3": 2},
    ],
    "attention-pine": [
        {"M": 20, "P": 20, "M0": 4, "PRE": 3, "DOC": 3},  # 4 docs of 3, a question of 5
        {"M": 23, "P": 23, "M0": 5, "PRE": 2, "DOC": 4},  # tiles cut across documents
        {"M": 30, "P": 30, "M0": 8, "PRE": 1, "DOC": 6},  # no question after the docs
        {"M": 13, "P": 13, "M0": 4, "PRE": 1, "DOC": 4},  # the last docs run past M
        {"M": 9, "P": 12, "M0": 4, "PRE": 1, "DOC": 2},  # P > M
        {"M": 5, "P": 5, "M0": 8, "PRE": 64, "DOC": 256},  # defaults: all prefix (causal)
    ],
}


def run(name: str, sizes: dict[str, int], seed: int = 0) -> tuple[Array, dict[str, Array]]:
    cascade = load_cascade(name)
    inputs = random_inputs(cascade, sizes, seed=seed)
    return np.asarray(evaluate(cascade, inputs, sizes)["AV"]), inputs


def qkv(inputs: dict[str, Array]) -> tuple[Array, Array, Array]:
    return inputs["Q"], inputs["K"], inputs["V"]


@pytest.mark.parametrize(
    ("name", "sizes"),
    [(n, s) for n, cases in CASES.items() for s in cases],
    ids=lambda x: x if isinstance(x, str) else ",".join(f"{k}{v}" for k, v in x.items()),
)
def test_cascade_matches_the_papers_definition(name: str, sizes: dict[str, int]) -> None:
    sizes = {**HEADS, **sizes}
    got, inputs = run(name, sizes, seed=sum(sizes.values()))
    ref = REFERENCES[name]
    cascade = load_cascade(name)
    assert cascade.inputs == tuple((n, r) for n, r in ref.inputs)
    resolved = dict(cascade.params) | sizes
    np.testing.assert_allclose(got, ref.compute(inputs, resolved), **TOL)
    assert np.all(np.isfinite(got))


def test_sinklora_sees_its_group_and_the_sinks() -> None:
    sizes = {**HEADS, "M": 16, "P": 16, "M0": 4, "S": 2}
    got, inputs = run("attention-sinklora", sizes)
    q, k, v = qkv(inputs)
    # group 2 is positions 8..11: query 10 sees sinks 0, 1 and keys 8, 9, 10
    keys = [0, 1, 8, 9, 10]
    scores = np.einsum("bhe,bhem->bhm", q[..., 10], k[..., keys])
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    want = np.einsum("bhm,bhfm->bhf", weights, v[..., keys])
    np.testing.assert_allclose(got[..., 10], want, **TOL)


def test_lga_is_grouped_attention_after_the_cross_view_gather() -> None:
    """LGA on the original order (token i of every view in group i mod U) equals the
    cascade on the gathered inputs, scattered back."""
    views, per_view, groups = 3, 8, zm.LGA_GROUPS
    n = views * per_view
    sizes = {**HEADS, "M": n, "P": n, "M0": 5}
    cascade = load_cascade("attention-lga")
    inputs = random_inputs(cascade, sizes, seed=7)
    token = np.arange(n)
    group = (token % per_view) % groups
    order = np.argsort(group * n + token, kind="stable")  # gathered: group-major
    gathered = {name: x[..., order] for name, x in inputs.items()}
    out = np.empty_like(np.asarray(evaluate(cascade, gathered, sizes)["AV"]))
    out[..., order] = np.asarray(evaluate(cascade, gathered, sizes)["AV"])
    same_group = group[:, None] == group[None, :]
    want = masked_softmax_attention(*qkv(inputs), same_group)
    np.testing.assert_allclose(out, want, **TOL)


def test_aki_image_rows_see_the_question() -> None:
    sizes = {"M": 20, "P": 20, "PRE": 3, "IMG": 6, "TXT": 5}
    visible = aki_visible(20, 20, 3, 6, 5)
    assert visible[3, 9:14].all() and not visible[3, 14:].any()  # image row: question only
    assert not visible[2, 3:].any()  # system prompt rows stay causal
    ap = attention_problem(load_cascade("attention-aki"), {**HEADS, **sizes})
    assert ap.points() == int(visible.sum())


def test_ccam_query_groups_see_earlier_frames_only() -> None:
    visible = ccam_visible(8, 16, 4)  # 4 query groups of 2, 4 frames of 4 tokens
    for group in range(4):
        rows = visible[2 * group : 2 * group + 2]
        assert rows[:, : 4 * (group + 1)].all() and not rows[:, 4 * (group + 1) :].any()


def test_vdit_frames_see_themselves_and_the_global_frame() -> None:
    visible = vdit_visible(24, 24, zm.VDIT_FRAMES, zm.VDIT_GLOBAL)  # 8 frames of 3 tokens
    assert visible[:, :3].all()  # the global (first) frame, for every query
    assert visible[9:12, 9:12].all() and not visible[9:12, 12:].any()


def test_moa_is_each_head_classs_own_sinks_and_window() -> None:
    """Each class's heads, computed alone (T tokens, the first S keys plus window W_x,
    causal), equal the cascade on the classes laid end to end (P = M = 4 T)."""
    tokens, sinks, windows = 6, 1, (1, 2, 3, 6)
    sizes = {**HEADS, "M": 4 * tokens, "P": 4 * tokens, "M0": 5, "S": sinks}
    sizes |= {f"W{x}": w for x, w in enumerate(windows)}
    got, inputs = run("attention-moa", sizes, seed=2)
    p, m = np.arange(tokens)[:, None], np.arange(tokens)[None, :]
    for x, window in enumerate(windows):
        own = slice(x * tokens, (x + 1) * tokens)
        visible = (m <= p) & ((m < sinks) | (p - m < window))
        q, k, v = (inputs[n][..., own] for n in ("Q", "K", "V"))
        want = masked_softmax_attention(q, k, v, visible)
        np.testing.assert_allclose(got[..., own], want, **TOL)


@pytest.mark.parametrize(
    ("name", "visible"),
    [
        ("attention-sinklora", lambda p, m: sinklora_visible(p, m, zm.SINKS_DEFAULT, 4)),
        ("attention-fit", lambda p, m: block_visible(p, m, zm.FIT_GROUPS)),
        ("attention-lga", lambda p, m: block_visible(p, m, zm.LGA_GROUPS)),
        ("attention-video-ccam", lambda p, m: ccam_visible(p, m, zm.CCAM_FRAMES)),
        ("attention-efficient-vdit", lambda p, m: vdit_visible(p, m, 8, 1)),
        ("attention-moa", lambda p, m: moa_visible(p, m, zm.SINKS_DEFAULT, zm.MOA_WINDOWS)),
    ],
)
def test_band_masks_count_the_papers_pairs(name: str, visible: object) -> None:
    """The mask analysis reads a band union whose pairs are the paper's, and op counts
    follow them (QK: E multiply-adds per visible pair)."""
    for p, m in ((1000, 1000), (640, 1280), (999, 1001)):
        sizes = {"B": 1, "H": 2, "M": m, "P": p, "E": 8, "F": 8}
        cascade = load_cascade(name)
        ap = attention_problem(cascade, sizes)
        assert ap.mask.kind not in (MaskKind.GENERIC, MaskKind.NONE)
        pairs = int(visible(p, m).sum())  # type: ignore[operator]
        assert ap.points() == pairs
        qk = count_ops(cascade, sizes).per_einsum[0]
        assert qk.points == 8 * 2 * pairs


def test_pine_output_does_not_depend_on_the_document_order() -> None:
    """PINE's aim: permuting the documents permutes their rows and leaves the question's."""
    pre, doc, docs = 2, 3, zm.PINE_DOCS
    n = pre + docs * doc + 4
    sizes = {**HEADS, "E": 2, "M": n, "P": n, "M0": 4, "PRE": pre, "DOC": doc}
    cascade = load_cascade("attention-pine")
    inputs = random_inputs(cascade, sizes, seed=11)
    got = np.asarray(evaluate(cascade, inputs, sizes)["AV"])
    order = [2, 0, 3, 1]
    token = np.arange(n)
    for slot, d in enumerate(order):
        token[pre + slot * doc : pre + (slot + 1) * doc] = np.arange(
            pre + d * doc, pre + (d + 1) * doc
        )
    moved = {name: x[..., token] for name, x in inputs.items()}
    again = np.asarray(evaluate(cascade, moved, sizes)["AV"])
    np.testing.assert_allclose(again, got[..., token], rtol=1e-10, atol=1e-10)
    assert not np.allclose(got[..., :pre], got[..., pre : 2 * pre])  # not a trivial output


def test_pine_counts_two_attention_passes_and_the_rotations() -> None:
    pre, doc, docs, n = 64, 128, zm.PINE_DOCS, 1024
    sizes = {"B": 1, "H": 2, "E": 16, "F": 32, "M": n, "P": n, "PRE": pre, "DOC": doc}
    per = {str(x.output): x for x in count_ops(load_cascade("attention-pine"), sizes).per_einsum}
    p, m = np.arange(n)[:, None], np.arange(n)[None, :]
    doc_of = lambda x: np.where((x >= pre) & (x < pre + docs * doc), (x - pre) // doc, -1)  # noqa: E731
    importance = (doc_of(m) >= 0) & (p >= pre) & (doc_of(m) != doc_of(p))
    attention = (m <= p) | ((doc_of(m) >= 0) & (doc_of(p) >= 0) & (doc_of(m) != doc_of(p)))
    heads, half = 2, 16
    assert per["S1"].points == heads * half * int(importance.sum())  # QA.KA + QB.KB
    scores = sum(per[f"QK{d}"].points for d in range(docs)) + per["QKO"].points
    assert scores == heads * half * int(attention.sum())
    assert per["SLNV"].points == heads * 32 * int(attention.sum())
    assert per["KC"].points == n * half  # K rotated once
    rotated = heads * half * (n - pre)  # per head: the order is the head's own
    assert per["QC0"].points == rotated and per["QC0"].counts[OpKind.COS] == rotated
