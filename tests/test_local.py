"""The local queue: runs scripts with bash, N at a time, records outcomes, stops on Ctrl-C."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import param_search as ps
from param_search import index_file


def test_failing_job_never_stops_the_others(in_tmp):
    script = "echo start {i}\nif [ {i} = 2 ]; then echo 'ValueError: bad i' >&2; exit 3; fi\necho done\n"
    jobs = ps.submit(script, "job_{i}", ps.ParamSpace(i=range(5)), workers=2, progress=False)
    assert list(jobs.job_state) == ["COMPLETED", "COMPLETED", "FAILED", "COMPLETED", "COMPLETED"]
    failed = jobs.iloc[2]
    assert failed.exit_code == 3
    assert failed.error == "ValueError: bad i"
    assert failed.stdout == "start 2\n"
    assert jobs.iloc[0].stdout == "start 0\ndone\n"
    assert (jobs.runtime >= 0).all() and jobs.started.notna().all() and jobs.ended.notna().all()
    assert list(jobs.job_id.str.isdigit()) == [True] * 5


def test_workers_bound_concurrency(in_tmp):
    script = "date +%s.%N > t0; sleep 0.3; date +%s.%N > t1\n"
    jobs = ps.submit(script, "job_{i}", ps.ParamSpace(i=range(6)), workers=2, progress=False)
    spans = [tuple(float(open(os.path.join(d, f)).read()) for f in ("t0", "t1")) for d in jobs.job_dir]
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    running, peak = 0, 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert peak == 2


def test_script_with_its_own_interpreter(in_tmp):
    script = "#!/usr/bin/env python3\nimport os\nprint('py', {x} * 2, os.getcwd())\n"
    jobs = ps.submit(script, "job_{x}", ps.ParamSpace(x=[21]), progress=False)
    assert jobs.iloc[0].stdout == f"py 42 {in_tmp / 'job_21'}\n"


def test_python_traceback_is_the_error_line(in_tmp):
    script = "#!/usr/bin/env python3\nimport sys\nprint('working')\nraise KeyError('lr')\n"
    jobs = ps.submit(script, "job_{x}", ps.ParamSpace(x=[1]), progress=False)
    row = jobs.iloc[0]
    assert row.job_state == "FAILED" and row.exit_code == 1
    assert row.error == "KeyError: 'lr'"
    assert "Traceback" in row.stderr


def test_huge_logs_are_tail_limited(in_tmp):
    jobs = ps.submit("seq 1 200000\necho last line\n", "job_{x}", ps.ParamSpace(x=[1]), progress=False)
    out = jobs.iloc[0].stdout
    assert len(out) < 9000 and out.endswith("200000\nlast line\n") and out.startswith("[... earlier")
    assert os.path.getsize(os.path.join(jobs.iloc[0].job_dir, "job.1.out")) > 1_000_000


def test_stderr_alone_is_not_failure(in_tmp):
    jobs = ps.submit("echo 'warning: something' >&2\n", "job_{x}", ps.ParamSpace(x=[1]), progress=False)
    assert jobs.iloc[0].job_state == "COMPLETED" and jobs.iloc[0].error == ""


def test_status_refreshes_the_same_table(in_tmp):
    jobs = ps.submit("exit {x}", "job_{x}", ps.ParamSpace(x=[0, 1]), progress=False)
    again = ps.status(jobs)
    assert list(again.job_state) == ["COMPLETED", "FAILED"]
    assert list(again.columns) == list(jobs.columns)


CONTROLLER = textwrap.dedent("""
    import param_search as ps
    ps.submit('echo started; sleep 60', 'job_{{i}}', ps.ParamSpace(i=range(4)), use='local',
              work_dir={work_dir!r}, workers=2, progress=False)
