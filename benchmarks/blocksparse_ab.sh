#!/usr/bin/env bash
# GPU only: the block-sparse key loop's two builds in one run (2026-12-06; the new one is main's).
#
#   git show c4a4ec6^:kernels/triton/attn_loop.py > attn_loop_before.py (here, before `run`)
#   bash benchmarks/blocksparse_ab.sh                                  (on the device; $OUT)
#
# Times `benchmarks/blocksparse_suite.py` with this tree's loop (the list entry read a step
# ahead) under $OUT/new. On an H200, the old build's suite is committed
# (kernels/measurements/blocksparse/superseded/blocksparse-suite-h200-2026-12-04.csv), so it also times the
# new build's neighborhood steps and validation suite; elsewhere it times the old loop
# (attn_loop_before.py, copied into a second tree) under $OUT/old with the same budget, so the
# two builds run the same cases, each beside its own dense kernel (`dense_ms`).
set -u
: "${OUT:?set OUT to the folder that comes back}"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
g=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1); echo "$g" | tee "$OUT/gpu.txt"
export PYTHONPATH=.
mkdir -p "$OUT/new" "$OUT/old"
t0=$SECONDS
b=240; echo "$g" | grep -q H200 || b=120
(timeout 280 python benchmarks/blocksparse_suite.py --out "$OUT/new" --budget-s $b > "$OUT/new.log" 2>&1; echo "new rc $? at $((SECONDS-t0)) s")
if echo "$g" | grep -q H200; then
  (timeout 120 python -m attnsim.kernels.calibrate.microbench_neighborhood \
    --out "$OUT/microbench-neighborhood-h200-new.yaml" > "$OUT/nbhd-cal.log" 2>&1; echo "nbhd-cal rc $? at $((SECONDS-t0)) s")
  (timeout 170 python benchmarks/neighborhood_probe.py --out "$OUT/nbhd" --suite validation \
    --budget-s 150 > "$OUT/nbhd.log" 2>&1; echo "nbhd rc $? at $((SECONDS-t0)) s")
else
  rm -rf /tmp/old && mkdir -p /tmp/old && cp -a . /tmp/old/ && cp attn_loop_before.py /tmp/old/kernels/triton/attn_loop.py
  (cd /tmp/old && timeout 280 python benchmarks/blocksparse_suite.py --out "$OUT/old" --budget-s $b > "$OUT/old.log" 2>&1; echo "old rc $? at $((SECONDS-t0)) s")
fi
