"""FLAT's dataflow search: every spill-free candidate of a design point scored at once.

The space is granularity/p1 x the two stationarities x the 64 on-chip subsets of the six
roles. Candidates are priced by FLAT's one cost model, `mappers.spatial.flat_cost.evaluate`, over
the grid of loop-nest configurations x on-chip subsets; since its numbers do not depend on
the grid a dataflow sits in, the search ranks exactly what `mappers.spatial.flat` would report for
each candidate, and the winner's counts are its cell of that grid. `_search_reference`
states the rule one candidate at a time (kept for its tests).
"""

from __future__ import annotations

import itertools
import random

import numpy as np
import numpy.typing as npt

from attnsim.archs.model import SpatialArch
from attnsim.mappers.spatial.flat import ROLES, STATIONARITIES, FlatOptions
from attnsim.mappers.spatial.flat_cost import (
    Breakdown,
    Counts,
    FlatProblem,
    Nest,
    breakdown,
    evaluate,
    loop_nest,
)
from attnsim.mappers.spatial.flat_problem import Problem as _Problem
from attnsim.mappers.spatial.view import MappingError

Config = tuple[str, int, str, str]  # granularity, p1, QK stationarity, AV stationarity
SUBSETS = tuple(
    tuple(r for r, on in zip(ROLES, bits, strict=True) if on)
    for bits in itertools.product((False, True), repeat=len(ROLES))
)
ROLE_MASKS = np.array([[r in subset for r in ROLES] for subset in SUBSETS])  # 64 x 6


def _p1_choices(pb: _Problem, arch: SpatialArch) -> list[tuple[str, int]]:
    p = pb.query_rows
    rows = arch.array_2d.rows
    choices = [("head", p)]
    p1 = rows
    while p1 < p:
        if p % p1 == 0:
            choices.append(("row", p1))
        p1 *= 2
    return choices


def _agrees_config(fixed: dict[str, object], gran: str, p1: int, qs: str, avs: str) -> bool:
    values = {"granularity": gran, "qk_stationarity": qs, "av_stationarity": avs}
    if any(key in fixed and fixed[key] != value for key, value in values.items()):
        return False
    return not ("p1" in fixed and fixed["p1"] and gran == "row" and fixed["p1"] != p1)


def _agrees(
    fixed: dict[str, object], gran: str, p1: int, qs: str, avs: str, onchip: tuple[str, ...]
) -> bool:
    """Whether a candidate matches the dataflow fields the user fixed."""
    if "onchip" in fixed and set(fixed["onchip"]) != set(onchip):  # type: ignore[call-overload]
        return False
    return _agrees_config(fixed, gran, p1, qs, avs)


def _options(config: Config, onchip: tuple[str, ...], artifact_compat: bool) -> FlatOptions:
    gran, p1, qs, avs = config
    return FlatOptions(onchip, qs, avs, gran, p1 if gran == "row" else 0, 0.0, artifact_compat)


def _no_fit(pb: _Problem, budgeted: bool) -> MappingError:
    buffer = pb.arch.buffer
    return MappingError(
        f"FLAT search: no dataflow fits the {buffer.capacity_bytes} B {buffer.name}"
        + (" (within the search budget)" if budgeted else "")
    )


def _subset_masks(pb: _Problem, subsets: npt.NDArray[np.intp]) -> npt.NDArray[np.bool_]:
    """S x T: which of the problem's operands each on-chip role subset keeps on chip."""
    roles = pb.role_tensors
    of = np.array([[roles[r] == t for t in pb.flat.operands] for r in ROLES])  # 6 x T
    return (ROLE_MASKS[subsets][:, :, None] & of[None]).any(axis=1)


