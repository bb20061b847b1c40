"""Integration tests against the live local Slurm cluster (scripts/start-slurm.sh).

Run them alone with ``./scripts/test.sh -m slurm``. They skip without a cluster, except
under CI=true, where a missing cluster fails them.
"""
import glob
import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import param_search as ps
import test_seed
from conftest import KILL_CONTROLLER, kill_during_submit_then_rerun, until, wait_jobs

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm")]


@pytest.fixture(scope="module", autouse=True)
def timeout_job(tmp_path_factory, slurm):
    """A job that overruns its 1-minute limit, submitted first so the wait overlaps other tests."""
    work_dir = tmp_path_factory.mktemp("timeout")
    script = "echo working\nsleep 300\n"
    return ps.submit(script, "overrun_{x}", ps.ParamSpace(x=[1]), use="slurm", work_dir=work_dir,
                     time="0:01:00")


@pytest.fixture(scope="module", autouse=True)
def retried_timeout(tmp_path_factory, slurm):
    """Jobs that overrun a 1-minute limit but fit in 2, under a policy doubling the time on
    TIMEOUT, submitted first so their wait overlaps the other tests."""
    work_dir = tmp_path_factory.mktemp("retried")
    policy = ps.Retry(max_attempts=3, on={"TIMEOUT": {"time": 2.0}}, max_time="0:05:00")
    script = "echo attempt $(ls job.*.status | wc -l)\nsleep 100\necho done\n"
    return ps.submit(script, "overrun_{x}", ps.ParamSpace(x=[1, 2]), use="slurm", work_dir=work_dir,
                     time="0:01:00", retry=policy)


SEED_TEMPLATE = test_seed.template   # the original README's template, as written


def test_seed_example_on_slurm(in_tmp, command_log):
    param_space = ps.ParamSpace(term1=range(4), term2=range(4))
    jobs = ps.submit(SEED_TEMPLATE, 'job_{term1}_{term2}', param_space, use='slurm')
    assert len(command_log("sbatch")) == 1 and "--array=0-15" in command_log("sbatch")[0]
    assert set(jobs.job_state) <= {"PENDING", "RUNNING", "COMPLETED"}
    assert jobs.job_id.str.match(r"^\d+_\d+$").all()
    jobs = wait_jobs(jobs)
    assert set(jobs.job_state) == {"COMPLETED"}
    status = ps.status(jobs)
    assert status.iloc[0].stdout.strip() == str(in_tmp / "job_0_0")
    assert "ZeroDivisionError" in status.iloc[0].stderr
    assert status.iloc[0].error == "ZeroDivisionError: division by zero"
    metrics = ps.metrics(jobs)
    assert list(metrics["product"]) == [a * b for a in range(4) for b in range(4)]
    assert metrics["quotient"].isna().sum() == 4
    assert not list(in_tmp.rglob("*.stdout")) and not list(in_tmp.rglob("slurm-*.out"))
    fig = ps.plot(metrics, x=['term1', 'term2'], y=['product', 'quotient'])
    assert len(fig.get_axes()) == 4


def test_failed_cancelled_and_resubmitted(in_tmp):
    script = textwrap.dedent("""\
        #!/bin/bash
        if [ {kind} = fail ]; then echo 'RuntimeError: boom' >&2; exit 1; fi
        if [ {kind} = slow ]; then sleep 120; fi
        echo ok
    """)
    jobs = ps.submit(script, "job_{kind}", ps.ParamSpace(kind=["ok", "fail", "slow"]), use="slurm")
    deadline = time.time() + 60
    while ps.status(jobs).job_state.iloc[2] != "RUNNING" and time.time() < deadline:
        time.sleep(0.5)
    cancelled = ps.cancel(jobs.iloc[[2]])
    assert list(cancelled.job_state) == ["CANCELLED"]
    jobs = wait_jobs(jobs)
    assert list(jobs.job_state) == ["COMPLETED", "FAILED", "CANCELLED"]
    assert jobs.iloc[1].exit_code == 1 and jobs.iloc[1].error == "RuntimeError: boom"
    assert jobs.iloc[2].error == "cancelled"
    again = ps.resubmit(jobs, states=["FAILED"])
    assert list(again.attempt) == [1, 2, 1]
    again = wait_jobs(again)
    assert list(again.job_state) == ["COMPLETED", "FAILED", "CANCELLED"]
    assert os.path.exists(in_tmp / "job_fail" / "job.2.err")
    with pytest.raises(ps.ParamSearchError, match="cannot resubmit jobs in state PENDING"):
        ps.resubmit(jobs, states=["PENDING"])


