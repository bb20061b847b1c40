"""Requeue without a scheduler: the wrapper's takeover protocol (run with Slurm's variables
set by hand), restart lines read back, and the lifecycle and Slurm poll that keep a requeued
job one attempt. The live counterparts are in tests/test_slurm_requeue.py."""
import os
import pathlib
import signal
import subprocess
import sys
import time
from datetime import datetime

import numpy as np
import pytest

from param_search import index_file
from param_search.attempts import observe, read_status
from param_search.lifecycle import Exited, Started, Verdict, apply, stopped
from param_search.queues import slurm
from param_search.record import new_record
from param_search.refresh import refresh
from param_search.render import RenderedJob

WRAPPER = pathlib.Path(__file__).resolve().parents[1] / "src" / "param_search" / "wrapper.sh"

JOB = """\
trap 'echo "got USR1"' USR1
trap 'echo "got TERM"; exit 7' TERM
echo "run $PS_RESTART_COUNT $PS_CHECKPOINT_DIR"
for i in $(seq 30); do sleep 0.1; done
echo finished
"""


@pytest.fixture
def job(tmp_path):
    (tmp_path / "job.sh").write_text(JOB)
    return tmp_path


def _env(job_id="77", restart=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SGE_", "PBS_"))}
    env["SLURM_JOB_ID"] = job_id
    if restart is not None:
        env["SLURM_RESTART_COUNT"] = str(restart)
    return env


def _run(job, mode="source", **env):
    return subprocess.run(["bash", str(WRAPPER), str(job), "1", mode], env=_env(**env), timeout=30)


def _start(job, mode="source", **env):
    """The wrapper in its own session, leading its process group as under a scheduler."""
    proc = subprocess.Popen(["bash", str(WRAPPER), str(job), "1", mode], env=_env(**env),
                            start_new_session=True)
    until = time.time() + 10
    while "run" not in _text(job, "out"):
        assert time.time() < until, "the job did not start"
        time.sleep(0.02)
    return proc


def _text(job, suffix):
    path = job / f"job.1.{suffix}"
    return path.read_text() if path.exists() else ""


def _kinds(job):
    return [line.split()[0] for line in _text(job, "status").splitlines()]


PYTHON_JOB = f"""#!{sys.executable}
import os, signal, sys, time
signal.signal(signal.SIGUSR1, lambda *_: print("got USR1", flush=True))
signal.signal(signal.SIGTERM, lambda *_: (print("got TERM", flush=True), sys.exit(7)))
print("run", os.environ["PS_RESTART_COUNT"], os.environ["PS_CHECKPOINT_DIR"], flush=True)
time.sleep(3)
"""


@pytest.mark.parametrize("mode", ["source", "exec"])
def test_usr1_and_term_reach_the_job_and_the_exit_line_names_the_last(job, mode):
    if mode == "exec":
        (job / "job.sh").write_text(PYTHON_JOB)
        (job / "job.sh").chmod(0o755)
    proc = _start(job, mode)
    proc.send_signal(signal.SIGUSR1)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 143
    assert "got USR1\ngot TERM\n" in _text(job, "out")
    start, end = read_status(str(job / "job.1.status"))
    assert (end.exit_code, end.signal, start.restarts) == (143, "TERM", 0)
    assert f"run 0 {job}/checkpoint" in _text(job, "out") and (job / "checkpoint").is_dir()


def test_usr1_does_not_end_a_job_that_does_not_handle_it(job):
    (job / "job.sh").write_text("echo run\nsleep 1 | cat\necho finished\n")
    proc = _start(job)
    proc.send_signal(signal.SIGUSR1)
    assert proc.wait(timeout=10) == 0
    assert _text(job, "out") == "run\nfinished\n"


def test_after_usr1_the_job_decides_and_its_own_exit_code_is_kept(job):
    (job / "job.sh").write_text("trap 'echo saved; exit 0' USR1\necho run\nsleep 20 & wait\n")
    proc = _start(job)
    proc.send_signal(signal.SIGUSR1)
    assert proc.wait(timeout=10) == 0
    assert read_status(str(job / "job.1.status"))[1].signal == "USR1"
    assert _text(job, "out") == "run\nsaved\n"


def _stopped_run(job):
    proc = _start(job)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=10)
    assert _kinds(job) == ["start", "exit"]


