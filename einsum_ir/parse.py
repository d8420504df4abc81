"""Einsum text grammar: `parse_einsum(text) -> Einsum` and `format_einsum(einsum) -> text`.

Grammar (precedence low to high)::

    einsum    := access '=' expr ['where' anyof]
    access    := NAME '[' [index (',' index)*] ']'
    index     := lowername [('+'|'-') INT] | UPPERNAME        (UPPERNAME: final iterate)
    expr      := term (('+'|'-') term)*
    term      := unary (('*'|'/') unary)*
    unary     := '-' unary | atom
    atom      := NUMBER | 'inf' | access | FUNC '(' expr ')' | ('max'|'min') '(' expr ',' expr ')'
               | ('sum'|'max'|'min') '[' name (',' name)* ']' '(' expr ')' | '(' expr ')'
               | lowername                      (IndexValue: the index's value, e.g. p - m)
               | UPPERNAME                      (SizeValue: a rank size or a param, e.g. M)
    anyof     := allof ('or' allof)*            ('or' binds looser than 'and')
    allof     := clause ('and' clause)*
    clause    := cond | '(' anyof ')'
    cond      := linear CMP linear
    linear    := ['-'] lterm (('+'|'-') lterm)*
    lterm     := INT ['*' lname] | lname ['*' INT]
    lname     := lowername (index variable) | UPPERNAME (size symbol: a rank size or a param)

FUNC is exp, sigmoid, sqrt, recip, tanh, abs, log, step (1 where the argument is > 0, else
0), round (to the nearest integer, halves to even), cos or sin (of an angle in radians).
Linear forms have no parentheses, so
'(' in a `where` clause always opens a group of conditions. A top-level `A or B` is one
`AnyOf`; `A and (B or C)` is `A` and an `AnyOf`; an `or` nested inside an option of another
`or` is distributed into disjunctive normal form (the IR holds `AnyOf` options as plain
conjunctions).

Masked points: an output point whose conditions fail takes the identity of its reduction
(0 for a sum); a masked point of a recurrence step (`X[m1+1,p] = ... where c`) carries the
previous iterate `X[m1,p]` instead.

`str(einsum)` prints text that parses back to an equal Einsum.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from attnsim.einsum_ir.ir import (
    FUNCTION_UNARY_OPS,
    Access,
    AnyOf,
    Binary,
    BinaryOp,
    CmpOp,
    Condition,
    Einsum,
    Expr,
    Final,
    Index,
    IndexName,
    IndexValue,
    LinearExpr,
    Literal,
    RankName,
    Read,
    Reduce,
    ReduceOp,
    SizeValue,
    TensorName,
    Unary,
    UnaryOp,
    Var,
)

UNARY_FUNCTIONS = {op.value: op for op in FUNCTION_UNARY_OPS}
BINARY_FUNCTIONS = {"max": BinaryOp.MAX, "min": BinaryOp.MIN}
REDUCTIONS = {op.value: op for op in ReduceOp}
KNOWN_FUNCTIONS = tuple(sorted(set(UNARY_FUNCTIONS) | set(BINARY_FUNCTIONS)))
RESERVED = frozenset(KNOWN_FUNCTIONS) | frozenset(REDUCTIONS) | {"inf", "where", "and", "or"}
# Most options a `where` clause may expand to when nested `or`s are distributed.
MAX_OPTIONS = 64
MAX_NESTING = 32  # open sub-expressions in one Einsum
MAX_OPERATORS = 128  # binary operators in one Einsum
_Clause = list[Condition | AnyOf]


class ParseError(ValueError):
    """A syntax error in Einsum text; `column` is 0-based into `text`."""

    def __init__(self, message: str, text: str, column: int) -> None:
        super().__init__(message)
        self.message = message
        self.text = text
        self.column = column

    def caret(self) -> str:
        """The offending text with a caret under the error column (two lines)."""
        return f"    {self.text}\n    {' ' * self.column}^"

    def __str__(self) -> str:
        return f"{self.message} (column {self.column + 1})\n{self.caret()}"


_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+\.\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|\d+(?:[eE][-+]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z_0-9]*)"
    r"|(?P<op><=|>=|==|!=|[-+*/()\[\],=<>]))"
)


_SPACE = re.compile(r"\s*")


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "num", "name", "op", "end"
    text: str
    column: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        if _SPACE.match(text, pos).end() == len(text):  # type: ignore[union-attr]
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.lastgroup is None:
            col = pos + (len(text[pos:]) - len(text[pos:].lstrip()))
            raise ParseError(f"unexpected character {text[col]!r}", text, col)
        kind = match.lastgroup
        tokens.append(_Token(kind, match.group(kind), match.start(kind)))
        pos = match.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0
        self.depth = 0  # open sub-expressions (parentheses, calls, reductions, unary minus)
        self.operators = 0  # binary operators so far

    def nest(self) -> None:
        """Enter a sub-expression; past `MAX_NESTING` the text is refused, not recursed."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(
                f"expression nested deeper than {MAX_NESTING} levels; split it into several Einsums"
            )

    def count_operator(self) -> None:
        """Count one binary operator; past `MAX_OPERATORS` the text is refused."""
        self.operators += 1
        if self.operators > MAX_OPERATORS:
            raise self.error(
                f"more than {MAX_OPERATORS} operators in one Einsum; split it into several"
            )

    # -- token helpers
    @property
    def tok(self) -> _Token:
        return self.tokens[self.pos]

    def peek(self, ahead: int = 1) -> _Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def error(self, message: str, token: _Token | None = None) -> ParseError:
        tok = token or self.tok
        found = "end of text" if tok.kind == "end" else repr(tok.text)
        return ParseError(f"{message}, found {found}", self.text, tok.column)

    def accept(self, text: str) -> bool:
        if self.tok.kind in ("op", "name") and self.tok.text == text:
            self.pos += 1
            return True
        return False

    def expect(self, text: str, what: str | None = None) -> _Token:
        tok = self.tok
        if not self.accept(text):
            raise self.error(f"expected {what or repr(text)}")
        return tok

    def name(self, what: str) -> _Token:
        tok = self.tok
        if tok.kind != "name":
            raise self.error(f"expected {what}")
        self.pos += 1
        return tok

    def integer(self) -> int:
        tok = self.tok
        if tok.kind != "num" or not tok.text.isdigit():
            raise self.error("expected an integer")
        self.pos += 1
        return int(tok.text)

    # -- grammar
    def einsum(self) -> Einsum:
        out = self.access(self.name("an output tensor name"), is_output=True)
        self.expect("=", "'=' after the output access")
        expr = self.expr()
        where: _Clause = []
        if self.accept("where"):
            where = self.where_clause()
        if self.tok.kind != "end":
            hint = "an operator or 'where'" if not where else "'and', 'or' or end of text"
            raise self.error(f"expected {hint}")
        return Einsum(out=out, expr=expr, where=tuple(where))

    def access(self, name_tok: _Token, is_output: bool = False) -> Access:
        if name_tok.text in RESERVED:
            raise self.error(f"{name_tok.text!r} is reserved and cannot name a tensor", name_tok)
        self.expect("[", "'[' after the tensor name")
        indices: list[Index] = []
        if not self.accept("]"):
            indices.append(self.index())
            while self.accept(","):
                indices.append(self.index())
            self.expect("]", "',' or ']' in the index list")
        try:
            return Access(TensorName(name_tok.text), tuple(indices))
        except ValueError:
            raise ParseError(
                f"index repeated in access to {name_tok.text}", self.text, name_tok.column
            ) from None

    def index(self) -> Index:
        tok = self.name("an index (lowercase variable or uppercase rank)")
        if tok.text.isupper() or (tok.text[0].isupper() and not tok.text.islower()):
            if not tok.text.isupper():
                raise self.error("index names are lowercase variables or UPPERCASE ranks", tok)
            return Final(RankName(tok.text))
        if not tok.text.islower():
            raise self.error("index names are lowercase variables or UPPERCASE ranks", tok)
        offset = 0
        if self.tok.text in ("+", "-") and self.tok.kind == "op":
            sign = 1 if self.tok.text == "+" else -1
            self.pos += 1
            offset = sign * self.integer()
        return Var(IndexName(tok.text), offset)

    def expr(self) -> Expr:
        # Depth and operator count are bounded so that parsing, and every recursive walk of
        # the tree afterwards, stays far from Python's recursion limit.
        self.nest()
        left = self.term()
        while self.tok.kind == "op" and self.tok.text in ("+", "-"):
            op = BinaryOp.ADD if self.tok.text == "+" else BinaryOp.SUB
            self.count_operator()
            self.pos += 1
            left = Binary(op, left, self.term())
        self.depth -= 1
        return left

    def term(self) -> Expr:
        left = self.unary()
        while self.tok.kind == "op" and self.tok.text in ("*", "/"):
            op = BinaryOp.MUL if self.tok.text == "*" else BinaryOp.DIV
            self.count_operator()
            self.pos += 1
            left = Binary(op, left, self.unary())
        return left

    def unary(self) -> Expr:
        if self.accept("-"):
            self.nest()
            arg = self.unary()
            self.depth -= 1
            if isinstance(arg, Literal) and not math.copysign(1.0, arg.value) < 0:
                return Literal(-arg.value)
            return Unary(UnaryOp.NEG, arg)
        return self.atom()

    def atom(self) -> Expr:
        tok = self.tok
        if tok.kind == "num":
            self.pos += 1
            return Literal(float(tok.text))
        if self.accept("("):
            inner = self.expr()
            self.expect(")", "')'")
            return inner
        if tok.kind != "name":
            raise self.error("expected a value (tensor access, number, function or '(')")
        self.pos += 1
        nxt = self.tok.text if self.tok.kind == "op" else ""
        if tok.text == "inf":
            return Literal(math.inf)
        if tok.text in REDUCTIONS and nxt == "[":
            return self.reduction(REDUCTIONS[tok.text])
        if nxt == "(":
            return self.call(tok)
        if nxt == "[":
            return Read(self.access(tok))
        if tok.text in RESERVED:
            raise self.error(f"{tok.text!r} is reserved and cannot name a value", tok)
        if tok.text.islower():
            return IndexValue(IndexName(tok.text))
        if tok.text.isupper():
            return SizeValue(tok.text)
        raise self.error(
            f"expected '[' (tensor access) or '(' (function call) after {tok.text!r}; a bare "
            "name is a lowercase index (its value) or an UPPERCASE size symbol",
            tok,
        )

    def call(self, tok: _Token) -> Expr:
        self.expect("(")
        if tok.text in UNARY_FUNCTIONS:
            arg = self.expr()
            self.expect(")", f"')' closing {tok.text}(")
            return Unary(UNARY_FUNCTIONS[tok.text], arg)
        if tok.text in BINARY_FUNCTIONS:
            self.count_operator()
            left = self.expr()
            self.expect(",", f"',' between the two arguments of {tok.text}(x, y)")
            right = self.expr()
            self.expect(")", f"')' closing {tok.text}(")
            return Binary(BINARY_FUNCTIONS[tok.text], left, right)
        known = ", ".join(KNOWN_FUNCTIONS)
        raise ParseError(f"unknown function {tok.text!r}; known: {known}", self.text, tok.column)

    def reduction(self, op: ReduceOp) -> Expr:
        self.expect("[")
        over = [self.index_name()]
        while self.accept(","):
            over.append(self.index_name())
        self.expect("]", "',' or ']' in the reduction index list")
        if len(set(over)) != len(over):
            raise self.error("index repeated in reduction list")
        self.expect("(", f"'(' after {op.value}[...]")
        body = self.expr()
        self.expect(")", f"')' closing {op.value}[...](")
        return Reduce(op, tuple(over), body)

    def index_name(self) -> IndexName:
        tok = self.name("a lowercase index variable")
        if not tok.text.islower():
            raise self.error("reduction indices are lowercase variables", tok)
        return IndexName(tok.text)

    def where_clause(self) -> _Clause:
        start = self.tok
        options = self.disjunction()
        if len(options) == 1:
            return options[0]
        return [self.any_of(options, start)]

    def disjunction(self) -> list[_Clause]:
        options = [self.conjunction()]
        while self.accept("or"):
            options.append(self.conjunction())
        return options

    def conjunction(self) -> _Clause:
        items = self.clause()
        while self.accept("and"):
            items.extend(self.clause())
        return items

    def clause(self) -> _Clause:
        start = self.tok
        if not self.accept("("):
            return [self.condition()]
        self.nest()
        options = self.disjunction()
        self.expect(")", "')' closing the group of conditions")
        self.depth -= 1
        if len(options) == 1:
            return options[0]
        return [self.any_of(options, start)]

    def any_of(self, options: list[_Clause], start: _Token) -> AnyOf:
        """The options as one disjunction of plain conjunctions (nested `or`s distributed)."""
        flat: list[tuple[Condition, ...]] = []
        for items in options:
            conjunctions: list[tuple[Condition, ...]] = [()]
            for item in items:
                if isinstance(item, Condition):
                    conjunctions = [c + (item,) for c in conjunctions]
                else:
                    conjunctions = [c + opt for c in conjunctions for opt in item.options]
                if len(conjunctions) > MAX_OPTIONS:
                    break
            flat.extend(conjunctions)
            if len(flat) > MAX_OPTIONS:
                raise ParseError(
                    f"the conditions expand to more than {MAX_OPTIONS} alternatives",
                    self.text,
                    start.column,
                )
        return AnyOf(tuple(flat))

    def condition(self) -> Condition:
        lhs = self.linear()
        tok = self.tok
        ops = {op.value: op for op in CmpOp}
        if tok.kind != "op" or tok.text not in ops:
            raise self.error("expected a comparison (<, <=, >, >=, ==, !=)")
        self.pos += 1
        return Condition(lhs, ops[tok.text], self.linear())

    def linear(self) -> LinearExpr:
        coefs: dict[IndexName, int] = {}
        symbols: dict[str, int] = {}
        const = 0
        sign = -1 if self.accept("-") else 1
        while True:
            name, value = self.linear_term()
            if name is None:
                const += sign * value
            elif name.isupper():
                symbols[name] = symbols.get(name, 0) + sign * value
            else:
                var = IndexName(name)
                coefs[var] = coefs.get(var, 0) + sign * value
            if self.accept("+"):
                sign = 1
            elif self.tok.kind == "op" and self.tok.text == "-":
                self.pos += 1
                sign = -1
            else:
                return LinearExpr(tuple(coefs.items()), const, tuple(symbols.items()))

    def linear_term(self) -> tuple[str | None, int]:
        if self.tok.kind == "num":
            value = self.integer()
            if self.accept("*"):
                return self.linear_name(), value
            return None, value
        if self.tok.kind != "name":
            raise self.error(
                "expected an index variable or an integer (or an UPPERCASE size symbol)"
            )
        name = self.linear_name()
        if self.accept("*"):
            return name, self.integer()
        return name, 1

    def linear_name(self) -> str:
        tok = self.name("a lowercase index variable or an UPPERCASE size symbol")
        if tok.text in RESERVED:
            raise self.error(f"{tok.text!r} is reserved and cannot be used in a condition", tok)
        if not (tok.text.islower() or tok.text.isupper()):
            raise self.error(
                "names in conditions are lowercase index variables or UPPERCASE size symbols",
                tok,
            )
        return tok.text


