"""One process at a time per role (an experiment's supervisor, its search controller): an
exclusive lock held for the process's life, and a file naming who holds it meanwhile.

The lock, not the file, decides: a killed holder's lock goes with it, so a stale file
never blocks the next one.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator

from .attempts import process_identity


@contextlib.contextmanager
def held(lock_path: str, who_path: str, busy: "Callable[[str | None], Exception]",
         patience: float = 0.0) -> Iterator[None]:
    """Hold the lock for the block, this process (``host:pid:ticks``) named in ``who_path``
    meanwhile; if another process holds it (for longer than ``patience`` seconds), raise
    ``busy(who holds it)``."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    if not _lock(fd, patience):
        os.close(fd)
        raise busy(holder(lock_path, who_path))
    with open(who_path, "w") as f:
        f.write(f"{process_identity()}\n")
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(who_path)
        os.close(fd)


def holder(lock_path: str, who_path: str) -> str | None:
    """Who holds the lock (``host:pid:ticks``; "" while one starts up), None if nobody."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            with open(who_path) as f:
                return f.read().strip()
        except OSError:
            return ""
    finally:
        os.close(fd)
    return None


def _lock(fd: int, patience: float) -> bool:
    deadline = time.monotonic() + patience
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
