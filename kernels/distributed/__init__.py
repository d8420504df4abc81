"""Sequence parallelism across devices on `torch.distributed`: Ring Attention and LASP-2.

`merge` (partial softmax states and their log-sum-exp merge), `blocks` (the pluggable
per-device computations: float64 torch references, the project's Triton kernels), `ring`
(Ring Attention forward, zig-zag and striped causal balancing), `lasp2` (LASP-2 forward of
linear attention with per-head decay), `launch` (process groups: torchrun and local
spawning), `check` (each scheme against the single-device result, on every rank).
"""
