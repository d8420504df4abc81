"""Lightning Attention-2 forward (family `triton-lightning`): launcher, tilings, formulas.

`lightning_fwd(q, k, v, decay)` computes causal linear attention with a per-head scalar decay,
o_t = scale * sum_{s<=t} lambda_h^(t-s) (q_t . k_s) v_s (Qin et al. 2024; no softmax and no
normalizer; scale defaults to 1), chunk by chunk (kernels: `lightning_kernel`). Two schedules:
"fused" (one program per (value block, batch*head) walks the chunks carrying the E x F state;
batch * heads * F / block_f programs) and "split" (a state pass stores the state at every
`state_chunks`-th chunk start, then output programs of `state_chunks` chunks each run in
parallel from those states; more programs, plus the states' traffic `lightning_state_bytes`).
The fused schedule suits many heads; the split one few heads and long sequences.
`gates=` (log gates g <= 0 laid out like k) computes gated linear attention (GLA) instead,
S_t = diag(exp(g_t)) S_(t-1) + k_t v_t^T, o_t = scale * q_t S_t, on both schedules (the same
kernels, constexpr HAS_GATES; the stabilisation is described in `lightning_kernel`);
`gla_reference` is its float64 recurrence.

Layout: q, k (batch, heads, seq, E), v (batch, heads, seq, F), last dimension contiguous; the
output is (batch, heads, seq, F) in q's dtype. Sequence lengths that are not a multiple of
block_c are supported (the last chunk is masked). Accumulation is fp32; the state enters its
matrix products in the input dtype (and the split schedule stores it in that dtype).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import triton

from attnsim.kernels.spec import HEAD_DIMS
from attnsim.kernels.spec_lightning import GATED_MIN_BLOCK, LIGHTNING_TILINGS, lightning_tilings
from attnsim.kernels.triton.common import dot_precision
from attnsim.kernels.triton.launch import DirectLaunch, PlanCache
from attnsim.kernels.triton.lightning_kernel import lightning_out_kernel, lightning_states_kernel

__all__ = [
    "LIGHTNING_TILINGS",
    "SCHEDULES",
    "default_lightning_tiling",
    "default_state_tile",
    "gla_flops",
    "gla_reference",
    "gate_bytes",
    "lightning_bytes",
    "lightning_flops",
    "lightning_fwd",
    "lightning_state_bytes",
    "lightning_tilings",
    "state_warps",
    "tiling_args",
]

SCHEDULES = ("fused", "split")
MAX_BLOCK_C = 256
GRID_LIMIT = 65535  # CUDA's limit on the 2nd and 3rd grid dimensions
WARPS = (1, 2, 4, 8, 16)


def default_lightning_tiling(head_dim: int) -> tuple[int, int, int, int]:
    """Default (block_c, block_f, num_warps, num_stages) for value head dim `head_dim`."""
    return 64, min(head_dim, 64), 4, 2


def default_state_tile(e: int, f: int) -> tuple[int, int]:
    """Default (E block, F block) of the split schedule's state pass."""
    return min(e, 64), min(f, 64)


