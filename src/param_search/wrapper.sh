#!/bin/bash
# param_search job wrapper: runs one attempt of one job at most once and records its outcome
# in the job's directory, whatever queue started it.
#
#   wrapper.sh JOB_DIR ATTEMPT MODE    run one job; MODE "source" runs job.sh in a subshell of
#                                      this bash (under the local worker, mostly in this bash
#                                      itself: below), "exec" runs it by its own #! interpreter
#   wrapper.sh @MAPFILE                run line $TASK_INDEX of MAPFILE ("JOB_DIR<tab>ATTEMPT<tab>MODE"),
#                                      TASK_INDEX from SLURM_ARRAY_TASK_ID, SGE_TASK_ID or PBS_ARRAYID
#   wrapper.sh --worker                the local queue's worker: reads such lines on stdin, runs each
#                                      job in its own process group, prints "S <pid>" at its start
#                                      and "E <pid> <status>" at its end
#
# Files written in JOB_DIR for attempt N (three, as file creation is what costs on NFS/Lustre):
#   job.N.status  line 1 "start <epoch> <pid> <proc start ticks> <host> <scheduler job id>", written
#                 into a file created exclusively: this is the claim that makes a second copy of
#                 the same attempt exit untouched; "restart <count> <epoch> <pid> <ticks> <host>"
#                 when a requeued run takes the attempt over (below); at the end of each run,
#                 "exit <exit code> <epoch> [signal]"
#   job.N.out     the job's stdout        job.N.err   the job's stderr (a restart appends)
#   checkpoint/   a folder for the job's own checkpoints, kept across runs and attempts
#
# The job sees PS_RESTART_COUNT (0, or the scheduler's restart count of a run that took the
# attempt over) and PS_CHECKPOINT_DIR (that folder). TERM, INT and USR1 sent to this shell
# are forwarded to the job's process group when this shell leads it, as under a scheduler or
# the local worker (else to the job's process only); the job may also get TERM from the
# scheduler itself: its handler should not mind a second one. The job starts with USR1
# ignored, so that the warning reaches only processes that handle it (a Python signal
# handler, or a trap in a sourced script), never ending a shell or a pipe's tee by default.
# The exit line's signal field names the last signal that arrived: TERM or INT record 143
# or 130 (the run was stopped from outside); USR1 (a scheduler's warning before the end,
# e.g. sbatch --signal=B:USR1@60) records the job's own exit code: the job decides. Under a
# scheduler, a run that ends non-zero with no signal yet waits up to a quarter second for one
# still on its way to this shell (a scheduler may signal the job's processes before it).
#
# Under the local worker (no scheduler there requeues a job or warns it with USR1), a
# sourced job.sh whose text mentions neither "trap" nor "exec" runs in this shell itself,
# saving a fork per job. This shell leads the job's process group, which the local queue's
# cancel signals as a whole, so every process of the job gets TERM at once. Bash runs this
# shell's handler once the command in the foreground has ended (so that command, if it
# handles TERM, finishes its handler first; a signal sent to this shell alone waits for
# that command too): it forwards the signal to the group, as above, and exits recording
# 143 TERM or 130 INT. USR1 stays ignored and is not recorded. A job that sets traps of
# its own or replaces its shell (exec) would take the handlers or the exit line from this
# shell: it runs in a subshell, as everywhere else. The check reads job.sh's own text: a
# false match only costs the fork, but a trap or exec in a file that job.sh sources is not
# seen: such a TERM handler decides the exit code, and after such an EXIT trap or exec
# there is no exit line (the runner then goes by the worker's "E" status).
#
# Exactly once across requeues. A scheduler may run the same job again under the same id
# (Slurm's requeue: preemption, scontrol requeue, a failed node), with SLURM_RESTART_COUNT
# set > 0. Such a run finds the attempt claimed; it takes it over, appending its restart line,
# only if all of these hold (otherwise it exits untouched, as any second copy does):
#   1. its restart count is > 0, and the start line names its own scheduler job id (a copy
#      of the attempt sent twice has another id);
#   2. no earlier run took over with this count or a later one (each run takes over once);
#   3. the last run did not end by itself: it has no exit line (killed, or its node failed)
#      or its exit line carries a signal (it was stopped from outside). A run that finished
#      its job is never followed by another, even if the scheduler requeues a finished job;
#   4. the last run is not alive, if it ran on this host (pid and start ticks). The scheduler
#      starts a requeued run only after the last one ended, or after declaring its node
#      down: a node cut off from the controller but still running is the one case this
#      check cannot see from another host.
# So two runs never overlap (Slurm runs one run of a job id at a time, and 4.), and once a
# run ends by itself, no run follows (3.). Readers take the last start or restart line as
# the current run and ignore exit lines before it: a stopped run's exit is superseded.

