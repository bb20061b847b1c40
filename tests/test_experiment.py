"""Experiments on disk: load from any process, idempotent submit, resubmit, cancel, wait."""
import json
import os
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

import param_search as ps
from param_search import index_file
from param_search.experiment import Experiment

SCRIPT = "echo run >> runs.txt\nexit {code}\n"


def _submit(space, script=SCRIPT, **kw):
    kw.setdefault("progress", False)
    return ps.submit(script, "job_{code}_{i}", space, **kw)


def test_load_in_a_fresh_process_returns_the_same_table(in_tmp):
    jobs = _submit(ps.ParamSpace(code=[0, 1], i=range(3)))
    code = "import param_search as ps, sys; ps.load(sys.argv[1]).to_pickle(sys.argv[2])"
    subprocess.run([sys.executable, "-c", code, str(in_tmp), str(in_tmp / "t.pkl")], check=True)
    pd.testing.assert_frame_equal(pd.read_pickle(in_tmp / "t.pkl"), jobs, check_like=False)


def test_resubmitting_the_same_sweep_sends_nothing_new(in_tmp, capfd):
    space = ps.ParamSpace(code=[0], i=range(3))
    _submit(space)
    again = _submit(space)
    assert "0 new, 0 already queued or running, 3 completed" in capfd.readouterr().err
    assert set(again.attempt) == {1}
    assert all(open(os.path.join(d, "runs.txt")).read() == "run\n" for d in again.job_dir)


def test_extending_the_space_submits_only_new_points(in_tmp, capfd):
    _submit(ps.ParamSpace(code=[0], i=range(2)))
    jobs = _submit(ps.ParamSpace(code=[0], i=range(4)))
    assert "2 new, 0 already queued or running, 2 completed" in capfd.readouterr().err
    assert list(jobs.attempt) == [1, 1, 1, 1] and set(jobs.job_state) == {"COMPLETED"}
    assert len(ps.load(".")) == 4


def test_failed_points_are_retried_by_submit_up_to_max_attempts(in_tmp):
    space = ps.ParamSpace(code=[0, 3], i=[0])
    _submit(space)
    jobs = _submit(space, max_attempts=2)
    assert list(jobs.attempt) == [1, 2] and list(jobs.job_state) == ["COMPLETED", "FAILED"]
    jobs = _submit(space, max_attempts=2)
    assert list(jobs.attempt) == [1, 2]
    failed_dir = jobs.job_dir[1]
    assert sorted(f for f in os.listdir(failed_dir) if f.endswith(".status")) == ["job.1.status", "job.2.status"]


def test_changed_template_is_an_error_naming_the_fix(in_tmp):
    space = ps.ParamSpace(code=[0], i=[0, 1])
    _submit(space)
    before = sorted(os.listdir(in_tmp / "job_0_0"))
    with pytest.raises(ps.ConflictError, match="new work_dir.*replace=True"):
        _submit(space, script="echo changed\n")
    assert sorted(os.listdir(in_tmp / "job_0_0")) == before
    assert (in_tmp / "job_0_0" / "job.sh").read_text() == "echo run >> runs.txt\nexit 0\n"
    jobs = _submit(space, script="echo changed; exit {code}\n", replace=True)
    assert list(jobs.attempt) == [2, 2] and list(jobs.stdout) == ["changed\n"] * 2


def test_a_folder_never_sent_that_the_index_does_not_name_is_written_again(in_tmp):
    """A process killed between writing job folders and writing the index leaves folders of
    jobs it never sent: a later submit of other params under that name writes them again;
    a folder that ran is never touched."""
    from param_search.render import render_jobs

    _submit(ps.ParamSpace(code=[0], i=[0]))
    exp = Experiment.open(".")
    for job in render_jobs("echo old\n", "job_{code}_{i}", [{"code": 0, "i": 1}, {"code": 0, "i": 2}], exp.work_dir):
        exp.setup_job(job)   # as a killed process left them: never in the index
    (in_tmp / "job_0_2" / "job.1.status").write_text("start 1764500000 123 456 host\n")   # this one ran
    with pytest.raises(ps.ConflictError, match="already exists"):
        _submit(ps.ParamSpace(code=[0], i=[0, 2]))
    assert (in_tmp / "job_0_2" / "job.sh").read_text() == "echo old\n"
    jobs = _submit(ps.ParamSpace(code=[0], i=[0, 1]))
    assert list(jobs.job_state) == ["COMPLETED", "COMPLETED"]
    assert (in_tmp / "job_0_1" / "runs.txt").read_text() == "run\n"


