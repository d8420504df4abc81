"""Reference executor: what a cascade computes, in numpy float64.

Each Einsum is evaluated on a broadcast grid with one axis per iteration variable. Strongly
connected recurrence groups are stepped over their recurrence index; everything else is
evaluated whole. Masked and padded points take the identity of the reduction (np.where), so
values computed at them never leak. A masked *output* point of a recurrence step
(`X[m1+1,p] = ... where c` with c false at (m1, p)) instead carries the previous iterate
`X[m1,p]`, so a skipped tile leaves the running state unchanged. Size symbols in conditions
and expressions (`W`, `M`) take the resolved sizes (ranks and params).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import networkx as nx
import numpy as np
import numpy.typing as npt

from attnsim.einsum_ir.check import check_cascade, dependency_graph, recurrence_vars
from attnsim.einsum_ir.ir import (
    Access,
    AnyOf,
    Binary,
    BinaryOp,
    Cascade,
    CmpOp,
    Condition,
    Einsum,
    Expr,
    Final,
    IndexName,
    IndexValue,
    LinearExpr,
    Literal,
    Partition,
    RankName,
    Read,
    Reduce,
    ReduceOp,
    SizeValue,
    TensorName,
    Unary,
    UnaryOp,
    Var,
    bind_where,
    free_vars,
)
from attnsim.einsum_ir.sizes import resolve_sizes

Array = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]
Extents = dict[IndexName, tuple[int, int]]  # variable -> (first value, count)

_UNARY: dict[UnaryOp, Callable[[Array], Array]] = {
    UnaryOp.NEG: np.negative,
    UnaryOp.EXP: np.exp,
    UnaryOp.SIGMOID: lambda x: 0.5 * (1.0 + np.tanh(0.5 * x)),  # overflow-free logistic
    UnaryOp.SQRT: np.sqrt,
    UnaryOp.RECIP: np.reciprocal,
    UnaryOp.TANH: np.tanh,
    UnaryOp.ABS: np.abs,
    UnaryOp.LOG: np.log,
    UnaryOp.STEP: lambda x: np.heaviside(x, 0.0),  # 1 where x > 0, 0 where x <= 0
    UnaryOp.ROUND: np.round,  # halves to even, as torch.round
    UnaryOp.COS: np.cos,
    UnaryOp.SIN: np.sin,
}
_BINARY: dict[BinaryOp, Callable[[Array, Array], Array]] = {
    BinaryOp.ADD: np.add,
    BinaryOp.SUB: np.subtract,
    BinaryOp.MUL: np.multiply,
    BinaryOp.DIV: np.divide,
    BinaryOp.MAX: np.maximum,
    BinaryOp.MIN: np.minimum,
}
_REDUCE: dict[ReduceOp, Callable[..., Array]] = {
    ReduceOp.SUM: np.sum,
    ReduceOp.MAX: np.max,
    ReduceOp.MIN: np.min,
}
_COMPARE: dict[CmpOp, Callable[..., Mask]] = {
    CmpOp.LT: np.less,
    CmpOp.LE: np.less_equal,
    CmpOp.GT: np.greater,
    CmpOp.GE: np.greater_equal,
    CmpOp.EQ: np.equal,
    CmpOp.NE: np.not_equal,
}


@dataclass(frozen=True, slots=True)
class _Run:
    """One evaluation: the cascade, its rank sizes and its recurrence tensors."""

    cascade: Cascade
    sizes: dict[RankName, int]  # every rank and param
    recurrences: dict[TensorName, IndexName]


@dataclass(frozen=True, slots=True)
class _Grid:
    """The broadcast grid of one Einsum: an axis per iteration variable, in order."""

    vars: tuple[IndexName, ...]
    extents: Extents

    def axis(self, var: IndexName) -> int:
        return self.vars.index(var)

    def values(self, var: IndexName) -> npt.NDArray[np.int64]:
        start, count = self.extents[var]
        shape = [1] * len(self.vars)
        shape[self.axis(var)] = count
        return np.arange(start, start + count).reshape(shape)

    def full(self, value: Array, over: tuple[IndexName, ...]) -> Array:
        shape = list(value.shape)
        for var in over:
            shape[self.axis(var)] = self.extents[var][1]
        return np.broadcast_to(value, shape)


@dataclass(frozen=True, slots=True, eq=False)
class _Mask:
    """A condition of an Einsum: the iteration variables it depends on and its truth values."""

    support: frozenset[IndexName]
    holds: Mask


# ----------------------------------------------------------------------------- public API


def evaluate(
    cascade: Cascade, inputs: Mapping[str, npt.ArrayLike], sizes: Mapping[str, int]
) -> dict[str, Array]:
    """The cascade's outputs for `inputs` (each in its declared rank order and shape).

    Ranks that are adjacent partition parts (M1, M0) are returned merged back to M.
    Raises ValueError (SizeError for sizes) listing every problem with the inputs.
    """
    tensors = evaluate_all(cascade, inputs, sizes)
    return {name: tensors[name] for name in cascade.outputs}


def evaluate_all(
    cascade: Cascade, inputs: Mapping[str, npt.ArrayLike], sizes: Mapping[str, int]
) -> dict[str, Array]:
    """Every tensor of the cascade (inputs and intermediates), presented as by `evaluate`.

    A recurrence tensor keeps all its iterates: R + 1 of them along its recurrence rank.
    """
    problems = [str(p) for p in check_cascade(cascade)]
    if problems:
        raise ValueError(f"invalid cascade {cascade.name}:\n  " + "\n  ".join(problems))
    run = _Run(cascade, resolve_sizes(cascade, sizes), recurrence_vars(cascade))
    store: dict[TensorName, Array] = dict(_checked_inputs(run, inputs))
    base: Extents = {IndexName(r.lower()): (0, n) for r, n in run.sizes.items()}
    with np.errstate(all="ignore"):
        for group, var in _schedule(cascade):
            if var is None:
                _evaluate_into(run, store, cascade.einsums[group[0]], base)
                continue
            for i in group:  # lagged reads may come before the first write
                _allocate(run, store, cascade.einsums[i])
            for step in range(base[var][1]):
                for i in group:
                    _evaluate_into(run, store, cascade.einsums[i], {**base, var: (step, 1)})
    return {name: _present(run, name, array) for name, array in store.items()}


def random_inputs(cascade: Cascade, sizes: Mapping[str, int], seed: int = 0) -> dict[str, Array]:
    """Standard-normal float64 inputs in declared rank order, reproducible from `seed`."""
    ranks = resolve_sizes(cascade, sizes)
    rng = np.random.default_rng(seed)
    return {
        name: rng.standard_normal(tuple(ranks[r] for r in declared))
        for name, declared in cascade.inputs
    }


def _checked_inputs(run: _Run, inputs: Mapping[str, npt.ArrayLike]) -> dict[TensorName, Array]:
    """Inputs as float64 arrays; raises ValueError naming every missing, unknown or bad one."""
    declared = dict(run.cascade.inputs)
    problems = [
        f"missing input {n} over [{', '.join(r)}]" for n, r in declared.items() if n not in inputs
    ]
    problems += [
        f"unknown input {n} (inputs of {run.cascade.name}: {', '.join(declared)})"
        for n in inputs
        if n not in declared
    ]
    arrays: dict[TensorName, Array] = {}
    for name, ranks in declared.items():
        if name not in inputs:
            continue
        want = tuple(run.sizes[r] for r in ranks)
        try:
            array = np.asarray(inputs[name], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            problems.append(f"input {name} is not numeric: {exc}")
            continue
        if array.shape != want:
            named = ", ".join(f"{r}={n}" for r, n in zip(ranks, want, strict=True))
            problems.append(f"input {name}: expected shape {want} ({named}), got {array.shape}")
        arrays[name] = array
    if problems:
        raise ValueError(f"bad inputs for {run.cascade.name}:\n  " + "\n  ".join(problems))
    return arrays


# ----------------------------------------------------------------------------- schedule


def _schedule(cascade: Cascade) -> list[tuple[list[int], IndexName | None]]:
    """Groups of Einsum indices in evaluation order, each with its recurrence var (or None).

    Groups are the strongly connected components of the dependency graph with lagged reads,
    in topological order (list order breaks ties); members of a recurrence group are ordered
    by their same-step dependencies.
    """
    full = dependency_graph(cascade, include_lagged=True)
    same_step = dependency_graph(cascade, include_lagged=False)
    dag = nx.condensation(full)
    order = nx.lexicographical_topological_sort(dag, key=lambda n: min(dag.nodes[n]["members"]))
    result: list[tuple[list[int], IndexName | None]] = []
    for node in order:
        members = sorted(dag.nodes[node]["members"])
        alone = cascade.einsums[members[0]]
        if len(members) == 1 and not full.has_edge(members[0], members[0]):
            # A masked recurrence step carries the previous iterate: step it in order.
            stepped = alone.recurrence_var is not None and bool(alone.where)
            result.append((members, alone.recurrence_var if stepped else None))
            continue
        steps = list(nx.lexicographical_topological_sort(same_step.subgraph(members)))
        var = next(v for i in members if (v := cascade.einsums[i].recurrence_var) is not None)
        result.append((steps, var))
    return result


# ----------------------------------------------------------------------------- one Einsum


def _evaluate_into(
    run: _Run, store: dict[TensorName, Array], einsum: Einsum, extents: Extents
) -> None:
    """Evaluate `einsum` over `extents` and write the result into its output tensor."""
    grid = _Grid(einsum.iteration_vars, {v: extents[v] for v in einsum.iteration_vars})
    masks = _masks(run, einsum, grid)
    scope = frozenset(free_vars(einsum.expr)) | frozenset(einsum.out_vars)
    here, rest = _partition(masks, scope)
    value = _eval(run, store, grid, einsum.expr, scope, rest)
    implicit = einsum.implicit_reduced_vars
    value = grid.full(value, einsum.out_vars + implicit)
    carried: list[_Mask] = []
    if einsum.recurrence_var is not None:
        # Conditions on output points only: a masked step keeps the previous iterate.
        carried = [m for m in here if m.support <= frozenset(einsum.out_vars)]
        here = [m for m in here if m not in carried]
    if here:
        value = np.where(_all(here), value, einsum.reduce_op.identity)
    if implicit:
        value = np.sum(value, axis=tuple(grid.axis(v) for v in implicit), keepdims=True)
    if carried:
        previous = Access(einsum.out.tensor, tuple(Var(v.name) for v in einsum.out.vars))
        _allocate(run, store, einsum)
        value = np.where(_all(carried), value, _read(run, store, grid, previous))
    out_shape = tuple(grid.extents[v][1] for v in einsum.out_vars)
    value = np.broadcast_to(value, out_shape + value.shape[len(out_shape) :]).reshape(out_shape)
    target = _allocate(run, store, einsum)
    target[tuple(_span(grid.extents[v.name], v.offset) for v in einsum.out.vars)] = value


def _allocate(run: _Run, store: dict[TensorName, Array], einsum: Einsum) -> Array:
    """The output tensor's array, created on first use; a recurrence holds R + 1 iterates.

    Iterate 0 of a recurrence is its init value; every other point is written before use.
    """
    if einsum.output not in store:
        var = run.recurrences.get(einsum.output)
        shape = tuple(run.sizes[v.rank] + (v.name == var) for v in einsum.out.vars)
        fill = run.cascade.init_values[einsum.output] if var is not None else np.nan
        store[einsum.output] = np.full(shape, fill)
    return store[einsum.output]


def _span(extent: tuple[int, int], offset: int) -> slice:
    start, count = extent
    return slice(start + offset, start + offset + count)


def _eval(
    run: _Run,
    store: dict[TensorName, Array],
    grid: _Grid,
    expr: Expr,
    scope: frozenset[IndexName],
    masks: list[_Mask],
) -> Array:
    """Value of `expr` on the grid; each mask is applied at the outermost reduction binding it."""
    if isinstance(expr, Literal):
        return np.full((1,) * len(grid.vars), expr.value)
    if isinstance(expr, Read):
        return _read(run, store, grid, expr.access)
    if isinstance(expr, IndexValue):
        value = _var_value(run, grid, expr.var)
        if value is None:
            raise ValueError(f"index {expr.var} used as a value is not iterated (nor its parts)")
        return value[0].astype(np.float64)
    if isinstance(expr, SizeValue):
        return np.full((1,) * len(grid.vars), float(run.sizes[RankName(expr.name)]))
    if isinstance(expr, Unary):
        return _UNARY[expr.op](_eval(run, store, grid, expr.arg, scope, masks))
    if isinstance(expr, Binary):
        left = _eval(run, store, grid, expr.left, scope, masks)
        return _BINARY[expr.op](left, _eval(run, store, grid, expr.right, scope, masks))
    inner = scope | frozenset(expr.over)
    here, rest = _partition(masks, inner)
    body = _eval(run, store, grid, expr.body, inner, rest)
    body = grid.full(body, expr.over)
    if here:
        body = np.where(_all(here), body, expr.op.identity)
    return _REDUCE[expr.op](body, axis=tuple(grid.axis(v) for v in expr.over), keepdims=True)


def _partition(masks: list[_Mask], scope: frozenset[IndexName]) -> tuple[list[_Mask], list[_Mask]]:
    """Masks whose indices are all bound in `scope`, and the rest (applied further in)."""
    here = [m for m in masks if m.support <= scope]
    return here, [m for m in masks if not m.support <= scope]


def _all(masks: list[_Mask]) -> Mask:
    result = masks[0].holds
    for m in masks[1:]:
        result = result & m.holds
    return result


# ----------------------------------------------------------------------------- masks


def _masks(run: _Run, einsum: Einsum, grid: _Grid) -> list[_Mask]:
    """The Einsum's `where` conditions plus m < M for each partition whose parts it iterates.

    A tail mask only applies where m1 and m0 are iterated together (in one reduction scope).
    """
    scopes = _scopes(einsum.expr, frozenset(free_vars(einsum.expr)) | frozenset(einsum.out_vars))
    masks = [_where_item(run, grid, c) for c in bind_where(einsum.where, run.sizes)]
    for m in masks:
        if not any(m.support <= scope for scope in scopes):
            names = ", ".join(sorted(m.support))
            raise ValueError(f"{einsum}: no reduction binds all of {names} of a condition together")
    for part in run.cascade.partitions:
        value = _var_value(run, grid, IndexName(part.rank.lower()))
        if part.rank.lower() in grid.vars or value is None:
            continue
        if any(value[1] <= scope for scope in scopes):
            masks.append(_Mask(value[1], value[0] < run.sizes[part.rank]))
    return masks


def _scopes(expr: Expr, scope: frozenset[IndexName]) -> list[frozenset[IndexName]]:
    """The variables bound at the top and inside each nested reduction of `expr`."""
    if isinstance(expr, Unary):
        return _scopes(expr.arg, scope)
    if isinstance(expr, Binary):
        return _scopes(expr.left, scope) + _scopes(expr.right, scope)[1:]
    if isinstance(expr, Reduce):
        return [scope, *_scopes(expr.body, scope | frozenset(expr.over))]
    return [scope]


def _where_item(run: _Run, grid: _Grid, item: Condition | AnyOf) -> _Mask:
    """A condition's mask, or a disjunction's: some option's conditions all hold."""
    if isinstance(item, Condition):
        return _condition(run, grid, item)
    options = [[_condition(run, grid, c) for c in opt] for opt in item.options]
    support = frozenset().union(*(m.support for opt in options for m in opt))
    holds = _all(options[0])
    for opt in options[1:]:
        holds = holds | _all(opt)
    return _Mask(support, holds)


