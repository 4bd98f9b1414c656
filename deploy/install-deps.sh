#!/usr/bin/env bash
# install-deps.sh - idempotent install of everything cisweep's build, tests and main job need.
# Debian/Ubuntu: apt-get for the C libraries and tools, pip for the Python test peers
# (numpy reference forward, the safetensors and tokenizers packages for parity tests; jinja2 and
# pyyaml to render the real lm-eval 0.4.2 task templates in tests/worker/eval/test_lmeval_prompts.py),
# and Debian's chromium, in which the report test (tests/coordinator/test_report.py) loads report.html.
# Safe to run twice: it installs only what is missing and prints what it did.
set -euo pipefail

APT_PKGS="build-essential pkg-config libzmq3-dev libsqlite3-dev sqlite3 libjansson-dev \
libopenblas-dev liblapacke-dev zlib1g-dev libzstd-dev python3 python3-pip chromium fonts-dejavu-core"
PY_PKGS="numpy safetensors tokenizers zmq jinja2 yaml"

need_apt=""
for p in $APT_PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        need_apt="$need_apt $p"
    fi
done
if [ -n "$need_apt" ]; then
    echo "install-deps: apt-get install$need_apt"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq || echo "install-deps: apt-get update failed; trying install from the cached lists"
    $SUDO apt-get install -y -qq --no-install-recommends $need_apt
else
    echo "install-deps: system packages present"
fi

PY=${PYTHON:-python3}
need_py=""
for m in $PY_PKGS; do
    pkg=$m; [ "$m" = zmq ] && pkg=pyzmq; [ "$m" = yaml ] && pkg=pyyaml
    $PY -c "import $m" 2>/dev/null || need_py="$need_py $pkg"
done
if [ -n "$need_py" ]; then
    echo "install-deps: pip install$need_py"
    $PY -m pip install -q $need_py 2>/dev/null \
        || $PY -m pip install -q --break-system-packages $need_py
else
    echo "install-deps: python packages present"
fi
