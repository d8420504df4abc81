"""Triton attention kernels (1-pass, 2-pass, unfused) and their launchers."""
