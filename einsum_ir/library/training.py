"""Training cascades: the backward pass of attention (a family of built-ins of its own).

`attention-{3pass|1pass}-bwd[-mh|-gqa][-causal][-sigmoid]` take the forward's inputs, the
output gradient DO and what the forward left for the backward, and produce the gradients
DQ, DK, DV. `training_cascade(name)` builds one; `TRAINING` lists them; `forward_name(name)`
names the forward built-in a backward belongs to (the pairing the training analysis reads).

Every built-in is unscaled (the softmax scale 1/sqrt(E) folds into Q), so the backward is
that of the unscaled forward: with Q' = scale * Q given to the forward, DQ here is dL/dQ'
and dL/dQ = scale * DQ; DK is exact as it is.

- **3-pass backward** (the scores' probabilities A stored by the forward, H * P * M words):
  DV = A^T DO, DA = DO V^T, D = rowsum(DA o A), DS = A o (DA - D), DQ = DS K, DK = DS^T Q.
  D reduces the keys and DS reads it: two passes over M.
- **1-pass backward** (FlashAttention-2, Dao, arXiv 2307.08691, Algorithm 2): the forward
  saves only O and the log-sum-exp LSE (one word per query row). A pre-pass computes
  D = rowsum(DO o O) (P * F read, one word per row written); the scores are recomputed,
  S = Q K^T, A = exp(S - LSE); DV = A^T DO, DA = DO V^T, DS = A o (DA - D), DQ = DS K,
  DK = DS^T Q. Five matmuls (S, DV, DA, DQ, DK) against the forward's two: 2.5x the
  forward's matmul FLOPs when E = F (FlashAttention-2's accounting), one pass over M.
- **sigmoid backward** (1-pass; FlashSigmoid, Ramapuram et al., arXiv 2409.04431): the
  weights A = sigmoid(S - log M) have no row normalisation, so neither LSE nor D exists:
  DS = DA o A o (1 - A). Scores recomputed; the backward reads nothing of the forward but
  its inputs.

Heads: multi-head (B, H on every tensor) and grouped-query (Q over B, G, R; K, V over B, G).
Under GQA, DK[b,g,e,m] and DV[b,g,f,m] lack R: their Einsums sum over the R query heads of
the group as well as over the queries p, as the forward's K/V reads are shared across R.
Causal (top-left, m <= p): every Einsum that iterates keys and queries carries the mask,
so hidden pairs contribute nothing to any gradient.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from attnsim.einsum_ir.ir import Cascade, Einsum, RankName, TensorName
from attnsim.einsum_ir.library.builder import (
    _HEAD_PARAMS,
    _HEAD_RANKS,
    Algorithm,
    Heads,
    MaskForm,
    ScoreForm,
    Variant,
)
from attnsim.einsum_ir.parse import parse_einsum

HEADS = (Heads.SINGLE, Heads.MULTI, Heads.GROUPED)
MASKS = (MaskForm.NONE, MaskForm.CAUSAL)
GRADIENTS = (TensorName("DQ"), TensorName("DK"), TensorName("DV"))

# (text, comment); `{q}` / `{kv}` are the query-side / key-side rank prefixes.
_Lines = tuple[tuple[str, str], ...]
_GRADS: _Lines = (
    ("DV[{kv}f,m] = A[{q}m,p] * DO[{q}f,p]", "dV = A^T dO (sums p; under GQA also r)"),
    ("DA[{q}m,p] = DO[{q}f,p] * V[{kv}f,m]", "dA = dO V^T"),
)
_DS_SOFTMAX = ("DS[{q}m,p] = A[{q}m,p] * (DA[{q}m,p] - D[{q}p])", "dS = A o (dA - D)")
_DQK: _Lines = (
    ("DQ[{q}e,p] = DS[{q}m,p] * K[{kv}e,m]", "dQ = dS K"),
    ("DK[{kv}e,m] = DS[{q}m,p] * Q[{q}e,p]", "dK = dS^T Q (sums p; under GQA also r)"),
)
_RECOMPUTE: _Lines = (("S[{q}m,p] = Q[{q}e,p] * K[{kv}e,m]", "scores, recomputed"),)
_LINES: dict[tuple[Algorithm, ScoreForm], _Lines] = {
    (Algorithm.THREE_PASS, ScoreForm.SOFTMAX): (
        *_GRADS,
        ("D[{q}p] = DA[{q}m,p] * A[{q}m,p]", "D = rowsum(dA o A): all keys"),
        (_DS_SOFTMAX[0], "pass 2: reads D"),
        *_DQK,
    ),
    (Algorithm.ONE_PASS, ScoreForm.SOFTMAX): (
        ("D[{q}p] = DO[{q}f,p] * O[{q}f,p]", "D = rowsum(dO o O): pre-pass, no keys"),
        *_RECOMPUTE,
        ("A[{q}m,p] = exp(S[{q}m,p] - LSE[{q}p])", "probabilities from the saved LSE"),
        *_GRADS,
        _DS_SOFTMAX,
        *_DQK,
    ),
    (Algorithm.ONE_PASS, ScoreForm.SIGMOID): (
        *_RECOMPUTE,
        ("A[{q}m,p] = sigmoid(S[{q}m,p] - log(M))", "weights, recomputed"),
        *_GRADS,
        ("DS[{q}m,p] = DA[{q}m,p] * A[{q}m,p] * (1 - A[{q}m,p])", "sigmoid' = A (1 - A)"),
        *_DQK,
    ),
}
# What the forward leaves for the backward, besides Q, K, V (and DO from the next layer):
# (tensor, its dims after the head ranks, what it is in the forward built-in).
_SAVED: dict[tuple[Algorithm, ScoreForm], tuple[tuple[str, str, str], ...]] = {
    (Algorithm.THREE_PASS, ScoreForm.SOFTMAX): (("A", "MP", "A"),),
    (Algorithm.ONE_PASS, ScoreForm.SOFTMAX): (
        ("O", "FP", "AV"),
        ("LSE", "P", "RM[M1] + log(RD[M1]): the final running max and denominator"),
    ),
    (Algorithm.ONE_PASS, ScoreForm.SIGMOID): (),
}


@dataclass(frozen=True, slots=True)
class Backward:
    """One backward built-in: the forward `Variant` it differentiates.

    Only the 3-pass and 1-pass softmax forms, 1-pass sigmoid, single/multi/grouped heads and
    no or top-left causal masks have a backward.
    """

    forward: Variant

    def __post_init__(self) -> None:
        f = self.forward
        if (f.algorithm, f.score) not in _LINES:
            raise ValueError(f"no backward for algorithm {f.algorithm} with {f.score}")
        if f.heads not in HEADS or f.mask not in MASKS or f.modifier.value != "none":
            raise ValueError(f"no backward for {f.name}: heads {HEADS}, masks {MASKS} only")

    @property
    def name(self) -> str:
        """The forward's name with `-bwd` after the algorithm."""
        head, _, rest = self.forward.name.partition(str(self.forward.algorithm))
        return f"{head}{self.forward.algorithm}-bwd{rest}"

    @property
    def saved(self) -> tuple[TensorName, ...]:
        """The tensors the forward leaves for the backward (A; or O and LSE; or none)."""
        return tuple(n for n, _ in self.saved_from)

    @property
    def saved_from(self) -> tuple[tuple[TensorName, str], ...]:
        """Each saved tensor with what it is in the forward: a tensor name, or a derivation."""
        key = (self.forward.algorithm, self.forward.score)
        return tuple((TensorName(n), source) for n, _, source in _SAVED[key])

    @property
    def description(self) -> str:
        """One line: the backward form, then heads and mask when not the defaults."""
        f = self.forward
        if f.score == ScoreForm.SIGMOID:
            what = "sigmoid attention backward: weights recomputed, no LSE or D"
        elif f.algorithm == Algorithm.THREE_PASS:
            what = "attention backward from stored probabilities A (3-pass forward)"
        else:
            what = "FlashAttention-2 backward: scores recomputed from the saved LSE, D pre-pass"
        extras = [str(f.heads)] if f.heads != Heads.SINGLE else []
        extras += [str(f.mask)] if f.mask != MaskForm.NONE else []
        return f"{what} -> DQ, DK, DV" + (f"; {', '.join(extras)}" if extras else "")


