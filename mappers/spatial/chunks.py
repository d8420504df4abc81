"""Chunk-size search for cascades that cut their keys into chunks themselves.

Chunked linear attention (Lightning Attention-2, GLA, causal linear attention's chunked
form) partitions the key rank M -> M1 x M0 and reads the position inside the chunk in its
conditions: M0 is part of what the cascade computes, not a tiling a mapper may choose. The
chunk trades intra-chunk quadratic work (each query against the keys of its own chunk,
P x M0 pairs) against inter-chunk state work and traffic (one E x F state update and read
per chunk, M / M0 of them). `search_chunk` maps the cascade at every power-of-two M0 from
16 that divides M (up to MAX_CHUNK), keeps those whose on-chip data fit the buffer (all
when none fit), and returns the fastest (then the least energy), with every candidate's
latency and energy in the Result's warnings and extras. With `require_fit` (FLAT, whose own
dataflow search refuses a point where nothing fits) a search where no chunk fits is refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from attnsim.archs.model import SpatialArch
from attnsim.einsum_ir.ir import Cascade, Einsum, RankName
from attnsim.mappers.result import Result
from attnsim.mappers.spatial.view import CascadeView, MappingError, reads_key_chunk, view

MIN_CHUNK, MAX_CHUNK = 16, 4096


def tiled_by_the_mask(cv: CascadeView, einsum: Einsum) -> bool:
    """Whether `einsum`'s work follows the mask's (query, key) tiles.

    Only an Einsum over both the keys and the queries does: a chunked cascade's per-key
    work (a chunk's K^T V, the state update, the queries' product with the state laid out
    by key position) is done once per key whatever the tiles, at its own points, never at
    the visited share of the tiles (which would price it once per M1 chunks).
    """
    return cv.iterates_key(einsum) and cv.query_rank.lower() in einsum.iteration_vars


def chunk_rank(cascade: Cascade, sizes: dict[str, int]) -> tuple[RankName, RankName]:
    """(key rank, its chunk rank M0) of a cascade that chunks its keys itself.

    MappingError when the key rank is not partitioned, or its inner part is a tiling the
    cascade's conditions do not read (a mapper's key tile, not a chunk).
    """
    key = view(cascade, sizes, None).roles.key
    parts = cascade.expand(key)
    if not reads_key_chunk(cascade, parts):
        raise MappingError(
            f"chunk_search: cascade {cascade.name} does not cut its key rank {key} into "
            "chunks it computes with (a partition M -> M1 x M0 whose inner part its "
            "conditions read, as attention-lightning-2's); there is no chunk to search"
        )
    return key, parts[-1]


def search_chunk(
    map_at: Callable[[dict[str, int]], Result],
    cascade: Cascade,
    arch: SpatialArch,
    sizes: dict[str, int],
    require_fit: bool = False,
) -> Result:
    """The best Result of `map_at` over the chunk sizes (see the module docstring).

    MappingError when no chunk size maps, or (with `require_fit`) none fits the buffer.
    """
    key, chunk = chunk_rank(cascade, sizes)
    resolved = view(cascade, sizes, None).sizes
    m = resolved[key]
    parts = set(cascade.expand(key)[:-1]) | {chunk}
    base = {k: v for k, v in sizes.items() if k not in parts}
    tried: list[tuple[int, Result]] = []
    refused: list[str] = []
    c = MIN_CHUNK
    while c <= min(m, MAX_CHUNK):
        if m % c == 0:
            try:
                tried.append((c, map_at({**base, chunk: c})))
            except MappingError as exc:
                refused.append(f"{chunk}={c}: {exc}")
        c *= 2
    if not tried:
        reasons = list(dict.fromkeys(r.split(": ", 1)[1] for r in refused))
        why = "; ".join(reasons) or f"{key}={m} has no power-of-two divisor >= {MIN_CHUNK}"
        raise MappingError(f"chunk_search: no chunk size maps ({why})")
    fit = [(c, r) for c, r in tried if not any(o.spilled_bytes for o in r.occupancy)]
    pool = fit or tried
    best_c, best = min(pool, key=lambda cr: (cr[1].latency_cycles, cr[1].energy_pj, cr[0]))
    table = ", ".join(
        f"{c}: {r.latency_s * 1e6:.4g} us {r.energy_pj * 1e-9:.4g} mJ"
        + ("" if (c, r) in fit else " (spills)")
        for c, r in tried
    )
    if require_fit and not fit:
        need = {c: max(o.peak_bytes for o in r.occupancy) for c, r in tried}
        smallest = min(need, key=lambda c: (need[c], c))
        raise MappingError(
            f"chunk_search: no chunk size fits the {arch.buffer.capacity_bytes} B "
            f"{arch.buffer.name}: the least demanding, {chunk}={smallest}, needs "
            f"{need[smallest]:.0f} B on chip ({table})"
        )
    note = (
        f"chunk {chunk} searched over {len(tried)} sizes ({table}): chose {best_c}, the "
        + ("fastest" if len(pool) > 1 else "only")
        + (" that fits the buffer" if fit else " (none fits the buffer)")
        + "; smaller chunks update and read the state (its size independent of the chunk) "
        "more often, larger ones grow the intra-chunk quadratic work"
    )
    extras = dict(best.extras)
    extras |= {"chunk_candidates": float(len(tried)), "chunk_fitting": float(len(fit))}
    extras |= {f"chunk_{c}_latency_us": r.latency_s * 1e6 for c, r in tried}
    options = tuple((k, True if k == "chunk_search" else v) for k, v in best.options)
    return dataclasses.replace(
        best,
        options=options,
        extras=tuple(extras.items()),
        warnings=(*best.warnings, note, *(f"chunk refused: {r}" for r in refused)),
    )
