"""Built-in cascade names: every composable variant, and the catalog `builtin_names()` lists.

Names are `attention-ALGORITHM[-HEADS][-MASK][-sigmoid][-MODIFIER]` with the defaults
(single head, no mask, softmax, no modifier) left out, so the 20 names of the original
YAML library keep their meaning: `attention-1pass-mh-causal` is the 1-pass algorithm,
multi-head, top-left causal, softmax. Examples of the new parts:
`attention-3pass-mh-causal-br`, `attention-1pass-gqa-window`,
`attention-1pass-mh-sinks-window`, `attention-1pass-mh-sigmoid`,
`attention-2pass-deferred-mh-softcap`.

Every combination of parts resolves by name (`variant_named`). The catalog is a chosen
subset: every algorithm with each part varied from the multi-head base, plus the original
20. Tests and the mapper contract suite walk the catalog, so its size is what they cost.
"""

from __future__ import annotations

import functools
import itertools

from attnsim.einsum_ir.library.builder import (
    Algorithm,
    Heads,
    MaskForm,
    ScoreForm,
    ScoreModifier,
    Variant,
)

LEGACY = tuple(
    Variant(a, h, m)
    for a in Algorithm
    for h in (Heads.SINGLE, Heads.MULTI)
    for m in (MaskForm.NONE, MaskForm.CAUSAL)
)
"""The 20 variants the YAML library had: algorithm x {one head, mh} x {full, causal}."""


def _catalog() -> tuple[Variant, ...]:
    rows: list[Variant] = list(LEGACY)
    for a in Algorithm:
        # CAB's causal cross pattern (bottom-right aligned) and the window masks.
        rows += [Variant(a, Heads.MULTI, m) for m in MaskForm if m not in (MaskForm.NONE,)]
        # Shared keys and values.
        rows += [Variant(a, Heads.GROUPED), Variant(a, Heads.MULTI_QUERY)]
        # Score modifiers.
        rows += [Variant(a, Heads.MULTI, modifier=s) for s in ScoreModifier if s.value != "none"]
    one = Algorithm.ONE_PASS
    rows += [
        Variant(one, Heads.SINGLE, score=ScoreForm.SIGMOID),
        Variant(one, Heads.MULTI, score=ScoreForm.SIGMOID),
        Variant(one, Heads.MULTI, MaskForm.CAUSAL_BR, ScoreForm.SIGMOID),
        Variant(one, Heads.GROUPED, MaskForm.CAUSAL_BR),
        Variant(one, Heads.GROUPED, MaskForm.WINDOW),
    ]
    return tuple(dict.fromkeys(rows))


CATALOG: tuple[Variant, ...] = _catalog()


def all_variants() -> tuple[Variant, ...]:
    """Every valid combination of parts (sigmoid only with the 1-pass algorithm)."""
    result = []
    for a, h, m, s, mod in itertools.product(Algorithm, Heads, MaskForm, ScoreForm, ScoreModifier):
        if s == ScoreForm.SIGMOID and a != Algorithm.ONE_PASS:
            continue
        result.append(Variant(a, h, m, s, mod))
    return tuple(result)


@functools.cache
def _by_name() -> dict[str, Variant]:
    return {v.name: v for v in all_variants()}


def variant_named(name: str) -> Variant | None:
    """The variant a built-in name denotes (catalog or composed), or None."""
    return _by_name().get(name)


def catalog_names() -> tuple[str, ...]:
    """Names of the catalog, sorted."""
    return tuple(sorted(v.name for v in CATALOG))


def all_names() -> tuple[str, ...]:
    """Names of every composable variant, sorted."""
    return tuple(sorted(_by_name()))
