#!/usr/bin/env bash
# GPU only: the H200 measurements the open issues still wait for, in priority order.
#
#   bash benchmarks/device_pending.sh STEP...      (on the device machine; writes under $OUT)
#
# Each step is one command with its own time budget, sized so that one `run` call (10 min at
# most) can take two or three; a step that fails is logged and the next one runs. The
# fla-core and einops wheels (`.whl/`, kept out of git) must travel with the tree for `gla`.
# After the run, commit the files under kernels/measurements/ (and merge calibration entries
# with the printed commands); nothing here changes the repository on the device.
#
# Steps (issue: what it measures, about how long on the H200):
#   gla-cal      14: the GLA kernel's own step (`microbench_lightning --gated`), ~3 min
#   decode-paged 12: per-tile time through a block table (`microbench_decode --paged`) into
#                    a copy of archs/calibration/h200-decode.yaml under $OUT, ~1.5 min
#   bwd-order    15: the causal backward's launch order, head groups 1 (head-major, the order
#                    before 2026-12-06) / 4 / 8 / 16 at each shape's best config, cuDNN in
#                    the same run (`bwd_order_probe.py`), ~2.5 min
#   bwd-tma      15: the backward's TMA trials (`bwd_tma_probe.py`: dQ by TMA reductions, the
#                    streamed tiles through descriptors) at head dims 64 and 128, >= 4K, ~3 min
#   bwd-diag     15: the causal dK/dV kernel's diagonal tiles in a loop of their own against one
#                    loop masking every tile (`bwd_tma_probe.py --diag 1,0`; fewer registers
#                    spilled), causal shapes >= 4K, head dims 64 and 128, cuDNN beside, ~3 min
#   fwd-order    18: the 1-pass forward's causal launch order, head groups 1/4/8/16 (a trial:
#                    `fwd_order_probe.py`, FWD_HEAD_GROUP stays 1), ~1.5 min
#   bwd-hd128    15: the backward suites at head dim 128 alone (the cuDNN bar's shapes), ~4 min
#   bwd-cal      15: the dK/dV kernel's steps of the dP-first build (`microbench_bwd --dkdv-only`;
#                    the H200 calibration's `-dpfirst` entries are its earlier build's scaled
#                    by an H100's ratio); merge with `--merge CAL --entries FILE`, ~1 min
#   bwd-kernels  15: the dK/dV and dQ kernels timed apart per tiling, cuDNN beside
#                    (`bwd_kernels_probe.py`: would a pair of tilings beat the joint one?), ~4 min
#   unfused-rows 18: the unfused kernels alone on small dense calls by score-row alignment (16-,
#                    8-, 4-, 2-byte rows; `unfused_kernels_probe.py --set align`), ~1 min
#   unfused-wide 18: the same in the row softmax's widest block (16 heads of 7787-7792 keys,
#                    head dim 64, causal and not; `--set wide`: the 7787-key causal calls priced
#                    11-15% fast on the H200 and an H100), ~1 min; an H100 serves too
#   unfused-tiny 18: the same on many short sequences (hundreds to thousands of heads, 64-384 keys;
#                    `--set tiny`: the regimes suite's 256 x 12 x 64 x 64 calls priced +13/+20%),
#                    ~0.5 min
#   bwd          15: the backward suites with the planned launcher and its host figures
#                    (`bwd_probe.py`: host_us per row, `-host.yaml` beside the CSV), 4 min
#   gla          14: GLA against fla-core's chunk_gla, head dims 64 and 128, ~3 min
#   bs-suite     13: the block-sparse suites again (`blocksparse_suite.py`), 4 min
#   masks-cal    13: the score-function and window steps again (`microbench_masks`), ~1 min
#   scores-cal   13: the plain kernel's score-function steps alone (`microbench_masks
#                    --scores-only`; after a score kernel changes), ~0.5 min
#   scores-64    13: the score suites' head-dim-64 shapes alone (dense ALiBi's bar), ~3 min
#   window-later 13: the window kernel's steps again, with its later waves (`microbench_masks
#                    --window-only`: 8-wave grids beside the one-wave ones; the W = 128 calls
#                    priced 7-14% fast; on an H100 such entries took its window/causal ratios
#                    from 75 to 91 of 91 within 10%); merge with its --merge, ~1 min
#   masks        13: window and score suites again (ALiBi at head dim 64, sigmoid), 4 min
#   masks-score  13: the score suites alone (the window rows left out), ~4 min
#   decode       12: decode suites, default + tuned tilings, SDPA in the same run, 4.5 min
#   sigmoid      13: sigmoid against softmax on both 1-pass kernels (`sigmoid_probe.py`), then
#                    the ping-pong kernel's softmax/sigmoid steps (`microbench_masks
#                    --pingpong-only`; merge with its --merge), ~3.5 min
#   nbhd-holdout 13: the neighborhood holdout suite again (its -33.7% point ran with a p10-p90
#                    spread of 46% of its median), ~3 min
#   nbhd-cal     13: the neighborhood layout's steps on the H200 (`microbench_neighborhood`;
#                    the calibration's entries came from an H100), ~1 min
#   sustained    18: whether the long ping-pong calls slow down as they repeat (clock, power,
#                    clock-event reasons at 20 ms; `benchmarks/sustained_probe.py`), ~2 min;
#                    an H100 shows the same gap and serves too; `--merge CAL FILE` fits the
#                    calibration's power_cap from the H200's summary file
#   sustained-sigmoid 13: the same for sigmoid beside softmax on the ping-pong and plain
#                    builds (the cap was fitted on softmax calls; the 1 x 16 x 8192
#                    ping-pong sigmoid call is priced +12-15% under it), ~1 min
#   short-blocks 18: a later wave's time by row length, 1-32 key tiles (`short_blocks_probe.py`;
#                    the many-block grids the model prices 8-17% slow), ~4 min; `--merge-later
#                    CAL FILE` writes the calibration's later_waves
#   q-sweep      18: 4096 query tiles at 1-16 per head through the suites' harness
#                    (`short_blocks_probe.py --q-sweep`), ~1 min; an H100 serves too
#   wave-sweep   18: call time by wave count (1-64 waves of 4/16-tile blocks; the later-wave
#                    figures come from 4-wave grids), calibration and suites' do_bench, ~2 min
#   transients   18: the same grids (1-32 waves, 4-tile blocks) for the other 1-pass builds,
#                    which `--merge-transients` turns into the calibration's wave_transients, ~2 min
#   unfused-align 18: the unfused kernels on 4- and 2-byte aligned score rows (S = 4090, 4089;
#                    `microbench_unfused --row-alignment`), ~2.5 min; merge its entries into the
#                    calibration's unfused_kernels (the ragged hd-64 calls priced 6-23% fast;
#                    the H100's entries, so merged into its own calibration, priced its fresh
#                    file worse, 7.7% -> 16.1%: kernels/measurements/h100/README.md)
#   decode-builds 12: registers and programs per SM of every decode build, paged and ragged
#                    too (`decode_builds_probe.py`; compiles only), ~1.5 min; an H100 serves
#   decode-waves 12: split-K launches of 1-60 waves of 1-4-tile programs per calibrated
#                    tiling (`decode_waves_probe.py`; the +28-34% many-split points), ~1 min
#   decode-waves-paged 12: the same launches through a shuffled block table (`--paged 64`:
#                    pages of max(64, block_n) keys; the paged suites' many-split calls,
#                    priced 14-26% fast at (64, 8, 3)), ~1 min; merge both files with
#                    `decode_waves_probe.py --merge CAL CONTIGUOUS PAGED`
# Run on the H200 on 2026-12-06 (committed under kernels/measurements/, merged where a model reads
# them): wave-sweep, transients, short-blocks, q-sweep, sustained, decode-waves, decode-paged,
# masks-cal, masks, nbhd-cal, bwd. Not yet on the H200: gla-cal and gla (the wheels), decode.
# Later that day, on the H200: bwd (the causal head-group build), fresh, bwd-order, and
# bwd-tma's split loads. The twelfth session's device time (2026-12-06) found no H200 (five
# H100s, three failed starts): the one-loop causal backward (BWD_DIAG_LOOP off) was timed on an
# H100 only (bwd-diag, bwd). The block-sparse key loop changed on 2026-12-06 (timed on an H100
# only; the H200's block-sparse files, the earlier loop's, are under superseded/). Next on the
# H200 (none came on 2026-12-06's last session): bwd (the one-loop build: issue 15's cuDNN bar,
# the last bar that issue misses), window-later, then bs-suite and nbhd-cal (that loop),
# sigmoid and masks-score (the ping-pong sigmoid, timed on an H100 only), nbhd-holdout and
# fwd-order. All of these ran on the H200 late on 2026-12-06 (committed; window-later's,
# nbhd-cal's and the ping-pong steps' entries not merged: each priced its suite worse, see the
# READMEs). Next: bwd again at head dim 128 (`bwd_probe.py --match head_dim=128`: the
# one-loop run's 1 x 40 x 6144 dense holdout shape read 0.675x cuDNN, 0.722x in the run
# before on the same dense kernel), then decode, gla-cal and gla (the wheels).
# 2026-12-07: unfused-rows and bwd-kernels ran on an H100 (the latter cut short by a bug,
# fixed). Next on an H200, in this order: bwd-hd128 (issue 15's re-run; with little time
# `bwd_probe.py --match head_dim=128,batch=1`, ~2.5 min, 10 of the bar's 12 shapes with the
# critical 1 x 40 x 6144), unfused-rows, bwd-kernels, then decode, gla-cal, gla.
# Later on 2026-12-07: no H200 again (seven H100 starts, three failed starts); an H100 ran scores-64
# on a trial build (dense ALiBi in three loops, not kept) and bwd-kernels in full (no lead). The
# H200 queue above is unchanged.
# Later on 2026-12-07: the dK/dV kernel issues dP first (kernels.spec.BWD_DP_FIRST; an H100 ran
# the A/B, the build's microbench and its full bwd probe). Next on an H200: bwd-hd128 (now the
# dP-first build: issue 15's bar), bwd-cal, then unfused-rows, bwd-kernels, decode, gla-cal, gla.
# Later on 2026-12-07: no machine started at all (H200 or H100). Next on an H200: bwd-hd128,
# bwd-cal, unfused-wide, unfused-tiny (the last two: an H100 serves too), then unfused-rows,
# bwd-kernels, decode, gla-cal, gla.
# Later on 2026-12-07: unfused-tiny and unfused-wide ran on an H100 (committed under
# kernels/measurements/h100/). Next on an H200: bwd-hd128, bwd-cal, fresh (its 4 x 8 x 1024
# ping-pong point ran at 2.4x its neighbours' time, p10-p90 61%; the H100 ran it normally),
# unfused-tiny, then unfused-rows, bwd-kernels, decode, gla-cal, gla.
# Later on 2026-12-07 the H200 ran bwd-hd128, bwd-cal, fresh, unfused-tiny/-wide/-rows,
# nbhd-holdout and masks-score; the session after got no H200 (an H100 ran sustained-sigmoid and
# decode-waves-paged, committed under kernels/measurements/h100/). Next on an H200, in this
# order: bwd (issue 15's last item: the dP-first build's head-dim-64 validation shapes),
# sustained-sigmoid, decode-waves-paged (merge with `decode_waves_probe.py --merge CAL
# decode/decode-waves-h200-2026-12-06.csv PAGED`), bwd-cal, window-later, then decode,
# gla-cal, gla.
# The session after (2026-12-07, late): no H200 in about 20 calls over two hours (failed starts,
# the shared back-off; one call got an H100, which ran nothing); the queue above is unchanged.
# With little time left, `bwd_probe.py --match head_dim=64` (~3 min) alone fills the gap issue
# 15 names (the dP-first build's head-dim-64 shapes), though the issue asks for one full run.
# 2026-12-08: no H200 again (three failed starts, one H100, given back unused; then no machine
# lent for the rest of the session); the queue above is unchanged.
# On a GPU that is not the H200 (the H100: a device the model was not calibrated on), these
# test the transferred calibration and measure the device's own:
#   validation   18: our three prefill families on the validation suite, ~3 min
#   holdout      18: the same on the holdout suite, ~1.5 min
#   regimes      18: the same on the regimes suite (many short sequences, short queries against
#                    long keys; the H200's file is kernels/measurements/regimes/), ~3 min
#   fresh        18: the same on the fresh suite (14 shapes drawn at random, never fitted), ~3 min
#   calib        18: the device's own calibration (`microbench`), ~3 min
set -uo pipefail
[ $# -gt 0 ] || { awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0"; exit 2; }  # the header
cd "$(dirname "${BASH_SOURCE[0]}")/.."
: "${OUT:?set OUT to the folder that comes back}"
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
day=$(date -u +%Y-%m-%d)
prefill="triton-1pass,triton-2pass,triton-unfused"
dev=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | grep -o '[AH][0-9]00' | tr A-Z a-z)

