"""attnsim: analytical design-space simulator for attention hardware and kernels.

The installed package holds the repository's layers as sub-packages: `attnsim.einsum_ir`,
`attnsim.archs`, `attnsim.mappers`, `attnsim.kernels` and `attnsim.reports`. The functions
below are the public API; each imports what it needs when called, so `import attnsim` (and
the `attnsim` command's `--help`) loads none of the models.

    cascade = attnsim.load_cascade("attention-1pass")
    arch = attnsim.load_arch("fusemax")
    result = attnsim.map_point(cascade, arch, "fusemax", "M=4K,P=4K,E=64,F=64")
    out = attnsim.run_experiment(attnsim.example_path("fusemax-vs-flat"), "runs/fmf")
    frame = attnsim.results_frame(out)       # needs pandas: pip install 'attnsim[pandas]'
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from attnsim.archs.load import Arch
    from attnsim.einsum_ir.ir import Cascade
    from attnsim.mappers.result import Result

__all__ = [
    "example_names",
    "example_path",
    "load_arch",
    "load_cascade",
    "map_point",
    "results_frame",
    "run_experiment",
]

# In a checkout, attnsim/einsum_ir, attnsim/archs, ... are relative symlinks to the top-level
# folders (setup.cfg's package_dir does the same mapping for wheels and editable installs).
# Where the links were lost (a Windows clone without core.symlinks, a copy that drops links),
# the checkout's root serves the sub-packages instead. Never in an installed wheel: its parent
# folder (site-packages) has no setup.cfg.
_ROOT = Path(__file__).resolve().parent.parent
if not (Path(__file__).parent / "einsum_ir").is_dir() and (_ROOT / "setup.cfg").is_file():
    __path__.append(str(_ROOT))


def load_cascade(name_or_path: str | Path) -> Cascade:
    """A built-in cascade by name (`attention-1pass`, ...) or a cascade YAML file.

    Raises:
        SpecError: every problem of the file, each with file:line:col and YAML path.
    """
    from attnsim.einsum_ir import load_cascade as load

    return load(name_or_path)


def load_arch(name_or_path: str | Path, overrides: Mapping[str, Any] | None = None) -> Arch:
    """An architecture preset by name (`fusemax`, `h200`, ...) or YAML file.

    `overrides` uses the names of `attnsim.archs.OVERRIDES`, e.g. `{"buffer_bytes": 2**20}`.
    """
    from attnsim.archs import load_arch as load

    return load(name_or_path, overrides)


def map_point(
    cascade: Cascade | str | Path,
    arch: Arch | str | Path,
    mapper: str,
    sizes: Mapping[str, int] | str,
    **options: Any,
) -> Result:
    """Map one design point and return its `Result` (as `attnsim map` prints it).

    Args:
        cascade: a cascade, or what `load_cascade` takes.
        arch: an architecture, or what `load_arch` takes.
        mapper: a registered mapper's name (`attnsim.mappers.mapper_names()`).
        sizes: rank sizes, `{"M": 4096, ...}` or `"M=4K,P=4K,E=64,F=64"` (K = 1024).
        **options: the mapper's options (fields of its `Options` dataclass).
    """
    from attnsim.einsum_ir.sizes import parse_sizes
    from attnsim.mappers.registry import get_mapper

    if isinstance(cascade, str | Path):
        cascade = load_cascade(cascade)
    if isinstance(arch, str | Path):
        arch = load_arch(arch)
    bound = parse_sizes(sizes) if isinstance(sizes, str) else dict(sizes)
    result: Result = get_mapper(mapper)(**options).map(cascade, arch, bound)
    return result


def run_experiment(
    experiment: str | Path,
    out_dir: str | Path | None = None,
    *,
    jobs: int | None = None,
    fresh: bool = False,
    quiet: bool = True,
) -> Path:
    """Run an experiment file as `attnsim run` does; return its output folder.

    The store, tables and report are written as the command writes them; the folder defaults
    to runs/NAME under the working directory.

    Raises:
        RuntimeError: the run did not finish cleanly (input errors and failed points are
            printed to stderr as the command prints them; the status is in the message).
    """
    from attnsim.reports.cli.main import main
    from attnsim.reports.dse.experiment import load_experiment

    out = Path(out_dir) if out_dir is not None else Path(load_experiment(experiment).out_dir)
    argv = ["run", str(experiment), "--out", str(out)]
    argv += ["--jobs", str(jobs)] if jobs is not None else []
    argv += ["--fresh"] if fresh else []
    argv += ["--quiet"] if quiet else []
    status = main(argv)
    if status != 0:
        raise RuntimeError(f"attnsim run {experiment} exited with status {status}")
    return out


def results_frame(out_dir: str | Path) -> Any:
    """A run's finished points as a pandas DataFrame, one row per design point.

    The columns are those of `attnsim export`'s CSV: the point's values, headline numbers
    with units in their names, warnings. Needs pandas (`pip install 'attnsim[pandas]'`).

    Raises:
        ImportError: pandas is not installed.
        FileNotFoundError: `out_dir` holds no result store.
    """
    try:
        import pandas
    except ImportError:
        raise ImportError(
            "attnsim.results_frame needs pandas: pip install 'attnsim[pandas]' (or pandas)"
        ) from None
    from attnsim.reports.dse import store

    if not store.db_path(out_dir).exists():
        raise FileNotFoundError(f"{out_dir}: no {store.DB_NAME} (run an experiment into it)")
    return pandas.DataFrame(store.load_rows(out_dir))


def example_names() -> tuple[str, ...]:
    """Names of the example experiments that ship with attnsim."""
    from attnsim.reports.examples import example_names as names

    return names()


def example_path(name: str) -> Path:
    """The shipped example experiment `name` (see `example_names`)."""
    from attnsim.reports.examples import example_path as path

    return path(name)
