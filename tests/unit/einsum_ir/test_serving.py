"""Serving cascades: float64 references, passes (split-K merge, MLA latent) and structure."""

from __future__ import annotations

import numpy as np
import pytest

from attnsim.einsum_ir import builtin_names, load_cascade
from attnsim.einsum_ir.analysis import count_passes
from attnsim.einsum_ir.analysis.serving import ProjectionSite
from attnsim.einsum_ir.analysis.structure import attention_problem
from attnsim.einsum_ir.execute import evaluate, random_inputs

SERVING = ["attention-mla-naive", "attention-mla-absorbed", "attention-splitk-gqa"]
SERVING += ["attention-decode-gqa"]


def _softmax_attention(scores: np.ndarray, values: np.ndarray) -> np.ndarray:
    """scores (..., P, M), values (..., F, M) -> (..., F, P), float64, stable."""
    w = np.exp(scores - scores.max(axis=-1, keepdims=True))
    w /= w.sum(axis=-1, keepdims=True)
    return np.einsum("...pm,...fm->...fp", w, values)


def _mla_numpy(x: dict[str, np.ndarray]) -> np.ndarray:
    # DeepSeek-V2 Eqs. 9-19 written per head with loops (independent of the cascade text)
    b_n, h_n = x["Q"].shape[0], x["Q"].shape[1]
    out = []
    for b in range(b_n):
        heads = []
        for h in range(h_n):
            k = x["WUK"][h].T @ x["CKV"][b]  # (E, M)
            v = x["WUV"][h].T @ x["CKV"][b]  # (F, M)
            k_full = np.concatenate([k, x["KR"][b]])  # K with the shared RoPE key
            q_full = np.concatenate([x["Q"][b, h], x["QR"][b, h]])
            heads.append(_softmax_attention(q_full.T @ k_full, v))
        out.append(heads)
    return np.array(out)


def _gqa_numpy(x: dict[str, np.ndarray]) -> np.ndarray:
    q, k, v = x["Q"], x["K"], x["V"]
    out = np.zeros((*q.shape[:3], v.shape[2], q.shape[-1]))
    for b in range(q.shape[0]):
        for g in range(q.shape[1]):
            for r in range(q.shape[2]):
                out[b, g, r] = _softmax_attention(q[b, g, r].T @ k[b, g], v[b, g])
    return out


def test_serving_cascades_are_built_ins() -> None:
    assert set(SERVING) <= set(builtin_names())
    for name in SERVING:
        cascade = load_cascade(name)
        assert cascade.name == name and cascade.description


