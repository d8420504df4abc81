"""Experiment YAML: exact spec messages (file:line:col), sweep expansion, objectives."""

from __future__ import annotations

import textwrap
import tracemalloc
from pathlib import Path

import pytest

from attnsim.einsum_ir.spec import SpecError
from attnsim.reports.dse.experiment import Constraint, load_experiment, point_id

BASE = """\
name: t
architectures:
  fusemax: {preset: fusemax}
cascades:
  one: attention-1pass-mh
workloads:
  BERT: {model: BERT}
  tiny: {sizes: {B: 1, H: 2, E: 64, F: 64}}
mappers:
  fusemax: {mapper: fusemax}
designs:
  fm: {arch: fusemax, cascade: one, mapper: fusemax}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_experiment(path)
    return [str(p) for p in info.value.problems]


def test_grid_expansion_counts_and_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        BASE
        + """\
sweep:
  grid:
    workload: [BERT, tiny]
    workload.seq_len: [1K, 4K, 16K]
""",
    )
    exp = load_experiment(path)
    assert exp.count == 6
    points = list(exp.points())
    assert [(p.values["workload"], p.values["workload.seq_len"]) for p in points] == [
        ("BERT", 1024), ("BERT", 4096), ("BERT", 16384),
        ("tiny", 1024), ("tiny", 4096), ("tiny", 16384),
    ]  # fmt: skip
    assert points[0].resolved["workload"]["sizes"] == {
        "B": 64, "E": 64, "F": 64, "H": 12, "M": 1024, "P": 1024
    }  # fmt: skip
    assert points[3].resolved["workload"]["sizes"] == {
        "B": 1, "E": 64, "F": 64, "H": 2, "M": 1024, "P": 1024
    }  # fmt: skip
    assert len({p.point_id for p in points}) == 6
    assert exp.sweep == {"workload": ["BERT", "tiny"], "workload.seq_len": [1024, 4096, 16384]}


def test_point_id_is_stable_and_depends_on_inputs(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + "sweep: {grid: {workload: [BERT], workload.seq_len: [1K]}}\n")
    a = next(load_experiment(path).points())
    b = next(load_experiment(path).points())
    assert a.point_id == b.point_id == point_id(a.resolved)
    changed = {**a.resolved, "design": "other"}
    assert point_id(changed) != a.point_id


def test_list_and_random_blocks(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        BASE
        + """\
sweep:
  - list:
      - {workload: BERT, workload.seq_len: 1K}
      - {workload: tiny, workload.seq_len: 2K, arch.overrides.buffer_bytes: 8MiB}
  - fixed: {workload: BERT, workload.seq_len: 4K}
    random:
      samples: 50
      seed: 3
      space:
        arch.overrides.buffer_bytes: {log_uniform: [1048576, 33554432]}
        arch.overrides.array_shapes.array_2d: [[64, 64], [128, 128]]
        arch.overrides.clock_ghz: {uniform: [0.5, 1.5]}
""",
    )
    exp = load_experiment(path)
    assert exp.count == 52
    points = list(exp.points())
    assert points[1].resolved["arch"]["overrides"] == {"buffer_bytes": 8 * 2**20}
    rand = points[2:]
    assert all(1048576 <= p.values["arch.overrides.buffer_bytes"] <= 33554432 for p in rand)
    assert all(isinstance(p.values["arch.overrides.buffer_bytes"], int) for p in rand)
    assert {tuple(p.values["arch.overrides.array_shapes.array_2d"]) for p in rand} == {
        (64, 64), (128, 128)
    }  # fmt: skip
    # Same seed, same samples; the expansion is reproducible.
    again = [p.point_id for p in load_experiment(path).points()]
    assert again == [p.point_id for p in points]


def test_expansion_is_lazy(tmp_path: Path) -> None:
    # 100,000 points: counting and taking the first few must not build them all.
    path = write(
        tmp_path,
        BASE
        + """\
sweep:
  fixed: {workload: tiny}
  grid:
    workload.seq_len: [1K, 2K, 3K, 4K, 5K, 6K, 7K, 8K, 9K, 10K]
    workload.sizes.B: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    workload.sizes.H: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    arch.overrides.buffer_bytes: [1MiB, 2MiB, 3MiB, 4MiB, 5MiB, 6MiB, 7MiB, 8MiB, 9MiB, 10MiB]
    arch.overrides.clock_ghz: [0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4]
