#!/usr/bin/env bash
# mem_sched.sh - the device check of scheduling by device memory (issue 15; docs/cluster.md
# "Scheduling by device memory"): a real coordinator and a real `cisweep worker --device cuda:0`
# whose HELLO carries the card's measured free memory. Model directories hold only a config.json
# (selftest jobs load no weights): a Llama-3-8B-shaped "big" and a 70B-shaped "huge".
#   - the worker's offer is recorded as measured, close to nvidia-smi's free memory;
#   - the 8B selftest jobs (68,989 MiB, inference class) run on it;
#   - the 8B FT job (160,888 MiB, train class) and the 70B selftest job stay pending, and
#     `cisweep status` names them and their needs;
#   - a second worker with --report-free-mb 30000 offers 30000 (the smaller of the cap and the card).
# Carry ["build/bin", "build/lib", "gpu-libs"] (tests/gpu/prepare.sh makes gpu-libs). Writes
# $OUT/mem_sched.log and ends with PASS/FAIL lines. `tests/gpu/mem_sched.sh cpu` is the dry run
# here (the cpu worker is given --report-free-mb 79000 to stand in for the card).
set -u
cd "$(dirname "$0")/../.."
DEV=${1:-cuda:0}
OUT=${OUT:-/tmp/cisweep-gpu-out}
mkdir -p "$OUT"
LOG="$OUT/mem_sched.log"
: >"$LOG"
export LD_LIBRARY_PATH="$PWD/gpu-libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
B=$PWD/build/bin
T=$(mktemp -d)
WARGS=()
[ "$DEV" = cpu ] && WARGS=(--report-free-mb 79000)
log() { echo "$*" | tee -a "$LOG"; }
log "== mem_sched.sh on $DEV, $(date -u +%FT%TZ), $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
nvidia-smi --query-gpu=name,memory.total,memory.free --format=csv,noheader 2>&1 | tee -a "$LOG"

python3 - "$T" <<'EOF'
import json, os, sys
t = sys.argv[1]
base = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "rms_norm_eps": 1e-05,
        "max_position_embeddings": 8192, "rope_theta": 500000.0}
cfgs = {"big": dict(base, vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                    num_attention_heads=32, num_key_value_heads=8),
        "huge": dict(base, vocab_size=128256, hidden_size=8192, intermediate_size=28672, num_hidden_layers=80,
                     num_attention_heads=64, num_key_value_heads=8)}
models = {}
for name, c in cfgs.items():
    d = os.path.join(t, "models", name)
    os.makedirs(d)
    json.dump(c, open(os.path.join(d, "config.json"), "w"))
    models[name] = d
json.dump(models, open(os.path.join(t, "models.json"), "w"))
grid = {"name": "memgpu", "max_attempts": 2, "subgrids": [
    {"models": ["big"], "selftest": {"count": 3, "id_start": 1, "params": {"sleep_ms": 200}}},
    {"models": ["big"], "compositions": [[{"method": "ft"}]]},
    {"models": ["huge"], "selftest": {"count": 1, "id_start": 10, "params": {"sleep_ms": 200}}}]}
json.dump(grid, open(os.path.join(t, "grid.json"), "w"))
EOF

