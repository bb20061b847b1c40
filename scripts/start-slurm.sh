#!/usr/bin/env bash
# Start (or check) a single-node Slurm 22.05 cluster with accounting on localhost,
# for param_search's live Slurm tests. Debian/Ubuntu, root, no systemd needed.
#
# What it sets up (one node, `localhost`, with all its CPUs):
#   partitions  debug (default) and short (MaxTime=10): OverSubscribe=FORCE:8 (8 jobs per
#               core), PriorityTier=10 so that nothing preempts them; preemptible:
#               PriorityTier=1, PreemptMode=REQUEUE, OverSubscribe=NO; urgent: PriorityTier=10.
#               PreemptType=preempt/partition_prio, PreemptMode=REQUEUE cluster-wide: a job of
#               urgent (or debug, short) that needs a preemptible job's CPUs requeues it.
#               (Slurm 22.05: PreemptMode=OFF on a partition also turns off its FORCE
#               oversubscription, one job per core; hence the tier, not OFF, keeps debug as it
#               was. A node running debug jobs cannot take a preemptible job, nor the reverse.)
#   requeue     AuthInfo=cred_expire=10: a requeued job may start again after about 11 s
#               (Slurm's default, 120 s, would make the live requeue tests take minutes)
#   accounting  slurmdbd on a private MariaDB; AccountingStorageEnforce=limits,qos (so a job
#               needs an association: root's, account root, is ensured); QOS `limited` with
#               MaxSubmitJobsPerUser=10 (an 11th queued job is refused with
#               QOSMaxSubmitJobPerUserLimit), allowed for root beside the default `normal`
#
#   scripts/start-slurm.sh          # install if missing, start what is down, wait until ready
#   PS_SLURM_MAX_ARRAY_SIZE=11 scripts/start-slurm.sh   # change MaxArraySize (restarts slurmctld)
#   scripts/stop-slurm.sh           # stop the daemons again
#
# Idempotent: when everything is already up with the same configuration it only checks and
# prints "slurm ready (MaxArraySize=N)". Exit codes: 0 ready, 2 cannot run here (not root or
# no apt-get), 1 anything else failed (see the logs under $PS_SLURM_DIR/log).
#
# Environment:
#   PS_SLURM_MAX_ARRAY_SIZE  MaxArraySize (default 1001; the largest index is this minus one)
#   PS_SLURM_DIR             state/log/pid folder (default /var/lib/param-search-slurm)
#   PS_SLURM_DB_PORT         TCP port of the private MariaDB on 127.0.0.1 (default 3307)
set -euo pipefail

BASE=${PS_SLURM_DIR:-/var/lib/param-search-slurm}
MAX_ARRAY=${PS_SLURM_MAX_ARRAY_SIZE:-1001}
DB_PORT=${PS_SLURM_DB_PORT:-3307}
CLUSTER=pstest
CONF_DIR=/etc/slurm
SLURM_CONF_FILE=$CONF_DIR/slurm.conf
DBD_CONF_FILE=$CONF_DIR/slurmdbd.conf
DB_USER=slurm
DB_PASS=ps-slurm-test
DB_NAME=slurm_acct_db
MYCNF=$BASE/etc/my.cnf
MYSOCK=$BASE/run/mysqld/mysqld.sock
READY_TIMEOUT=60

die() { echo "start-slurm: $*" >&2; exit 1; }
cannot() { echo "start-slurm: cannot run here: $*" >&2; exit 2; }
log() { [[ -n ${PS_SLURM_QUIET:-} ]] || echo "start-slurm: $*" >&2; }

if ! [[ $MAX_ARRAY =~ ^[0-9]+$ ]] || ((MAX_ARRAY < 1)); then
    die "PS_SLURM_MAX_ARRAY_SIZE must be a positive integer, got '$MAX_ARRAY'"
fi
[[ $(id -u) -eq 0 ]] || cannot "must be run as root (it installs packages and starts daemons)"

# ---------------------------------------------------------------- install
PACKAGES=(slurm-wlm slurmdbd munge mariadb-server)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    command -v apt-get >/dev/null 2>&1 || cannot "apt-get not available and packages missing: ${missing[*]}"
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -qq >/dev/null || die "apt-get update failed"
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
        die "apt-get install ${missing[*]} failed"