_ps_run() {
    cd "$1" || exit 97
    _ps_a=$2
    read -r -a _ps_st < "/proc/$BASHPID/stat" 2> /dev/null
    _ps_sched=${SLURM_ARRAY_JOB_ID:+${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}}
    if [[ -z $_ps_sched && -n ${SGE_TASK_ID:-} && $SGE_TASK_ID != undefined ]]; then
        _ps_sched=$JOB_ID.$SGE_TASK_ID   # a Grid Engine array task
    fi
    _ps_sched=${_ps_sched:-${SLURM_JOB_ID:-${JOB_ID:-${PBS_JOBID:-}}}}
    _ps_status=$PWD/job.$_ps_a.status
    _ps_restart=0 _ps_open='>'
    set -C
    if ! { printf 'start %s %s %s %s %s\n' "${EPOCHREALTIME:-$(date +%s)}" "$BASHPID" "${_ps_st[21]:-0}" \
        "${HOSTNAME:-?}" "$_ps_sched" > "job.$_ps_a.status"; } 2> /dev/null; then
        set +C
        _ps_take_over || exit 0
        _ps_open='>>'
    fi
    set +C
    export PS_RESTART_COUNT=$_ps_restart PS_CHECKPOINT_DIR=$PWD/checkpoint
    [[ -d $PS_CHECKPOINT_DIR ]] || mkdir -p "$PS_CHECKPOINT_DIR"   # made at set-up; not in older folders
    _ps_finish() {
        [[ -n $_ps_done ]] && return
        _ps_done=1
        printf 'exit %s %s %s\n' "$1" "${EPOCHREALTIME:-$(date +%s)}" "$2" >> "$_ps_status"
    }
    _ps_forward() {
        _ps_sig=$1 _ps_trapped=1
        if [[ ${_ps_st[4]:-} == "$BASHPID" ]]; then   # we lead the job's process group:
            trap '' "$1"                              # signal it all, but not this shell
            kill "-$1" 0 2> /dev/null
            trap "_ps_forward $1" "$1"
        elif [[ -n ${_ps_child:-} ]]; then            # started from someone's shell: the job only
            kill "-$1" "$_ps_child" 2> /dev/null
        fi
    }
    _ps_sig= _ps_child= _ps_done=
    trap '_ps_forward TERM' TERM
    trap '_ps_forward INT' INT
    trap '_ps_forward USR1' USR1
    trap '_ps_finish $? "$_ps_sig"' EXIT
    if [[ $_ps_open == '>' ]]; then
        exec > "job.$_ps_a.out" 2> "job.$_ps_a.err" < /dev/null
    else
        exec >> "job.$_ps_a.out" 2>> "job.$_ps_a.err" < /dev/null
    fi
    if [[ $3 == exec ]]; then   # USR1 ignored unless the job handles it (see the header)
        (trap '' USR1; exec ./job.sh) &
    elif [[ -n $_ps_local ]] && mapfile -t _ps_text < job.sh 2> /dev/null &&
        [[ ${_ps_text[*]} != *trap* && ${_ps_text[*]} != *exec* ]]; then
        # the local worker's job runs in this shell (see the header)
        trap '_ps_forward TERM; exit 143' TERM
        trap '_ps_forward INT; exit 130' INT
        trap '' USR1
        unset _ps_text
        set --
        . ./job.sh
        _ps_code=$?
        _ps_finish "$_ps_code" "$_ps_sig"
        exit "$_ps_code"
    else
        (trap '' USR1; set --; . ./job.sh) &
    fi
    _ps_child=$!
    while :; do   # a trapped signal interrupts wait: wait again until the job has ended
        _ps_trapped=
        wait "$_ps_child"
        _ps_code=$?
        [[ -n $_ps_trapped ]] || break
    done
    if [[ -z $_ps_local && -z $_ps_sig && $_ps_code != 0 ]]; then
        # A scheduler may stop a job by signalling its processes one by one, this shell last
        # (Slurm's linuxproc tracking): the job can end, or run on to a failure, before this
        # shell's TERM arrives. A moment for it; the trap cuts the wait short.
        sleep 0.25 &
        wait "$!"
        kill "$!" 2> /dev/null
    fi
    case $_ps_sig in
        TERM) _ps_code=143 ;;
        INT) _ps_code=130 ;;
    esac
    _ps_finish "$_ps_code" "$_ps_sig"
    exit "$_ps_code"
}

