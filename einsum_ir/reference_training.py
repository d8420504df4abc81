"""Plain numpy references for the backward built-ins (`einsum_ir.library.training`).

Written from FlashAttention-2's backward (Dao, arXiv 2307.08691, Algorithm 2) and the
textbook softmax gradient, not from the cascades' Einsums: K and V are repeated across the
query heads of a GQA group, gradients are taken per query head, and DK, DV are then summed
over the group. They take the cascade's inputs as given (the property tests draw them at
random, so A, O and LSE need not be consistent with Q, K, V); torch autograd checks the
consistent case in tests/unit/einsum_ir/test_training.py. Hidden pairs (causal) take no part.
`TRAINING_CHECKS` maps each name to its (input layout, output, compute).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

import numpy as np
import numpy.typing as npt

from attnsim.einsum_ir.library import (
    TRAINING,
    Algorithm,
    Backward,
    Heads,
    ScoreForm,
    training_cascade,
)

Array = npt.NDArray[np.float64]
Compute = Callable[[Mapping[str, Array], Mapping[str, int]], Array]
Layout = tuple[tuple[str, tuple[str, ...]], ...]
OUTPUT = "DK"  # the gradient the property tests compare (it carries GQA's group sum)


def gradients(
    entry: Backward, inputs: Mapping[str, Array], sizes: Mapping[str, int]
) -> dict[str, Array]:
    """DQ, DK, DV of the backward `entry` for the given inputs, in the cascade's layout."""
    f = entry.forward
    x = {k: np.asarray(v, dtype=np.float64) for k, v in inputs.items()}
    grouped = f.heads == Heads.GROUPED
    r = sizes.get("R", 1)
    k = np.repeat(x["K"][:, :, None], r, axis=2) if grouped else x["K"]
    v = np.repeat(x["V"][:, :, None], r, axis=2) if grouped else x["V"]
    q, do = x["Q"], x["DO"]
    n_q, n_k = q.shape[-1], k.shape[-1]
    visible = np.ones((n_q, n_k), dtype=bool)
    if str(f.mask) == "causal":
        visible = np.arange(n_k)[None, :] <= np.arange(n_q)[:, None]
    s = np.einsum("...ep,...em->...pm", q, k)
    if f.score == ScoreForm.SIGMOID:
        a = 0.5 * (1.0 + np.tanh(0.5 * (s - np.log(n_k))))
    elif f.algorithm == Algorithm.THREE_PASS:
        a = np.swapaxes(x["A"], -1, -2)  # stored as (..., M, P)
    else:
        a = np.exp(s - x["LSE"][..., :, None])
    a = np.where(visible, a, 0.0)
    d_a = np.where(visible, np.einsum("...fp,...fm->...pm", do, v), 0.0)
    if f.score == ScoreForm.SIGMOID:
        d_s = d_a * a * (1.0 - a)
    else:
        if f.algorithm == Algorithm.THREE_PASS:
            d = (d_a * a).sum(axis=-1)
        else:
            d = (do * x["O"]).sum(axis=-2)
        d_s = a * (d_a - d[..., :, None])
    d_q = np.einsum("...pm,...em->...ep", d_s, k)
    d_k = np.einsum("...pm,...ep->...em", d_s, q)
    d_v = np.einsum("...pm,...fp->...fm", a, do)
    if grouped:
        d_k, d_v = d_k.sum(axis=2), d_v.sum(axis=2)
    return {"DQ": d_q, "DK": d_k, "DV": d_v}


def _output(entry: Backward, inputs: Mapping[str, Array], sizes: Mapping[str, int]) -> Array:
    return gradients(entry, inputs, sizes)[OUTPUT]


def _layout(entry: Backward) -> Layout:
    cascade = training_cascade(entry.name)
    assert cascade is not None
    return tuple((str(n), tuple(str(r) for r in ranks)) for n, ranks in cascade.inputs)


TRAINING_CHECKS: dict[str, tuple[Layout, str, Compute]] = {
    e.name: (_layout(e), OUTPUT, functools.partial(_output, e)) for e in TRAINING
}
