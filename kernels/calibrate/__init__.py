"""GPU model calibration: `python -m attnsim.kernels.calibrate.microbench`."""
