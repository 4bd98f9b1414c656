#!/usr/bin/env bash
# install.sh - install cisweep's programs and systemd units on a machine (issue 15).
#   sudo deploy/systemd/install.sh [--prefix /usr/local] [--root DIR] [--no-user]
# Copies build/bin/{cisweep,cisweep-worker} to PREFIX/bin, the units to /etc/systemd/system (their
# /usr/local paths rewritten to PREFIX), docs/cluster.md to PREFIX/share/doc/cisweep, and example
# settings to /etc/cisweep/{coordinator,worker}.env where none exist (never overwritten). Creates the
# system user `cisweep` unless --no-user. --root DIR installs under DIR (a package root or a test).
# Then: `systemctl daemon-reload; systemctl enable --now cisweep-coordinator` on the coordinator's
# machine, `systemctl enable --now cisweep-worker@0 cisweep-worker@1 ...` on a GPU machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
PREFIX=/usr/local; ROOT=""; USERADD=1
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX=$2; shift 2 ;;
        --root) ROOT=$2; shift 2 ;;
        --no-user) USERADD=""; shift ;;
        *) echo "install.sh: unknown option $1 (expected --prefix DIR, --root DIR, --no-user)" >&2; exit 2 ;;
    esac
done
for b in cisweep cisweep-worker; do
    [ -x "build/bin/$b" ] || { echo "install.sh: build/bin/$b is missing: run make first" >&2; exit 1; }
done
install -d "$ROOT$PREFIX/bin" "$ROOT/etc/systemd/system" "$ROOT/etc/cisweep" "$ROOT$PREFIX/share/doc/cisweep"
install -m 0755 build/bin/cisweep build/bin/cisweep-worker "$ROOT$PREFIX/bin/"
for u in deploy/systemd/*.service; do
    sed -e "s|/usr/local/bin/|$PREFIX/bin/|g" -e "s|/usr/local/share/doc/|$PREFIX/share/doc/|g" "$u" \
        >"$ROOT/etc/systemd/system/$(basename "$u")"
    chmod 0644 "$ROOT/etc/systemd/system/$(basename "$u")"
done
install -m 0644 docs/cluster.md "$ROOT$PREFIX/share/doc/cisweep/"
[ -e "$ROOT/etc/cisweep/coordinator.env" ] || printf '%s\n' \
    '# settings of cisweep-coordinator.service' 'CISWEEP_DB=/var/lib/cisweep/sweep.db' \
    'CISWEEP_BIND=tcp://0.0.0.0:5555' 'CISWEEP_COORDINATOR_ARGS=' >"$ROOT/etc/cisweep/coordinator.env"
[ -e "$ROOT/etc/cisweep/worker.env" ] || printf '%s\n' \
    '# settings of cisweep-worker@.service and cisweep-worker-cpu.service' \
    'CISWEEP_CONNECT=tcp://coordinator-host:5555' 'CISWEEP_WORKER_ARGS=' >"$ROOT/etc/cisweep/worker.env"
if [ -n "$USERADD" ] && [ -z "$ROOT" ] && ! id cisweep >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/cisweep --shell /usr/sbin/nologin cisweep
    echo "install.sh: created the system user cisweep"
fi
echo "install.sh: installed into ${ROOT:-/} (prefix $PREFIX); now: systemctl daemon-reload"