def test_a_requeued_run_of_the_same_job_takes_the_attempt_over_once(job):
    _stopped_run(job)
    _run(job, restart=1)
    assert _kinds(job) == ["start", "exit", "restart", "exit"]
    out = _text(job, "out")
    assert out.startswith("run 0") and f"run 1 {job}/checkpoint\n" in out and out.endswith("finished\n")
    start, end = read_status(str(job / "job.1.status"))
    assert (start.restarts, start.scheduler_id, end.exit_code, end.signal) == (1, "77", 0, None)
    _run(job, restart=1)   # the same run again: nothing
    _run(job, restart=2)   # a later requeue of a run that finished by itself: nothing
    assert _kinds(job) == ["start", "exit", "restart", "exit"]


@pytest.mark.parametrize("env", [{"restart": None}, {"restart": 0}, {"job_id": "78", "restart": 1}])
def test_other_copies_of_a_stopped_attempt_exit_untouched(job, env):
    _stopped_run(job)
    before = _text(job, "status"), _text(job, "out")
    assert _run(job, **env).returncode == 0
    assert (_text(job, "status"), _text(job, "out")) == before


def test_a_killed_run_is_taken_over_only_once_it_is_dead(job):
    proc = _start(job)
    _run(job, restart=1)   # Slurm would not do this; the live previous run keeps the attempt
    assert _kinds(job) == ["start"]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    _run(job, restart=1)
    assert _kinds(job) == ["start", "restart", "exit"]


def _tree(pid):
    """``pid`` and its descendants, deepest first (the order Slurm's linuxproc tracking signals them)."""
    try:
        children = (pathlib.Path(f"/proc/{pid}/task/{pid}/children").read_text()).split()
    except OSError:
        children = []
    return [p for child in children for p in _tree(int(child))] + [pid]


@pytest.mark.parametrize("script, then", [("sleep 300\n", ""), ("sleep 300\n", "exit 1\n")])
def test_a_stop_that_reaches_the_job_before_the_wrapper_is_still_recorded(job, script, then):
    """A scheduler stops a job by signalling its processes one by one, children first (Slurm's
    linuxproc tracking): the job may end, even run on to exit 1, before this shell gets its TERM."""
    (job / "job.sh").write_text("echo run\n" + script + then)
    proc = _start(job)
    until = time.time() + 10
    while len(_tree(proc.pid)) < 3:   # the wrapper, the job's subshell, its sleep
        assert time.time() < until, "the job's sleep did not start"
        time.sleep(0.02)
    for pid in _tree(proc.pid):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass   # it ended as its child did
        time.sleep(0.05)   # a loaded node: the job's end reaches the wrapper first
    assert proc.wait(timeout=10) == 143
    start, end = read_status(str(job / "job.1.status"))
    assert (end.exit_code, end.signal) == (143, "TERM")


def test_the_status_file_reader_follows_the_current_run(tmp_path):
    path = tmp_path / "job.1.status"
    path.write_text("start 10.0 5 6 n1 77\nexit 143 12.0 TERM\n")
    start, end = read_status(str(path))
    assert (start.started, start.restarts, end.signal) == (10.0, 0, "TERM")
    path.write_text("start 10.0 5 6 n1 77\nexit 143 12.0 TERM\nrestart 1 30.0 8 9 n2\n")
    start, end = read_status(str(path))
    assert (start.started, start.pid, start.host, start.scheduler_id, start.restarts, end) == (30.0, 8, "n2", "77", 1, None)
    path.write_text("start 10.0 5 6 n1 77\nrestart 2 30.0 8 9 n2\nexit 0 40.0\n")
    start, end = read_status(str(path))
    assert (start.restarts, end.exit_code, end.signal) == (2, 0, None)