def parse_einsum(text: str) -> Einsum:
    """Parse one Einsum; raises `ParseError` (with a column) on malformed text."""
    return _Parser(text).einsum()


# ----------------------------------------------------------------------------- printing

_PRECEDENCE = {BinaryOp.ADD: 1, BinaryOp.SUB: 1, BinaryOp.MUL: 2, BinaryOp.DIV: 2}
_UNARY_PRECEDENCE = 3
_ATOM_PRECEDENCE = 4


def _precedence(expr: Expr) -> int:
    if isinstance(expr, Binary) and expr.op in _PRECEDENCE:
        return _PRECEDENCE[expr.op]
    if isinstance(expr, Unary) and expr.op is UnaryOp.NEG:
        return _UNARY_PRECEDENCE
    if isinstance(expr, Literal) and (expr.value < 0 or math.copysign(1.0, expr.value) < 0):
        return _UNARY_PRECEDENCE
    return _ATOM_PRECEDENCE


def _number(value: float) -> str:
    if math.isinf(value):
        return "-inf" if value < 0 else "inf"
    if value.is_integer() and abs(value) < 1e15:
        text = str(int(value))
        return "-0" if text == "0" and math.copysign(1.0, value) < 0 else text
    return repr(value)


def format_expr(expr: Expr) -> str:
    """Print an expression with the fewest parentheses that keep its tree shape."""
    if isinstance(expr, Literal):
        return _number(expr.value)
    if isinstance(expr, Read):
        return str(expr.access)
    if isinstance(expr, IndexValue):
        return expr.var
    if isinstance(expr, SizeValue):
        return expr.name
    if isinstance(expr, Reduce):
        return f"{expr.op.value}[{','.join(expr.over)}]({format_expr(expr.body)})"
    if isinstance(expr, Unary):
        if expr.op is UnaryOp.NEG:
            inner = format_expr(expr.arg)
            if _precedence(expr.arg) < _ATOM_PRECEDENCE:
                inner = f"({inner})"
            return f"-{inner}"
        return f"{expr.op.value}({format_expr(expr.arg)})"
    if expr.op not in _PRECEDENCE:
        return f"{expr.op.value}({format_expr(expr.left)}, {format_expr(expr.right)})"
    prec = _PRECEDENCE[expr.op]
    left = format_expr(expr.left)
    if _precedence(expr.left) < prec:
        left = f"({left})"
    right = format_expr(expr.right)
    # A right operand of equal precedence needs parentheses to keep the tree's shape.
    if _precedence(expr.right) <= prec:
        right = f"({right})"
    return f"{left} {expr.op.value} {right}"