def _role_tiles(
    pb: _Problem, nests: list[tuple[Nest, Nest]], subsets: npt.NDArray[np.intp]
) -> npt.NDArray[np.float64]:
    """G x S: the larger of each on-chip role's tiles in the two nests, summed over roles."""
    foot: dict[int, dict[str, float]] = {}  # per nest: tensor -> tile words (nests repeat)
    for pair in nests:
        for n in pair:
            if id(n) not in foot:
                tiles_of: dict[str, float] = {}
                for m, t in n.tensors:
                    tiles_of[m] = max(tiles_of.get(m, 0.0), t.footprint)
                foot[id(n)] = tiles_of
    names = [pb.role_tensors[role] for role in ROLES]
    tiles = np.array(
        [[max(foot[id(a)].get(m, 0.0), foot[id(b)].get(m, 0.0)) for m in names] for a, b in nests]
    )  # G x roles
    out = np.zeros((len(nests), len(subsets)))
    masks = ROLE_MASKS[subsets]
    for k in range(len(ROLES)):
        out += np.where(masks[None, :, k], tiles[:, k, None], 0.0)
    return out


def _evaluate_grid(
    pb: _Problem,
    flat: FlatProblem,
    nests: list[tuple[Nest, Nest]],
    subsets: npt.NDArray[np.intp],
    artifact_compat: bool,
) -> tuple[Counts, npt.NDArray[np.bool_]]:
    """The cost model over nests x subsets, and which cells fit the buffer."""
    counts = evaluate(flat, pb.arch, nests, _subset_masks(pb, subsets), 0.0, artifact_compat)
    capacity_words = pb.arch.buffer.capacity_bytes / pb.arch.word_bytes
    fits = (_role_tiles(pb, nests, subsets) <= capacity_words) & (
        counts.footprint_words <= capacity_words
    )
    return counts, fits


# ----------------------------------------------------------------------------- reference


def _search_reference(
    pb: _Problem, fixed: dict[str, object], budget: int, artifact_compat: bool
) -> tuple[FlatOptions, Breakdown, dict[str, float]]:
    """The search one candidate at a time (`search`'s specification; kept for its tests).

    Keeps the dataflows without spills that agree with `fixed` and whose on-chip tiles fit,
    and picks min latency, then min energy that varies (DRAM and buffer), the first in
    enumeration order on ties. With a `budget`, only a seeded random sample of that many
    candidates is evaluated.
    """
    arch = pb.arch
    space = [
        (gran, p1, qs, avs, onchip)
        for gran, p1 in _p1_choices(pb, arch)
        for qs, avs in itertools.product(STATIONARITIES, repeat=2)
        for onchip in SUBSETS
        if _agrees(fixed, gran, p1, qs, avs, onchip)
    ]
    sampled = space
    if budget and len(space) > budget:
        chosen = set(random.Random(0).sample(range(len(space)), budget))
        sampled = [c for k, c in enumerate(space) if k in chosen]
    # priced one loop-nest configuration (a row of on-chip subsets) at a time; the cost model
    # gives a dataflow the same numbers in any grid (tested)
    rows: dict[tuple[int, str, str], tuple[Counts, npt.NDArray[np.bool_]]] = {}
    all_subsets = np.arange(len(SUBSETS), dtype=np.intp)
    best: tuple[float, float, FlatOptions, Breakdown] | None = None
    feasible = 0
    for gran, p1, qs, avs, onchip in sampled:
        if (p1, qs, avs) not in rows:
            flat = pb.at(p1)
            nests = [
                (
                    loop_nest(flat, arch, flat.scores, qs, p1),
                    loop_nest(flat, arch, flat.values, avs, p1),
                )
            ]
            rows[(p1, qs, avs)] = _evaluate_grid(pb, flat, nests, all_subsets, artifact_compat)
        counts, fits = rows[(p1, qs, avs)]
        s = SUBSETS.index(onchip)
        if not fits[0, s]:
            continue
        feasible += 1
        key = (float(counts.latency_cycles[0, s]), float(counts.varying_energy_pj[0, s]))
        if best is None or key < best[:2]:
            opts = _options((gran, p1, qs, avs), onchip, artifact_compat)
            best = (*key, opts, breakdown(counts, 0, s))
    if best is None:
        raise _no_fit(pb, len(sampled) < len(space))
    stats = {
        "search_space": float(len(space)),
        "search_candidates": float(len(sampled)),
        "search_feasible": float(feasible),
    }
    return best[2], best[3], stats


# ----------------------------------------------------------------------------- vectorized


