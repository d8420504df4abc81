"""The ping-pong kernel's schedule, checked in its SASS and PTX (compiled for sm_90 on any host).

kernels/gluon/attn_pingpong.py exists for one property: its two consumer warp groups take turns on
the tensor cores, so one group's softmax runs under the other group's wgmmas. That needs,
in the compiled key-tile loop of the consumer partition:

- no barrier with an immediate id (`BAR.SYNC.DEFER_BLOCKING 0x0` is the whole consumer
  partition: it would put the two groups in lockstep every key tile), and no mbarrier wait
  (Triton surrounds those with such a barrier): only the named barriers with a register id
  (4 + wg and the like, computed from %tid.x);
- each group of wgmmas (S = Q K^T, O += P V) issued after the group's turn wait
  (`BAR.SYNC Rx, 0x100`) and the turn handed over (`BAR.ARV Ry, 0x100`) before the group
  waits for its scores (`WARPGROUP.DEPBAR.LE gsb0, 0x1`): a turn held across that wait would
  serialize the groups again;
- nothing spilled.

The loop is found as the innermost backward branch around the kernel's only wait for the
scores. Needs Triton's bundled ptxas/cuobjdump, no GPU. The kernels are compiled in a fresh
interpreter, as in test_wgmma_schedule.py: other tests of the session run Triton's CPU
interpreter (TRITON_INTERPRET=1), which patches the language builtins compilation uses.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

triton = pytest.importorskip("triton")

BIN = Path(triton.__file__).parent / "backends" / "nvidia" / "bin"
ROOT = Path(__file__).resolve().parents[4]
CASES = {  # id: compile_for_sm90 keyword arguments (stages 3 unless given)
    "hd128": {"block_n": 128, "head_dim": 128},
    "hd128-causal": {"block_n": 128, "head_dim": 128, "causal": True},
    "hd64": {"block_n": 64, "head_dim": 64},
    "hd128-s2": {"block_n": 128, "head_dim": 128, "stages": 2},
    # sigmoid attention: no running max, sum or rescale, the same turns
    "hd128-sigmoid": {"block_n": 128, "head_dim": 128, "sigmoid": True},
    "hd128-causal-sigmoid": {"block_n": 128, "head_dim": 128, "causal": True, "sigmoid": True},
    "hd64-sigmoid": {"block_n": 64, "head_dim": 64, "sigmoid": True},
}
GROUP_THREADS, WARP_THREADS = 128, 32  # one consumer warp group; the producer / signal warp
TURN = 2 * GROUP_THREADS  # one group waits, the other arrives
FREE = 2 * GROUP_THREADS + WARP_THREADS  # both groups arrive, the producer warp waits
READY = GROUP_THREADS + WARP_THREADS  # the signal warp arrives, one group waits
_COMPILE = """
import json, sys
from pathlib import Path
from attnsim.kernels.gluon.attn_pingpong import _FREE_ID, _TURN_ID, STAGE_CHOICES, compile_for_sm90
out = Path(sys.argv[1])
ids = {"turn": _TURN_ID, "free": _FREE_ID, "stages": STAGE_CHOICES}
(out / "ids.json").write_text(json.dumps(ids))
for name, kwargs in json.loads(sys.argv[2]).items():
    kernel = compile_for_sm90(**kwargs)
    (out / f"{name}.cubin").write_bytes(kernel.asm["cubin"])
    (out / f"{name}.ptx").write_text(kernel.asm["ptx"])
