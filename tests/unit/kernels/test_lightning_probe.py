"""The Lightning probe's grids, reference, fla input plumbing, rows and summary (on CPU).

benchmarks/lightning_probe.py runs on a GPU; here its host logic runs on small sizes: the
float64 chunked reference against the token recurrence, fla's (B, T, H, D) inputs and log decay
against the same recurrence written in fla's terms, and one configuration measured end to end
in the Triton interpreter with a stand-in timer, written to CSV and read back.
"""

from __future__ import annotations

import csv
import math
import os

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"  # must precede the first import of triton
pytest.importorskip("triton")


@pytest.fixture(scope="module")
def probe(benchmark_module):
    return benchmark_module("lightning_probe")


def recurrence(q, k, v, lam, scale):
    """o_t = scale q_t S_t, S_t = lambda S_(t-1) + k_t v_t^T per head; q, k, v (H, S, D)."""
    h, s, _ = q.shape
    out = torch.zeros(h, s, v.shape[2], dtype=torch.float64)
    for j in range(h):
        state = torch.zeros(q.shape[2], v.shape[2], dtype=torch.float64)
        for t in range(s):
            state = float(lam[j]) * state + torch.outer(k[j, t].double(), v[j, t].double())
            out[j, t] = scale * q[j, t].double() @ state
    return out


def test_grids_cover_the_brief(probe):
    val = {(s.batch, s.heads, s.seq) for s in probe.VALIDATION}
    assert {(8, 16, 2048), (4, 16, 4096), (2, 16, 8192), (1, 16, 16384), (1, 32, 8192),
            (4, 32, 4096)} <= val  # fmt: skip
    assert {s.head_dim for s in probe.VALIDATION} == {64, 128}
    assert any(not s.decay for s in probe.VALIDATION)
    keys = lambda grid: {(s.batch, s.heads, s.seq, s.head_dim) for s in grid}  # noqa: E731
    assert not keys(probe.HOLDOUT) & keys(probe.VALIDATION)
    assert any(s.seq % 64 for s in probe.HOLDOUT)  # a ragged length
    assert [s.seq for s in probe.LENGTH] == [16384, 32768, 65536, 131072]
    assert {(s.batch, s.heads, s.head_dim) for s in probe.LENGTH} == {(1, 16, 128)}
    assert [s.suite for s in probe.shapes(False)][: len(probe.VALIDATION)] == ["validation"] * len(
        probe.VALIDATION
    )
    assert len(probe.shapes(True)) == 3 and {s.head_dim for s in probe.shapes(True)} == {128}


def test_configs_and_estimate(probe):
    shape = probe.Shape(2, 16, 8192, 128, "validation")
    cfgs = probe.configs(shape, quick=False)
    assert cfgs[0] == probe.Config(probe.FLA, "g_gamma")
    ours = [c for c in cfgs if c.family == probe.OURS]
    assert {c.schedule for c in ours} == {"fused", "split"}
    assert len(ours) == 2 * len(probe.lightning_tilings(128)) + 4
    assert [(c.state_tile, c.state_chunks) for c in ours[-4:]] == [
        ((32, 32), 1),
        ((32, 64), 1),
        (None, 2),
        (None, 4),
    ]
    assert all(c.schedule == "split" for c in ours[-4:])
    small = probe.configs(probe.Shape(1, 8, 1024, 32, "v"), quick=False)
    assert [c.state_tile for c in small if c.state_tile] == []  # 32 x 32 is the default there
    assert [c.schedule for c in probe.configs(shape, False, fla_g=True)[:2]] == ["g_gamma", "g"]
    no_decay = probe.configs(probe.Shape(1, 8, 1024, 64, "v", decay=False), quick=True)
    assert no_decay[0].schedule == "none" and all(c.tiling[1] <= 64 for c in no_decay[1:])
    assert len(no_decay) == 1 + 2 * 2
    quick = [(s, probe.configs(s, True)) for s in probe.shapes(True)]
    full = [(s, probe.configs(s, False)) for s in probe.shapes(False)]
    # quick: 1 fla key (45 s) + 4 configs of ours (6 kernels) + 15 timings
    assert probe.estimate_s(quick) == pytest.approx(0.2 * 15 + 1.5 * 6 + 45)
    assert probe.estimate_s(quick) < 60 < probe.estimate_s(full) < 400


