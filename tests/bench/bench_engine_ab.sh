#!/usr/bin/env bash
# bench_engine_ab.sh - the engine benchmark of two builds side by side in one run: this tree and a
# base revision (default: the parent of the commit that introduced backend instances, 20b670d),
# built in a temporary git worktree. Runs alternate (base, this, base, this, ...) ROUNDS times so
# that a shared machine's load falls on both alike, and the best tokens/s of each build per shape
# and mode is reported with the ratio this/base (> 1: this tree is faster).
# Usage: tests/bench/bench_engine_ab.sh [BASE_REV] [ROUNDS] [THREADS] [SIZES]
#        (defaults: 20b670d, 5 rounds, 1 thread, 1m,10m)
set -eu
cd "$(dirname "$0")/../.."
BASE=${1:-20b670d}; ROUNDS=${2:-5}; THREADS=${3:-1}; SIZES=${4:-1m,10m}
B=${CISWEEP_BUILD:-build}
make --no-print-directory -s "$B/tests/bench/bench_engine" >/dev/null
tmp=$(mktemp -d /tmp/cisweep-ab.XXXXXX)
trap 'git worktree remove --force "$tmp/base" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
git worktree add --detach -q "$tmp/base" "$BASE"
make --no-print-directory -s -C "$tmp/base" build/tests/bench/bench_engine >/dev/null
for r in $(seq 1 "$ROUNDS"); do
    "$tmp/base/build/tests/bench/bench_engine" -t "$THREADS" -s "$SIZES" | sed 's/^/base /' >>"$tmp/out"
    "$B/tests/bench/bench_engine" -t "$THREADS" -s "$SIZES" | sed 's/^/this /' >>"$tmp/out"
done
# lines: "<who> <shape> params ..." then "<who>       forward N tok/s ..." / "train N tok/s"
awk '$2 ~ /^[0-9]+m$/ { shape[$1] = $2; next }
     $2 == "forward" || $2 == "train" { print shape[$1], $2, $1, $3 + 0 }' "$tmp/out" |
    sort -k1,1 -k2,2 -k3,3 -k4,4gr |
    awk -v rounds="$ROUNDS" -v base="$BASE" '
        BEGIN { printf "engine A/B, best of %d alternating runs: base = %s, this = working tree\n", rounds, base
                printf "%-6s %-8s %12s %12s %8s\n", "shape", "mode", "base tok/s", "this tok/s", "ratio" }
        { k = $1 " " $2; if (!((k, $3) in best)) best[k, $3] = $4; if (!(k in seen)) { seen[k] = 1; order[++n] = k } }
        END { for (i = 1; i <= n; i++) { k = order[i]; split(k, p, " "); b = best[k, "base"]; t = best[k, "this"]
                printf "%-6s %-8s %12.0f %12.0f %8.3f\n", p[1], p[2], b, t, (b > 0 ? t / b : 0) } }'
cp "$tmp/out" "${AB_RAW:-/tmp/bench_engine_ab.raw}"  # every run, for a closer look
