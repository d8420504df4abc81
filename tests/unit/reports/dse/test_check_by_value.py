"""`check` means `run` will not fail on input: options by value, presets, ranks, arch kinds."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from attnsim.archs.load import load_arch, preset_names
from attnsim.einsum_ir import load_cascade
from attnsim.einsum_ir.spec import SpecError
from attnsim.mappers.options import mapper_options, problems
from attnsim.mappers.registry import get_mapper, mapper_names
from attnsim.mappers.spatial.view import MappingError
from attnsim.reports.cli.main import main
from attnsim.reports.dse.experiment import load_experiment

BASE = """\
name: t
architectures:
  fm: {preset: fusemax}
  gpu: h200
cascades:
  one: attention-1pass-mh
  bare: attention-1pass
workloads:
  tiny: {sizes: {B: 1, H: 2, E: 64, F: 64, P: 256, M: 256}}
mappers:
  fusemax: fusemax
  flat: flat
  g1: gpu-1pass
designs:
  fm: {arch: fm, cascade: one, mapper: fusemax}
"""
PRESETS = ", ".join(preset_names())


def write(tmp_path: Path, text: str, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_experiment(path)
    return [str(p) for p in info.value.problems]


def test_mapper_options_are_checked_by_value_all_at_once(tmp_path: Path) -> None:
    flat = "  flat: {mapper: flat, options: {p1: -1, spilled_fraction: 2.0, onchip: [QK, Z]}}\n"
    text = BASE.replace("  flat: flat\n", flat)
    fusemax = "  fusemax: {mapper: fusemax, options: {step: bogus}}\n"
    text = text.replace("  fusemax: fusemax\n", fusemax)
    sweep = """\
sweep:
  fixed: {design: fm}
  grid:
    mapper.options.key_tile: [0, -4]
    mapper.options.granularity: [row, tile]
"""
    path = write(tmp_path, text + sweep)
    f = str(path)
    assert problems_of(path) == [
        f"{f}:11:46: mappers.fusemax.options.step: step: expected one of 'cascade', 'arch', "
        "'binding', got 'bogus'",
        f"{f}:12:38: mappers.flat.options.p1: p1: expected an integer >= 0 (0: the 2D array's "
        "rows), got -1",
        f"{f}:12:60: mappers.flat.options.spilled_fraction: spilled_fraction: expected a number "
        "in [0, 1], got 2.0",
        f"{f}:12:73: mappers.flat.options.onchip: onchip: unknown 'Z'; expected a list of Q, K, "
        "QK, A, V, AV",
        f"{f}:19:34: sweep.grid.mapper.options.key_tile[1]: mapper 'fusemax': key_tile: expected "
        "an integer >= 0 (0: the 2D array's columns), got -4",
        f"{f}:20:39: sweep.grid.mapper.options.granularity[1]: mapper 'flat': granularity: "
        "expected one of 'head', 'row', got 'tile'",
    ]


def test_a_list_option_takes_a_list_and_keeps_its_names(tmp_path: Path) -> None:
    text = BASE.replace("  flat: flat\n", "  flat: {mapper: flat, options: {onchip: QK}}\n")
    path = write(tmp_path, text + "sweep: {fixed: {design: fm}, grid: {workload: [tiny]}}\n")
    assert problems_of(path) == [
        f"{path}:12:42: mappers.flat.options.onchip: onchip: expected a list of Q, K, QK, A, V, "
        "AV, got 'QK'"
    ]
    good = BASE.replace("  flat: flat\n", "  flat: {mapper: flat, options: {onchip: [QK, A]}}\n")
    good += "  fl: {arch: fm, cascade: one, mapper: flat}\n"
    exp = load_experiment(write(tmp_path, good + "sweep: {grid: {design: [fl]}}\n"))
    assert next(exp.points()).resolved["mapper"]["options"] == {"onchip": ["QK", "A"]}


def test_check_cli_prints_every_problem_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = BASE.replace("  fusemax: fusemax\n", "  fusemax: {mapper: fusemax, options: {p1: -1}}\n")
    path = write(tmp_path, text + "sweep: {grid: {mapper.options.step: [arch, bogus]}}\n")
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:11:44: mappers.fusemax.options.p1: p1: expected an integer >= 0" in err
    assert f"{path}:16:44: sweep.grid.mapper.options.step[1]: mapper 'fusemax': step:" in err
    assert "Traceback" not in err


def test_swept_presets_resolve_at_check_time(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text(Path(load_arch("fusemax").source).read_text())
    sweep = "sweep: {fixed: {design: fm}, grid: {arch.preset: [flat, fusemx, mine.yaml, "
    sweep += "no.yaml]}}\n"
    path = write(tmp_path, BASE + sweep)
    f = str(path)
    assert problems_of(path) == [
        f"{f}:16:57: sweep.grid.arch.preset[1]: unknown preset 'fusemx'; did you mean "
        f"'fusemax'? known: {PRESETS}",
        f"{f}:16:76: sweep.grid.arch.preset[3]: unknown preset 'no.yaml'; known: {PRESETS}",
    ]
    ok = write(tmp_path, BASE + "sweep: {fixed: {design: fm}, grid: {arch.preset: [mine.yaml]}}\n")
    point = next(load_experiment(ok).points()).resolved
    assert point["arch"]["preset"] == str(tmp_path / "mine.yaml")  # absolute: any folder runs it


def test_an_unknown_preset_in_architectures_is_located(tmp_path: Path) -> None:
    text = BASE.replace("gpu: h200", "gpu: h2000") + "sweep: {grid: {design: [fm]}}\n"
    path = write(tmp_path, text)
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:4:8: architectures.gpu: no such file or preset; did you")


def test_workload_ranks_must_bind_the_cascade(tmp_path: Path) -> None:
    text = BASE + "  bare: {arch: fm, cascade: bare, mapper: fusemax}\n"
    path = write(tmp_path, text + "sweep: {grid: {design: [fm, bare]}}\n")
    assert problems_of(path) == [
        f"{path}:17:24: sweep.grid.design: design 'bare': workload 'tiny' on cascade 'bare': "
        "unknown rank B (ranks of attention-1pass: E, F, M, M0, M1, P); unknown rank H "
        "(ranks of attention-1pass: E, F, M, M0, M1, P)"
    ]
    # a rank bound by the sweep itself counts; one left unbound is named
    text = BASE.replace("{B: 1, H: 2, E: 64, F: 64, P: 256, M: 256}", "{B: 1, H: 2, E: 64, F: 64}")
    ok = write(tmp_path, text + "sweep: {grid: {design: [fm], workload.seq_len: [1K]}}\n")
    assert load_experiment(ok).count == 1
    half = write(tmp_path, text + "sweep: {grid: {design: [fm], workload.sizes.P: [1024]}}\n")
    assert problems_of(half) == [
        f"{half}:16:24: sweep.grid.design: design 'fm': workload 'tiny' on cascade 'one': "
        "missing sizes for M, M1"
    ]


def test_mapper_and_arch_kinds_must_match(tmp_path: Path) -> None:
    text = BASE + "  g: {arch: fm, cascade: one, mapper: g1}\n"
    sweep = """\