def test_reference_chunked_matches_the_recurrence(probe):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 37, 8, generator=g) for _ in range(3))
    lam = torch.tensor([0.8, 0.3])
    ref = probe.reference_chunked(q, k, v, lam, 0.5, chunk=16)
    assert torch.allclose(ref, recurrence(q, k, v, lam, 0.5), rtol=1e-10, atol=1e-10)
    plain = probe.reference_chunked(q, k, v, None, 1.0, chunk=8)
    assert torch.allclose(plain, recurrence(q, k, v, torch.ones(2), 1.0), rtol=1e-10, atol=1e-9)


def test_fla_inputs_mean_the_same_attention(probe):
    """fla computes o_t = scale q_t S_t, S_t = exp(g_t) S_(t-1) + k_t v_t^T on (B, T, H, D)."""
    shape = probe.Shape(1, 2, 24, 16, "test")
    p = probe.make_problem(shape, "cpu", dtype=torch.float32)
    fq, fk, fv = p.fla_qkv
    assert fq.shape == (1, 24, 2, 16) and fq.is_contiguous()
    assert p.g.shape == (1, 24, 2) and p.g_gamma.shape == (2,)
    assert torch.equal(p.g[0, 5], p.g_gamma)
    for gates in (p.g[0, 0], p.g_gamma):  # both decay forms give lambda = exp(g)
        fla_like = recurrence(fq[0].transpose(0, 1), fk[0].transpose(0, 1),
                              fv[0].transpose(0, 1), torch.exp(gates), p.scale)  # fmt: skip
        assert torch.allclose(fla_like, p.ref, rtol=1e-9, atol=1e-9)
    assert p.lam[0] < p.lam[1] < 1  # later heads decay slower (TNL's slopes)


def test_measure_writes_a_checked_row(probe, tmp_path):
    shape = probe.Shape(1, 2, 40, 16, "validation")
    p = probe.make_problem(shape, "cpu", dtype=torch.float32)
    writer = probe.RowWriter(tmp_path / "sub" / "lightning.csv", dict(device="cpu", fla="none"))
    timer = lambda fn: (fn(), (2.0, 1.5, 3.0))[1]  # noqa: E731 (runs the kernel once)
    for cfg in (probe.Config(probe.OURS, "fused", (16, 16, 4, 2)),
                probe.Config(probe.OURS, "split", (32, 16, 4, 2), (16, 16)),
                probe.Config(probe.OURS, "split", (16, 16, 4, 2), None, 2),
                probe.Config(probe.FLA, "g_gamma")):  # fmt: skip
        writer.write(probe.measure(shape, cfg, p, fla_fn=None, timer=timer))
    writer.close()
    rows = list(csv.DictReader((tmp_path / "sub" / "lightning.csv").open()))
    assert [r["family"] for r in rows] == [probe.OURS] * 3 + [probe.FLA]
    assert list(rows[0]) == list(probe.FIELDS)
    for r in rows[:3]:
        assert r["status"] == "ok" and float(r["rel_err"]) < 1e-5 and r["device"] == "cpu"
        assert float(r["median_ms"]) == 2.0 and float(r["p90_ms"]) == 3.0
        assert int(r["flops"]) == probe.lightning_flops(1, 2, 40, 16, 16, int(r["block_c"]))
    assert rows[1]["block_c"] == "32" and rows[1]["schedule"] == "split"
    assert rows[0]["state_tile"] == "" and rows[1]["state_tile"] == "16x16"
    assert rows[1]["state_chunks"] == "1" and rows[2]["state_chunks"] == "2"
    assert (
        rows[3]["status"].startswith("error: RuntimeError")
        and "fla unavailable" in rows[3]["status"]
    )
    assert math.isnan(float(rows[3]["median_ms"])) and rows[3]["block_c"] == "64"
    errors = (tmp_path / "sub" / "lightning.errors.txt").read_text()
    assert (
        errors.startswith(f"family={probe.FLA} schedule=g_gamma batch=1") and "Traceback" in errors
    )


