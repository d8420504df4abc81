"""Decode attention launcher: one query per head against a KV cache, one launch per call.

Families `triton-decode-splitk` (FlashDecoding) and `triton-decode-streamk` (Lean Attention);
the kernel is `attn_decode_kernel.decode_kernel` (its docstring explains the partitions and the
fused merge). `attention_decode(q, k, v, strategy=...)` runs it on a contiguous cache
(B, G, S, E), ragged (`seq_lens`) or paged (`block_table`); `attn_mla` runs MLA through the
same launch path (`launch_decode`).

Host cost: everything that depends only on the call's shapes, strides, dtype, device and
options (checks, tiling, grid, scalar arguments, the compiled kernel) is computed once and
kept in a plan (`launch.PlanCache`); a repeated call costs the plan lookup, the output
allocation, one workspace lookup and one C-level launch (`launch.DirectLaunch`).

Workspace: the partial outputs, their log2-sum-exps and the per-segment arrival counters live
in a `DecodeWorkspace`, cached per device and grown when a call needs more (`_WORKSPACES`), so
a call allocates nothing but its output. The kernel leaves every counter at 0. Single-stream
assumption: two launches that run at once (two streams, or graphs replayed concurrently) must
not share a workspace; pass `workspace=` (from `allocate_workspace`) to give each its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import triton

from attnsim.kernels.spec import DECODE_MIN_CHUNK, DECODE_STRATEGIES, decode_rows
from attnsim.kernels.spec import default_splits as spec_default_splits
from attnsim.kernels.triton.attn_decode_kernel import SPLITK, STREAMK, UNSPLIT, decode_kernel
from attnsim.kernels.triton.common import LOG2E, dot_precision, num_sms
from attnsim.kernels.triton.launch import DirectLaunch, PlanCache

__all__ = [
    "MIN_CHUNK",
    "STRATEGIES",
    "DecodeWorkspace",
    "allocate_workspace",
    "attention_decode",
    "default_programs",
    "default_splits",
    "launch_decode",
    "split_head_dim",
]

MIN_CHUNK = DECODE_MIN_CHUNK  # keys per split at least (kernels.spec, the facts' one home)
STRATEGIES = dict(zip(DECODE_STRATEGIES, (UNSPLIT, SPLITK, STREAMK), strict=True))
DTYPES = (torch.float16, torch.bfloat16, torch.float32)


@dataclass(frozen=True, slots=True)
class DecodeWorkspace:
    """Merge scratch: fp32 partial outputs, fp32 log2-sum-exps, int32 counters (all zero)."""

    part: torch.Tensor
    lse: torch.Tensor
    count: torch.Tensor


def allocate_workspace(
    device: torch.device | str, part_elems: int, lse_elems: int, segments: int
) -> DecodeWorkspace:
    """A fresh workspace of at least these sizes (the error of a too-small one names them)."""
    return DecodeWorkspace(
        torch.empty(max(part_elems, 1), dtype=torch.float32, device=device),
        torch.empty(max(lse_elems, 1), dtype=torch.float32, device=device),
        torch.zeros(max(segments, 1), dtype=torch.int32, device=device),
    )


_WORKSPACES: dict[tuple[str, int], DecodeWorkspace] = {}


def _cached_workspace(device: torch.device, need: tuple[int, int, int]) -> DecodeWorkspace:
    """The device's cached workspace, regrown (every buffer at least doubled) when too small."""
    key = (device.type, -1 if device.index is None else device.index)
    ws = _WORKSPACES.get(key)
    if ws is not None and (
        ws.part.numel() >= need[0] and ws.lse.numel() >= need[1] and ws.count.numel() >= need[2]
    ):
        return ws
    old = (0, 0, 0) if ws is None else (ws.part.numel(), ws.lse.numel(), ws.count.numel())
    size = [n if n >= m else max(m, 2 * n) for n, m in zip(old, need, strict=True)]
    ws = allocate_workspace(device, *size)
    _WORKSPACES[key] = ws
    return ws


