#!/usr/bin/env bash
# curve-keys.sh - make the CURVE keys of a cluster (issue 13): one key pair for the coordinator and
# one per worker, laid out for the coordinator's --allow-keys and the workers' --curve-key/--server-key.
#
#   deploy/curve-keys.sh KEYDIR WORKER_NAME...
#
# writes
#   KEYDIR/coordinator.key   secret (0600): stays on the coordinator host   -> cisweep coordinator --curve-key
#   KEYDIR/coordinator.pub   copy to every worker                          -> cisweep worker --server-key
#   KEYDIR/workers/NAME.pub  the allow-list (a directory of .pub files)    -> cisweep coordinator --allow-keys KEYDIR/workers
#   KEYDIR/private/NAME.key  secret (0600): copy to worker NAME only       -> cisweep worker --curve-key
# Existing keys are never overwritten (cisweep keygen refuses); run it again with new names to add
# workers, then `kill -HUP` the coordinator to admit them. To revoke a worker, delete its .pub and HUP.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 KEYDIR WORKER_NAME..." >&2
    exit 2
fi
here=$(cd "$(dirname "$0")/.." && pwd)
cisweep=${CISWEEP:-$here/build/bin/cisweep}
[ -x "$cisweep" ] || cisweep=$(command -v cisweep) || { echo "$0: build cisweep first (make)" >&2; exit 1; }
dir=$1; shift
mkdir -p "$dir/workers" "$dir/private"
chmod 700 "$dir/private"
[ -e "$dir/coordinator.key" ] || "$cisweep" keygen "$dir/coordinator"
for name in "$@"; do
    case "$name" in */*|.*|"") echo "$0: worker name \"$name\" must be a plain file name" >&2; exit 2;; esac
    "$cisweep" keygen "$dir/private/$name"
    mv "$dir/private/$name.pub" "$dir/workers/$name.pub"
done
echo "coordinator: cisweep coordinator --db DB --bind tcp://0.0.0.0:5555 --curve-key $dir/coordinator.key --allow-keys $dir/workers"
echo "worker NAME: cisweep worker --connect tcp://HEAD:5555 --curve-key NAME.key --server-key coordinator.pub"
