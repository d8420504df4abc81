"""Packaging: data files ship with the package, every source folder is a package, and the
console script points at the CLI."""

from __future__ import annotations

import configparser
import fnmatch
import importlib.metadata
import importlib.resources
import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from attnsim import einsum_ir

ROOT = Path(__file__).resolve().parent.parent
OURS = ("einsum_ir", "archs", "mappers", "kernels", "reports")
# Data folders whose files must ship: package -> glob relative to the package.
DATA = {"archs": "presets/*.yaml", "kernels": "measurements/*"}


def setup_cfg() -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    return config


def cfg_list(config: configparser.ConfigParser, section: str, key: str) -> list[str]:
    return [line.strip() for line in config[section][key].splitlines() if line.strip()]


def package_data_patterns() -> dict[str, list[str]]:
    section = setup_cfg()["options.package_data"]
    return {pkg: [p.strip() for p in section[pkg].replace(",", " ").split()] for pkg in section}


def source_packages() -> list[str]:
    """Every folder under our packages that holds Python files, as a dotted name."""
    names = set()
    for top in OURS:
        for path in (ROOT / top).rglob("*.py"):
            if "__pycache__" not in path.parts:
                names.add(".".join(path.parent.relative_to(ROOT).parts))
    return sorted(names)


def test_package_data_declared() -> None:
    patterns = package_data_patterns()
    for pkg, pattern in DATA.items():
        assert pattern in patterns.get(pkg, []), f"setup.cfg package_data lacks {pkg} = {pattern}"


@pytest.mark.parametrize("pkg", DATA)
def test_every_data_file_is_covered(pkg: str) -> None:
    patterns = package_data_patterns().get(pkg, [])
    folder = ROOT / pkg / DATA[pkg].split("/")[0]
    files = [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []
    for path in files:
        relative = path.relative_to(ROOT / pkg).as_posix()
        assert any(fnmatch.fnmatch(relative, p) for p in patterns), f"{relative} would not ship"


def test_every_source_folder_is_an_included_package() -> None:
    include = cfg_list(setup_cfg(), "options.packages.find", "include")
    for name in source_packages():
        folder = ROOT.joinpath(*name.split("."))
        assert (folder / "__init__.py").exists(), f"{name} has Python files but no __init__.py"
        assert any(fnmatch.fnmatch(name, p) for p in include), f"{name} not in packages.find"


def test_builtin_cascades_are_built_in_the_package() -> None:
    # Built-ins come from einsum_ir/library/builder.py, not from data files.
    names = einsum_ir.builtin_names()
    assert "attention-1pass" in names
    library = importlib.resources.files("attnsim.einsum_ir").joinpath("library")
    assert library.joinpath("builder.py").is_file()
    assert not any(p.name.endswith(".yaml") for p in library.iterdir())
    for name in names:
        assert einsum_ir.load_cascade(name).name == name


def test_console_script_declared() -> None:
    scripts = cfg_list(setup_cfg(), "options.entry_points", "console_scripts")
    assert "attnsim = reports.cli.main:entry" in scripts
    from attnsim.reports.cli.main import entry

    assert callable(entry)


def test_installed_console_script_points_at_cli() -> None:
    try:
        dist = importlib.metadata.distribution("attnsim")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("attnsim is not installed (pip install -e .)")
    scripts = [ep for ep in dist.entry_points if ep.group == "console_scripts"]
    assert [(ep.name, ep.value) for ep in scripts] == [("attnsim", "reports.cli.main:entry")]


@pytest.mark.slow
def test_wheel_contains_packages_and_data(tmp_path: Path) -> None:
    spec = importlib.util.find_spec("setuptools")
    if spec is None:
        pytest.skip("setuptools is not installed; cannot build without network")
    # Build from a copy so the source tree gets no build/ or egg-info folders.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, src / name)
    for pkg in OURS:
        shutil.copytree(ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "wheel"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(src),
        ],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = out.glob("attnsim-0.1.0-*.whl")
    contents = set(zipfile.ZipFile(wheel).namelist())
    for name in source_packages():
        assert f"{name.replace('.', '/')}/__init__.py" in contents
    for pkg, pattern in DATA.items():
        for path in (ROOT / pkg).glob(pattern):
            assert path.relative_to(ROOT).as_posix() in contents
    assert "einsum_ir/library/builder.py" in contents
    assert not any(name.startswith("tests/") for name in contents)
