"""The one helper that runs external commands (no shell)."""
from __future__ import annotations

from collections.abc import Sequence

from .errors import CommandError, CommandNotFoundError, QueueError


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