def _condition(run: _Run, grid: _Grid, cond: Condition) -> _Mask:
    lhs, lhs_support = _linear(run, grid, cond.lhs)
    rhs, rhs_support = _linear(run, grid, cond.rhs)
    return _Mask(lhs_support | rhs_support, _COMPARE[cond.op](lhs, rhs))


def _linear(
    run: _Run, grid: _Grid, expr: LinearExpr
) -> tuple[npt.NDArray[np.int64], frozenset[IndexName]]:
    total: npt.NDArray[np.int64] = np.full((1,) * len(grid.vars), expr.const)
    support: frozenset[IndexName] = frozenset()
    for var, coef in expr.terms:
        value = _var_value(run, grid, var)
        if value is None:
            raise ValueError(f"condition index {var} is not iterated (nor all its parts)")
        total = total + coef * value[0]
        support |= value[1]
    return total, support


def _var_value(
    run: _Run, grid: _Grid, var: IndexName
) -> tuple[npt.NDArray[np.int64], frozenset[IndexName]] | None:
    """Values of `var` on the grid (derived m = m1*M0 + m0 from its parts), with its support."""
    if var in grid.vars:
        return grid.values(var), frozenset({var})
    part = run.cascade.partition_of.get(RankName(var.upper()))
    if part is None:
        return None
    total: npt.NDArray[np.int64] = np.zeros((1,) * len(grid.vars), dtype=np.int64)
    support: frozenset[IndexName] = frozenset()
    for k, rank in enumerate(part.parts):
        value = _var_value(run, grid, IndexName(rank.lower()))
        if value is None:
            return None
        stride = math.prod(run.sizes[r] for r in part.parts[k + 1 :])
        total = total + stride * value[0]
        support |= value[1]
    return total, support


