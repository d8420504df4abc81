"""The package layering of STYLE.md section 2, enforced by walking every import with ast.

One exception: the GPU mappers read the kernel facts (shapes, families, limits, formulas)
from `kernels.spec`, the torch-free module of `kernels`, and from nothing else of `kernels`.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = ("einsum_ir", "archs", "mappers", "kernels", "reports")

# Which of our packages each package may import (itself always allowed).
ALLOWED: dict[str, frozenset[str]] = {
    "einsum_ir": frozenset(),
    "archs": frozenset({"einsum_ir"}),
    "mappers": frozenset({"einsum_ir", "archs", "kernels"}),  # kernels: only ONLY_MODULES
    "kernels": frozenset({"einsum_ir"}),
    "reports": frozenset({"einsum_ir", "archs", "mappers", "kernels"}),
}
# Third-party modules confined to one package.
CONFINED: dict[str, str] = {"torch": "kernels", "triton": "kernels", "matplotlib": "reports"}
# (importer, imported package) -> the only modules of that package the importer may import.
ONLY_MODULES: dict[tuple[str, str], frozenset[str]] = {
    ("mappers", "kernels"): frozenset({"kernels.spec", "kernels.spec_lightning"}),
}
# Modules with a stricter rule than their package: what they may import besides the stdlib.
MODULE_ALLOWED: dict[str, frozenset[str]] = {
    "kernels.spec": frozenset({"einsum_ir"}),
    "kernels.spec_lightning": frozenset({"einsum_ir"}),
}


def layer_name(dotted: str) -> str:
    """A dotted name with the installed package's prefix dropped: `attnsim.mappers.result` ->
    `mappers.result`, so the rules below name the layers as the folders do."""
    return dotted.removeprefix("attnsim.")


def imported_full_names(source: str) -> set[str]:
    """Dotted names of the absolute imports in `source` (without the `attnsim.` prefix):
    `import a.b` gives a.b, and `from a import b` gives a.b (b may be a module or a name
    defined in a); `from attnsim import mappers` gives mappers."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(layer_name(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.update(layer_name(f"{node.module}.{alias.name}") for alias in node.names)
    return names


def imported_modules(source: str, package: str) -> set[str]:
    """Top-level names of every module imported anywhere in `source` (relative: `package`);
    our layers by their own names, not as `attnsim`."""
    names = {name.split(".")[0] for name in imported_full_names(source)}
    if any(isinstance(node, ast.ImportFrom) and node.level for node in ast.walk(ast.parse(source))):
        names.add(package)
    return names


def violations(package: str, imported: set[str], full: set[str] | None = None) -> list[str]:
    """Rule breaches of one module of `package` that imports `imported` (top-level names).

    `full`: the dotted names it imports (`imported_full_names`), for the ONLY_MODULES rule.
    """
    found = []
    for name in sorted(imported):
        if name in OURS and name != package and name not in ALLOWED[package]:
            found.append(f"{package} may not import {name}")
        if name in CONFINED and CONFINED[name] != package:
            found.append(f"{name} may only be imported inside {CONFINED[name]}")
        only = ONLY_MODULES.get((package, name))
        for dotted in sorted(m for m in full or () if m.split(".")[0] == name):
            if only is not None and not any(
                dotted == m or dotted.startswith(m + ".") for m in only
            ):
                found.append(f"{package} may import only {', '.join(sorted(only))}, not {dotted}")
    return found


def module_violations(module: str, source: str) -> list[str]:
    """Breaches of MODULE_ALLOWED: imports other than the stdlib and the listed packages."""
    allowed = MODULE_ALLOWED.get(module)
    if allowed is None:
        return []
    package = module.split(".")[0]
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    return [
        f"{module} may import only the standard library and {', '.join(sorted(allowed))}, "
        f"not {name}"
        for name in sorted(imported_modules(source, package))
        if name not in stdlib and name not in allowed
    ]


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
    source = path.read_text(encoding="utf-8")
    imported = imported_modules(source, package)
    assert violations(package, imported, imported_full_names(source)) == []
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    assert module_violations(module, source) == []


def test_modules_with_their_own_rule_exist() -> None:
    for module in MODULE_ALLOWED:
        assert (ROOT / (module.replace(".", "/") + ".py")).is_file(), module


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


def test_mappers_may_import_kernels_spec_only() -> None:
    def check(source: str) -> list[str]:
        return violations(
            "mappers", imported_modules(source, "mappers"), imported_full_names(source)
        )

    assert check("from kernels.spec import AttnShape\nfrom kernels import spec\n") == []
    assert check("from attnsim.kernels.spec import AttnShape\nimport attnsim.kernels.spec\n") == []
    assert check("from attnsim import kernels\n") == [
        "mappers may import only kernels.spec, kernels.spec_lightning, not kernels"
    ]
    assert check("import kernels.spec\n") == []
    assert check("from kernels.triton.common import check_qkv\n") == [
        "mappers may import only kernels.spec, kernels.spec_lightning, "
        "not kernels.triton.common.check_qkv"
    ]
    assert check("import kernels\n") == [
        "mappers may import only kernels.spec, kernels.spec_lightning, not kernels"
    ]
    assert check("from kernels import bench, spec\n") == [
        "mappers may import only kernels.spec, kernels.spec_lightning, not kernels.bench"
    ]
    # archs and einsum_ir still may not import kernels at all
    assert violations("archs", {"kernels"}, {"kernels.spec"}) == ["archs may not import kernels"]


def test_kernels_spec_may_not_import_torch_or_other_kernels_modules() -> None:
    assert module_violations("kernels.spec", "import math\nfrom einsum_ir import ir\n") == []
    assert module_violations(
        "kernels.spec", "import torch\nfrom kernels.triton.common import x\n"
    ) == [
        "kernels.spec may import only the standard library and einsum_ir, not kernels",
        "kernels.spec may import only the standard library and einsum_ir, not torch",
    ]
    assert module_violations("kernels.spec", "from . import common\n") == [
        "kernels.spec may import only the standard library and einsum_ir, not kernels",
    ]
