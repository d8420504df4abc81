"""Timing harness: measurement records, timing suites and `python -m kernels.bench`."""
