"""Spatial-accelerator mappers (FuseMax, FLAT, unfused) and their shared machinery.

The cascade view, per-Einsum work, loop-nest reuse, binding schedules and the cost model.
"""