""",
    )
    exp = load_experiment(path)
    assert exp.count == 100_000
    tracemalloc.start()
    n = 0
    for _ in exp.points():
        n += 1
        if n == 20_000:
            break
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 5 * 2**20, f"expansion used {peak} bytes"


def test_objectives_and_constraints(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        BASE
        + """\
sweep: {grid: {workload: [BERT], workload.seq_len: [1K]}}
objectives: [latency, edp, {metric: util.array_2d, direction: max}]
constraints:
  - {metric: area, max: 2.0e+9}
  - {metric: utilization, min: 0.5}
""",
    )
    exp = load_experiment(path)
    assert exp.objectives == (("latency_s", "min"), ("edp_js", "min"), ("util.array_2d", "max"))
    assert exp.constraints == (
        Constraint("area_um2", "max", 2e9),
        Constraint("util.array_2d", "min", 0.5),
    )
    assert exp.constraints[0].holds({"area_um2": 1e9})
    assert not exp.constraints[1].holds({"util.array_2d": 0.4})
    assert not exp.constraints[1].holds({})


def test_every_problem_with_file_line_and_hint(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
name: t
architectures:
  fusemax: {preset: fusemax, overides: {}}
  big: {preset: fusemax, overrides: {buffer_bytes: lots, array_shapes: {array_3d: [1, 1]}}}
cascades:
  one: attention-1pass-mhh
workloads:
  BERT: {model: BERTT}
mappers:
  fusemax: {mapper: fusemaxx}
designs:
  fm: {arch: fusemax, cascade: one, mapper: fusemax}
sweep:
  grid:
    workload.seq_lenn: [1K]
    arch.overrides.buffer_bytes: [-1]
    workload.seq_len: [4Q]
objectives: [latncy]
constraints:
  - {metric: area, below: 3}
outputs: {formats: [xml]}
""",
    )
    got = problems(path)
    f = str(path)
    tail = [g.split("known: ", 1)[-1] for g in got]
    assert got == [
        f"{f}:3:40: architectures.fusemax.overides: unknown key 'overides'; "
        "did you mean 'overrides'? known keys: preset, overrides",
        f"{f}:4:52: architectures.big.overrides.buffer_bytes: expected a positive number of "
        "bytes, e.g. 16777216 or 16MiB, got 'lots'",
        f"{f}:4:83: architectures.big.overrides.array_shapes.array_3d: unknown array 'array_3d'"
        " of fusemax; did you mean 'array_2d'? arrays: array_2d, array_1d",
        f"{f}:6:8: cascades.one: no such file or built-in cascade; did you mean "
        "attention-1pass-mh, attention-3pass-mh, attention-1pass-mqa? (built-ins: "
        + got[3].split("(built-ins: ", 1)[-1],
        f"{f}:8:17: workloads.BERT.model: unknown model 'BERTT'; did you mean 'BERT'? "
        "known: BERT, TrXL, T5, XLM",
        f"{f}:10:21: mappers.fusemax.mapper: unknown mapper 'fusemaxx'; did you mean "
        "'fusemax'? known: " + tail[5],
        f"{f}:15:24: sweep.grid.workload.seq_lenn: unknown sweep path 'workload.seq_lenn'; did "
        "you mean 'workload.seq_len'? known: " + tail[6],
        f"{f}:16:35: sweep.grid.arch.overrides.buffer_bytes[0]: expected a positive number of "
        "bytes, e.g. 16777216 or 16MiB, got -1",
        f"{f}:17:24: sweep.grid.workload.seq_len[0]: expected a length such as 4096, 4K or 1M,"
        " got '4Q'",
        f"{f}:18:14: objectives[0]: unknown metric 'latncy'; did you mean 'latency'? known: "
        + tail[9],
        f"{f}:20:27: constraints[0].below: unknown key 'below'; known keys: metric, max, min",
        f"{f}:20:5: constraints[0]: expected `max:` or `min:` with a number",
        f"{f}:21:21: outputs.formats[0]: unknown format 'xml'; known: csv, jsonl",
    ]
    assert "fusemax, " in tail[5] and "workload.seq_len, " in tail[6]