def _space(pb: _Problem, fixed: dict[str, object]) -> tuple[list[Config], npt.NDArray[np.intp]]:
    """Configurations and subsets that agree with `fixed`.

    The space is their product in `_search_reference`'s order (configuration-major).
    """
    configs = [
        (gran, p1, qs, avs)
        for gran, p1 in _p1_choices(pb, pb.arch)
        for qs, avs in itertools.product(STATIONARITIES, repeat=2)
        if _agrees_config(fixed, gran, p1, qs, avs)
    ]
    onchip = fixed.get("onchip")
    subsets = [
        s
        for s, subset in enumerate(SUBSETS)
        if onchip is None or set(onchip) == set(subset)  # type: ignore[call-overload]
    ]
    return configs, np.array(subsets, dtype=np.intp)


def search(
    pb: _Problem, fixed: dict[str, object], budget: int, artifact_compat: bool
) -> tuple[FlatOptions, Breakdown, dict[str, float]]:
    """Search the dataflows without spills that agree with the `fixed` fields.

    Same choice and statistics as `_search_reference` (see it for the rule), with every
    candidate priced at once by the same cost model.
    """
    arch = pb.arch
    configs, subsets = _space(pb, fixed)
    n_space = len(configs) * len(subsets)
    picked = np.arange(n_space)
    if budget and n_space > budget:
        picked = np.array(sorted(random.Random(0).sample(range(n_space), budget)))
    if not n_space:
        raise _no_fit(pb, False)
    used, config_of = np.unique(picked // len(subsets), return_inverse=True)
    column_of = picked % len(subsets)
    nest_of: dict[tuple[int, str, int], Nest] = {}

    def nest(k: int, stationarity: str, p1: int) -> Nest:
        if (k, stationarity, p1) not in nest_of:
            flat = pb.at(p1)
            con = (flat.scores, flat.values)[k]
            nest_of[(k, stationarity, p1)] = loop_nest(flat, arch, con, stationarity, p1)
        return nest_of[(k, stationarity, p1)]

    # one grid per cost-model input: a single one unmasked, one per row tile with a mask
    by_problem: dict[int, list[int]] = {}
    for g, config in enumerate(used):
        by_problem.setdefault(id(pb.at(configs[config][1])), []).append(g)
    grids: list[tuple[Counts, npt.NDArray[np.bool_]]] = []
    cell_of = [(0, 0)] * len(used)  # config -> (grid, row in it)
    for members in by_problem.values():
        nests = []
        for row, g in enumerate(members):
            _, p1, qs, avs = configs[used[g]]
            nests.append((nest(0, qs, p1), nest(1, avs, p1)))
            cell_of[g] = (len(grids), row)
        flat = pb.at(configs[used[members[0]]][1])
        grids.append(_evaluate_grid(pb, flat, nests, subsets, artifact_compat))
    cells = np.array(cell_of, dtype=np.intp).reshape(-1, 2)[config_of]
    grid_of, row_of = cells[:, 0], cells[:, 1]

    def pick(values: list[npt.NDArray[np.generic]]) -> npt.NDArray[np.generic]:
        out = np.empty(len(picked), dtype=values[0].dtype)
        for k, v in enumerate(values):
            at = grid_of == k
            out[at] = v[row_of[at], column_of[at]]
        return out

    fits = pick([f for _, f in grids])
    stats = {
        "search_space": float(n_space),
        "search_candidates": float(len(picked)),
        "search_feasible": float(np.count_nonzero(fits)),
    }
    if not fits.any():
        raise _no_fit(pb, len(picked) < n_space)
    latency = pick([c.latency_cycles for c, _ in grids])
    energy = pick([c.varying_energy_pj for c, _ in grids])
    feasible = np.flatnonzero(fits)
    # min latency, then min energy, then the first in enumeration order (lexsort is stable)
    k = int(feasible[np.lexsort((energy[feasible], latency[feasible]))[0]])
    counts = grids[int(grid_of[k])][0]
    opts = _options(configs[used[config_of[k]]], SUBSETS[subsets[column_of[k]]], artifact_compat)
    return opts, breakdown(counts, int(row_of[k]), int(column_of[k])), stats
