"""Shared launcher helpers of the attention kernels.

They check arguments, pick tilings and install the TMA scratch allocator. The shape, FLOP
and byte formulas and tile limits live in `kernels.spec` (no torch); the attention inner
loop that the kernels share lives in `kernels.triton.attn_loop`.

Layout everywhere: (batch, heads, seq, head_dim), last dimension contiguous.
"""

from __future__ import annotations

import math

import triton

from attnsim.kernels.spec import HEAD_DIMS, MIN_BLOCK, smem_bytes_1pass

LOG2E = 1.4426950408889634  # log2(e): exp(x) = exp2(x * LOG2E), folded into the softmax scale


def device_smem_limit() -> int:
    """Shared memory per block (opt-in maximum) of the current CUDA device; 227 KiB if none."""
    import torch

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        limit = getattr(props, "shared_memory_per_block_optin", 0)
        if limit:
            return int(limit)
    return 227 * 1024


def default_scale(head_dim: int) -> float:
    """Softmax scale 1/sqrt(head_dim)."""
    return 1.0 / math.sqrt(head_dim)


def use_tma(device_type: str) -> bool:
    """Whether to load tiles through tensor descriptors (TMA on sm_90+) rather than block pointers.

    Tensor descriptors need Hopper or newer on the GPU; the CPU interpreter handles both paths.
    """
    import torch

    if device_type != "cuda":
        return False
    return torch.cuda.get_device_capability()[0] >= 9


_ALLOCATOR_SET = False
_SCRATCH: dict[tuple[int, int], tuple[int, object]] = {}  # (stream, device) -> (bytes, buffer)
_SCRATCH_OLD: list[object] = []  # outgrown buffers, kept alive (a captured graph may use them)
_SCRATCH_MIN = 1 << 20


def _scratch_alloc(size: int, alignment: int, stream: int) -> int:
    """Triton global-scratch allocator: one reused buffer per stream, returned as a raw pointer.

    In-kernel tensor descriptors (`tl.make_tensor_descriptor`) need global scratch: Triton's
    launcher asks the allocator for grid_size * 128 * (descriptors) bytes on every launch.
    Scratch only lives for one launch and launches on one stream run in order, so one buffer
    per stream serves every launch; it grows when a bigger grid asks (the old buffer is kept
    alive, so graphs captured with it stay valid). Returning an int instead of a tensor also
    spares Triton's launcher the `data_ptr()` call and the `cuPointerGetAttribute` check.
    Cost per launch: a dict lookup (vs a `torch.empty` per launch before).
    """
    import torch

    key = (stream, torch.cuda.current_device())  # the null stream is 0 on every device
    entry = _SCRATCH.get(key)
    if entry is None or entry[0] < size:
        nbytes = max(_SCRATCH_MIN, 2 * size)
        buf = torch.empty(nbytes, device="cuda", dtype=torch.int8)  # caching-allocator aligned
        if entry is not None:
            _SCRATCH_OLD.append(entry[1])
        entry = (nbytes, buf)
        _SCRATCH[key] = entry
        _SCRATCH_PTR[key] = buf.data_ptr()
    return _SCRATCH_PTR[key]


_SCRATCH_PTR: dict[tuple[int, int], int] = {}


def ensure_allocator() -> None:
    """Give Triton a scratch allocator once per process (in-kernel tensor descriptors need it).

    `triton.set_allocator` is called only the first time; later calls return at once.
    """
    global _ALLOCATOR_SET
    if _ALLOCATOR_SET:
        return
    triton.set_allocator(_scratch_alloc)
    _ALLOCATOR_SET = True


# ----------------------------------------------------------------------------- launcher helpers


def check_qkv(q, k, v, groups: bool = False):  # type: ignore[no-untyped-def]
    """Validate (batch, heads, seq, head_dim) inputs; return them with a contiguous last dim.

    `groups` (GQA/MQA): k and v may have fewer heads than q, a divisor of q's heads (query
    head h reads K/V head h // (q heads / k heads)).
    """
    import torch

    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError("q, k, v must be 4-D (batch, heads, seq, head_dim)")
    if k.shape != v.shape:
        raise ValueError(f"k and v shapes differ: {tuple(k.shape)} vs {tuple(v.shape)}")
    grouped = groups and k.shape[1] >= 1 and q.shape[1] % k.shape[1] == 0
    same_heads = q.shape[1] == k.shape[1] or grouped
    if q.shape[0] != k.shape[0] or not same_heads or q.shape[3] != k.shape[3]:
        what = "B, D or H (k heads must divide q heads)" if groups else "B, H or D"
        raise ValueError(f"q {tuple(q.shape)} and k {tuple(k.shape)} disagree on {what}")
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError("q, k, v must share one dtype")
    if q.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise ValueError(f"unsupported dtype {q.dtype} (fp16, bf16 or fp32)")
    d = q.shape[3]
    if d not in HEAD_DIMS:
        raise ValueError(f"head_dim must be a power of two in 16..256, got {d}")
    return tuple(t if t.stride(-1) == 1 else t.contiguous() for t in (q, k, v))


