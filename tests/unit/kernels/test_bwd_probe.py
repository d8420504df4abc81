"""The backward probe's grids, rows and run loop (benchmarks/bwd_probe.py), on CPU with fakes."""

from __future__ import annotations

import csv
import os

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"  # must precede the first import of triton
pytest.importorskip("triton")


@pytest.fixture(scope="module")
def probe(benchmark_module):
    return benchmark_module("bwd_probe")


def key(s):
    return (s.batch, s.heads, s.kv_heads, s.seq, s.head_dim, s.causal)


def test_grids_are_disjoint_and_well_formed(probe):
    val, hold = probe.VALIDATION, probe.HOLDOUT
    assert {s.suite for s in val} == {"validation"} and {s.suite for s in hold} == {"holdout"}
    assert not {key(s) for s in val} & {key(s) for s in hold}
    assert len({key(s) for s in val + hold}) == len(val + hold)
    for s in val + hold:
        assert s.heads % s.kv_heads == 0 and s.head_dim in (64, 128) and s.seq % 128 == 0
    assert {s.causal for s in val} == {s.causal for s in hold} == {False, True}
    assert {s.head_dim for s in val} == {64, 128}
    assert any(s.kv_heads < s.heads for s in hold) and all(s.kv_heads == s.heads for s in val)
    assert {(s.batch, s.heads, s.seq) for s in val} >= {(4, 32, 1024), (1, 16, 16384)}


def test_configs_and_estimates(probe):
    cfgs = probe.configs()
    ours = [c for c in cfgs if c.family == "triton-bwd"]
    assert len(ours) == 2 * len(probe.BWD_TILINGS)
    assert {c.dq_mode for c in ours} == {"atomic", "separate"}
    assert [c.family for c in cfgs[len(ours) :]] == ["sdpa-flash-bwd", "sdpa-cudnn-bwd"]
    # on the H200 machine's 16 cores: the whole grid in the 300 s a device call may take
    full = probe.estimate_s(probe.VALIDATION + probe.HOLDOUT, cfgs, jobs=16)
    quick = probe.estimate_s(probe.QUICK, probe.configs(quick=True), jobs=16)
    assert 100 < full < 270 and quick < 60
    # the estimate grows with the work: one more shape, one more config; fewer workers
    assert probe.estimate_s(probe.VALIDATION, cfgs, jobs=16) < full
    assert probe.estimate_s(probe.QUICK, cfgs, jobs=16) > quick
    assert probe.estimate_s(probe.VALIDATION + probe.HOLDOUT, cfgs, jobs=1) > 2 * full


def test_compile_jobs_cover_every_specialization_once(probe):
    grid = probe.VALIDATION + probe.HOLDOUT
    cfgs = probe.configs()
    jobs = probe.compile_jobs(grid, cfgs)
    ours = [c for c in cfgs if c.family == "triton-bwd"]
    # per config and causal: heads a multiple of 16 or not (the check's 4 heads are not), at
    # head dim 64 and 128, and at 128 the GQA shapes (32 / 8 heads) and their check (4 / 2);
    # then the host probe's four calls
    assert len(jobs) == len(ours) * 2 * (2 + 4) + 4
    assert len(set(jobs)) == len(jobs)
    # a batch or a length of the same class shares its job; 24 heads do not share 32's
    one = probe.Shape("validation", 4, 32, 32, 1024, 64, False)
    same = probe.Shape("validation", 1, 16, 16, 4096, 64, False)
    other = probe.Shape("holdout", 2, 24, 24, 3072, 64, False)
    cfg = ours[:1]
    assert len(probe.compile_jobs([one, same], cfg)) == len(probe.compile_jobs([one], cfg))
    assert len(probe.compile_jobs([one, other], cfg)) == len(probe.compile_jobs([one], cfg))
    assert len(probe.compile_jobs([other], cfg)) < len(probe.compile_jobs([one], cfg))
    b, h, g, seq, d, causal, tiling, mode, dtype = jobs[0]
    assert dtype == "bf16" and mode in ("atomic", "separate") and tiling in probe.BWD_TILINGS


def test_issue_us_times_the_host_before_waiting(probe, monkeypatch):
    import time as _time

    calls = []
    synced = []
    monkeypatch.setattr(probe, "_sync", lambda: synced.append(len(calls)))

    def fn():
        calls.append(1)
        _time.sleep(0.002)

    us = probe.issue_us(fn, call_ms=0.1)
    assert len(calls) == 21 and synced == [0, 21]  # 20 timed after one untimed, then a wait
    assert 2000 <= us < 10000
    calls.clear()
    probe.issue_us(fn, call_ms=50.0)  # a long call: two timed calls only
    assert len(calls) == 3


