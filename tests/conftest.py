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


@pytest.fixture
def command_log(tmp_path, monkeypatch):
    """Put logging shims of the Slurm commands first on PATH; returns a reader of the calls.

    The shims run the real commands: they only record each argv (one line per call).
    """
    shims = tmp_path / "shims"
    shims.mkdir()
    log = tmp_path / "calls.log"
    for name in ("sbatch", "squeue", "sacct", "scancel", "scontrol"):
        real = shutil.which(name)
        if real is None:
            continue
        shim = shims / name
        shim.write_text(f'#!/bin/bash\necho "{name} $*" >> {log}\nexec {real} "$@"\n')
        shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shims}:{os.environ['PATH']}")

    def calls(name=None):
        lines = log.read_text().splitlines() if log.exists() else []
        return [ln for ln in lines if name is None or ln.split()[0] == name]

    calls.shims = shims
    return calls
