#!/bin/bash
# param_search job wrapper: runs one attempt of one job at most once and records its outcome
# in the job's directory, whatever queue started it.
#
#   wrapper.sh JOB_DIR ATTEMPT MODE    run one job; MODE "source" runs job.sh in a bash subshell,
#                                      "exec" runs it by its own #! interpreter
#   wrapper.sh @MAPFILE                run line $TASK_INDEX of MAPFILE ("JOB_DIR<tab>ATTEMPT<tab>MODE"),
#                                  TASK_INDEX from SLURM_ARRAY_TASK_ID, SGE_TASK_ID or PBS_ARRAYID
#
# Files written in JOB_DIR for attempt N:
#   job.N.start  "<epoch> <pid> <proc start ticks> <host> <scheduler job id>"  (created exclusively:
#                this is the claim that makes a second copy of the same attempt exit untouched)
#   job.N.out    the job's stdout        job.N.err   the job's stderr
#   job.N.exit   "<exit code> <epoch> [signal]"
if [[ $1 == @* ]]; then
    index=${SLURM_ARRAY_TASK_ID:-${SGE_TASK_ID:-${PBS_ARRAYID:-0}}}
    [[ -n $SGE_TASK_ID ]] && index=$((index - 1))   # SGE tasks count from 1
    mapfile -t -s "$index" -n 1 line < "${1#@}" || exit 96
    IFS=$'\t' read -r job_dir attempt mode <<< "${line[0]}"
    set -- "$job_dir" "$attempt" "$mode"
fi
cd "$1" || exit 97
a=$2
set -C
{ : > "job.$a.start"; } 2> /dev/null || exit 0
set +C
read -r -a st < /proc/$$/stat 2> /dev/null
printf '%s %s %s %s %s\n' "${EPOCHREALTIME:-$(date +%s)}" "$$" "${st[21]:-0}" "${HOSTNAME:-?}" \
    "${SLURM_ARRAY_JOB_ID:+${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}}" >> "job.$a.start"
finish() {
    printf '%s %s %s\n' "$1" "${EPOCHREALTIME:-$(date +%s)}" "$2" > "job.$a.exit"
}
on_signal() {
    kill "-$1" "$child" 2> /dev/null
    wait "$child"
    finish "$2" "$1"
    exit "$2"
}
trap 'on_signal TERM 143' TERM
trap 'on_signal INT 130' INT
trap 'on_signal USR1 138' USR1
if [[ $3 == exec ]]; then
    ./job.sh > "job.$a.out" 2> "job.$a.err" < /dev/null &
else
    ( . ./job.sh ) > "job.$a.out" 2> "job.$a.err" < /dev/null &
fi
child=$!
wait "$child"
code=$?
finish "$code"
exit "$code"