def _record(**fields):
    rec = new_record(RenderedJob("job", "h", {"x": 1}, "true\n"))
    rec.update(attempt=1, queue="slurm", job_id="5_0", state="RUNNING", started=10.0, submitted=time.time())
    rec.update(fields)
    return rec


def test_a_held_stop_waits_for_the_scheduler_then_is_requeued_or_ends():
    rec = _record()
    assert apply(rec, Exited(143, 12.0, "TERM", held=True))
    assert stopped(rec) and rec["exit_code"] == 143 and "SIGTERM" in rec["reason"]
    assert not apply(rec, Verdict("RUNNING"))        # still completing
    assert apply(rec, Verdict("PENDING", "BeginTime"))
    assert (rec["state"], rec["restarts"], rec["exit_code"], rec["started"], rec["reason"]) == (
        "PENDING", 1, None, None, "BeginTime")
    assert not apply(rec, Started(10.0, "n1", restarts=0))   # the stopped run's line, read late
    assert apply(rec, Started(30.0, "n2", restarts=1)) and (rec["state"], rec["started"]) == ("RUNNING", 30.0)
    assert apply(rec, Exited(0, 40.0)) and (rec["state"], rec["attempt"], rec["restarts"]) == ("COMPLETED", 1, 1)
    for verdict, state in (("CANCELLED", "CANCELLED"), ("TIMEOUT", "TIMEOUT"), ("FAILED", "CANCELLED"),
                           ("PREEMPTED", "PREEMPTED")):
        rec = _record()
        apply(rec, Exited(143, 12.0, "TERM", held=True))
        assert apply(rec, Verdict(verdict)) and (rec["state"], rec["exit_code"]) == (state, 143)
    rec = _record()
    apply(rec, Exited(0, 12.0, "USR1", held=True))   # saved on the warning and stopped by itself
    assert apply(rec, Verdict("COMPLETED")) and rec["state"] == "COMPLETED"


def test_a_later_run_supersedes_a_held_stop_without_a_pending_answer():
    rec = _record()
    apply(rec, Exited(143, 12.0, "TERM", held=True))
    assert apply(rec, Started(30.0, "n1", restarts=1))
    assert (rec["state"], rec["exit_code"], rec["signal"], rec["ended"], rec["reason"], rec["restarts"]) == (
        "RUNNING", None, None, None, None, 1)


def test_unheld_signal_exits_end_the_attempt_as_before():
    rec = _record()
    apply(rec, Exited(143, 12.0, "TERM"))
    assert rec["state"] == "CANCELLED" and not apply(rec, Verdict("PENDING"))


class _Folder:
    """What observe and refresh need of an experiment: the attempt files' paths."""

    def __init__(self, path):
        self.path = path

    def attempt_path(self, record, suffix):
        return str(self.path / f"job.{record['attempt']}.{suffix}")


def _squeue(monkeypatch, answer, sacct=None):
    """squeue's answer about job 5_0 (None: not listed); sacct's, if asked (None: unknown)."""
    submit = datetime.now().isoformat(timespec="seconds")
    text = f"5_0|{answer}|{'BeginTime' if answer == 'PENDING' else 'None'}|n1|{submit}\n" if answer else ""
    accounted = slurm.parse_sacct(f"5_0|5_0|x|{sacct}|0:0|00:00:02|n1|{submit}|{submit}|{submit}\n") if sacct else {}
    monkeypatch.setattr(slurm.SlurmQueue, "status_text", lambda self, ids: text)
    monkeypatch.setattr(slurm.SlurmQueue, "accounting", lambda self, records: accounted)


