"""FLAT's dataflow search: every spill-free candidate of a design point scored at once.

The space is granularity/p1 x the two stationarities x the 64 on-chip subsets of the six
roles. Without spills a candidate's DRAM and buffer counts are sums of per-tensor terms that
depend only on whether that tensor is on chip, plus the 1D phases' terms, which depend on
which of their inputs and outputs are on chip and (through `_row_spill`) on the footprint.
`search` tabulates those terms per loop-nest configuration and per subset and scores all
candidates with numpy. Where every count is a whole number of words below 2**53 the scores
equal `flat._evaluate`'s bit for bit; elsewhere (fractional row spills) the near ties are
re-scored with `_evaluate`. Either way it picks exactly what the candidate-by-candidate
`_search_reference` picks, then builds the winner's counts with `_evaluate`.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt

from archs.model import SpatialArch
from einsum_ir.ir import TensorName
from mappers import cost
from mappers.flat import (
    ROLES,
    STATIONARITIES,
    FlatOptions,
    _Contraction,
    _Eval,
    _evaluate,
    _Nest,
    _Problem,
)
from mappers.flat import _nest as _loop_nest
from mappers.spatial import QUERY_RANK, CascadeView, MappingError
from mappers.unfused import stream_buffer_words

Floats = npt.NDArray[np.float64]
Config = tuple[str, int, str, str]  # granularity, p1, QK stationarity, AV stationarity
SUBSETS = tuple(
    tuple(r for r, on in zip(ROLES, bits, strict=True) if on)
    for bits in itertools.product((False, True), repeat=len(ROLES))
)
ROLE_MASKS = np.array([[r in subset for r in ROLES] for subset in SUBSETS])  # 64 x 6
# Relative slack on the vectorized scores: their sums differ from `_evaluate`'s only in the
# order of adding non-negative terms (relative error ~1e-15), so anything within this of the
# best is re-scored exactly.
NEAR = 1e-9


def _p1_choices(cv: CascadeView, arch: SpatialArch) -> list[tuple[str, int]]:
    p = cv.sizes[QUERY_RANK]
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


def _varying_energy_pj(pb: _Problem, ev: _Eval) -> float:
    """DRAM plus buffer energy of a candidate (compute energy does not depend on it)."""
    arch = pb.arch
    wb = arch.word_bytes
    dram = cost.dram_energy(arch, sum(ev.reads.values()) * wb, sum(ev.writes.values()) * wb)
    buffer = cost.buffer_energy(arch, arch.buffer, ev.buffer_reads, ev.buffer_writes)
    return sum(e.energy_pj for e in (*dram, *buffer))


def _options(config: Config, onchip: tuple[str, ...], artifact_compat: bool) -> FlatOptions:
    gran, p1, qs, avs = config
    return FlatOptions(onchip, qs, avs, gran, p1 if gran == "row" else 0, 0.0, artifact_compat)


def _no_fit(pb: _Problem, budgeted: bool) -> MappingError:
    buffer = pb.arch.buffer
    return MappingError(
        f"FLAT search: no dataflow fits the {buffer.capacity_bytes} B {buffer.name}"
        + (" (within the search budget)" if budgeted else "")
    )


# ----------------------------------------------------------------------------- reference


def _search_reference(
    pb: _Problem, fixed: dict[str, object], budget: int, artifact_compat: bool
) -> tuple[FlatOptions, _Eval, dict[str, float]]:
    """The search one candidate at a time (`search`'s specification; kept for its tests).

    Keeps the dataflows without spills that agree with `fixed` and whose on-chip tiles fit,
    and picks min latency, then min energy that varies (DRAM and buffer), the first in
    enumeration order on ties. With a `budget`, only a seeded random sample of that many
    candidates is evaluated.
    """
    cv, arch = pb.cv, pb.arch
    capacity_words = arch.buffer.capacity_bytes / arch.word_bytes
    space = [
        (gran, p1, qs, avs, onchip)
        for gran, p1 in _p1_choices(cv, arch)
        for qs, avs in itertools.product(STATIONARITIES, repeat=2)
        for onchip in SUBSETS
        if _agrees(fixed, gran, p1, qs, avs, onchip)
    ]
    sampled = space
    if budget and len(space) > budget:
        chosen = set(random.Random(0).sample(range(len(space)), budget))
        sampled = [c for k, c in enumerate(space) if k in chosen]
    best: tuple[float, float, FlatOptions, _Eval] | None = None
    feasible = 0
    nests_of: dict[tuple[int, str, str], tuple[tuple[_Nest, _Nest], dict[str, float]]] = {}
    for gran, p1, qs, avs, onchip in sampled:
        if (p1, qs, avs) not in nests_of:
            nests = (
                _loop_nest(cv, arch, pb.pair[0], qs, p1),
                _loop_nest(cv, arch, pb.pair[1], avs, p1),
            )
            tiles: dict[str, float] = {}
            for nest in nests:
                for name, t in nest.tensors:
                    tiles[name] = max(tiles.get(name, 0.0), t.footprint)
            nests_of[(p1, qs, avs)] = (nests, tiles)
        nests, tiles = nests_of[(p1, qs, avs)]
        if sum(tiles.get(pb.roles[r], 0.0) for r in onchip) > capacity_words:
            continue
        opts = _options((gran, p1, qs, avs), onchip, artifact_compat)
        ev = _evaluate(pb, opts, nests)
        if ev.footprint_words > capacity_words:
            continue
        feasible += 1
        if best is not None and ev.latency_cycles > best[0]:
            continue
        key = (ev.latency_cycles, _varying_energy_pj(pb, ev))
        if best is None or key < best[:2]:
            best = (*key, opts, ev)
    if best is None:
        raise _no_fit(pb, len(sampled) < len(space))
    stats = {
        "search_space": float(len(space)),
        "search_candidates": float(len(sampled)),
        "search_feasible": float(feasible),
    }
    return best[2], best[3], stats


# ----------------------------------------------------------------------------- vectorized


@dataclass(frozen=True, slots=True)
class _Counts:
    """Per-candidate counts (words, cycles) in the order of the sampled candidates."""

    dram_read_words: Floats
    dram_write_words: Floats
    buffer_read_words: Floats
    buffer_write_words: Floats
    footprint_words: Floats  # `_evaluate`'s footprint (each on-chip tensor once)
    role_tile_words: Floats  # the pre-filter's sum over on-chip roles
    compute_cycles: Floats  # max(2D, 1D), exactly as `_evaluate` forms it
    # Every term a whole number of words and every sum below 2**53: the sums are then exact
    # in any order, so the scores equal `_evaluate`'s bit for bit.
    is_exact: npt.NDArray[np.bool_]


def _tensor_masks(pb: _Problem) -> tuple[list[TensorName], npt.NDArray[np.bool_]]:
    """Distinct role tensors, and which of them each subset keeps on chip (64 x T)."""
    names = list(dict.fromkeys(pb.roles[r] for r in ROLES))
    tensor_of = np.array([names.index(pb.roles[r]) for r in ROLES])
    return names, (ROLE_MASKS[:, :, None] & (tensor_of[:, None] == np.arange(len(names)))).any(1)


def _nest_terms(
    pb: _Problem, con: _Contraction, nest: _Nest, names: list[TensorName]
) -> tuple[list[list[float]], list[list[float]], list[float]]:
    """Per-tensor counts of one contraction's nest on chip and off chip, and its tiles.

    Returns (on, off, tile): T x 4 words (DRAM read, DRAM write, buffer read, buffer write)
    and T tile words, term for term as `_evaluate` adds them when nothing spills.
    """
    on = [[0.0] * 4 for _ in names]
    off = [[0.0] * 4 for _ in names]
    tile = [0.0 for _ in names]
    for name, t in nest.tensors:
        k = names.index(name)
        tile[k] = t.footprint
        if name == con.output:
            partial = max(0.0, t.pe_words - t.final)
            off[k] = [partial, t.pe_words, 0.0, 0.0]
            on[k] = [0.0, t.final if name in pb.cv.cascade.outputs else 0.0, partial, t.pe_words]
        elif name in pb.input_set:
            off[k] = [t.pe_words, 0.0, 0.0, 0.0]
            on[k] = [t.fill, 0.0, t.pe_words, t.fill]
        else:
            off[k] = [t.pe_words, 0.0, 0.0, 0.0]
            on[k] = [0.0, 0.0, t.pe_words, 0.0]
    return on, off, tile


def _stream_terms(pb: _Problem, names: list[TensorName], masks: npt.NDArray[np.bool_]) -> Floats:
    """The 1D phases' words per on-chip subset (S x 6, for the S x T tensor `masks`).

    Columns: DRAM read, DRAM write, buffer read, buffer write, and the row reads and writes
    that spill by `_row_spill` (those of phases with no input on chip).
    """
    cv = pb.cv
    terms = np.zeros((len(masks), 6))
    for phase, ins, outs in pb.stream_phases:
        cols = [k for k, n in enumerate(names) if n in ins or n in outs]
        codes = masks[:, cols] @ (1 << np.arange(len(cols)))
        table = np.zeros((1 << len(cols), 6))
        for code in np.unique(codes):
            onchip = {names[k] for j, k in enumerate(cols) if code >> j & 1}
            from_dram = frozenset(n for n in ins if n not in onchip)
            kept = frozenset(n for n in outs if n in onchip)
            key = (phase, from_dram, kept)
            if key not in pb.memo:
                pb.memo[key] = stream_buffer_words(cv, phase, from_dram, kept)
            sb = pb.memo[key]
            spills = len(from_dram) == len(ins)
            table[code] = (
                sum(cv.words(n) for n in from_dram),
                sum(cv.words(n) for n in outs if n not in kept),
                sb.reads,
                sb.writes,
                sb.row_reads if spills else 0.0,
                sb.row_writes if spills else 0.0,
            )
        terms += table[codes]
    return terms


def _space(pb: _Problem, fixed: dict[str, object]) -> tuple[list[Config], npt.NDArray[np.intp]]:
    """Configurations and subsets that agree with `fixed`.

    The space is their product in `_search_reference`'s order (configuration-major).
    """
    configs = [
        (gran, p1, qs, avs)
        for gran, p1 in _p1_choices(pb.cv, pb.arch)
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


def _counts(
    pb: _Problem,
    nests: list[tuple[_Nest, _Nest]],
    subsets: npt.NDArray[np.intp],
    artifact_compat: bool,
) -> _Counts:
    """`_evaluate`'s counts for every candidate, up to the order terms are added in.

    The candidates form a grid, configuration-major: loop nests `nests[g]` x on-chip roles
    `SUBSETS[subsets[s]]`. Every term is non-negative and selected by a 0/1 weight, so the
    sums are exact where `is_exact` says so and within a few roundings elsewhere.
    """
    cv, arch = pb.cv, pb.arch
    names, masks = _tensor_masks(pb)
    index: dict[int, int] = {}  # the same nest object serves many configurations
    terms: list[tuple[list[list[float]], list[list[float]], list[float]]] = []
    for pair in nests:
        for k, nest in enumerate(pair):
            if id(nest) not in index:
                index[id(nest)] = len(terms)
                terms.append(_nest_terms(pb, pb.pair[k], nest, names))
    first, second = (np.array([index[id(pair[k])] for pair in nests]) for k in (0, 1))
    on, off, tiles = (np.array([t[j] for t in terms]) for j in range(3))
    # a tensor in both nests (none of the built-ins) adds up, as in `_evaluate`; its tile is
    # the larger of the two
    both = np.concatenate((on[first] + on[second], off[first] + off[second]), axis=1)
    tile = np.maximum(tiles[first], tiles[second])  # G x T
    mask = masks[subsets].astype(np.float64)  # S x T
    words = np.moveaxis(np.concatenate((mask, 1.0 - mask), axis=1) @ both, 2, 0)  # 4 x G x S
    stream = _stream_terms(pb, names, masks[subsets]).T  # 6 x S
    footprint = tile @ mask.T
    roles = tile[:, [names.index(pb.roles[r]) for r in ROLES]]
    role_tile = roles @ ROLE_MASKS[subsets].T.astype(np.float64)
    # `_row_spill`, elementwise
    row_bytes = cv.per_query_words(pb.roles["QK"], keep_key=True) * arch.word_bytes
    free = arch.buffer.capacity_bytes - footprint * arch.word_bytes
    row_spill = 1.0 - np.minimum(1.0, np.maximum(0.0, free) / row_bytes)
    reads = words[0] + stream[0] + stream[4] * row_spill
    writes = words[1] + stream[1] + stream[5] * row_spill
    buffer_reads = words[2] + stream[2]
    if artifact_compat:
        buffer_reads = buffer_reads + mask[:, names.index(pb.roles["AV"])] * cv.words(
            pb.roles["QK"]
        )
    buffer_writes = words[3] + stream[3]
    whole = (row_spill == 0.0) | (row_spill == 1.0) | ((stream[4] == 0) & (stream[5] == 0))
    below = np.maximum((reads + writes) * arch.word_bytes, np.maximum(buffer_reads, buffer_writes))
    cycles_1d = 0.0
    for phase, _, _ in pb.stream_phases:
        cycles_1d += sum(pb.binding.cycles[i] for i in phase)
    compute = np.array([max(a.cycles + b.cycles, cycles_1d) for a, b in nests])[:, None]
    return _Counts(
        reads.ravel(),
        writes.ravel(),
        buffer_reads.ravel(),
        buffer_writes.ravel(),
        footprint.ravel(),
        role_tile.ravel(),
        np.broadcast_to(compute, reads.shape).ravel(),
        (whole & (below < 2.0**53)).ravel(),
    )


def _scores(pb: _Problem, counts: _Counts) -> tuple[Floats, Floats]:
    """Memory cycles and varying energy (pJ) of every candidate.

    The operations of `cost.memory_cycles`, `cost.dram_energy`, `cost.buffer_energy` and
    `_varying_energy_pj`'s sum, in their order.
    """
    arch = pb.arch
    wb = arch.word_bytes
    reads, writes = counts.dram_read_words, counts.dram_write_words
    memory = (reads + writes) * wb / arch.dram.bandwidth_bytes_per_s * arch.clock_hz
    per_access = arch.dram.energy_pj_per_access
    level = arch.buffer
    words_per_row = level.row_bytes / wb
    return memory, (
        reads * wb / arch.dram.access_bytes * per_access
        + writes * wb / arch.dram.access_bytes * per_access
        + counts.buffer_read_words / words_per_row * level.read_energy_pj_per_row
        + counts.buffer_write_words / words_per_row * level.write_energy_pj_per_row
    )


def search(
    pb: _Problem, fixed: dict[str, object], budget: int, artifact_compat: bool
) -> tuple[FlatOptions, _Eval, dict[str, float]]:
    """Search the dataflows without spills that agree with the `fixed` fields.

    Same choice and statistics as `_search_reference` (see it for the rule), with every
    candidate scored at once; see `_pick` for how ties are broken exactly as it breaks them.
    """
    cv, arch = pb.cv, pb.arch
    configs, subsets = _space(pb, fixed)
    n_space = len(configs) * len(subsets)
    picked = np.arange(n_space)
    if budget and n_space > budget:
        picked = np.array(sorted(random.Random(0).sample(range(n_space), budget)))
    if not n_space:
        raise _no_fit(pb, False)
    used, config_of = np.unique(picked // len(subsets), return_inverse=True)
    subset_of = subsets[picked % len(subsets)]
    nest_of: dict[tuple[int, str, int], _Nest] = {}

    def nest(k: int, stationarity: str, p1: int) -> _Nest:
        if (k, stationarity, p1) not in nest_of:
            nest_of[(k, stationarity, p1)] = _loop_nest(cv, arch, pb.pair[k], stationarity, p1)
        return nest_of[(k, stationarity, p1)]

    nests = [
        (nest(0, configs[g][2], configs[g][1]), nest(1, configs[g][3], configs[g][1])) for g in used
    ]
    grid = _counts(pb, nests, subsets, artifact_compat)
    # candidate k is grid cell (config_of[k], picked[k] % len(subsets))
    cells = config_of * len(subsets) + picked % len(subsets)
    counts = _Counts(*(getattr(grid, f.name)[cells] for f in fields(_Counts)))
    capacity_words = arch.buffer.capacity_bytes / arch.word_bytes
    fits = (counts.role_tile_words <= capacity_words) & (counts.footprint_words <= capacity_words)
    stats = {
        "search_space": float(n_space),
        "search_candidates": float(len(picked)),
        "search_feasible": float(np.count_nonzero(fits)),
    }
    if not fits.any():
        raise _no_fit(pb, len(picked) < n_space)

    def evaluate(k: int) -> tuple[FlatOptions, _Eval]:
        g = config_of[k]
        opts = _options(configs[used[g]], SUBSETS[subset_of[k]], artifact_compat)
        return opts, _evaluate(pb, opts, nests[g])

    # candidates with the same on-chip subset and the same loop-nest counts get bit-identical
    # `_evaluate` results, so only the first of them can win
    sig: dict[tuple[object, ...], int] = {}
    nest_sig = [
        sig.setdefault((a.tensors, b.tensors, a.cycles + b.cycles), len(sig)) for a, b in nests
    ]
    same = np.array(nest_sig)[config_of] * len(SUBSETS) + subset_of
    return (*_pick(pb, counts, fits, same, evaluate), stats)


def _pick(
    pb: _Problem,
    counts: _Counts,
    fits: npt.NDArray[np.bool_],
    same: npt.NDArray[np.intp],
    evaluate: Callable[[int], tuple[FlatOptions, _Eval]],
) -> tuple[FlatOptions, _Eval]:
    """The first candidate with min latency, then min varying energy, over those that fit.

    Scores of candidates that are not `is_exact` differ from `_evaluate`'s only by the order
    in which non-negative terms are added, so the winner lies within `NEAR` of the best
    latency, then energy: such candidates there are re-scored with `_evaluate`. `same` labels
    candidates whose exact scores are bit-identical (only the first of a label can win).
    """
    memory, energy = _scores(pb, counts)
    latency = np.maximum(memory, counts.compute_cycles)
    feasible = np.flatnonzero(fits)
    near = feasible[latency[feasible] <= latency[feasible].min() * (1 + NEAR)]
    near = np.sort(near[np.unique(same[near], return_index=True)[1]])
    exact: dict[int, tuple[FlatOptions, _Eval, float]] = {}

    def score(k: int) -> tuple[FlatOptions, _Eval, float]:
        if k not in exact:
            opts, ev = evaluate(k)
            exact[k] = (opts, ev, _varying_energy_pj(pb, ev))
        return exact[k]

    # memory below compute beyond the slack: the latency is the (exact) compute time
    settled = counts.is_exact | (memory < counts.compute_cycles * (1 - NEAR))
    near_latency = latency[near]
    for j in np.flatnonzero(~settled[near]):
        near_latency[j] = score(int(near[j]))[1].latency_cycles
    tied = near[near_latency == near_latency.min()]
    finalists = tied[energy[tied] <= energy[tied].min() * (1 + NEAR)]
    final_energy = energy[finalists]
    for j in np.flatnonzero(~counts.is_exact[finalists]):
        final_energy[j] = score(int(finalists[j]))[2]
    winner = int(finalists[np.argmin(final_energy)])  # the first of equals, as in the reference
    opts, ev, _ = score(winner)
    return opts, ev
