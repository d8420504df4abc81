"""Serving cascades on a query-block mapping (FuseMax): MLA projections, split-K, decode.

A FuseMax-style mapping holds a block of packed query rows on chip (P0 x P1 of them) and
streams the keys past it, block after block (P2 blocks). What that means for:

- **MLA** (`AttentionProblem.latent_inputs`): the latent has no head rank, so every head
  is a query row of it (the heads are packed into the rows: MQA with a big head dim) and
  the latent streams once per query block, not once per head. Rows are packed head-major
  (the P positions of one head are adjacent), so a block holds the rows of
  ceil(rows / P) heads, or a 1 / ceil(P / rows) share of one head.
  - Per-key projections (MLA naive's K = WUK.CKV, V = WUV.CKV) run inside the key loop for
    the heads of the block: a head whose rows span several blocks has its keys
    up-projected once per block (the work is multiplied by that many blocks), and the
    block's share of their weights must stay on chip for the whole key loop; when it does
    not fit next to the block's state it is re-read from DRAM for every key tile.
  - Query-side and output projections (absorbed: QC = Q.WUK, AV = OC.WUV) run once per
    row outside the key loop; their weights stream once per block that needs them.
- **split-K** (`AttentionProblem.split_ranks`): each split's final state (running max,
  denominator, numerator) is kept on chip until the merge over the splits, so the
  recurrence state per query row is held once per split; the merge runs on the 1D array
  after the pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from attnsim.einsum_ir.analysis.serving import ProjectionSite
from attnsim.einsum_ir.ir import TensorName
from attnsim.mappers.result import Traffic
from attnsim.mappers.spatial.view import CascadeView


def merge_einsums(cv: CascadeView) -> frozenset[int]:
    """Indices of the Einsums that merge per-split partial states (split-K's M2 merge)."""
    return frozenset(r.index for r in cv.passes.einsum_passes if r.is_merge)


def split_copies(cv: CascadeView, tensor: TensorName) -> int:
    """How many per-split copies of `tensor` are live at once (1 without splits)."""
    if cv.problem is None or not cv.problem.split_ranks:
        return 1
    ranks = cv.ranks.get(tensor, ())
    return math.prod(cv.sizes[r] for r in cv.problem.split_ranks if r in ranks)


@dataclass(frozen=True, slots=True)
class LatentPlan:
    """How the per-key projections of an MLA cascade meet one query tiling.

    Attributes:
        recompute: Times each head's keys are up-projected (blocks a head's rows span).
        key_einsums: Indices of the per-key projection Einsums (their work x recompute).
        weights: Per-key projection weights and their DRAM words for the whole mapping.
        resident_words: Buffer words the block's weight share takes when kept on chip.
        warnings: What was priced.
    """

    recompute: int = 1
    key_einsums: frozenset[int] = frozenset()
    weights: tuple[tuple[TensorName, float], ...] = ()
    resident_words: int = 0
    warnings: tuple[str, ...] = ()


def latent_plan(cv: CascadeView, rows_per_block: int, blocks: int, free_words: int) -> LatentPlan:
    """Price per-key projections for blocks of `rows_per_block` packed rows (see module).

    Args:
        cv: The cascade.
        rows_per_block: Packed query rows a block holds (P0 x P1).
        blocks: Query blocks (P2).
        free_words: Buffer words left next to the block's state and the key tiles.
    """
    ap = cv.problem
    if ap is None:
        return LatentPlan()
    key_site = [p for p in ap.projections if p.site == ProjectionSite.KEY]
    notes: list[str] = []
    if ap.latent_inputs:
        notes.append(
            f"latent {', '.join(ap.latent_inputs)} (over {','.join(ap.latent_dims)}) serves "
            f"as keys and values of all {cv.query_group} query heads packed into the query "
            f"rows: streamed once per query block ({blocks} block(s)), not once per head"
        )
    if not key_site:
        return LatentPlan(warnings=tuple(notes))
    seq_q = cv.sizes[cv.query_rank]
    heads = cv.query_group
    recompute = math.ceil(seq_q / rows_per_block) if rows_per_block < seq_q else 1
    heads_per_block = min(heads, max(1, math.ceil(rows_per_block / seq_q)))
    share = heads_per_block / heads
    weights = list(dict.fromkeys(p.weight for p in key_site))
    block_words = round(sum(cv.words(w) for w in weights) * share)
    resident = block_words <= free_words
    loads = blocks * (1 if resident else cv.key_tiles)
    traffic = tuple((w, cv.words(w) * share * loads) for w in weights)
    index = {e.output: i for i, e in enumerate(cv.cascade.einsums)}
    names = ", ".join(p.output for p in key_site)
    notes.append(
        f"per-key projections {names} (MLA naive's up-projection of the latent) run in the "
        f"key loop for the heads of each query block (rows packed head-major: "
        f"{heads_per_block} head(s) per block); each head's keys are up-projected "
        f"{recompute} time(s)"
    )
    if resident:
        notes.append(
            f"weights {', '.join(weights)}: the block's share ({block_words} words) stays on "
            "chip for the key loop, read once per block"
        )
    else:
        notes.append(
            f"weights {', '.join(weights)}: the block's share ({block_words} words) does not "
            f"fit next to its state ({max(0, free_words)} words free): re-read from DRAM for "
            f"each of the {cv.key_tiles} key tiles"
        )
    return LatentPlan(
        recompute,
        frozenset(index[p.output] for p in key_site),
        traffic,
        block_words if resident else 0,
        tuple(notes),
    )


def with_weights(
    traffic: Sequence[Traffic], plan: LatentPlan, word_bytes: int
) -> tuple[Traffic, ...]:
    """`traffic` with the per-key projection weights' DRAM reads set to the plan's loads."""
    words = dict(plan.weights)
    if not words:
        return tuple(traffic)
    kept = tuple(t for t in traffic if not (t.level == "dram" and t.tensor in words))
    return kept + tuple(Traffic("dram", w, n * word_bytes, 0.0) for w, n in plan.weights)


def split_note(cv: CascadeView, merge_ops: float) -> tuple[str, ...]:
    """What a split-K cascade was priced as (none without splits)."""
    ap = cv.problem
    if ap is None or not ap.split_ranks:
        return ()
    held = [t for t in cv.recur if split_copies(cv, t) > 1]
    return (
        f"split-K: {ap.splits} split(s) over {','.join(ap.split_ranks)}; each split's final "
        f"state ({', '.join(held)}) is held on chip until the merge ({ap.splits}x the "
        f"running state per query row, in the occupancy); the merge over the splits runs "
        f"after the key loop ({merge_ops:,.0f} operations); K and V are streamed once",
    )


def unfused_serving_notes(cv: CascadeView) -> tuple[str, ...]:
    """What the unfused baseline does with latent, projection and split-K structure."""
    ap = cv.problem
    if ap is None:
        return ()
    notes = []
    einsums = cv.cascade.einsums
    for latent in ap.latent_inputs:
        readers = [str(e.output) for e in einsums if any(a.tensor == latent for a in e.inputs)]
        notes.append(
            f"latent {latent}: an operand of {len(readers)} phase(s) ({', '.join(readers)}), "
            "each reading it from DRAM in full"
        )
    per_key = [str(p.output) for p in ap.projections if p.site == ProjectionSite.KEY]
    if per_key:
        notes.append(
            f"per-key projections ({', '.join(per_key)}) are phases of their own: per-head "
            "K/V for every key written to DRAM and read back by the attention phases"
        )
    if ap.split_ranks:
        notes.append(
            f"split-K ({ap.splits} split(s) over {','.join(ap.split_ranks)}): the per-split "
            "partial states round-trip DRAM like every phase's output; the merge is its own "
            f"phase(s) ({len(merge_einsums(cv))} Einsum(s))"
        )
    return tuple(notes)