""")


def _alive(pid):
    """Running (a zombie waiting to be reaped by init counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_ctrl_c_terminates_running_jobs_and_records_them_cancelled(tmp_path):
    # as in a terminal: a background or CI process may have inherited SIGINT ignored
    proc = subprocess.Popen([sys.executable, "-c", CONTROLLER.format(work_dir=str(tmp_path))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 60
    outs = [tmp_path / f"job_{i}" / "job.1.out" for i in (0, 1)]
    while time.time() < deadline and not all(p.exists() and p.read_text() for p in outs):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    assert all(p.exists() and p.read_text() for p in outs), "the jobs never started"
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"the controller did not stop on SIGINT: {proc.communicate()}")
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    jobs = ps.load(tmp_path)
    assert list(jobs.job_state) == ["CANCELLED"] * 4
    pids = [int(open(tmp_path / f"job_{i}" / "job.1.status").read().split()[2]) for i in (0, 1)]
    assert not any(_alive(pid) for pid in pids)
    assert not (tmp_path / "job_2" / "job.1.status").exists()   # never started
    assert jobs.iloc[0].stdout == "started\n"
    assert len(index_file.read(str(tmp_path / ".param_search" / "index.arrow"))) == 4
    # a second run picks the cancelled jobs up again
    jobs = ps.submit("echo started; sleep 60", "job_{i}", ps.ParamSpace(i=range(4)), work_dir=tmp_path,
                     wait=False)
    assert set(jobs.job_state) == {"PENDING"} and set(jobs.attempt) == {2}
    ps.cancel(jobs)
    assert set(ps.load(tmp_path).job_state) == {"CANCELLED"}


def test_unknown_queue_and_options_are_errors(in_tmp):
    with pytest.raises(ps.ParamSearchError, match="unknown queue 'pbs2'"):
        ps.submit("true", "j_{x}", ps.ParamSpace(x=[1]), use="pbs2")
    with pytest.raises(ps.ParamSearchError, match="unknown option 'partition'.*valid options: workers"):
        ps.submit("true", "j_{x}", ps.ParamSpace(x=[1]), use="local", partition="gpu")
    assert not os.listdir(in_tmp)


def test_script_that_changes_directory_or_sets_its_own_exit_trap(in_tmp):
    script = "mkdir -p sub; cd sub\nif [ {x} = 1 ]; then trap 'echo bye' EXIT; fi\nexit {x}{x}\n"
    jobs = ps.submit(script, "job_{x}", ps.ParamSpace(x=[1, 2]), progress=False)
    assert list(jobs.exit_code) == [11, 22]
    assert list(jobs.job_state) == ["FAILED", "FAILED"]
    assert jobs.iloc[0].stdout == "bye\n"
    assert "exit 22" in (in_tmp / "job_2" / "job.1.status").read_text()


WRAPPER = os.path.join(os.path.dirname(ps.__file__), "wrapper.sh")


def _worker_job(tmp_path, script, files=None):
    """Hand ``script`` to a ``wrapper.sh --worker`` as the local queue does; return the worker,
    the job's folder and the job's pid (which leads its process group) once it printed ready."""
    job = tmp_path / "job"
    (job / "checkpoint").mkdir(parents=True)
    (job / "job.sh").write_text(script)
    for name, text in (files or {}).items():
        (job / name).write_text(text)
    worker = subprocess.Popen(["bash", WRAPPER, "--worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, start_new_session=True, env={**os.environ, "PY": sys.executable})
    worker.stdin.write(f"{job}\t1\tsource\n")
    worker.stdin.flush()
    kind, pid = worker.stdout.readline().split()
    assert kind == "S"
    deadline = time.time() + 20
    while "ready" not in _text(job / "job.1.out"):
        assert time.time() < deadline, "the job did not start"
        time.sleep(0.02)
    return worker, job, int(pid)


def _end_status(worker, pid):
    """The worker's end line for the job: its exit status."""
    line = worker.stdout.readline().split()
    worker.stdin.close()
    worker.wait(timeout=10)
    assert line[:2] == ["E", str(pid)]
    return int(line[2])


def _text(path):
    return path.read_text() if path.exists() else ""


@pytest.mark.parametrize("script", [
    # runs in the worker's own shell (no fork): set -eu must not keep the wrapper from recording
    "set -eu\nsleep 30 & echo $! > child\necho ready\nsleep 30\necho after\n",
    # its own trap, or exec: run in a subshell, the wrapper records as under a scheduler
    "trap 'echo got TERM; exit 7' TERM\nsleep 30 & echo $! > child\necho ready\nsleep 30\necho after\n",
    "sleep 30 & echo $! > child\necho ready\nexec sleep 30\n",
], ids=["plain", "own-trap", "exec"])
def test_cancel_of_a_local_job_stops_its_group_and_records_term(tmp_path, script):
    from param_search.attempts import read_status

    worker, job, pid = _worker_job(tmp_path, script)
    os.killpg(pid, signal.SIGTERM)   # as LocalQueue.cancel does
    assert _end_status(worker, pid) == 143
    start, end = read_status(str(job / "job.1.status"))
    assert (start.pid, end.exit_code, end.signal) == (pid, 143, "TERM")
    assert "after" not in _text(job / "job.1.out")
    child = int((job / "child").read_text())
    deadline = time.time() + 10
    while _alive(child) and time.time() < deadline:
        time.sleep(0.02)
    assert not _alive(child), "the job's child outlived the cancel"


SLOW_TERM_HANDLER = """\
import signal, sys, time
def handler(*_):
    time.sleep(0.5)
    with open("saved", "w") as f:
        f.write(repr(time.time()))
    sys.exit(3)
signal.signal(signal.SIGTERM, handler)
print("ready", flush=True)
time.sleep(30)
"""


def test_a_local_job_handling_term_finishes_its_handler_before_the_exit_line(tmp_path):
    """The wrapper records the end only once the job's process saved its work: the runner
    starts the next job only then."""
    from param_search.attempts import read_status

    worker, job, pid = _worker_job(tmp_path, 'echo started\n"$PY" handler.py\necho after\n',
                                   {"handler.py": SLOW_TERM_HANDLER})
    os.killpg(pid, signal.SIGTERM)
    assert _end_status(worker, pid) == 143
    assert (job / "saved").exists(), "the exit line came before the job's handler finished"
    end = read_status(str(job / "job.1.status"))[1]
    assert (end.exit_code, end.signal) == (143, "TERM") and float((job / "saved").read_text()) <= end.ended
    assert _text(job / "job.1.out") == "started\nready\n"


def test_a_local_job_gets_its_variables_and_starts_with_usr1_ignored(tmp_path):
    from param_search.attempts import read_status

    check = ("import os, signal\nprint('ready', os.environ['PS_RESTART_COUNT'], os.environ['PS_CHECKPOINT_DIR'],\n"
             "      signal.getsignal(signal.SIGUSR1) is signal.SIG_IGN)\n")
    worker, job, pid = _worker_job(tmp_path, '"$PY" check.py\nexit 4\n', {"check.py": check})
    assert _end_status(worker, pid) == 4
    assert _text(job / "job.1.out") == f"ready 0 {job}/checkpoint True\n"
    end = read_status(str(job / "job.1.status"))[1]
    assert (end.exit_code, end.signal) == (4, None)


def test_detached_runner_lets_the_submitting_process_walk_away(tmp_path):
    code = textwrap.dedent("""
        import sys, param_search as ps
        ps.submit('sleep 0.3; echo done {i}', 'job_{i}', ps.ParamSpace(i=range(4)), use='local',
                  work_dir=sys.argv[1], wait=False, detach=True, workers=2)
    """)
    start = time.time()
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)
    assert time.time() - start < 20   # returned without running the jobs itself
    deadline = time.time() + 60
    jobs = ps.status(tmp_path)   # status never runs jobs: only the detached runner does
    while time.time() < deadline and set(jobs.job_state) != {"COMPLETED"}:
        time.sleep(0.2)
        jobs = ps.status(tmp_path)
    assert list(jobs.job_state) == ["COMPLETED"] * 4
    assert list(jobs.stdout) == [f"done {i}\n" for i in range(4)]
    assert set(jobs.attempt) == {1}


def test_a_killed_worker_fails_no_job_and_cancels_nothing(tmp_path):
    """Only the worker dies: its running job is watched to its end, its queued one runs on
    another worker, the rest of the sweep goes on."""
    code = ("import param_search as ps, sys\n"
            "ps.submit('echo ran >> ran.txt; sleep 1', 'job_{i}', ps.ParamSpace(i=range(6)),\n"
            "          work_dir=sys.argv[1], workers=2, progress=False)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stderr=subprocess.PIPE, text=True)
    wrapper = str(tmp_path / ".param_search" / "wrapper.sh")
    deadline = time.time() + 30
    workers = []
    while not workers and time.time() < deadline:
        time.sleep(0.2)
        workers = [int(p) for p in os.listdir("/proc") if p.isdigit()
                   and _cmdline(p) == ["bash", wrapper, "--worker"]]
    assert workers, "no worker found"
    os.kill(workers[0], signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    jobs = ps.load(tmp_path)
    assert set(jobs.job_state) == {"COMPLETED"}
    for d in jobs.job_dir:
        assert open(os.path.join(d, "ran.txt")).read() == "ran\n"


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def test_a_stepper_waits_for_a_job_to_end_not_to_start(tmp_path):
    """The search controller's runner: a call returns once a job ended (a job's start wakes
    it too, and is no reason to return), or after ``wait`` with none ended."""
    from param_search.experiment import Experiment
    from param_search.queues.local import LocalQueue

    exp = Experiment.create(str(tmp_path / "w"))
    from param_search.dispatch import send
    from param_search.record import new_record
    from param_search.render import render_jobs

    queue = LocalQueue(workers=2)
    stepper = queue.stepper(exp)
    try:
        with exp.transaction() as records:
            rendered = render_jobs("sleep {t}\n", "job_{t}", [{"t": 0.5}, {"t": 30}], exp.work_dir)
            for job in rendered:
                exp.setup_job(job)
                records[job.job_name] = new_record(job)
            send(exp, queue, records, [records[j.job_name] for j in rendered], then=stepper.take)
        started = time.monotonic()
        assert stepper(wait=10.0, write=False) is True
        assert 0.4 < time.monotonic() - started < 5
        assert {r["job_name"] for r in stepper.news() if r["state"] == "COMPLETED"} == {"job_0.5"}
        started = time.monotonic()
        assert stepper(wait=0.3) is False   # the other one runs on
        assert 0.25 < time.monotonic() - started < 3
        started = time.monotonic()
        assert stepper.gather(0.3) == []   # gathering after a first end: none ends meanwhile
        assert 0.25 < time.monotonic() - started < 3
        # a wait whose deadline passed between the loop's check and the call: no time left, no error
        assert stepper.runner._wait_some(-0.01) == []
    finally:
        stepper.close()
        ps.cancel(str(tmp_path / "w"))


def test_a_stepper_gathers_ends_until_none_came_for_a_quiet_while(tmp_path):
    """A search writes its index once the jobs stop ending for a moment, not after the
    whole gathering time: a trial started meanwhile is named soon."""
    from param_search.dispatch import send
    from param_search.experiment import Experiment
    from param_search.queues.local import LocalQueue
    from param_search.record import new_record
    from param_search.render import render_jobs

    exp = Experiment.create(str(tmp_path / "w"))
    queue = LocalQueue(workers=3)
    stepper = queue.stepper(exp)
    try:
        with exp.transaction() as records:
            rendered = render_jobs("sleep {t}\n", "job_{t}", [{"t": 0.2}, {"t": 0.6}, {"t": 30}], exp.work_dir)
            for job in rendered:
                exp.setup_job(job)
                records[job.job_name] = new_record(job)
            send(exp, queue, records, [records[j.job_name] for j in rendered], then=stepper.take)
        assert stepper(wait=10.0, write=False) is True   # job_0.2 ended
        started = time.monotonic()
        gathered = stepper.gather(20.0, quiet=1.0)
        assert [r["job_name"] for r in gathered] == ["job_0.6"]   # within the quiet while of the last end
        assert 0.9 < time.monotonic() - started < 8   # then a quiet second: not the 20 s
    finally:
        stepper.close()
        ps.cancel(str(tmp_path / "w"))