def check_tiling(block_m: int, block_n: int, causal: bool) -> None:
    """Reject tilings the kernels cannot run."""
    for name, b in (("block_m", block_m), ("block_n", block_n)):
        if b < MIN_BLOCK or b & (b - 1):
            raise ValueError(f"{name} must be a power of two >= {MIN_BLOCK}, got {b}")
    if causal and block_m % block_n:
        raise ValueError(f"causal needs block_m % block_n == 0, got {block_m}, {block_n}")


def dot_precision(dtype: object) -> str:
    """tl.dot input precision: exact fp32 for fp32 inputs (no TF32), default otherwise."""
    import torch

    return "ieee" if dtype == torch.float32 else "tf32"


def prune_by_smem(configs, named_args, **kwargs):  # type: ignore[no-untyped-def]
    """Autotune early prune: drop configs over the device's shared memory or invalid for causal.

    Shared by the 1-pass and 2-pass autotuned entries (same tile footprint).
    """
    head_dim = kwargs.get("HEAD_DIM", named_args.get("HEAD_DIM"))
    causal = kwargs.get("CAUSAL", named_args.get("CAUSAL", False))
    elem = named_args["Q"].element_size()
    limit = device_smem_limit()
    kept = []
    for c in configs:
        bm, bn = c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"]
        if causal and bm % bn:
            continue
        if smem_bytes_1pass(bm, bn, head_dim, c.num_stages, elem) > limit:
            continue
        kept.append(c)
    return kept or configs[:1]


def autotune_configs() -> list[triton.Config]:
    """Candidate tilings for the autotuned entries (pruned per shape by `prune_by_smem`)."""
    out = []
    for bm, bn, warps, stages in [
        (128, 64, 4, 3),
        (128, 64, 8, 3),
        (128, 128, 8, 3),
        (128, 128, 8, 2),
        (128, 64, 4, 4),
        (128, 128, 4, 3),
        (64, 64, 4, 3),
        (64, 64, 4, 4),
    ]:
        out.append(
            triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=warps, num_stages=stages)
        )
    return out


def default_tiling(head_dim: int) -> tuple[int, int, int, int]:
    """Default (block_m, block_n, num_warps, num_stages) for the fused kernels on Hopper."""
    # From benchmarks/tune_attn.py on the H200 (2026-11-30): best at 8K tokens per sequence.
    if head_dim <= 64:
        return 128, 128, 4, 3
    return 128, 128, 8, 3


SMALL_TILING = (64, 64, 4, 3)  # under-filled grids: twice the programs, 2 per SM (hd <= 128)


def pick_tiling(
    batch: int, heads: int, seq_q: int, head_dim: int, n_sm: int = 132
) -> tuple[int, int, int, int]:
    """The 1-pass tiling used when the caller fixes none: small problems get BLOCK_M 64.

    With BLOCK_M = 128 a problem has batch * heads * ceil(seq_q / 128) programs; when that is
    under one per multiprocessor the grid leaves SMs idle and each program walks the whole
    key range alone, so halving BLOCK_M doubles the programs and halves the critical path
    (64x64, 4 warps, 3 stages: the best small-shape tiling of the 2026-11-30 H200 validation
    run, and one of the validation suite's 1-pass tilings). Otherwise `default_tiling`.
    """
    if batch * heads * -(-seq_q // 128) < n_sm:
        return SMALL_TILING
    return default_tiling(head_dim)


_N_SM: dict[int, int] = {}


def num_sms(device_index: int) -> int:
    """Multiprocessor count of a CUDA device (cached); 132 (H200/H100 SXM) for CPU tensors."""
    n = _N_SM.get(device_index)
    if n is None:
        import torch

        n = 132
        if device_index >= 0 and torch.cuda.is_available():
            n = torch.cuda.get_device_properties(device_index).multi_processor_count
        _N_SM[device_index] = n
    return n
