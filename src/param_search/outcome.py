"""What a job attempt left in its folder: the wrapper's start/exit files, logs, error line."""
from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass

from .states import JobState

#: Only the last this-many bytes of a log are kept in the jobs table.
LOG_TAIL_BYTES = 8192


@dataclass
class StartInfo:
    started: float
    pid: int
    ticks: int
    host: str
    scheduler_id: str


@dataclass
class ExitInfo:
    exit_code: int
    ended: float
    signal: str | None


def read_start(path: str) -> StartInfo | None:
    """The start file, or None if the attempt has not (visibly) started."""
    try:
        with open(path) as f:
            parts = f.read().split()
    except FileNotFoundError:
        return None
    if len(parts) < 4:
        return StartInfo(0.0, 0, 0, "", "")  # created, contents not yet written
    return StartInfo(float(parts[0]), int(parts[1]), int(parts[2]), parts[3],
                     parts[4] if len(parts) > 4 else "")


def read_exit(path: str) -> ExitInfo | None:
    """The exit file, or None if the attempt has not finished (or is still writing it)."""
    try:
        with open(path) as f:
            parts = f.read().split()
    except FileNotFoundError:
        return None
    if len(parts) < 2:
        return None
    return ExitInfo(int(parts[0]), float(parts[1]), parts[2] if len(parts) > 2 else None)


def process_alive(pid: int, ticks: int, host: str) -> bool | None:
    """Is the process that wrote a start file still running? None if it is on another host."""
    if host and host not in ("?", _hostname()):
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return ticks == 0 or (len(fields) > 19 and int(fields[19]) == ticks and fields[0] != "Z")


def _hostname() -> str:
    return socket.gethostname()


def read_tail(path: str, limit: int = LOG_TAIL_BYTES) -> str:
    """The last ``limit`` bytes of a text file ('' if it does not exist)."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            if size > limit:
                f.seek(size - limit)
                data = f.read()
                data = b"[... earlier output cut ...]\n" + data.split(b"\n", 1)[-1]
            else:
                f.seek(0)
                data = f.read()
    except (FileNotFoundError, IsADirectoryError):
        return ""
    return data.decode(errors="replace")


_EXCEPTION = re.compile(r"^\s*([A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b:?.*)$", re.M)
_SCHEDULER = re.compile(r"^.*(DUE TO TIME LIMIT|oom[-_ ]kill|Out Of Memory|out of memory|CANCELLED AT|Killed).*$", re.M | re.I)
_ERRORISH = re.compile(r"^.*\b(error|fatal|failed|exception|not found|no such file|denied|segmentation fault)\b.*$", re.M | re.I)

_STATE_TEXT = {
    JobState.TIMEOUT.value: "time limit reached (TIMEOUT)",
    JobState.OUT_OF_MEMORY.value: "out of memory (OUT_OF_MEMORY)",
    JobState.CANCELLED.value: "cancelled",
    JobState.NODE_FAIL.value: "node failure (NODE_FAIL)",
    JobState.PREEMPTED.value: "preempted by the scheduler (PREEMPTED)",
}


def error_line(state: str, exit_code: int | None, stderr: str, signal: str | None = None) -> str:
    """The most telling line explaining why a job did not complete ('' if it did)."""
    if state == JobState.COMPLETED.value:   # stderr is no failure; but show a traceback's line
        return _last_match(stderr, (_EXCEPTION, 1), (_SCHEDULER, 0))
    if state in _STATE_TEXT:
        return _last_match(stderr, (_SCHEDULER, 0), (_EXCEPTION, 1)) or _STATE_TEXT[state]
    found = _last_match(stderr, (_EXCEPTION, 1), (_SCHEDULER, 0), (_ERRORISH, 0))
    if found:
        return found
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    if lines:
        return lines[-1][:300]
    if signal:
        return f"killed by SIG{signal}"
    return f"exit code {exit_code}" if exit_code is not None else ""


def _last_match(text: str, *patterns: tuple[re.Pattern, int]) -> str:
    for pattern, group in patterns:
        last = None
        for last in pattern.finditer(text):
            pass
        if last is not None:
            return last.group(group).strip()[:300]
    return ""