def default_splits(batch: int, kv_heads: int, seq_k: int, sms: int) -> int:
    """Splits that give about two waves of programs, each chunk at least `MIN_CHUNK` keys.

    `batch * kv_heads` is the number of segments (for MLA: batch x head blocks); the rule
    is `kernels.spec.default_splits`, which the GPU model uses too.
    """
    return spec_default_splits(batch * kv_heads, seq_k, sms)


def default_programs(sms: int) -> int:
    """Stream-K programs: one per multiprocessor (each takes an equal share of all tiles)."""
    return sms


def split_head_dim(e: int) -> tuple[int, int]:
    """Split a key head dim into a power-of-two main part and power-of-two tail (0: none).

    576 -> (512, 64), 192 -> (128, 64), 128 -> (128, 0). Raises ValueError if impossible.
    """
    main = 1 << (e.bit_length() - 1) if e > 0 else 0
    tail = e - main
    if main < 16 or main > 512 or (tail and (tail < 16 or tail & (tail - 1))):
        raise ValueError(
            f"key head dim {e} must be a power of two in 16..512, or one plus a smaller "
            "power-of-two tail >= 16 (e.g. 512 + 64)"
        )
    return main, tail


def _device_sms(device: torch.device) -> int:
    """SMs of a CUDA device; 2 on CPU (the interpreter runs programs one by one)."""
    return num_sms(device.index or 0) if device.type == "cuda" else 2


@dataclass(frozen=True, slots=True)
class _Plan:
    launch: DirectLaunch
    out_shape: tuple[int, ...]
    need: tuple[int, int, int]  # workspace: partial elements, lse elements, counters


_PLANS = PlanCache()


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or int(value) != value or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


