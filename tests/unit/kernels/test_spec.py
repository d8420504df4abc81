"""kernels/spec.py: torch-free kernel facts, family names, and the FLOP and byte formulas.

Formulas are checked against counts from first principles (loops over the score matrix,
element counts of each tensor) and against the implementations they replaced
(kernels.triton.common, mappers.gpu.kernels, reports.validation before the move).
"""

from __future__ import annotations

import ast
import dataclasses
import itertools
import subprocess
import sys
from pathlib import Path

import pytest

from attnsim.einsum_ir.analysis.tiles import Band
from attnsim.kernels import spec
from attnsim.kernels.spec import AttnShape

ROOT = Path(__file__).resolve().parents[3]

# Shapes with E = F (what the kernels run) and E != F (what the mappers accept).
SHAPES = [
    AttnShape(2, 3, 4, 4, 8, 8, False, "fp16", 2),
    AttnShape(2, 3, 5, 5, 8, 8, True, "bf16", 2),
    AttnShape(1, 2, 10, 20, 8, 8, False, "bf16", 2),
    AttnShape(1, 2, 7, 3, 16, 16, True, "fp16", 2),  # more queries than keys
    AttnShape(1, 1, 3, 9, 4, 4, True, "fp32", 4),  # fewer queries than keys
    AttnShape(2, 2, 6, 5, 8, 4, True, "bf16", 2),  # E != F
    AttnShape(4, 16, 4096, 4096, 128, 128, True, "bf16", 2),  # the reference file's shape
]
# Shapes the GPU mappers build from cascades: other masks (as bands) and grouped K/V heads.
WINDOW = (Band(d_lo=-2, d_hi=0),)  # causal window of 3 keys
BOTTOM_RIGHT = (Band(d_hi=4),)  # causal, bottom-right aligned for P = 5, M = 9
SINKS = (Band(d_lo=-1, d_hi=0), Band(m_hi=0, d_hi=0))  # a sink key plus a window of 2
MASKED = [
    AttnShape(2, 4, 9, 9, 8, 8, False, "bf16", 2, mask=WINDOW),
    AttnShape(1, 2, 5, 9, 8, 4, False, "bf16", 2, mask=BOTTOM_RIGHT),
    AttnShape(1, 4, 8, 8, 4, 4, False, "fp16", 2, mask=SINKS, kv_group=4),
    AttnShape(2, 8, 6, 7, 8, 8, True, "bf16", 2, mask=spec.CAUSAL_TOP_LEFT, kv_group=2),
]
SMALL = [s for s in SHAPES if s.seq_q * s.seq_k <= 400] + MASKED


# ----------------------------------------------------------------------------- torch-free


