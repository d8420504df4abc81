"""A design's `sizes:`: values, expressions over the workload's sizes, or null to drop one."""

from __future__ import annotations

import ast
from typing import Any

from attnsim.einsum_ir.load import MAX_SIZE

_OPERATORS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//"}


def size_expression(text: str, sizes: dict[str, int] | set[str]) -> int:
    """The value of a size expression (integers, sizes by name, + - * / // and parentheses).

    With a set of names (no values) only the form is checked and 1 returned. `/` must divide
    exactly; `//` rounds down. Raises ValueError saying what is wrong.
    """
    where = f"size expression {text!r}"
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        raise ValueError(f"{where}: not an expression of sizes (such as 'P + M - 1')") from None

    def value(node: ast.AST) -> int:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, ast.Name):
            if isinstance(sizes, set):
                return 1
            if node.id not in sizes:
                known = ", ".join(sorted(sizes))
                raise ValueError(f"{where}: the workload has no size {node.id} (it has {known})")
            return sizes[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            left, right = value(node.left), value(node.right)
            if isinstance(node.op, ast.Add):
                return left + right
            if isinstance(node.op, ast.Sub):
                return left - right
            if isinstance(node.op, ast.Mult):
                return left * right
            if right == 0:
                raise ValueError(f"{where}: division by zero")
            if isinstance(node.op, ast.Div) and left % right and not isinstance(sizes, set):
                raise ValueError(f"{where}: {left} / {right} is not an integer (// rounds down)")
            return left // right
        raise ValueError(f"{where}: only integers, sizes by name, + - * / // and parentheses")

    return value(tree.body)


def design_sizes(sizes: dict[str, int], spec: dict[str, Any]) -> dict[str, int]:
    """A workload's sizes with a design's `sizes:` applied (in order, each seeing the earlier).

    A value is a size, an expression over the sizes so far (`P + M - 1`), or None, which drops
    a workload size the design's cascade has no rank for (a single-head cascade's H).
    """
    out = dict(sizes)
    for rank, v in spec.items():
        if v is None:
            out.pop(rank, None)
            continue
        n = v if isinstance(v, int) else size_expression(v, out)
        if not 0 < n <= MAX_SIZE:
            raise ValueError(f"size {rank} = {v} is {n}: expected a positive size (at most 2^40)")
        out[rank] = n
    return dict(sorted(out.items()))
