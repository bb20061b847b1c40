import os
import shutil
import subprocess

import pytest


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run the test inside a fresh temporary folder (job folders land there)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _slurm_up() -> bool:
    if shutil.which("sbatch") is None:
        return False
    done = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    return done.returncode == 0 and any(s in done.stdout for s in ("idle", "mix", "alloc"))


@pytest.fixture(scope="session")
def slurm():
    """The live local Slurm cluster (scripts/start-slurm.sh). In CI its absence fails the test."""
    if not _slurm_up():
        message = "no live Slurm cluster: run scripts/start-slurm.sh (as root) first"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def logging_shims(folder, commands, monkeypatch, extra_path=""):
    """Put shims of ``commands`` ({name: real program}) first on PATH; each records its argv
    (a line per call) and runs the real program. Returns a reader of the recorded calls."""
    folder.mkdir()
    log = folder / "calls.log"
    for name, real in commands.items():
        shim = folder / name
        shim.write_text(f'#!/bin/bash\necho "{name} $*" >> {log}\nexec {real} "$@"\n')
        shim.chmod(0o755)
    monkeypatch.setenv("PATH", ":".join(filter(None, [str(folder), extra_path, os.environ["PATH"]])))

    def calls(name=None):
        lines = log.read_text().splitlines() if log.exists() else []
        return [ln for ln in lines if name is None or ln.split()[0] == name]

    calls.shims, calls.log = folder, log
    return calls


@pytest.fixture
def command_log(tmp_path, monkeypatch):
    """Logging shims of the Slurm commands first on PATH (see logging_shims)."""
    names = ("sbatch", "squeue", "sacct", "scancel", "scontrol")
    commands = {name: shutil.which(name) for name in names if shutil.which(name)}
    return logging_shims(tmp_path / "shims", commands, monkeypatch)


def fail_or_skip(message):
    """A live scheduler that is missing: a failure under CI=true, else a skip."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def wait_jobs(jobs, timeout=180):
    """ps.wait with a short poll interval, as the live tests use it."""
    import param_search as ps

    return ps.wait(jobs, timeout=timeout, progress=False, poll_interval=0.5, max_interval=2)


def until(check, timeout=90):
    """Poll ``check`` every half second until it is true (AssertionError after ``timeout``)."""
    import time

    deadline = time.time() + timeout
    while not check():
        if time.time() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.5)


KILL_CONTROLLER = """
import sys
import param_search as ps
ps.submit('echo ran >> ran.txt', 'job_{i}', ps.ParamSpace(i=range(int(sys.argv[2]))),
          use=sys.argv[4], work_dir=sys.argv[1], array=sys.argv[3] == 'array')
"""


def kill_during_submit_then_rerun(tmp_path, use, mode, n, trials, seed, window=(0.4, 1.4)):
    """Kill -9 a controller at a random moment of its submission, run it again, and check
    that every job ran exactly once. Returns how many kills left SUBMITTING records."""
    import random
    import signal
    import subprocess
    import sys
    import time

    import param_search as ps
    from param_search import index_file

    rng = random.Random(seed)
    landed = 0
    for trial in range(trials):
        work_dir = tmp_path / f"t{trial}"
        argv = [sys.executable, "-c", KILL_CONTROLLER, str(work_dir), str(n), mode, use]
        proc = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(*window))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        index = work_dir / ".param_search" / "index.arrow"
        landed += index.exists() and "SUBMITTING" in index_file.read(str(index)).column("state").to_pylist()
        subprocess.run(argv, check=True, stderr=subprocess.DEVNULL)
        jobs = wait_jobs(ps.load(work_dir), timeout=300)
        assert set(jobs.job_state) == {"COMPLETED"}
        for i in range(n):
            assert (work_dir / f"job_{i}" / "ran.txt").read_text() == "ran\n"
    return landed