def test_status_and_wait_make_one_squeue_and_one_sacct_call_per_refresh(in_tmp, command_log):
    jobs = ps.submit("sleep 1\nexit {i}\n", "job_{i}", ps.ParamSpace(i=range(40)), use="slurm",
                     max_running=10)
    before = len(command_log())
    ps.status(jobs)
    calls = command_log()[before:]
    assert len([c for c in calls if c.startswith("squeue")]) <= 1
    assert len([c for c in calls if c.startswith("sacct")]) <= 1
    start = len(command_log())
    done = wait_jobs(jobs)
    polls = command_log()[start:]
    squeues = [c for c in polls if c.startswith("squeue")]
    saccts = [c for c in polls if c.startswith("sacct")]
    assert len(saccts) <= len(squeues) + 1
    assert list(done.exit_code) == list(range(40))
    assert list(done.job_state) == ["COMPLETED"] + ["FAILED"] * 39


def test_held_jobs_show_their_pending_reason_then_run_when_released(in_tmp, command_log):
    jobs = ps.submit("echo hi\n", "job_{i}", ps.ParamSpace(i=range(6)), use="slurm",
                     extra_args=["--hold"])
    before = len(command_log())
    table = ps.status(jobs)
    assert [c.split()[0] for c in command_log()[before:]] == ["squeue"]
    assert set(table.job_state) == {"PENDING"} and set(table.reason) == {"JobHeldUser"}
    assert list(ps.load(in_tmp).reason) == ["JobHeldUser"] * 6   # recorded in the index
    subset = ps.status(jobs.iloc[[4, 1]])
    assert list(subset.job_name) == ["job_4", "job_1"] and list(subset.reason) == ["JobHeldUser"] * 2
    subprocess.run(["scontrol", "release", jobs.job_id[0].split("_")[0]], check=True)
    done = wait_jobs(jobs)
    assert set(done.job_state) == {"COMPLETED"} and done.reason.isna().all()
    assert (done.stdout == "hi\n").all() and done.node.notna().all() and done.started.notna().all()


def test_sbatch_rejection_quotes_slurm_and_records_nothing(in_tmp):
    with pytest.raises(ps.QueueError, match="invalid partition specified: nosuch"):
        ps.submit("true", "job_{i}", ps.ParamSpace(i=range(3)), use="slurm", partition="nosuch")
    jobs = ps.load(".")
    assert set(jobs.job_state) == {"NEW"} and set(jobs.attempt) == {0} and jobs.job_id.isna().all()
    jobs = ps.submit("true", "job_{i}", ps.ParamSpace(i=range(3)), use="slurm")
    assert set(wait_jobs(jobs).job_state) == {"COMPLETED"} and set(jobs.attempt) == {1}


def test_jobs_with_different_resources_go_in_separate_arrays(in_tmp, command_log):
    script = "#!/bin/bash\n#SBATCH --cpus-per-task={cpus}\necho cpus=$SLURM_CPUS_PER_TASK\n"
    jobs = ps.submit(script, "job_{cpus}_{i}", ps.ParamSpace(cpus=[1, 2], i=range(3)), use="slurm")
    sbatch = command_log("sbatch")
    assert len(sbatch) == 2
    assert "--cpus-per-task=1" in sbatch[0] and "--cpus-per-task=2" in sbatch[1]
    jobs = wait_jobs(jobs)
    assert list(jobs.stdout) == ["cpus=1\n"] * 3 + ["cpus=2\n"] * 3


