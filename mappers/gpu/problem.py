"""An attention cascade as the GPU kernels see it: `gpu_problem` reads it or refuses it.

Shared by the GPU tiling mappers (`mappers.gpu.tiling`) and the decode mappers: the rank
roles, mask and score function from `einsum_ir.analysis.structure.attention_problem`, the
K/V grouping, and every refusal of structure the kernels do not run (linear attention, masks
outside the band family, inputs the kernels have no operand for, gathered K/V heads).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from attnsim.archs.gpu import dtype_bytes
from attnsim.einsum_ir.analysis.ops import count_ops
from attnsim.einsum_ir.analysis.serving import odd_inputs
from attnsim.einsum_ir.analysis.structure import (
    AttentionProblem,
    MaskKind,
    Modifier,
    ScoreKind,
    StructureError,
    attention_problem,
    row_terms,
    value_contractions,
)
from attnsim.einsum_ir.ir import Cascade
from attnsim.einsum_ir.sizes import SizeError
from attnsim.kernels.spec import CAUSAL_TOP_LEFT, AttnShape, kernel_window
from attnsim.mappers.gpu.kernels import ScoreCost
from attnsim.mappers.gpu.model import GATHERED, gathered_ranks
from attnsim.mappers.spatial.view import MappingError


@dataclass(frozen=True, slots=True)
class GpuProblem:
    """An attention cascade as the GPU kernels see it.

    Attributes:
        shape: Sizes, mask (bands), K/V grouping and element type.
        score: What the score function adds to the kernels' softmax.
        structure: The problem `attention_problem` read from the cascade.
        warnings: What was modelled without a measured kernel, for the Result.
    """

    shape: AttnShape
    score: ScoreCost
    structure: AttentionProblem
    warnings: tuple[str, ...]


def gpu_problem(cascade: Cascade, sizes: dict[str, int], dtype: str) -> GpuProblem:
    """Read the attention problem of `cascade` at `sizes` (refusing what cannot be priced).

    Batch x heads are the batch-like ranks (heads: the innermost one) times the query-group
    ranks (GQA's query heads per K/V head); K and V are charged per K/V head.
    """
    try:
        ap = attention_problem(cascade, sizes)
    except StructureError as exc:
        raise MappingError(f"the GPU mappers need an attention cascade: {exc}") from None
    except SizeError as exc:
        raise MappingError(str(exc)) from None
    roles = ap.roles
    size = ap.sizes
    refuse = f"{cascade.name}: the GPU mappers cannot price "
    consumed = {a.tensor for e in cascade.einsums for a in e.inputs}
    outputs = list(dict.fromkeys(e.output for e in cascade.einsums if e.output not in consumed))
    if len(outputs) > 1 and not gathered_ranks(cascade, ap):  # (gathered: refused below)
        odd = odd_inputs(cascade, roles)  # a selector's operands, named
        raise MappingError(
            refuse + f"a cascade with {len(outputs)} outputs ({', '.join(outputs)}): the GPU "
            "kernels compute one attention output; a selector, a second attention or a "
            "statistic beside it (DCAL's rollout) would be other kernels"
            + (f"; {odd}" if odd else "")
        )
    if ap.score.kind == ScoreKind.LINEAR:
        raise MappingError(refuse + f"linear attention, no weight function ({ap.score.describe()})")
    if ap.score.kind == ScoreKind.OTHER:
        raise MappingError(
            refuse + f"a score function other than softmax or sigmoid ({ap.score.describe()})"
        )
    if ap.mask.kind == MaskKind.GENERIC:
        raise MappingError(
            refuse + f"the mask {ap.mask.text!r}: it is outside the band family (bounds on p, "
            "m and m - p), so its tiles cannot be classified"
        )
    if ap.mask.key_tile_aligned:
        raise MappingError(
            refuse + f"the mask {ap.mask.text!r} reads the position inside the cascade's key "
            "tile (its own partition of M, e.g. a chunk or a group), which no GPU kernel of "
            "ours follows; the spatial mappers price it tile by tile"
        )
    if odd := odd_inputs(cascade, roles):  # a bias matrix, a second key rank, ...
        raise MappingError(refuse + odd)
    if not roles.score_dims or not roles.value_dims:
        raise MappingError(refuse + "attention without score dims or value dims")
    if gathered := gathered_ranks(cascade, ap):
        raise MappingError(refuse + f"K/V over {','.join(gathered)}: {GATHERED}")
    inputs = dict(cascade.inputs)
    # per-head score parameters (ALiBi's slopes SL[H]): neither query- nor key-indexed; a few
    # floats per head, read once per program with the query tile
    params = [
        t for t in inputs if not {roles.key, roles.query} & _roots(cascade, inputs[t])
    ]  # fmt: skip
    # anything else on neither side (a selector's full keys, centroids) is work outside
    # the attention kernels: refused rather than read as a few values per head
    outside = [t for t in params if not _roots(cascade, inputs[t]) <= set(roles.batch)]
    if outside:
        ranks = sorted({r for t in outside for r in _roots(cascade, inputs[t])} - set(roles.batch))
        raise MappingError(
            refuse + f"inputs {', '.join(outside)} over {', '.join(ranks)}: neither query- nor "
            f"key-side (key rank {roles.key}, query rank {roles.query}) and not per-head "
            "parameters, so work on them "
            "(a selector's scores, a pooling) lies outside the attention kernels"
        )
    if Modifier.SPLIT_VALUES in ap.score.modifiers:
        parts = [cascade.einsums[i].output for i in value_contractions(cascade, roles)]
        raise MappingError(
            refuse + f"weights.V split over {len(parts)} accumulators ({', '.join(parts)}, e.g. "
            "ACT's sink and rest sets): every GPU kernel keeps one output accumulator per row"
        )
    param_words = sum(math.prod(size[r] for r in inputs[t]) for t in params)
    inputs = {t: r for t, r in inputs.items() if t not in params}
    query_side = [t for t in inputs if roles.key not in _roots(cascade, inputs[t])]
    key_side = [t for t in inputs if t not in query_side]
    if len(query_side) != 1 or len(key_side) != 2:
        raise MappingError(
            refuse + f"inputs {', '.join(inputs)}: expected one query-side tensor (Q) and two "
            f"key-side tensors (K, V) over the key rank {roles.key}"
        )
    if ap.sharing_of(query_side[0]):
        shared = ", ".join(ap.sharing_of(query_side[0]))
        raise MappingError(refuse + f"a query tensor shared across {shared}")
    groups = {math.prod(size[r] for r in ap.sharing_of(t)) for t in key_side}
    if len(groups) != 1:
        raise MappingError(refuse + "K and V shared across different ranks")
    kv_group = groups.pop()
    batch_ranks = [size[r] for r in roles.batch]
    heads = (batch_ranks[-1] if batch_ranks else 1) * ap.query_group
    bands = ap.mask.bands
    shape = AttnShape(
        batch=math.prod(batch_ranks[:-1]),
        heads=heads,
        seq_q=ap.seq_q,
        seq_k=ap.seq_k,
        head_dim=math.prod(size[r] for r in roles.score_dims),
        value_dim=math.prod(size[r] for r in roles.value_dims),
        causal=bands == CAUSAL_TOP_LEFT,
        dtype=dtype,
        elem_bytes=dtype_bytes(dtype),
        mask=bands,
        kv_group=kv_group,
    )
    mods = set(ap.score.modifiers)
    score = ScoreCost(
        sigmoid=ap.score.kind == ScoreKind.SIGMOID,
        softcap=Modifier.SOFTCAP in mods,
        position_bias=Modifier.POSITION_BIAS in mods,
        param_bytes=float(param_words * dtype_bytes(dtype)),
    )
    notes = _problem_warnings(ap, shape, score) + _row_term_warning(cascade, ap)
    if params:
        notes += (
            f"score parameters {', '.join(params)} (no query or key rank: a few values per "
            "head): read once from HBM (counted), then from L2 by each program",
        )
    return GpuProblem(shape, score, ap, notes)


def _row_term_warning(cascade: Cascade, ap: AttentionProblem) -> tuple[str, ...]:
    """What a per-row term after the key sum (a sink logit) adds, counted but not priced."""
    rows = row_terms(cascade, ap.roles)
    if not rows:
        return ()
    ops = count_ops(cascade, dict(ap.sizes))
    extra = sum(ops.per_einsum[i].flops for i in rows)
    names = ", ".join(cascade.einsums[i].output for i in rows)
    return (
        f"row terms {names} (per-head parameters joining each row after the key sum, e.g. a "
        "sink logit): no Triton kernel applies them; priced as the plain kernel without them "
        f"({extra:.4g} ops, {100 * extra / max(ops.flops, 1):.2g}% of the cascade's, not counted; "
        "their parameters' reads are)",
    )


def _roots(cascade: Cascade, ranks: tuple[str, ...]) -> set[str]:
    return {cascade.root(r) for r in ranks}  # type: ignore[arg-type]


def _problem_warnings(ap: AttentionProblem, s: AttnShape, score: ScoreCost) -> tuple[str, ...]:
    out = [f"mask: {ap.mask.describe()} (from the cascade's where conditions)"]
    out += [f"structure: {n}" for n in ap.notes]
    if not s.is_dense and not s.causal and kernel_window(s.bands) is not None:
        w, sinks = kernel_window(s.bands)  # type: ignore[misc]
        out.append(
            f"mask {ap.mask.describe()}: the plain 1-pass Triton kernel implements it "
            f"(attention_fwd(causal=True, window={w}, sinks={sinks}): empty tiles skipped, full "
            "tiles unmasked, partial tiles masked); the ping-pong, 2-pass and unfused kernels "
            "do not: for them it is modelled with the same loop bounds. The plain kernel's "
            "masked tiles (diagonal, the window's leading tiles, the sink tiles, which it runs "
            "masked even when whole) take its measured masked step, and each of its up to four "
            "key loops past the first the measured cost of entering it, when the calibration "
            "has them (mode window, kernels.calibrate.microbench_masks; blocks of later waves "
            "take the masked step, fixed time and loop cost measured on later waves of window "
            "blocks, W = BLOCK_M, where it has those); else the softmax step plus the mask's "
            "compares on the CUDA cores and no loop cost. Validated: kernels/"
            "measurements/masks/masks-window-h200-2026-12-04.csv"
        )
    elif not s.is_dense and not s.causal:
        out.append(
            f"mask {ap.mask.describe()}: no Triton kernel implements it yet (only none, "
            "top-left causal and the causal sliding window with sinks); modelled as the kernel "
            "with loop bounds per query tile: empty tiles skipped, full tiles unmasked steps, "
            "partial tiles masked steps"
        )
    if s.kv_group > 1:
        out.append(
            f"GQA ({s.kv_group} query heads per K/V head, {s.kv_heads} K/V heads): both 1-pass "
            "kernels (plain and ping-pong) implement it (attention_fwd with k, v of G heads: "
            "the programs of a group's query heads run together, each K/V head read once from "
            "HBM and then hit in L2); the 2-pass and unfused kernels do not: for them it is "
            "modelled the same way"
        )
    if not score.is_plain:
        out.append(
            f"score function {score.describe()}: the plain 1-pass Triton kernel implements it "
            "(attention_fwd(score=Score(...)): sigmoid via tanh, softcap, ALiBi with the "
            "standard slopes); the ping-pong kernel runs sigmoid alone (no softcap or ALiBi); "
            "the 2-pass and unfused kernels none. The plain "
            "1-pass kernel's step with it is its softmax step plus the difference of the "
            "kernel's measured steps with and without it (calibration modes score-<name>, "
            "kernels.calibrate.microbench_masks; a position bias as the kernel's ALiBi; several "
            "modifiers add their differences; the ping-pong kernel's sigmoid: its own modes "
            "pingpong-score-<name>); without those entries, and for the other "
            "kernels, the step work at the calibrated SFU and fp32 rates (sigmoid: no running "
            "max, row sum or rescale; softcap: tanh per score on the SFU and 2 multiplies; "
            "position bias: one FMA per score). Validated: kernels/measurements/masks/"
            "masks-score-h200-2026-12-06.csv (the plain kernel, H200) and kernels/measurements/"
            "h100/masks-score-h100-2026-12-06-pingpong.csv (both kernels, an H100)"
        )
    return tuple(out)


def attention_shape(cascade: Cascade, sizes: dict[str, int], dtype: str) -> AttnShape:
    """The kernel shape of an attention cascade (`gpu_problem(...).shape`)."""
    return gpu_problem(cascade, sizes, dtype).shape
