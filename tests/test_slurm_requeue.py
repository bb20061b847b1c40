"""Preemption, requeue and submit limits on the live local Slurm (scripts/start-slurm.sh sets
up the partitions preemptible and urgent, a requeue delay of about 11 s, and QOS limited).

A requeued job must stay one attempt that is never final in between, resume from its own
checkpoint, and never run twice at once. Run with ``./scripts/test.sh -m slurm``.
"""
import subprocess
import time

import pytest

import param_search as ps
from conftest import fail_or_skip, until, wait_jobs

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm")]

#: Counts to {steps}, one step a second, keeping the count in its checkpoint folder; says
#: where each run began, so the output shows whether it resumed or started over.
COUNTER = """\
[ -d "$PS_CHECKPOINT_DIR" ] || exit 3
n=$(cat "$PS_CHECKPOINT_DIR/n" 2>/dev/null || echo 0)
echo "run $PS_RESTART_COUNT from $n"
while [ "$n" -lt {steps} ]; do
    sleep 1
    n=$((n + 1))
    echo "$n" > "$PS_CHECKPOINT_DIR/n.tmp" && mv "$PS_CHECKPOINT_DIR/n.tmp" "$PS_CHECKPOINT_DIR/n"
done
echo "done at $n"
"""


def _needs(partition):
    found = subprocess.run(["sinfo", "-h", "-p", partition, "-o", "%P"], capture_output=True, text=True)
    if not found.stdout.strip():
        fail_or_skip(f"no Slurm partition {partition!r}: run scripts/start-slurm.sh (as root) again")


def _count(job_dir):
    try:
        return int((job_dir / "checkpoint" / "n").read_text())
    except (FileNotFoundError, ValueError):
        return 0


def _status_lines(job_dir):
    return [line.split() for line in (job_dir / "job.1.status").read_text().splitlines()]


def _one_run_at_a_time(lines):
    """Each run (start or restart line) begins after the previous one's exit line."""
    kinds = [fields[0] for fields in lines]
    assert kinds[0] == "start" and kinds[-1] == "exit"
    assert all(a != b for a, b in zip(kinds, kinds[1:])), kinds   # run, exit, run, exit, ...
    times = [float(f[1] if f[0] == "start" else f[2]) for f in lines]
    assert times == sorted(times), lines


def _never_final_before_the_end(seen, restarts):
    """What ps.status showed: pending or running until the end, restarts never going back."""
    assert all(state in ("PENDING", "RUNNING") for state, _ in seen[:-1]), seen
    assert seen[-1] == ("COMPLETED", restarts), seen
    counts = [n for _, n in seen]
    assert counts == sorted(counts), seen


def _watch(jobs, timeout=180):
    """Poll ps.status until the job is final; return every (state, restarts) it showed."""
    seen, deadline = [], time.time() + timeout
    while True:
        row = ps.status(jobs).iloc[0]
        if not seen or seen[-1] != (row.job_state, row.restarts):
            seen.append((row.job_state, int(row.restarts)))
        if row.job_state in ps.JobState.__members__ and ps.JobState(row.job_state).is_final:
            return seen
        assert time.time() < deadline, f"still {seen[-1]} after {timeout} s: {seen}"
        time.sleep(0.3)