def test_block_without_a_design_choice(tmp_path: Path) -> None:
    text = BASE.replace(
        "designs:\n", "designs:\n  fm2: {arch: fusemax, cascade: one, mapper: fusemax}\n"
    )
    path = write(tmp_path, text + "sweep: {grid: {workload: [BERT], workload.seq_len: [1K]}}\n")
    assert problems(path) == [
        f"{path}:14:8: sweep: no design chosen: set `design` in `fixed` or sweep it "
        "(2 designs are defined)"
    ]


def test_missing_seq_len_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + "sweep: {grid: {workload: [BERT]}}\n")
    assert problems(path) == [
        f"{path}:13:8: sweep: cannot resolve the first point: workload 'BERT': no seq_len "
        "(set workload.seq_len)"
    ]


def test_inline_cascade_problems_point_into_the_experiment(tmp_path: Path) -> None:
    text = BASE.replace(
        "  one: attention-1pass-mh\n",
        "  one: attention-1pass-mh\n"
        "  mine:\n"
        "    cascade: mine\n"
        "    inputs: {A: [M]}\n"
        "    einsums:\n"
        "      - Z[m] = A[m] +* 2\n"
        "    outputs: [Z]\n",
    )
    path = write(tmp_path, text + "sweep: {grid: {workload: [BERT], workload.seq_len: [1K]}}\n")
    got = problems(path)
    assert len(got) == 1
    assert got[0].startswith(f"{path}:10:")
    assert ": cascades.mine.einsums[0]: " in got[0]


def test_requires_missing_mapper_skips(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        BASE.replace("{mapper: fusemax}", "{mapper: not-yet}")
        + """\
requires: {mappers: [not-yet]}
sweep: {grid: {workload: [BERT], workload.seq_len: [1K], mapper.options.x: [1]}}
""",
    )
    exp = load_experiment(path)
    assert exp.missing_mappers == ("not-yet",)


GPU_BASE = """\
name: t
architectures:
  fusemax: {preset: fusemax}
  gpu: h200
cascades:
  one: attention-1pass-mh
workloads:
  tiny: {sizes: {B: 1, H: 2, E: 64, F: 64, P: 1024, M: 1024}}
mappers:
  fusemax: fusemax
  gpu: gpu-1pass
designs:
  fm: {arch: fusemax, cascade: one, mapper: fusemax}
  g: {arch: gpu, cascade: one, mapper: gpu}
"""
NO_OVERRIDES = (
    "does not apply to h200 (a GPU preset), which takes calibration; {0} is for spatial presets"
)


def test_overrides_a_preset_cannot_take_are_reported_where_set(tmp_path: Path) -> None:
    text = GPU_BASE.replace(
        "  gpu: h200\n",
        "  gpu: {preset: h200, overrides: {buffer_bytes: 1MiB, clock_ghz: 2}}\n"
        "  fast: {preset: fusemax, overrides: {clock_ghz: .nan, dram_bandwidth_gib_per_s: .inf,"
        " bufer_bytes: 1}}\n",
    )
    path = write(tmp_path, text + "sweep: {fixed: {design: fm}, grid: {workload: [tiny]}}\n")
    f = str(path)
    assert problems(path) == [
        f"{f}:4:49: architectures.gpu.overrides.buffer_bytes: override 'buffer_bytes' "
        + NO_OVERRIDES.format("buffer_bytes"),
        f"{f}:4:66: architectures.gpu.overrides.clock_ghz: override 'clock_ghz' "
        + NO_OVERRIDES.format("clock_ghz"),
        f"{f}:5:50: architectures.fast.overrides.clock_ghz: expected a positive finite number, "
        "got nan",
        f"{f}:5:82: architectures.fast.overrides.dram_bandwidth_gib_per_s: expected a positive "
        "finite number, got inf",
        f"{f}:5:101: architectures.fast.overrides.bufer_bytes: unknown override 'bufer_bytes'; "
        "did you mean 'buffer_bytes'? fusemax (a spatial preset) takes clock_ghz, "
        "dram_bandwidth_gib_per_s, buffer_bytes, array_shapes, register_file_entries",
    ]