def test_check_flags_wrong_and_unwritten_outputs(probe):
    p = probe.make_problem(probe.Shape(1, 2, 16, 16, "v"), "cpu", dtype=torch.float32)
    cfg = probe.Config(probe.OURS, "fused", (16, 16, 4, 2))
    good = p.ref[None].float()
    assert probe.check(good, cfg, p)[0] == "ok"
    assert probe.check(good * 1.1, cfg, p)[0] == "wrong"
    assert probe.check(good + float("nan"), cfg, p)[0].startswith("wrong: non-finite")


def _row(probe, family, suite, seq, ms, schedule="fused", status="ok"):
    row = probe.base_row(probe.Shape(1, 16, seq, 128, suite), probe.Config(family, schedule))
    row.update(median_ms=ms, status=status, block_f=64, num_warps=4, num_stages=2)
    return row


def test_summary_picks_the_best_correct_runs(probe):
    rows = [
        _row(probe, probe.OURS, "validation", 4096, 1.0),
        _row(probe, probe.OURS, "validation", 4096, 0.5, status="wrong"),  # fast but wrong
        _row(probe, probe.OURS, "validation", 4096, 0.8, schedule="split"),
        _row(probe, probe.FLA, "validation", 4096, 1.2, schedule="g_gamma"),
        _row(probe, probe.OURS, "length", 16384, 2.0),
        _row(probe, probe.OURS, "length", 131072, 17.0),
        _row(probe, probe.FLA, "length", 16384, 2.0, schedule="g_gamma"),
        _row(probe, probe.FLA, "length", 131072, 16.0, schedule="g_gamma"),
    ]
    lines = probe.summarize(rows)
    assert "ours 0.800 ms (split" in lines[0] and "fla/ours 1.50" in lines[0]
    assert "fla/ours 1.00" in lines[1] and "fla/ours 0.94" in lines[2]
    assert f"{probe.OURS}: time(128K)/time(16K) = 8.50" in lines
    assert f"{probe.FLA}: time(128K)/time(16K) = 8.00" in lines
    assert any(line.startswith("fla/ours: geomean") for line in lines)