def test_host_summary_names_the_figures_and_the_rows(probe):
    rows = [{"host_us": str(x)} for x in (30.0, 32.0, 90.0)] + [{"host_us": ""}]
    figures = {"host_call_us": {"1pass": 16.6, "bwd-atomic": 41.0, "bwd-separate": 38.5},
               "bench_flush_us": 60.1}  # fmt: skip
    lines = probe.host_summary(rows, figures)
    assert lines[0] == "host_call_us: bwd-atomic 41.0, bwd-separate 38.5; do_bench flush 60.1 us"
    assert lines[1].startswith("host_us of 3 timed rows of ours: median 32.0")
    assert lines[1].endswith("max 90.0")
    assert probe.host_summary([], None) == []


def test_host_keys_are_the_models(probe):
    from attnsim.kernels.calibrate.microbench_bwd import HOST_CLASSES, host_key
    from attnsim.mappers.gpu.backward import host_keys

    for mode, causal in HOST_CLASSES:
        assert host_key(mode, causal) == host_keys(mode, causal)[0]
    assert host_key("atomic", False, "jit") not in host_keys("atomic", False)


def test_compile_in_workers_counts_failures():
    import math

    from attnsim.kernels.calibrate.microbench_bwd import compile_in_workers

    text = compile_in_workers([(3,), (4,), (-1,)], 2, 60.0, math.factorial, forward=False)
    assert text.startswith("compiled 2/3 jobs on 2 workers in ")
    assert "1 failed, first: ValueError" in text


def test_run_writes_every_row_and_records_failures(probe, tmp_path):
    shapes = probe.QUICK + [probe.Shape("holdout", 1, 8, 8, 512, 64, False)]
    cfgs = probe.configs(quick=True)
    bad_cfg = cfgs[1]
    bad_shape = shapes[2]

    def prepare(shape):
        if shape == bad_shape:
            raise MemoryError("CUDA out of memory")
        return {"shape": shape}

    def measure(case, shape, cfg):
        assert case["shape"] == shape
        if cfg == bad_cfg:
            raise RuntimeError("out of resources:\n shared memory")
        ms = 2.0 if cfg.family == "triton-bwd" else 3.0 if cfg.family == "sdpa-flash-bwd" else 1.0
        if cfg.family == "triton-bwd" and cfg.dq_mode == "separate":
            ms = 1.5
        return {"median_ms": ms, "p10_ms": ms * 0.9, "p90_ms": ms * 1.1, "max_err": 0.01}

    out = tmp_path / "sub" / "bwd.csv"
    info = {"device": "fake", "torch": "t", "triton": "tr"}
    rows = probe.run(shapes, cfgs, out, prepare, measure, info, budget_s=1e9)
    with out.open() as f:
        written = list(csv.DictReader(f))
    assert tuple(written[0]) == probe.FIELDS
    assert len(written) == len(rows) == len(shapes) * len(cfgs)
    assert [r["status"] for r in written if r["batch"] == "1" and r["heads"] == "8"] == [
        "error: inputs: MemoryError: CUDA out of memory"
    ] * len(cfgs)
    cfg_of = lambda r: (r["block_m"], r["num_stages"], r["dq_mode"])  # noqa: E731
    bad = (str(bad_cfg.block_m), str(bad_cfg.num_stages), bad_cfg.dq_mode)
    failed = [r for r in written if cfg_of(r) == bad and r["heads"] != "8"]
    assert len(failed) == 2
    assert {r["status"] for r in failed} == {"error: RuntimeError: out of resources: shared memory"}
    ok = [r for r in written if r["status"] == "ok"]
    assert ok and all(r["device"] == "fake" and r["dtype"] == "bf16" for r in ok)
    for r in ok:
        assert float(r["tflops"]) == pytest.approx(
            int(r["flops"]) / float(r["median_ms"]) / 1e9, rel=1e-5
        )
        assert float(r["p10_ms"]) <= float(r["median_ms"]) <= float(r["p90_ms"])
    lines = probe.summary(rows)
    assert len(lines) == 2 + 2  # header, two measured shapes, legend
    assert all("sep" in line and "2.00" in line and "0.67" in line for line in lines[1:3])


