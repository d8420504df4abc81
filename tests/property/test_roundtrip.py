"""Property tests: Einsum text round trip, and malformed input always yields a clean error."""

from __future__ import annotations

import math

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from attnsim.einsum_ir.ir import (
    Access,
    AnyOf,
    Binary,
    BinaryOp,
    CmpOp,
    Condition,
    Einsum,
    Expr,
    Final,
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
from attnsim.einsum_ir.load import builtin_names, builtin_text, load_cascade_text
from attnsim.einsum_ir.parse import ParseError, parse_einsum
from attnsim.einsum_ir.spec import SpecError

VARS = [IndexName(v) for v in ("m", "p", "e", "f", "m1", "m0", "b", "h")]
TENSORS = [TensorName(t) for t in ("Q", "K", "QK", "RM", "SLN", "X_1", "av")]

index = st.one_of(
    st.builds(Var, st.sampled_from(VARS), st.sampled_from([0, 0, 0, 1, -2])),
    st.builds(Final, st.sampled_from([RankName("M1"), RankName("P")])),
)


@st.composite
def accesses(draw: st.DrawFn) -> Access:
    idx = draw(st.lists(index, max_size=4, unique_by=lambda i: getattr(i, "name", str(i))))
    return Access(draw(st.sampled_from(TENSORS)), tuple(idx))


numbers = st.one_of(
    st.integers(-1000, 1000).map(float),
    st.floats(allow_nan=False, allow_infinity=True, width=64),
)
literals = numbers.map(Literal)


def _not_neg_literal(arg: Expr) -> bool:
    # The parser folds `-<number>` into a negative literal; Neg(non-negative literal) never
    # comes out of parsing, so it is not a canonical tree.
    return not (isinstance(arg, Literal) and math.copysign(1.0, arg.value) > 0)


def extend(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    return st.one_of(
        st.builds(Unary, st.sampled_from(list(UnaryOp)), children).filter(
            lambda u: u.op is not UnaryOp.NEG or _not_neg_literal(u.arg)
        ),
        st.builds(Binary, st.sampled_from(list(BinaryOp)), children, children),
        st.builds(
            Reduce,
            st.sampled_from(list(ReduceOp)),
            st.lists(st.sampled_from(VARS), min_size=1, max_size=2, unique=True).map(tuple),
            children,
        ),
    )


SYMBOLS = ["M", "P", "W", "S", "M0"]
leaves = st.one_of(
    literals,
    accesses().map(Read),
    st.sampled_from(VARS).map(IndexValue),
    st.sampled_from(SYMBOLS).map(SizeValue),
)
exprs = st.recursive(leaves, extend, max_leaves=8)


@st.composite
def linear(draw: st.DrawFn) -> LinearExpr:
    terms = draw(st.dictionaries(st.sampled_from(VARS), st.integers(-3, 3), max_size=3))
    symbols = draw(st.dictionaries(st.sampled_from(SYMBOLS), st.integers(-3, 3), max_size=2))
    return LinearExpr(tuple(terms.items()), draw(st.integers(-300, 300)), tuple(symbols.items()))


conditions = st.builds(Condition, linear(), st.sampled_from(list(CmpOp)), linear())
any_ofs = st.lists(
    st.lists(conditions, min_size=1, max_size=2).map(tuple), min_size=2, max_size=3
).map(lambda options: AnyOf(tuple(options)))
where_items = st.one_of(conditions, any_ofs)


@st.composite
def einsums(draw: st.DrawFn) -> Einsum:
    out_idx = draw(st.lists(st.sampled_from(VARS), max_size=3, unique=True))
    shift = draw(st.booleans()) and bool(out_idx)
    indices = tuple(Var(v, 1 if shift and k == 0 else 0) for k, v in enumerate(out_idx))
    out = Access(draw(st.sampled_from(TENSORS)), indices)
    return Einsum(out, draw(exprs), tuple(draw(st.lists(where_items, max_size=2))))


@settings(max_examples=400, deadline=None)
@given(einsums())
def test_text_round_trip(einsum: Einsum) -> None:
    text = str(einsum)
    again = parse_einsum(text)
    assert again == einsum, text
    assert str(again) == text


fragments = st.sampled_from(
    [
        "QK",
        "[",
        "]",
        "m",
        "p",
        ",",
        "=",
        "*",
        "+",
        "-",
        "/",
        "(",
        ")",
        "exp",
        "max",
        "sum",
        "where",
        "and",
        "<=",
        "<",
        "1",
        "2.5",
        "inf",
        "M1",
        "m1+1",
        " ",
        "tanh",
        "!",
        "==",
        "e",
        "or",
        "W",
        "log",
        "abs",
    ]
)


@settings(max_examples=600, deadline=None)
@given(st.one_of(st.lists(fragments, max_size=25).map("".join), st.text(max_size=40)))
def test_malformed_einsum_text_gives_parse_error(text: str) -> None:
    try:
        e = parse_einsum(text)
    except ParseError as exc:
        assert 0 <= exc.column <= len(text)
        assert exc.message
    else:
        assert parse_einsum(str(e)) == e


def _builtin_texts() -> list[str]:
    return [builtin_text(n) for n in builtin_names()]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(_builtin_texts()),
    st.lists(
        st.tuples(
            st.integers(0, 2000),
            st.integers(0, 5),
            st.sampled_from(
                ["", "x", "[", "]", ":", "-", "  ", "\n", "{", "'", "M1", "max", "m0", "=", "*"]
            ),
        ),
        max_size=4,
    ),
)
def test_mutated_cascade_yaml_loads_or_gives_spec_error(text: str, edits: list) -> None:  # type: ignore[type-arg]
    for pos, cut, insert in edits:
        pos = pos % (len(text) + 1)
        text = text[:pos] + insert + text[pos + cut :]
    try:
        load_cascade_text(text, "mutant.yaml")
    except SpecError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.file == "mutant.yaml"
            assert problem.message


yaml_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8), st.floats()),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(
            st.sampled_from(
                [
                    "cascade",
                    "inputs",
                    "einsums",
                    "outputs",
                    "init",
                    "params",
                    "partitions",
                    "Q",
                    "M",
                    "x",
                ]
            ),
            children,
            max_size=4,
        ),
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(yaml_values)
def test_random_yaml_structures_give_spec_error(value: object) -> None:
    text = yaml.safe_dump(value)
    try:
        load_cascade_text(text, "random.yaml")
    except SpecError as exc:
        assert exc.problems
