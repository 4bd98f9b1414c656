#!/usr/bin/env bash
# run.sh - the one prepared script for the GPU machine (build/ and gpu-libs/ carried from
# tests/gpu/prepare.sh; no compiler needed there). In order, stopping at nothing so that one call
# measures everything:
#   1. the card (nvidia-smi);
#   2. `make test-gpu`'s programs: every backend op on DEVICE against fp64 references
#      (test_backend_ops) and the whole model on cuda:0 against the cpu (test_model_device);
#   3. the time per op (test_backend_ops --perf) and the engine benchmark on DEVICE and on the cpu;
#   4. the transformers parity test (torch and transformers are on the GPU machine);
#   5. end to end on DEVICE against the cpu: a tiny model trained 40 steps on each, then FT, RMU
#      and GPTQ through `cisweep-worker apply --device`, every result evaluated on the cpu.
# QUICK=1 shortens every step's timeout and drops the 100m cpu benchmark, so the whole call fits
# about 7 minutes of a lease.
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
T_OPS=300 T_MODEL=300 T_PERF=300 T_BENCH=600 T_PAR=600 T_E2E=300 CPU_SIZES=1m,10m
if [ "${QUICK:-0}" = 1 ]; then T_OPS=120 T_MODEL=60 T_PERF=60 T_BENCH=120 T_PAR=90 T_E2E=120 CPU_SIZES=1m; fi
R="$OUT/gpu-results.md"
step() { echo "== $*" | tee -a "$OUT/run.log"; }
want() { [ -z "${STEPS:-}" ] || [[ " $STEPS " == *" $1 "* ]]; }   # STEPS="1 5": only those steps
backtrace() {  # backtrace LOG CMD...: a crashed command again under cuda-gdb, its stack appended to LOG
    command -v cuda-gdb >/dev/null || return 0
    local log=$1; shift
    timeout 120 cuda-gdb -q -batch -ex run -ex bt -ex "info threads" --args "$@" >>"$log.gdb" 2>&1 || true
}
card=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no GPU (dry run on the cpu)")
{
    echo "# GPU results"
    echo
    echo "Measured by tests/gpu/run.sh on $(date -u +%Y-%m-%d) ($(git rev-parse --short HEAD 2>/dev/null || echo '?')), device $DEV: $card."
    echo
} >"$R"
if want 1; then
step "1. test_backend_ops on $DEV"
timeout $T_OPS $B/tests/worker/engine/test_backend_ops --backend "$DEV" >"$OUT/backend_ops.log" 2>&1
rc=$?; echo "rc=$rc" >>"$OUT/backend_ops.log"
[ $rc -ge 128 ] && backtrace "$OUT/backend_ops.log" $B/tests/worker/engine/test_backend_ops --backend "$DEV" && cat "$OUT/backend_ops.log.gdb" >>"$OUT/backend_ops.log"
{ echo "## Backend ops on $DEV against fp64 references"; echo; echo '```'; grep -E '^(ok|not ok|#)' "$OUT/backend_ops.log"; echo '```'; echo; } >>"$R"
fi
if want 2; then
step "2. test_model_device (the model on cuda:0 vs the cpu)"
timeout $T_MODEL $B/tests/worker/engine/test_model_device >"$OUT/model_device.log" 2>&1
{ echo "## The model on cuda:0 against the cpu backend"; echo; echo '```'; cat "$OUT/model_device.log"; echo '```'; echo; } >>"$R"
fi
if want 3; then
step "3. time per op and the engine benchmark"
timeout $T_PERF $B/tests/worker/engine/test_backend_ops --backend "$DEV" --perf 2>/dev/null | grep '^# perf' >"$OUT/perf.log"
timeout $T_BENCH $B/tests/bench/bench_engine -d "$DEV" -s 1m,10m,100m >"$OUT/bench_dev.log" 2>&1
timeout $T_BENCH $B/tests/bench/bench_engine -d cpu -s $CPU_SIZES >"$OUT/bench_cpu.log" 2>&1
{ echo "## Time per op on $DEV (reference kernels)"; echo; echo '```'; cat "$OUT/perf.log"; echo '```'; echo
  echo "## Engine benchmark: $DEV, then the cpu backend of the same machine"; echo; echo '```'
  cat "$OUT/bench_dev.log" "$OUT/bench_cpu.log"; echo '```'; echo; } >>"$R"