# ----------------------------------------------------------------------------- tensor access


def _read(run: _Run, store: dict[TensorName, Array], grid: _Grid, access: Access) -> Array:
    """`access` as an array on the grid (size-1 axes for variables it does not use)."""
    declared = run.cascade.tensor_ranks[access.tensor]
    array = _regroup(run, access.tensor, store[access.tensor], declared, access.ranks)
    picks: list[slice | int] = []
    for index in access.indices:
        if isinstance(index, Final):
            picks.append(run.sizes[index.rank])
        else:
            picks.append(_span(grid.extents[index.name], index.offset))
    array = array[tuple(picks)]
    axes = [grid.axis(v.name) for v in access.vars]
    order = sorted(range(len(axes)), key=lambda k: axes[k])
    shape = [1] * len(grid.vars)
    for k in order:
        shape[axes[k]] = array.shape[k]
    return np.transpose(array, order).reshape(shape)


def _regroup(
    run: _Run,
    tensor: TensorName,
    array: Array,
    have: tuple[RankName, ...],
    want: tuple[RankName, ...],
) -> Array:
    """Re-express axes over `have` as axes over `want` (same leaves, e.g. M <-> M1, M0)."""
    if have == want:
        return array
    var = run.recurrences.get(tensor)
    if var is not None and (
        RankName(var.upper()) not in want
        or run.cascade.expand(RankName(var.upper())) != (RankName(var.upper()),)
    ):
        raise ValueError(f"{tensor}: its recurrence rank {var.upper()} cannot be regrouped")
    for axis in reversed(range(len(have))):
        array = _split(run, array, axis, have[axis])
    start = sum(len(run.cascade.expand(r)) for r in want)
    for rank in reversed(want):
        start -= len(run.cascade.expand(rank))
        array = _merge(run, array, start, rank)
    return array


