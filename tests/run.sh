#!/usr/bin/env bash
# run.sh - runs every test: the C test programs built from tests/**/test_*.c, and the Python
# tests tests/**/test_*.py. Each prints "ok - name" / "not ok - name" lines; this script counts
# them over all programs and closes with "N passed, N failed" (skips counted apart).
# A program that exits non-zero without a "not ok" line counts as one failure (a crash), and so
# does a program that exits 0 without a single "ok" line (it tested nothing).
# Usage: tests/run.sh [PATTERN]   (only the programs whose path contains PATTERN)
set -u
cd "$(dirname "$0")/.."
BUILD=${CISWEEP_BUILD:-build}
PAT=${1:-}
TIMEOUT=${TEST_TIMEOUT:-900}
pass=0; fail=0; skip=0; failed_progs=""
logdir=$BUILD/test-logs; mkdir -p "$logdir"

progs=$( (find "$BUILD/tests" -type f -name 'test_*' -perm -u+x ! -name '*.d' ! -name '*.o' 2>/dev/null; \
          find tests -name 'test_*.py') | sort)
# second pass: the C tests of the parsers and stores built with AddressSanitizer (make test sets these)
if [ -n "${ASAN_BUILD:-}" ] && [ -d "$ASAN_BUILD/tests" ]; then
    progs="$progs $(find "$ASAN_BUILD/tests" -type f -name 'test_*' -perm -u+x ! -name '*.d' ! -name '*.o' | grep -E "${ASAN_TESTS:-.}" | sort)"
fi
for p in $progs; do
    [ -n "$PAT" ] && [[ "$p" != *"$PAT"* ]] && continue
    name=${p#"$BUILD"/}; case "$p" in "${ASAN_BUILD:-//}"/*) name="asan:${p#"$ASAN_BUILD"/}";; esac
    log="$logdir/$(echo "$name" | tr '/:' '__').log"
    t0=$(date +%s%N)
    case "$p" in
        *.py) timeout "$TIMEOUT" python3 "$p" >"$log" 2>&1 ;;
        *)    timeout "$TIMEOUT" "$p" >"$log" 2>&1 ;;
    esac
    rc=$?
    dt_ms=$(( ($(date +%s%N) - t0) / 1000000 )); dt="$((dt_ms / 1000)).$(( (dt_ms % 1000) / 100 ))"
    np=$(grep -c '^ok - ' "$log" | head -1); ns=$(grep -c '^ok - .*# SKIP' "$log" | head -1)
    nf=$(grep -c '^not ok - ' "$log" | head -1)
    np=$((np - ns))
    if [ "$rc" -ne 0 ] && [ "$nf" -eq 0 ]; then nf=1; echo "  (exit status $rc without a failing test line: counted as one failure)" >>"$log"; fi
    if [ "$rc" -eq 0 ] && [ "$nf" -eq 0 ] && [ "$((np + ns))" -eq 0 ]; then nf=1; echo "  (exit status 0 without a single \"ok\" line: no test ran, counted as one failure)" >>"$log"; fi
    pass=$((pass + np)); fail=$((fail + nf)); skip=$((skip + ns))
    if [ "$nf" -gt 0 ]; then
        echo "FAIL $name ($np passed, $nf failed, ${dt}s)"; failed_progs="$failed_progs $log"
        grep -E '^not ok|CHECK failed|Error|Traceback|error' "$log" | head -20 | sed 's/^/    /'
    else
        sk=""; [ "$ns" -gt 0 ] && sk=", $ns skipped"; echo "ok   $name ($np passed$sk, ${dt}s)"
        grep '# SKIP' "$log" | sed 's/^/    /'
    fi
done
for l in $failed_progs; do echo "---- $l (last 40 lines)"; tail -40 "$l"; done
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
