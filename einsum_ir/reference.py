"""Plain numpy references for the built-in cascades, and which reference checks which cascade.

The attention reference is unscaled (no 1/sqrt(E)), like the FuseMax cascades. Causal masks
are top-left aligned: query p attends keys m <= p, also when P != M.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


def softmax_attention(q: Array, k: Array, v: Array, causal: bool = False) -> Array:
    """softmax(Q^T K) V^T in the cascades' layout, numerically stable.

    Args:
        q: queries, shape (..., E, P); leading axes (B, H) are batch axes.
        k: keys, shape (..., E, M).
        v: values, shape (..., F, M).
        causal: mask keys m > p (top-left aligned).

    Returns:
        Attention output of shape (..., F, P).
    """
    scores = np.einsum("...ep,...em->...pm", q, k)
    if causal:
        n_p, n_m = scores.shape[-2:]
        visible = np.arange(n_m)[None, :] <= np.arange(n_p)[:, None]
        scores = np.where(visible, scores, -np.inf)
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    weights /= weights.sum(axis=-1, keepdims=True)
    out: Array = np.einsum("...pm,...fm->...fp", weights, v)
    return out


@dataclass(frozen=True, slots=True)
class Reference:
    """How a built-in cascade is checked: its input layout, its output and its reference.

    `compute` maps the named inputs to the expected value of `output`.
    """

    inputs: tuple[tuple[str, tuple[str, ...]], ...]
    output: str
    compute: Callable[[Mapping[str, Array]], Array]


SINGLE_HEAD = (("Q", ("E", "P")), ("K", ("E", "M")), ("V", ("F", "M")))
MULTI_HEAD = tuple((name, ("B", "H", *ranks)) for name, ranks in SINGLE_HEAD)
ATTENTION_BASES = (
    "attention-3pass",
    "attention-2pass-plain",
    "attention-2pass-deferred",
    "attention-2pass-tilemax",
    "attention-1pass",
)


def _attention(inputs: Mapping[str, Array], causal: bool) -> Array:
    return softmax_attention(inputs["Q"], inputs["K"], inputs["V"], causal=causal)


def _attention_references() -> dict[str, Reference]:
    refs: dict[str, Reference] = {}
    for base in ATTENTION_BASES:
        for mh in (False, True):
            for causal in (False, True):
                name = base + ("-mh" if mh else "") + ("-causal" if causal else "")
                compute = functools.partial(_attention, causal=causal)
                refs[name] = Reference(MULTI_HEAD if mh else SINGLE_HEAD, "AV", compute)
    return refs


REFERENCES: dict[str, Reference] = _attention_references()