q() { python3 -c 'import sqlite3, sys; c = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True, timeout=5)
for r in c.execute(sys.argv[2]): print("|".join("" if v is None else str(v) for v in r))' "$T/sweep.db" "$1"; }
wait_until() {  # wait_until SECONDS SQL EXPECTED
    for _ in $(seq $(( $1 * 10 ))); do [ "$(q "$2")" = "$3" ] && return 0; sleep 0.1; done
    log "timed out after $1 s waiting for [$2] = $3 (got $(q "$2"))"; return 1
}

"$B/cisweep" launch --db "$T/sweep.db" --grid "$T/grid.json" --models "$T/models.json" --allow-selftest 2>&1 | tee -a "$LOG"
log "-- job_memory"
q "SELECT j.id, m.name, c.label, jm.need_mb, jm.kind FROM jobs j JOIN models m ON m.id = j.model_id
   JOIN compositions c ON c.id = j.composition_id JOIN job_memory jm ON jm.job_id = j.id ORDER BY j.id" | tee -a "$LOG"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
EP=tcp://127.0.0.1:$PORT
"$B/cisweep" coordinator --db "$T/sweep.db" --bind "$EP" --heartbeat-ms 200 >"$T/coord.log" 2>&1 &
C=$!
sleep 0.5
"$B/cisweep-worker" worker --connect "$EP" --device "$DEV" --cache "$T/c1" --selftest --id gpu-measured \
    --heartbeat-ms 200 "${WARGS[@]}" >"$T/w1.log" 2>&1 &
W1=$!
wait_until 90 "SELECT count(*) FROM jobs WHERE state = 'done'" 3
sleep 1.5   # a few dispatch turns with the unfit jobs still pending
"$B/cisweep" status --db "$T/sweep.db" 2>&1 | tee -a "$LOG"
"$B/cisweep-worker" worker --connect "$EP" --device "$DEV" --cache "$T/c2" --selftest --id gpu-capped \
    --heartbeat-ms 200 --report-free-mb 30000 >"$T/w2.log" 2>&1 &
W2=$!
wait_until 60 "SELECT count(*) FROM worker_memory WHERE worker_id = 'gpu-capped'" 1
sleep 1
log "-- worker_memory"
q "SELECT worker_id, free_mb, source FROM worker_memory ORDER BY worker_id" | tee -a "$LOG"
log "-- jobs"
q "SELECT j.id, m.name, j.state, j.attempt, coalesce(j.worker_id, '') FROM jobs j JOIN models m ON m.id = j.model_id ORDER BY j.id" | tee -a "$LOG"
kill -TERM "$W1" "$W2" 2>/dev/null; sleep 1; kill -TERM "$C" 2>/dev/null
wait "$W1" "$W2" "$C" 2>/dev/null
grep -h "need more device memory" "$T/coord.log" | head -2 | tee -a "$LOG"

smi_free=$(nvidia-smi --query-gpu=memory.free --format=csv,noheader,nounits 2>/dev/null | head -1)
measured=$(q "SELECT free_mb FROM worker_memory WHERE worker_id = 'gpu-measured'")
src=$(q "SELECT source FROM worker_memory WHERE worker_id = 'gpu-measured'")
check() { if eval "$2"; then log "PASS $1"; else log "FAIL $1"; fi; }
if [ "$DEV" = cpu ]; then
    check "the dry run's offer is the option's (79000)" '[ "$measured" = 79000 ] && [ "$src" = option ]'
else
    check "the measured offer ($measured MiB, $src) is within 2 GiB of nvidia-smi's free memory ($smi_free MiB)" \
        '[ "$src" = measured ] && [ -n "$smi_free" ] && [ $(( measured - smi_free )) -le 2048 ] && [ $(( smi_free - measured )) -le 2048 ]'
fi
check "the three 8B selftest jobs ran on gpu-measured" \
    '[ "$(q "SELECT count(*) FROM jobs WHERE state = '"'done'"' AND worker_id = '"'gpu-measured'"'")" = 3 ]'
check "the 8B FT job and the 70B job are pending, never leased" \
    '[ "$(q "SELECT count(*) FROM jobs WHERE state = '"'pending'"' AND attempt = 0")" = 2 ]'
check "status names the unfit jobs" 'grep -q "2 need more device memory than any connected worker offers" "$LOG" && grep -q "needs 160888 MiB (model big, train)" "$LOG"'
check "the capped worker offers 30000" '[ "$(q "SELECT free_mb || source FROM worker_memory WHERE worker_id = '"'gpu-capped'"'")" = 30000option ]'
cp "$T/coord.log" "$OUT/mem_sched_coordinator.log"
cp "$T/w1.log" "$OUT/mem_sched_worker.log"
rm -rf "$T"