def _build_plan(
    qm: torch.Tensor, qt: torch.Tensor, km: torch.Tensor, kt: torch.Tensor, v: torch.Tensor,
    seq_lens: torch.Tensor | None, block_table: torch.Tensor | None, scale: float,
    strategy: str, splits: int | None, programs: int | None, head_block: int | None,
    block_n: int, num_warps: int, num_stages: int, e_tail: int,
) -> _Plan:  # fmt: skip
    """Check the normalized views and fix grid, scalars and constexprs (see `launch_decode`)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {sorted(STRATEGIES)}, got {strategy!r}")
    b, h, _, e_main = qm.shape
    g, f = km.shape[1], v.shape[3]
    if qm.dtype not in DTYPES or not qm.dtype == km.dtype == v.dtype == qt.dtype == kt.dtype:
        raise ValueError(f"q, k, v must share one dtype of fp16, bf16, fp32; got {qm.dtype}, "
                         f"{km.dtype}, {v.dtype}")  # fmt: skip
    if h % g:
        raise ValueError(f"kv heads ({g}) must divide query heads ({h})")
    if f & (f - 1) or not 16 <= f <= 512:
        raise ValueError(f"value head dim must be a power of two in 16..512, got {f}")
    _check_int("block_n", block_n, 16)
    if block_n & (block_n - 1):
        raise ValueError(f"block_n must be a power of two >= 16, got {block_n}")
    paged = block_table is not None
    if block_table is not None:
        if block_table.dim() != 2 or block_table.shape[0] != b or block_table.dtype != torch.int32:
            raise ValueError(f"block_table must be int32 (batch={b}, max_pages); got "
                             f"{tuple(block_table.shape)} {block_table.dtype}")  # fmt: skip
        page_size = km.shape[2]
        if page_size % block_n:
            raise ValueError(f"page size ({page_size}) must be a multiple of block_n ({block_n})")
        seq_k = block_table.shape[1] * page_size
    else:
        if km.shape[0] != b:
            raise ValueError(f"k has batch {km.shape[0]}, q has {b}")
        page_size, seq_k = 1, km.shape[2]
    if seq_lens is not None and (seq_lens.shape != (b,) or seq_lens.dtype != torch.int32):
        raise ValueError(f"seq_lens must be int32 of shape ({b},), got "
                         f"{tuple(seq_lens.shape)} {seq_lens.dtype}")  # fmt: skip
    for name, t in (("block_table", block_table), ("seq_lens", seq_lens)):
        if t is not None and t.device != qm.device:
            raise ValueError(f"{name} is on {t.device}, q on {qm.device}")
    if seq_k < 1:
        raise ValueError("the KV cache is empty")
    group = h // g
    if head_block is None:
        head_block = decode_rows(group)
    if head_block not in (16, 32, 64, 128):
        raise ValueError(f"head_block must be 16, 32, 64 or 128, got {head_block!r}")
    row_blocks = triton.cdiv(group, head_block)
    seg_per_batch = g * row_blocks
    segments = b * seg_per_batch
    sms = _device_sms(qm.device)
    kind = STRATEGIES[strategy]
    n_split = 1
    if kind == SPLITK:
        n_split = default_splits(b, seg_per_batch, seq_k, sms) if splits is None else splits
        n_split = _check_int("splits", n_split, 1)
        grid: tuple[int, ...] = (n_split, segments)
        slots = segments * n_split
        if n_split == 1:  # one chunk per segment: the unsplit kernel
            kind, grid, slots = UNSPLIT, (segments,), 0
    elif kind == STREAMK:
        n_prog = _check_int("programs", default_programs(sms) if programs is None else programs, 1)
        grid, slots = (n_prog,), n_prog + segments
    else:
        grid, slots = (segments,), 0
    out_stride = (h * f, f)
    table_stride = block_table.stride(0) if block_table is not None else 0
    scalars = (
        qm.stride(0), qm.stride(1), qt.stride(0), qt.stride(1),
        km.stride(0), km.stride(1), km.stride(2), kt.stride(0), kt.stride(1), kt.stride(2),
        v.stride(0), v.stride(1), v.stride(2), *out_stride, table_stride,
        b, seq_k, group, row_blocks, seg_per_batch, n_split, scale * LOG2E,
    )  # fmt: skip
    v_is_k = v.data_ptr() == km.data_ptr() and v.stride() == km.stride() and f == e_main
    # only ragged stream-K reads the lengths of all sequences at once: one compile for any batch
    batch_block = triton.next_power_of_2(b) if kind == STREAMK and seq_lens is not None else 1
    meta = dict(
        BLOCK_R=head_block, BLOCK_N=block_n, E_MAIN=e_main, E_TAIL=e_tail, F=f,
        PAGE_SIZE=page_size, BATCH_BLOCK=batch_block, STRATEGY=kind,
        RAGGED=seq_lens is not None, PAGED=paged, V_IS_K=v_is_k,
        DOT_PRECISION=dot_precision(qm.dtype),
    )  # fmt: skip
    dev = qm.device.index if qm.is_cuda else -1
    launch = DirectLaunch(decode_kernel, grid, scalars, meta, num_warps, num_stages, dev)
    need = (slots * head_block * f, slots * head_block, segments if slots else 0)
    return _Plan(launch, (b, h, 1, f), need)


def launch_decode(
    key: tuple[Any, ...], qm: torch.Tensor, qt: torch.Tensor, km: torch.Tensor,
    kt: torch.Tensor, v: torch.Tensor, seq_lens: torch.Tensor | None,
    block_table: torch.Tensor | None, workspace: DecodeWorkspace | None, options: tuple[Any, ...],
) -> torch.Tensor:  # fmt: skip
    """Run `decode_kernel` on normalized 4-D views; returns the output (B, H, 1, F).

    qm, qt: (B, H, 1, E_MAIN / E_TAIL) query parts (qt = qm when there is no tail); km, kt:
    key parts (B or pages, G, S or page size, .); v: (B or pages, G, ., F), or km itself.
    `key` identifies everything the plan depends on; `options` = (scale, strategy, splits,
    programs, head_block, block_n, num_warps, num_stages, e_tail) for `_build_plan`.
    """
    plan = _PLANS.get(key)
    if plan is None:
        plan = _PLANS.put(key, _build_plan(qm, qt, km, kt, v, seq_lens, block_table, *options))
    out = torch.empty(plan.out_shape, dtype=qm.dtype, device=qm.device)
    need = plan.need
    if workspace is None:
        ws = _cached_workspace(qm.device, need) if need[0] else None
    else:
        ws = workspace
        have = (ws.part.numel(), ws.lse.numel(), ws.count.numel())
        if any(x < n for x, n in zip(have, need, strict=True)) or ws.count.device != qm.device:
            raise ValueError(f"workspace too small or on another device: needs (part, lse, "
                             f"count) elements {need} on {qm.device}, has {have}")  # fmt: skip
    if ws is None:  # unsplit: the kernel never touches the merge pointers
        part = lse = count = out
    else:
        part, lse, count = ws.part, ws.lse, ws.count
    plan.launch(
        qm, qt, km, kt, v, out, part, lse, count,
        count if seq_lens is None else seq_lens, count if block_table is None else block_table,
    )  # fmt: skip
    return out


def attention_decode(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    scale: float | None = None,
    *,
    strategy: str = "splitk",
    splits: int | None = None,
    programs: int | None = None,
    seq_lens: torch.Tensor | None = None,
    block_table: torch.Tensor | None = None,
    head_block: int | None = None,
    block_n: int = 64,
    num_warps: int = 4,
    num_stages: int = 2,
    workspace: DecodeWorkspace | None = None,
) -> torch.Tensor:
    """Decode attention softmax(q k^T * scale) v, one query per head; returns (B, H, 1, F).

    q: (B, H, 1, E). k: (B, G, S, E) and v: (B, G, S, F) with G dividing H (GQA/MQA: the
    H / G query heads of a K/V head are packed as rows, `head_block` rows per segment,
    default the next power of two >= 16 up to 64). E may be a power of two plus a
    power-of-two tail (576 = 512 + 64); v may be a view of k's first F columns (MLA).
    `seq_lens` (B,) int32: keys per sequence (ragged; values in 0..S, not checked on the host;
    0 gives zeros). `block_table` (B, max_pages) int32: paged cache, k and v then
    (num_pages, G, page_size, .), key n of sequence b at page block_table[b, n // page_size],
    row n % page_size (page_size a multiple of block_n).
    `strategy`: "unsplit" (one program per segment), "splitk" (`splits` chunks per segment,
    default `default_splits`), "streamk" (`programs` equal shares of all key tiles, default
    one per SM). `scale` defaults to 1/sqrt(E).
    """
    if q.dim() != 4 or q.shape[2] != 1:
        raise ValueError(f"q must be (batch, heads, 1, head_dim), got {tuple(q.shape)}")
    if k.dim() != 4 or v.dim() != 4 or k.shape[:3] != v.shape[:3] or k.shape[3] != q.shape[3]:
        raise ValueError(
            "k must be (batch or pages, kv_heads, seq or page_size, head_dim) matching q's "
            f"head_dim, v the same but its own last dim; got {tuple(k.shape)}, {tuple(v.shape)}"
        )
    e = q.shape[3]
    e_main, e_tail = split_head_dim(e)
    if q.stride(-1) != 1 or k.stride(-1) != 1 or v.stride(-1) != 1:
        aliased = v.data_ptr() == k.data_ptr()
        q, k = q.contiguous(), k.contiguous()
        v = k[..., : v.shape[3]] if aliased else v.contiguous()
    if e_tail:
        qm, qt, km, kt = q[..., :e_main], q[..., e_main:], k[..., :e_main], k[..., e_main:]
    else:
        qm = qt = q
        km = kt = k
    sm_scale = 1.0 / math.sqrt(e) if scale is None else float(scale)
    options = (sm_scale, strategy, splits, programs, head_block, block_n, num_warps, num_stages,
               e_tail)  # fmt: skip
    key = (
        q.shape, q.stride(), k.shape, k.stride(), v.shape, v.stride(), v.data_ptr() == k.data_ptr(),
        q.dtype, k.dtype, v.dtype, q.device, options,
        None if seq_lens is None else (seq_lens.shape, seq_lens.dtype, seq_lens.device),
        None if block_table is None else (block_table.shape, block_table.stride(),
                                          block_table.dtype, block_table.device),
    )  # fmt: skip
    return launch_decode(key, qm, qt, km, kt, v, seq_lens, block_table, workspace, options)
