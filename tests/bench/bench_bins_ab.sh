#!/usr/bin/env bash
# bench_bins_ab.sh - two builds of cisweep side by side in one run, for engine changes that must keep
# the same bits: `cisweep apply` of awq (4 bits), lora, memit and gd on MODEL with --threads 1, and
# `cisweep-worker eval --profile sweep --threads 1` (the sweep's evaluation) of each build's lora
# output. Runs alternate (A, B, A, B, ...) ROUNDS times so that a shared machine's load falls on both
# alike. Prints each command's best and median CPU seconds (user + sys; with --threads 1 less
# sensitive to load than wall time) per build and the ratio A/B (> 1: B is faster), and checks that
# both builds wrote the same bytes: the sha256 of every apply's model.safetensors and compression
# record (*.cisrec), and the eval's metric lines less its timings.
# Usage: tests/bench/bench_bins_ab.sh A_BIN_DIR B_BIN_DIR [MODEL_DIR] [WORLD_DIR] [CACHE_DIR] [ROUNDS]
#        (a BIN_DIR holds cisweep and cisweep-worker; defaults: /work/study6/family/tiny-llama3,
#        /work/study6/world, /work/study6/cache (copied: MEMIT's statistics cache), 3 rounds)
set -eu
A=${1:?usage: bench_bins_ab.sh A_BIN_DIR B_BIN_DIR [MODEL_DIR] [WORLD_DIR] [CACHE_DIR] [ROUNDS]}
B=${2:?usage: bench_bins_ab.sh A_BIN_DIR B_BIN_DIR [MODEL_DIR] [WORLD_DIR] [CACHE_DIR] [ROUNDS]}
MODEL=${3:-/work/study6/family/tiny-llama3}; WORLD=${4:-/work/study6/world}; CACHE=${5:-/work/study6/cache}
ROUNDS=${6:-3}
for f in "$A/cisweep" "$A/cisweep-worker" "$B/cisweep" "$B/cisweep-worker" "$MODEL/model.safetensors" "$WORLD" "$CACHE"; do
    [ -e "$f" ] || { echo "bench_bins_ab.sh: $f: not found" >&2; exit 2; }
done
TIME=/usr/bin/time
[ -x "$TIME" ] || { echo "bench_bins_ab.sh: $TIME (GNU time) not found: apt-get install time" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r "$CACHE" "$tmp/cache"
declare -A STAGE=([awq]='{"method":"awq","params":{"bits":4}}' [lora]='{"method":"lora","params":{}}'
                  [memit]='{"method":"memit","params":{}}' [gd]='{"method":"gd","params":{}}')
METHODS="awq lora memit gd"
# run LABEL WHO CMD...: appends "LABEL WHO cpu_s wall_s" to $tmp/times
run() {
    local label=$1 who=$2; shift 2
    "$TIME" -o "$tmp/t" -f "%U %S %e" "$@" || { echo "bench_bins_ab.sh: $label ($who) failed:" >&2; cat "$tmp/err" >&2; exit 1; }
    awk -v l="$label" -v n="$who" '{ printf "%s %s %.3f %.3f\n", l, n, $1 + $2, $3 }' "$tmp/t" >>"$tmp/times"
}
uptime | sed 's/^/load before: /'
for r in $(seq 1 "$ROUNDS"); do
    for who in A B; do
        bin=$A; [ "$who" = B ] && bin=$B
        for m in $METHODS; do
            rm -rf "$tmp/$m.$who"
            run "$m" "$who" "$bin/cisweep" apply "$MODEL" --data "$WORLD" --stage "${STAGE[$m]}" --cache "$tmp/cache" \
                --out "$tmp/$m.$who" --threads 1 >/dev/null 2>"$tmp/err"
        done
        run eval "$who" "$bin/cisweep-worker" eval "$tmp/lora.$who" --world "$WORLD" --profile sweep \
            --threads 1 >"$tmp/eval.$who" 2>"$tmp/err"
    done
done
uptime | sed 's/^/load after:  /'
same=1
for m in $METHODS; do
    for f in "$tmp/$m.A"/model.safetensors "$tmp/$m.A"/*.cisrec; do
        [ -e "$f" ] || continue
        g="$tmp/$m.B/$(basename "$f")"
        ha=$(sha256sum <"$f" | cut -c1-16); hb=$([ -e "$g" ] && sha256sum <"$g" | cut -c1-16 || echo missing)
        if [ "$ha" = "$hb" ]; then echo "same   $m $(basename "$f" | cut -c1-24) sha256 $ha..."
        else echo "DIFFER $m $(basename "$f" | cut -c1-24): A $ha B $hb"; same=0; fi
    done
done
grep -vE '^(time_|cpu_)|_per_s ' "$tmp/eval.A" >"$tmp/eA"; grep -vE '^(time_|cpu_)|_per_s ' "$tmp/eval.B" >"$tmp/eB"
if cmp -s "$tmp/eA" "$tmp/eB"; then echo "same   eval: $(wc -l <"$tmp/eA") metric lines, sha256 $(sha256sum <"$tmp/eA" | cut -c1-16)..."
else echo "DIFFER eval metrics"; diff "$tmp/eA" "$tmp/eB" | head; same=0; fi
awk -v rounds="$ROUNDS" '
    { c[$1, $2, ++n[$1, $2]] = $3; if (!($1 in seen)) { seen[$1] = 1; order[++k] = $1 } }
    function stat(cmd, l,   i, j, a, m, tmp) { m = n[cmd, l]; for (i = 1; i <= m; i++) a[i] = c[cmd, l, i]
        for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { tmp = a[i]; a[i] = a[j]; a[j] = tmp }
        best = a[1]; med = (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2 }
    END { printf "%d alternating rounds; CPU seconds (user + sys), best / median; ratio = A / B\n", rounds
          printf "%-6s %17s %17s %13s\n", "cmd", "A", "B", "ratio"
          for (i = 1; i <= k; i++) { x = order[i]
              stat(x, "A"); b1 = best; m1 = med; stat(x, "B"); b2 = best; m2 = med
              printf "%-6s %7.2f / %7.2f %7.2f / %7.2f %5.3f / %5.3f\n", x, b1, m1, b2, m2, b1 / b2, m1 / m2 } }' "$tmp/times"
[ "$same" = 1 ]
