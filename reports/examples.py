"""The example experiments that ship with attnsim (`attnsim run --example NAME`)."""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path

from attnsim.reports.errors import UsageError


def examples_dir() -> Path:
    """The folder of the example experiment files.

    `attnsim/examples` in a wheel, an editable install or a checkout (there a link to
    `examples/`); the checkout's `examples/` where links were lost.
    """
    shipped = Path(str(resources.files("attnsim"))) / "examples"
    if shipped.is_dir():
        return shipped
    return Path(__file__).resolve().parent.parent / "examples"


def example_names() -> tuple[str, ...]:
    """Names of the shipped example experiments (file names without `.yaml`), sorted."""
    return tuple(sorted(p.stem for p in examples_dir().glob("*.yaml")))


def example_path(name: str) -> Path:
    """The shipped example experiment `name` (`fusemax-vs-flat` or `fusemax-vs-flat.yaml`).

    Raises:
        UsageError: no such example; the message lists the known names and the closest one.
    """
    stem = name.removesuffix(".yaml")
    path = examples_dir() / f"{stem}.yaml"
    if path.is_file():
        return path
    names = example_names()
    close = difflib.get_close_matches(stem, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise UsageError(f"no example {name!r}: the examples are {', '.join(names)}{hint}")
