#!/usr/bin/env bash
# run.sh - the one prepared script for the GPU machine (build/ and gpu-libs/ carried from
# tests/gpu/prepare.sh; no compiler needed there). In order, stopping at nothing so that one call
# measures everything:
#   1. the card (nvidia-smi);
#   2. `make test-gpu`'s programs: every backend op on DEVICE against fp64 references
#      (test_backend_ops) and the whole model on cuda:0 against the cpu (test_model_device);
#   3. the time per op (test_backend_ops --perf) and the engine benchmark on DEVICE and on the cpu;
#   4. the transformers parity test (torch and transformers are on the GPU machine).
# Writes $OUT/gpu-results.md (card, date, every number) and the raw logs beside it; copy it to
# docs/gpu-results.md. `tests/gpu/run.sh --dry-run` runs the same steps on the cpu backend here,
# so the device's minutes are spent measuring, not debugging the script.
set -u
cd "$(dirname "$0")/../.."
DEV=cuda:0
[ "${1:-}" = "--dry-run" ] && DEV=cpu
OUT=${OUT:-/tmp/cisweep-gpu-out}
mkdir -p "$OUT"
export LD_LIBRARY_PATH="$PWD/gpu-libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
B=build
R="$OUT/gpu-results.md"
step() { echo "== $*" | tee -a "$OUT/run.log"; }
card=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no GPU (dry run on the cpu)")
{
    echo "# GPU results"
    echo
    echo "Measured by tests/gpu/run.sh on $(date -u +%Y-%m-%d) ($(git rev-parse --short HEAD 2>/dev/null || echo '?')), device $DEV: $card."
    echo
} >"$R"
step "1. test_backend_ops on $DEV"
timeout 300 $B/tests/worker/engine/test_backend_ops --backend "$DEV" >"$OUT/backend_ops.log" 2>&1
echo "rc=$?" >>"$OUT/backend_ops.log"
{ echo "## Backend ops on $DEV against fp64 references"; echo; echo '```'; grep -E '^(ok|not ok|#)' "$OUT/backend_ops.log"; echo '```'; echo; } >>"$R"
step "2. test_model_device (the model on cuda:0 vs the cpu)"
timeout 300 $B/tests/worker/engine/test_model_device >"$OUT/model_device.log" 2>&1
{ echo "## The model on cuda:0 against the cpu backend"; echo; echo '```'; cat "$OUT/model_device.log"; echo '```'; echo; } >>"$R"
step "3. time per op and the engine benchmark"
timeout 300 $B/tests/worker/engine/test_backend_ops --backend "$DEV" --perf 2>/dev/null | grep '^# perf' >"$OUT/perf.log"
timeout 600 $B/tests/bench/bench_engine -d "$DEV" -s 1m,10m,100m >"$OUT/bench_dev.log" 2>&1
timeout 600 $B/tests/bench/bench_engine -d cpu -s 1m,10m >"$OUT/bench_cpu.log" 2>&1
{ echo "## Time per op on $DEV (reference kernels)"; echo; echo '```'; cat "$OUT/perf.log"; echo '```'; echo
  echo "## Engine benchmark: $DEV, then the cpu backend of the same machine"; echo; echo '```'
  cat "$OUT/bench_dev.log" "$OUT/bench_cpu.log"; echo '```'; echo; } >>"$R"
step "4. transformers parity"
timeout 600 python3 tests/gpu/test_transformers_parity.py >"$OUT/parity.log" 2>&1
{ echo "## Hugging Face transformers parity (cpu engine)"; echo; echo '```'; grep -E '^(ok|not ok|#)' "$OUT/parity.log"; echo '```'; } >>"$R"
step "done: $R"
