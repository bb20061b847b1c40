#!/usr/bin/env bash
# Start (or check) a single-node Son of Grid Engine 8.1.9 (Debian's gridengine packages) on
# this host, for param_search's live SGE tests. Debian/Ubuntu, root, no systemd needed.
#
#   scripts/start-sge.sh            # install if missing, start what is down, configure, wait until ready
#   PS_SGE_MAX_AJ_TASKS=10 scripts/start-sge.sh   # change max_aj_tasks (no restart needed)
#   scripts/stop-sge.sh             # stop the daemons again
#
# Idempotent: when everything is already up with the same configuration it only checks and
# prints "sge ready (max_aj_tasks=N)" (the only line on stdout). Exit codes: 0 ready, 2 cannot
# run here (not root or no apt-get), 1 anything else failed (see the logs under
# $PS_SGE_DIR/log, /var/spool/gridengine/qmaster/messages and
# /var/spool/gridengine/execd/*/messages).
#
# What it sets up: SGE_ROOT=/var/lib/gridengine, SGE_CELL=default (the /usr/bin/q* wrappers of
# gridengine-client read them from /etc/default/gridengine, so users need no environment);
# this host as admin, submit and execution host; queue all.q with $PS_SGE_SLOTS slots;
# min_uid/min_gid 0 (root may submit); a 1 s scheduling interval; accounting written at once
# (accounting_flush_time=0); h_vmem requestable (not consumable), the host's h_vmem = MemTotal.
# A job's h_vmem request is enforced: the shepherd sets it as RLIMIT_AS of each process (an
# allocation past it fails), and sge_execd SIGKILLs the job when its processes together exceed
# it (qacct: failed 37, exit_status 137). h_rt is enforced by sge_execd the same way.
#
# gridengine-client owns /usr/bin/qsub, as slurm-wlm-torque would: that one is therefore never
# installed as a package (scripts/start-torque.sh unpacks it into a private prefix). The
# packages also pull in an MTA (exim4-daemon-light, via bsd-mailx); no daemon of theirs is
# started. Jobs get sge_execd's environment, which this script keeps minimal (env -i).
#
# Environment:
#   PS_SGE_MAX_AJ_TASKS  max_aj_tasks, the largest array job (default 75000, SGE's default)
#   PS_SGE_SLOTS         slots of all.q (default 2 * nproc)
#   PS_SGE_DIR           lock/log/config folder (default /var/lib/param-search-sge)
#   PS_SGE_QUIET         non-empty: no progress messages on stderr
set -euo pipefail

BASE=${PS_SGE_DIR:-/var/lib/param-search-sge}
MAX_AJ=${PS_SGE_MAX_AJ_TASKS:-75000}
SLOTS=${PS_SGE_SLOTS:-$(($(nproc) * 2))}
export SGE_ROOT=/var/lib/gridengine
export SGE_CELL=default
COMMON=$SGE_ROOT/$SGE_CELL/common
QMASTER_SPOOL=/var/spool/gridengine/qmaster
EXECD_SPOOL=/var/spool/gridengine/execd
RUN_DIR=/var/run/gridengine
# Pid files, where Debian's init scripts keep them. (Those export SGE_MASTER_PIDFILE, but
# sge_qmaster reads SGE_QMASTER_PIDFILE; without it, it writes $QMASTER_SPOOL/qmaster.pid.)
SGE_QMASTER_PIDFILE=$RUN_DIR/qmaster.pid
SGE_EXECD_PIDFILE=$RUN_DIR/execd.pid
# Jobs inherit sge_execd's environment (plus SGE's own variables; qsub -V/-v add the
# submitter's), so start the daemons with a fixed one, as an init system would, not with
# whatever environment this script was called from.
DAEMON_ENV=(env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
    SGE_ROOT="$SGE_ROOT" SGE_CELL="$SGE_CELL")
QUEUE=all.q
READY_TIMEOUT=60