@pytest.mark.parametrize("name", ["attention-mla-naive", "attention-mla-absorbed"])
@pytest.mark.parametrize("m", [1, 7, 16])
def test_mla_matches_numpy(name: str, m: int) -> None:
    sizes = {"B": 2, "H": 3, "C": 5, "R": 2, "E": 4, "F": 3, "P": 3, "M": m, "M0": 4}
    cascade = load_cascade(name)
    x = random_inputs(cascade, sizes, seed=m)
    got = evaluate(cascade, x, sizes)["AV"]
    np.testing.assert_allclose(got, _mla_numpy(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("m", [1, 9, 24, 25])  # one split, a ragged last split, exact, +1
def test_splitk_matches_numpy(m: int) -> None:
    sizes = {"B": 1, "G": 2, "R": 2, "E": 3, "F": 2, "P": 2, "M": m, "M1": 2, "M0": 3}
    cascade = load_cascade("attention-splitk-gqa")
    x = random_inputs(cascade, sizes, seed=m)
    got = evaluate(cascade, x, sizes)["AV"]
    np.testing.assert_allclose(got, _gqa_numpy(x), rtol=1e-12, atol=1e-12)


def test_decode_is_one_query_by_default() -> None:
    cascade = load_cascade("attention-decode-gqa")
    sizes = {"B": 1, "G": 2, "R": 3, "E": 3, "F": 2, "M": 11, "M0": 4}
    x = random_inputs(cascade, sizes, seed=3)
    got = evaluate(cascade, x, sizes)["AV"]
    assert got.shape[-1] == 1  # P = 1 from the cascade's params
    np.testing.assert_allclose(got, _gqa_numpy(x), rtol=1e-12, atol=1e-12)


def test_splitk_merge_is_not_a_pass() -> None:
    report = count_passes(load_cascade("attention-splitk-gqa"), "M")
    assert report.passes == 1 and not report.boundaries
    assert report.merge_ranks == ("M2",)
    merged = [r.output for r in report.einsum_passes if r.is_merge]
    assert merged == ["GM", "WS", "SD", "SNV"]
    reads = {r.tensor: r.passes for r in report.input_reads}
    assert reads == {"K": (1,), "V": (1,)}


def test_tilemax_second_pass_is_still_a_pass() -> None:
    # the tile-max form's rescale over M1 has no recurrence inside it: FuseMax's 2 passes
    report = count_passes(load_cascade("attention-2pass-tilemax"), "M")
    assert report.passes == 2 and report.merge_ranks == ()
    assert not any(r.is_merge for r in report.einsum_passes)


def test_mla_absorbed_reads_the_latent_once_for_scores_and_values() -> None:
    report = count_passes(load_cascade("attention-mla-absorbed"), "M")
    assert report.passes == 1
    (ckv,) = [r for r in report.input_reads if r.tensor == "CKV"]
    assert ckv.passes == (1,) and set(ckv.readers) == {"SC", "SLNV"}


SIZES = {"B": 2, "E": 128, "F": 96, "P": 3, "M": 1000}


@pytest.mark.parametrize("name", ["attention-mla-naive", "attention-mla-absorbed"])
def test_mla_structure(name: str) -> None:
    ap = attention_problem(load_cascade(name), SIZES)
    assert ap.roles.key == "M" and ap.roles.query == "P"
    assert ap.roles.query_groups == ("H",) and ap.roles.batch == ("B",)
    assert ap.roles.value_dims == ("F",)
    assert ap.query_group == 128  # the params' H: every head shares the latent
    assert ap.sharing_of("CKV") == ("H",) and ap.sharing_of("KR") == ("H",)
    assert ap.latent_inputs == ("CKV",) and ap.latent_dims == ("C",)
    terms = {t.key_operand: t.dims for t in ap.score_terms}
    assert terms["KR"] == ("R",)
    b, h, c, e, f, p, m = 2, 128, 512, 128, 96, 3, 1000
    sites = {pr.output: (pr.site, pr.weight, pr.macs) for pr in ap.projections}
    if name.endswith("absorbed"):
        assert terms["CKV"] == ("C",) and ap.value_operands == ("CKV",)
        assert sites == {
            "QC": (ProjectionSite.QUERY, "WUK", b * h * c * e * p),
            "AV": (ProjectionSite.OUTPUT, "WUV", b * h * c * f * p),
        }
    else:
        assert terms["K"] == ("E",) and ap.value_operands == ("V",)
        assert sites == {
            "K": (ProjectionSite.KEY, "WUK", b * h * c * e * m),
            "V": (ProjectionSite.KEY, "WUV", b * h * c * f * m),
        }


def test_splitk_structure() -> None:
    ap = attention_problem(load_cascade("attention-splitk-gqa"), {**SIZES, "M": 40000})
    assert ap.split_ranks == ("M2",)
    assert ap.splits == -(-40000 // (16 * 256))  # ceil(M / (M1 M0)) at the default tiles
    assert ap.roles.query_groups == ("R",) and ap.roles.batch == ("B", "G")
    assert ap.latent_inputs == () and ap.projections == ()


def test_plain_attention_has_no_serving_fields() -> None:
    ap = attention_problem(load_cascade("attention-1pass-mh"), {**SIZES, "H": 2})
    assert ap.latent_inputs == () and ap.projections == () and ap.split_ranks == ()
    assert ap.splits == 1 and [t.key_operand for t in ap.score_terms] == ["K"]
    assert ap.value_operands == ("V",) and ap.roles.value_dims == ("F",)
