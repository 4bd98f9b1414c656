#!/usr/bin/env bash
# bench_lanes.sh - the cpu engine's 8-lane (AVX2) elementwise kernels against the 4-lane ones, in one
# run on one build: CISWEEP_CPU_LANES=4 selects the 4-lane path (worker/engine/cpu/cpu_simd.c).
# Runs alternate (4, 8, 4, 8, ...) ROUNDS times so that a shared machine's load falls on both alike:
# `cisweep apply` of lora, memit, awq (4 bits) and rmu on MODEL with --threads 1, and
# `cisweep-worker eval --profile sweep --threads 1` (the sweep's evaluation) of the lora output.
# Prints each command's best and median CPU seconds (user + sys: on a shared machine less
# sensitive to load than wall time, and with --threads 1 the same on an idle one) and wall seconds
# per width and the ratios 4-lane/8-lane (> 1: the 8-lane path is faster), and checks that both widths wrote the same bytes (model.safetensors
# of every apply; the eval's metric lines less its timings).
# Usage: tests/bench/bench_lanes.sh [MODEL_DIR] [WORLD_DIR] [ROUNDS]
#        (defaults: /work/study5/family/tiny-llama3, /work/study5/world, 3)
set -eu
cd "$(dirname "$0")/../.."
MODEL=${1:-/work/study5/family/tiny-llama3}; WORLD=${2:-/work/study5/world}; ROUNDS=${3:-3}
B=${CISWEEP_BUILD:-build}
for f in "$MODEL/model.safetensors" "$WORLD"; do
    [ -e "$f" ] || { echo "bench_lanes.sh: $f: not found (arguments: MODEL_DIR WORLD_DIR [ROUNDS])" >&2; exit 2; }
done
tmp=$(mktemp -d)  # a fresh private directory under $TMPDIR (or /tmp)
trap 'rm -rf "$tmp"' EXIT
declare -A STAGE=([lora]='{"method":"lora","params":{}}' [memit]='{"method":"memit","params":{}}'
                  [awq]='{"method":"awq","params":{"bits":4}}' [rmu]='{"method":"rmu","params":{}}')
TIME=/usr/bin/time
[ -x "$TIME" ] || { echo "bench_lanes.sh: $TIME (GNU time) not found: apt-get install time" >&2; exit 2; }
# run LABEL LANES CMD...: appends "LABEL LANES cpu_s wall_s" to $tmp/times
run() {
    local label=$1 lanes=$2; shift 2
    CISWEEP_CPU_LANES=$lanes "$TIME" -o "$tmp/t" -f "%U %S %e" "$@" || { cat "$tmp/err" >&2; exit 1; }
    awk -v l="$label" -v n="$lanes" '{ printf "%s %s %.3f %.3f\n", l, n, $1 + $2, $3 }' "$tmp/t" >>"$tmp/times"
}
uptime | sed 's/^/load before: /'
for r in $(seq 1 "$ROUNDS"); do
    for lanes in 4 8; do
        for m in lora memit awq rmu; do
            run "$m" "$lanes" "$B/bin/cisweep" apply "$MODEL" --data "$WORLD" --stage "${STAGE[$m]}" \
                --out "$tmp/$m.$lanes" --threads 1 >/dev/null 2>"$tmp/err"
        done
        run eval "$lanes" "$B/bin/cisweep-worker" eval "$tmp/lora.$lanes" --world "$WORLD" --profile sweep \
            --threads 1 >"$tmp/eval.$lanes" 2>"$tmp/err"
    done
done
uptime | sed 's/^/load after:  /'
same=1
for m in lora memit awq rmu; do
    cmp -s "$tmp/$m.4/model.safetensors" "$tmp/$m.8/model.safetensors" || { echo "DIFFER: $m model.safetensors"; same=0; }
done
grep -vE '^(time_|cpu_)|_per_s ' "$tmp/eval.4" >"$tmp/e4"; grep -vE '^(time_|cpu_)|_per_s ' "$tmp/eval.8" >"$tmp/e8"
cmp -s "$tmp/e4" "$tmp/e8" || { echo "DIFFER: eval metrics"; diff "$tmp/e4" "$tmp/e8" | head; same=0; }
[ "$same" = 1 ] && echo "identical: every apply's model.safetensors and the eval's $(wc -l <"$tmp/e4") metric lines"
awk -v rounds="$ROUNDS" '
    { c[$1, $2, ++n[$1, $2]] = $3; w[$1, $2, n[$1, $2]] = $4; if (!($1 in seen)) { seen[$1] = 1; order[++k] = $1 } }
    function stat(arr, cmd, l,   i, j, a, m, tmp) { m = n[cmd, l]; for (i = 1; i <= m; i++) a[i] = arr[cmd, l, i]
        for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { tmp = a[i]; a[i] = a[j]; a[j] = tmp }
        best = a[1]; med = (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2 }
    END { printf "%d alternating rounds; seconds, best / median; ratio = 4 lanes / 8 lanes\n", rounds
          printf "%-6s %15s %15s %13s   %15s %15s %13s\n", "cmd", "cpu 4 lanes", "cpu 8 lanes", "cpu ratio",
                 "wall 4 lanes", "wall 8 lanes", "wall ratio"
          for (i = 1; i <= k; i++) { x = order[i]
              stat(c, x, 4); cb4 = best; cm4 = med; stat(c, x, 8); cb8 = best; cm8 = med
              stat(w, x, 4); wb4 = best; wm4 = med; stat(w, x, 8); wb8 = best; wm8 = med
              printf "%-6s %6.2f / %6.2f %6.2f / %6.2f %5.2f / %5.2f   %6.2f / %6.2f %6.2f / %6.2f %5.2f / %5.2f\n", x,
                     cb4, cm4, cb8, cm8, cb4 / cb8, cm4 / cm8, wb4, wm4, wb8, wm8, wb4 / wb8, wm4 / wm8 } }' "$tmp/times"
[ "$same" = 1 ]
