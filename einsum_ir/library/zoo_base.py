"""The variant zoo's shared parts: the record of one built-in and the helpers that write Einsums.

A zoo cascade is Einsum text parsed with the user grammar (as `serving` does), so a
built-in is exactly what the equivalent YAML file would load. Masked variants are the
FuseMax 1-pass cascade with a `where` clause on every Einsum that works per key
(`masked_one_pass`); block structure (groups, frames, segments) is written as a union of
bands over the sequence cut into a fixed number of equal parts (`part_bounds`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from attnsim.einsum_ir.ir import Cascade, Einsum, Partition, RankName, TensorName
from attnsim.einsum_ir.library.builder import (
    KEY_TILE_DEFAULT,
    Algorithm,
    Heads,
    Variant,
    template,
)
from attnsim.einsum_ir.parse import parse_einsum

STATIC_MASKS = "static masks"
HEAD_STRUCTURE = "head and K/V structure"
LINEAR = "linear / recurrent"
SCORES = "score and normalization"
SELECTION = "dynamic selection and compression"

# The running state starts as a virtual key of logit -1e30 and value 0 (RM = -1e30,
# RD = 1, RNV = 0): its weight exp(-1e30 - max) is exactly 0 once any key is seen, and a
# row that sees no key (a group with no keys at tiny sizes) keeps RD = 1, RNV = 0 and
# outputs 0, FlashAttention's convention, with no 0/0 and no -inf - -inf.
MASKED_INIT = (
    (TensorName("RM"), -1.0e30),
    (TensorName("RD"), 1.0),
    (TensorName("RNV"), 0.0),
)
MH_INPUTS = (
    ("Q", ("B", "H", "E", "P")),
    ("K", ("B", "H", "E", "M")),
    ("V", ("B", "H", "F", "M")),
)
ONE_PASS_NOTE = """Algorithm: FuseMax's 1-pass cascade (Nayak et al., MICRO 2024, arXiv 2406.10491,
Cascade 5), multi-head (B, H on every tensor), unscaled like every built-in. The running
state starts as a virtual key of logit -1e30 and value 0 (RM = -1e30, RD = 1, RNV = 0):
its weight is exactly 0 once a key is seen, and a row that sees no key outputs 0."""

Params = tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class ZooCascade:
    """One built-in of the variant zoo.

    Attributes:
        name: Its built-in name, `attention-<variant>`.
        family: `static masks` or `head and K/V structure` (`cascade list` groups by it).
        description: One line.
        notes: What it computes, its source, and what is modelled or left out.
        passes: Passes over the keys that the write-up (variants.md) states.
        heads: Head structure shown by `cascade list` (mh, gqa, ...).
        mask: Mask shown by `cascade list` (a short name).
        algorithm: Algorithm shown by `cascade list` (1pass, chunked, recurrent, ...).
        score: Score function shown by `cascade list` (softmax, linear, ...).
    """

    name: str
    family: str
    description: str
    notes: str
    passes: int
    heads: str = "mh"
    mask: str = "none"
    algorithm: str = "1pass"
    score: str = "softmax"


Builder = Callable[[ZooCascade], Cascade]


# ----------------------------------------------------------------------------- mask text


def times(k: int, size: str) -> str:
    """`k*size`, or `size` for k = 1."""
    return size if k == 1 else f"{k}*{size}"


def part_bounds(var: str, k: int, parts: int, size: str) -> list[str]:
    """Conditions putting `var` in part k of `parts` equal parts of [0, size).

    Part k is k * size / parts <= var < (k + 1) * size / parts, written without division
    (`4*m >= 2*M and 4*m < 3*M`); part 0 has no lower bound.
    """
    conds = [f"{parts}*{var} >= {times(k, size)}"] if k > 0 else []
    return [*conds, f"{parts}*{var} < {times(k + 1, size)}"]


def any_of(options: Sequence[Sequence[str]]) -> str:
    """`(a and b) or c or ...`: a disjunction of conjunctions."""
    return " or ".join("(" + " and ".join(o) + ")" if len(o) > 1 else o[0] for o in options)


# ----------------------------------------------------------------------------- cascades


def einsums(lines: Sequence[str]) -> tuple[Einsum, ...]:
    """The Einsums of `lines`, parsed with the user grammar."""
    result = []
    for text in lines:
        parsed = parse_einsum(text)
        result.append(Einsum(parsed.out, parsed.expr, parsed.where))
    return tuple(result)


def declare(
    inputs: Sequence[tuple[str, Sequence[str]]],
) -> tuple[tuple[TensorName, tuple[RankName, ...]], ...]:
    """Input declarations from (name, ranks) pairs."""
    return tuple((TensorName(n), tuple(RankName(r) for r in rs)) for n, rs in inputs)


def one_pass_lines(
    where: str = "", query: str = "b,h,", key: str = "b,h,", value: str = "b,h,"
) -> list[str]:
    """The 1-pass Einsums, with `where` on every Einsum that works per key.

    `query`, `key` and `value` are the index prefixes of Q (and every intermediate), K and V
    (multi-head: `b,h,` on all three; shared K/V leave ranks out of `key` and `value`).
    """
    lines = []
    for text, _ in template(Variant(Algorithm.ONE_PASS, Heads.MULTI)):
        text = re.sub(r"\bK\[b,h,", "K[<key>", text)  # the inputs K and V, not QK or AV
        text = re.sub(r"\bV\[b,h,", "V[<value>", text)
        text = text.replace("[b,h,", f"[{query}")
        text = text.replace("<key>", key).replace("<value>", value)
        per_key = bool({"m", "m0"} & set(parse_einsum(text).iteration_vars))
        lines.append(f"{text} where {where}" if where and per_key else text)
    return lines


def cascade(
    entry: ZooCascade,
    inputs: Sequence[tuple[str, Sequence[str]]],
    lines: Sequence[str],
    params: Params = (),
    outputs: tuple[str, ...] = ("AV",),
    init: tuple[tuple[TensorName, float], ...] = MASKED_INIT,
    key_tiles: int | None = KEY_TILE_DEFAULT,
    assumptions: tuple[str, ...] = (),
) -> Cascade:
    """A zoo cascade: M split into key tiles M1 x M0 (of `key_tiles`; None: M unsplit).

    `init` defaults to the masked 1-pass initial state. `assumptions` (what is modelled by
    a statistic rather than by structure) reach every mapper's Result as warnings.
    """
    tile: Params = () if key_tiles is None else (("M0", key_tiles),)
    split = Partition(RankName("M"), (RankName("M1"), RankName("M0")))
    return Cascade(
        name=entry.name,
        inputs=declare(inputs),
        einsums=einsums(lines),
        outputs=tuple(TensorName(o) for o in outputs),
        partitions=(split,) if tile else (),
        params=tuple((RankName(n), v) for n, v in (*tile, *params)),
        init=init,
        description=entry.description,
        source=f"<builtin>/{entry.name}",
        assumptions=assumptions,
    )


def masked_one_pass(entry: ZooCascade, where: str, params: Params = ()) -> Cascade:
    """The 1-pass multi-head cascade with `where` on every Einsum that works per key."""
    return cascade(entry, MH_INPUTS, one_pass_lines(where), params)