def state_warps(state_tile: tuple[int, int]) -> int:
    """Warps of the state pass: one per 32 x 32 of its tile, 1 to 8 (a 64 x 64 tile: 4)."""
    return max(1, min(8, state_tile[0] * state_tile[1] // 1024))


def lightning_flops(batch: int, heads: int, seq: int, e: int, f: int, block_c: int) -> int:
    """Floating-point operations of the chunked forward (a multiply-add counts 2).

    Counts what the kernels issue: per chunk the full C x C square of Q K^T (2 C^2 E) and of
    the masked scores times V (2 C^2 F), not the causal half, plus Q S (2 C E F) and the state
    update K^T V (2 C E F); a ragged last chunk counts as a full one (and the split schedule
    with state_chunks > 1, which also updates the state inside its output programs, does
    more). With seq a multiple of C:
    batch * heads * (2 S C E + 2 S C F + 2 S E F + 2 S E F).
    """
    rows = -(-seq // block_c) * block_c
    return batch * heads * rows * (2 * block_c * e + 2 * block_c * f + 4 * e * f)


def gla_flops(batch: int, heads: int, seq: int, e: int, f: int, block_c: int) -> int:
    """Element-wise work GLA adds to `lightning_flops` (exps counted as one operation each).

    Per padded row: the cumulative gate sum (E adds), e^b and e^-b (2 E exps) and their
    products with Q and K (2 E multiplies), the state-update key factor e^(b_last - b) (E
    subtracts, E exps, E multiplies); per chunk e^b_last (E exps) and its E x F state scale.
    """
    rows = -(-seq // block_c) * block_c
    chunks = rows // block_c
    return batch * heads * (rows * 8 * e + chunks * (e + e * f))


def gate_bytes(batch: int, heads: int, seq: int, e: int) -> int:
    """Bytes of the log gates read once (fp32, laid out like K): GLA's extra DRAM traffic."""
    return batch * heads * seq * e * 4


def lightning_bytes(batch: int, heads: int, seq: int, e: int, f: int, elem_bytes: int = 2) -> int:
    """Compulsory DRAM bytes: q, k, v read once and o written once (`elem_bytes` each)."""
    return batch * heads * seq * (2 * e + 2 * f) * elem_bytes


def lightning_state_bytes(
    batch: int, heads: int, seq: int, e: int, f: int, block_c: int, elem_bytes: int = 2,
    state_chunks: int = 1,
) -> int:  # fmt: skip
    """Extra bytes of the split schedule: its stored states, written once and read once.

    One state per `state_chunks` chunks per head, E x F of `elem_bytes` (the input dtype).
    """
    return 2 * batch * heads * -(-seq // (block_c * state_chunks)) * e * f * elem_bytes


def _power_of_two(name: str, value: int, low: int, high: int) -> None:
    if not isinstance(value, int) or value < low or value > high or value & (value - 1):
        raise ValueError(f"{name} must be a power of two in {low}..{high}, got {value!r}")


def check_lightning_tiling(
    e: int, f: int, block_c: int, block_f: int, state_tile: tuple[int, int], state_chunks: int,
    num_warps: int, num_stages: int, schedule: str,
) -> None:  # fmt: skip
    """Reject tilings and schedules the kernels cannot run (ValueError naming the parameter)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    _power_of_two("block_c", block_c, 16, MAX_BLOCK_C)
    _power_of_two("block_f", block_f, 16, f)
    if not isinstance(state_tile, tuple) or len(state_tile) != 2:
        raise ValueError(f"state_tile must be a pair (E block, F block), got {state_tile!r}")
    _power_of_two("state_tile[0] (E block)", state_tile[0], 16, e)
    _power_of_two("state_tile[1] (F block)", state_tile[1], 16, f)
    _power_of_two("state_chunks", state_chunks, 1, MAX_BLOCK_C)
    if state_chunks * block_c > MAX_BLOCK_C:
        raise ValueError(f"state_chunks * block_c must be at most {MAX_BLOCK_C} (the state "
                         f"pass's step), got {state_chunks} * {block_c}")  # fmt: skip
    if num_warps not in WARPS:
        raise ValueError(f"num_warps must be one of {WARPS}, got {num_warps!r}")
    if not isinstance(num_stages, int) or not 1 <= num_stages <= 8:
        raise ValueError(f"num_stages must be an integer in 1..8, got {num_stages!r}")


def check_gated_blocks(
    capability: tuple[int, int], block_c: int, block_f: int, state_tile: tuple[int, int] | None
) -> None:
    """Refuse GLA's blocks under `GATED_MIN_BLOCK` on sm_90 (Triton 3.6 faults there).

    Hopper (compute capability 9.x) only: the interpreter and other GPUs run every block.
    """
    if capability[0] != 9:
        return
    blocks = {"block_c": block_c, "block_f": block_f}
    if state_tile is not None:
        blocks.update({"state_tile[0]": state_tile[0], "state_tile[1]": state_tile[1]})
    small = [f"{name} = {value}" for name, value in blocks.items() if value < GATED_MIN_BLOCK]
    if small:
        raise ValueError(
            f"gated (GLA) kernels on sm_90 need blocks of at least {GATED_MIN_BLOCK}: "
            f"{', '.join(small)} (Triton 3.6 raises an illegal memory access there, measured "
            "on the H200; triton-lang/triton#10486)"
        )


def check_inputs(q: Any, k: Any, v: Any) -> None:
    """q, k (B, H, S, E) and v (B, H, S, F) on one device, one dtype, supported head dims."""
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError("q, k, v must be 4-D (batch, heads, seq, head_dim)")
    if q.shape != k.shape:
        raise ValueError(f"q and k shapes differ: {tuple(q.shape)} vs {tuple(k.shape)}")
    if v.shape[:3] != q.shape[:3]:
        raise ValueError(f"v {tuple(v.shape)} and q {tuple(q.shape)} disagree on B, H or S")
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError("q, k, v must share one dtype")
    if q.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise ValueError(f"unsupported dtype {q.dtype} (fp16, bf16 or fp32)")
    if not (q.device == k.device == v.device):
        raise ValueError("q, k, v must be on one device")
    for name, d in (("E (q, k)", q.shape[3]), ("F (v)", v.shape[3])):
        if d not in HEAD_DIMS:
            raise ValueError(f"head dim {name} must be one of {HEAD_DIMS}, got {d}")
    if q.shape[2] < 1:
        raise ValueError("seq must be at least 1")


def decay_tensor(decay: Any, heads: int, device: Any) -> Any:
    """The per-head lambda as a contiguous fp32 (heads,) tensor on `device` (None stays None).

    Values must lie in (0, 1]; they are checked when given as a sequence or a CPU tensor (a
    GPU tensor is not read back, which would synchronize every call).
    """
    if decay is None:
        return None
    if not isinstance(decay, torch.Tensor):
        decay = torch.tensor(list(decay), dtype=torch.float32)
    if tuple(decay.shape) != (heads,):
        raise ValueError(f"decay must have shape ({heads},) (one lambda per head), got "
                         f"{tuple(decay.shape)}")  # fmt: skip
    if decay.device.type == "cpu":
        bad = ~((decay > 0) & (decay <= 1))
        if bool(bad.any()):
            raise ValueError(f"decay values must lie in (0, 1], got {decay[bad].tolist()}")
    return decay.to(device=device, dtype=torch.float32).contiguous()


GATE_SUM_LIMIT = -80.0  # a chunk's log-gate sum below this overflows e^-b in fp32


def gate_tensor(gates: Any, k: Any, block_c: int) -> Any:
    """GLA's log gates as contiguous fp32 laid out like k (None stays None).

    CPU-resident gates are checked (<= 0, and every chunk's sum above `GATE_SUM_LIMIT`); a
    GPU tensor is not read back (that would synchronize every call).
    """
    if gates is None:
        return None
    if not isinstance(gates, torch.Tensor) or tuple(gates.shape) != tuple(k.shape):
        shape = tuple(gates.shape) if isinstance(gates, torch.Tensor) else type(gates).__name__
        raise ValueError(f"gates must be a tensor shaped like k {tuple(k.shape)}, got {shape}")
    if gates.device.type == "cpu":
        if bool((gates > 0).any()) or not bool(torch.isfinite(gates).all()):
            raise ValueError("gates are log gates: finite and <= 0")
        seq = gates.shape[2]
        pad = -seq % block_c
        padded = torch.nn.functional.pad(gates.double(), (0, 0, 0, pad))
        sums = padded.unflatten(2, (-1, block_c)).sum(dim=3)
        if sums.numel() and float(sums.min()) < GATE_SUM_LIMIT:
            raise ValueError(f"a chunk's log-gate sum is {float(sums.min()):.1f}, below "
                             f"{GATE_SUM_LIMIT} (e^-b would overflow fp32); use a smaller "
                             f"block_c than {block_c}")  # fmt: skip
    return gates.to(device=k.device, dtype=torch.float32).contiguous()


def gla_reference(q: Any, k: Any, v: Any, gates: Any, scale: float = 1.0) -> Any:
    """GLA's recurrence in float64, token by token: (B, H, S, F) on q's device.

    S_t = diag(exp(g_t)) S_(t-1) + k_t v_t^T, o_t = scale * q_t S_t (Yang et al. 2024, Eq. 2).
    """
    q, k, v, g = (t.double() for t in (q, k, v, gates))
    b, h, seq, e = q.shape
    state = torch.zeros(b, h, e, v.shape[3], dtype=torch.float64, device=q.device)
    out = torch.empty(b, h, seq, v.shape[3], dtype=torch.float64, device=q.device)
    for t in range(seq):
        state = state * g[:, :, t].exp()[..., None] + k[:, :, t, :, None] * v[:, :, t, None, :]
        out[:, :, t] = scale * torch.einsum("bhe,bhef->bhf", q[:, :, t], state)
    return out


def _strides(t: Any) -> tuple[int, int, int]:
    return t.stride(0), t.stride(1), t.stride(2)


class _Plan:
    """A call's launches and its output shape (see `kernels.triton.launch`)."""

    __slots__ = ("launches", "o_shape", "states_shape", "dtype", "device")

    def __init__(
        self, q: Any, k: Any, v: Any, has_decay: bool, scale: float, tiling: tuple[Any, ...],
        schedule: str, has_gates: bool = False,
    ) -> None:  # fmt: skip
        b, h, seq, e = q.shape
        f = v.shape[3]
        block_c, block_f, state_tile, state_chunks, warps, stages = tiling
        check_lightning_tiling(
            e, f, block_c, block_f, state_tile, state_chunks, warps, stages, schedule
        )
        dev = q.get_device()
        if has_gates and q.is_cuda:
            check_gated_blocks(torch.cuda.get_device_capability(q.device), block_c, block_f,
                               state_tile if schedule == "split" else None)  # fmt: skip
        n_chunks = triton.cdiv(seq, block_c)
        o_strides = (h * seq * f, seq * f, f)
        meta = dict(
            BLOCK_C=block_c, BLOCK_F=block_f, HEAD_E=e, HEAD_F=f, HAS_DECAY=has_decay,
            DOT_PRECISION=dot_precision(q.dtype), HAS_GATES=has_gates,
        )  # fmt: skip
        g_strides = (h * seq * e, seq * e, e)  # gates: contiguous fp32 (gate_tensor)
        qkvo = (*_strides(q), *_strides(k), *_strides(v), *o_strides, *g_strides)
        self.o_shape = (b, h, seq, f)
        self.states_shape: tuple[int, ...] = ()
        split = schedule == "split"
        per_prog = state_chunks if split else n_chunks
        n_states = triton.cdiv(n_chunks, per_prog)
        if b * h > GRID_LIMIT or n_states > GRID_LIMIT:
            raise ValueError(f"batch * heads ({b * h}) and the output programs per head "
                             f"({n_states}) must be at most {GRID_LIMIT} (CUDA grid limit); "
                             "raise block_c or state_chunks, or split the batch")  # fmt: skip
        out_scalars = (seq, h, n_chunks, per_prog, n_states, float(scale), *qkvo)
        out_meta = {**meta, "LOAD_STATE": split, "CARRY": per_prog > 1}
        # one chunk per program: nothing to pipeline (stages would only cost shared memory)
        out_stages = stages if per_prog > 1 else 1
        out = DirectLaunch(lightning_out_kernel, (f // block_f, n_states, b * h), out_scalars,
                           out_meta, warps, out_stages, dev)  # fmt: skip
        self.launches: tuple[DirectLaunch, ...] = (out,)
        if split:
            self.states_shape = (b * h, n_states, e, f)
            se, sf = state_tile
            step = block_c * state_chunks
            state_meta = {**meta, "BLOCK_C": step, "BLOCK_E": se, "BLOCK_F": sf}
            state_scalars = (seq, h, n_states, *_strides(k), *_strides(v), *g_strides)
            states = DirectLaunch(lightning_states_kernel, (e // se, f // sf, b * h), state_scalars,
                                  state_meta, state_warps(state_tile), stages, dev)  # fmt: skip
            self.launches = (states, out)
        self.dtype = q.dtype
        self.device = q.device


_PLANS = PlanCache()


def lightning_fwd(
    q: Any,
    k: Any,
    v: Any,
    decay: Any = None,
    block_c: int = 64,
    block_f: int | None = None,
    num_warps: int = 4,
    num_stages: int = 2,
    *,
    schedule: str = "fused",
    state_tile: tuple[int, int] | None = None,
    state_chunks: int = 1,
    scale: float = 1.0,
    gates: Any = None,
) -> Any:
    """Causal linear attention with per-head decay lambda (Lightning Attention-2); returns o.

    With `gates`, gated linear attention (GLA) instead: per-key, per-feature decay.

    Args:
        q: (batch, heads, seq, E); fp16, bf16 or fp32.
        k: (batch, heads, seq, E), q's dtype.
        v: (batch, heads, seq, F), q's dtype.
        decay: lambda per head in (0, 1] as a (heads,) tensor or sequence (the kernels take
            log2 of it), or None for no decay (lambda = 1: plain causal linear attention).
        block_c: chunk size C, a power of two in 16..256 (any seq; the last chunk is masked).
        block_f: value-dim block of one program, a power of two dividing F (default min(F, 64)).
        num_warps: Triton launch option (both kernels of the split schedule).
        num_stages: Triton launch option (both kernels of the split schedule).
        schedule: "fused" (sequential chunks, state in registers) or "split" (state pass,
            then all chunks in parallel).
        state_tile: split schedule only: the (E block, F block) of one program of the state
            pass, powers of two dividing E and F (default (min(E, 64), min(F, 64))); its warps
            follow from the tile (`state_warps`).
        state_chunks: split schedule only: R, a power of two with R * block_c <= 256. The
            state pass steps R chunks at a time and stores a state every R chunks; each
            output program then computes R chunks in order from its state (fewer states to
            store, a shorter serial chain; R = 1: one chunk per output program).
        scale: multiplies every score q . k (default 1: no scaling).
        gates: GLA's log gates g <= 0 (log alpha), a tensor shaped like k (B, H, S, E), any
            float dtype (read as fp32); not with `decay`. Every chunk's sum must stay above
            `GATE_SUM_LIMIT` (-80; checked when the gates are on the CPU): a smaller block_c
            admits stronger gates.

    Returns:
        o, (batch, heads, seq, F) in q's dtype.
    """
    if block_f is None:
        block_f = min(v.shape[-1], 64) if v.dim() == 4 else 64
    if state_tile is None:
        state_tile = default_state_tile(q.shape[-1], v.shape[-1]) if v.dim() == 4 else (64, 64)
    elif isinstance(state_tile, list):
        state_tile = tuple(state_tile)
    if any(t.dim() == 4 and t.stride(-1) != 1 for t in (q, k, v)):
        q, k, v = (t.contiguous() for t in (q, k, v))
    key = (
        q.shape, k.shape, v.shape, q.stride(), k.stride(), v.stride(), q.dtype, k.dtype, v.dtype,
        q.device, k.device, v.device, decay is None, float(scale), block_c, block_f, state_tile,
        state_chunks, num_warps, num_stages, schedule, gates is None,
    )  # fmt: skip
    if gates is not None and decay is not None:
        raise ValueError("give decay (Lightning-2) or gates (GLA), not both")
    plan = _PLANS.get(key)
    if plan is None:
        check_inputs(q, k, v)
        tiling = (block_c, block_f, state_tile, state_chunks, num_warps, num_stages)
        plan = _PLANS.put(key, _Plan(q, k, v, decay is not None, scale, tiling, schedule,
                                     gates is not None))  # fmt: skip
    lam = decay_tensor(decay, q.shape[1], q.device)
    lam_arg = q if lam is None else lam  # never read without decay
    g = gate_tensor(gates, k, block_c)
    g_arg = q if g is None else g  # never read without gates
    o = torch.empty(plan.o_shape, dtype=plan.dtype, device=plan.device)
    if schedule == "fused":
        plan.launches[0](q, k, v, o, q, lam_arg, g_arg)  # no States: q stands in, never read
    else:
        states = torch.empty(plan.states_shape, dtype=plan.dtype, device=plan.device)
        plan.launches[0](k, v, states, lam_arg, g_arg)
        plan.launches[1](q, k, v, o, states, lam_arg, g_arg)
    return o


def tiling_args(tiling: Sequence[int]) -> dict[str, int]:
    """A (block_c, block_f, num_warps, num_stages) tuple as `lightning_fwd` keyword arguments."""
    block_c, block_f, num_warps, num_stages = tiling
    return dict(block_c=block_c, block_f=block_f, num_warps=num_warps, num_stages=num_stages)
