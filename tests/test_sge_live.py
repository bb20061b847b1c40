"""Integration tests against the live single-node Grid Engine (scripts/start-sge.sh).

Run them alone with ``./scripts/test.sh -m sge``. They skip without Grid Engine, except
under CI=true, where its absence fails them.
"""
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

import param_search as ps
from conftest import fail_or_skip, kill_during_submit_then_rerun, logging_shims, until, wait_jobs
import test_seed

pytestmark = [pytest.mark.sge]
ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def sge():
    """Start (or check) the local Grid Engine; fail under CI=true if it cannot run."""
    try:
        done = subprocess.run([str(ROOT / "scripts" / "start-sge.sh")], capture_output=True, text=True,
                              timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        fail_or_skip(f"scripts/start-sge.sh did not run: {exc}")
    if done.returncode != 0:
        fail_or_skip(f"scripts/start-sge.sh failed ({done.returncode}): {done.stderr.strip()[-500:]}")


@pytest.fixture
def sge_calls(tmp_path, monkeypatch):
    """Shims logging every qsub/qstat/qacct/qdel call (this test only)."""
    commands = {name: f"/usr/bin/{name}" for name in ("qsub", "qstat", "qacct", "qdel")}
    return logging_shims(tmp_path / "sge-shims", commands, monkeypatch)


def test_seed_example_on_sge(in_tmp, sge_calls):
    param_space = ps.ParamSpace(term1=range(4), term2=range(4))
    jobs = ps.submit(test_seed.template, 'job_{term1}_{term2}', param_space, use='sge')
    qsubs = sge_calls("qsub")
    assert len(qsubs) == 1 and "-t 1-16" in qsubs[0]
    assert jobs.job_id.str.match(r"^\d+\.\d+$").all() and jobs.job_id[0].endswith(".1")
    jobs = wait_jobs(jobs)
    assert set(jobs.job_state) == {"COMPLETED"}
    assert jobs.stdout[0].strip() == str(in_tmp / "job_0_0")
    assert jobs.error[0] == "ZeroDivisionError: division by zero"
    metrics = ps.metrics(jobs)
    assert list(metrics["product"]) == [a * b for a in range(4) for b in range(4)]
    assert len(ps.plot(metrics, x=['term1', 'term2'], y=['product', 'quotient']).get_axes()) == 4


def test_failed_jobs_are_resubmitted_with_their_options_and_cancel_works(in_tmp, sge_calls):
    script = textwrap.dedent("""\
        #!/bin/bash
        #$ -l h_rt=0:10:00
        if [ {kind} = fail ]; then echo 'RuntimeError: boom' >&2; exit 1; fi
        if [ {kind} = slow ]; then sleep 300; fi
        echo ok
    """)
    jobs = ps.submit(script, "job_{kind}", ps.ParamSpace(kind=["ok", "fail", "slow"]), use="sge",
                     h_vmem="1G", extra_args=["-ac", "keep=me"])
    assert "h_rt=0:10:00,h_vmem=1G" in sge_calls("qsub")[0]
    until(lambda: list(ps.status(jobs).job_state) == ["COMPLETED", "FAILED", "RUNNING"])
    cancelled = ps.cancel(jobs.iloc[[2]])
    assert list(cancelled.job_state) == ["CANCELLED"] and cancelled.error.iloc[0] == "cancelled"
    assert sge_calls("qdel")[-1] == f"qdel {jobs.job_id[2]}"
    jobs = wait_jobs(jobs)
    assert list(jobs.job_state) == ["COMPLETED", "FAILED", "CANCELLED"]
    assert jobs.exit_code[1] == 1 and jobs.error[1] == "RuntimeError: boom"
    subprocess.run([sys.executable, "-c", "import param_search as ps; ps.resubmit('.', states=['FAILED'])"],
                   check=True, timeout=120, stderr=subprocess.DEVNULL)
    again = sge_calls("qsub")[-1]
    assert "h_vmem=1G" in again and "-ac keep=me" in again and "h_rt=0:10:00" in again
    jobs = wait_jobs(ps.load("."))
    assert list(jobs.attempt) == [1, 2, 1] and list(jobs.job_state) == ["COMPLETED", "FAILED", "CANCELLED"]
    assert (in_tmp / "job_fail" / "job.2.err").exists()


def test_a_job_over_h_rt_is_timeout(in_tmp):
    jobs = ps.submit("echo working\nsleep 120\n", "job_{x}", ps.ParamSpace(x=[1]), use="sge", h_rt="0:0:5")
    jobs = wait_jobs(jobs, timeout=120)
    row = jobs.iloc[0]
    assert row.job_state == "TIMEOUT" and row.stdout == "working\n"
    assert row.error == "time limit reached (TIMEOUT)"


def test_a_job_in_error_state_is_failed_with_the_reason_and_deleted(in_tmp, sge_calls):
    script = "#!/bin/bash\n#$ -e /nonexistent/dir/err.txt\necho never\n"   # -e is ours: dropped
    jobs = ps.submit(script, "job_{x}", ps.ParamSpace(x=[1]), use="sge", extra_args=["-i", "/nonexistent/in"])
    jobs = wait_jobs(jobs, timeout=120)
    row = jobs.iloc[0]
    assert row.job_state == "FAILED" and "Eqw" in row.error and "/nonexistent/in" in row.error
    assert sge_calls("qdel")
    number = row.job_id.split(".")[0]
    listed = subprocess.run(["qstat", "-xml"], capture_output=True, text=True).stdout
    assert f"<JB_job_number>{number}</JB_job_number>" not in listed


def test_status_of_1000_array_tasks_is_one_scheduler_call(in_tmp, sge_calls):
    jobs = ps.submit("true\n", "job_{i}", ps.ParamSpace(i=range(1000)), use="sge", wait=False,
                     extra_args=["-h"])   # held: all stay pending in one array
    assert len(sge_calls("qsub")) == 1
    before = len(sge_calls())
    table = ps.status(jobs)
    assert set(table.job_state) == {"PENDING"} and set(table.reason) == {"held"}
    assert len(sge_calls()) - before == 1 and sge_calls()[-1] == "qstat -xml"
    assert list(ps.cancel(jobs).job_state) == ["CANCELLED"] * 1000
    assert len(sge_calls("qdel")) == 1


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["single", "array"])
def test_kill_9_during_submit_then_rerun_runs_every_job_exactly_once(tmp_path, mode):
    landed = kill_during_submit_then_rerun(tmp_path, "sge", mode, n=60, trials=3, seed=11, window=(0.5, 2.0))
    if mode == "single":
        assert landed >= 1   # at least one kill hit the window between qsub and recording


