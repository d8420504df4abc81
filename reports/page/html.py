"""Small helpers that build one self-contained HTML page as text.

Every piece of text is escaped unless it is `Markup` (HTML this module built, or a caller
marked as trusted). Figures are embedded as `data:` URIs, styles are inline, and the page
loads nothing from anywhere else, so the file opens the same in any browser, offline.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


class Markup(str):
    """Text that is already HTML: inserted as is, never escaped again."""

    __slots__ = ()


def escape(text: object) -> Markup:
    """`text` as HTML text: &, <, >, " and ' escaped. Markup passes through unchanged."""
    if isinstance(text, Markup):
        return text
    return Markup(html.escape(str(text), quote=True))


def render(children: object) -> Markup:
    """Children (Markup, text, numbers, None, or nested iterables of them) joined as HTML."""
    if children is None:
        return Markup("")
    if isinstance(children, str):  # Markup included
        return escape(children)
    if isinstance(children, Iterable):
        return Markup("".join(render(child) for child in children))
    return escape(children)


def tag(name: str, *children: object, **attrs: object) -> Markup:
    """An element `<name attrs>children</name>`; attribute values are escaped.

    Attribute names drop one trailing underscore (`class_="x"` gives `class="x"`) and use
    dashes for underscores (`data_kind` gives `data-kind`). An attribute of None or False is
    left out; True writes the bare name.
    """
    parts = [name]
    for key, value in attrs.items():
        if value is None or value is False:
            continue
        attr = key.removesuffix("_").replace("_", "-")
        parts.append(attr if value is True else f'{attr}="{escape(value)}"')
    opening = "<" + " ".join(parts) + ">"
    if name in _VOID:
        return Markup(opening)
    return Markup(f"{opening}{render(children)}</{name}>")


def png_data_uri(png: bytes) -> str:
    """A PNG as a `data:image/png;base64,...` URI."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure(
    png: bytes, caption: str, alt: str | None = None, figure_id: str | None = None
) -> Markup:
    """An embedded PNG with a caption."""
    return tag(
        "figure",
        tag("img", src=png_data_uri(png), alt=alt if alt is not None else caption),
        tag("figcaption", caption),
        id=figure_id,
    )


def format_cell(value: Any, digits: int = 4) -> str:
    """A table cell as text: floats to `digits` significant digits, None as empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value.is_integer() and abs(value) < 10**digits:
            return str(int(value))
        return f"{value:.{digits}g}"
    return str(value)


def table(
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[str],
    headers: Mapping[str, str] | None = None,
    *,
    digits: int = 4,
    class_: str | None = None,
    caption: str | None = None,
) -> Markup:
    """A table of `rows` with `columns` in order; `headers` maps a column to its heading.

    Numbers are right-aligned (class "num") and shown with `digits` significant digits; the
    full value is in the cell's title. Missing cells are empty.
    """
    headers = headers or {}
    head = tag("tr", [tag("th", headers.get(column, column), scope="col") for column in columns])
    body = []
    for row in rows:
        cells = []
        for column in columns:
            value = row.get(column)
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            cells.append(
                tag(
                    "td",
                    format_cell(value, digits),
                    class_="num" if numeric else None,
                    title=repr(value) if isinstance(value, float) else None,
                )
            )
        body.append(tag("tr", cells))
    return tag(
        "table",
        tag("caption", caption) if caption else None,
        tag("thead", head),
        tag("tbody", body),
        class_=class_,
    )


def document(
    title: str,
    body: object,
    css: str = "",
    script: str = "",
    head: Sequence[Markup] = (),
    library: str = "",
) -> Markup:
    """A complete HTML5 page with inline `css`, `script` and `library` (all trusted text).

    `library` (such as plotly.min.js) is a script in the head; `head` adds elements there.
    """
    if "</style" in css.lower() or any("</script" in s.lower() for s in (script, library)):
        raise ValueError("inline CSS or script may not close its own element")
    return Markup(
        "<!DOCTYPE html>\n"
        + tag(
            "html",
            tag(
                "head",
                Markup('<meta charset="utf-8">'),
                Markup('<meta name="viewport" content="width=device-width, initial-scale=1">'),
                tag("title", title),
                list(head),
                tag("style", Markup(css)) if css else None,
                tag("script", Markup(library)) if library else None,
            ),
            tag("body", body, tag("script", Markup(script)) if script else None),
            lang="en",
        )
        + "\n"
    )


_VOID = frozenset({"br", "hr", "img", "meta", "link", "input", "col", "wbr"})
