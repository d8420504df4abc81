"""The `attnsim` command line: one module per subcommand group."""