def test_unknown_option_lists_the_valid_ones(in_tmp):
    with pytest.raises(ps.OptionError, match="unknown option 'walltime'.*queue, pe, slots, h_rt"):
        ps.submit("true", "j_{x}", ps.ParamSpace(x=[1]), use="sge", walltime="1:00:00")
    with pytest.raises(ps.OptionError, match="slots=4 needs a parallel environment"):
        ps.submit("true", "j_{x}", ps.ParamSpace(x=[1]), use="sge", slots=4)
    assert not os.listdir(in_tmp)


def test_a_job_deleted_outside_param_search_while_pending_is_concluded(in_tmp, monkeypatch):
    monkeypatch.setattr(ps.SGEQueue, "vanish_grace", 2.0)
    jobs = ps.submit("echo hi\n", "job_{x}", ps.ParamSpace(x=[1]), use="sge", array=False,
                     extra_args=["-h"])
    subprocess.run(["qdel", jobs.job_id[0]], check=True, capture_output=True)
    first = ps.status(jobs).iloc[0]
    assert first.job_state == "PENDING" and first.reason.startswith("not listed by the scheduler since")
    row = wait_jobs(jobs, timeout=60).iloc[0]
    assert row.job_state == "CANCELLED" and "removed from the queue before it started" in row.error


def test_a_timeout_is_retried_with_twice_the_time_from_the_scripts_directive(in_tmp, sge_calls):
    """The policy doubles the previous attempt's h_rt, read from the template's #$ line."""
    script = "#!/bin/bash\n#$ -l h_rt=0:0:4\necho working\nsleep 6\necho done\n"
    policy = ps.Retry(max_attempts=3, on={"TIMEOUT": {"time": 2.0}}, max_time="0:0:30")
    jobs = ps.submit(script, "job_{x}", ps.ParamSpace(x=[1, 2]), use="sge", retry=policy)
    assert jobs.time_limit.tolist() == ["0:0:4", "0:0:4"]
    jobs = wait_jobs(jobs, timeout=180)
    assert jobs.job_state.tolist() == ["COMPLETED", "COMPLETED"] and jobs.attempt.tolist() == [2, 2]
    assert jobs.time_limit.tolist() == ["0:00:08", "0:00:08"]
    assert jobs.history.tolist() == ["attempt 1: TIMEOUT at 0:0:4 -> time 0:00:08"] * 2
    qsubs = sge_calls("qsub")
    assert len(qsubs) == 2 and "h_rt=0:00:08" in qsubs[1]   # both retries in one submission
    assert (in_tmp / "job_1" / "job.1.out").read_text() == "working\n"


def test_max_queued_keeps_at_most_that_many_in_grid_engine(in_tmp):
    jobs = ps.submit("sleep 1\n", "job_{x}", ps.ParamSpace(x=range(8)), use="sge", max_queued=3)
    assert (jobs.reason.str.startswith("held back: max_queued=3", na=False)).sum() == 5
    seen = []
    import param_search.api as api

    original = api.current   # the refresh ps.wait runs each round

    def counting(*args, **kwargs):
        table = original(*args, **kwargs)
        seen.append(int(table.job_id.notna().sum() - table.job_state.isin(["COMPLETED"]).sum()))
        return table

    api.current = counting
    try:
        jobs = wait_jobs(jobs, timeout=180)
    finally:
        api.current = original
    assert jobs.job_state.tolist() == ["COMPLETED"] * 8 and jobs.attempt.tolist() == [1] * 8
    assert seen and max(seen) <= 3