def test_a_preempted_job_resumes_from_its_checkpoint_and_completes_once(in_tmp, command_log):
    _needs("preemptible")
    _needs("urgent")
    jobs = ps.submit(COUNTER, "count_{steps}", ps.ParamSpace(steps=[8]), use="slurm",
                     partition="preemptible", requeue=True)
    assert "--requeue --signal=B:USR1@60" in command_log("sbatch")[-1]
    job_dir = in_tmp / "count_8"
    urgent = None
    try:
        until(lambda: _count(job_dir) >= 2, timeout=120)
        urgent = subprocess.run(["sbatch", "--parsable", "-p", "urgent", "--exclusive", "-o", "/dev/null",
                                 "--wrap", "sleep 1"], capture_output=True, text=True, check=True).stdout.strip()
        seen = _watch(jobs)
    finally:
        if urgent:
            subprocess.run(["scancel", urgent.split(";")[0]], capture_output=True)
        if not ps.JobState(ps.status(jobs).job_state[0]).is_final:
            ps.cancel(jobs)
    row = ps.load(in_tmp).iloc[0]
    assert (row.job_state, row.attempt, row.exit_code) == ("COMPLETED", 1, 0)
    lines = _status_lines(job_dir)
    restarts = [fields for fields in lines if fields[0] == "restart"]
    # 1 on a quiet cluster; a job of another user's in debug (a higher tier) may preempt it again
    assert row.restarts == len(restarts) >= 1 and int(restarts[-1][1]) == row.restarts
    assert lines[1][0] == "exit" and lines[1][3] == "TERM"     # the preempted run was stopped
    _one_run_at_a_time(lines)
    out = row.stdout.splitlines()
    assert out[0] == "run 0 from 0" and out[-1] == "done at 8"
    resumed = [line for line in out if line.startswith("run ") and line != "run 0 from 0"]
    assert resumed and all(int(line.split()[-1]) >= 2 for line in resumed), out   # not from 0
    _never_final_before_the_end(seen, row.restarts)


def test_scontrol_requeue_of_a_running_job_continues_the_same_attempt(in_tmp, command_log):
    jobs = ps.submit(COUNTER, "count_{steps}", ps.ParamSpace(steps=[5, 6]), use="slurm")
    assert "--requeue" not in command_log("sbatch")[-1]     # without requeue=True: as before
    requeued, other = in_tmp / "count_5", in_tmp / "count_6"
    try:
        until(lambda: _count(requeued) >= 2, timeout=120)
        subprocess.run(["scontrol", "requeue", jobs.job_id[0]], check=True)
        seen = _watch(jobs.iloc[[0]])
        done = wait_jobs(jobs)
    finally:
        if not all(ps.JobState(s).is_final for s in ps.status(jobs).job_state):
            ps.cancel(jobs)
    assert list(done.job_state) == ["COMPLETED", "COMPLETED"] and list(done.attempt) == [1, 1]
    assert list(done.restarts) == [1, 0]
    assert ("PENDING", 1) in seen                             # requeued: pending, never final
    _never_final_before_the_end(seen, 1)
    _one_run_at_a_time(_status_lines(requeued))
    out = done.stdout[0].splitlines()
    assert out[0] == "run 0 from 0" and out[-1] == "done at 5" and out[1].startswith("run 1 from ")
    assert int(out[1].split()[-1]) >= 2
    assert done.stdout[1].splitlines() == ["run 0 from 0", "done at 6"]
    assert [f[0] for f in _status_lines(other)] == ["start", "exit"]


def test_qos_limited_refuses_an_eleventh_queued_job():
    """The set-up only (holding jobs back under such a limit is built on top of it)."""
    qos = subprocess.run(["sacctmgr", "-n", "-P", "show", "qos", "limited", "format=name,maxsubmitjobsperuser"],
                         capture_output=True, text=True)
    if qos.stdout.strip() != "limited|10":
        fail_or_skip("no QOS limited with MaxSubmitJobsPerUser=10: run scripts/start-slurm.sh (as root) again")
    mine, refusal = [], None
    try:
        for _ in range(11):
            done = subprocess.run(["sbatch", "--parsable", "--qos=limited", "--hold", "-o", "/dev/null",
                                   "--wrap", "true"], capture_output=True, text=True)
            if done.returncode:
                refusal = done.stderr
                break
            mine.append(done.stdout.strip().split(";")[0])
        queued = subprocess.run(["squeue", "-h", "-u", "root", "-q", "limited", "-o", "%i"],
                                capture_output=True, text=True, check=True).stdout.split()
    finally:
        if mine:
            subprocess.run(["scancel", *mine], capture_output=True)
    assert refusal is not None and "QOSMaxSubmitJobPerUserLimit" in refusal, refusal
    assert len(queued) == 10 and set(mine) <= set(queued)
    plain = subprocess.run(["sbatch", "--parsable", "-o", "/dev/null", "--wrap", "true"],
                           capture_output=True, text=True)
    assert plain.returncode == 0, plain.stderr                # the default QOS is not limited
