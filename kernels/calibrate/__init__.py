"""Microbenchmarks that calibrate the GPU model (`python -m kernels.calibrate.microbench`)."""
