"""`python -m reports.cli`: the `attnsim` command."""

from reports.cli.main import entry

entry()
