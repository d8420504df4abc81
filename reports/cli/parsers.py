"""What every command module shares, importing nothing heavy (`attnsim --help` stays fast)."""

from __future__ import annotations

import argparse

Subparsers = argparse._SubParsersAction  # argparse's type for `add_subparsers()`'s result
