"""Neighborhood attention as a block-sparse layout of the 1-pass kernel: geometry and builder.

Neighborhood attention (NATTEN's semantics; Hassani et al., CVPR 2023, dilation: DiNAT, causal:
Faster Neighborhood Attention, 2024): tokens lie on an image (height x width, row-major; 1-D:
one row). Along each axis a query sees the `kernel` keys of its own dilation group (the
positions with its residue mod `dilation`) nearest to it, the window clamped at the borders so
that it stays `kernel` wide: in its group's sub-grid of length L, query y sees
[clamp(y - kernel // 2, 0, L - kernel), ... + kernel); causal along an axis: the `kernel` keys
ending at the query, [max(y - kernel + 1, 0), y + 1). A 2-D window is the product of the two.

Tiles: a query tile is a `q_tile` (rows x cols) rectangle of one group's sub-grid, a key tile a
`kv_tile` rectangle; one contains the other. The kernel reads contiguous tiles, so tokens are
put in tile order: group by group, the sub-grid cut into rectangles of the larger tile, each
cut into the smaller tiles, each row-major; sub-grids are padded to whole tiles (padding
positions see nothing and are seen by no one). Where that order is row-major (1-D without
dilation; tiles as wide as the image) nothing is permuted. The layout lists, per query tile,
the key tiles with some visible pair (partial) and those with every pair visible (full),
from per-axis counts: a window is a product of intervals, so a tile pair is visited iff it is
along both axes, and full iff it is full along both.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch

from attnsim.kernels.triton.blocksparse import BlockSparse, _lists
from attnsim.kernels.triton.common import check_tiling
from attnsim.kernels.triton.gather_rows import gather_rows
from attnsim.kernels.triton.neighborhood_mask import SEGMENTS_NEIGHBORHOOD

__all__ = ["Neighborhood", "NeighborhoodSparse", "neighborhood_sparse", "tile_shape"]

MAX_EXTENT = 0x7FFE  # sub-grid coordinates are packed in 16 bits (neighborhood_mask)
_NOWHERE = 0x7FFF7FFF  # a padding key's packed coordinates: outside every window


def tile_shape(block: int, width: int | None = None) -> tuple[int, int]:
    """A tile of `block` tokens: (1, block) in 1-D (`width` None), else near-square, wide."""
    if width is None:
        return 1, block
    rows = 1 << (block.bit_length() - 1) // 2
    return rows, block // rows


def _axes(x: Any, one_d: bool, fill: Any, name: str) -> tuple[Any, Any]:
    """A per-axis value: a scalar is the 1-D axis's (the other gets `fill`) or both axes'."""
    if isinstance(x, tuple | list):
        if len(x) != 2:
            raise ValueError(f"{name} must be one value or (rows, cols), got {x!r}")
        return x[0], x[1]
    return (fill, x) if one_d else (x, x)


@dataclass(frozen=True)
class Neighborhood:
    """One neighborhood problem and its tiling (checked on creation).

    Attributes:
        image: (height, width) of the token grid, tokens row-major; 1-D: (1, length).
        kernel: Keys per axis, odd (1-D: (1, k)).
        dilation: Dilation per axis (>= 1); kernel * dilation must not exceed the image.
        causal: Per axis: the window ends at the query instead of centring on it.
        q_tile: (rows, cols) of a query tile; rows * cols is the kernel's block_m.
        kv_tile: (rows, cols) of a key tile (block_n); it contains q_tile or lies in it.
    """

    image: tuple[int, int]
    kernel: tuple[int, int]
    dilation: tuple[int, int] = (1, 1)
    causal: tuple[bool, bool] = (False, False)
    q_tile: tuple[int, int] = (8, 16)
    kv_tile: tuple[int, int] = (8, 8)

    def __post_init__(self) -> None:
        problems = []
        for axis in (0, 1):
            n, k, d = self.image[axis], self.kernel[axis], self.dilation[axis]
            if min(n, k, d) < 1 or k % 2 == 0 or k * d > n:
                problems.append(f"axis {axis}: kernel {k} (odd) x dilation {d} (>= 1) must fit "
                                f"in the image's {n}")  # fmt: skip
            elif -(-n // d) > MAX_EXTENT:
                problems.append(f"axis {axis}: {n} tokens / dilation {d} over {MAX_EXTENT}")
        q, kv = self.q_tile, self.kv_tile
        if min(*q, *kv) < 1 or any(x & (x - 1) for x in (*q, *kv)):
            problems.append(f"tiles must be powers of two, got q {q}, kv {kv}")
        elif not (q[0] % kv[0] == 0 and q[1] % kv[1] == 0) and not (
            kv[0] % q[0] == 0 and kv[1] % q[1] == 0
        ):
            problems.append(f"one tile must contain the other, got q {q}, kv {kv}")
        if problems:
            raise ValueError("neighborhood: " + "; ".join(problems))
        check_tiling(self.block_m, self.block_n, False)

    @classmethod
    def of(
        cls, image: Any, kernel_size: Any, dilation: Any = 1, causal: Any = False,
        block_m: Any = 128, block_n: Any = 64,
    ) -> Neighborhood:  # fmt: skip
        """A problem from user arguments.

        `image`: an int (1-D length) or (height, width); per-axis values: one scalar (the 1-D
        axis's, or both axes') or a pair; block sizes: an int (`tile_shape`) or a tile shape.
        """
        one_d = isinstance(image, int)
        img = (1, image) if one_d else (int(image[0]), int(image[1]))
        width = None if one_d else img[1]
        q, kv = (tuple(int(x) for x in b) if isinstance(b, tuple | list)
                 else tile_shape(int(b), width) for b in (block_m, block_n))  # fmt: skip
        k = _axes(kernel_size, one_d, 1, "kernel_size")
        d = _axes(dilation, one_d, 1, "dilation")
        c = _axes(causal, one_d, False, "causal")
        return cls(img, (int(k[0]), int(k[1])), (int(d[0]), int(d[1])),
                   (bool(c[0]), bool(c[1])), q, kv)  # type: ignore[arg-type]  # fmt: skip

    @property
    def block_m(self) -> int:
        """Query positions per tile."""
        return self.q_tile[0] * self.q_tile[1]

    @property
    def block_n(self) -> int:
        """Key positions per tile."""
        return self.kv_tile[0] * self.kv_tile[1]

    @property
    def tokens(self) -> int:
        """Tokens of the image."""
        return self.image[0] * self.image[1]

    @property
    def coarse(self) -> tuple[int, int]:
        """The larger of the two tiles."""
        return max(self.q_tile[0], self.kv_tile[0]), max(self.q_tile[1], self.kv_tile[1])

    @property
    def fine(self) -> tuple[int, int]:
        """The smaller of the two tiles (it lies in the larger)."""
        return min(self.q_tile[0], self.kv_tile[0]), min(self.q_tile[1], self.kv_tile[1])

    def extent(self, axis: int, residue: int) -> int:
        """Length along `axis` of the sub-grid of the tokens with this residue mod dilation."""
        return -(-(self.image[axis] - residue) // self.dilation[axis])

    def bands(self, axis: int) -> int:
        """Rows (axis 0) or columns (1) of larger tiles per sub-grid (the longest one's)."""
        return -(-self.extent(axis, 0) // self.coarse[axis])

    @property
    def positions(self) -> int:
        """Positions of the tile order, padding included."""
        c = self.coarse
        return self.dilation[0] * self.dilation[1] * self.bands(0) * self.bands(1) * c[0] * c[1]

    def tile_index(self, group: Any, by: Any, bx: Any, tile: tuple[int, int]) -> Any:
        """Index, in tile order, of the `tile`-shaped tile at band (by, bx) of a sub-grid."""
        ry, rx = self.coarse[0] // tile[0], self.coarse[1] // tile[1]
        coarse = (group * self.bands(0) + by // ry) * self.bands(1) + bx // rx
        return (coarse * ry + by % ry) * rx + bx % rx


def axis_windows(y: torch.Tensor, length: Any, k: int, causal: bool) -> tuple[Any, Any]:
    """[start, end) of each sub-grid coordinate's window along one axis.

    `length`: the sub-grid's, an int or one per coordinate.
    """
    if causal:
        return (y - k + 1).clamp(min=0), y + 1
    start = torch.minimum((y - k // 2).clamp(min=0), torch.as_tensor(length - k))
    return start, start + k


def _axis_tiles(g: Neighborhood, axis: int, residue: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(visited, full) bool (query bands, key bands) along one axis of one residue's sub-grid."""
    length, tq, tk = g.extent(axis, residue), g.q_tile[axis], g.kv_tile[axis]
    span = g.bands(axis) * g.coarse[axis]
    y = torch.arange(length)
    start, end = axis_windows(y, length, g.kernel[axis], g.causal[axis])
    lo = torch.arange(0, span, tk)
    hi = (lo + tk).clamp(max=length)
    seen = (torch.minimum(end[:, None], hi) - torch.maximum(start[:, None], lo)).clamp(min=0)
    pad = span - length  # rows past the sub-grid: no query there (neutral for any / all)
    seen_any = torch.cat([seen, seen.new_zeros(pad, len(lo))]).view(-1, tq, len(lo))
    seen_all = torch.cat([seen, seen.new_full((pad, len(lo)), tk)]).view(-1, tq, len(lo))
    real = (torch.arange(0, span, tq) < length)[:, None]
    visited = (seen_any > 0).any(1)
    return visited, visited & real & (seen_all == tk).all(1)


def _band_tiles(g: Neighborhood, group: int, rows: int, cols: int, tile: tuple[int, int]) -> Any:
    """Tile indices (rows, cols) of a group's `tile`-shaped tiles, by band."""
    by, bx = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    return g.tile_index(group, by, bx, tile)


def _tile_lists(g: Neighborhood) -> tuple[torch.Tensor, torch.Tensor]:
    """(full, partial) bool (query tiles, key tiles) over every position of the tile order."""
    tq, tk = g.positions // g.block_m, g.positions // g.block_n
    full = torch.zeros(tq, tk, dtype=torch.bool)
    visited = torch.zeros(tq, tk, dtype=torch.bool)
    for ry in range(g.dilation[0]):
        vy, fy = _axis_tiles(g, 0, ry)
        for rx in range(g.dilation[1]):
            vx, fx = _axis_tiles(g, 1, rx)
            group = ry * g.dilation[1] + rx
            qi = _band_tiles(g, group, vy.shape[0], vx.shape[0], g.q_tile).reshape(-1, 1)
            ki = _band_tiles(g, group, vy.shape[1], vx.shape[1], g.kv_tile).reshape(1, -1)
            n_q, n_k = qi.shape[0], ki.shape[1]
            visited[qi, ki] = (vy[:, None, :, None] & vx[None, :, None, :]).reshape(n_q, n_k)
            full[qi, ki] = (fy[:, None, :, None] & fx[None, :, None, :]).reshape(n_q, n_k)
    return full, visited & ~full


def _token_tables(g: Neighborhood) -> dict[str, torch.Tensor]:
    """Per token its position in tile order; per position its window and coordinates."""
    y, x = torch.meshgrid(torch.arange(g.image[0]), torch.arange(g.image[1]), indexing="ij")
    y, x = y.reshape(-1), x.reshape(-1)
    (dy, dx), (fh, fw) = g.dilation, g.fine
    ry, rx, sy, sx = y % dy, x % dx, y // dy, x // dx
    pos = g.tile_index(ry * dx + rx, sy // fh, sx // fw, (fh, fw)) * (fh * fw)
    pos = pos + (sy % fh) * fw + sx % fw
    bounds = []
    for axis, sub, res in ((0, sy, ry), (1, sx, rx)):
        lengths = torch.tensor([g.extent(axis, r) for r in range(g.dilation[axis])])[res]
        bounds.append(axis_windows(sub, lengths, g.kernel[axis], g.causal[axis]))
    n = g.positions
    windows = torch.zeros(n, 2, dtype=torch.int32)
    windows[pos, 0] = ((bounds[0][0] << 16) | bounds[0][1]).to(torch.int32)
    windows[pos, 1] = ((bounds[1][0] << 16) | bounds[1][1]).to(torch.int32)
    coords = torch.full((n,), _NOWHERE, dtype=torch.int32)
    coords[pos] = ((sy << 16) | sx).to(torch.int32)
    gather = torch.zeros(n, dtype=torch.int64)
    gather[pos] = torch.arange(g.tokens)
    return dict(scatter=pos, gather=gather, windows=windows, coords=coords)


@dataclass(frozen=True, eq=False)
class NeighborhoodSparse(BlockSparse):
    """A block-sparse layout whose partial tiles test neighborhood windows (`neighborhood_mask`).

    Built by `neighborhood_sparse`. Its sequences are the tile order's positions (`seq_q` =
    `seq_k`; the image's tokens when the order is row-major, `gather` None).

    Attributes:
        geometry: The problem and its tiles.
        windows: int32 (positions, 2): each query position's packed window (padding: empty).
        coords: int32 (positions,): each key position's packed sub-grid coordinates.
        gather: int64 (positions,): the token at each position (padding: token 0), or None.
        scatter: int64 (tokens,): each token's position, or None.
    """

    geometry: Neighborhood | None = None
    windows: torch.Tensor | None = None
    coords: torch.Tensor | None = None
    gather: torch.Tensor | None = None
    scatter: torch.Tensor | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.geometry is None or self.windows is None or self.coords is None:
            raise ValueError("NeighborhoodSparse needs its geometry, windows and coords")
        n = self.geometry.positions
        if self.windows.shape != (n, 2) or self.coords.shape != (n,):
            raise ValueError(f"NeighborhoodSparse tables must cover the {n} positions")
        if self.causal or self.q_segments is not None:
            raise ValueError("NeighborhoodSparse takes no causal flag or segments (its windows)")
        self._check_full_windows()

    def _check_full_windows(self) -> None:
        """Every listed full tile has all its pairs inside the windows (they run unmasked).

        Padding rows (an empty window) are left out, as the builder leaves them out.
        """
        width = self.full_indices.shape[3]
        valid = torch.arange(width) < self.full_counts[0, 0, :, None].cpu()
        tiles, slots = valid.nonzero(as_tuple=True)
        key_tiles = self.full_indices[0, 0].cpu()[tiles, slots].long()
        windows, coords = self.windows.cpu(), self.coords.cpu()  # type: ignore[union-attr]
        step = max(1, (1 << 22) // (self.block_m * self.block_n))
        for i in range(0, len(tiles), step):
            rows = tiles[i : i + step, None] * self.block_m + torch.arange(self.block_m)
            keys = key_tiles[i : i + step, None] * self.block_n + torch.arange(self.block_n)
            wy, wx = (windows[rows, a][..., None] for a in (0, 1))
            c = coords[keys][:, None, :]
            y, x = c >> 16, c & 0xFFFF
            inside = ((y >= wy >> 16) & (y < (wy & 0xFFFF)) & (x >= wx >> 16)
                      & (x < (wx & 0xFFFF)))  # fmt: skip
            if not bool((inside | (wy == 0)).all()):
                raise ValueError("NeighborhoodSparse: a full tile has pairs outside the windows")

    def element_tables(self) -> tuple[int, Any, Any]:
        """The kernel's neighborhood mode: per-position windows and key coordinates."""
        return SEGMENTS_NEIGHBORHOOD, self.windows, self.coords

    @property
    def is_permuted(self) -> bool:
        """Whether tokens must be put in tile order (`to_tiles`) before the kernel runs."""
        return self.gather is not None

    def to_tiles(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, tokens, D) in image order -> (B, H, positions, D) in tile order."""
        return x if self.gather is None else _select_rows(x, self.gather)

    def from_tiles(self, o: torch.Tensor) -> torch.Tensor:
        """(B, H, positions, D) in tile order -> (B, H, tokens, D) in image order."""
        return o if self.scatter is None else _select_rows(o, self.scatter)


def _select_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Rows `index` of x along the sequence: `gather_rows` on a GPU, index_select elsewhere."""
    return gather_rows(x, index) if x.is_cuda else x.index_select(2, index)


@lru_cache(maxsize=64)
def neighborhood_sparse(g: Neighborhood, device: Any = "cpu") -> NeighborhoodSparse:
    """The layout of `g` (tables on `device`); cached, so repeated calls reuse one object."""
    full, partial = _tile_lists(g)
    tables = _token_tables(g)
    seq = g.positions
    row_major = bool(torch.equal(tables["scatter"], torch.arange(g.tokens)))
    if row_major:  # no permutation: the kernel runs the image's tokens, padding past the end
        seq = g.tokens
        tq, tk = -(-seq // g.block_m), -(-seq // g.block_n)
        assert not (full[tq:].any() or full[:, tk:].any() or partial[tq:].any()
                    or partial[:, tk:].any()), "tiles past the tokens list keys"  # fmt: skip
        full, partial = full[:tq, :tk], partial[:tq, :tk]
    fc, fi = _lists(full[None, None])
    pc, pi = _lists(partial[None, None])
    dev = torch.device(device)
    moved = {k: v.to(dev) for k, v in tables.items()}
    return NeighborhoodSparse(
        seq, seq, g.block_m, g.block_n, fc.to(dev), fi.to(dev), pc.to(dev), pi.to(dev),
        geometry=g, windows=moved["windows"], coords=moved["coords"],
        gather=None if row_major else moved["gather"],
        scatter=None if row_major else moved["scatter"],
    )  # fmt: skip
