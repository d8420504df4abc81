"""What a backward (gradient) cascade asks of FuseMax's fused backward, read from its structure.

A backward cascade has no forward attention problem (its gradients DK, DV run along the key
rank, `BackwardCascadeError`), so `view` names its key and query ranks by letter (M, P).
`read_backward` checks those letters against the structure and reads the rest from it:

- **roles**: key-side outputs (DK, DV) carry the key rank and not the query rank, query-side
  outputs (DQ) the query rank and not the key rank, and the Einsums producing each reduce
  the other rank; batch-like ranks are those every input and output carries (B, H or B, G);
  query-group ranks are those the query side carries and no key-side tensor does (GQA's R:
  its query heads share a key block, and DK, DV sum over them);
- **tensors**: key-side inputs (K, V: held per key block), query-side inputs (Q, DO, LSE,
  O: streamed per key block, or read once by the pre-pass only), the pre-pass's per-query
  outputs (D), the key x query tensors of the loop (S, A, DA, DS: on chip per tile, never
  stored), the key-side accumulators and the query-side accumulators;
- **Einsums**: the pre-pass (no key rank: D = rowsum(DO o O)) and the loop (key x query).

Anything else is refused with a MappingError that names it: a stored key x query input
(the 3-pass backward's A), more than one pass over the keys (its D reduces every key before
DS reads it), an Einsum over the keys but not the queries, an input or output with neither
rank, a partitioned key or query rank, a recurrence.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from attnsim.einsum_ir.analysis.structure import Roles
from attnsim.einsum_ir.ir import Cascade, TensorName
from attnsim.mappers.spatial.view import CascadeView, MappingError

_FIX = (
    "fusemax's backward is FlashAttention-2's dataflow (one pass over key blocks, scores "
    "recomputed from the saved LSE): map a 1-pass backward (attention-1pass-bwd*), or this "
    "cascade with the unfused mapper (Einsum by Einsum)"
)


@dataclass(frozen=True, slots=True)
class BackwardStructure:
    """A backward cascade as FuseMax's fused backward sees it (see the module docstring).

    Attributes:
        cv: The cascade view with the roles read here (batch and query-group ranks filled).
        prepass: Einsums that do not iterate the key rank (run before the key loop).
        loop: Einsums over key x query pairs (one key block held, query tiles streamed).
        key_inputs: Inputs with the key rank only (K, V): read once, held per key block.
        query_inputs: Inputs with the query rank only that the loop reads (Q, DO, LSE).
        prepass_inputs: Inputs only the pre-pass reads (O): read once.
        prepass_outputs: Per-query pre-pass outputs the loop reads (D): written once, then
            streamed per key block like a query-side input.
        pair_tensors: Key x query tensors of the loop (S, A, DA, DS): on chip per tile.
        key_outputs: Key-side gradients (DK, DV): accumulated on chip, written once.
        query_outputs: Query-side gradients (DQ): accumulated through DRAM per key block.
        notes: What was read, for the Result's warnings.
    """

    cv: CascadeView
    prepass: tuple[int, ...]
    loop: tuple[int, ...]
    key_inputs: tuple[TensorName, ...]
    query_inputs: tuple[TensorName, ...]
    prepass_inputs: tuple[TensorName, ...]
    prepass_outputs: tuple[TensorName, ...]
    pair_tensors: tuple[TensorName, ...]
    key_outputs: tuple[TensorName, ...]
    query_outputs: tuple[TensorName, ...]
    notes: tuple[str, ...]

    @property
    def streamed(self) -> tuple[TensorName, ...]:
        """Per-query tensors the loop reads per key block (query inputs, pre-pass outputs)."""
        read = {a.tensor for i in self.loop for a in self.cv.cascade.einsums[i].inputs}
        return (*self.query_inputs, *(t for t in self.prepass_outputs if t in read))


def _side(cv: CascadeView, name: TensorName) -> str:
    key, query = cv.is_key_indexed(name), cv.is_query_indexed(name)
    return {(True, True): "pair", (True, False): "key", (False, True): "query"}.get(
        (key, query), "neither"
    )


def _roles(cv: CascadeView, problems: list[str]) -> Roles:
    """Batch and query-group ranks from the structure; the letters' key and query checked."""
    c = cv.cascade
    key, query = cv.key_rank, cv.query_rank
    ranks = c.tensor_ranks
    for name in c.outputs:
        e = c.einsums[cv.producer[name]]
        side = _side(cv, name)
        other = query if side == "key" else key
        if side in ("key", "query") and other.lower() not in e.implicit_reduced_vars:
            problems.append(
                f"{e}: a {side}-side gradient that does not sum over {other}: the ranks read "
                f"by letter (key {key}, query {query}) do not fit this cascade"
            )
    tensors = [*c.input_names, *c.outputs]
    common = set(ranks[tensors[0]]).intersection(*(ranks[t] for t in tensors[1:]))
    batch = tuple(r for r in c.all_ranks if r in common and r not in (key, query))
    key_side = set().union(*(ranks[t] for t in tensors if _side(cv, t) == "key"))
    query_side = set().union(*(ranks[t] for t in tensors if _side(cv, t) == "query"))
    groups = tuple(
        r for r in c.all_ranks if r in query_side and r not in key_side and r not in (key, query)
    )
    # a query-group rank that a query-side tensor lacks is a head dim (DQ's E when K lacks
    # it), not a group: groups are carried by every query-side tensor (Q, DO, LSE, DQ)
    groups = tuple(
        r for r in groups if all(r in ranks[t] for t in tensors if _side(cv, t) == "query")
    )
    return Roles(key, query, groups, batch, (), ())


