"""Low-host-overhead launches of Triton kernels whose grid and scalar arguments are fixed.

`DirectLaunch` holds one kernel launch whose grid, scalar arguments, constexprs, warps and
stages depend only on a call's shapes (the tensors' data pointers change per call). The first
call goes through Triton's JIT (compiling if needed); after it, calls with 16-byte aligned
pointers go straight to the compiled kernel's C launcher (`CompiledKernel.run`), skipping
the JIT's per-call argument binding, specialization and cache lookup, and passing raw device
pointers. Launchers keep one `DirectLaunch` per kernel in a plan cached by the call's shape key
(`PlanCache`), so a repeated call costs a dictionary lookup, its output allocations and one
C-level launch per kernel.

On CPU (the Triton interpreter) every call goes through the JIT: there is no compiled kernel.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DescriptorLaunch", "DirectLaunch", "PlanCache"]


class DirectLaunch:
    """One kernel launch with fixed grid, scalars and constexprs (see the module docstring).

    `fn` is the @triton.jit function; `pointers` tensors are passed first, in signature order,
    then `scalars` (the non-constexpr arguments after the pointers), then the constexprs in
    `meta` by name.
    """

    __slots__ = (
        "fn", "grid", "scalars", "meta", "num_warps", "num_stages", "device_index",
        "run", "function", "packed", "stream", "args_tail", "compiled",
    )  # fmt: skip

    def __init__(
        self,
        fn: Any,
        grid: tuple[int, ...],
        scalars: tuple[Any, ...],
        meta: dict[str, Any],
        num_warps: int,
        num_stages: int,
        device_index: int,
    ) -> None:
        self.fn = fn
        self.grid = (tuple(grid) + (1, 1))[:3]
        self.scalars = scalars
        self.meta = meta
        self.num_warps = num_warps
        self.num_stages = num_stages
        self.device_index = device_index  # < 0: CPU tensors (interpreter), never armed
        self.run: Any = None
        self.function: Any = None
        self.packed: Any = None
        self.stream: Any = None
        self.args_tail: tuple[Any, ...] = ()
        self.compiled: Any = None  # the JIT's compiled kernel (its registers, shared memory)

    def __call__(self, *pointers: Any) -> None:
        """Launch on these tensors (pointer arguments in signature order)."""
        if self.run is not None:
            ptrs = [t.data_ptr() for t in pointers]
            bits = 0
            for p in ptrs:
                bits |= p
            if not bits & 15:
                g = self.grid
                self.run(
                    g[0], g[1], g[2], self.stream(), self.function, self.packed, None, None, None,
                    *ptrs, *self.args_tail,
                )  # fmt: skip
                return
        kernel = self.fn[self.grid](
            *pointers,
            *self.scalars,
            **self.meta,
            num_warps=self.num_warps,
            num_stages=self.num_stages,
        )
        self._arm(kernel, pointers)

    def _arm(self, kernel: Any, pointers: tuple[Any, ...]) -> None:
        """After a JIT launch on CUDA with aligned pointers, keep its compiled kernel."""
        if self.run is not None or self.device_index < 0 or kernel is None:
            return
        if hasattr(kernel, "result"):
            kernel = kernel.result()
        self.compiled = kernel
        bits = 0
        for t in pointers:
            bits |= t.data_ptr()
        if bits & 15 or not hasattr(kernel, "packed_metadata"):
            return  # compiled for unaligned pointers: keep going through the JIT
        from triton.runtime.driver import driver

        get_stream = driver.active.get_current_stream
        dev = self.device_index
        first_const = len(pointers) + len(self.scalars)
        consts = tuple(
            self.meta[p.name] if p.name in self.meta else p.default
            for p in self.fn.params[first_const:]
        )
        self.args_tail = self.scalars + consts  # the C launcher skips the constexprs
        self.function = kernel.function
        self.packed = kernel.packed_metadata
        self.stream = lambda: get_stream(dev)
        self.run = kernel.run


class PlanCache:
    """A bounded dictionary of launch plans keyed by a call's shape key (cleared when full)."""

    __slots__ = ("plans", "limit")

    def __init__(self, limit: int = 4096) -> None:
        self.plans: dict[Any, Any] = {}
        self.limit = limit

    def get(self, key: Any) -> Any:
        """The plan for `key`, or None."""
        return self.plans.get(key)

    def put(self, key: Any, plan: Any) -> Any:
        """Store and return `plan`."""
        if len(self.plans) >= self.limit:
            self.plans.clear()
        self.plans[key] = plan
        return plan


class DescriptorLaunch:
    """Direct launches of a compiled kernel whose first arguments are host tensor descriptors.

    Triton's CUDA launcher encodes every host descriptor (a CUtensorMap, `cuTensorMapEncode`)
    on every call. This keeps the encoded arguments per tuple of base pointers (the shapes,
    strides and block shapes are fixed by the launch plan that owns this object) and calls the
    launcher's inner C function with them, so a repeated call on the same tensors encodes
    nothing. Built from `CompiledKernel.run`; raises ValueError when that launcher is not the
    shape this relies on (Triton 3.6's CudaLauncher: descriptor arguments first, no global or
    profile scratch), and the caller keeps the plain launcher.
    """

    __slots__ = ("raw", "meta", "expand", "coop", "pdl", "n", "cache", "make")

    def __init__(self, run: Any, n_desc: int, make: Any) -> None:
        import inspect

        from triton.backends.nvidia.driver import make_tensordesc_arg

        try:
            names = inspect.getclosurevars(run.launch).nonlocals
            raw, meta, indices = (
                names["launcher"],
                names["tensordesc_meta"],
                names["tensordesc_indices"],
            )
        except (AttributeError, KeyError, TypeError) as exc:
            raise ValueError(f"unexpected Triton launcher: {exc}") from exc
        if set(indices) != set(range(n_desc)) or len(meta) != n_desc:
            raise ValueError("descriptor arguments are not the first arguments")
        if run.global_scratch_size or run.profile_scratch_size:
            raise ValueError("the kernel needs scratch memory")
        self.raw, self.meta, self.expand = raw, list(meta), make_tensordesc_arg
        self.coop, self.pdl = run.launch_cooperative_grid, run.launch_pdl
        self.n, self.make = n_desc, make  # make(tensors) -> descriptors
        self.cache: dict[tuple[int, ...], list[Any]] = {}

    def __call__(
        self, grid: tuple[int, ...], stream: Any, function: Any, packed: Any, tensors: Any,
        tail: tuple[Any, ...],
    ) -> None:  # fmt: skip
        """Launch with descriptors of `tensors` (cached by their data pointers) and `tail`."""
        key = tuple(t.data_ptr() for t in tensors)
        args = self.cache.get(key)
        if args is None:
            if len(self.cache) >= 64:
                self.cache.clear()
            descs = self.make(tensors)
            args = [x for d, m in zip(descs, self.meta, strict=True) for x in self.expand(d, m)]
            self.cache[key] = args
        self.raw(
            grid[0], grid[1], grid[2], stream, function, self.coop, self.pdl, None, None,
            packed, None, None, None, *args, *tail,
        )  # fmt: skip
