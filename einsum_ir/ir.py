"""The Einsum-cascade IR: immutable records for ranks, accesses, expressions and cascades.

Everything here is a frozen, hashable value; analyses memoize on these objects. Whole-cascade
validation lives in `check.py`, text syntax in `parse.py`.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterator, Mapping
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
    TANH = "tanh"
    ABS = "abs"
    LOG = "log"
    STEP = "step"  # the unit step: 1 where x > 0, else 0
    ROUND = "round"  # to the nearest integer, halves to even (numpy's and torch's round)
    COS = "cos"  # cosine of an angle in radians (RoPE at computed positions)
    SIN = "sin"  # sine of an angle in radians


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
FUNCTION_UNARY_OPS = frozenset(
    {
        UnaryOp.EXP,
        UnaryOp.SIGMOID,
        UnaryOp.SQRT,
        UnaryOp.RECIP,
        UnaryOp.TANH,
        UnaryOp.ABS,
        UnaryOp.LOG,
        UnaryOp.STEP,
        UnaryOp.ROUND,
        UnaryOp.COS,
        UnaryOp.SIN,
    }
)


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


@dataclass(frozen=True, slots=True)
class IndexValue:
    """The value of an index variable, `m` in `QK[m,p] - (p - m)`.

    For a partitioned rank iterated through its parts, `m` is m1 * M0 + m0, as in
    conditions. The variable is a free variable of the expression: it is iterated.
    """

    var: IndexName


@dataclass(frozen=True, slots=True)
class SizeValue:
    """The value of a size symbol (a rank size or a declared param): `M` in `log(M)`."""

    name: str


Expr = Literal | Read | Unary | Binary | Reduce | IndexValue | SizeValue


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
    if isinstance(expr, Literal | SizeValue):
        return ()
    if isinstance(expr, IndexValue):
        return (expr.var,)
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
        elif isinstance(node, IndexValue):
            names.append(node.var)
        elif isinstance(node, Reduce):
            names.extend(node.over)
    return _unique(tuple(names))


def size_values(expr: Expr) -> tuple[str, ...]:
    """Size symbols used as values in `expr` (`SizeValue` names), in first-use order."""
    return tuple(dict.fromkeys(e.name for e in walk(expr) if isinstance(e, SizeValue)))


def _unique(names: tuple[IndexName, ...]) -> tuple[IndexName, ...]:
    return tuple(dict.fromkeys(names))


# ----------------------------------------------------------------------------- conditions


# Sizes by name: user sizes (str keys) or resolved sizes (RankName keys).
SizeValues = Mapping[str, int] | Mapping[RankName, int]


def _str_keys(values: SizeValues) -> Mapping[str, int]:
    return {str(k): v for k, v in values.items()}


class SymbolError(KeyError, ValueError):
    """A size symbol with no value when binding a condition (catch as KeyError or ValueError)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True, slots=True)
class LinearExpr:
    """An integer affine form: sum(coef * var) + sum(coef * SYMBOL) + const.

    `terms` are lowercase index variables; `symbols` are UPPERCASE size symbols (a rank's
    size or a declared param), constant for a given set of sizes and folded into `const`
    by `bind`.
    """

    terms: tuple[tuple[IndexName, int], ...]
    const: int = 0
    symbols: tuple[tuple[str, int], ...] = ()

    @property
    def vars(self) -> tuple[IndexName, ...]:
        """Index variables with a non-zero coefficient (never size symbols)."""
        return tuple(v for v, c in self.terms if c != 0)

    @property
    def symbol_names(self) -> tuple[str, ...]:
        """Size symbols with a non-zero coefficient."""
        return tuple(s for s, c in self.symbols if c != 0)

    def bind(self, values: SizeValues) -> LinearExpr:
        """This form with every size symbol replaced by its value (added into `const`).

        Raises:
            SymbolError: (a KeyError and a ValueError) naming a symbol missing from `values`.
        """
        if not self.symbols:
            return self
        values = _str_keys(values)
        const = self.const
        for name, coef in self.symbols:
            if coef == 0:
                continue
            if name not in values:
                known = ", ".join(sorted(values))
                raise SymbolError(f"size symbol {name} has no value (known: {known})")
            const += coef * int(values[name])
        return LinearExpr(self.terms, const)


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

    @property
    def symbols(self) -> tuple[str, ...]:
        """Size symbols the comparison uses."""
        return tuple(dict.fromkeys(self.lhs.symbol_names + self.rhs.symbol_names))

    def bind(self, values: SizeValues) -> Condition:
        """This comparison with its size symbols replaced by their values (see LinearExpr)."""
        if not self.lhs.symbols and not self.rhs.symbols:
            return self
        return Condition(self.lhs.bind(values), self.op, self.rhs.bind(values))


@dataclass(frozen=True, slots=True)
class AnyOf:
    """A disjunction of conjunctions: holds where all conditions of some option hold.

    `where m <= p and (p - m < W or m < S)` is the conditions `m <= p` and
    `AnyOf(((p - m < W,), (m < S,)))`. At least two options, none empty (a single option
    is just its conditions).
    """

    options: tuple[tuple[Condition, ...], ...]

    def __post_init__(self) -> None:
        if len(self.options) < 2 or any(not opt for opt in self.options):
            raise ValueError("AnyOf needs at least two options, each of at least one condition")

    @property
    def vars(self) -> tuple[IndexName, ...]:
        """Variables any option depends on."""
        return _unique(tuple(v for opt in self.options for c in opt for v in c.vars))

    @property
    def symbols(self) -> tuple[str, ...]:
        """Size symbols any option uses."""
        return tuple(dict.fromkeys(s for opt in self.options for c in opt for s in c.symbols))

    @property
    def conditions(self) -> tuple[Condition, ...]:
        """Every condition of every option, in order."""
        return tuple(c for opt in self.options for c in opt)

    def bind(self, values: SizeValues) -> AnyOf:
        """This disjunction with its size symbols replaced by their values."""
        return AnyOf(tuple(tuple(c.bind(values) for c in opt) for opt in self.options))


