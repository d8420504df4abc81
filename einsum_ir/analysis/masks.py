"""Masks: `where` conditions read as a union of bands, and the named forms they take.

A condition of the linear family compares `a*m + b*p + const` with 0 where (a, b) is a
multiple of (1, 0), (0, 1) or (1, -1): a bound on the key, on the query or on the diagonal
offset m - p. Size symbols (`M - P`, `W`) are bound to their sizes first. A conjunction is
the intersection of bands; a disjunction (`or`) distributes into a union. Anything else
(another slope, another rank) has no band form: the mask is GENERIC.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from attnsim.einsum_ir.analysis.tiles import Band
from attnsim.einsum_ir.ir import AnyOf, Condition, LinearExpr


class MaskKind(enum.StrEnum):
    """Named forms of the linear mask family (the bands say exactly which pairs)."""

    NONE = "none"
    CAUSAL = "causal"
    WINDOW = "window"
    SINKS_WINDOW = "sinks+window"
    BAND = "band"  # any other union of bands
    GENERIC = "generic"  # conditions outside the linear family (classified by enumeration)


@dataclass(frozen=True, slots=True)
class Mask:
    """The mask at concrete sizes.

    Attributes:
        kind: Its named form.
        bands: The visible pairs as a union of bands (linear family); empty for GENERIC.
        text: The conditions as written.
        causal_alignment: "top-left", "bottom-right" or "" (not causal, or offset other).
        window: Window width W (keys a query sees up to its diagonal), 0 if none.
        sinks: Keys always visible (the first S), 0 if none.
        uniform: Whether every keys x queries Einsum has these conditions (else the tiles
            follow the loosest one; see the problem's notes).
        key_tile_aligned: Whether the conditions read the position inside a key tile (`m0`,
            the chunked forms, CCA's groups): the bands hold per key tile of the cascade's
            own partition, which a kernel with other tiles does not share.
    """

    kind: MaskKind
    bands: tuple[Band, ...]
    text: str
    causal_alignment: str = ""
    window: int = 0
    sinks: int = 0
    uniform: bool = True
    key_tile_aligned: bool = False

    @property
    def is_dense(self) -> bool:
        """Whether every pair is visible."""
        return self.kind == MaskKind.NONE

    def describe(self) -> str:
        """A one-line description, e.g. `window W=1024 (causal, bottom-right)`."""
        if self.kind == MaskKind.NONE:
            return "none"
        parts = [str(self.kind)]
        if self.sinks:
            parts.append(f"S={self.sinks}")
        if self.window:
            parts.append(f"W={self.window}")
        if self.causal_alignment:
            parts.append(f"({self.causal_alignment})")
        if self.kind in (MaskKind.BAND, MaskKind.GENERIC):
            parts.append(f"[{self.text}]")
        return " ".join(parts)


def where_text(where: Sequence[Condition | AnyOf]) -> str:
    """The conditions as written (`m <= p and (m < S or p - m < W)`)."""
    from attnsim.einsum_ir.parse import format_where

    return format_where(tuple(where))


def where_bands(
    where: Sequence[Condition | AnyOf],
    key_var: str,
    query_var: str,
    sizes: Mapping[str, int],
    key_tile: tuple[str, int, int] | None = None,
) -> tuple[Band, ...] | None:
    """The conditions as a union of bands, or None outside the linear family.

    `key_tile` (the key rank's inner part variable, its size T and the key rank's size):
    a condition that reads the position inside a key tile (`m0`, chunked forms) is, on key
    tile c, the same condition with m0 = m - c T: one band per key tile (see `tile_bands`).
    """
    options: list[list[Band]] = []
    for c in where:
        if isinstance(c, Condition):
            union = tile_bands(c, key_var, query_var, sizes, key_tile)
            if union is None:
                return None
            options.append(union)
        else:
            alts: list[Band] = []
            for conj in c.options:
                conj_bands = [Band()]
                for cond in conj:
                    union = tile_bands(cond, key_var, query_var, sizes, key_tile)
                    if union is None:
                        return None
                    conj_bands = [a.intersect(b) for a in conj_bands for b in union]
                alts.extend(conj_bands)
            if not alts:
                return None
            options.append(alts)
    result = [Band()]
    for alts in options:
        result = [b for a in result for b2 in alts if not _empty(b := a.intersect(b2))]
    return tuple(dict.fromkeys(result)) or (Band(p_lo=1, p_hi=0),)


def tile_bands(
    cond: Condition,
    key_var: str,
    query_var: str,
    sizes: Mapping[str, int],
    key_tile: tuple[str, int, int] | None,
) -> list[Band] | None:
    """One comparison as a union of bands (None outside the linear family).

    Without the key tile's inner variable: its band (`condition_band`). With it (a
    coefficient k on m0, T keys per tile): on tile c the keys are [c T, (c + 1) T - 1] and
    m0 = m - c T, so the comparison is k m - k c T + (the rest): one band per tile.
    """
    coeff = 0
    if key_tile is not None:
        inner = key_tile[0]
        coeff = dict(cond.lhs.terms).get(inner, 0) - dict(cond.rhs.terms).get(inner, 0)  # type: ignore[call-overload]
    if not coeff:
        band = condition_band(cond, key_var, query_var, sizes)
        return None if band is None else [band]
    assert key_tile is not None
    inner, size, keys = key_tile
    out = []
    for c in range(-(-keys // size)):
        lhs = _replace(cond.lhs, inner, key_var, -c * size)
        rhs = _replace(cond.rhs, inner, key_var, -c * size)
        band = condition_band(Condition(lhs, cond.op, rhs), key_var, query_var, sizes)
        if band is None:
            return None
        band = band.intersect(Band(m_lo=c * size, m_hi=(c + 1) * size - 1))
        if not _empty(band):
            out.append(band)
    return out


def _replace(lin: LinearExpr, inner: str, key_var: str, shift: int) -> LinearExpr:
    """`lin` with the inner variable replaced by key_var + shift."""
    terms: dict[str, int] = {}
    const = lin.const
    for v, c in lin.terms:
        if v == inner:
            terms[key_var] = terms.get(key_var, 0) + c
            const += c * shift
        else:
            terms[v] = terms.get(v, 0) + c
    return LinearExpr(tuple(terms.items()), const, lin.symbols)  # type: ignore[arg-type]


def _empty(b: Band) -> bool:
    """Whether a band has no pair by its own bounds (lo > hi on p, m or the offset)."""
    pairs = ((b.p_lo, b.p_hi), (b.m_lo, b.m_hi), (b.d_lo, b.d_hi))
    return any(lo is not None and hi is not None and lo > hi for lo, hi in pairs)


def condition_band(
    cond: Condition, key_var: str, query_var: str, sizes: Mapping[str, int]
) -> Band | None:
    """One comparison as a band: `a*m + b*p + c op 0` with (a, b) in {(1,0),(0,1),(1,-1)}·k."""
    coeffs: dict[str, int] = {}
    lhs, rhs = _const(cond.lhs, sizes), _const(cond.rhs, sizes)
    if lhs is None or rhs is None:
        return None
    const = lhs - rhs
    for v, c in cond.lhs.terms:
        coeffs[v] = coeffs.get(v, 0) + c
    for v, c in cond.rhs.terms:
        coeffs[v] = coeffs.get(v, 0) - c
    coeffs = {v: c for v, c in coeffs.items() if c}
    if not set(coeffs) <= {key_var, query_var} or not coeffs:
        return None
    a, b = coeffs.get(key_var, 0), coeffs.get(query_var, 0)
    op = cond.op.value
    # normalize to  s * x + const op 0  with x one of m, p, m - p and s = +-1 scale k
    if a and b:
        if a != -b:
            return None
        scale, which = a, "d"
    elif a:
        scale, which = a, "m"
    else:
        scale, which = b, "p"
    # s*x + const op 0  ->  x op' -const/s  (flip when s < 0)
    if op in ("==", "!="):
        if op == "!=":
            return None
        if const % scale:
            return Band(p_lo=1, p_hi=0)  # no integer solution
        at = -const // scale
        return _bound(which, at, at)
    if scale < 0:
        op = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}[op]
    # x op -const/scale, integer bounds
    rhs_num, den = -const, abs(scale)
    if scale < 0:
        rhs_num = const
    if op == "<":
        return _bound(which, None, _ceil_div(rhs_num, den) - 1)
    if op == "<=":
        return _bound(which, None, rhs_num // den)
    if op == ">":
        return _bound(which, rhs_num // den + 1, None)
    return _bound(which, _ceil_div(rhs_num, den), None)


def _ceil_div(a: int, b: int) -> int:
    return -((-a) // b)


def _bound(which: str, lo: int | None, hi: int | None) -> Band:
    if which == "m":
        return Band(m_lo=lo, m_hi=hi)
    if which == "p":
        return Band(p_lo=lo, p_hi=hi)
    return Band(d_lo=lo, d_hi=hi)


def _const(lin: LinearExpr, sizes: Mapping[str, int]) -> int | None:
    total = lin.const
    for name, coef in lin.symbols:
        if name not in sizes:
            return None
        total += coef * sizes[name]
    return total


def name_mask(bands: tuple[Band, ...], text: str, seq_q: int, seq_k: int, uniform: bool) -> Mask:
    """Recognize the named forms: causal (aligned), window, sinks + window."""
    kind = MaskKind.BAND
    align = ""
    window = sinks = 0

    def plain(b: Band) -> bool:
        return b.p_lo is None and b.p_hi is None and b.m_lo is None

    def alignment(d_hi: int) -> str:
        if d_hi == 0:
            return "top-left"
        if d_hi == seq_k - seq_q:
            return "bottom-right"
        return f"offset {d_hi}"

    if len(bands) == 1:
        b = bands[0]
        if b == Band():
            kind = MaskKind.NONE
        elif plain(b) and b.m_hi is None and b.d_hi is not None:
            align = alignment(b.d_hi)
            if b.d_lo is None:
                kind = MaskKind.CAUSAL
            else:
                kind, window = MaskKind.WINDOW, b.d_hi - b.d_lo + 1
    elif len(bands) == 2:
        win, sink = sorted(bands, key=lambda x: x.m_hi is not None)
        if (
            plain(win)
            and win.m_hi is None
            and win.d_lo is not None
            and win.d_hi is not None
            and plain(sink)
            and sink.m_hi is not None
            and sink.d_lo is None
            and sink.d_hi in (None, win.d_hi)
        ):
            kind = MaskKind.SINKS_WINDOW
            window, sinks = win.d_hi - win.d_lo + 1, sink.m_hi + 1
            align = alignment(win.d_hi)
    if align.startswith("offset"):
        align = ""
    return Mask(kind, bands, text, align, window, sinks, uniform)
