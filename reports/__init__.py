"""The top of the stack: the `attnsim` CLI, experiment runner, tables, plots and reports."""
