#!/usr/bin/env bash
# Stop the single-node Slurm cluster started by scripts/start-slurm.sh: slurmd, slurmctld,
# slurmdbd, its private MariaDB and munged (munged only if start-slurm.sh started it).
# State (queued jobs, accounting database) is kept under $PS_SLURM_DIR; start-slurm.sh brings
# it back. Jobs still running keep running detached from slurmd; pass --cancel to scancel all
# jobs first.
set -euo pipefail

BASE=${PS_SLURM_DIR:-/var/lib/param-search-slurm}
MYCNF=$BASE/etc/my.cnf

[[ $(id -u) -eq 0 ]] || { echo "stop-slurm: must be run as root" >&2; exit 2; }

if [[ ${1:-} == --cancel ]] && command -v scancel >/dev/null 2>&1; then
    scancel --user=root --full 2>/dev/null || true
    sleep 1
fi

# stop PIDFILE NAME: SIGTERM the process named NAME in PIDFILE, wait up to 15 s, then SIGKILL
stop() {
    local pidfile=$1 name=$2 pid i
    [[ -s $pidfile ]] || return 0
    pid=$(tr -dc '0-9' <"$pidfile")
    if [[ -z $pid ]] || ! kill -0 "$pid" 2>/dev/null ||
        [[ $(cat "/proc/$pid/comm" 2>/dev/null) != "$name" ]]; then
        rm -f "$pidfile"
        return 0
    fi
    echo "stop-slurm: stopping $name ($pid)" >&2
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 75; i++)); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return 0; }
        sleep 0.2
    done
    echo "stop-slurm: $name ($pid) ignored SIGTERM, killing it" >&2
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
}

stop "$BASE/run/slurmd.pid" slurmd
stop "$BASE/run/slurmctld.pid" slurmctld
stop "$BASE/run/slurmdbd.pid" slurmdbd

# MariaDB: mysqld_safe exits by itself after a clean shutdown of mariadbd.
if [[ -s $BASE/run/mysqld/mysqld.pid ]]; then
    if ! mysqladmin --defaults-file="$MYCNF" -uroot shutdown >/dev/null 2>&1; then
        stop "$BASE/run/mysqld/mysqld.pid" mariadbd
    else
        echo "stop-slurm: stopped MariaDB" >&2
    fi
fi

# munged: only the one start-slurm.sh started (it copies munged's pid file there).
if [[ -s $BASE/run/munged.pid ]]; then
    stop "$BASE/run/munged.pid" munged
    rm -f /run/munge/munged.pid
fi
echo "slurm stopped"