def test_run_stops_timing_past_the_budget(probe, tmp_path):
    ticks = iter(range(1000))
    calls = []

    def measure(case, shape, cfg):
        calls.append(cfg)
        return {"median_ms": 1.0, "p10_ms": 1.0, "p90_ms": 1.0}

    cfgs = probe.configs(quick=True)
    out = tmp_path / "bwd.csv"
    rows = probe.run(probe.QUICK, cfgs, out, lambda s: {}, measure, {"device": "x", "torch": "t",
                     "triton": "tr"}, budget_s=4, clock=lambda: next(ticks))  # fmt: skip
    assert 0 < len(calls) < len(cfgs)
    assert len(rows) == len(probe.QUICK) * len(cfgs)
    assert {r["status"] for r in rows[len(calls) :]} == {"skipped: budget"}
    assert out.read_text().count("skipped: budget") == len(rows) - len(calls)


@pytest.fixture
def on_cpu(probe, monkeypatch):
    """The probe's GPU side in the interpreter: fp32, 64-token check shapes."""
    monkeypatch.setattr(probe, "DEVICE", "cpu")
    monkeypatch.setattr(probe, "DTYPE", torch.float32)
    monkeypatch.setattr(probe, "CHECK_SEQ", 64)
    return probe


@pytest.mark.parametrize("kv_heads, causal", [(16, True), (4, False)])
def test_check_ours_passes_the_kernel_and_fails_a_wrong_one(on_cpu, monkeypatch, kv_heads, causal):
    probe = on_cpu
    shape = probe.Shape("validation", 2, 16, kv_heads, 1024, 32, causal)
    cfg = probe.Config("triton-bwd", 32, 64, 4, 2, "separate")
    result = probe.check_ours(shape, cfg)
    assert result["status"] == "ok" and result["max_err"] < 1e-4 < result["err_allowed"]
    assert probe.check_key(shape, cfg) == (32, causal, kv_heads < 16, cfg)

    right = probe.attention_bwd

    def wrong(*args):  # dk off by 2%: over the allowed error
        dq, dk, dv = right(*args)
        return dq, dk * 1.02, dv

    monkeypatch.setattr(probe, "attention_bwd", wrong)
    result = probe.check_ours(shape, cfg)
    assert result["status"].startswith("wrong: dq, dk, dv errors") and result["max_err"] > 0


def test_sdpa_backward_closure_gives_the_reference_gradients(on_cpu):
    probe = on_cpu
    shape = probe.Shape("holdout", 1, 2, 2, 64, 32, True)
    case = probe.make_case(shape)
    o, *want = probe.reference_grads(case, True, torch.float64)
    assert (case["o"].double() - o).abs().max() < 1e-4
    got = probe._sdpa_bwd(case, shape, "sdpa-flash-bwd")()
    assert max((g.double() - w).abs().max().item() for g, w in zip(got, want, strict=True)) < 1e-4


def test_gpu_measure_end_to_end_with_a_fake_timer(on_cpu, monkeypatch, tmp_path):
    """make_case, the check, ours and the SDPA closures through `run`; only do_bench is fake."""
    import triton.testing

    probe = on_cpu
    timed = []

    def do_bench(fn, warmup, rep, quantiles):
        timed.append(fn())
        return [2.0, 1.5, 2.5]

    monkeypatch.setattr(triton.testing, "do_bench", do_bench)
    shapes = [probe.Shape("validation", 1, 4, 2, 64, 32, True)]
    cfgs = [probe.Config("triton-bwd", 16, 32, 4, 2, m) for m in ("atomic", "separate")]
    cfgs.append(probe.Config("sdpa-flash-bwd"))
    measure = probe.GpuMeasure()
    rows = probe.run(shapes, cfgs, tmp_path / "bwd.csv", probe.make_case, measure, {})
    assert [r["status"] for r in rows] == ["ok"] * 3
    assert {r["dtype"] for r in rows} == {"fp32"}
    assert all(r["median_ms"] == "2" and r["p10_ms"] == "1.5" for r in rows)
    assert all(float(r["host_us"]) > 0 for r in rows[:2]) and rows[2]["host_us"] == ""
    assert float(rows[0]["max_err"]) < 1e-4 < float(rows[0]["err_allowed"])
    assert len(measure.checked) == 2  # one check per (head dim, causal, GQA, config)
    ours_atomic, ours_separate, flash = timed
    for a, b, c in zip(ours_atomic, ours_separate, flash, strict=True):
        assert a.shape == b.shape == c.shape
        assert (a - b).abs().max() < 1e-4 and (a - c).abs().max() < 1e-4


