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
