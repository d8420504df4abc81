"""Timing harness: measurement records, timing suites and `python -m attnsim.kernels.bench`."""
