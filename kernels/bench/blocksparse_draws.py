"""The random block masks `benchmarks/blocksparse_probe.py` drew (torch's CPU generator).

That probe (2026-12-03, FlexAttention timed beside) seeded torch's CPU generator with
int(density * 1000) and kept every diagonal block; `reports.validation_blocksparse` re-draws
those masks here to price the rows (the later suites draw with numpy instead:
`mappers.gpu.blocksparse.random_blocks`).
"""

from __future__ import annotations

from typing import Any


def probe_random_blocks(tiles: int, density: float) -> Any:
    """The probe's (tiles, tiles) bool block mask for `density`, as a numpy array."""
    import torch

    g = torch.Generator(device="cpu").manual_seed(int(density * 1000))
    blocks = torch.rand(tiles, tiles, generator=g) < density
    blocks |= torch.eye(tiles, dtype=torch.bool)
    return blocks.numpy()