# Whether this run continues the attempt as a requeued run of the job that claimed it (see
# the header); if so, appends its restart line and sets _ps_restart.
_ps_take_over() {
    local count=${SLURM_RESTART_COUNT:-0} fields claimant= last=0 pid= ticks= host= ended= signal= stat
    [[ $count =~ ^[0-9]+$ ]] && ((count > 0)) && [[ -n $_ps_sched ]] || return 1
    while read -r -a fields; do
        case ${fields[0]} in
            start) claimant=${fields[5]:-} pid=${fields[2]} ticks=${fields[3]} host=${fields[4]} ended= signal= ;;
            restart) last=${fields[1]} pid=${fields[3]} ticks=${fields[4]} host=${fields[5]} ended= signal= ;;
            exit) ended=1 signal=${fields[3]:-} ;;
        esac
    done < "$_ps_status"
    [[ $claimant == "$_ps_sched" ]] || return 1                 # 1.
    [[ $last =~ ^[0-9]+$ ]] && ((last < count)) || return 1     # 2.
    [[ -z $ended || -n $signal ]] || return 1                   # 3.
    if [[ $host == "${HOSTNAME:-?}" && $pid =~ ^[0-9]+$ ]] &&   # 4.
        read -r -a stat 2> /dev/null < "/proc/$pid/stat" &&
        [[ ${stat[2]} != [ZX] && ${stat[21]} == "$ticks" ]]; then
        return 1
    fi
    printf 'restart %s %s %s %s %s\n' "$count" "${EPOCHREALTIME:-$(date +%s)}" "$BASHPID" "${_ps_st[21]:-0}" \
        "${HOSTNAME:-?}" >> "$_ps_status" || return 1
    _ps_restart=$count
}

_ps_local=
if [[ $1 == --worker ]]; then
    set -m
    _ps_local=1
    while IFS=$'\t' read -r _ps_d _ps_n _ps_m; do
        _ps_run "$_ps_d" "$_ps_n" "$_ps_m" < /dev/null &
        _ps_p=$!
        echo "S $_ps_p"
        wait "$_ps_p"
        echo "E $_ps_p $?"
    done
    exit 0
fi
if [[ $1 == @* ]]; then
    _ps_i=${SLURM_ARRAY_TASK_ID:-${SGE_TASK_ID:-${PBS_ARRAYID:-0}}}
    [[ $_ps_i == undefined ]] && _ps_i=0
    [[ -n $SGE_TASK_ID && $SGE_TASK_ID != undefined ]] && _ps_i=$((_ps_i - 1))   # SGE counts from 1
    mapfile -t -s "$_ps_i" -n 1 _ps_line < "${1#@}" || exit 96
    IFS=$'\t' read -r _ps_d _ps_n _ps_m <<< "${_ps_line[0]}"
    set -- "$_ps_d" "$_ps_n" "$_ps_m"
fi
_ps_run "$1" "$2" "$3"