wheels() {
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=".:/tmp/site"
}

step() {
    local name=$1
    shift
    echo "== $name: $*" | tee -a "$OUT/steps.log"
    local t0=$SECONDS
    if "$@" >"$OUT/$name.log" 2>&1; then
        echo "   ok in $((SECONDS - t0)) s" | tee -a "$OUT/steps.log"
    else
        echo "   FAILED ($?) after $((SECONDS - t0)) s: see $name.log" | tee -a "$OUT/steps.log"
    fi
}

for s in "$@"; do
    case $s in
        gla-cal) step gla-cal python -m attnsim.kernels.calibrate.microbench_lightning \
            --gated --out "$OUT/microbench-gla-${dev:-gpu}-$day.yaml" ;;
        decode-paged) cp archs/calibration/h200-decode.yaml "$OUT/h200-decode.yaml" &&
            step decode-paged python -m attnsim.kernels.calibrate.microbench_decode --paged \
            --out "$OUT/h200-decode.yaml" --raw "$OUT/microbench-decode-paged-${dev:-gpu}-$day.yaml" ;;
        bwd-order) step bwd-order python benchmarks/bwd_order_probe.py \
            --out "$OUT/bwd-order-${dev:-gpu}-$day.csv" --budget-s 150 ;;
        bwd-tma) step bwd-tma python benchmarks/bwd_tma_probe.py --head-dims 128,64 \
            --modes separate,tma --loads 00,10,01,11 --out "$OUT/bwd-tma-${dev:-gpu}-$day.csv" --budget-s 300 ;;
        bwd-diag) step bwd-diag python benchmarks/bwd_tma_probe.py --head-dims 128,64 \
            --modes separate,atomic --diag 1,0 --causal-only --tilings 64x128x8x3,32x128x4x3 \
            --out "$OUT/bwd-diag-${dev:-gpu}-$day.csv" --budget-s 240 ;;
        fwd-order) step fwd-order python benchmarks/fwd_order_probe.py \
            --out "$OUT/fwd-order-${dev:-gpu}-$day.csv" --budget-s 150 ;;
        bwd-cal) step bwd-cal python -m attnsim.kernels.calibrate.microbench_bwd --dkdv-only \
            --out "$OUT/microbench-bwd-dpfirst-${dev:-gpu}-$day.yaml" ;;
        bwd-hd128) step bwd-hd128 python benchmarks/bwd_probe.py \
            --out "$OUT/bwd-${dev:-gpu}-$day-hd128.csv" --match head_dim=128 --budget-s 200 ;;
        bwd-kernels) step bwd-kernels timeout 300 python benchmarks/bwd_kernels_probe.py \
            --out "$OUT/bwd-kernels-${dev:-gpu}-$day.csv" --budget-s 130 ;;
        unfused-rows) step unfused-rows python benchmarks/unfused_kernels_probe.py --set align \
            --out "$OUT/unfused-kernels-align-${dev:-gpu}-$day.csv" ;;
        unfused-tiny) step unfused-tiny python benchmarks/unfused_kernels_probe.py --set tiny \
            --out "$OUT/unfused-kernels-tiny-${dev:-gpu}-$day.csv" ;;
        unfused-wide) step unfused-wide python benchmarks/unfused_kernels_probe.py --set wide \
            --out "$OUT/unfused-kernels-wide-${dev:-gpu}-$day.csv" ;;
        bwd) step bwd python benchmarks/bwd_probe.py --out "$OUT/bwd-${dev:-gpu}-$day-planned.csv" \
            --budget-s 240 ;;
        gla) wheels && step gla python benchmarks/lightning_probe.py --gla \
            --out "$OUT/gla-${dev:-gpu}-$day.csv" --budget-s 170 ;;
        bs-suite) step bs-suite python benchmarks/blocksparse_suite.py --out "$OUT" --budget-s 240 ;;
        masks-cal) step masks-cal python -m attnsim.kernels.calibrate.microbench_masks \
            --out "$OUT/microbench-masks-${dev:-gpu}-$day.yaml" ;;
        scores-cal) step scores-cal python -m attnsim.kernels.calibrate.microbench_masks \
            --scores-only --out "$OUT/microbench-masks-scores-${dev:-gpu}-$day.yaml" ;;
        window-later) step window-later python -m attnsim.kernels.calibrate.microbench_masks \
            --window-only --out "$OUT/microbench-masks-window-${dev:-gpu}-$day.yaml" ;;
        masks) step masks python benchmarks/masks_probe.py --suite all --out "$OUT" \
            --budget-s 230 ;;
        masks-score) step masks-score python benchmarks/masks_probe.py --suite all --only score \
            --out "$OUT" --budget-s 280 ;;
        scores-64) step scores-64 python benchmarks/masks_probe.py --suite all --only score \
            --head-dim 64 --out "$OUT/hd64" --budget-s 200 ;;
        sigmoid) step sigmoid python benchmarks/sigmoid_probe.py \
            --out "$OUT/sigmoid-${dev:-gpu}-$day.csv" &&
            step sigmoid-cal python -m attnsim.kernels.calibrate.microbench_masks --pingpong-only \
            --out "$OUT/microbench-masks-pingpong-${dev:-gpu}-$day.yaml" ;;
        nbhd-holdout) step nbhd-holdout python benchmarks/neighborhood_probe.py --out "$OUT" \
            --suite holdout --budget-s 170 ;;
        nbhd-cal) step nbhd-cal python -m attnsim.kernels.calibrate.microbench_neighborhood \
            --out "$OUT/microbench-neighborhood-${dev:-gpu}-$day.yaml" ;;
        sustained) step sustained python benchmarks/sustained_probe.py --out "$OUT" ;;
        sustained-sigmoid) step sustained-sigmoid python benchmarks/sustained_probe.py \
            --only sigmoid --out "$OUT/sigmoid" ;;
        short-blocks) step short-blocks python benchmarks/short_blocks_probe.py \
            --out "$OUT/short-blocks-${dev:-gpu}-$day.yaml" ;;
        wave-sweep) step wave-sweep python benchmarks/short_blocks_probe.py \
            --wave-sweep "$OUT/wave-sweep-${dev:-gpu}-$day.yaml" ;;
        transients) step transients python benchmarks/short_blocks_probe.py --transients \
            --wave-sweep "$OUT/wave-transients-${dev:-gpu}-$day.yaml" ;;
        q-sweep) step q-sweep python benchmarks/short_blocks_probe.py --q-sweep "$OUT" ;;
        unfused-align) step unfused-align sh -c "python -m attnsim.kernels.calibrate.microbench_unfused \
            --row-alignment > $OUT/microbench-unfused-align-${dev:-gpu}-$day.yaml" ;;
        decode-builds) step decode-builds python benchmarks/decode_builds_probe.py \
            --out "$OUT/decode-builds-${dev:-gpu}-$day.yaml" ;;
        decode-waves) step decode-waves python benchmarks/decode_waves_probe.py --out "$OUT" ;;
        decode-waves-paged) step decode-waves-paged python benchmarks/decode_waves_probe.py \
            --paged 64 --out "$OUT" ;;
        decode) step decode python benchmarks/decode_probe.py --out "$OUT" --tuned \
            --budget-s 270 --flex-budget-s 0 ;;
        validation | holdout | fresh | regimes) step "$s" python -m attnsim.kernels.bench --suite "$s" \
            --families "$prefill" --out "$OUT" ;;
        calib) step calib python -m attnsim.kernels.calibrate.microbench \
            --out "$OUT/${dev:-gpu}-$day.yaml" ;;
        *) echo "unknown step $s (see the header)" >&2; exit 2 ;;
    esac
done
echo "merge the GLA entries (no GPU): python -m attnsim.kernels.calibrate.microbench_lightning" \
    "--merge archs/calibration/h200.yaml --entries <microbench-gla file>"
