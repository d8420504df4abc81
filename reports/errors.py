"""User-facing errors of the command line (printed without a traceback, exit status 2)."""

from __future__ import annotations


class UsageError(ValueError):
    """Bad command-line input: the message says what was expected."""