def test_the_slurm_poll_keeps_a_preempted_job_one_attempt(tmp_path, monkeypatch):
    exp, rec = _Folder(tmp_path), _record()
    status = tmp_path / "job.1.status"
    steps = [   # (status file lines added, squeue's state) -> (state, restarts, exit code)
        ("exit 143 12.0 TERM", "COMPLETING", ("RUNNING", 0, 143)),   # stopped: Slurm decides
        ("", "PENDING", ("PENDING", 1, None)),                        # requeued (sacct: PREEMPTED)
        ("", "RUNNING", ("RUNNING", 1, None)),                        # restarted, no line yet
        ("restart 1 30.0 8 9 n1", "RUNNING", ("RUNNING", 1, None)),
        ("exit 0 40.0", "COMPLETED", ("COMPLETED", 1, 0)),
    ]
    status.write_text("start 10.0 5 6 n1 5_0\n")
    for line, answer, expected in steps:
        with open(status, "a") as f:
            f.write(line + "\n" if line else "")
        _squeue(monkeypatch, answer, sacct="PREEMPTED" if answer in ("COMPLETING", "PENDING") else None)
        refresh(exp, [rec])
        assert (rec["state"], rec["restarts"], rec["exit_code"]) == expected, (line, answer)
    assert rec["attempt"] == 1 and rec["started"] == 30.0


def test_the_column_wise_refresh_leaves_a_stopped_run_to_its_status_file(tmp_path):
    """squeue still says RUNNING (COMPLETING, or a requeued run already going): the files tell."""
    from param_search import refresh as engine

    running, held = _record(job_id="5_0"), _record(job_id="5_1")
    apply(held, Exited(143, 12.0, "TERM", held=True))
    index = index_file.from_records([running, held], str(tmp_path))
    submit = datetime.now().isoformat(timespec="seconds")
    snapshot = slurm.parse_squeue_table(f"5_0|RUNNING|None|n1|{submit}\n5_1|COMPLETING|None|n1|{submit}\n")
    _, confirmed, _ = engine._confirm(index, np.ones(2, dtype=bool), snapshot)
    assert list(confirmed) == [True, False]


def test_a_stopped_job_the_scheduler_no_longer_lists_ends_as_its_exit_line_says(tmp_path, monkeypatch):
    exp, rec = _Folder(tmp_path), _record()
    (tmp_path / "job.1.status").write_text("start 10.0 5 6 n1 5_0\nexit 143 12.0 TERM\n")
    _squeue(monkeypatch, "COMPLETING")
    refresh(exp, [rec])
    assert stopped(rec)
    _squeue(monkeypatch, None)   # gone, and accounting does not know it
    refresh(exp, [rec])
    assert (rec["state"], rec["exit_code"]) == ("CANCELLED", 143)
    rec = _record()   # preempted where preemption cancels: gone from squeue, PREEMPTED in sacct
    _squeue(monkeypatch, "COMPLETING")
    refresh(exp, [rec])
    _squeue(monkeypatch, None, sacct="PREEMPTED")
    refresh(exp, [rec])
    assert (rec["state"], rec["exit_code"], rec["restarts"]) == ("PREEMPTED", 143, 0)


def test_without_requeues_a_signal_exit_is_final_at_once(tmp_path):
    rec = _record(queue="local")
    (tmp_path / "job.1.status").write_text("start 10.0 5 6 n1\nexit 143 12.0 TERM\n")
    observe(_Folder(tmp_path), rec)
    assert rec["state"] == "CANCELLED"


def test_an_index_written_before_restarts_existed_is_read_with_zero_restarts(tmp_path):
    rec = _record(state="COMPLETED")
    table = index_file.from_records([rec], str(tmp_path))
    old = table.remove_column(table.schema.get_field_index("restarts"))
    path = str(tmp_path / "index.arrow")
    index_file.write(path, old)
    back = index_file.to_records(index_file.read(path))
    assert back[0]["restarts"] == 0 and index_file.read(path).column_names == table.column_names


def test_requeue_options_for_sbatch():
    assert slurm.SlurmQueue().options == []                      # today's submissions unchanged
    assert slurm.SlurmQueue(requeue=True).options == ["--requeue", "--signal=B:USR1@60"]
    assert slurm.SlurmQueue(partition="p", requeue=True, requeue_grace=30, extra_args=["--x"]).options == [
        "--partition=p", "--requeue", "--signal=B:USR1@30", "--x"]
    with pytest.raises(Exception, match="pass requeue=True"):
        slurm.SlurmQueue(requeue_grace=30)
    with pytest.raises(Exception, match="positive number of seconds"):
        slurm.SlurmQueue(requeue=True, requeue_grace=-1)
