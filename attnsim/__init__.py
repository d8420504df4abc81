"""attnsim: analytical design-space simulator for attention hardware and kernels.

The installed package holds the repository's layers as sub-packages: `attnsim.einsum_ir`,
`attnsim.archs`, `attnsim.mappers`, `attnsim.kernels` and `attnsim.reports`.
"""

from __future__ import annotations

from pathlib import Path

# In a checkout, attnsim/einsum_ir, attnsim/archs, ... are relative symlinks to the top-level
# folders (setup.cfg's package_dir does the same mapping for wheels and editable installs).
# Where the links were lost (a Windows clone without core.symlinks, a copy that drops links),
# the checkout's root serves the sub-packages instead. Never in an installed wheel: its parent
# folder (site-packages) has no setup.cfg.
_ROOT = Path(__file__).resolve().parent.parent
if not (Path(__file__).parent / "einsum_ir").is_dir() and (_ROOT / "setup.cfg").is_file():
    __path__.append(str(_ROOT))