def format_linear(lin: LinearExpr) -> str:
    """Print an affine index form, e.g. `p - m + M - P + 3`."""
    parts: list[str] = []
    for name, coef in (*lin.terms, *lin.symbols):
        mag = abs(coef)
        body = name if mag == 1 else f"{mag} * {name}"
        if not parts:
            parts.append(body if coef > 0 else f"-{body}")
        else:
            parts.append(f"+ {body}" if coef > 0 else f"- {body}")
    if lin.const or not parts:
        if not parts:
            parts.append(str(lin.const))
        else:
            parts.append(f"+ {lin.const}" if lin.const > 0 else f"- {-lin.const}")
    return " ".join(parts)


def format_condition(cond: Condition) -> str:
    """Print one comparison of a `where` clause."""
    return f"{format_linear(cond.lhs)} {cond.op.value} {format_linear(cond.rhs)}"


def format_any_of(any_of: AnyOf) -> str:
    """Print a disjunction without outer parentheses: `a < b and c < d or e < f`."""
    return " or ".join(" and ".join(format_condition(c) for c in opt) for opt in any_of.options)


def format_where(where: tuple[Condition | AnyOf, ...]) -> str:
    """Print a `where` clause (without the keyword); a lone `AnyOf` needs no parentheses."""
    if len(where) == 1 and isinstance(where[0], AnyOf):
        return format_any_of(where[0])
    return " and ".join(
        f"({format_any_of(item)})" if isinstance(item, AnyOf) else format_condition(item)
        for item in where
    )


def format_einsum(einsum: Einsum) -> str:
    """Print an Einsum as parseable text."""
    text = f"{einsum.out} = {format_expr(einsum.expr)}"
    if einsum.where:
        text += " where " + format_where(einsum.where)
    return text