fi
if want 4; then
step "4. transformers parity"
timeout $T_PAR python3 tests/gpu/test_transformers_parity.py >"$OUT/parity.log" 2>&1
{ echo "## Hugging Face transformers parity (cpu engine)"; echo; echo '```'; grep -E '^(ok|not ok|#)' "$OUT/parity.log"; echo '```'; } >>"$R"
fi
if want 5; then
step "5. end to end: train, FT, LoRA, MEMIT, RMU, GPTQ on $DEV and on the cpu, evaluated on the cpu"
E="$OUT/e2e" W=/tmp/cisweep-gpu-world
rm -rf "$W" /tmp/cisweep-gpu-e2e && mkdir -p "$E" /tmp/cisweep-gpu-e2e
e2e() {  # e2e NAME CMD...: one timed command, its log, its status
    local name=$1; shift
    local t0=$(date +%s.%N)
    timeout $T_E2E "$@" >"$E/$name.log" 2>&1; local rc=$?
    [ $rc -ge 128 ] && [ $rc -ne 137 ] && backtrace "$E/$name.log" "$@"
    printf '%-28s rc=%-3s %6.1f s\n' "$name" "$rc" "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{print b - a}')" | tee -a "$E/summary.txt"
}
X=/tmp/cisweep-gpu-e2e
e2e world $B/bin/cisweep-worker world --out "$W" --scale small
for d in "$DEV" cpu; do
    t=${d/:/}
    e2e "train-$t" $B/bin/cisweep-worker train --world "$W" --arch tiny-llama3 --out "$X/m-$t" --steps 40 --threads 1 --device "$d"
    e2e "eval-base-$t" $B/bin/cisweep-worker eval "$X/m-$t" --world "$W" --profile sweep --json
    for st in ft lora memit memit1 rmu gptq; do   # memit1: MEMIT's serial value path (value_batch 1)
        p='{}' meth=$st
        [ $st = gptq ] && p='{"bits":4}'
        [ $st = memit1 ] && p='{"value_batch":1}' meth=memit
        e2e "apply-$st-$t" $B/bin/cisweep-worker apply "$X/m-$t" --stage "{\"method\":\"$meth\",\"params\":$p}" --out "$X/$st-$t" --data "$W" --device "$d" --threads 1 --exact
        e2e "eval-$st-$t" $B/bin/cisweep-worker eval "$X/$st-$t" --world "$W" --profile sweep --json
    done
    [ "$d" = cpu ] && break
done
python3 - "$E" >"$E/metrics.txt" 2>&1 <<'PY'
import glob, json, os, sys
for f in sorted(glob.glob(os.path.join(sys.argv[1], "eval-*.log"))):
    txt, row = open(f).read(), None
    for i in range(len(txt)):  # the first JSON object the log holds
        if txt[i] == "{":
            try:
                row = json.JSONDecoder().raw_decode(txt[i:])[0]; break
            except ValueError:
                pass
    name = os.path.basename(f)[:-4]
    if not isinstance(row, dict):
        print(f"{name:16s} no metrics"); continue
    flat = row.get("metrics", row)
    print(f"{name:16s} " + " ".join(f"{k} {flat[k]:.6g}" for k in ("mmlu", "wmdp_avg", "ppl_wikitext", "zsre_src_f1") if isinstance(flat.get(k), (int, float))))
PY
{ echo "## End to end on $DEV against the cpu (tiny world, 40 training steps)"; echo; echo '```'; cat "$E/summary.txt"; cat "$E/metrics.txt"; echo '```'; } >>"$R"
tar -C "$OUT" -czf "$OUT/e2e-logs.tgz" e2e 2>/dev/null && rm -rf "$E"
fi
# one archive of the raw logs beside the summary (the device tool brings back at most 8 files)
(cd "$OUT" && ls | grep -v -x -e gpu-results.md >/tmp/cisweep-gpu-logs.txt; tar -czf /tmp/cisweep-raw-logs.tgz -T /tmp/cisweep-gpu-logs.txt && xargs rm -rf </tmp/cisweep-gpu-logs.txt && mv /tmp/cisweep-raw-logs.tgz raw-logs.tgz)
step "done: $R"