def test_swept_overrides_are_checked_on_every_arch_a_block_selects(tmp_path: Path) -> None:
    sweep = """\
sweep:
  - fixed: {design: g}
    grid:
      arch.overrides.buffer_bytes: [1MiB, 2MiB]
      arch.overrides.array_shapes.array_2d: [[4, 4]]
  - list:
      - {design: fm, arch.overrides.clock_ghz: 1.0}
      - {design: g, arch.overrides.clock_ghz: 1.0}
  - grid:
      arch: [fusemax, gpu]
      design: [fm]
      arch.overrides.dram_bandwidth_gib_per_s: [100, .inf]
  - fixed: {design: fm}
    random:
      samples: 2
      seed: 0
      space: {arch.preset: [fusemax, h200], arch.overrides.clock_ghz: {uniform: [0.5, 1]}}
"""
    path = write(tmp_path, GPU_BASE + sweep)
    f = str(path)
    on_gpu = "arch 'gpu': override '{0}' " + NO_OVERRIDES
    assert problems(path) == [
        f"{f}:18:36: sweep[0].grid.arch.overrides.buffer_bytes: " + on_gpu.format("buffer_bytes"),
        f"{f}:19:45: sweep[0].grid.arch.overrides.array_shapes.array_2d: "
        + on_gpu.format("array_shapes"),
        f"{f}:22:47: sweep[1].list[1].arch.overrides.clock_ghz: " + on_gpu.format("clock_ghz"),
        f"{f}:26:54: sweep[2].grid.arch.overrides.dram_bandwidth_gib_per_s[1]: expected a "
        "positive finite number, got inf",
        f"{f}:26:48: sweep[2].grid.arch.overrides.dram_bandwidth_gib_per_s: "
        + on_gpu.format("dram_bandwidth_gib_per_s"),
        f"{f}:24:13: sweep[2].grid.arch: design 'fm': arch 'gpu': " + FUSEMAX_ON_GPU,
        f"{f}:31:71: sweep[3].random.space.arch.overrides.clock_ghz: arch 'fusemax': override "
        "'clock_ghz' " + NO_OVERRIDES.format("clock_ghz"),
        f"{f}:31:28: sweep[3].random.space.arch.preset: design 'fm': preset 'h200': "
        + FUSEMAX_ON_GPU,
    ]


FUSEMAX_ON_GPU = (
    "mapper 'fusemax' maps onto spatial accelerators, not GPUs "
    "(mappers for GPUs: gpu-1pass, gpu-2pass, gpu-bwd, gpu-decode, gpu-lasp2, gpu-lasp2h, "
    "gpu-lightning, gpu-ring-attention, gpu-ulysses, gpu-unfused)"
)


def test_a_swept_preset_must_take_its_archs_overrides(tmp_path: Path) -> None:
    eight = "{preset: fusemax, overrides: {buffer_bytes: 8MiB}}"
    text = GPU_BASE.replace("{preset: fusemax}", eight)
    sweep = "sweep: {fixed: {design: fm}, grid: {arch.preset: [flat, h200]}}\n"
    path = write(tmp_path, text + sweep)
    assert problems(path) == [
        f"{path}:15:50: sweep.grid.arch.preset: arch 'fusemax': overrides.buffer_bytes: override "
        "'buffer_bytes' " + NO_OVERRIDES.format("buffer_bytes")
    ]


def test_overrides_the_archs_take_still_load(tmp_path: Path) -> None:
    sweep = """\
sweep:
  - fixed: {design: fm}
    grid: {arch.overrides.buffer_bytes: [1MiB, 2MiB], arch.overrides.clock_ghz: [1]}
  - grid: {design: [g]}
"""
    exp = load_experiment(write(tmp_path, GPU_BASE + sweep))
    assert exp.count == 3
    first = next(exp.points()).resolved["arch"]
    assert first["overrides"] == {"buffer_bytes": 2**20, "clock_ghz": 1.0}


def test_baseline_defaults_to_the_first_design_and_must_name_one(tmp_path: Path) -> None:
    designs = BASE + "  other: {arch: fusemax, cascade: one, mapper: fusemax}\n"
    sweep = "sweep:\n  grid: {design: [fm, other], workload: [BERT], workload.seq_len: [1K]}\n"
    assert load_experiment(write(tmp_path, designs + sweep)).baseline == "fm"
    named = write(tmp_path, designs + "baseline: other\n" + sweep)
    assert load_experiment(named).baseline == "other"
    wrong = write(tmp_path, designs + "baseline: flat\n" + sweep)
    assert problems(wrong) == [
        f"{wrong}:14:11: baseline: unknown design 'flat'; expected one of the designs: fm, other"
    ]