def test_resubmit_sends_only_failed_jobs_and_keeps_each_attempts_logs(in_tmp):
    jobs = _submit(ps.ParamSpace(code=[0, 2], i=[0]), script="echo try; exit {code}\n")
    again = ps.resubmit(jobs, progress=False)
    assert list(again.attempt) == [1, 2] and list(again.job_state) == ["COMPLETED", "FAILED"]
    failed = again.iloc[1]
    assert os.path.exists(os.path.join(failed.job_dir, "job.1.out"))
    assert os.path.exists(os.path.join(failed.job_dir, "job.2.out"))
    limited = ps.resubmit(jobs, max_attempts=2, progress=False)
    assert list(limited.attempt) == [1, 2]
    ps.resubmit(jobs, states=["COMPLETED"], progress=False)
    assert list(ps.load(".").attempt) == [2, 2]


def test_resubmit_never_touches_pending_jobs(in_tmp):
    jobs = _submit(ps.ParamSpace(code=[0], i=[0]), wait=False)
    assert list(jobs.job_state) == ["PENDING"]
    with pytest.raises(ps.ParamSearchError, match="cannot resubmit jobs in state RUNNING"):
        ps.resubmit(jobs, states=["RUNNING"])
    again = ps.resubmit(jobs, states=["FAILED", "CANCELLED"], wait=False)
    assert list(again.attempt) == [1] and list(again.job_state) == ["PENDING"]
    assert list(ps.wait(jobs, progress=False).job_state) == ["COMPLETED"]


def test_cancel_pending_jobs(in_tmp):
    jobs = _submit(ps.ParamSpace(code=[0], i=range(3)), wait=False)
    cancelled = ps.cancel(jobs.iloc[:2])
    assert list(cancelled.job_state) == ["CANCELLED"] * 2
    done = ps.wait(jobs, progress=False)
    assert list(done.job_state) == ["CANCELLED", "CANCELLED", "COMPLETED"]


def test_wait_times_out(in_tmp):
    jobs = _submit(ps.ParamSpace(code=[0], i=[0]), script="sleep 5\n", wait=False)
    with pytest.raises(TimeoutError, match="still not finished"):
        ps.wait(jobs, timeout=1, progress=False, workers=1, poll_interval=0.2)
    ps.cancel(jobs)


