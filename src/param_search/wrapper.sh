#!/bin/bash
# param_search job wrapper: runs one attempt of one job at most once and records its outcome
# in the job's directory, whatever queue started it.
#
#   wrapper.sh JOB_DIR ATTEMPT MODE    run one job; MODE "source" runs job.sh in a subshell of
#                                      this bash, "exec" runs it by its own #! interpreter
#   wrapper.sh @MAPFILE                run line $TASK_INDEX of MAPFILE ("JOB_DIR<tab>ATTEMPT<tab>MODE"),
#                                      TASK_INDEX from SLURM_ARRAY_TASK_ID, SGE_TASK_ID or PBS_ARRAYID
#   wrapper.sh --worker                the local queue's worker: reads such lines on stdin, runs each
#                                      job in its own process group, prints "S <pid>" at its start
#                                      and "E <pid> <status>" at its end
#
# Files written in JOB_DIR for attempt N (three, as file creation is what costs on NFS/Lustre):
#   job.N.status  line 1 "start <epoch> <pid> <proc start ticks> <host> <scheduler job id>", written
#                 into a file created exclusively: this is the claim that makes a second copy of
#                 the same attempt exit untouched; line 2, appended at the end,
#                 "exit <exit code> <epoch> [signal]"
#   job.N.out     the job's stdout        job.N.err   the job's stderr

_ps_run() {
    cd "$1" || exit 97
    _ps_a=$2
    read -r -a _ps_st < "/proc/$BASHPID/stat" 2> /dev/null
    _ps_sched=${SLURM_ARRAY_JOB_ID:+${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}}
    if [[ -z $_ps_sched && -n ${SGE_TASK_ID:-} && $SGE_TASK_ID != undefined ]]; then
        _ps_sched=$JOB_ID.$SGE_TASK_ID   # a Grid Engine array task
    fi
    _ps_sched=${_ps_sched:-${SLURM_JOB_ID:-${JOB_ID:-${PBS_JOBID:-}}}}
    set -C
    { printf 'start %s %s %s %s %s\n' "${EPOCHREALTIME:-$(date +%s)}" "$BASHPID" "${_ps_st[21]:-0}" \
        "${HOSTNAME:-?}" "$_ps_sched" > "job.$_ps_a.status"; } 2> /dev/null || exit 0
    set +C
    _ps_status=$PWD/job.$_ps_a.status
    _ps_finish() {
        [[ -n $_ps_done ]] && return
        _ps_done=1
        printf 'exit %s %s %s\n' "$1" "${EPOCHREALTIME:-$(date +%s)}" "$2" >> "$_ps_status"
    }
    _ps_signal() {
        [[ -n $_ps_child ]] && kill "-$1" "$_ps_child" 2> /dev/null && wait "$_ps_child"
        _ps_finish "$2" "$1"
        exit "$2"
    }
    trap '_ps_signal TERM 143' TERM
    trap '_ps_signal INT 130' INT
    trap '_ps_signal USR1 138' USR1
    trap '_ps_finish $?' EXIT
    exec > "job.$_ps_a.out" 2> "job.$_ps_a.err" < /dev/null
    if [[ $3 == exec ]]; then
        ./job.sh &
        _ps_child=$!
        wait "$_ps_child"
        exit
    fi
    set --
    . ./job.sh
}

if [[ $1 == --worker ]]; then
    set -m
    while IFS= read -r _ps_line; do
        IFS=$'\t' read -r _ps_d _ps_n _ps_m <<< "$_ps_line"
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
