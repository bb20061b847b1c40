"""Writing files safely: whole files in place, or atomic replacement (temp, fsync, rename).

``os.replace`` is atomic on local filesystems and on NFS and Lustre (the server renames), so
a reader on any node sees the old or the new file, never a mix; a crash mid-write leaves a
stray temp file and the old one.
"""
from __future__ import annotations

import contextlib
import json
import os
from typing import Any


def token(nbytes: int) -> str:
    """A random hex token (experiment ids, temp file names)."""
    return os.urandom(nbytes).hex()


def write_file(path: str, text: str | bytes, mode: int = 0o644) -> None:
    """Write a file in place (no temp file: for files whose completeness is checked on read)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        data = text.encode() if isinstance(text, str) else text
        while data:
            data = data[os.write(fd, data):]
    finally:
        os.close(fd)


def atomic_write(path: str, text: "str | bytes | memoryview", mode: int = 0o644) -> None:
    """Replace ``path`` with ``text``: temp file, fsync, rename (readers see old or new)."""
    tmp = f"{path}.tmp-{os.getpid()}-{token(3)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode() if isinstance(text, str) else text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:   # e.g. the disk is full: leave no partial temp file behind
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def file_version(path: str) -> tuple | None:
    """What tells one version of a file from another written since (atomically replaced:
    a new inode and times); None if there is none. Opened, not just stat'ed: on NFS an open
    checks the server for a newer file (close-to-open consistency), where a stat may answer
    from the client's cache."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        st = os.fstat(fd)
    finally:
        os.close(fd)
    return st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size


def write_json(path: str, data: Any) -> None:
    write_file(path, json.dumps(data, indent=1))
