"""Packaging: one installed package `attnsim` whose sub-packages are the repository's
top-level folders; data files and examples ship with it, every source folder is a package,
and the console script points at the CLI."""

from __future__ import annotations

import configparser
import fnmatch
import importlib.metadata
import importlib.resources
import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from attnsim import einsum_ir

ROOT = Path(__file__).resolve().parent.parent
OURS = ("einsum_ir", "archs", "mappers", "kernels", "reports")
# Data whose files must ship: folder -> glob relative to it (installed as attnsim/<folder>).
DATA = {
    "archs": "presets/*.yaml",
    "kernels": "measurements/*",
    "reports/paper": "data/*.csv",
    "examples": "*.yaml",
}


def setup_cfg() -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    return config


def cfg_list(config: configparser.ConfigParser, section: str, key: str) -> list[str]:
    return [line.strip() for line in config[section][key].splitlines() if line.strip()]


def package_data_patterns() -> dict[str, list[str]]:
    """setup.cfg's package_data by folder (`attnsim.reports.paper` -> `reports/paper`)."""
    section = setup_cfg()["options.package_data"]
    return {
        pkg.removeprefix("attnsim.").replace(".", "/"): [
            p.strip() for p in section[pkg].replace(",", " ").split()
        ]
        for pkg in section
    }


def source_packages() -> list[str]:
    """Every folder under our packages that holds Python files, as a dotted folder name."""
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
    packages = cfg_list(setup_cfg(), "options", "packages")
    for name in source_packages():
        folder = ROOT.joinpath(*name.split("."))
        assert (folder / "__init__.py").exists(), f"{name} has Python files but no __init__.py"
        assert f"attnsim.{name}" in packages, f"attnsim.{name} not in setup.cfg's packages"
    assert all(p == "attnsim" or p.startswith("attnsim.") for p in packages), packages


def test_each_layer_installs_under_attnsim_from_its_folder() -> None:
    mapping = dict(
        (part.strip() for part in line.split("="))
        for line in cfg_list(setup_cfg(), "options", "package_dir")
    )
    for top in (*OURS, "examples"):
        assert mapping[f"attnsim.{top}"] == top
        link = ROOT / "attnsim" / top  # the checkout's view of the same folder
        assert link.is_symlink() and link.resolve() == (ROOT / top).resolve(), link


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
    assert "attnsim = attnsim.reports.cli.main:entry" in scripts
    from attnsim.reports.cli.main import entry

    assert callable(entry)


def test_installed_console_script_points_at_cli() -> None:
    try:
        dist = importlib.metadata.distribution("attnsim")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("attnsim is not installed (pip install -e .)")
    direct_url = dist.read_text("direct_url.json") or ""
    if ROOT.as_uri() not in direct_url:
        pytest.skip(f"the installed attnsim is not this checkout ({direct_url.strip()})")
    scripts = [ep for ep in dist.entry_points if ep.group == "console_scripts"]
    assert [(ep.name, ep.value) for ep in scripts] == [
        ("attnsim", "attnsim.reports.cli.main:entry")
    ]


def build_wheel(tmp_path: Path) -> Path:
    """Build the wheel offline from a copy of the tree (no build/ or egg-info left here)."""
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("setuptools is not installed; cannot build without network")
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__")
    for pkg in (*OURS, "examples"):
        shutil.copytree(ROOT / pkg, src / pkg, ignore=ignore)
    # attnsim/ with its links kept as links: the wheel must come from package_dir, not them
    shutil.copytree(ROOT / "attnsim", src / "attnsim", symlinks=True, ignore=ignore)
    out = tmp_path / "wheel"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(out), str(src)],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = out.glob("attnsim-0.1.0-*.whl")
    return wheel