"""


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (BIN / "cuobjdump").exists():
        pytest.skip("Triton's bundled cuobjdump is not there")
    out = tmp_path_factory.mktemp("pingpong")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-c", _COMPILE, str(out), json.dumps(CASES)]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return out


@dataclass(frozen=True)
class Op:
    addr: int
    pred: str  # "@P0", "@!P1", ... or ""
    text: str  # the instruction without its predicate


@dataclass(frozen=True)
class Bar:
    kind: str  # SYNC or ARV
    bar_id: str  # "R231" (a register) or "0x0" (an immediate)
    count: int | None  # threads, None = all of the CTA

    @property
    def named(self) -> bool:
        """Whether the id comes from a register (the kernel's per-group named barriers)."""
        return self.bar_id.startswith("R")


@functools.cache
def sass(compiled: Path, name: str) -> tuple[list[Op], str]:
    """The SASS instructions of a compiled case, and its resource usage line(s)."""

    def dump(*args: str) -> str:
        cmd = [str(BIN / "cuobjdump"), *args, str(compiled / f"{name}.cubin")]
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout

    pattern = r"/\*([0-9a-f]{4,})\*/\s+((?:@!?U?P\w+\s+)?)([^;]+);"
    ops = [
        Op(int(m.group(1), 16), m.group(2).strip(), m.group(3).strip())
        for m in re.finditer(pattern, dump("-sass"))
    ]
    return ops, dump("--dump-resource-usage")


def bar(op: Op) -> Bar | None:
    m = re.fullmatch(
        r"BAR\.(SYNC|ARV)(?:\.DEFER_BLOCKING)?\s+(R\d+|0x[0-9a-f]+)(?:,\s*(\S+))?", op.text
    )
    if not m:
        return None
    return Bar(m.group(1), m.group(2), None if m.group(3) is None else int(m.group(3), 16))


def scores_wait(ops: list[Op]) -> int:
    """Index of the consumer's wait for S_j (the P.V of tile j-1 stays in flight)."""
    waits = [i for i, op in enumerate(ops) if op.text.startswith("WARPGROUP.DEPBAR.LE gsb0, 0x1")]
    assert len(waits) == 1, "one wait-for-scores, in the key-tile loop"
    return waits[0]


def key_tile_loop(ops: list[Op]) -> list[Op]:
    """The innermost loop (a backward branch and its target) around the wait for the scores."""
    at = ops[scores_wait(ops)].addr
    loops = []
    for op in ops:
        m = re.fullmatch(r"BRA (0x[0-9a-f]+)", op.text)
        if m and int(m.group(1), 16) <= at < op.addr:
            loops.append((int(m.group(1), 16), op.addr))
    assert loops, "the wait for the scores is in no loop"
    start, end = min(loops, key=lambda se: se[1] - se[0])
    return [op for op in ops if start <= op.addr <= end]


def hgmma_groups(ops: list[Op]) -> list[tuple[int, int]]:
    """(first, last) index of each group of wgmmas: HGMMAs after one WARPGROUP.ARRIVE."""
    groups: list[list[int]] = []
    for i, op in enumerate(ops):
        if op.text.startswith("WARPGROUP.ARRIVE"):
            groups.append([])
        elif op.text.startswith("HGMMA"):
            assert groups, f"HGMMA before any WARPGROUP.ARRIVE: {op}"
            groups[-1].append(i)
    return [(g[0], g[-1]) for g in groups if g]


@pytest.mark.parametrize("name", list(CASES))
def test_nothing_spills(compiled: Path, name: str) -> None:
    ops, usage = sass(compiled, name)
    assert "LOCAL:0" in usage, usage
    stack = int(re.search(r"STACK:(\d+)", usage).group(1))  # type: ignore[union-attr]
    if CASES[name].get("causal"):
        # Measured with Triton 3.6: ptxas keeps one 4-byte value of the causal hd128 kernel
        # in an 8-byte stack frame (one STL before the key-tile loop, one LDL after it).
        # Tolerated up to that, and never inside the loop (checked below).
        assert stack <= 8, usage
    else:
        assert stack == 0, usage
    loop = key_tile_loop(ops)
    local = [op for op in loop if op.text.startswith(("STL", "LDL"))]
    assert not local, local


@pytest.mark.parametrize("name", list(CASES))
def test_key_tile_loop_waits_only_on_named_barriers(compiled: Path, name: str) -> None:
    loop = key_tile_loop(sass(compiled, name)[0])
    bars = [(op, bar(op)) for op in loop if op.text.startswith("BAR")]
    assert all(b is not None for _, b in bars), bars  # a barrier form this test does not know
    cta_wide = [op for op, b in bars if b is not None and not b.named]
    assert not cta_wide, f"barriers with an immediate id in the key-tile loop: {cta_wide}"
    assert not [op for op in loop if op.text.startswith("SYNCS")], "an mbarrier op in the loop"
    kinds = sorted((b.kind, b.count) for _, b in bars if b is not None)
    # READY wait, turn wait, turn give and FREE give; no FREE wait: that is the producer's
    assert ("SYNC", READY) in kinds and ("SYNC", FREE) not in kinds, kinds
    assert kinds.count(("SYNC", TURN)) == kinds.count(("ARV", TURN)) == 1, kinds
    assert kinds.count(("ARV", FREE)) == 1, kinds
    assert len(kinds) == 4, kinds


@pytest.mark.parametrize("name", list(CASES))
def test_wgmmas_issue_in_the_groups_turn(compiled: Path, name: str) -> None:
    ops = sass(compiled, name)[0]
    loop = key_tile_loop(ops)
    wait = next(
        i for i, op in enumerate(loop) if op.text.startswith("WARPGROUP.DEPBAR.LE gsb0, 0x1")
    )
    groups = hgmma_groups(loop)
    assert len(groups) == 2, "S = Q K^T and O += P V"
    d, bn = CASES[name]["head_dim"], CASES[name]["block_n"]
    s_ops = [op.text for op in loop[groups[0][0] : groups[0][1] + 1] if op.text.startswith("HGMMA")]
    pv_ops = [
        op.text for op in loop[groups[1][0] : groups[1][1] + 1] if op.text.startswith("HGMMA")
    ]
    # 64 query rows per warp group; S contracts over the head dim, P.V over the key tile
    assert len(s_ops) == d // 16 and all(f"HGMMA.64x{bn}x16" in t for t in s_ops), s_ops
    assert len(pv_ops) == bn // 16 and all(f"HGMMA.64x{d}x16" in t for t in pv_ops), pv_ops
    for first, last in groups:
        # the nearest barriers around the group, within the loop body
        before = next((bar(op) for op in reversed(loop[:first]) if bar(op)), None)
        after_i = next((i for i in range(last + 1, len(loop)) if bar(loop[i])), len(loop))
        after = bar(loop[after_i]) if after_i < len(loop) else None
        assert before and before.named and (before.kind, before.count) == ("SYNC", TURN), (
            f"wgmmas at {loop[first]} not right after the turn wait: {before}"
        )
        assert after and after.named and (after.kind, after.count) == ("ARV", TURN), (
            f"wgmmas at {loop[last]} not followed by the turn give: {after}"
        )
        assert after_i < wait, "the turn is handed over before the wait for the scores"


@pytest.mark.parametrize("name", list(CASES))
def test_every_wgmma_of_the_kernel_runs_in_a_turn(compiled: Path, name: str) -> None:
    """First tile, loop, last P.V: wgmmas only between a turn wait and a turn give, and no
    wgmma wait while a group holds the turn."""
    in_turn, turns, hgmmas = False, 0, 0
    for op in sass(compiled, name)[0]:
        b = bar(op)
        if b is not None and b.count == TURN and b.named:
            assert in_turn == (b.kind == "ARV"), f"unpaired turn barrier {op}"
            in_turn = b.kind == "SYNC"
            turns += in_turn
        elif op.text.startswith("HGMMA"):
            assert in_turn, f"{op} outside a turn"
            hgmmas += 1
        elif op.text.startswith("WARPGROUP.DEPBAR"):
            assert not in_turn, f"{op} while holding the turn"
    assert not in_turn
    assert turns == 3 and hgmmas > 0  # first S, the loop's S and P.V, the last P.V


def barrier_ids(compiled: Path) -> dict[str, Any]:
    """The kernel's first TURN and FREE ids and its STAGES choices (kernels.gluon.attn_pingpong)."""
    ids: dict[str, Any] = json.loads((compiled / "ids.json").read_text())
    return ids


def ptx_barriers(compiled: Path, name: str) -> list[tuple[str, str, int | None]]:
    """(op, id, count) of every bar.sync / bar.arrive / barrier.sync in the PTX."""
    text = (compiled / f"{name}.ptx").read_text()
    found = re.findall(
        r"\b(bar\.sync|bar\.arrive|barrier\.sync)\s+([%\w]+)(?:,\s*(\d+))?\s*;", text
    )
    return [(op, i, int(n) if n else None) for op, i, n in found]


@pytest.mark.parametrize("name", list(CASES))
def test_ptx_named_barrier_thread_counts(compiled: Path, name: str) -> None:
    turn_id = barrier_ids(compiled)["turn"]
    found = ptx_barriers(compiled, name)
    named = {(op, n) for op, i, n in found if not i.isdigit() or int(i) >= turn_id}
    assert named == {
        ("bar.sync", TURN),
        ("bar.arrive", TURN),
        ("bar.sync", FREE),
        ("bar.arrive", FREE),
        ("bar.sync", READY),
        ("bar.arrive", READY),
    }, named
    immediate = {(op, int(i), n) for op, i, n in found if i.isdigit()}
    # the kernel's only immediate id: group 1 hands group 0 its first turn; no other barrier
    # uses the kernel's ids (4..15)
    assert {b for b in immediate if b[1] >= turn_id} == {("bar.arrive", turn_id, TURN)}
    # Triton's own: bar 0 = the consumer partition (both groups), barrier 1 = the whole CTA
    # at the partition switch
    assert {b[1] for b in immediate if b[1] < turn_id} == {0, 1}
    assert {n for op, i, n in immediate if i == 0} == {2 * GROUP_THREADS}


def test_named_barrier_ids_fit_the_hardware(compiled: Path) -> None:
    """TURN 4-5, FREE 6.., READY 6+S..: disjoint, above Triton's, within the 16 of the SM."""
    ids = barrier_ids(compiled)
    for s in ids["stages"]:
        turn = {ids["turn"], ids["turn"] + 1}
        free = {ids["free"] + slot for slot in range(s)}
        ready = {ids["free"] + s + s * wg + slot for wg in (0, 1) for slot in range(s)}
        assert len(turn | free | ready) == 2 + 3 * s, s
        assert max(turn | free | ready) <= 15 and min(turn | free | ready) > 1, s
