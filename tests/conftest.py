"""Suite-wide pytest setup: skip `gpu`-marked tests when no CUDA device is present.

On a machine without an NVIDIA driver (no /dev/nvidiactl: CI, laptops) Triton kernels run in
its CPU interpreter. `triton.jit` reads TRITON_INTERPRET when a kernel module is imported, so
it is set here, before any test module is collected, rather than only by the modules that
need it (a module collected earlier that imports a kernel would otherwise fix the kernels
compiled for a GPU that is not there, and the suite's result would depend on its order).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

if not os.path.exists("/dev/nvidiactl"):
    os.environ.setdefault("TRITON_INTERPRET", "1")


def _has_cuda() -> bool:
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("triton") is None:
        return False
    import torch  # imported only when gpu tests are collected: torch is slow to import

    return bool(torch.cuda.is_available())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_items = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu_items or _has_cuda():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU with torch and triton")
    for item in gpu_items:
        item.add_marker(skip)


@pytest.fixture(scope="session")
def benchmark_module() -> Callable[[str], ModuleType]:
    """Load a script of `benchmarks/` (not a package) by name, once per session.

    The module is registered in `sys.modules` under its name before it runs, because
    dataclasses defined in it look their module up there.
    """

    loaded: dict[str, ModuleType] = {}

    def load(name: str) -> ModuleType:
        if name in loaded:
            return loaded[name]
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        if spec is None or spec.loader is None:
            raise FileNotFoundError(BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        loaded[name] = module
        return module

    return load
