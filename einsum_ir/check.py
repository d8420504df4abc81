"""Whole-cascade validation: every problem found, each naming its Einsum and source line.

Rules: every tensor defined once and used after its definition (a recurrence may read its
previous iterate earlier), accesses match declared ranks (a rank may be read through its
partition parts), every index bound to a rank, recurrences initialised, no cycles, and every
member of a recurrence's strongly connected group iterates the recurrence index.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

import networkx as nx

from attnsim.einsum_ir.ir import (
    Access,
    Cascade,
    CmpOp,
    Einsum,
    Final,
    IndexName,
    IndexValue,
    RankName,
    Reduce,
    TensorName,
    Var,
    all_vars,
    reads,
    size_values,
    walk,
    where_conditions,
    where_symbols,
)
from attnsim.einsum_ir.spec import Problem


class _Collector:
    """The problems found so far, and whole-cascade facts computed once (checks stay linear)."""

    def __init__(self, cascade: Cascade, opaque: frozenset[str] = frozenset()) -> None:
        self.cascade = cascade
        self.opaque = opaque
        self.problems: list[Problem] = []
        self.known_ranks = frozenset(cascade.all_ranks)
        self.declared = cascade.tensor_ranks
        self.recur = recurrence_vars(cascade)
        self.symbols = frozenset(cascade.size_symbols)
        # The YAML index of each Einsum by location, if some failed to parse.
        self.einsum_paths = {
            (line, col): p for p, line, col in cascade.locations if p.startswith("einsums[")
        }

    def at_einsum(self, i: int, message: str) -> None:
        e = self.cascade.einsums[i]
        path = f"einsums[{i}]"
        if e.line:
            path = self.einsum_paths.get((e.line, e.column), path)
        self.problems.append(
            Problem(self.cascade.source, e.line, e.column, path, f"{e}: {message}")
        )

    def at_path(self, path: str, message: str) -> None:
        line, col = self.cascade.location(path)
        self.problems.append(Problem(self.cascade.source, line, col, path, message))


def check_cascade(cascade: Cascade, opaque: frozenset[str] = frozenset()) -> list[Problem]:
    """All problems of a parsed cascade (empty when valid).

    `opaque` names tensors defined by Einsums that could not be parsed: reads of them are
    taken as valid (not reported as unknown, ranks not checked).
    """
    c = _Collector(cascade, opaque)
    _check_declarations(c)
    defined = _check_definitions(c)
    for i, e in enumerate(cascade.einsums):
        _check_einsum(c, i, e, defined)
    _check_order_and_cycles(c, defined)
    _check_init_and_outputs(c, defined)
    return c.problems


def recurrence_vars(cascade: Cascade) -> dict[TensorName, IndexName]:
    """Each recurrence tensor and the index it iterates over."""
    result: dict[TensorName, IndexName] = {}
    for e in cascade.einsums:
        var = e.recurrence_var
        if var is not None:
            result.setdefault(e.output, var)
    return result


def pinned_vars(cascade: Cascade, einsum: Einsum) -> set[IndexName]:
    """Index variables an equality of the where clause pins (a gather or a scatter).

    `QM[e,m1,m0] = FQ[e,p] where m == p + M - P` writes each key position's query: m1 and m0
    are not read on the right, but the equality on m (and so on its parts) selects the
    points written. Only equalities count: a variable merely bounded would be broadcast.
    """
    found: set[IndexName] = set()
    for cond in where_conditions(einsum.where):
        if cond.op is CmpOp.EQ:
            for var in cond.vars:
                found |= {IndexName(r.lower()) for r in cascade.expand(RankName(var.upper()))}
    return found


def is_lagged_read(cascade: Cascade, einsum: Einsum, access: Access) -> bool:
    """Whether `access` reads the previous iterate `X[r]` of a recurrence X over r."""
    return _is_lagged(recurrence_vars(cascade), einsum, access)


def _is_lagged(recur: dict[TensorName, IndexName], einsum: Einsum, access: Access) -> bool:
    var = recur.get(access.tensor)
    if var is None or var not in einsum.out_vars:
        return False
    return any(isinstance(i, Var) and i.name == var and i.offset == 0 for i in access.indices)


def dependency_graph(cascade: Cascade, include_lagged: bool) -> nx.DiGraph:
    """Einsum-index graph with an edge producer -> consumer per read of an intermediate."""
    graph = nx.DiGraph()
    graph.add_nodes_from(range(len(cascade.einsums)))
    producer = {e.output: i for i, e in reversed(list(enumerate(cascade.einsums)))}
    recur = recurrence_vars(cascade)
    for i, e in enumerate(cascade.einsums):
        for acc in e.inputs:
            j = producer.get(acc.tensor)
            if j is None:
                continue
            if include_lagged or not _is_lagged(recur, e, acc):
                graph.add_edge(j, i)
    return graph


# ----------------------------------------------------------------------------- checks


def _check_declarations(c: _Collector) -> None:
    cascade = c.cascade
    input_ranks: set[RankName] = set()
    for name, ranks in cascade.inputs:
        if len(set(ranks)) != len(ranks):
            c.at_path(f"inputs.{name}", f"input {name} repeats a rank: {list(ranks)}")
        input_ranks.update(ranks)
    seen_parts: set[RankName] = set()
    for part in cascade.partitions:
        path = f"partitions.{part.rank}"
        if part.rank not in input_ranks and part.rank not in cascade.part_parent:
            c.at_path(path, f"partitions rank {part.rank}, which no input is declared over")
        for p in part.parts:
            if p in input_ranks or p in seen_parts or p == part.rank:
                c.at_path(path, f"partition part {p} clashes with another rank of that name")
            seen_parts.add(p)
    known = set(cascade.all_ranks)
    sized_by_default = {p.parts[0] for p in cascade.partitions}
    used = _used_symbols(cascade)
    for rank, _ in cascade.params:
        if rank not in known and rank not in used:
            c.at_path(
                f"params.{rank}",
                f"params sets {rank}, which is neither a rank nor a size symbol used by any "
                f"Einsum{_hint(rank, known | used)}",
            )
        elif rank in sized_by_default:
            c.at_path(
                f"params.{rank}",
                f"{rank} is the outermost part of a partition; its size is derived "
                "(ceil of the rank over the inner parts) and cannot be set",
            )


def _used_symbols(cascade: Cascade) -> set[str]:
    """Size symbols the Einsums use in conditions and as values."""
    used: set[str] = set()
    for e in cascade.einsums:
        used.update(where_symbols(e.where))
        used.update(size_values(e.expr))
    return used


def _check_definitions(c: _Collector) -> dict[TensorName, int]:
    cascade = c.cascade
    defined: dict[TensorName, int] = {}
    inputs = set(cascade.input_names)
    for i, e in enumerate(cascade.einsums):
        if e.output in inputs:
            c.at_einsum(i, f"defines {e.output}, which is an input tensor")
        elif e.output in defined:
            j = defined[e.output]
            first = cascade.einsums[j]
            c.at_einsum(
                i, f"tensor {e.output} defined twice (first at einsums[{j}], line {first.line})"
            )
        else:
            defined[e.output] = i
    return defined


def _check_einsum(c: _Collector, i: int, e: Einsum, defined: dict[TensorName, int]) -> None:
    cascade = c.cascade
    known_ranks = c.known_ranks
    declared = c.declared
    recur = c.recur
    # Output access.
    shifted = [v for v in e.out.vars if v.offset != 0]
    if any(isinstance(idx, Final) for idx in e.out.indices):
        c.at_einsum(i, "an output index must be a variable, not a final-iterate rank")
    if len(shifted) > 1 or any(v.offset != 1 for v in shifted):
        c.at_einsum(i, "a recurrence writes the next iterate of one index only, as X[m1+1,...]")
    # Every index variable ranges over a known rank.
    used: list[IndexName] = list(e.iteration_vars)
    for var in dict.fromkeys(used):
        if RankName(var.upper()) not in known_ranks:
            hint = _hint(var.upper(), known_ranks)
            c.at_einsum(i, f"unbound index {var}: no rank {var.upper()}{hint}")
    rhs_vars = set(all_vars(e.expr)) | pinned_vars(cascade, e)
    for var in e.out_vars:
        if var not in rhs_vars:
            c.at_einsum(i, f"unbound index {var}: it appears on the left but not on the right")
    _check_parts_mixing(c, i, e)
    for node in walk(e.expr):
        if isinstance(node, Reduce):
            body_vars = {v.name for acc in reads(node.body) for v in acc.vars}
            body_vars |= {n.var for n in walk(node.body) if isinstance(n, IndexValue)}
            for var in node.over:
                if var not in body_vars:
                    c.at_einsum(
                        i, f"{node.op.value}[{var}] reduces {var}, which its body does not use"
                    )
                if var in e.out_vars:
                    c.at_einsum(i, f"{var} is both an output index and reduced")
    # Accesses.
    for acc in e.inputs:
        if acc.tensor in c.opaque:
            continue
        if acc.tensor not in declared:
            names = set(declared)
            c.at_einsum(i, f"unknown tensor {acc.tensor}{_hint(acc.tensor, names)}")
            continue
        _check_access_ranks(c, i, acc, declared[acc.tensor])
        rvar = recur.get(acc.tensor)
        for idx in acc.indices:
            if isinstance(idx, Final):
                if rvar is None or idx.rank != rvar.upper():
                    c.at_einsum(
                        i,
                        f"{acc} reads the final iterate {idx.rank}, but {acc.tensor} "
                        f"is not a recurrence over {idx.rank.lower()}",
                    )
            elif idx.offset != 0 and (rvar != idx.name or idx.offset != 1):
                c.at_einsum(
                    i, f"{acc}: only a recurrence over {idx.name} can be read at {idx.name}+1"
                )
    # Size symbols: ranks and params.
    symbols = c.symbols
    for name in where_symbols(e.where):
        if name not in symbols:
            c.at_einsum(
                i,
                f"unknown size symbol {name} in the where clause: not a rank or a param"
                f"{_hint(name, symbols)}; declare it under params",
            )
    for name in size_values(e.expr):
        if name not in symbols:
            c.at_einsum(
                i,
                f"unknown size symbol {name}: not a rank or a param{_hint(name, symbols)}; "
                f"declare it under params (or read a tensor as {name}[...])",
            )
    # Where conditions.
    iter_vars = set(e.iteration_vars)
    for cond in where_conditions(e.where):
        for var in cond.vars:
            if var in iter_vars:
                continue
            parts = cascade.expand(RankName(var.upper()))
            if len(parts) > 1 and all(p.lower() in iter_vars for p in parts):
                continue
            c.at_einsum(
                i, f"unbound index {var} in the where clause: this Einsum does not iterate it"
            )


def _check_parts_mixing(c: _Collector, i: int, e: Einsum) -> None:
    cascade = c.cascade
    vars_ = set(e.iteration_vars)
    values = {n.var for n in walk(e.expr) if isinstance(n, IndexValue)}
    for part in cascade.partitions:
        root = part.rank.lower()
        if root in vars_ and any(p.lower() in vars_ for p in cascade.expand(part.rank)):
            hint = ""
            if root in values:
                form = " + ".join(
                    f"{q.lower()} * {' * '.join(part.parts[k + 1 :])}"
                    if k + 1 < len(part.parts)
                    else q.lower()
                    for k, q in enumerate(part.parts)
                )
                hint = f" (as a value, write {root} from its parts: ({form}))"
            c.at_einsum(i, f"uses both {root} and its partition parts; use one or the other{hint}")


def _check_access_ranks(c: _Collector, i: int, acc: Access, ranks: tuple[RankName, ...]) -> None:
    cascade = c.cascade
    want = [leaf for r in ranks for leaf in cascade.expand(r)]
    got = [leaf for r in acc.ranks for leaf in cascade.expand(r)]
    if want != got:
        c.at_einsum(
            i,
            f"rank mismatch: {acc.tensor} is declared over [{', '.join(ranks)}] "
            f"but accessed as {acc}",
        )


def _check_order_and_cycles(c: _Collector, defined: dict[TensorName, int]) -> None:
    cascade = c.cascade
    for i, e in enumerate(cascade.einsums):
        for acc in e.inputs:
            j = defined.get(acc.tensor)
            if j is None or j < i:
                continue
            if _is_lagged(c.recur, e, acc):
                continue
            if j == i:
                c.at_einsum(i, f"reads {acc.tensor}, which it defines (a cycle)")
            else:
                c.at_einsum(
                    i,
                    f"uses {acc.tensor} before its definition at einsums[{j}] "
                    f"(line {cascade.einsums[j].line})",
                )
    same_step = dependency_graph(cascade, include_lagged=False)
    for cycle in _cycles(same_step):
        names = " -> ".join(cascade.einsums[k].output for k in cycle + [cycle[0]])
        c.at_einsum(cycle[0], f"cycle of dependencies: {names}")
    full = dependency_graph(cascade, include_lagged=True)
    recur = recurrence_vars(cascade)
    for group in nx.strongly_connected_components(full):
        members = sorted(group)
        if len(members) == 1 and not full.has_edge(members[0], members[0]):
            continue
        outs = [cascade.einsums[k].output for k in members]
        vars_ = {recur[out] for out in outs if out in recur}
        if len(vars_) != 1:
            continue  # a plain cycle, reported above
        var = vars_.pop()
        names = ", ".join(cascade.einsums[k].output for k in members)
        for k in members:
            if var not in cascade.einsums[k].out_vars:
                c.at_einsum(
                    k,
                    f"is part of the recurrence over {var} ({names}) but does not iterate {var}",
                )


def _cycles(graph: nx.DiGraph) -> list[list[int]]:
    cycles: list[list[int]] = []
    for group in nx.strongly_connected_components(graph):
        members = sorted(group)
        if len(members) > 1:
            cycles.append(members)
    return cycles


def _check_init_and_outputs(c: _Collector, defined: dict[TensorName, int]) -> None:
    cascade = c.cascade
    recur = recurrence_vars(cascade)
    init = cascade.init_values
    for tensor, var in recur.items():
        if tensor not in init:
            c.at_einsum(
                defined[tensor],
                f"{tensor} is a recurrence over {var} and needs an initial value: "
                f"add `{tensor}: <value>` under init",
            )
    for tensor in init:
        if tensor not in recur:
            what = "a tensor no Einsum defines" if tensor not in defined else "not a recurrence"
            c.at_path(f"init.{tensor}", f"init given for {tensor}, which is {what}")
    known = set(defined) | set(cascade.input_names) | set(c.opaque)
    for k, out in enumerate(cascade.outputs):
        if out not in known:
            c.at_path(f"outputs[{k}]", f"unknown output tensor {out}{_hint(out, known)}")


def _hint(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" (did you mean {close[0]}?)" if close else ""