@pytest.mark.slow
def test_wheel_contains_packages_and_data(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    contents = set(zipfile.ZipFile(wheel).namelist())
    tops = {name.split("/")[0] for name in contents}
    assert tops == {"attnsim", "attnsim-0.1.0.dist-info"}, tops  # nothing generic
    assert "attnsim/__init__.py" in contents
    for name in source_packages():
        assert f"attnsim/{name.replace('.', '/')}/__init__.py" in contents
    for folder, pattern in DATA.items():
        files = [p for p in (ROOT / folder).glob(pattern) if p.is_file()]
        assert files, f"no {folder}/{pattern} in the tree"
        for path in files:
            assert f"attnsim/{path.relative_to(ROOT).as_posix()}" in contents
    assert "attnsim/einsum_ir/library/builder.py" in contents
    entry_points = zipfile.ZipFile(wheel).read("attnsim-0.1.0.dist-info/entry_points.txt")
    assert b"attnsim = attnsim.reports.cli.main:entry" in entry_points


def _fake_pypi_kernels(tmp_path: Path) -> Path:
    """A wheel of a package named `kernels` (PyPI's name; built offline, so a stand-in)."""
    src = tmp_path / "kernels-src"
    (src / "kernels").mkdir(parents=True)
    (src / "kernels" / "__init__.py").write_text('ORIGIN = "pypi"\n', encoding="utf-8")
    (src / "setup.cfg").write_text(
        "[metadata]\nname = kernels\nversion = 0.0.1\n[options]\npackages = kernels\n",
        encoding="utf-8",
    )
    (src / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n',
        encoding="utf-8",
    )
    out = tmp_path / "kernels-wheel"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(out), str(src)],
        capture_output=True,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    (wheel,) = out.glob("kernels-*.whl")
    return wheel


@pytest.mark.slow
def test_wheel_installs_next_to_pypi_kernels_and_runs_the_main_job(tmp_path: Path) -> None:
    """The wheel in a fresh venv (dependencies from the system site), next to a `kernels`
    package, runs the README's main job from a folder outside the repository."""
    wheel = build_wheel(tmp_path)
    kernels_wheel = _fake_pypi_kernels(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
        check=True,
    )
    python = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    work = tmp_path / "elsewhere"  # outside the repository: the checkout is not on sys.path
    work.mkdir()

    def run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(a) for a in argv],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )

    # the system pip installs into the venv (--without-pip keeps the venv's creation fast)
    pip = (sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps")
    for whl in (kernels_wheel, wheel):
        done = run(*pip, "--force-reinstall", whl)
        assert done.returncode == 0, done.stderr
    # __import__: PyPI's top-level `kernels`, spelled so ns_rewrite.py leaves it alone
    check = (
        "import attnsim; kernels = __import__('kernels'); "
        "print(attnsim.__file__); print(kernels.ORIGIN); print(attnsim.example_path('iso-area'))"
    )
    done = run(python, "-c", check)
    assert done.returncode == 0, done.stderr
    attnsim_file, origin, example = done.stdout.split("\n")[:3]
    assert Path(attnsim_file).is_relative_to(venv), attnsim_file
    assert Path(example).is_relative_to(venv), example
    assert origin == "pypi"  # attnsim installed no `kernels` over it
    out = work / "fusemax-vs-flat"
    done = run(venv / "bin" / "attnsim", "run", "--example", "fusemax-vs-flat", "--out", out)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (out / "report.html").is_file() and (out / "results.csv").is_file()
    # uninstalling the other package leaves attnsim whole
    done = run(sys.executable, "-m", "pip", "--python", python, "uninstall", "-y", "-q", "kernels")
    assert done.returncode == 0, done.stderr
    done = run(venv / "bin" / "attnsim", "--version")
    assert done.returncode == 0 and done.stdout.strip() == "attnsim 0.1.0", done.stderr


def test_a_checkout_without_its_links_still_imports(tmp_path: Path) -> None:
    """Where attnsim/'s links were lost (Windows clone, a copy dropping links), a plain
    checkout on PYTHONPATH still serves attnsim.<layer> from the top-level folders."""
    copy = tmp_path / "checkout"
    (copy / "attnsim").mkdir(parents=True)
    shutil.copy(ROOT / "setup.cfg", copy / "setup.cfg")
    shutil.copy(ROOT / "attnsim" / "__init__.py", copy / "attnsim" / "__init__.py")
    for pkg in (*OURS, "examples"):
        shutil.copytree(ROOT / pkg, copy / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    code = (
        "import attnsim.kernels.spec as k, attnsim; "
        "print(k.__file__); print(attnsim.example_path('iso-area'))"
    )
    env = {**os.environ, "PYTHONPATH": str(copy)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    spec_file, example = done.stdout.split("\n")[:2]
    assert Path(spec_file) == copy / "kernels" / "spec.py"
    assert Path(example) == copy / "examples" / "iso-area.yaml"
