"""Mappers: bind a cascade's Einsums to compute units, tile them, and cost the result.

Every mapper registers itself by name (`mappers.registry`) and returns `mappers.result.Result`.
Modules are imported here explicitly so registration order is deterministic.
"""

from __future__ import annotations

import attnsim.mappers.gpu.backward_mapper  # noqa: F401  (registers "gpu-bwd")
import attnsim.mappers.gpu.decode  # noqa: F401  (registers "gpu-decode")
import attnsim.mappers.gpu.lightning_mapper  # noqa: F401  (registers "gpu-lightning")
import attnsim.mappers.gpu.multi_lasp2  # noqa: F401  (registers "gpu-lasp2", "gpu-lasp2h")
import attnsim.mappers.gpu.multi_ring  # noqa: F401  (registers "gpu-ring-attention")
import attnsim.mappers.gpu.multi_ulysses  # noqa: F401  (registers "gpu-ulysses")
import attnsim.mappers.gpu.tiling  # noqa: F401  (registers "gpu-1pass", "gpu-2pass", "gpu-unfused")
import attnsim.mappers.spatial.flat  # noqa: F401  (registers "flat")
import attnsim.mappers.spatial.layer_matmuls  # noqa: F401  (registers "layer-matmuls")
import attnsim.mappers.spatial.unfused  # noqa: F401  (registers "unfused")
from attnsim.mappers.registry import get_mapper, mapper_names, register_mapper
from attnsim.mappers.result import Result, combine_sequential
from attnsim.mappers.spatial import fusemax  # noqa: F401  (registers "fusemax")
from attnsim.mappers.spatial.view import MappingError

__all__ = [
    "MappingError",
    "Result",
    "combine_sequential",
    "get_mapper",
    "mapper_names",
    "register_mapper",
]