def test_match_selects_shapes_by_field(probe) -> None:
    grid = probe.VALIDATION + probe.HOLDOUT
    picked = [s for s in grid if probe.matches(s, "kv_heads=8")]
    assert picked and all(s.kv_heads == 8 for s in picked)
    both = [s for s in grid if probe.matches(s, "suite=holdout,causal=1,head_dim=128")]
    assert both and all(s.suite == "holdout" and s.causal and s.head_dim == 128 for s in both)
    assert len(both) < len(grid) / 4
    with pytest.raises(ValueError, match="FIELD=VALUE"):
        probe.matches(grid[0], "seqlen=4")


def test_order_probe_takes_each_causal_shapes_fastest_config(probe, tmp_path, benchmark_module):
    order = benchmark_module("bwd_order_probe")
    rows = [
        dict(family="triton-bwd", suite="validation", batch=1, heads=4, kv_heads=4, seq_q=512,
             head_dim=64, causal=c, block_m=bm, block_n=64, num_warps=4, num_stages=3,
             dq_mode=mode, median_ms=ms, status=st)
        for c, bm, mode, ms, st in [
            ("1", 32, "atomic", "0.30", "ok"), ("1", 64, "separate", "0.20", "ok"),
            ("1", 16, "separate", "0.10", "wrong"), ("0", 32, "separate", "0.05", "ok"),
        ]
    ]  # fmt: skip
    path = tmp_path / "m.csv"
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    best = order.best_configs(path)
    assert best == {
        ("validation", 1, 4, 4, 512, 64): probe.Config("triton-bwd", 64, 64, 4, 3, "separate")
    }
    assert order.main(["--out", str(tmp_path / "o.csv")]) == (0 if torch.cuda.is_available() else 2)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the error path: no CUDA device")
def test_cudnn_baseline_row_records_its_failure(probe, tmp_path):
    """Without a GPU, SDPA's cuDNN backward cannot run: the row says why and the median is
    NaN, so the side probes' ratios against it come out NaN, not a number."""
    import io
    import math

    shape = probe.Shape("validation", 1, 2, 2, 32, 16, True)
    case = {n: torch.randn(1, 2, 32, 16, dtype=torch.bfloat16) for n in ("q", "k", "v", "do")}
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=("family", "suite", "median_ms", "tflops", "status"))
    w.writeheader()
    assert math.isnan(probe.time_cudnn_row(case, shape, {"suite": "validation"}, w))
    (row,) = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert row["family"] == "sdpa-cudnn-bwd" and row["status"].startswith("error: ")
    assert row["median_ms"] == "" and row["suite"] == "validation"


def test_side_probe_helpers(probe):
    """`parse_tilings` and `side_row`, shared by bwd_tma_probe.py and bwd_kernels_probe.py."""
    assert probe.parse_tilings("64x128x8x3,32x64x4x4") == [(64, 128, 8, 3), (32, 64, 4, 4)]
    assert probe.parse_tilings("") == []
    with pytest.raises(ValueError, match="four numbers"):
        probe.parse_tilings("64x128x8")
    with pytest.raises(ValueError, match="BMxBNxWARPSxSTAGES"):
        probe.parse_tilings("64xax8x3")
    s = probe.HOLDOUT[0]
    row = probe.side_row(s, {"device": "X", "torch": "t", "triton": "r"})
    assert (row["suite"], row["seq"], row["head_dim"], row["causal"]) == (
        s.suite, s.seq, s.head_dim, int(s.causal)
    )  # fmt: skip
    assert row["device"] == "X" and row["timestamp"]


@pytest.mark.parametrize("args", [["--tilings", "64x128x8"], ["--match", "nonsense=1"]])
def test_bwd_kernels_probe_bad_arguments_exit_2(probe, args, capsys, benchmark_module):
    module = benchmark_module("bwd_kernels_probe")
    with pytest.raises(SystemExit) as err:
        module.main(["--out", "/tmp/unused.csv", *args])
    assert err.value.code == 2
    assert "expected" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "said"),
    [(["--dp-first", "0,2"], "--dp-first: expected 0 and/or 1"),
     (["--diag", "x"], "--diag: expected 0 and/or 1"),
     (["--loads", "0"], "--loads: expected two digits")],
)  # fmt: skip
def test_bwd_tma_probe_bad_switches_exit_2(probe, args, said, capsys, benchmark_module):
    """The trial switches (`--dp-first` times the dK/dV step's two orders) are checked
    before any GPU work; a valid set without a GPU is refused with its reason."""
    module = benchmark_module("bwd_tma_probe")
    with pytest.raises(SystemExit) as err:
        module.main(["--out", "/tmp/unused.csv", *args])
    assert err.value.code == 2
    assert said in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert module.main(["--out", "/tmp/unused.csv", "--dp-first", "0,1"]) == 2
        assert "needs a CUDA GPU" in capsys.readouterr().err