WhereItem = Condition | AnyOf


def bind_where(
    where: tuple[WhereItem, ...] | list[WhereItem], values: SizeValues
) -> tuple[WhereItem, ...]:
    """A `where` clause with every size symbol replaced by its value in `values`.

    Raises:
        SymbolError: (a KeyError and a ValueError) naming a symbol missing from `values`.
    """
    if not where_symbols(where):
        return tuple(where)
    table = _str_keys(values)
    return tuple(item.bind(table) for item in where)


def where_symbols(where: tuple[WhereItem, ...] | list[WhereItem]) -> tuple[str, ...]:
    """Size symbols used anywhere in a `where` clause, in first-use order."""
    return tuple(dict.fromkeys(s for item in where for s in item.symbols))


def where_conditions(where: tuple[WhereItem, ...] | list[WhereItem]) -> tuple[Condition, ...]:
    """Every comparison of a `where` clause, including those inside disjunctions."""
    result: list[Condition] = []
    for item in where:
        result.extend(item.conditions if isinstance(item, AnyOf) else (item,))
    return tuple(result)


# ----------------------------------------------------------------------------- einsums


@dataclass(frozen=True, slots=True)
class Einsum:
    """`out = expr where conditions`. Right-side indices absent on the left are summed.

    `where` items must all hold; an `AnyOf` item holds when one of its options does.

    `line` and `column` locate the Einsum in its source file; they take no part in equality.
    """

    out: Access
    expr: Expr
    where: tuple[Condition | AnyOf, ...] = ()
    line: int = field(default=0, compare=False)
    column: int = field(default=0, compare=False)
    # (inputs, iteration_vars) once computed: mappers ask for them in their inner loops
    _derived: tuple[tuple[Access, ...], tuple[IndexName, ...]] | None = field(
        default=None, init=False, compare=False, repr=False
    )

    def __str__(self) -> str:
        from attnsim.einsum_ir.parse import format_einsum  # local: parse imports this module

        return format_einsum(self)

    def _facts(self) -> tuple[tuple[Access, ...], tuple[IndexName, ...]]:
        facts = self._derived
        if facts is None:
            out_vars = tuple(v.name for v in self.out.vars)
            facts = (reads(self.expr), _unique(out_vars + all_vars(self.expr)))
            object.__setattr__(self, "_derived", facts)
        return facts

    @property
    def output(self) -> TensorName:
        """The tensor this Einsum defines."""
        return self.out.tensor

    @property
    def inputs(self) -> tuple[Access, ...]:
        """All accesses on the right-hand side."""
        return self._facts()[0]

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
        return self._facts()[1]

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
class Gather:
    """Input `tensor` holds elements of input `source` picked by the values of `by`.

    A data-dependent selection (the top-k chunks of HCAM, the routed tokens of the Routing
    Transformer): the grammar has no index tensor, so the picked elements are an input over
    their own rank `rank` (in place of the source's), and this records where they come from.
    Reading them is reading `source` once `by` is known: the pass analysis counts that
    (`analysis.passes`).
    """

    tensor: TensorName
    source: TensorName
    by: tuple[TensorName, ...]
    rank: RankName


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
    params: tuple[tuple[RankName, int], ...] = ()  # rank sizes and other size symbols (W)
    init: tuple[tuple[TensorName, float], ...] = ()
    description: str = ""
    source: str = field(default="", compare=False)
    locations: tuple[tuple[str, int, int], ...] = field(default=(), compare=False)
    # What the cascade models by assumption rather than by structure (a data-dependent
    # selection given as a size, say): every mapper's Result repeats these as warnings.
    assumptions: tuple[str, ...] = field(default=(), compare=False)
    gathers: tuple[Gather, ...] = ()  # inputs that are data-dependent picks of other inputs
    _hash: int = field(default=0, init=False, compare=False, repr=False)
    _parents: tuple[tuple[RankName, RankName], ...] | None = field(
        default=None, init=False, compare=False, repr=False
    )

    def __hash__(self) -> int:
        # computed once: analyses memoize on the cascade, and hashing every Einsum of it on
        # each lookup cost more than some of the analyses
        cached: int = self._hash
        if not cached:
            cached = (
                hash(
                    (
                        self.name,
                        self.inputs,
                        self.einsums,
                        self.outputs,
                        self.partitions,
                        self.params,
                        self.init,
                        self.description,
                        self.gathers,
                    )
                )
                or 1
            )
            object.__setattr__(self, "_hash", cached)
        return cached

    def location(self, path: str) -> tuple[int, int]:
        """(line, column) of a YAML path such as `outputs[0]` in the source file, or (0, 0)."""
        for p, line, col in self.locations:
            if p == path:
                return line, col
        return 0, 0

    @property
    def size_symbols(self) -> tuple[str, ...]:
        """Names usable as size symbols in conditions and expressions: ranks, then params."""
        return tuple(dict.fromkeys([*self.all_ranks, *(n for n, _ in self.params)]))

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
        if not self.partitions:  # the common case, asked in every mapper's inner loops
            return rank
        pairs = self._parents
        if pairs is None:  # (part, root) pairs, computed once
            pairs = tuple((part, self._walk_up(part)) for part in self.part_parent)
            object.__setattr__(self, "_parents", pairs)
        for part, top in pairs:
            if part == rank:
                return top
        return rank

    def _walk_up(self, rank: RankName) -> RankName:
        parent = self.part_parent
        while rank in parent:
            rank = parent[rank]
        return rank
