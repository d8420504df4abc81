"""Host-built TMA descriptors of the 1-pass kernel's (B, H, S, D) tensors over (B*H*S, D) rows.

`collapsible` says whether a tensor has that row view; `host_descs` builds the four
descriptors of a call (real ones on the JIT path, light `HostDesc` stand-ins on the direct
launch path, whose checks ran on the first launch).
"""

from __future__ import annotations


class HostDesc:
    """A light stand-in for `TensorDescriptor` on the direct launch path.

    It holds what Triton's CUDA launcher reads (base, shape, strides, padding); the checks of
    the real descriptor ran on the plan's first (JIT) launch.
    """

    __slots__ = ("base", "shape", "strides", "padding", "block_shape")

    def __init__(self, base, rows: int) -> None:  # type: ignore[no-untyped-def]
        b, h, s, d = base.shape
        self.base = base
        self.shape = (b * h * s, d)
        self.strides = (base.stride(2), 1)
        self.padding = "zero"
        self.block_shape = (rows, d)


def collapsible(x) -> bool:  # type: ignore[no-untyped-def]
    """(B, H, S, D) with a (B*H*S, D) row-major view and 16-byte aligned rows (TMA)."""
    b, h, s, d = x.shape
    st = x.stride()
    return (
        st[3] == 1
        and (h == 1 or st[1] == s * st[2])
        and (b == 1 or st[0] == h * s * st[2])
        and (st[2] * x.element_size()) % 16 == 0
    )


def host_descs(plan, q, k, v, o, stand_in: bool):  # type: ignore[no-untyped-def]
    """Host descriptors of q, k, v, o over their (B*H*S, D) views."""
    from triton.tools.tensor_descriptor import TensorDescriptor

    rq, rk = plan.rows
    if stand_in:
        return HostDesc(q, rq), HostDesc(k, rk), HostDesc(v, rk), HostDesc(o, rq)
    out = []
    for x, rows in ((q, rq), (k, rk), (v, rk), (o, rq)):
        b, h, s, d = x.shape
        out.append(TensorDescriptor(x, [b * h * s, d], [x.stride(2), 1], [rows, d]))
    return tuple(out)