def read_backward(cv: CascadeView, mapper: str, fix: str = _FIX) -> BackwardStructure:
    """Read `cv`'s backward cascade (see the module docstring); MappingError listing problems.

    `fix` ends a refusal's message: what the calling mapper's dataflow maps instead.
    """
    c = cv.cascade
    problems: list[str] = []
    _check_ranks(c, cv, problems)
    if problems:
        raise MappingError(f"{mapper}: {c.name}: " + "; ".join(problems))
    roles = _roles(cv, problems)
    cv = dataclasses.replace(cv, roles=roles)
    pair_inputs = [t for t in c.input_names if _side(cv, t) == "pair"]
    if pair_inputs:
        problems.append(
            f"it reads the stored key x query tensor(s) {', '.join(pair_inputs)} (the 3-pass "
            "backward's probabilities) where this dataflow recomputes them"
        )
    if cv.passes.passes > 1:
        crossing = sorted({t for b in cv.passes.boundaries for t in (*b.buffered, *b.carried)})
        problems.append(
            f"it takes {cv.passes.passes} passes over {cv.key_rank} ({', '.join(crossing)} "
            "cross between them: a reduction over every key that a later Einsum reads)"
        )
    problems += [
        f"input {t} carries neither the key rank {cv.key_rank} nor the query rank "
        f"{cv.query_rank} (not modelled)"
        for t in c.input_names
        if _side(cv, t) == "neither"
    ]
    prepass = tuple(i for i, e in enumerate(c.einsums) if not cv.iterates_key(e))
    loop = tuple(i for i, e in enumerate(c.einsums) if cv.iterates_key(e))
    if cv.passes.passes <= 1:  # else the reduction read by a later Einsum is named above
        _check_einsums(cv, prepass, loop, problems)
    if problems:
        raise MappingError(f"{mapper}: {c.name}: " + "; ".join(problems) + f"; {fix}")
    return _structure(cv, prepass, loop)


