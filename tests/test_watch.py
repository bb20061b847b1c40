"""The supervisor, ``param-search watch``, on the local queue."""
import io
import os
import signal
import subprocess
import sys
import time

import pytest

import param_search as ps
from param_search import watch
from param_search.experiment import Experiment

FLAKY = """n=$(ls job.*.status | wc -l)
sleep 0.3
if [ $n -lt 2 ]; then exit 75; fi
"""


def _cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "param_search.cli", *args], capture_output=True,
                          text=True, timeout=120, **kwargs)


def _sweep(work_dir, n=6, template=FLAKY, **kwargs):
    return ps.submit(template, "j{i}", ps.ParamSpace(i=range(n)), work_dir=work_dir, wait=False,
                     progress=False, **kwargs)


def test_watch_retries_and_tops_up_until_every_job_is_final(tmp_path):
    _sweep(tmp_path, max_queued=2, retry=ps.Retry(on={"FAILED": {"exit_codes": [75]}}))
    done = _cli("watch", str(tmp_path), "--interval", "0.3")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "6 jobs: 6 COMPLETED"
    assert all("\x1b" not in line for line in lines)   # not a terminal: plain lines
    assert any("RUNNING" in line for line in lines)
    table = ps.load(tmp_path)
    assert table.attempt.tolist() == [2] * 6 and table.history.str.contains("FAILED \\(exit 75\\)").all()


def test_the_view_redraws_in_place_on_a_terminal(tmp_path):
    _sweep(tmp_path, n=2, template="exit 3\n")
    ps.wait(str(tmp_path), progress=False)
    out = io.StringIO()
    view = watch.View(out, tty=True)
    table = ps.load(tmp_path)
    view.show(table)
    view.show(table)
    text = out.getvalue()
    assert "latest failures:" in text and "\x1b[4F\x1b[J" in text   # up over the last frame's 4 lines


def test_one_supervisor_per_experiment_detached_and_stopped_without_stopping_jobs(tmp_path):
    jobs = _sweep(tmp_path, n=2, template="sleep 30\n")
    started = _cli("watch", str(tmp_path), "--detach")
    assert started.returncode == 0, started.stderr
    exp = Experiment.open(tmp_path)
    who = watch.supervisor(exp)
    host, pid, _ = who.rsplit(":", 2)
    assert host == os.uname().nodename and int(pid) > 0
    second = _cli("watch", str(tmp_path))
    assert second.returncode == 1 and "already watches" in second.stderr and "--stop" in second.stderr
    assert f"pid {pid} on {host}" in second.stderr
    deadline = time.monotonic() + 30
    while not (ps.status(jobs).job_state == "RUNNING").all():   # its detached runner runs them
        assert time.monotonic() < deadline
        time.sleep(0.2)
    stopped = _cli("watch", str(tmp_path), "--stop")
    assert stopped.returncode == 0 and f"pid {pid}" in stopped.stdout
    assert watch.supervisor(exp) is None and not os.path.exists(tmp_path / ".param_search" / "watch.pid")
    assert (ps.status(jobs).job_state == "RUNNING").all()   # the jobs go on
    ps.cancel(jobs)


def test_ctrl_c_stops_the_supervisor_not_the_jobs(tmp_path):
    jobs = _sweep(tmp_path, n=1, template="sleep 30\n")
    proc = subprocess.Popen([sys.executable, "-m", "param_search.cli", "watch", str(tmp_path), "--interval", "0.2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while ps.status(jobs).job_state[0] != "RUNNING":
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "the jobs go on" in err
    assert ps.status(jobs).job_state[0] == "RUNNING"
    ps.cancel(jobs)


def test_watch_of_a_folder_without_an_experiment_says_so(tmp_path):
    done = _cli("watch", str(tmp_path / "nothing"))
    assert done.returncode == 1 and "Traceback" not in done.stderr


@pytest.mark.parametrize("flag", ["--stop"])
def test_stop_without_a_supervisor_is_no_error(tmp_path, flag):
    _sweep(tmp_path, n=1, template="true\n")
    done = _cli("watch", str(tmp_path), flag)
    assert done.returncode == 0 and "no supervisor" in done.stdout


def test_probing_for_a_supervisor_never_turns_a_starting_one_away(tmp_path):
    """Another process asking who supervises (it takes the lock a moment) must not make a
    supervisor that starts at that instant give up."""
    import threading

    _sweep(tmp_path, n=1, template="true\n")
    exp = Experiment.open(tmp_path)
    stop = threading.Event()

    def probe():
        while not stop.is_set():
            watch.supervisor(exp)

    thread = threading.Thread(target=probe)
    thread.start()
    try:
        for _ in range(200):
            with watch.supervising(exp):
                pass
    finally:
        stop.set()
        thread.join()