def _run_main(probe, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """main(--quick) on a stand-in CUDA device without fla; the CSV's rows."""
    monkeypatch.setattr(probe, "load_fla", lambda: (None, "unavailable (test)"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "stand-in")
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    out = tmp_path / "lightning.csv"
    assert probe.main(["--out", str(out), "--quick"]) == 0
    return list(csv.DictReader(out.open()))


def test_main_runs_the_plan_end_to_end(probe, tmp_path, monkeypatch, capsys):
    """main() on a stand-in device: tiny shapes on CPU (interpreter), a stand-in timer."""
    tiny = (probe.Shape(1, 2, 40, 16, "validation"), probe.Shape(1, 2, 64, 16, "length"))
    monkeypatch.setattr(probe, "shapes", lambda quick, gla=False: tiny)
    monkeypatch.setattr(probe, "LENGTH", tiny[1:])
    real_problem = probe.make_problem
    monkeypatch.setattr(
        probe, "make_problem", lambda s, device: real_problem(s, "cpu", torch.float32)
    )
    monkeypatch.setattr(probe, "do_bench", lambda fn: (fn(), (1.0, 0.9, 1.1))[1])
    rows = _run_main(probe, tmp_path, monkeypatch)
    assert len(rows) == sum(len(probe.configs(s, True)) for s in tiny)
    ours = [r for r in rows if r["family"] == probe.OURS]
    assert ours and all(r["status"] == "ok" and r["device"] == "stand-in" for r in ours)
    assert all(r["status"].startswith("error") for r in rows if r["family"] == probe.FLA)
    printed = capsys.readouterr().out
    assert "configs on 2 shapes" in printed and "wrote" in printed
    assert "1x2x40 d16 decay yes: ours 1.000 ms" in printed.replace("validation: ", "")


def test_a_lost_cuda_context_skips_the_rest(probe, tmp_path, monkeypatch):
    """After a kernel fault every later call fails: those rows say so instead of timing."""
    tiny = (probe.Shape(1, 2, 40, 16, "validation"),)
    monkeypatch.setattr(probe, "shapes", lambda quick, gla=False: tiny)
    monkeypatch.setattr(probe, "make_problem", lambda s, device: object())
    calls = []

    def fault(shape, cfg, p, fn):  # type: ignore[no-untyped-def]
        calls.append(cfg)
        row = probe.base_row(shape, cfg)
        row["status"] = "error: AcceleratorError: CUDA error: an illegal memory access"
        return row

    monkeypatch.setattr(probe, "measure", fault)
    rows = _run_main(probe, tmp_path, monkeypatch)
    assert len(calls) == 1 and len(rows) == len(probe.configs(tiny[0], True)) > 1
    assert all(r["status"].startswith("skipped: CUDA context lost at") for r in rows[1:])


def test_gla_reference_and_suite(probe):
    """The GLA suite: its chunked float64 reference equals the token recurrence, its configs
    put fla's chunk_gla first, and its gates are GLA's (logsigmoid / 16, in (-1, 0))."""
    from attnsim.kernels.triton.lightning import gla_reference

    shape = probe.Shape(1, 2, 100, 16, "gla", gated=True)
    p = probe.make_problem(shape, "cpu", torch.float32)
    assert p.gates.shape == p.k.shape and bool((p.gates < 0).all() and (p.gates > -1).all())
    assert p.fla_gates.shape == (1, 100, 2, 16)
    ref = gla_reference(p.q[:1], p.k[:1], p.v[:1], p.gates[:1], p.scale)[0]
    assert torch.allclose(ref, p.ref, rtol=1e-10, atol=1e-12)
    cfgs = probe.configs(shape, quick=True)
    assert cfgs[0] == probe.Config(probe.FLA_GLA, "gla")
    assert {c.schedule for c in cfgs[1:]} == set(probe.SCHEDULES)
    assert probe.shapes(True, gla=True) == probe.GLA_QUICK
    assert all(s.gated for s in probe.shapes(False, gla=True))
    assert "gla" in shape.label


def test_gla_rows_ours_and_fla_in_fla_layout(probe):
    from attnsim.kernels.triton.lightning import gla_reference

    shape = probe.Shape(1, 2, 40, 16, "gla", gated=True)
    p = probe.make_problem(shape, "cpu", torch.float32)

    def chunk_gla(q, k, v, g, scale, output_final_state):  # fla's (B, T, H, D) layout
        o = gla_reference(*(t.transpose(1, 2) for t in (q, k, v, g)), scale)
        return o.transpose(1, 2).float(), None

    timer = lambda fn: (1.0, 0.9, 1.1)  # noqa: E731
    ours = probe.measure(shape, probe.Config(probe.OURS, "split", (16, 16, 4, 1)), p, None, timer)
    fla = probe.measure(shape, probe.Config(probe.FLA_GLA, "gla"), p, chunk_gla, timer)
    assert ours["status"] == "ok" and ours["rel_err"] < 1e-5 and ours["decay"] == "gla"
    assert fla["status"] == "ok" and fla["rel_err"] < 1e-6
    lines = probe.summarize([{**ours, "state_tile": ""}, fla])
    assert "fla/ours 1.00" in lines[0]