def _check_ranks(c: Cascade, cv: CascadeView, problems: list[str]) -> None:
    for rank in (cv.key_rank, cv.query_rank):
        if rank not in c.all_ranks:
            problems.append(f"no rank {rank} (a backward cascade's ranks are read by letter)")
        elif len(c.expand(rank)) > 1:
            problems.append(f"rank {rank} is partitioned in the cascade (fusemax tiles it itself)")
    if cv.recur:
        problems.append(f"recurrence over {', '.join(sorted(set(cv.recur.values())))}")


def _check_einsums(
    cv: CascadeView, prepass: tuple[int, ...], loop: tuple[int, ...], problems: list[str]
) -> None:
    c = cv.cascade
    produced_in_loop = {c.einsums[i].output for i in loop}
    query_var = cv.query_rank.lower()
    for i in loop:
        e = c.einsums[i]
        if query_var not in e.iteration_vars:
            problems.append(f"{e}: iterates the keys but not the queries (not modelled)")
        side = _side(cv, e.output)
        readers = cv.who_reads.get(e.output, ())
        if side == "pair" and e.output in c.outputs:
            problems.append(f"{e}: a key x query output (stored per pair; not modelled)")
        elif side in ("key", "query") and (e.output not in c.outputs or readers):
            problems.append(
                f"{e}: its {side}-side result sums over every "
                f"{'query' if side == 'key' else 'key'} yet is read by another Einsum "
                "(a second pass)"
            )
        elif side == "neither":
            problems.append(f"{e}: a result with neither the key nor the query rank")
    for i in prepass:
        e = c.einsums[i]
        if any(a.tensor in produced_in_loop for a in e.inputs):
            problems.append(f"{e}: runs after the key loop (not modelled)")
        elif _side(cv, e.output) != "query" or e.output in c.outputs:
            problems.append(f"{e}: a pre-pass result that is not a per-query intermediate")


def _structure(
    cv: CascadeView, prepass: tuple[int, ...], loop: tuple[int, ...]
) -> BackwardStructure:
    c = cv.cascade

    def read_by(indices: tuple[int, ...]) -> set[TensorName]:
        return {a.tensor for i in indices for a in c.einsums[i].inputs}

    in_loop, in_prepass = read_by(loop), read_by(prepass)
    key_inputs = tuple(t for t in c.input_names if _side(cv, t) == "key")
    query_inputs = tuple(t for t in c.input_names if _side(cv, t) == "query" and t in in_loop)
    prepass_inputs = tuple(
        t for t in c.input_names if t in in_prepass and t not in in_loop and t not in key_inputs
    )
    unread = [t for t in c.input_names if t not in in_loop | in_prepass]
    outs = {i: c.einsums[i].output for i in loop}
    roles = cv.roles
    notes = [
        f"backward read from its structure: key rank {roles.key} (on "
        f"{', '.join(t for t in c.outputs if _side(cv, t) == 'key')}), query rank "
        f"{roles.query} (on {', '.join(t for t in c.outputs if _side(cv, t) == 'query')}), "
        f"batch-like {', '.join(roles.batch) or 'none'}"
        + (
            f"; query group {', '.join(roles.query_groups)} ({cv.query_group} query heads "
            "packed into the query rows share each key block; the key-side gradients sum "
            "over them on chip)"
            if roles.query_groups
            else ""
        )
    ]
    if unread:
        notes.append(f"inputs read by no Einsum (not moved): {', '.join(unread)}")
    return BackwardStructure(
        cv=cv,
        prepass=prepass,
        loop=loop,
        key_inputs=key_inputs,
        query_inputs=query_inputs,
        prepass_inputs=prepass_inputs,
        prepass_outputs=tuple(c.einsums[i].output for i in prepass),
        pair_tensors=tuple(t for t in outs.values() if _side(cv, t) == "pair"),
        key_outputs=tuple(t for t in outs.values() if _side(cv, t) == "key"),
        query_outputs=tuple(t for t in outs.values() if _side(cv, t) == "query"),
        notes=tuple(notes),
    )


__all__ = ["BackwardStructure", "read_backward"]
