"""The one helper that runs external commands (no shell), and the one that starts a
background process of this package."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .errors import CommandError, CommandNotFoundError, QueueError

if TYPE_CHECKING:
    import subprocess


def call(argv: Sequence[str], input: str | None = None, timeout: float = 300.0) -> str:
    """Run ``argv`` and return its stdout.

    Success is judged by the exit code alone: text on stderr is not failure.

    Raises:
        CommandError: the command exited non-zero (carries argv, code, stdout, stderr).
        CommandNotFoundError: the program is not installed.
        QueueError: it did not finish within ``timeout``.
    """
    import subprocess

    argv = [str(a) for a in argv]
    try:
        done = subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError as exc:
        raise CommandNotFoundError(f"{argv[0]!r} was not found: is the scheduler installed and on PATH?") from exc
    except subprocess.TimeoutExpired as exc:
        raise QueueError(f"command {' '.join(argv)!r} did not finish within {timeout:g} s") from exc
    if done.returncode != 0:
        raise CommandError(argv, done.returncode, done.stdout, done.stderr)
    return done.stdout


def start_detached(module: str, args: Sequence[str], log_path: str) -> "subprocess.Popen":
    """Start ``python -m module args`` in a session of its own, so that it outlives this
    process, its terminal and its SSH connection; its output is appended to ``log_path``."""
    import subprocess
    import sys

    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", module, *args], stdin=subprocess.DEVNULL, stdout=log,
                                stderr=log, start_new_session=True)