def test_one_sbatch_per_job_without_arrays(in_tmp, command_log):
    jobs = ps.submit("echo {i}", "job_{i}", ps.ParamSpace(i=range(4)), use="slurm", array=False)
    assert len(command_log("sbatch")) == 4 and not any("--array" in c for c in command_log("sbatch"))
    assert jobs.job_id.str.isdigit().all()
    assert list(wait_jobs(jobs).stdout) == ["0\n", "1\n", "2\n", "3\n"]


def _fault_shim(command_log, name, body):
    shim = command_log.shims / name
    real = shim.read_text().splitlines()[-1]   # the exec line of the logging shim
    shim.write_text(f"#!/bin/bash\necho \"{name} $*\" >> {command_log.log}\n{body}\n{real}\n")


def test_transient_sbatch_refusals_are_retried_then_reported(in_tmp, command_log):
    counter = command_log.shims / "refusals"
    _fault_shim(command_log, "sbatch", textwrap.dedent(f"""\
        n=$(cat {counter} 2>/dev/null || echo 0); echo $((n + 1)) > {counter}
        if [ "$n" -lt 2 ]; then
            echo 'sbatch: error: Batch job submission failed: Socket timed out on send/recv operation' >&2
            exit 1
        fi"""))
    jobs = ps.submit("true", "job_{i}", ps.ParamSpace(i=range(2)), use="slurm")
    assert len(command_log("sbatch")) == 3 and set(jobs.job_state) != {"NEW"}
    _fault_shim(command_log, "sbatch", "echo 'sbatch: error: Slurm temporarily unable to accept job, sleeping and retrying' >&2; exit 1")
    start = time.time()
    with pytest.raises(ps.QueueError, match="temporarily unable to accept job"):
        ps.submit("true", "other_{i}", ps.ParamSpace(i=range(2)), use="slurm", work_dir="b",
                  submit_timeout=2)
    assert time.time() - start < 15
    assert set(ps.load("b").job_state) == {"NEW"}
    wait_jobs(jobs)


def test_without_accounting_states_come_from_squeue_and_the_jobs_own_files(in_tmp, command_log):
    _fault_shim(command_log, "sacct", "echo 'sacct: error: Slurm accounting storage is disabled' >&2; exit 1")
    jobs = ps.submit("echo hi; exit {code}", "job_{code}", ps.ParamSpace(code=[0, 3]), use="slurm")
    jobs = wait_jobs(jobs)
    assert list(jobs.job_state) == ["COMPLETED", "FAILED"] and list(jobs.exit_code) == [0, 3]
    assert command_log("sacct")   # it was asked, failed, and that failure was not read as job failure


def test_large_sweep_is_chunked_by_max_array_size_and_throttled(in_tmp, command_log):
    n, throttle = 2000, 20
    jobs = ps.submit("true\n", "job_{i}", ps.ParamSpace(i=range(n)), use="slurm",
                     max_running=throttle)
    sbatch = command_log("sbatch")
    max_array = ps.SlurmQueue().max_array_size()
    assert len(sbatch) == -(-n // max_array)
    assert f"--array=0-{max_array - 1}%{throttle}" in sbatch[0]
    assert f"--array=0-{n - max_array - 1}%{throttle}" in sbatch[1]
    jobs = wait_jobs(jobs, timeout=600)
    assert set(jobs.job_state) == {"COMPLETED"}
    arrays = jobs.job_id.str.split("_").str[0]
    for array_id, group in jobs.groupby(arrays):
        events = sorted([(t, 1) for t in group.started] + [(t, -1) for t in group.ended])
        running = peak = 0
        for _, step in events:
            running += step
            peak = max(peak, running)
        assert peak <= throttle, f"array {array_id} ran {peak} tasks at once"


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["single", "array"])
def test_kill_9_during_submit_then_rerun_runs_every_job_exactly_once(tmp_path, mode):
    landed = kill_during_submit_then_rerun(tmp_path, "slurm", mode, n=150, trials=5, seed=7)
    if mode == "single":
        assert landed >= 1   # at least one kill hit the window between sbatch and recording


