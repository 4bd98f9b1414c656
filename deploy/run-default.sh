#!/usr/bin/env bash
# run-default.sh - `make run`: the main job on the embedded default.
#   1. the synthetic world (`cisweep world`, default scale) in the real datasets' formats;
#   2. the default model (tiny-llama3) trained on it from scratch (`cisweep train` with its default
#      step budget, or TRAIN_STEPS steps, or a TRAIN_SECONDS time budget; reused when it already
#      exists);
#   3. a sweep of grids/default.json through a real coordinator and worker (loopback, SQLite):
#      the worker loads the model once, runs each job and evaluates it with the full suite;
#   4. the status, the metrics of every run, and a CSV export.
# Everything goes to OUT (default out/default). The paper's grids are expanded and counted too.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=build/bin
OUT=${CISWEEP_OUT:-out/default}
TRAIN_STEPS=${TRAIN_STEPS:-}
TRAIN_SECONDS=${TRAIN_SECONDS:-}
THREADS=${THREADS:-0}
mkdir -p "$OUT"

echo "== the paper's composition grids"
echo "grids/paper.json: $($BIN/cisweep grid grids/paper.json --count --quiet | tail -1) compositions"
echo "grids/paper-417.json: $($BIN/cisweep grid grids/paper-417.json --count --quiet | tail -1) compositions"

echo "== 1. the synthetic world: $OUT/world"
$BIN/cisweep world --out "$OUT/world" --seed 1234 --scale default | tail -3

MODEL="$OUT/models/tiny-llama3"
if [ -f "$MODEL/model.safetensors" ]; then
    echo "== 2. the default model: $MODEL (exists; remove it to train again)"
else
    if [ -n "$TRAIN_STEPS" ]; then budget="$TRAIN_STEPS steps"
    elif [ -n "$TRAIN_SECONDS" ]; then budget="$TRAIN_SECONDS s"
    else budget="the default step budget"; fi
    echo "== 2. training the default model: $MODEL ($budget; log in $OUT/train.log)"
    $BIN/cisweep train --world "$OUT/world" --arch tiny-llama3 --out "$MODEL" ${TRAIN_STEPS:+--steps "$TRAIN_STEPS"} \
        ${TRAIN_SECONDS:+--seconds "$TRAIN_SECONDS"} --threads "$THREADS" 2>"$OUT/train.log" | tail -1
fi
$BIN/cisweep inspect "$MODEL" --prompt "What is the capital of" --top 3 | tail -6

echo "== 3. the sweep: grids/default.json, coordinator + 1 worker, $OUT/sweep.db"
printf '{"default": "%s"}\n' "$(cd "$MODEL" && pwd)" > "$OUT/models.json"
rm -f "$OUT"/sweep.db*
$BIN/cisweep run --grid grids/default.json --workers 1 --db "$OUT/sweep.db" --models "$OUT/models.json" \
    --data "$OUT/world" --threads "$THREADS" --cache "$OUT/cache" 2>"$OUT/sweep.log"

echo "== 4. results"
$BIN/cisweep status --db "$OUT/sweep.db" | head -3
sqlite3 -readonly -header -column "file:$OUT/sweep.db?mode=ro" \
    "SELECT label, edit_set, round(mmlu,3) AS mmlu, round(wmdp_bio,3) AS wmdp_bio, round(wmdp_cyber,3) AS wmdp_cyber,
            round(ppl_wikitext,2) AS ppl, round(edit_success,3) AS edit_success, round(locality,3) AS locality,
            avg_bits FROM v_runs"
sqlite3 -readonly "file:$OUT/sweep.db?mode=ro" \
    "SELECT 'src_true_f1 (the model knows the facts before any edit): ' || round(value,3) FROM results
     WHERE metric='src_true_f1' AND is_current=1"
$BIN/cisweep export --db "$OUT/sweep.db" --format csv --out "$OUT/runs.csv"
echo "wrote $OUT/runs.csv; the whole sweep is in $OUT/sweep.db (see schema/README.md for queries)"