fi
for c in munged munge unmunge mysqld_safe mysqladmin mariadb slurmdbd slurmctld slurmd sinfo sacct sacctmgr scontrol; do
    command -v "$c" >/dev/null 2>&1 || die "command $c not found after installing ${PACKAGES[*]}"
done

mkdir -p "$BASE"
# Serialise concurrent runs (e.g. parallel test workers). Daemons are started with 9>&- so
# they do not inherit (and hold) this lock.
exec 9>"$BASE/.start.lock"
flock -w 120 9 || die "another start-slurm.sh holds $BASE/.start.lock"

# ---------------------------------------------------------------- configuration
mem_total_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
real_memory=$((mem_total_mb * 9 / 10))
((real_memory >= 100)) || real_memory=100
ncpus=$(nproc)

render_slurm_conf() {
    cat <<EOF
# Written by param_search scripts/start-slurm.sh; rewritten when settings change.
ClusterName=$CLUSTER
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=sched_min_interval=0,batch_sched_delay=0,sched_interval=2,bf_interval=1,default_queue_depth=1000,sched_max_job_start=0
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageEnforce=limits,qos
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
AuthInfo=cred_expire=10
MaxArraySize=$MAX_ARRAY
MaxJobCount=200000
MinJobAge=300
KillWait=2
OverTimeLimit=0
InactiveLimit=0
MessageTimeout=10
SlurmctldTimeout=30
SlurmdTimeout=60
ReturnToService=2
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool/slurmd
SlurmctldPidFile=$BASE/run/slurmctld.pid
SlurmdPidFile=$BASE/run/slurmd.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$ncpus RealMemory=$real_memory State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE OverSubscribe=FORCE:8 PriorityTier=10 State=UP
PartitionName=short Nodes=localhost Default=NO MaxTime=10 OverSubscribe=FORCE:8 PriorityTier=10 State=UP
PartitionName=preemptible Nodes=localhost Default=NO MaxTime=INFINITE PriorityTier=1 PreemptMode=REQUEUE OverSubscribe=NO State=UP
PartitionName=urgent Nodes=localhost Default=NO MaxTime=INFINITE PriorityTier=10 State=UP
EOF
}

render_dbd_conf() {
    cat <<EOF
# Written by param_search scripts/start-slurm.sh
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=$DB_USER
StoragePass=$DB_PASS
StorageLoc=$DB_NAME
LogFile=$BASE/log/slurmdbd.log
PidFile=$BASE/run/slurmdbd.pid
DebugLevel=info
EOF
}

render_my_cnf() {
    cat <<EOF
# Private MariaDB instance for slurmdbd (param_search scripts/start-slurm.sh)
[mysqld]
user=mysql
datadir=$BASE/mysql
socket=$MYSOCK
pid-file=$BASE/run/mysqld/mysqld.pid
port=$DB_PORT
bind-address=127.0.0.1
skip-name-resolve
log-error=$BASE/log/mysql/mysqld.log
innodb_buffer_pool_size=64M
innodb_log_file_size=16M
innodb_lock_wait_timeout=900
max_allowed_packet=16M
[mysqld_safe]
log-error=$BASE/log/mysql/mysqld.log
pid-file=$BASE/run/mysqld/mysqld.pid
socket=$MYSOCK
[client]
socket=$MYSOCK
EOF
}

# write_if_changed FILE MODE < content: prints "changed" when the file was (re)written
write_if_changed() {
    local file=$1 mode=$2 tmp
    tmp=$(mktemp "$file.XXXXXX")
    cat >"$tmp"
    chmod "$mode" "$tmp"
    if [[ -f $file ]] && cmp -s "$tmp" "$file"; then
        rm -f "$tmp"
    else
        mv -f "$tmp" "$file"
        echo changed
    fi
}

pid_alive() { # pid_alive PIDFILE [NAME]: the pid in PIDFILE runs (and is called NAME)
    local pid
    [[ -s $1 ]] || return 1
    pid=$(tr -dc '0-9' <"$1")
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
    # A killed daemon can linger as a zombie until its parent reaps it.
    [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]] || return 1
    [[ -z ${2:-} ]] || [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$2" ]]
}