def test_two_controllers_at_once_submit_every_job_once(tmp_path, command_log):
    n = 100
    procs = [subprocess.Popen([sys.executable, "-c", KILL_CONTROLLER, str(tmp_path), str(n), "array", "slurm"],
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    assert len(command_log("sbatch")) == 1   # the second controller found everything queued
    jobs = wait_jobs(ps.load(tmp_path), timeout=300)
    assert set(jobs.job_state) == {"COMPLETED"} and set(jobs.attempt) == {1}
    for i in range(n):
        assert (tmp_path / f"job_{i}" / "ran.txt").read_text() == "ran\n"


def test_time_limit_is_timeout_with_an_error_line(timeout_job):
    jobs = wait_jobs(timeout_job, timeout=240)
    row = jobs.iloc[0]
    assert row.job_state == "TIMEOUT"
    assert row.error in ("time limit reached (TIMEOUT)",) or "TIME LIMIT" in row.error
    assert row.stdout == "working\n"
    assert ps.resubmit(jobs, states=["TIMEOUT"], time="0:02:00", wait=False).attempt.iloc[0] == 2
    ps.cancel(jobs)


def _in_another_process(code):
    """Run param_search code in a fresh interpreter, as a later session would."""
    subprocess.run([sys.executable, "-c", f"import param_search as ps\n{code}"], check=True,
                   timeout=120, stderr=subprocess.DEVNULL)


def _squeue_fields(job_id, fields="%l|%P|%k"):
    return subprocess.run(["squeue", "-h", "-j", job_id, "-o", fields], capture_output=True,
                          text=True, check=True).stdout.strip()


def test_resubmit_and_cancel_in_another_process_use_the_submitted_options(in_tmp, command_log):
    script = "#!/bin/bash\n[ -e job.2.status ] && sleep 300\nexit 1\n"   # attempt 1 fails
    jobs = ps.submit(script, "job_{x}", ps.ParamSpace(x=[1]), use="slurm", time="0:03:00",
                     partition="debug", extra_args=["--comment=keepme"])
    assert list(wait_jobs(jobs).job_state) == ["FAILED"]
    _in_another_process("ps.resubmit('.')")
    second = command_log("sbatch")[-1]
    assert "--time=0:03:00" in second and "--comment=keepme" in second and "--partition=debug" in second
    job_id = ps.load(".").job_id[0]
    assert _squeue_fields(job_id) == "3:00|debug|keepme"
    _in_another_process("ps.cancel('.')")
    assert command_log("scancel")[-1] == f"scancel {job_id}"
    assert list(ps.status(".").job_state) == ["CANCELLED"]
    _in_another_process("ps.resubmit('.', time='0:05:00')")   # an override, on purpose
    job_id = ps.load(".").job_id[0]
    assert _squeue_fields(job_id) == "5:00|debug|keepme"
    stored = [json.load(open(f)) for f in sorted(glob.glob(".param_search/batches/*.json"))]
    assert [b["settings"]["time"] for b in stored] == ["0:03:00", "0:03:00", "0:05:00"]
    assert stored[-1]["overrides"] == {"time": "0:05:00"}
    assert all(b["settings"]["extra_args"] == ["--comment=keepme"] for b in stored)
    assert list(ps.cancel(".").job_state) == ["CANCELLED"]


def test_a_killed_batch_shell_is_failed_with_the_signal_never_exit_code_0(in_tmp):
    jobs = ps.submit("echo started\nsleep 300\n", "job_{x}", ps.ParamSpace(x=[1]), use="slurm")
    status_file = in_tmp / "job_1" / "job.1.status"
    deadline = time.time() + 60
    while not (status_file.exists() and len(status_file.read_text().split()) >= 5):
        assert time.time() < deadline, "the job did not start"
        time.sleep(0.3)
    shell_pid = int(status_file.read_text().split()[2])   # the wrapper runs in the batch shell
    os.kill(shell_pid, signal.SIGKILL)
    row = wait_jobs(jobs).iloc[0]
    assert row.job_state == "FAILED" and row.exit_code == 137
    assert "exit" not in status_file.read_text()            # no exit line: the scheduler told
    assert row.error == "killed by SIGKILL" or row.error


def _stop_slurmctld():
    pid = int(open("/var/lib/param-search-slurm/run/slurmctld.pid").read().strip())
    os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        if subprocess.run(["scontrol", "ping"], capture_output=True, text=True).stdout.count("DOWN"):
            return
        time.sleep(0.2)


def _restart_slurm_after(seconds):
    def later():
        time.sleep(seconds)
        subprocess.run([str(pathlib.Path(__file__).resolve().parents[1] / "scripts" / "start-slurm.sh")],
                       capture_output=True, timeout=300)
    thread = threading.Thread(target=later)
    thread.start()
    return thread


@pytest.mark.slow
def test_submit_and_wait_ride_out_a_controller_outage(in_tmp):
    _stop_slurmctld()
    restart = _restart_slurm_after(10)
    try:   # submitting while the controller is down: scontrol and sbatch are retried
        jobs = ps.submit("sleep 20\necho done\n", "job_{x}", ps.ParamSpace(x=[1, 2]), use="slurm")
    finally:
        restart.join()
    deadline = time.time() + 60
    while set(ps.status(jobs).job_state) != {"RUNNING"}:
        assert time.time() < deadline
        time.sleep(0.5)
    _stop_slurmctld()                        # and again while waiting: polling is retried
    restart = _restart_slurm_after(15)
    try:
        jobs = wait_jobs(jobs, timeout=240)
    finally:
        restart.join()
    assert list(jobs.job_state) == ["COMPLETED", "COMPLETED"] and list(jobs.stdout) == ["done\n"] * 2


@pytest.mark.slow
def test_with_accounting_down_a_time_limit_is_timeout_not_cancelled(in_tmp):
    """The wrapper sees SIGTERM at the time limit (its exit line says TERM); squeue says
    TIMEOUT at that moment, and that is taken, with slurmdbd stopped for real."""
    pid = int(open("/var/lib/param-search-slurm/run/slurmdbd.pid").read().strip())
    os.kill(pid, signal.SIGTERM)
    try:
        jobs = ps.submit("echo working\nsleep 300\n", "job_{x}", ps.ParamSpace(x=[1]), use="slurm",
                         time="0:01:00")
        row = wait_jobs(jobs, timeout=240).iloc[0]
        assert "TERM" in (in_tmp / "job_1" / "job.1.status").read_text()
        assert subprocess.run(["sacct", "-n", "-j", row.job_id], capture_output=True).returncode != 0
    finally:
        subprocess.run([str(pathlib.Path(__file__).resolve().parents[1] / "scripts" / "start-slurm.sh")],
                       capture_output=True, timeout=300)
    assert row.job_state == "TIMEOUT" and row.exit_code == 143
    assert list(ps.status(".").job_state) == ["TIMEOUT"]


def test_a_percent_sign_in_the_work_dir_is_not_a_slurm_pattern(in_tmp):
    jobs = ps.submit("echo {x}\n", "job_{x}", ps.ParamSpace(x=[1, 2]), use="slurm", work_dir="run%u_%j")
    jobs = wait_jobs(jobs)
    assert list(jobs.job_state) == ["COMPLETED", "COMPLETED"] and list(jobs.stdout) == ["1\n", "2\n"]
    assert os.path.isdir(in_tmp / "run%u_%j" / ".param_search" / "batches")


def test_max_queued_keeps_at_most_that_many_in_slurm(in_tmp, monkeypatch):
    import param_search.api as api

    jobs = ps.submit("sleep 1\n", "job_{x}", ps.ParamSpace(x=range(10)), use="slurm", max_queued=4)
    assert jobs.reason.str.startswith("held back: max_queued=4", na=False).sum() == 6
    queued = []
    status = api.current   # the refresh ps.wait runs each round

    def counting(*args, **kwargs):
        table = status(*args, **kwargs)
        ids = [i for i in table.job_id.dropna()]
        out = subprocess.run(["squeue", "--noheader", "--array", "--format=%i", f"--jobs={','.join(ids)}"],
                             capture_output=True, text=True).stdout.split() if ids else []
        queued.append(len([i for i in out if i in set(ids)]))
        return table

    monkeypatch.setattr(api, "current", counting)
    jobs = wait_jobs(jobs)
    assert jobs.job_state.tolist() == ["COMPLETED"] * 10 and jobs.attempt.tolist() == [1] * 10
    assert queued and max(queued) <= 4


@pytest.mark.slow
def test_a_timeout_is_retried_with_twice_the_time_and_completes(retried_timeout):
    """Attempt 1 overruns 0:01:00 (TIMEOUT), attempt 2 gets 0:02:00 and completes."""
    jobs = wait_jobs(retried_timeout, timeout=420)
    assert jobs.job_state.tolist() == ["COMPLETED", "COMPLETED"], jobs[["job_state", "history", "error"]]
    assert jobs.attempt.tolist() == [2, 2] and jobs.time_limit.tolist() == ["0:02:00", "0:02:00"]
    assert jobs.history.tolist() == ["attempt 1: TIMEOUT at 0:01:00 -> time 0:02:00"] * 2
    first = pathlib.Path(jobs.job_dir[0]) / "job.1.out"
    assert first.read_text() == "attempt 1\n"   # attempt 1 was cut short
    assert jobs.stdout[0] == "attempt 2\ndone\n"
    limits = subprocess.run(["sacct", "--noheader", "--parsable2", "-X", "--format=Timelimit",
                             f"--jobs={jobs.job_id[0]}"], capture_output=True, text=True).stdout.split()
    assert limits == ["00:02:00"]


def test_a_submit_limit_holds_jobs_back_and_wait_tops_up_until_all_ran(in_tmp, command_log, monkeypatch):
    """QOS 'limited' allows 10 queued jobs per user: the other 30 wait in the experiment."""
    import param_search.api as api

    jobs = ps.submit("sleep 1\n", "job_{x}", ps.ParamSpace(x=range(40)), use="slurm", qos="limited")
    held = jobs.reason.str.startswith("held back: the scheduler's submit limit", na=False)
    assert held.sum() == 30 and "QOSMaxSubmitJobPerUserLimit" in jobs.reason[held].iloc[0]
    assert len(command_log("sbatch")) <= 8   # halving probes, not one call per job
    queued = []
    status = api.current   # the refresh ps.wait runs each round

    def counting(*args, **kwargs):
        table = status(*args, **kwargs)
        out = subprocess.run(["squeue", "--noheader", "--array", "--qos=limited", "--format=%i"],
                             capture_output=True, text=True).stdout.split()
        queued.append(len(out))
        return table

    monkeypatch.setattr(api, "current", counting)
    jobs = wait_jobs(jobs, timeout=300)
    assert jobs.job_state.tolist() == ["COMPLETED"] * 40 and jobs.attempt.tolist() == [1] * 40
    assert queued and max(queued) <= 10


def test_a_lost_submission_is_not_sent_again_while_accounting_is_down(in_tmp):
    """A controller died after sbatch but before recording the id, and the job left the queue
    without starting (cancelled while held): squeue no longer lists it. With slurmdbd down,
    status must neither fail nor take it for unsent (and send it again); once accounting is
    back and does not know it either (a never-eligible job is not in sacct's window), it is
    NEW again: never run, to be sent by the next ps.submit."""
    from param_search.experiment import Experiment

    jobs = ps.submit("echo ran >> runs.txt\n", "job_{x}", ps.ParamSpace(x=[1]), use="slurm",
                     extra_args=["--hold"])
    subprocess.run(["scancel", jobs.job_id[0]], check=True)
    exp = Experiment.open(".")
    with exp.transaction() as records:   # as a controller killed between sbatch and its record
        records["job_1"].update(state="SUBMITTING", job_id=None)
    pid = int(open("/var/lib/param-search-slurm/run/slurmdbd.pid").read().strip())
    os.kill(pid, signal.SIGTERM)
    try:
        until(lambda: subprocess.run(["sacct", "-n", "-X", "-j", "1"], capture_output=True).returncode != 0)
        row = ps.status(".").iloc[0]
        assert row.job_state == "SUBMITTING" and "cannot tell yet" in row.reason
        again = ps.submit("echo ran >> runs.txt\n", "job_{x}", ps.ParamSpace(x=[1]), use="slurm",
                          extra_args=["--hold"], progress=False)
        assert again.job_state.tolist() == ["SUBMITTING"] and again.attempt.tolist() == [1]   # not sent again
    finally:
        subprocess.run([str(pathlib.Path(__file__).resolve().parents[1] / "scripts" / "start-slurm.sh")],
                       capture_output=True, timeout=300)
    until(lambda: ps.status(".").job_state[0] != "SUBMITTING", timeout=60)
    row = ps.status(".").iloc[0]
    assert row.job_state == "NEW" and row.attempt == 0
    assert not (in_tmp / "job_1" / "runs.txt").exists()


@pytest.mark.slow
def test_a_job_slurm_forgot_without_an_exit_record_ends_after_the_grace_period(in_tmp, monkeypatch):
    """Batch shell killed (no exit line), accounting down, squeue past MinJobAge: nothing
    says how the job ended. ps.wait must still return: FAILED after the grace period, and
    the job can be resubmitted."""
    from param_search.queues.slurm import SlurmQueue

    start = str(pathlib.Path(__file__).resolve().parents[1] / "scripts" / "start-slurm.sh")
    subprocess.run([start], env={**os.environ, "PS_SLURM_MIN_JOB_AGE": "4"}, check=True,
                   capture_output=True, timeout=300)
    try:
        jobs = ps.submit("echo started\nsleep 300\n", "job_{x}", ps.ParamSpace(x=[1]), use="slurm")
        status_file = in_tmp / "job_1" / "job.1.status"
        until(lambda: status_file.exists() and len(status_file.read_text().split()) >= 5, timeout=60)
        assert ps.status(jobs).job_state[0] == "RUNNING"
        os.kill(int(open("/var/lib/param-search-slurm/run/slurmdbd.pid").read().strip()), signal.SIGTERM)
        until(lambda: subprocess.run(["sacct", "-n", "-X", "-j", jobs.job_id[0]], capture_output=True).returncode != 0)
        os.kill(int(status_file.read_text().split()[2]), signal.SIGKILL)   # the batch shell
        squeue = ["squeue", "--noheader", "--states=all", "--array", f"--jobs={jobs.job_id[0]}", "--format=%T"]
        until(lambda: not subprocess.run(squeue, capture_output=True, text=True).stdout.strip(), timeout=60)
        monkeypatch.setattr(SlurmQueue, "vanish_grace", 5.0)
        row = wait_jobs(jobs, timeout=60).iloc[0]
        assert row.job_state == "FAILED" and "vanished from the scheduler without an exit record" in row.error
        assert "exit" not in status_file.read_text()
    finally:
        subprocess.run([start], check=True, capture_output=True, timeout=300)   # MinJobAge and slurmdbd back
    again = ps.resubmit(".", states=["FAILED"])
    assert again.attempt.tolist() == [2] and again.job_state[0] in ("PENDING", "RUNNING")
    assert ps.cancel(".").job_state.tolist() == ["CANCELLED"]


def test_a_quota_filled_by_other_jobs_holds_all_and_they_go_out_when_it_frees(in_tmp):
    """Another sweep holds all 10 places of QOS 'limited': none of ours is queued when the
    limit refuses, yet once the others leave, ours go out (no learned limit of 0 blocks them)."""
    others = subprocess.run(["sbatch", "--parsable", "--qos=limited", "--hold", "--array=0-9", "-o", "/dev/null",
                             "--wrap", "true"], capture_output=True, text=True, check=True).stdout.strip()
    try:
        jobs = ps.submit("true\n", "job_{x}", ps.ParamSpace(x=range(3)), use="slurm", qos="limited")
        assert jobs.reason.str.startswith("held back: the scheduler's submit limit", na=False).all()
    finally:
        subprocess.run(["scancel", others], check=True)
    jobs = wait_jobs(jobs, timeout=120)
    assert jobs.job_state.tolist() == ["COMPLETED"] * 3 and jobs.attempt.tolist() == [1] * 3
