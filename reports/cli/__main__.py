"""`python -m attnsim.reports.cli`: the `attnsim` command (a Ctrl-C while it starts exits 130)."""

import sys

try:
    from attnsim.reports.cli.main import entry
except KeyboardInterrupt:
    sys.exit(130)

entry()