wait_for() { # wait_for SECONDS DESCRIPTION CMD...
    local secs=$1 what=$2 i
    shift 2
    for ((i = 0; i < secs * 5; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    die "timed out after ${secs}s waiting for $what (logs: $BASE/log)"
}

node_states() { sinfo -h -o %T 2>/dev/null | sort -u; }

node_ready() {
    local s ok=1
    s=$(node_states) || return 1
    [[ -n $s ]] || return 1
    while read -r line; do
        case $line in
            idle | mixed | allocated | alloc | completing) ;;
            *) ok=0 ;;
        esac
    done <<<"$s"
    ((ok))
}

running_max_array() { scontrol show config 2>/dev/null | awk -F' *= *' '$1 == "MaxArraySize" {print $2}'; }

# Root's association and the QOS `limited` (MaxSubmitJobsPerUser=10): with
# AccountingStorageEnforce=limits,qos a job without an association is refused, and root may
# use `limited` beside its default `normal`. Each step checks first, so reruns change nothing.
QOS_LIMITED=limited
QOS_MAX_SUBMIT=10

accounting_ready() {
    [[ $(sacctmgr -n -P show qos "$QOS_LIMITED" format=name,maxsubmitjobsperuser 2>/dev/null) == "$QOS_LIMITED|$QOS_MAX_SUBMIT" ]] &&
        sacctmgr -n -P show assoc cluster="$CLUSTER" user=root format=qos 2>/dev/null | grep -q "\b$QOS_LIMITED\b"
}

ready_line() { echo "slurm ready (MaxArraySize=$(running_max_array))"; }

# ---------------------------------------------------------------- fast path
mkdir -p "$CONF_DIR"
new_slurm_conf=$(render_slurm_conf)
if [[ -f $SLURM_CONF_FILE ]] && [[ $(cat "$SLURM_CONF_FILE") == "$new_slurm_conf" ]] &&
    [[ -f $DBD_CONF_FILE ]] && [[ $(cat "$DBD_CONF_FILE") == "$(render_dbd_conf)" ]] &&
    pid_alive "$BASE/run/slurmctld.pid" slurmctld && pid_alive "$BASE/run/slurmd.pid" slurmd &&
    pid_alive "$BASE/run/slurmdbd.pid" slurmdbd && node_ready && sacct -n -X -S now >/dev/null 2>&1 &&
    [[ $(running_max_array) == "$MAX_ARRAY" ]] && accounting_ready; then
    ready_line
    exit 0
fi

# ---------------------------------------------------------------- directories
mkdir -p "$BASE"/{state,spool/slurmd,log,run,etc} "$BASE/run/mysqld" "$BASE/log/mysql"
chmod 755 "$BASE"
chown mysql:mysql "$BASE/run/mysqld" "$BASE/log/mysql"

# ---------------------------------------------------------------- munge
start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return 0; fi
    log "starting munged"
    mkdir -p /etc/munge /var/log/munge /run/munge /var/lib/munge
    if [[ ! -s /etc/munge/munge.key ]]; then
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge /etc/munge/munge.key /var/log/munge /run/munge /var/lib/munge
    chmod 700 /etc/munge /var/log/munge /var/lib/munge
    chmod 755 /run/munge
    chmod 400 /etc/munge/munge.key
    # A stale pid file or socket from a dead munged makes the new one refuse to start.
    if [[ -e /run/munge/munged.pid ]] && ! pid_alive /run/munge/munged.pid munged; then
        rm -f /run/munge/munged.pid /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
    fi
    runuser -u munge -- munged --force 9>&- >>"$BASE/log/munged.start.log" 2>&1 ||
        die "munged failed to start (see $BASE/log/munged.start.log, /var/log/munge/munged.log)"
    wait_for 10 "munge" bash -c 'munge -n | unmunge'
    cp /run/munge/munged.pid "$BASE/run/munged.pid" # tells stop-slurm.sh that we started it
}

# ---------------------------------------------------------------- MariaDB (private instance)
mysql_up() { mysqladmin --defaults-file="$MYCNF" --protocol=socket -uroot ping; }

