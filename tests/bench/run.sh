#!/usr/bin/env bash
# run.sh - `make bench`: every benchmark, one after the other, on this machine. Their numbers go in
# the README and docs/ (engine.md, eval.md, training.md, orchestration.md, schema/README.md). Benchmarks are never
# part of `make test`: these machines are shared and noisy, so only ratios measured side by side
# in one run are compared.
set -u
cd "$(dirname "$0")/../.."
B=${CISWEEP_BUILD:-build}
echo "== dispatch (tests/bench/bench_dispatch.py)"; python3 tests/bench/bench_dispatch.py "${DISPATCH_JOBS:-4000}"
for b in "$B"/tests/bench/bench_*; do
    [ -x "$b" ] || continue
    echo "== $(basename "$b")"; "$b"
done
echo "== engine A/B against the last pre-instance build (tests/bench/bench_engine_ab.sh)"; bash tests/bench/bench_engine_ab.sh
echo "== default model (tests/bench/bench_default_model.sh, ~6 min)"; bash tests/bench/bench_default_model.sh
