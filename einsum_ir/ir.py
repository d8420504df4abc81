"""The Einsum-cascade IR: immutable records for ranks, accesses, expressions and cascades.

Everything here is a frozen, hashable value; analyses memoize on these objects. Whole-cascade
validation lives in `check.py`, text syntax in `parse.py`.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NewType

RankName = NewType("RankName", str)
TensorName = NewType("TensorName", str)
IndexName = NewType("IndexName", str)


class UnaryOp(enum.Enum):
    """Element-wise functions of one argument."""

    NEG = "neg"
    EXP = "exp"
    SIGMOID = "sigmoid"
    SQRT = "sqrt"
    RECIP = "recip"


class BinaryOp(enum.Enum):
    """Element-wise functions of two arguments."""

    ADD = "+"
    SUB = "-"
    MUL = "*"
    DIV = "/"
    MAX = "max"
    MIN = "min"


class ReduceOp(enum.Enum):
    """Reduction operators; each has an identity that masked points keep."""

    SUM = "sum"
    MAX = "max"
    MIN = "min"

    @property
    def identity(self) -> float:
        """The value a reduction over no points yields."""
        return {ReduceOp.SUM: 0.0, ReduceOp.MAX: -math.inf, ReduceOp.MIN: math.inf}[self]


class CmpOp(enum.Enum):
    """Comparisons allowed in `where` conditions."""

    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    EQ = "=="
    NE = "!="


INFIX_OPS = frozenset({BinaryOp.ADD, BinaryOp.SUB, BinaryOp.MUL, BinaryOp.DIV})
FUNCTION_BINARY_OPS = frozenset({BinaryOp.MAX, BinaryOp.MIN})
FUNCTION_UNARY_OPS = frozenset({UnaryOp.EXP, UnaryOp.SIGMOID, UnaryOp.SQRT, UnaryOp.RECIP})


# ----------------------------------------------------------------------------- indices


@dataclass(frozen=True, slots=True)
class Var:
    """An index variable, optionally shifted: `m1` or `m1+1` (the next iterate)."""

    name: IndexName
    offset: int = 0

    @property
    def rank(self) -> RankName:
        """The rank this index ranges over (its uppercase name)."""
        return RankName(self.name.upper())

    def __str__(self) -> str:
        if self.offset == 0:
            return self.name
        return f"{self.name}{self.offset:+d}"


@dataclass(frozen=True, slots=True)
class Final:
    """An uppercase index `M1`: reads the final iterate of a recurrence over that rank."""

    rank: RankName

    def __str__(self) -> str:
        return self.rank


Index = Var | Final


@dataclass(frozen=True, slots=True)
class Access:
    """A tensor read or written at a tuple of indices, e.g. `K[e,m1,m0]`."""

    tensor: TensorName
    indices: tuple[Index, ...]

    def __post_init__(self) -> None:
        names = [i.name for i in self.indices if isinstance(i, Var)]
        if len(names) != len(set(names)):
            raise ValueError(f"repeated index in access {self}")

    @property
    def vars(self) -> tuple[Var, ...]:
        """The variable (non-final) indices, in order."""
        return tuple(i for i in self.indices if isinstance(i, Var))

    @property
    def ranks(self) -> tuple[RankName, ...]:
        """The rank each index position ranges over."""
        return tuple(i.rank for i in self.indices)

    @property
    def reads_final(self) -> bool:
        """Whether any index is a final-iterate index."""
        return any(isinstance(i, Final) for i in self.indices)

    def __str__(self) -> str:
        return f"{self.tensor}[{','.join(str(i) for i in self.indices)}]"


# ----------------------------------------------------------------------------- expressions


@dataclass(frozen=True, slots=True)
class Literal:
    """A numeric constant (may be +-inf)."""

    value: float


@dataclass(frozen=True, slots=True)
class Read:
    """A tensor access used as a value."""

    access: Access


@dataclass(frozen=True, slots=True)
class Unary:
    """An element-wise function of one argument."""

    op: UnaryOp
    arg: Expr


@dataclass(frozen=True, slots=True)
class Binary:
    """An element-wise function of two arguments."""

    op: BinaryOp
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Reduce:
    """An explicit reduction `max[m0](...)` over the listed index variables."""

    op: ReduceOp
    over: tuple[IndexName, ...]
    body: Expr


Expr = Literal | Read | Unary | Binary | Reduce


def walk(expr: Expr) -> Iterator[Expr]:
    """Yield `expr` and all its sub-expressions, parents before children."""
    yield expr
    if isinstance(expr, Unary):
        yield from walk(expr.arg)
    elif isinstance(expr, Binary):
        yield from walk(expr.left)
        yield from walk(expr.right)
    elif isinstance(expr, Reduce):
        yield from walk(expr.body)


def reads(expr: Expr) -> tuple[Access, ...]:
    """All tensor accesses in `expr`, in left-to-right order."""
    return tuple(e.access for e in walk(expr) if isinstance(e, Read))


def free_vars(expr: Expr) -> tuple[IndexName, ...]:
    """Index variables used in `expr` and not bound by an inner reduction, in first-use order."""
    if isinstance(expr, Literal):
        return ()
    if isinstance(expr, Read):
        return tuple(v.name for v in expr.access.vars)
    if isinstance(expr, Unary):
        return free_vars(expr.arg)
    if isinstance(expr, Binary):
        return _unique(free_vars(expr.left) + free_vars(expr.right))
    return tuple(v for v in free_vars(expr.body) if v not in expr.over)


def all_vars(expr: Expr) -> tuple[IndexName, ...]:
    """Every index variable used anywhere in `expr`, bound or free, in first-use order."""
    names: list[IndexName] = []
    for node in walk(expr):
        if isinstance(node, Read):
            names.extend(v.name for v in node.access.vars)
        elif isinstance(node, Reduce):
            names.extend(node.over)
    return _unique(tuple(names))


def _unique(names: tuple[IndexName, ...]) -> tuple[IndexName, ...]:
    return tuple(dict.fromkeys(names))


# ----------------------------------------------------------------------------- conditions


@dataclass(frozen=True, slots=True)
class LinearExpr:
    """An integer affine form of index variables: sum(coef * var) + const."""

    terms: tuple[tuple[IndexName, int], ...]
    const: int = 0

    @property
    def vars(self) -> tuple[IndexName, ...]:
        """Variables with a non-zero coefficient."""
        return tuple(v for v, c in self.terms if c != 0)


@dataclass(frozen=True, slots=True)
class Condition:
    """One comparison `lhs op rhs` of a `where` clause."""

    lhs: LinearExpr
    op: CmpOp
    rhs: LinearExpr

    @property
    def vars(self) -> tuple[IndexName, ...]:
        """Variables the comparison depends on."""
        return _unique(self.lhs.vars + self.rhs.vars)


# ----------------------------------------------------------------------------- einsums


@dataclass(frozen=True, slots=True)
class Einsum:
    """`out = expr where conditions`. Right-side indices absent on the left are summed.

    `line` and `column` locate the Einsum in its source file; they take no part in equality.
    """

    out: Access
    expr: Expr
    where: tuple[Condition, ...] = ()
    line: int = field(default=0, compare=False)
    column: int = field(default=0, compare=False)

    def __str__(self) -> str:
        from einsum_ir.parse import format_einsum  # local: parse imports this module

        return format_einsum(self)

    @property
    def output(self) -> TensorName:
        """The tensor this Einsum defines."""
        return self.out.tensor

    @property
    def inputs(self) -> tuple[Access, ...]:
        """All accesses on the right-hand side."""
        return reads(self.expr)

    @property
    def recurrence_var(self) -> IndexName | None:
        """The index this Einsum iterates as a recurrence (`X[m1+1] = ...`), if any."""
        for v in self.out.vars:
            if v.offset != 0:
                return v.name
        return None

    @property
    def out_vars(self) -> tuple[IndexName, ...]:
        """Output index variables in order."""
        return tuple(v.name for v in self.out.vars)

    @property
    def reduced_vars(self) -> tuple[IndexName, ...]:
        """Index variables reduced anywhere (explicitly or implicitly), in first-use order."""
        out = set(self.out_vars)
        return tuple(v for v in all_vars(self.expr) if v not in out)

    @property
    def implicit_reduced_vars(self) -> tuple[IndexName, ...]:
        """Right-side free variables absent on the left: reduced by sum."""
        out = set(self.out_vars)
        return tuple(v for v in free_vars(self.expr) if v not in out)

    @property
    def iteration_vars(self) -> tuple[IndexName, ...]:
        """Every index variable of the iteration space: outputs first, then reduced ones."""
        return _unique(self.out_vars + all_vars(self.expr))

    @property
    def reduce_op(self) -> ReduceOp:
        """The reduction that gives masked output points their value (outermost, else SUM)."""
        if isinstance(self.expr, Reduce) and not self.implicit_reduced_vars:
            return self.expr.op
        return ReduceOp.SUM

    @property
    def has_reduction(self) -> bool:
        """Whether any index is reduced."""
        return bool(self.reduced_vars)


@dataclass(frozen=True, slots=True)
class Partition:
    """Rank `rank` split into `parts`, outermost first: M -> (M1, M0), m = m1 * M0 + m0."""

    rank: RankName
    parts: tuple[RankName, ...]


@dataclass(frozen=True, slots=True)
class Cascade:
    """A named, ordered cascade of Einsums with declared inputs and outputs.

    `ranks` maps every tensor (inputs and intermediates) to the ranks it is declared over;
    an iterative rank of a recurrence tensor holds the iterates 0..R (R + 1 of them).
    """

    name: str
    inputs: tuple[tuple[TensorName, tuple[RankName, ...]], ...]
    einsums: tuple[Einsum, ...]
    outputs: tuple[TensorName, ...]
    partitions: tuple[Partition, ...] = ()
    params: tuple[tuple[RankName, int], ...] = ()
    init: tuple[tuple[TensorName, float], ...] = ()
    description: str = ""
    source: str = field(default="", compare=False)
    locations: tuple[tuple[str, int, int], ...] = field(default=(), compare=False)

    def location(self, path: str) -> tuple[int, int]:
        """(line, column) of a YAML path such as `outputs[0]` in the source file, or (0, 0)."""
        for p, line, col in self.locations:
            if p == path:
                return line, col
        return 0, 0

    @property
    def input_names(self) -> tuple[TensorName, ...]:
        """Names of the input tensors in declaration order."""
        return tuple(n for n, _ in self.inputs)

    @property
    def tensor_ranks(self) -> dict[TensorName, tuple[RankName, ...]]:
        """Declared ranks of every tensor: inputs as declared, intermediates from their output."""
        ranks = dict(self.inputs)
        for e in self.einsums:
            ranks.setdefault(e.output, e.out.ranks)
        return ranks

    @property
    def producers(self) -> dict[TensorName, Einsum]:
        """The Einsum defining each intermediate tensor (the first, if defined twice)."""
        prod: dict[TensorName, Einsum] = {}
        for e in self.einsums:
            prod.setdefault(e.output, e)
        return prod

    @property
    def init_values(self) -> dict[TensorName, float]:
        """Initial iterate of each recurrence tensor."""
        return dict(self.init)

    @property
    def partition_of(self) -> dict[RankName, Partition]:
        """Partition by the rank it splits."""
        return {p.rank: p for p in self.partitions}

    @property
    def part_parent(self) -> dict[RankName, RankName]:
        """Map from each partition part (M1, M0) to the rank it splits (M)."""
        return {part: p.rank for p in self.partitions for part in p.parts}

    @property
    def all_ranks(self) -> tuple[RankName, ...]:
        """Every rank of the cascade: input ranks, then partition parts."""
        names: list[RankName] = []
        for _, ranks in self.inputs:
            names.extend(ranks)
        for p in self.partitions:
            names.append(p.rank)
            names.extend(p.parts)
        return tuple(dict.fromkeys(names))

    def expand(self, rank: RankName) -> tuple[RankName, ...]:
        """A rank as the tuple of leaf ranks it is partitioned into (itself if unsplit)."""
        part = self.partition_of.get(rank)
        if part is None:
            return (rank,)
        return tuple(leaf for p in part.parts for leaf in self.expand(p))

    def root(self, rank: RankName) -> RankName:
        """The unpartitioned rank a partition part belongs to (itself for a root rank)."""
        parent = self.part_parent
        while rank in parent:
            rank = parent[rank]
        return rank