def test_deleted_or_truncated_index_is_rebuilt_with_a_warning(in_tmp):
    _submit(ps.ParamSpace(code=[0, 1], i=[0]))
    index = in_tmp / ".param_search" / "index.arrow"
    whole = index.read_bytes()
    for damage in (lambda: index.unlink(), lambda: index.write_bytes(whole[: len(whole) // 2]),
                   lambda: index.write_text('{"version": 1, "jobs": [')):
        damage()
        with pytest.warns(UserWarning, match="rebuilt it from 2 job folders"):
            rebuilt = ps.status(".")
        assert list(rebuilt.job_state) == ["COMPLETED", "FAILED"]
        assert list(rebuilt.exit_code) == [0, 1]
        assert list(rebuilt.code) == [0, 1]
        assert _index_records(index)[1]["attempt"] == 1
    assert list(_submit(ps.ParamSpace(code=[0, 1], i=[0]), max_attempts=1).attempt) == [1, 1]


def test_edited_params_json_is_detected(in_tmp):
    _submit(ps.ParamSpace(code=[0], i=[0]))
    (in_tmp / ".param_search" / "index.arrow").unlink()
    path = in_tmp / "job_0_0" / "params.json"
    meta = json.loads(path.read_text())
    meta["params"]["i"] = 5
    path.write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match="job_0_0' is left out.*does not match its hash"):
        assert len(ps.load(".")) == 0             # left out of the rebuild, named in a warning
    with pytest.warns(UserWarning), pytest.raises(ps.ExperimentError, match="does not match its hash"):
        _submit(ps.ParamSpace(code=[0], i=[0]))   # and submitting it again says what is wrong


def test_loading_a_folder_that_is_no_experiment(in_tmp):
    (in_tmp / "somedir").mkdir()
    with pytest.raises(ps.ExperimentError, match="not a param_search experiment"):
        ps.load(in_tmp / "somedir")
    assert not (in_tmp / "somedir" / ".param_search").exists()
    with pytest.raises(ps.ExperimentError):
        ps.status(str(in_tmp / "nowhere"))
    assert not (in_tmp / "nowhere").exists()


CONTROLLER = textwrap.dedent("""
    import sys
    import param_search as ps
    space = ps.ParamSpace(i=range({n}))
    script = 'echo ran >> ran.txt\\nsleep 0.02\\n'
    jobs = ps.submit(script, 'job_{{i}}', space, work_dir=sys.argv[1], workers=4, progress=False)
    assert set(jobs.job_state) == {{'COMPLETED'}}, jobs.job_state.value_counts()
""")


def _controller(work_dir, n):
    return subprocess.Popen([sys.executable, "-c", CONTROLLER.format(n=n), str(work_dir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _check_exactly_once(work_dir, n):
    for i in range(n):
        with open(work_dir / f"job_{i}" / "ran.txt") as f:
            assert f.read() == "ran\n", f"job_{i} ran more than once or not at all"
    metrics_ok = ps.load(work_dir)
    assert len(metrics_ok) == n and set(metrics_ok.job_state) == {"COMPLETED"}


def _wait_for_starts(work_dir, count, proc, timeout=30):
    import time

    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if len(list(work_dir.glob("job_*/job.*.status"))) >= count:
            return
        time.sleep(0.01)


@pytest.mark.slow
def test_kill_9_at_random_moments_then_rerun_runs_every_job_exactly_once(tmp_path):
    import random
    import signal
    import time

    rng = random.Random(42)
    n = 100
    mid_sweep_kills = 0
    for trial in range(10):
        work_dir = tmp_path / f"trial{trial}"
        for _ in range(rng.randint(2, 3)):   # two or three kills per trial
            proc = _controller(work_dir, n)
            if rng.random() < 0.5:   # at any moment, start-up and submission included
                time.sleep(rng.uniform(0.0, 2.0))
            else:                    # once some jobs ran: mid-sweep
                _wait_for_starts(work_dir, rng.randint(1, n - 10), proc)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            started = len(list(work_dir.glob("job_*/job.*.status")))
            mid_sweep_kills += 0 < started < n
        final = _controller(work_dir, n)
        _, err = final.communicate(timeout=120)
        assert final.returncode == 0, err
        _check_exactly_once(work_dir, n)
    assert mid_sweep_kills >= 5   # the kills did land while jobs were being run


@pytest.mark.slow
def test_two_controllers_at_once_run_every_job_once(tmp_path):
    n = 100
    procs = [_controller(tmp_path, n) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    _check_exactly_once(tmp_path, n)


def _index_records(path) -> list[dict]:
    return index_file.to_records(index_file.read(str(path)))


@pytest.mark.parametrize("damage", ["missing", "cut short"])
def test_a_job_folder_left_half_written_is_written_again(in_tmp, damage):
    space = ps.ParamSpace(code=[0], i=[0, 1])
    half = in_tmp / "job_0_1"
    half.mkdir()   # as if a crash hit between writing job.sh and params.json
    (half / "job.sh").write_text("echo partial\n")
    if damage == "cut short":
        (half / "params.json").write_text('{"hash":"0')
    assert Experiment.create(in_tmp).rebuild() == {}   # not a job yet
    jobs = _submit(space)
    assert list(jobs.job_state) == ["COMPLETED", "COMPLETED"]
    assert json.loads((half / "params.json").read_text())["params"] == {"code": 0, "i": 1}
    assert (half / "job.sh").read_text() == SCRIPT.format(code=0, i=1)
