"""Training: a forward cascade and its backward, as one step (pure analysis).

`training_report(forward, backward, saved, sizes)` reads what crosses from the forward to
the backward and what the pair costs together:

- **passes** over a rank (M by default) of each, and their sum (the backward runs after
  the forward has finished, so their passes add);
- **crossing tensors**: each tensor the forward leaves for the backward (`saved`), its
  ranks, its size in words as a product of rank sizes (symbolic, e.g. `B*H*P*M`) and at
  `sizes`, and whether it is the forward's output (kept anyway: the layer's activation) or
  stored for the backward only (A of the 3-pass form, LSE of the 1-pass form);
- **pre-pass**: backward Einsums that run before the first pass over the rank (D =
  rowsum(DO o O) of FlashAttention-2): words read and written;
- **recompute vs store**: FLOPs of the backward Einsums that depend on no gradient input
  (the recomputed scores and weights) against the words stored for the backward only;
- **totals**: FLOPs (all operations, `ops.count_ops`), and matmul FLOPs.

A *matmul* Einsum is a product of two tensor reads with an implicit sum, in which each
operand carries an output index the other lacks (QK = Q.K, DV = A^T DO, ...): a GEMM per
batch point. A row dot product (D[p] = DO[f,p] O[f,p]) is not one. Its FLOPs are the
`ops.count_ops` multiplies and adds, so masked pairs count nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from attnsim.einsum_ir.analysis.ops import count_ops
from attnsim.einsum_ir.analysis.passes import count_passes
from attnsim.einsum_ir.ir import (
    Binary,
    BinaryOp,
    Cascade,
    Einsum,
    RankName,
    Read,
    TensorName,
    reads,
)
from attnsim.einsum_ir.sizes import resolve_sizes


@dataclass(frozen=True, slots=True)
class Crossing:
    """One tensor the forward leaves for the backward.

    Attributes:
        tensor: Its name in the backward cascade.
        ranks: Its ranks.
        words_formula: Its size as a product of rank sizes, e.g. `B*H*M*P`.
        words: That size at the report's sizes.
        source: What it is in the forward (a tensor name or a derivation).
        forward_output: Whether it is the forward's output (kept anyway, not extra storage).
    """

    tensor: TensorName
    ranks: tuple[RankName, ...]
    words_formula: str
    words: int
    source: str
    forward_output: bool


@dataclass(frozen=True, slots=True)
class PrePass:
    """A backward Einsum run before the first pass over the rank (FlashAttention-2's D)."""

    output: TensorName
    text: str
    read_words: int
    written_words: int


@dataclass(frozen=True, slots=True)
class TrainingReport:
    """What a forward and its backward cost together (see the module docstring)."""

    forward: str
    backward: str
    rank: RankName
    forward_passes: int
    backward_passes: int
    crossings: tuple[Crossing, ...]
    prepass: tuple[PrePass, ...]
    recomputed: tuple[TensorName, ...]
    recomputed_flops: int
    forward_flops: int
    backward_flops: int
    forward_matmul_flops: int
    backward_matmul_flops: int

    @property
    def passes(self) -> int:
        """Forward and backward passes over the rank, added."""
        return self.forward_passes + self.backward_passes

    @property
    def flops(self) -> int:
        """Forward + backward FLOPs (all operations)."""
        return self.forward_flops + self.backward_flops

    @property
    def stored_words(self) -> int:
        """Words stored for the backward only (crossings other than the forward's output)."""
        return sum(c.words for c in self.crossings if not c.forward_output)

    @property
    def backward_ratio(self) -> float:
        """Backward matmul FLOPs over the forward's (2.5 for FlashAttention-2 with E = F)."""
        return self.backward_matmul_flops / self.forward_matmul_flops

    @property
    def training_ratio(self) -> float:
        """Forward + backward matmul FLOPs over the forward's (3.5 for FlashAttention-2)."""
        return 1.0 + self.backward_ratio

    def describe(self) -> list[str]:
        """Lines for the CLI: passes, crossings, pre-pass, recompute vs store, totals."""
        lines = [
            f"training: forward {self.forward} ({_passes(self.forward_passes, self.rank)}) "
            f"+ backward {self.backward} ({_passes(self.backward_passes, self.rank)}) "
            f"= {_passes(self.passes, self.rank)}",
            "  forward -> backward:",
        ]
        for c in self.crossings:
            kind = "forward output, kept anyway" if c.forward_output else "stored for backward"
            lines.append(
                f"    {c.tensor}[{','.join(c.ranks)}] = {c.source}: {c.words_formula} "
                f"= {c.words:,} words ({kind})"
            )
        if not self.crossings:
            lines.append("    nothing besides the forward's inputs")
        for p in self.prepass:
            lines.append(
                f"  pre-pass: {p.text}: reads {p.read_words:,} words, writes {p.written_words:,}"
            )
        recomputed = ", ".join(self.recomputed) or "nothing"
        lines.append(
            f"  recomputed: {recomputed} ({self.recomputed_flops:,} FLOPs); "
            f"stored for backward only: {self.stored_words:,} words"
        )
        lines.append(
            f"  FLOPs: forward {self.forward_flops:,} + backward {self.backward_flops:,} "
            f"= {self.flops:,}"
        )
        lines.append(
            f"  matmul FLOPs: forward {self.forward_matmul_flops:,}, backward "
            f"{self.backward_matmul_flops:,} ({self.backward_ratio:.3g}x), forward + backward "
            f"{self.training_ratio:.3g}x the forward's"
        )
        return lines


def _passes(n: int, rank: str) -> str:
    return f"{n} pass{'' if n == 1 else 'es'} over {rank}"


def is_matmul(einsum: Einsum) -> bool:
    """Whether the Einsum is a GEMM: two reads multiplied, summed, each with its own index."""
    expr = einsum.expr
    if not (isinstance(expr, Binary) and expr.op == BinaryOp.MUL):
        return False
    if not (isinstance(expr.left, Read) and isinstance(expr.right, Read)):
        return False
    if not einsum.implicit_reduced_vars:
        return False
    left = {v.name for v in expr.left.access.vars}
    right = {v.name for v in expr.right.access.vars}
    out = set(einsum.out_vars)
    return bool((left - right) & out) and bool((right - left) & out)


def matmul_flops(cascade: Cascade, sizes: Mapping[str, int]) -> int:
    """FLOPs (multiplies and adds, masked points excluded) of the cascade's matmul Einsums."""
    counts = count_ops(cascade, sizes)
    return sum(
        r.flops for r, e in zip(counts.per_einsum, cascade.einsums, strict=True) if is_matmul(e)
    )


def training_report(
    forward: Cascade,
    backward: Cascade,
    saved: Sequence[tuple[str, str]],
    sizes: Mapping[str, int],
    rank: str = "M",
) -> TrainingReport:
    """Passes, crossings, pre-pass, recompute and totals of a forward and its backward.

    Args:
        forward: The forward cascade.
        backward: Its backward; its inputs are the forward's, the saved tensors and the
            incoming gradients (every other input).
        saved: (backward input, what it is in the forward): a forward tensor name or a
            derivation. One that names a forward output is the output, kept anyway.
        sizes: Rank sizes for both (each cascade's params fill the rest).
        rank: The rank to count passes over.
    """
    fwd_sizes = {k: v for k, v in sizes.items() if k in forward.size_symbols}
    bwd_sizes = {k: v for k, v in sizes.items() if k in backward.size_symbols}
    resolved = {str(k): v for k, v in resolve_sizes(backward, bwd_sizes).items()}
    ranks = backward.tensor_ranks
    crossings = tuple(
        Crossing(
            TensorName(t),
            ranks[TensorName(t)],
            "*".join(ranks[TensorName(t)]) or "1",
            math.prod(resolved[r] for r in ranks[TensorName(t)]),
            source,
            source in forward.outputs,
        )
        for t, source in saved
    )
    fwd_report = count_passes(forward, rank)
    bwd_report = count_passes(backward, rank)
    prepass = tuple(
        PrePass(
            rec.output,
            rec.text,
            sum(_words(a.tensor, ranks, resolved) for a in reads(backward.einsums[rec.index].expr)),
            _words(rec.output, ranks, resolved),
        )
        for rec in bwd_report.einsum_passes
        if bwd_report.passes and rec.pass_number == 0 and not rec.iterates_rank
    )
    gradients = (
        set(backward.input_names) - set(forward.input_names) - {TensorName(t) for t, _ in saved}
    )
    recomputed = _independent_of(backward, gradients)
    bwd_counts = count_ops(backward, bwd_sizes)
    by_out = {r.output: r.flops for r in bwd_counts.per_einsum}
    return TrainingReport(
        forward=forward.name,
        backward=backward.name,
        rank=RankName(rank),
        forward_passes=fwd_report.passes,
        backward_passes=bwd_report.passes,
        crossings=crossings,
        prepass=prepass,
        recomputed=recomputed,
        recomputed_flops=sum(by_out[t] for t in recomputed),
        forward_flops=count_ops(forward, fwd_sizes).flops,
        backward_flops=bwd_counts.flops,
        forward_matmul_flops=matmul_flops(forward, fwd_sizes),
        backward_matmul_flops=matmul_flops(backward, bwd_sizes),
    )


def _words(
    tensor: TensorName, ranks: Mapping[TensorName, tuple[RankName, ...]], sizes: Mapping[str, int]
) -> int:
    return math.prod(sizes[r] for r in ranks[tensor])


def _independent_of(cascade: Cascade, gradients: set[TensorName]) -> tuple[TensorName, ...]:
    """Outputs of the Einsums that read (transitively) none of `gradients`: recomputation."""
    tainted: set[TensorName] = set(gradients)
    result = []
    for e in cascade.einsums:
        if any(a.tensor in tainted for a in reads(e.expr)):
            tainted.add(e.output)
        else:
            result.append(e.output)
    return tuple(result)
