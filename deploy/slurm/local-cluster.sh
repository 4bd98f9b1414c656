#!/usr/bin/env bash
# local-cluster.sh - a private single-node Slurm cluster (munged, slurmctld, slurmd) in one folder,
# for the cluster test (tests/blackbox/test_slurm.py) and for trying `cisweep slurm submit` on one
# machine. Follows ../shared/docs/slurm-single-node.md (Debian 12, slurm-wlm 22.05, munge).
#
#   deploy/slurm/local-cluster.sh start DIR   install slurm-wlm/munge if missing (root), write
#                                             DIR/slurm.conf, start the daemons, wait for the node
#   deploy/slurm/local-cluster.sh env DIR     print the environment lines to use it (SLURM_CONF=...)
#   deploy/slurm/local-cluster.sh stop DIR    stop what `start` started, by the pids in DIR/*.pid
#
# Everything is private to DIR: its own munge key and socket, its own ports (free ones, picked at
# start), state, spool, pid and log files. Nothing is stopped by name. Exit status: 0 started,
# 1 failure (the reason on stderr), 3 this machine cannot run slurmd (the reason on stderr; the test
# skips on it).
set -u
cmd=${1:-}; D=${2:-}
[ -n "$cmd" ] && [ -n "$D" ] || { echo "usage: $0 start|env|stop DIR" >&2; exit 2; }
mkdir -p "$D"; D=$(cd "$D" && pwd)

cannot() { echo "local-cluster: this machine cannot run slurmd: $*" >&2; exit 3; }
die() { echo "local-cluster: $*" >&2; exit 1; }

stop_pidfile() {   # stop_pidfile FILE: TERM the pid in FILE, wait up to 10 s, then KILL
    local f=$1 pid
    [ -f "$f" ] || return 0
    pid=$(cat "$f" 2>/dev/null)
    case "$pid" in ''|*[!0-9]*) rm -f "$f"; return 0;; esac
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$f"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

case "$cmd" in
stop)
    # jobs first (slurmd's children run as our jobs), then the daemons
    if [ -f "$D/slurm.conf" ] && [ -f "$D/slurmctld.pid" ]; then
        SLURM_CONF="$D/slurm.conf" timeout 10 scancel --full --signal=KILL --partition=debug 2>/dev/null
        SLURM_CONF="$D/slurm.conf" timeout 10 scancel --partition=debug 2>/dev/null
        sleep 1
    fi
    stop_pidfile "$D/slurmd.pid"
    stop_pidfile "$D/slurmctld.pid"
    stop_pidfile "$D/munge/munged.pid"
    exit 0 ;;
env)
    echo "SLURM_CONF=$D/slurm.conf"
    exit 0 ;;
start) ;;
*) echo "usage: $0 start|env|stop DIR" >&2; exit 2 ;;
esac

[ "$(id -u)" -eq 0 ] || cannot "it needs root (slurmd runs jobs as their users; we are uid $(id -u))"
if ! command -v slurmd >/dev/null || ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    command -v apt-get >/dev/null || cannot "slurm-wlm/munge are not installed and there is no apt-get"
    echo "local-cluster: apt-get install slurm-wlm munge" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >"$D/apt.log" 2>&1 \
        || { apt-get update -qq >>"$D/apt.log" 2>&1; apt-get install -y -qq --no-install-recommends slurm-wlm munge >>"$D/apt.log" 2>&1; } \
        || cannot "apt-get install slurm-wlm munge failed (see $D/apt.log)"
fi
id munge >/dev/null 2>&1 || cannot "the munge user does not exist (the munge package did not install it)"

# --- munge: a private key and socket -----------------------------------------------------------
M=$D/munge
chmod 755 "$D"   # munged runs as the munge user and must reach its socket folder
mkdir -p "$M"; chown munge:munge "$M"; chmod 700 "$M"
if [ ! -f "$M/munge.key" ]; then
    head -c 1024 /dev/urandom >"$M/munge.key"
    chown munge:munge "$M/munge.key"; chmod 400 "$M/munge.key"
fi
stop_pidfile "$M/munged.pid"
runuser -u munge -- /usr/sbin/munged --socket="$M/munge.socket" --pid-file="$M/munged.pid" \
    --key-file="$M/munge.key" --log-file="$M/munged.log" --seed-file="$M/munged.seed" --force \
    || cannot "munged did not start (see $M/munged.log)"
ok=""
for _ in $(seq 50); do
    if munge -S "$M/munge.socket" -n 2>/dev/null | unmunge -S "$M/munge.socket" 2>/dev/null | grep -q 'STATUS: *Success'; then ok=1; break; fi
    sleep 0.1
done
[ -n "$ok" ] || cannot "munge -n | unmunge did not succeed on $M/munge.socket (see $M/munged.log)"

# --- slurm.conf ---------------------------------------------------------------------------------
H=$(hostname -s)
mkdir -p "$D/state" "$D/spool" "$D/log"
CP=$(free_port); DP=$(free_port)
while [ "$DP" = "$CP" ]; do DP=$(free_port); done
cat >"$D/slurm.conf" <<EOF
# written by deploy/slurm/local-cluster.sh: a private single-node cluster in $D
ClusterName=cisweeptest
SlurmctldHost=$H
SlurmctldPort=$CP
SlurmdPort=$DP
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$M/munge.socket
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
JobRequeue=1
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=10
NodeName=$H CPUs=$(nproc) RealMemory=2000 State=UNKNOWN
PartitionName=debug Nodes=$H Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$D/slurm.conf
stop_pidfile "$D/slurmd.pid"; stop_pidfile "$D/slurmctld.pid"
/usr/sbin/slurmctld -f "$D/slurm.conf" -i >"$D/log/slurmctld.out" 2>&1 \
    || cannot "slurmctld did not start: $(tail -3 "$D/log/slurmctld.log" "$D/log/slurmctld.out" 2>/dev/null | tr '\n' ' ')"
/usr/sbin/slurmd -f "$D/slurm.conf" >"$D/log/slurmd.out" 2>&1 \
    || cannot "slurmd did not start: $(tail -3 "$D/log/slurmd.log" "$D/log/slurmd.out" 2>/dev/null | tr '\n' ' ')"
for _ in $(seq 300); do
    st=$(sinfo -h -N -o '%T' 2>/dev/null | head -1)
    case "$st" in idle|idle*|mixed*|allocated*) echo "local-cluster: node $H is $st (SLURM_CONF=$D/slurm.conf)" >&2; exit 0;; esac
    [ -f "$D/slurmd.pid" ] && ! kill -0 "$(cat "$D/slurmd.pid")" 2>/dev/null && break
    sleep 0.2
done
cannot "the node did not become idle within 60 s (sinfo: ${st:-nothing}); slurmd log: $(tail -5 "$D/log/slurmd.log" 2>/dev/null | tr '\n' ' ')"
