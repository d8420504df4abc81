"""The library from parts: old names unchanged, every part read back from structure, CAB's
four patterns against the numpy reference, and operation counts equal to the visible points."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from attnsim.einsum_ir import builtin_names, count_ops, load_cascade, load_cascade_text
from attnsim.einsum_ir.analysis.structure import MaskKind, Modifier, ScoreKind, attention_problem
from attnsim.einsum_ir.check import check_cascade
from attnsim.einsum_ir.execute import evaluate, evaluate_all, random_inputs
from attnsim.einsum_ir.library import (
    CATALOG,
    LEGACY,
    Algorithm,
    Heads,
    MaskForm,
    ScoreForm,
    ScoreModifier,
    Variant,
    all_names,
    all_variants,
    catalog_names,
    serving_names,
    training_names,
    variant_named,
    zoo_names,
)
from attnsim.einsum_ir.load import builtin_text, format_cascade
from attnsim.einsum_ir.reference import attention_mask, reference_for
from attnsim.einsum_ir.sizes import resolve_sizes

LEGACY_DIR = Path(__file__).parent / "data" / "legacy_library"
LEGACY_FILES = sorted(LEGACY_DIR.glob("*.yaml"))


def sizes_for(name: str, **sizes: int) -> dict[str, int]:
    base = {"E": 3, "F": 2, "B": 1, "H": 2, "G": 2, "R": 2, "M0": 4, "W": 4, "S": 2, "C": 2, "L": 3}
    symbols = set(load_cascade(name).size_symbols)
    return {k: v for k, v in (base | sizes).items() if k in symbols}


def check_reference(name: str, sizes: dict[str, int], seed: int = 0, scale: float = 1.0) -> None:
    cascade = load_cascade(name)
    inputs = {k: scale * v for k, v in random_inputs(cascade, sizes, seed=seed).items()}
    values = evaluate_all(cascade, inputs, sizes)
    resolved = {str(k): v for k, v in resolve_sizes(cascade, sizes).items()}
    ref = reference_for(name)
    assert ref is not None
    want = ref.compute(inputs, resolved)
    for tensor, value in values.items():
        if "plain" not in name:  # the plain form may overflow by design
            assert not np.isnan(np.asarray(value)).any(), f"{name} {sizes}: NaN in {tensor}"
    np.testing.assert_allclose(values["AV"], want, rtol=1e-9, atol=1e-9, err_msg=f"{name} {sizes}")


# ----------------------------------------------------------------------------- names


def test_legacy_files_are_frozen_here() -> None:
    assert len(LEGACY_FILES) == 20
    assert sorted(p.stem for p in LEGACY_FILES) == sorted(v.name for v in LEGACY)


@pytest.mark.parametrize("path", LEGACY_FILES, ids=lambda p: p.stem)
def test_old_names_load_what_their_yaml_file_loaded(path: Path) -> None:
    old = load_cascade_text(path.read_text(encoding="utf-8"), str(path))
    assert load_cascade(path.stem) == old
    assert path.stem in builtin_names()


def test_builtin_names_are_the_catalog() -> None:
    # the catalog of parts plus the serving cascades (MLA, split-K, decode; test_serving.py)
    # the variant zoo (test_zoo_*.py) and the backward built-ins (test_training.py)
    others = {*serving_names(), *zoo_names(), *training_names()}
    composed = tuple(n for n in builtin_names() if n not in others)
    assert composed == tuple(sorted(v.name for v in CATALOG))
    assert len(set(composed)) == len(CATALOG)
    assert set(composed) <= set(all_names())
    algorithms, heads, masks, modifiers = len(Algorithm), len(Heads), len(MaskForm), 3
    # softmax with every algorithm, sigmoid with the 1-pass one only
    expected = algorithms * heads * masks * modifiers + heads * masks * modifiers
    assert len(all_names()) == len(all_variants()) == expected


def test_names_are_parts_joined_with_defaults_left_out() -> None:
    assert Variant(Algorithm.ONE_PASS).name == "attention-1pass"
    v = Variant(Algorithm.THREE_PASS, Heads.MULTI, MaskForm.CAUSAL_BR)
    assert v.name == "attention-3pass-mh-causal-br"
    v = Variant(Algorithm.ONE_PASS, Heads.GROUPED, MaskForm.WINDOW)
    assert v.name == "attention-1pass-gqa-window"
    v = Variant(Algorithm.ONE_PASS, Heads.MULTI, score=ScoreForm.SIGMOID)
    assert v.name == "attention-1pass-mh-sigmoid"
    v = Variant(
        Algorithm.TWO_PASS_DEFERRED,
        Heads.MULTI_QUERY,
        MaskForm.SINKS_WINDOW,
        modifier=ScoreModifier.SOFTCAP,
    )
    assert v.name == "attention-2pass-deferred-mqa-sinks-window-softcap"
    for variant in all_variants():
        assert variant_named(variant.name) == variant
    assert variant_named("attention-3pass-sigmoid") is None
    with pytest.raises(ValueError, match="sigmoid attention is 1 pass"):
        Variant(Algorithm.THREE_PASS, score=ScoreForm.SIGMOID)


def test_composed_names_resolve_outside_the_catalog() -> None:
    name = "attention-2pass-tilemax-gqa-sinks-window-alibi"
    assert name not in builtin_names()
    cascade = load_cascade(name)
    assert cascade.name == name and cascade.source == f"<builtin>/{name}"


def test_unknown_name_lists_the_catalog() -> None:
    from attnsim.einsum_ir import SpecError

    with pytest.raises(SpecError, match="did you mean attention-1pass-mh"):
        load_cascade("attention-1pass-mhh")


def test_user_files_still_load(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(LEGACY_FILES[0].read_text(encoding="utf-8").replace("cascade: ", "cascade: x"))
    assert load_cascade(path).name.startswith("x")
    assert load_cascade(str(path)).source == str(path)


@pytest.mark.parametrize("name", all_names())
def test_every_variant_is_a_valid_cascade_and_writes_back_as_yaml(name: str) -> None:
    cascade = load_cascade(name)
    assert check_cascade(cascade, frozenset()) == []
    text = builtin_text(name)
    assert load_cascade_text(text, f"{name}.yaml") == cascade
    assert load_cascade_text(format_cascade(cascade)) == cascade


# ----------------------------------------------------------------------------- structure


def _expected_mask(variant: Variant) -> tuple[MaskKind, str]:
    return {
        MaskForm.NONE: (MaskKind.NONE, ""),
        MaskForm.CAUSAL: (MaskKind.CAUSAL, "top-left"),
        MaskForm.CAUSAL_BR: (MaskKind.CAUSAL, "bottom-right"),
        MaskForm.WINDOW: (MaskKind.WINDOW, "bottom-right"),
        MaskForm.SINKS_WINDOW: (MaskKind.SINKS_WINDOW, "bottom-right"),
        MaskForm.PREFIX: (MaskKind.BAND, ""),  # a union of bands without a named form
    }[variant.mask]


@pytest.mark.parametrize("name", catalog_names())
def test_structure_reads_back_every_part(name: str) -> None:
    variant = variant_named(name)
    assert variant is not None
    sizes = sizes_for(name, M=40, P=24, W=9, S=3)
    ap = attention_problem(load_cascade(name), sizes)
    assert (ap.roles.key, ap.roles.query) == ("M", "P")
    assert (ap.roles.score_dims, ap.roles.value_dims) == (("E",), ("F",))
    kind, alignment = _expected_mask(variant)
    assert (ap.mask.kind, ap.mask.causal_alignment) == (kind, alignment)
    if variant.mask in (MaskForm.WINDOW, MaskForm.SINKS_WINDOW):
        assert ap.mask.window == 9
    if variant.mask == MaskForm.SINKS_WINDOW:
        assert ap.mask.sinks == 3
    expected_score = ScoreKind.SIGMOID if variant.score == ScoreForm.SIGMOID else ScoreKind.SOFTMAX
    assert ap.score.kind == expected_score and ap.score.passes == variant.passes
    modifier = {
        ScoreModifier.NONE: None,
        ScoreModifier.ALIBI: Modifier.POSITION_BIAS,
        ScoreModifier.SOFTCAP: Modifier.SOFTCAP,
    }[variant.modifier]
    if modifier is not None:
        assert modifier in ap.score.modifiers
    batch, groups = {
        Heads.SINGLE: (set(), ()),
        Heads.MULTI: ({"B", "H"}, ()),
        Heads.GROUPED: ({"B", "G"}, ("R",)),
        Heads.MULTI_QUERY: ({"B"}, ("R",)),
    }[variant.heads]
    assert set(ap.roles.batch) == batch and ap.roles.query_groups == groups
    assert ap.sharing_of("K") == groups and ap.sharing_of("V") == groups
    assert ap.sharing_of("Q") == ()


def test_window_and_sinks_defaults_and_overrides() -> None:
    cascade = load_cascade("attention-1pass-mh-sinks-window")
    assert dict(cascade.params) == {"M0": 256, "S": 4, "W": 1024}
    ap = attention_problem(cascade, {"B": 1, "H": 1, "E": 8, "F": 8, "M": 4096, "P": 4096})
    assert (ap.mask.sinks, ap.mask.window) == (4, 1024)
    ap = attention_problem(cascade, {"B": 1, "H": 1, "E": 8, "F": 8, "M": 4096, "P": 1, "W": 64})
    assert ap.points() == 4 + 64
    assert dict(load_cascade("attention-1pass-gqa").params) == {"M0": 256, "G": 8, "R": 4}


# ----------------------------------------------------------------------------- CAB patterns

# CAB's four patterns (Liu et al., "CAB: Comprehensive Attention Benchmarking"): non-causal
# and causal self attention (P = M), non-causal and causal cross attention (P != M). Causal
# cross attention is bottom-right aligned: the last query sees every key.
PATTERNS = {
    "non-causal-self": ("", {"M": 11, "P": 11}),
    "causal-self": ("-causal", {"M": 11, "P": 11}),
    "non-causal-cross": ("", {"M": 13, "P": 6}),
    "causal-cross": ("-causal-br", {"M": 13, "P": 6}),
    "non-causal-cross-wide": ("", {"M": 6, "P": 9}),
    "causal-cross-wide": ("-causal-br", {"M": 6, "P": 9}),
}


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("heads", ["", "-mh"])
@pytest.mark.parametrize("algorithm", [str(a) for a in Algorithm])
def test_cab_patterns_match_the_reference(algorithm: str, heads: str, pattern: str) -> None:
    suffix, shape = PATTERNS[pattern]
    name = f"attention-{algorithm}{heads}{suffix}"
    sizes = sizes_for(name, **shape)
    check_reference(name, sizes, seed=len(name))
    cascade = load_cascade(name)
    ap = attention_problem(cascade, sizes)
    visible = attention_mask(shape["P"], shape["M"], "causal-br" if suffix else "none")
    assert ap.points() == int(visible.sum())
    if pattern == "causal-cross":
        assert ap.mask.causal_alignment == "bottom-right"


# ----------------------------------------------------------------------------- masks & NaN

# (M, P, M0, W, S): P != M, M not a multiple of the tile, windows that hide whole leading
# tiles, more queries than keys (rows that see no key), one tile wider than M.
SHAPES = [(13, 5, 4, 3, 2), (7, 11, 4, 4, 1), (9, 9, 4, 20, 2), (21, 21, 4, 2, 1), (3, 2, 8, 2, 1)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "M{}-P{}-M0{}-W{}-S{}".format(*s))
@pytest.mark.parametrize("name", all_names())
def test_every_variant_matches_the_reference(name: str, shape: tuple[int, ...]) -> None:
    m, p, m0, w, s = shape
    check_reference(name, sizes_for(name, M=m, P=p, M0=m0, W=w, S=s), seed=m * p + w)


@pytest.mark.parametrize(
    "name",
    [
        f"attention-{a}-mh-{mask}"
        for a in ("1pass", "2pass-tilemax")
        for mask in ("window", "sinks-window", "causal-br")
    ],
)
def test_hidden_key_tiles_give_no_nan_with_large_scores(name: str) -> None:
    # W = 2 over tiles of 4: every query's leading tiles are wholly masked, some trailing
    # tiles too; scores of size ~100 make any -inf - -inf or overflow visible.
    sizes = sizes_for(name, M=24, P=24, M0=4, W=2, S=1)
    check_reference(name, sizes, seed=3, scale=10.0)
    cascade = load_cascade(name)
    if cascade.name.startswith("attention-1pass"):
        assert cascade.init_values["RM"] == -1.0e30


def test_rows_without_keys_are_zero() -> None:
    # bottom-right causal with P > M: the first P - M queries see no key (FlashAttention: 0)
    for algorithm in Algorithm:
        name = f"attention-{algorithm}-causal-br"
        sizes = sizes_for(name, M=3, P=7, M0=2)
        cascade = load_cascade(name)
        out = evaluate(cascade, random_inputs(cascade, sizes, seed=1), sizes)["AV"]
        assert np.all(out[:, :4] == 0) and np.all(out[:, 4:] != 0), name


# ----------------------------------------------------------------------------- counts


PREFIX = 3  # L of the prefix-LM mask in these tests (sizes_for's default)


def brute_points(mask: str, n_q: int, n_k: int, window: int, sinks: int) -> int:
    count = 0
    for p in range(n_q):
        for m in range(n_k):
            d = p + n_k - n_q - m
            causal = {"none": True, "causal": m <= p}.get(mask, d >= 0)
            if mask == "window":
                causal = causal and d < window
            if mask == "sinks-window":
                causal = causal and (d < window or m < sinks)
            if mask == "prefix":
                causal = causal or m < PREFIX
            count += causal
    return count


@pytest.mark.parametrize("shape", [(16, 16, 4, 5, 2), (37, 10, 8, 6, 3), (10, 23, 4, 7, 1)])
@pytest.mark.parametrize("name", catalog_names())
def test_score_einsum_counts_the_visible_points(name: str, shape: tuple[int, ...]) -> None:
    m, p, m0, w, s = shape
    variant = variant_named(name)
    assert variant is not None
    sizes = sizes_for(name, M=m, P=p, M0=m0, W=w, S=s)
    cascade = load_cascade(name)
    ap = attention_problem(cascade, sizes)
    counts = count_ops(cascade, sizes)
    score = counts.per_einsum[0]  # QK = Q * K, summed over E
    assert score.output == "QK"
    resolved = resolve_sizes(cascade, sizes)
    per_pair = resolved["E"] * ap.instances * ap.query_group
    brute = brute_points(str(variant.mask), p, m, w, s)
    visible = attention_mask(p, m, str(variant.mask), window=w, sinks=s, prefix=PREFIX)
    assert ap.points() == brute == int(visible.sum())
    assert score.points == per_pair * brute
    assert counts.total["multiply"] >= score.points
    # every per-key Einsum counts exactly the visible pairs (times its own extra ranks)
    exp_einsum = next(r for r in counts.per_einsum if r.counts["exp"] or r.counts["sigmoid"])
    assert exp_einsum.points == ap.instances * ap.query_group * brute
