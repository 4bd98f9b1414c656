#!/usr/bin/env bash
# bench_study.sh - the study's time on this machine: `cisweep run` (make run's command) into a fresh
# OUT, the load average sampled every 30 s beside it (these machines are shared: a number without
# its load means little), then tests/bench/study_breakdown.py on the run's own records (steps,
# fresh vs restored stages, evaluation parts, patterns). docs/study.md "Time" quotes its output.
# Usage: tests/bench/bench_study.sh [OUT_DIR] [cisweep run options...]
#   e.g. tests/bench/bench_study.sh /tmp/study                     # the whole 417 grid (~1 h on 2 cores)
#        tests/bench/bench_study.sh /tmp/smoke --study-grid grids/study-smoke.json
# Not part of `make test`. Refuses an OUT that exists (a resumed run would time only its rest).
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${CISWEEP_BUILD:-build}
OUT=${1:-/tmp/bench_study.$$}
[ $# -gt 0 ] && shift
if [ -e "$OUT" ]; then echo "bench_study: $OUT exists; give a fresh directory (a resumed run times only its rest)" >&2; exit 2; fi
mkdir -p "$OUT"
( while :; do echo "$(date -u +%T) $(cut -d' ' -f1-3 /proc/loadavg)"; sleep 30; done ) > "$OUT.load" &
LP=$!
trap 'kill $LP 2>/dev/null || true' EXIT
echo "bench_study: $(nproc) cores, $(date -u +%FT%TZ), git $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
start=$(date +%s.%N)
rc=0
"$B/bin/cisweep" run --out "$OUT" "$@" || rc=$?
end=$(date +%s.%N)
kill $LP 2>/dev/null || true
echo "bench_study: cisweep run exit $rc, wall $(python3 -c "print(round($end - $start, 1))") s"
echo "bench_study: load average (1/5/15 min) samples: $(wc -l < "$OUT.load"), first $(head -1 "$OUT.load"), last $(tail -1 "$OUT.load"), highest 1-min $(awk '{print $2}' "$OUT.load" | sort -g | tail -1)"
python3 tests/bench/study_breakdown.py "$OUT"
exit $rc