def backward_variants() -> tuple[Backward, ...]:
    """Every backward built-in, in a fixed order."""
    result = []
    for algorithm, score in _LINES:
        for heads in HEADS:
            for mask in MASKS:
                result.append(Backward(Variant(algorithm, heads, mask, score)))
    return tuple(result)


TRAINING: tuple[Backward, ...] = backward_variants()


def training_names() -> tuple[str, ...]:
    """Names of the backward built-ins, sorted."""
    return tuple(sorted(b.name for b in TRAINING))


def training_entry(name: str) -> Backward | None:
    """The backward record of that name, or None."""
    return next((b for b in TRAINING if b.name == name), None)


def forward_name(name: str) -> str | None:
    """The forward built-in a backward built-in differentiates, or None for other names."""
    entry = training_entry(name)
    return None if entry is None else entry.forward.name


def training_notes(entry: Backward) -> str:
    """The module's notes on the backward forms, for `builtin_text`."""
    return f"{entry.description}\n{__doc__}"


def template(entry: Backward) -> _Lines:
    """The backward's Einsums as (text, comment) pairs, mask conditions included."""
    f = entry.forward
    ranks = _HEAD_RANKS[f.heads]
    fill = {
        "q": "".join(f"{r.lower()}," for r in ranks.query),
        "kv": "".join(f"{r.lower()}," for r in ranks.key),
    }
    result = []
    for text, comment in _LINES[(f.algorithm, f.score)]:
        line = text.format(**fill)
        einsum = parse_einsum(line)
        if f.mask == MaskForm.CAUSAL and {"m", "p"} <= set(einsum.iteration_vars):
            line += " where m <= p"
        result.append((line, comment))
    return tuple(result)


@functools.cache
def training_cascade(name: str) -> Cascade | None:
    """The backward cascade of that name (memoized), or None when there is none."""
    entry = training_entry(name)
    if entry is None:
        return None
    f = entry.forward
    ranks = _HEAD_RANKS[f.heads]
    inputs = [
        ("Q", (*ranks.query, "E", "P")),
        ("K", (*ranks.key, "E", "M")),
        ("V", (*ranks.key, "F", "M")),
    ]
    letters = {"M": "M", "P": "P", "F": "F"}
    for saved, dims, _ in _SAVED[(f.algorithm, f.score)]:
        inputs.append((saved, (*ranks.query, *(letters[d] for d in dims))))
    inputs.append(("DO", (*ranks.query, "F", "P")))
    einsums = []
    for text, _ in template(entry):
        parsed = parse_einsum(text)
        einsums.append(Einsum(parsed.out, parsed.expr, parsed.where))
    return Cascade(
        name=entry.name,
        inputs=tuple((TensorName(n), tuple(RankName(r) for r in rs)) for n, rs in inputs),
        einsums=tuple(einsums),
        outputs=GRADIENTS,
        params=tuple((RankName(n), v) for n, v in _HEAD_PARAMS.get(f.heads, ())),
        description=entry.description,
        source=f"<builtin>/{entry.name}",
    )
