#!/usr/bin/env bash
# sgemm_shapes.sh - where a command's GEMM time goes, by shape: builds tests/bench/sgemm_shapes.c as
# a shared library and runs COMMAND under LD_PRELOAD; the table (the 40 costliest shapes: calls,
# seconds, GF/s; M above 64 rounded up to a multiple of 64) goes to stderr, or to $SGEMM_SHAPES_OUT.
# Compare the GF/s with build/tests/bench/bench_gemm_peak's peak of this core. Example (the
# numbers of docs/engine.md "How close to the peak"):
#   tests/bench/sgemm_shapes.sh build/bin/cisweep apply MODEL --stage '{"method":"lora","params":{}}' \
#       --data WORLD --out /tmp/lora --threads 1
set -eu
[ $# -ge 1 ] || { echo "usage: sgemm_shapes.sh COMMAND [ARGS...]" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
${CC:-cc} -O2 -shared -fPIC -o "$tmp/sgemm_shapes.so" "$here/sgemm_shapes.c" -ldl
LD_PRELOAD="$tmp/sgemm_shapes.so${LD_PRELOAD:+:$LD_PRELOAD}" "$@"
