"""Triton attention kernels, their launchers, FLOP and byte formulas, and GPU measurements."""