die() { echo "start-sge: $*" >&2; exit 1; }
cannot() { echo "start-sge: cannot run here: $*" >&2; exit 2; }
log() { [[ -n ${PS_SGE_QUIET:-} ]] || echo "start-sge: $*" >&2; }

if ! [[ $MAX_AJ =~ ^[0-9]+$ ]] || ((MAX_AJ < 1)); then
    die "PS_SGE_MAX_AJ_TASKS must be a positive integer, got '$MAX_AJ'"
fi
if ! [[ $SLOTS =~ ^[0-9]+$ ]] || ((SLOTS < 1)); then
    die "PS_SGE_SLOTS must be a positive integer, got '$SLOTS'"
fi
[[ $(id -u) -eq 0 ]] || cannot "must be run as root (it installs packages and starts daemons)"

HOST=$(hostname)
[[ -n $HOST ]] || die "hostname is empty"

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

PACKAGES=(gridengine-master gridengine-exec gridengine-client gridengine-common)
missing=()
for p in "${PACKAGES[@]}"; do installed "$p" || missing+=("$p"); done
if ((${#missing[@]})); then
    command -v apt-get >/dev/null 2>&1 || cannot "apt-get not available and packages missing: ${missing[*]}"
fi

mkdir -p "$BASE"/{log,conf}
# Serialise concurrent runs (e.g. parallel test workers). Daemons (and apt-get, whose
# maintainer scripts may start some) run with 9>&- so they do not inherit this lock.
exec 9>"$BASE/.start.lock"
flock -w 300 9 || die "another start-sge.sh holds $BASE/.start.lock"

# ---------------------------------------------------------------- install
POLICY=/usr/sbin/policy-rc.d
own_policy=""
trap '[[ -z $own_policy ]] || rm -f "$POLICY"' EXIT
install_packages() {
    local rc=0
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    debconf-set-selections <<EOF || die "debconf-set-selections failed"
gridengine-common shared/gridenginemaster string $HOST
gridengine-common shared/gridenginecell string $SGE_CELL
gridengine-common shared/gridengineconfig boolean true
postfix postfix/main_mailer_type select No configuration
EOF
    # Without systemd, invoke-rc.d would run the packages' init scripts (sge_qmaster, exim4,
    # ...) from their postinst, and a master that fails there fails the install. This script
    # starts the daemons itself, so deny that unless a policy-rc.d is already in place.
    if [[ ! -e $POLICY ]]; then
        own_policy=1
        printf '#!/bin/sh\n# temporary, scripts/start-sge.sh\nexit 101\n' >"$POLICY"
        chmod 755 "$POLICY"
    fi
    local apt=(apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300)
    if ! "${apt[@]}" "${missing[@]}" >>"$BASE/log/apt.log" 2>&1 9>&-; then
        log "apt-get install failed; running apt-get update and retrying"
        if apt-get update -qq >>"$BASE/log/apt.log" 2>&1 9>&-; then
            "${apt[@]}" "${missing[@]}" >>"$BASE/log/apt.log" 2>&1 9>&- || rc=$?
        else
            rc=1
        fi
    fi
    [[ -z $own_policy ]] || rm -f "$POLICY"
    own_policy=""
    ((rc == 0)) || die "apt-get install ${missing[*]} failed (see $BASE/log/apt.log)"
}
((${#missing[@]} == 0)) || install_packages
for c in /usr/lib/gridengine/sge_qmaster /usr/lib/gridengine/sge_execd /usr/bin/qconf /usr/bin/qstat \
    /usr/bin/qsub /usr/bin/qacct /usr/bin/qhost /usr/lib/gridengine/gethostname; do
    [[ -x $c ]] || die "$c not found after installing ${PACKAGES[*]}"
done
[[ -f $COMMON/bootstrap ]] || die "$COMMON/bootstrap missing: the packages did not set up cell $SGE_CELL" \
    "(debconf shared/gridengineconfig false?); purge gridengine-common and run again"
[[ -n $(ls -A /var/spool/gridengine/spooldb 2>/dev/null) ]] ||
    die "/var/spool/gridengine/spooldb is empty: gridengine-master's postinst did not initialise the cluster"

# ---------------------------------------------------------------- helpers
pid_alive() { # pid_alive PIDFILE NAME: the pid in PIDFILE runs and is called NAME
    local pid
    [[ -s $1 ]] || return 1
    pid=$(tr -dc '0-9' <"$1")
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
    [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]] || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$2" ]]
}

wait_for() { # wait_for SECONDS DESCRIPTION CMD...
    local secs=$1 what=$2 i
    shift 2
    for ((i = 0; i < secs * 5; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    die "timed out after ${secs}s waiting for $what (logs: $BASE/log, $QMASTER_SPOOL/messages, $EXECD_SPOOL/*/messages)"
}

# daemon_pidfile NAME: the pid file of the running NAME (sge_qmaster or sge_execd), also when
# it was started some other way (the daemons' default pid files); fails when none runs.
daemon_pidfile() {
    local f files
    if [[ $1 == sge_qmaster ]]; then
        files=("$SGE_QMASTER_PIDFILE" "$QMASTER_SPOOL/qmaster.pid")
    else
        # The execd's spool folder is named as the execd resolves itself, without host_aliases
        # (here "localhost").
        files=("$SGE_EXECD_PIDFILE" "$EXECD_SPOOL"/*/execd.pid)
    fi
    for f in "${files[@]}"; do
        if pid_alive "$f" "$1"; then echo "$f"; return 0; fi
    done
    return 1
}
running() { daemon_pidfile "$1" >/dev/null; }

stop_pidfile() { # stop_pidfile PIDFILE NAME: SIGTERM, wait up to 15 s, then SIGKILL
    local pid i
    pid_alive "$1" "$2" || { rm -f "$1"; return 0; }
    pid=$(tr -dc '0-9' <"$1")
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 75; i++)); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$1"; return 0; }
        sleep 0.2
    done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$1"
}

# write_if_changed FILE < content: prints "changed" when the file was (re)written
write_if_changed() {
    local file=$1 tmp
    tmp=$(mktemp "$file.XXXXXX")
    cat >"$tmp"
    chmod 644 "$tmp"
    if [[ -f $file ]] && cmp -s "$tmp" "$file"; then
        rm -f "$tmp"
    else
        mv -f "$tmp" "$file"
        echo changed
    fi
}

# qconf -sconf / -ssconf / -sq print long values over several lines ending in "\": join them.
joined() { awk '{ if (sub(/\\$/, "")) { printf "%s", $0 } else print }' | sed -E 's/[[:space:]]+/ /g'; }
# value KEY < "key value" lines
value() { awk -v k="$1" '$1 == k { $1 = ""; sub(/^ /, ""); print; exit }'; }
# set_values "KEY VALUE"... < "key value" lines: replaces those keys (adds them when missing)
set_values() {
    awk -v pairs="$(printf '%s\n' "$@")" '
        BEGIN { n = split(pairs, p, "\n"); for (i = 1; i <= n; i++) if (p[i] != "") {
            k = p[i]; sub(/ .*/, "", k); v = p[i]; sub(/^[^ ]+ /, "", v); want[k] = v; order[++m] = k } }
        $1 in want { printf "%-28s %s\n", $1, want[$1]; done[$1] = 1; next }
        { print }
        END { for (i = 1; i <= m; i++) if (!(order[i] in done)) printf "%-28s %s\n", order[i], want[order[i]] }'
}
# differs "KEY VALUE"... < current: true when a key's current value is not the wanted one
differs() {
    local current pair k v
    current=$(cat)
    for pair in "$@"; do
        k=${pair%% *}
        v=${pair#* }
        [[ $(value "$k" <<<"$current") == "$v" ]] || return 0
    done
    return 1
}

mem_total_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
GLOBAL_CONF=(
    "min_uid 0"
    "min_gid 0"
    "max_aj_tasks $MAX_AJ"
    "load_report_time 00:00:05"
    "reporting_params accounting=true reporting=false flush_time=00:00:15 joblog=false sharelog=00:00:00 accounting_flush_time=00:00:00"
    "execd_params ENABLE_ADDGRP_KILL=TRUE"
)
SCHED_CONF=(
    "schedule_interval 0:0:1"
    "job_load_adjustments NONE"
    "load_adjustment_decay_time 0:0:0"
    "flush_submit_sec 0"
    "flush_finish_sec 0"
)
QUEUE_CONF=(
    "qname $QUEUE"
    "hostlist @allhosts"
    "slots $SLOTS"
    "load_thresholds NONE"
    "pe_list NONE"
    "shell /bin/sh"
)
# h_vmem stays requestable but not consumable (Debian's default): as a consumable its default
# (0) becomes the limit of every job that does not request it, and execd kills those at once
# ("job 5.1 exceeds job hard limit "h_vmem" of queue "all.q@vm" (3432448.00000 > limit:
# 0.00000) - sending SIGKILL"). The host's capacity still makes larger requests unschedulable.
H_VMEM_CENTRY="h_vmem h_vmem MEMORY <= YES NO 0 0"
EXEC_COMPLEX="h_vmem=${mem_total_mb}M"

running_max_aj() { qconf -sconf 2>/dev/null | joined | value max_aj_tasks; }
ready_line() { echo "sge ready (max_aj_tasks=$(running_max_aj))"; }

qmaster_up() { qstat -s r >/dev/null 2>&1; }

# queue_state: the states column of all.q@HOST in `qstat -f` ("" when fine), "-NA-" while the
# execd has not reported load, "missing" when the instance is not listed.
queue_state() {
    qstat -f -q "$QUEUE" 2>/dev/null | awk -v qi="$QUEUE@$HOST" '
        $1 == qi { found = 1; if ($4 == "-NA-") print "-NA-"; else print $6; exit }
        END { if (!found) print "missing" }'
}

host_has_load() { qhost -h "$HOST" 2>/dev/null | awk -v h="$HOST" '$1 == h && $4 != "-" { ok = 1 } END { exit !ok }'; }

config_ok() {
    qconf -sconf 2>/dev/null | joined | differs "${GLOBAL_CONF[@]}" && return 1
    qconf -ssconf 2>/dev/null | joined | differs "${SCHED_CONF[@]}" && return 1
    qconf -sq "$QUEUE" 2>/dev/null | joined | differs "${QUEUE_CONF[@]}" && return 1
    [[ $(qconf -sc 2>/dev/null | awk '$1 == "h_vmem"' | sed -E 's/[[:space:]]+/ /g') == "$H_VMEM_CENTRY" ]] || return 1
    qconf -se "$HOST" 2>/dev/null | joined | differs "complex_values $EXEC_COMPLEX" && return 1
    return 0
}

# ---------------------------------------------------------------- fast path
if running sge_qmaster && running sge_execd &&
    [[ -f $COMMON/accounting ]] && [[ $(cat "$COMMON/act_qmaster" 2>/dev/null) == "$HOST" ]] &&
    [[ -z $(queue_state) ]] && host_has_load && config_ok; then
    ready_line
    exit 0
fi

# ---------------------------------------------------------------- host names
# The hostname resolves to 127.0.0.1, whose first name in /etc/hosts is "localhost": without
# an alias the master resolves its clients to "localhost" and refuses them ("access denied"
# / "not identical"), so make "localhost" an alias of the hostname.
aliases_changed=$(write_if_changed "$COMMON/host_aliases" <<<"$HOST localhost")
chown sgeadmin:sgeadmin "$COMMON/host_aliases"
if [[ $(cat "$COMMON/act_qmaster" 2>/dev/null) != "$HOST" ]]; then
    echo "$HOST" >"$COMMON/act_qmaster"
    chown sgeadmin:sgeadmin "$COMMON/act_qmaster"
    aliases_changed=changed
fi
sge_name=$(/usr/lib/gridengine/gethostname -aname 2>/dev/null || true)
[[ $sge_name == "$HOST" ]] ||
    die "SGE resolves this host as '$sge_name', not '$HOST' (see $COMMON/host_aliases, /etc/hosts)"

mkdir -p "$RUN_DIR" "$EXECD_SPOOL"
chown sgeadmin:sgeadmin "$RUN_DIR" "$EXECD_SPOOL"

# ---------------------------------------------------------------- sge_qmaster
if [[ $aliases_changed == changed ]] && running sge_qmaster; then
    log "host_aliases/act_qmaster changed: restarting sge_qmaster"
    stop_pidfile "$(daemon_pidfile sge_qmaster)" sge_qmaster
fi
if ! running sge_qmaster; then
    log "starting sge_qmaster"
    rm -f "$SGE_QMASTER_PIDFILE"
    "${DAEMON_ENV[@]}" SGE_QMASTER_PIDFILE="$SGE_QMASTER_PIDFILE" /usr/lib/gridengine/sge_qmaster </dev/null 9>&- >>"$BASE/log/qmaster.start.log" 2>&1 ||
        die "sge_qmaster failed (see $BASE/log/qmaster.start.log, $QMASTER_SPOOL/messages)"
fi
wait_for 30 "sge_qmaster" qmaster_up

# ---------------------------------------------------------------- configuration (files, no editors)
CONF=$BASE/conf
qconf_q() { # run qconf quietly, logging its output; fail with it
    local out
    out=$(qconf "$@" 2>&1) || die "qconf $* failed: $out"
    printf '%s\n' "$out" >>"$BASE/log/qconf.log"
}

qconf -sh 2>/dev/null | grep -qx "$HOST" || qconf_q -ah "$HOST"
qconf -ss 2>/dev/null | grep -qx "$HOST" || qconf_q -as "$HOST"

if [[ $(qconf -sc | awk '$1 == "h_vmem"' | sed -E 's/[[:space:]]+/ /g') != "$H_VMEM_CENTRY" ]]; then
    log "setting the h_vmem complex to: $H_VMEM_CENTRY"
    qconf -sc | awk -v line="$H_VMEM_CENTRY" '$1 == "h_vmem" { print line; next } { print }' >"$CONF/complexes"
    qconf_q -Mc "$CONF/complexes"
fi

if ! qconf -se "$HOST" >/dev/null 2>&1; then
    log "adding execution host $HOST"
    printf 'hostname %s\nload_scaling NONE\ncomplex_values %s\nuser_lists NONE\nxuser_lists NONE\nprojects NONE\nxprojects NONE\nusage_scaling NONE\nreport_variables NONE\n' \
        "$HOST" "$EXEC_COMPLEX" >"$CONF/exechost"
    qconf_q -Ae "$CONF/exechost"
elif qconf -se "$HOST" | joined | differs "complex_values $EXEC_COMPLEX"; then
    qconf -se "$HOST" | joined | grep -vE '^(load_values|processors|reported_variables) ' |
        set_values "complex_values $EXEC_COMPLEX" >"$CONF/exechost"
    qconf_q -Me "$CONF/exechost"
fi

if ! qconf -shgrp @allhosts >/dev/null 2>&1; then
    printf 'group_name @allhosts\nhostlist %s\n' "$HOST" >"$CONF/allhosts"
    qconf_q -Ahgrp "$CONF/allhosts"
elif ! qconf -shgrp @allhosts | joined | value hostlist | tr ' ' '\n' | grep -qx "$HOST"; then
    # A previous hostname of this machine may be there: replace the list.
    printf 'group_name @allhosts\nhostlist %s\n' "$HOST" >"$CONF/allhosts"
    qconf_q -Mhgrp "$CONF/allhosts"
fi

if ! qconf -sq "$QUEUE" >/dev/null 2>&1; then
    log "adding queue $QUEUE ($SLOTS slots)"
    qconf -sq | joined | set_values "${QUEUE_CONF[@]}" >"$CONF/$QUEUE"
    qconf_q -Aq "$CONF/$QUEUE"
elif qconf -sq "$QUEUE" | joined | differs "${QUEUE_CONF[@]}"; then
    log "updating queue $QUEUE ($SLOTS slots)"
    qconf -sq "$QUEUE" | joined | set_values "${QUEUE_CONF[@]}" >"$CONF/$QUEUE"
    qconf_q -Mq "$CONF/$QUEUE"
fi

if qconf -sconf | joined | differs "${GLOBAL_CONF[@]}"; then
    log "updating the global configuration (max_aj_tasks=$MAX_AJ)"
    # -Mconf takes the configuration's name from the file name.
    qconf -sconf | joined | grep -v '^#' | set_values "${GLOBAL_CONF[@]}" >"$CONF/global"
    qconf_q -Mconf "$CONF/global"
fi

if qconf -ssconf | joined | differs "${SCHED_CONF[@]}"; then
    log "updating the scheduler configuration"
    qconf -ssconf | joined | set_values "${SCHED_CONF[@]}" >"$CONF/sched"
    qconf_q -Msconf "$CONF/sched"
fi
config_ok || die "configuration did not take (see $BASE/log/qconf.log)"

# ---------------------------------------------------------------- sge_execd
if [[ $aliases_changed == changed ]] && running sge_execd; then
    log "restarting sge_execd"
    stop_pidfile "$(daemon_pidfile sge_execd)" sge_execd
fi
if ! running sge_execd; then
    log "starting sge_execd"
    rm -f "$SGE_EXECD_PIDFILE"
    "${DAEMON_ENV[@]}" SGE_EXECD_PIDFILE="$SGE_EXECD_PIDFILE" /usr/lib/gridengine/sge_execd </dev/null 9>&- >>"$BASE/log/execd.start.log" 2>&1 ||
        die "sge_execd failed (see $BASE/log/execd.start.log, $EXECD_SPOOL/*/messages)"
fi

# ---------------------------------------------------------------- wait until ready
wait_queue_ready() {
    local i s
    for ((i = 0; i < READY_TIMEOUT * 5; i++)); do
        s=$(queue_state)
        if [[ -z $s ]] && host_has_load; then return 0; fi
        # E (error, e.g. after a failed job start) and d (disabled) do not clear by themselves.
        if ((i % 10 == 5)) && [[ $s == *E* ]]; then qmod -cq "$QUEUE@$HOST" >/dev/null 2>&1 || true; fi
        if ((i % 10 == 5)) && [[ $s == *d* ]]; then qmod -e "$QUEUE@$HOST" >/dev/null 2>&1 || true; fi
        sleep 0.2
    done
    die "queue $QUEUE@$HOST not ready after ${READY_TIMEOUT}s (state '$(queue_state)'); logs:" \
        "$QMASTER_SPOOL/messages, $EXECD_SPOOL/*/messages"
}
wait_queue_ready

# The first job also creates the accounting file that qacct reads.
if [[ ! -f $COMMON/accounting ]]; then
    log "running a first job"
    out=$(cd / && timeout 60 qsub -b y -sync y -N ps_start_sge -o /dev/null -e /dev/null /bin/true 2>&1 9>&-) ||
        die "test job failed: $out"
    wait_for 20 "$COMMON/accounting" test -f "$COMMON/accounting"
fi
ready_line
