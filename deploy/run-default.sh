#!/usr/bin/env bash
# run-default.sh - `make run`: the main job on the embedded default, as far as this build goes.
#   1. the paper's grids expanded (311 and 417 compositions);
#   2. a local sweep (coordinator + 3 workers on loopback, a real SQLite DB) of the orchestration
#      fixture grid, with the summary, `cisweep status` and a CSV export.
# Later stages (synthetic world, training the default model, evaluation, interventions) are added
# here as they land; see the README's "Status".
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=build/bin
OUT=${CISWEEP_OUT:-out/default}
mkdir -p "$OUT"

echo "== the paper's composition grids"
echo -n "grids/paper.json: ";      $BIN/cisweep grid grids/paper.json --count --quiet | tail -1
echo -n "grids/paper-417.json: ";  $BIN/cisweep grid grids/paper-417.json --count --quiet | tail -1

echo "== a local sweep: coordinator + 3 workers, $OUT/sweep.db"
rm -f "$OUT"/sweep.db*
$BIN/cisweep run --grid grids/selftest-200.json --workers 3 --allow-selftest --db "$OUT/sweep.db" \
    --cache "$OUT/cache" 2>"$OUT/run.log"
$BIN/cisweep status --db "$OUT/sweep.db"
$BIN/cisweep export --db "$OUT/sweep.db" --format csv --out "$OUT/runs.csv"
echo "wrote $OUT/runs.csv ($(wc -l < "$OUT/runs.csv") lines); query it with:"
echo "  sqlite3 -readonly 'file:$OUT/sweep.db?mode=ro' 'SELECT state, count(*) FROM jobs GROUP BY state'"
