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

import pytest

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