sweep:
  - grid: {design: [g]}
  - fixed: {design: fm}
    list:
      - {arch: gpu}
      - {mapper: g1, arch: gpu}
"""
    path = write(tmp_path, text + sweep)
    f = str(path)
    assert problems_of(path) == [
        f"{f}:18:20: sweep[0].grid.design: design 'g': arch 'fm': mapper 'gpu-1pass' maps onto "
        "GPUs, not spatial accelerators (mappers for spatial accelerators: flat, fusemax, "
        "layer-matmuls, unfused)",
        f"{f}:21:16: sweep[1].list[0].arch: design 'fm': arch 'gpu': mapper 'fusemax' maps onto "
        "spatial accelerators, not GPUs (mappers for GPUs: gpu-1pass, gpu-2pass, gpu-bwd, "
        "gpu-decode, gpu-lasp2, gpu-lasp2h, gpu-lightning, gpu-ring-attention, gpu-ulysses, "
        "gpu-unfused)",
    ]


def test_requires_typos_are_errors(tmp_path: Path) -> None:
    sweep = "sweep: {grid: {design: [fm]}}\n"
    typo = write(tmp_path, BASE + "requires: {mappers: [fusemx, fusemax]}\n" + sweep)
    assert problems_of(typo) == [
        f"{typo}:16:22: requires.mappers[0]: 'fusemx' is not a mapper of this experiment's "
        "`mappers:` (flat, fusemax, gpu-1pass)"
    ]
    text = BASE.replace("  flat: flat\n", "  flat: fla\n")
    near = write(tmp_path, text + "requires: {mappers: [fla]}\n" + sweep)
    assert problems_of(near)[0] == (
        f"{near}:16:22: requires.mappers[0]: unknown mapper 'fla'; did you mean 'flat'? "
        f"known: {', '.join(mapper_names())}"
    )


def test_sizes_over_2_to_the_40_are_located_errors(tmp_path: Path) -> None:
    sweep = "sweep: {grid: {design: [fm], workload.sizes.P: [1024, 2199023255553], "
    sweep += "workload.seq_len: [2048K, 2000000000M]}}\n"
    path = write(tmp_path, BASE + sweep)
    f = str(path)
    assert problems_of(path) == [
        f"{f}:16:55: sweep.grid.workload.sizes.P[1]: expected a size of at most 2^40 "
        "(1,099,511,627,776), got 2199023255553",
        f"{f}:16:97: sweep.grid.workload.seq_len[1]: expected a length of at most 2^40 "
        "(1,099,511,627,776), got '2000000000M'",
    ]


@pytest.mark.parametrize("name", mapper_names())
def test_each_mapper_declares_its_schema_and_arch_kind(name: str) -> None:
    cls = get_mapper(name)
    assert cls.arch_kind in ("spatial", "gpu")
    defaults = cls.Options()
    assert problems(defaults) == []  # the defaults are inside the declared domains
    for f in mapper_options(cls).values():
        assert f.expected  # every option says what it takes
    other = load_arch("h200" if cls.arch_kind == "spatial" else "fusemax")
    sizes = {"B": 1, "H": 2, "E": 64, "F": 64, "P": 256, "M": 256, "D": 128, "S": 512}
    with pytest.raises(MappingError):  # the declaration and the mapper agree
        cls().map(load_cascade("attention-1pass-mh"), other, sizes)
