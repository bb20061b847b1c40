#!/usr/bin/env bash
# Stop the single-node Grid Engine started by scripts/start-sge.sh: sge_execd, then sge_qmaster.
# Configuration, queued jobs and the accounting file are kept (the qmaster spools them);
# start-sge.sh brings the daemons back. Jobs still running keep running under their
# sge_shepherd, detached from sge_execd; pass --cancel to qdel all jobs first.
set -euo pipefail

export SGE_ROOT=/var/lib/gridengine
export SGE_CELL=default
RUN_DIR=/var/run/gridengine
QMASTER_SPOOL=/var/spool/gridengine/qmaster
EXECD_SPOOL=/var/spool/gridengine/execd

[[ $(id -u) -eq 0 ]] || { echo "stop-sge: must be run as root" >&2; exit 2; }

if [[ ${1:-} == --cancel ]] && command -v qdel >/dev/null 2>&1; then
    qdel -u '*' >/dev/null 2>&1 || true
    sleep 2
fi

# stop NAME PIDFILE...: SIGTERM the process named NAME in each PIDFILE, wait up to 15 s, then SIGKILL
stop() {
    local name=$1 pidfile pid i
    shift
    for pidfile in "$@"; do
        [[ -s $pidfile ]] || continue
        pid=$(tr -dc '0-9' <"$pidfile")
        if [[ -z $pid ]] || ! kill -0 "$pid" 2>/dev/null ||
            [[ $(cat "/proc/$pid/comm" 2>/dev/null) != "$name" ]]; then
            rm -f "$pidfile"
            continue
        fi
        echo "stop-sge: stopping $name ($pid)" >&2
        kill "$pid" 2>/dev/null || true
        for ((i = 0; i < 75; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "stop-sge: $name ($pid) ignored SIGTERM, killing it" >&2
            kill -9 "$pid" 2>/dev/null || true
        fi
        rm -f "$pidfile"
    done
}

# Where start-sge.sh (and Debian's init scripts) keep the pid files, and the daemons' defaults.
stop sge_execd "$RUN_DIR/execd.pid" "$EXECD_SPOOL"/*/execd.pid
stop sge_qmaster "$RUN_DIR/qmaster.pid" "$QMASTER_SPOOL/qmaster.pid"
echo "sge stopped"