start_mysql() {
    if [[ $(write_if_changed "$MYCNF" 644 < <(render_my_cnf)) == changed ]] && mysql_up >/dev/null 2>&1; then
        log "my.cnf changed: restarting MariaDB"
        mysqladmin --defaults-file="$MYCNF" -uroot shutdown >/dev/null 2>&1 || true
    fi
    if mysql_up >/dev/null 2>&1; then return 0; fi
    if [[ ! -d $BASE/mysql/mysql ]]; then
        log "initialising MariaDB data directory $BASE/mysql"
        rm -rf "$BASE/mysql"
        mkdir -p "$BASE/mysql"
        chown mysql:mysql "$BASE/mysql"
        local install_db
        install_db=$(command -v mariadb-install-db || command -v mysql_install_db) ||
            die "mariadb-install-db not found"
        "$install_db" --defaults-file="$MYCNF" --user=mysql --skip-test-db \
            --auth-root-authentication-method=socket >"$BASE/log/mysql_install_db.log" 2>&1 ||
            die "mariadb-install-db failed (see $BASE/log/mysql_install_db.log)"
    fi
    log "starting MariaDB on 127.0.0.1:$DB_PORT"
    rm -f "$MYSOCK" "$BASE/run/mysqld/mysqld.pid"
    # mysqld_safe wants --defaults-file first.
    setsid mysqld_safe --defaults-file="$MYCNF" </dev/null 9>&- >>"$BASE/log/mysqld_safe.out" 2>&1 &
    wait_for 30 "MariaDB" mysql_up
    mariadb --defaults-file="$MYCNF" -uroot <<EOF || die "could not create the slurmdbd database user"
CREATE DATABASE IF NOT EXISTS $DB_NAME;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'localhost';
GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'127.0.0.1';
FLUSH PRIVILEGES;
EOF
}

# ---------------------------------------------------------------- slurmdbd
start_slurmdbd() {
    local changed
    changed=$(write_if_changed "$DBD_CONF_FILE" 600 < <(render_dbd_conf))
    if [[ $changed == changed ]] && pid_alive "$BASE/run/slurmdbd.pid" slurmdbd; then
        log "slurmdbd.conf changed: restarting slurmdbd"
        stop_pidfile "$BASE/run/slurmdbd.pid"
    fi
    if ! pid_alive "$BASE/run/slurmdbd.pid" slurmdbd; then
        log "starting slurmdbd"
        rm -f "$BASE/run/slurmdbd.pid"
        slurmdbd 9>&- >>"$BASE/log/slurmdbd.start.log" 2>&1 || die "slurmdbd failed (see $BASE/log/slurmdbd.log)"
    fi
    wait_for 30 "slurmdbd" sacctmgr -n list cluster
    if ! sacctmgr -n -P list cluster format=cluster 2>/dev/null | grep -qx "$CLUSTER"; then
        sacctmgr -i add cluster "$CLUSTER" >/dev/null || die "sacctmgr add cluster $CLUSTER failed"
    fi
}

setup_accounting() {
    accounting_ready && return 0
    log "setting up root's association and QOS $QOS_LIMITED (MaxSubmitJobsPerUser=$QOS_MAX_SUBMIT)"
    if [[ -z $(sacctmgr -n -P show assoc cluster="$CLUSTER" user=root format=user 2>/dev/null) ]]; then
        sacctmgr -i add user root account=root cluster="$CLUSTER" >/dev/null ||
            die "sacctmgr add user root failed"
    fi
    if [[ -z $(sacctmgr -n -P show qos "$QOS_LIMITED" format=name 2>/dev/null) ]]; then
        sacctmgr -i add qos "$QOS_LIMITED" >/dev/null || die "sacctmgr add qos $QOS_LIMITED failed"
    fi
    sacctmgr -i modify qos "$QOS_LIMITED" set MaxSubmitJobsPerUser="$QOS_MAX_SUBMIT" >/dev/null 2>&1 || true
    sacctmgr -i modify user root where cluster="$CLUSTER" set qos+="$QOS_LIMITED" defaultqos=normal >/dev/null 2>&1 || true
    accounting_ready || die "could not set up QOS $QOS_LIMITED for root (sacctmgr show qos, show assoc)"
}

stop_pidfile() { # stop_pidfile PIDFILE: SIGTERM, wait up to 10 s, then SIGKILL
    local pid i
    [[ -s $1 ]] || return 0
    pid=$(tr -dc '0-9' <"$1")
    [[ -n $pid ]] || return 0
    kill "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.2
    done
    kill -9 "$pid" 2>/dev/null || true
}