def _split(run: _Run, array: Array, axis: int, rank: RankName) -> Array:
    """Split axis `rank` into its partition's leaf axes, padding the tail with NaN."""
    part = run.cascade.partition_of.get(rank)
    if part is None:
        return array
    counts = [run.sizes[r] for r in part.parts]
    pad = [(0, 0)] * array.ndim
    pad[axis] = (0, math.prod(counts) - array.shape[axis])
    array = np.pad(array, pad, constant_values=np.nan)
    array = array.reshape(array.shape[:axis] + tuple(counts) + array.shape[axis + 1 :])
    for k in reversed(range(len(part.parts))):
        array = _split(run, array, axis + k, part.parts[k])
    return array


def _merge(run: _Run, array: Array, axis: int, rank: RankName) -> Array:
    """Merge the leaf axes of `rank` starting at `axis` into one axis, dropping the tail."""
    part = run.cascade.partition_of.get(rank)
    if part is None:
        return array
    starts = [axis]
    for p in part.parts[:-1]:
        starts.append(starts[-1] + len(run.cascade.expand(p)))
    for k in reversed(range(len(part.parts))):
        array = _merge(run, array, starts[k], part.parts[k])
    return _join(run, array, axis, part)


def _join(run: _Run, array: Array, axis: int, part: Partition) -> Array:
    """Reshape the part axes (M1, M0) at `axis` into one axis M, dropping the padded tail."""
    n = len(part.parts)
    array = array.reshape(array.shape[:axis] + (-1,) + array.shape[axis + n :])
    return array[(slice(None),) * axis + (slice(0, run.sizes[part.rank]),)]


def _present(run: _Run, tensor: TensorName, array: Array) -> Array:
    """Merge adjacent partition parts (M1, M0) back into their rank (M), outermost last."""
    ranks = list(run.cascade.tensor_ranks[tensor])
    var = run.recurrences.get(tensor)
    changed = True
    while changed:
        changed = False
        for part in run.cascade.partitions:
            n = len(part.parts)
            for axis in range(len(ranks) - n + 1):
                group = tuple(ranks[axis : axis + n])
                if group != part.parts or (var is not None and var.upper() in group):
                    continue
                array = _join(run, array, axis, part)
                ranks[axis : axis + n] = [part.rank]
                changed = True
                break
    return array
