#!/usr/bin/env bash
# prepare.sh - run HERE (a build machine with nvcc) before a GPU session: builds everything with
# the CUDA backend (sm_90) and copies the shared libraries the GPU machine lacks (ZeroMQ and what
# it pulls in) into gpu-libs/, next to build/. Then one device call runs tests/gpu/run.sh with
# carry ["build", "gpu-libs"] (see tests/gpu/README.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v nvcc >/dev/null || { echo "prepare.sh: nvcc not found: the CUDA backend cannot be built here" >&2; exit 1; }
make -j"$(nproc)" --no-print-directory tests-build
rm -rf gpu-libs
bash ../shared/device/bundle-libs.sh build/bin/cisweep-worker gpu-libs >/dev/null
bash ../shared/device/bundle-libs.sh build/tests/worker/engine/test_backend_ops gpu-libs >/dev/null
echo "prepare.sh: build/ and gpu-libs/ ready ($(du -sh build gpu-libs | awk '{print $1}' | paste -sd+ -)); carry both"