# ---------------------------------------------------------------- slurmctld / slurmd
# Write slurm.conf (the client commands, sacctmgr included, need it). Sets slurm_conf_change to
# "", "reconfigure" (only MaxArraySize differs: slurmctld restart) or "restart" (both daemons).
slurm_conf_change=""
write_slurm_conf() {
    local changed=""
    if [[ ! -f $SLURM_CONF_FILE ]] || [[ $(cat "$SLURM_CONF_FILE") != "$new_slurm_conf" ]]; then
        # Only MaxArraySize differs -> restart slurmctld only; otherwise slurmctld and slurmd.
        if [[ -f $SLURM_CONF_FILE ]] &&
            diff -q <(grep -v '^MaxArraySize=' "$SLURM_CONF_FILE") \
                <(grep -v '^MaxArraySize=' <<<"$new_slurm_conf") >/dev/null; then
            changed=reconfigure
        else
            changed=restart
        fi
        printf '%s\n' "$new_slurm_conf" >"$SLURM_CONF_FILE.tmp"
        chmod 644 "$SLURM_CONF_FILE.tmp"
        mv -f "$SLURM_CONF_FILE.tmp" "$SLURM_CONF_FILE"
    fi
    slurm_conf_change=$changed
}

start_slurm() {
    local changed=$slurm_conf_change
    if [[ $changed == restart ]]; then
        pid_alive "$BASE/run/slurmd.pid" slurmd && log "slurm.conf changed: restarting slurmd" &&
            stop_pidfile "$BASE/run/slurmd.pid"
        pid_alive "$BASE/run/slurmctld.pid" slurmctld && log "slurm.conf changed: restarting slurmctld" &&
            stop_pidfile "$BASE/run/slurmctld.pid"
    fi

    if ! pid_alive "$BASE/run/slurmctld.pid" slurmctld; then
        log "starting slurmctld"
        rm -f "$BASE/run/slurmctld.pid"
        # -i: ignore unreadable state files instead of refusing to start.
        slurmctld -i 9>&- >>"$BASE/log/slurmctld.start.log" 2>&1 ||
            die "slurmctld failed (see $BASE/log/slurmctld.log)"
    elif [[ $changed == reconfigure ]]; then
        # Slurm 22.05: after `scontrol reconfigure` the new MaxArraySize shows in
        # `scontrol show config` but sbatch keeps being checked against the old limit
        # ("Invalid job array specification"), so restart slurmctld (jobs survive it).
        log "MaxArraySize changed: restarting slurmctld"
        stop_pidfile "$BASE/run/slurmctld.pid"
        rm -f "$BASE/run/slurmctld.pid"
        slurmctld -i 9>&- >>"$BASE/log/slurmctld.start.log" 2>&1 ||
            die "slurmctld failed (see $BASE/log/slurmctld.log)"
    fi
    wait_for 30 "slurmctld" scontrol ping

    if ! pid_alive "$BASE/run/slurmd.pid" slurmd; then
        log "starting slurmd"
        rm -f "$BASE/run/slurmd.pid"
        slurmd -N localhost 9>&- >>"$BASE/log/slurmd.start.log" 2>&1 || die "slurmd failed (see $BASE/log/slurmd.log)"
    fi
}

wait_node_ready() {
    local i s
    for ((i = 0; i < READY_TIMEOUT * 5; i++)); do
        node_ready && return 0
        s=$(node_states | tr '\n' ' ')
        # After a crash or an unclean stop the node can come back down/drained: resume it.
        if [[ $s == *down* || $s == *drain* || $s == *fail* ]] && ((i % 10 == 5)); then
            scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true
        fi
        sleep 0.2
    done
    die "node not ready after ${READY_TIMEOUT}s (sinfo says: $(node_states | tr '\n' ' ')); logs: $BASE/log"
}

write_slurm_conf
start_munge
start_mysql
start_slurmdbd
setup_accounting
start_slurm
wait_node_ready
wait_for 30 "sacct" sacct -n -X -S now
for ((i = 0; i < 50; i++)); do
    [[ $(running_max_array) == "$MAX_ARRAY" ]] && break
    sleep 0.2
done
[[ $(running_max_array) == "$MAX_ARRAY" ]] ||
    die "MaxArraySize in force is $(running_max_array), wanted $MAX_ARRAY"
ready_line