def test_spec_imports_without_torch_or_triton() -> None:
    """In a fresh interpreter where importing torch or triton fails, kernels.spec still loads."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'triton'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "        return None\n"
        "sys.meta_path.insert(0, Block())\n"
        "import attnsim.kernels.spec as s\n"
        "import attnsim.kernels.bench.measure, attnsim.mappers, attnsim.reports.validation\n"
        "assert s.family('gpu-1pass').name == '1pass'\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'triton'))\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


@pytest.mark.parametrize("module", ["spec.py", "spec_lightning.py"])
def test_spec_imports_only_the_standard_library(module: str) -> None:
    tree = ast.parse((ROOT / "kernels" / module).read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.removeprefix("attnsim.").split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0 and node.module
            names.add(node.module.removeprefix("attnsim.").split(".")[0])
    assert names <= set(sys.stdlib_module_names) | {"__future__", "einsum_ir"}, names


# ----------------------------------------------------------------------------- names


@pytest.mark.parametrize("fam", spec.FAMILIES, ids=lambda f: f.name)
def test_family_names_round_trip(fam: spec.KernelFamily) -> None:
    assert fam.mapper == f"gpu-{fam.name}"
    assert fam.measured == f"triton-{fam.name}"
    for name in (fam.name, fam.mapper, fam.measured, fam.cascade, fam.cascade + "-causal"):
        assert spec.family(name) is fam, name


def test_family_names_are_distinct_and_unknown_names_are_listed() -> None:
    names = [n for f in spec.FAMILIES for n in (f.name, f.mapper, f.measured, f.cascade)]
    assert len(set(names)) == len(names)
    assert spec.FAMILY_NAMES == ("1pass", "2pass", "unfused")
    with pytest.raises(KeyError, match="unknown kernel family 'gpu-3pass'.*gpu-unfused"):
        spec.family("gpu-3pass")


def test_every_layer_uses_the_spec_names() -> None:
    from attnsim.einsum_ir import load_cascade
    from attnsim.kernels.bench import measure
    from attnsim.mappers.gpu import kernels as gpu_kernels
    from attnsim.mappers.gpu import tiling as gpu_tiling
    from attnsim.mappers.registry import get_mapper
    from attnsim.reports import validation

    assert gpu_kernels.AttnShape is spec.AttnShape
    assert gpu_kernels.FAMILIES == spec.FAMILY_NAMES
    assert gpu_tiling.SCHEDULES is spec.SCHEDULES is measure.SCHEDULES
    assert measure.FAMILIES == spec.MEASURED_FAMILIES + spec.SDPA_FAMILIES
    for fam in spec.FAMILIES:
        mapper = get_mapper(fam.mapper)
        assert mapper.name == fam.mapper and mapper.family == fam.name
        assert validation.FAMILY_MAPPERS[fam.measured] == fam.mapper
        assert validation.FAMILY_CASCADES[fam.measured] == fam.cascade
        for cascade in (fam.cascade, fam.cascade + "-causal"):
            assert load_cascade(cascade).name == cascade


def test_calibration_host_call_keys_are_family_and_schedule_keys() -> None:
    import yaml

    data = yaml.safe_load((ROOT / "archs" / "calibration" / "h200.yaml").read_text("utf-8"))
    from attnsim.mappers.gpu.backward import DQ_MODES, host_keys

    keys = {spec.host_call_key(f, s) for f in spec.FAMILY_NAMES for s in spec.SCHEDULES}
    # the backward launcher's, by dq mode and mask (microbench_bwd --merge-host)
    keys |= {k for m in DQ_MODES for c in (False, True) for k in host_keys(m, c)}
    assert set(data["host_call_us"]) <= keys
    assert {k for k in data["host_call_us"] if k.startswith("bwd")} == {
        "bwd-atomic", "bwd-atomic-causal", "bwd-separate", "bwd-separate-causal"
    }  # fmt: skip
    assert spec.host_call_key("1pass") == "1pass"
    assert spec.host_call_key("1pass", "pingpong") == "1pass-pingpong"


# ----------------------------------------------------------------------------- the shape


def test_attn_shape_rejects_nonpositive() -> None:
    with pytest.raises(ValueError, match="seq_q"):
        AttnShape(1, 1, 0, 4, 8, 8, False, "bf16", 2)
    with pytest.raises(ValueError, match="value_dim"):
        AttnShape(1, 1, 4, 4, 8, 0, False, "bf16", 2)


def test_kernel_shape_has_value_dim_head_dim() -> None:
    s = spec.kernel_shape(2, 3, 5, 7, 64, True)
    assert s == AttnShape(2, 3, 5, 7, 64, 64, True, "bf16", 2)


# ----------------------------------------------------------------------------- formulas


def _visible(s: AttnShape) -> list[tuple[int, int]]:
    """(query, key) pairs of one head that the mask keeps (causal: top-left aligned)."""
    if not s.mask:
        return [(i, j) for i in range(s.seq_q) for j in range(s.seq_k) if not s.causal or j <= i]
    pairs = itertools.product(range(s.seq_q), range(s.seq_k))
    return [(i, j) for i, j in pairs if any(b.contains(i, j) for b in s.mask)]


def _macs(s: AttnShape) -> int:
    """Multiply-adds of the two matmuls over the full score matrix, counted score by score.

    Each score takes E multiply-adds in QK^T and contributes F to P.V.
    """
    scores = itertools.product(range(s.seq_q), range(s.seq_k))
    return s.batch * s.heads * sum(s.head_dim + s.value_dim for _ in scores)


def _tensor_bytes(s: AttnShape) -> dict[str, int]:
    """Bytes of each tensor of one call: (B, H, rows, cols) elements times elem_bytes."""
    sizes = {
        "Q": (s.seq_q, s.head_dim),
        "K": (s.seq_k, s.head_dim),
        "V": (s.seq_k, s.value_dim),
        "O": (s.seq_q, s.value_dim),
    }
    heads = {"Q": s.batch * s.heads, "O": s.batch * s.heads}
    heads |= {"K": s.batch * s.heads // s.kv_group, "V": s.batch * s.heads // s.kv_group}
    return {n: heads[n] * r * c * s.elem_bytes for n, (r, c) in sizes.items()}


@pytest.mark.parametrize("s", SMALL, ids=str)
def test_flops_from_first_principles(s: AttnShape) -> None:
    full = 2 * _macs(s)  # 2 FLOPs per multiply-add, every score computed (the schema's count)
    expected = full // 2 if s.causal else full
    assert spec.attn_flops(s) == expected  # the measurement files' convention
    # what the mappers report: the visible pairs, each E + F multiply-adds
    visible = 2 * s.batch * s.heads * len(_visible(s)) * (s.head_dim + s.value_dim)
    assert spec.visible_flops(s) == visible and s.flops == float(visible)
    assert s.points == len(_visible(s))


def test_mask_and_causal_flag_agree() -> None:
    with pytest.raises(ValueError, match="contradicts"):
        AttnShape(1, 1, 4, 4, 8, 8, True, "bf16", 2, mask=WINDOW)
    with pytest.raises(ValueError, match="contradicts"):
        AttnShape(1, 1, 4, 4, 8, 8, False, "bf16", 2, mask=spec.CAUSAL_TOP_LEFT)
    with pytest.raises(ValueError, match="kv_group"):
        AttnShape(1, 3, 4, 4, 8, 8, False, "bf16", 2, kv_group=2)
    plain = AttnShape(1, 1, 4, 4, 8, 8, True, "bf16", 2)
    assert plain.bands == spec.CAUSAL_TOP_LEFT and not plain.is_dense
    assert AttnShape(1, 1, 4, 4, 8, 8, False, "bf16", 2).bands == spec.NO_MASK


@pytest.mark.parametrize("s", SMALL, ids=str)
def test_score_elements_and_causal_pairs_from_first_principles(s: AttnShape) -> None:
    assert spec.score_elements(s) == s.batch * s.heads * len(_visible(s))
    for sq, sk in itertools.product(range(1, 9), repeat=2):
        brute = sum(1 for i in range(sq) for j in range(sk) if j <= i)
        assert spec.causal_pairs(sq, sk) == brute


@pytest.mark.parametrize("s", SMALL, ids=str)
def test_bytes_from_first_principles(s: AttnShape) -> None:
    t = _tensor_bytes(s)
    compulsory = t["Q"] + t["K"] + t["V"] + t["O"]
    stats = s.batch * s.heads * s.seq_q * 2 * 4  # fp32 row max and row sum
    scores = s.batch * s.heads * len(_visible(s)) * s.elem_bytes
    assert spec.qkvo_bytes(s) == spec.bytes_1pass(s) == compulsory
    # pass 1: Q, K in, stats out; pass 2: Q, K, V and stats in, O out
    assert spec.bytes_2pass(s) == (t["Q"] + t["K"] + stats) + (compulsory + stats)
    # QK^T writes S, softmax reads and writes it, P.V reads it
    assert spec.bytes_unfused(s) == compulsory + 4 * scores
    for name, formula in (("1pass", spec.bytes_1pass), ("2pass", spec.bytes_2pass)):
        assert spec.min_hbm_bytes(name, s) == formula(s)
    assert spec.min_hbm_bytes("gpu-unfused", s) == spec.bytes_unfused(s)


# The implementations these formulas replaced, verbatim in substance (E = F only where the old
# code assumed it): kernels.triton.common, mappers.gpu.kernels and reports.validation.
def _old_kernels_flops(s: AttnShape) -> int:
    f = 4 * s.batch * s.heads * s.seq_q * s.seq_k * s.head_dim
    return f // 2 if s.causal else f


def _old_mapper_flops(s: AttnShape) -> float:
    f = 2.0 * s.batch * s.heads * s.seq_q * s.seq_k
    f *= s.head_dim + s.value_dim
    return f / 2 if s.causal else f


def _old_qkvo_bytes(s: AttnShape, elem: int) -> int:
    return elem * s.batch * s.heads * (2 * s.seq_q + 2 * s.seq_k) * s.head_dim


def _old_mapper_visible(s: AttnShape) -> int:
    tri = min(s.seq_q, s.seq_k)
    return tri * (tri + 1) // 2 + (s.seq_q - tri) * s.seq_k


@pytest.mark.parametrize("s", SHAPES, ids=str)
def test_formulas_agree_with_the_implementations_they_replaced(s: AttnShape) -> None:
    # the mappers' FLOPs count the visible pairs exactly now (causal: the diagonal too)
    if s.causal:
        assert s.flops == _old_mapper_flops(s) * 2 * s.points / (s.seq_q * s.seq_k)
    else:
        assert s.flops == _old_mapper_flops(s)
    assert spec.causal_pairs(s.seq_q, s.seq_k) == _old_mapper_visible(s)
    if s.head_dim != s.value_dim:
        return
    assert spec.attn_flops(s) == _old_kernels_flops(s)
    assert spec.qkvo_bytes(s) == _old_qkvo_bytes(s, s.elem_bytes)


def test_compulsory_bytes_of_validation_are_the_spec_formula() -> None:
    from attnsim.kernels.bench.measure import Measurement
    from attnsim.reports.validation import _compulsory_bytes

    m = Measurement(
        "triton-1pass", 2, 4, 1000, 3000, 64, 1, "fp16", 128, 64, 4, 3, 1.0, 0.9, 1.1, 1,
        1.0, "NVIDIA H200", "d", "t", "tr", "now",
    )  # fmt: skip
    assert _compulsory_bytes(m) == float(_old_qkvo_bytes(
        spec.kernel_shape(2, 4, 1000, 3000, 64, True), 2
    ))  # fmt: skip


@pytest.mark.parametrize(
    ("bm", "bn", "d", "f", "stages", "elem"),
    [(128, 64, 128, 128, 3, 2), (64, 64, 64, 64, 2, 2), (128, 128, 64, 32, 4, 4)],
)
def test_shared_memory_from_the_tiles(
    bm: int, bn: int, d: int, f: int, stages: int, elem: int
) -> None:
    q_tile = bm * d
    kv_tile = bn * (d + f)
    pipelined = max(stages - 1, 1)  # the software pipeline keeps stages - 1 loads in flight
    assert spec.smem_bytes_1pass(bm, bn, d, stages, elem, f) == elem * (
        q_tile + pipelined * kv_tile
    )
    barriers = 8 * (stages + 1)  # one mbarrier per K/V slot and Q's
    pingpong = elem * (q_tile + stages * kv_tile) + barriers
    assert spec.smem_bytes_pingpong(bm, bn, d, stages, elem, f) == pingpong
    if d == f:  # value_dim defaults to head_dim
        assert spec.smem_bytes_1pass(bm, bn, d, stages, elem) == elem * (
            q_tile + pipelined * kv_tile
        )


def test_pingpong_limits_match_its_tilings() -> None:
    bm, warps = spec.PINGPONG_BLOCK
    for t in spec.PINGPONG_TILINGS:
        assert (t[0], t[2]) == (bm, warps)
        assert t[1] in spec.PINGPONG_BLOCK_N and t[3] in spec.PINGPONG_STAGES


def test_shape_is_frozen_and_hashable() -> None:
    s = SHAPES[0]
    assert hash(s) == hash(dataclasses.replace(s))
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.batch = 3  # type: ignore[misc]
