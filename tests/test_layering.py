"""The package layering of STYLE.md section 2, enforced by walking every import with ast."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = ("einsum_ir", "archs", "mappers", "kernels", "reports")

# Which of our packages each package may import (itself always allowed).
ALLOWED: dict[str, frozenset[str]] = {
    "einsum_ir": frozenset(),
    "archs": frozenset({"einsum_ir"}),
    "mappers": frozenset({"einsum_ir", "archs"}),
    "kernels": frozenset({"einsum_ir"}),
    "reports": frozenset({"einsum_ir", "archs", "mappers", "kernels"}),
}
# Third-party modules confined to one package.
CONFINED: dict[str, str] = {"torch": "kernels", "triton": "kernels", "matplotlib": "reports"}


def imported_modules(source: str, package: str) -> set[str]:
    """Top-level names of every module imported anywhere in `source` (relative: `package`)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                names.add(package)
            elif node.module:
                names.add(node.module.split(".")[0])
    return names


def violations(package: str, imported: set[str]) -> list[str]:
    """Rule breaches of one module of `package` that imports `imported`."""
    found = []
    for name in sorted(imported):
        if name in OURS and name != package and name not in ALLOWED[package]:
            found.append(f"{package} may not import {name}")
        if name in CONFINED and CONFINED[name] != package:
            found.append(f"{name} may only be imported inside {CONFINED[name]}")
    return found


def source_files() -> list[tuple[str, Path]]:
    return [(pkg, path) for pkg in OURS for path in sorted((ROOT / pkg).rglob("*.py"))]


def test_every_package_is_scanned() -> None:
    scanned = {pkg for pkg, _ in source_files()}
    assert scanned == set(OURS)


@pytest.mark.parametrize(
    ("package", "path"),
    source_files(),
    ids=[str(path.relative_to(ROOT)) for _, path in source_files()],
)
def test_imports_follow_layering(package: str, path: Path) -> None:
    imported = imported_modules(path.read_text(encoding="utf-8"), package)
    assert violations(package, imported) == []


def test_checker_catches_upward_and_confined_imports() -> None:
    source = (
        "import numpy\n"
        "from mappers.result import Result\n"
        "def f():\n"
        "    import torch.nn\n"
        "    from . import sibling\n"
    )
    imported = imported_modules(source, "archs")
    assert imported == {"numpy", "mappers", "torch", "archs"}
    assert violations("archs", imported) == [
        "archs may not import mappers",
        "torch may only be imported inside kernels",
    ]
    assert violations("reports", imported_modules("import matplotlib.pyplot", "reports")) == []
    assert violations("einsum_ir", {"matplotlib"}) == [
        "matplotlib may only be imported inside reports"
    ]
