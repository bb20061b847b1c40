"""What a job attempt left in its folder: the wrapper's start/exit files, logs, error line.

Every queue's jobs run under the same wrapper, so reading these files is one job for all of
them: :func:`observe` turns a status file into lifecycle events, :func:`finalize` keeps the
log tails and the error line of an attempt that ended.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .lifecycle import Exited, Started, apply
from .states import CANCELLED, COMPLETED, FINAL_STATES, NODE_FAIL, OUT_OF_MEMORY, PREEMPTED, PRUNED, TIMEOUT

if TYPE_CHECKING:
    from .experiment import Experiment
    from .record import Record

#: Only the last this-many bytes of a log are kept in the jobs table.
LOG_TAIL_BYTES = 8192


@dataclass
class StartInfo:
    """The current run of an attempt: the claim's start line, or the last restart line of a
    requeued run that took the attempt over (``restarts`` > 0; same scheduler id)."""
    started: float
    pid: int
    ticks: int
    host: str
    scheduler_id: str
    restarts: int = 0


@dataclass
class ExitInfo:
    exit_code: int
    ended: float
    signal: str | None


def read_status(path: str) -> tuple[StartInfo | None, ExitInfo | None]:
    """An attempt's status file: its current run's (start, exit), each None until written.

    A start with pid 0 means the file was just created and its line is not written yet. A
    restart line (a requeued run taking the attempt over, see wrapper.sh) begins a new
    current run: exit lines before it belong to a run that was stopped, and are superseded.
    """
    try:
        with open(path) as f:
            lines = f.read().split("\n")
    except FileNotFoundError:
        return None, None
    start, end = StartInfo(0.0, 0, 0, "", ""), None
    for line in lines:
        parts = line.split()
        try:
            if len(parts) >= 5 and parts[0] == "start":
                start = StartInfo(float(parts[1]), int(parts[2]), int(parts[3]), parts[4],
                                  parts[5] if len(parts) > 5 else "")
                end = None
            elif len(parts) >= 6 and parts[0] == "restart":
                start = StartInfo(float(parts[2]), int(parts[3]), int(parts[4]), parts[5],
                                  start.scheduler_id, int(parts[1]))
                end = None
            elif len(parts) >= 3 and parts[0] == "exit":
                end = ExitInfo(int(parts[1]), float(parts[2]), parts[3] if len(parts) > 3 else None)
        except ValueError:
            continue   # a damaged line (hand-edited, or a disk that filled up): ignored
    return start, end


def read_start(path: str) -> StartInfo | None:
    """The start line of a status file, or None if the attempt has not (visibly) started."""
    return read_status(path)[0]


def process_identity() -> str:
    """``host:pid:ticks`` naming this process unambiguously (pids get reused)."""
    with open(f"/proc/{os.getpid()}/stat") as f:
        ticks = f.read().rsplit(")", 1)[-1].split()[19]
    return f"{os.uname().nodename}:{os.getpid()}:{ticks}"


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
    if fields[0] in ("Z", "X"):   # ended, waiting to be reaped
        return False
    return ticks == 0 or (len(fields) > 19 and int(fields[19]) == ticks)


def _hostname() -> str:
    return os.uname().nodename


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
    PRUNED: "pruned (stopped early by the search)",
    TIMEOUT: "time limit reached (TIMEOUT)",
    OUT_OF_MEMORY: "out of memory (OUT_OF_MEMORY)",
    CANCELLED: "cancelled",
    NODE_FAIL: "node failure (NODE_FAIL)",
    PREEMPTED: "preempted by the scheduler (PREEMPTED)",
}


def error_line(state: str, exit_code: int | None, stderr: str, signal: str | None = None) -> str:
    """The most telling line explaining why a job did not complete ('' if it did)."""
    if state == COMPLETED:   # stderr is no failure; but show a traceback's line
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


def observe(exp: "Experiment", record: "Record", hold: bool = False,
            status: "tuple[StartInfo | None, ExitInfo | None] | None" = None) -> None:
    """Apply what the current attempt's status file says (its current run's start and exit)
    to its record. ``hold``: the record's scheduler may run the attempt again after a signal
    stopped it (``Queue.requeues``), so a signal exit waits for the scheduler's word.
    ``status``: what :func:`read_status` just read of that file, if the caller has it."""
    if record["attempt"] == 0:
        return
    started, ended = read_status(exp.attempt_path(record, "status")) if status is None else status
    if started is not None and started.restarts < record["restarts"]:
        return   # the run the scheduler took back: the next one has not written yet
    if started is not None and started.started and (record["started"] is None or ended is None
                                                    or started.restarts != record["restarts"]):
        claimant = started.scheduler_id if _other_job(started.scheduler_id, record["job_id"]) else None
        apply(record, Started(started.started, started.host, claimant, started.restarts))
    if ended is not None:
        apply(record, Exited(ended.exit_code, ended.ended, ended.signal, held=hold and bool(ended.signal)))


def _other_job(claimant: str, job_id: str | None) -> bool:
    """Whether the scheduler job that claimed an attempt is not the one the record follows
    (ids compared by their numbers: ``123[4]`` and ``123_4`` are the same task). A second
    copy of an attempt exits without running; the record must follow the first."""
    return bool(claimant) and (job_id is None or re.findall(r"\d+", claimant)[:2] != re.findall(r"\d+", job_id)[:2])


def finalize(exp: "Experiment", record: "Record") -> None:
    """Keep the log tails and the error line of an attempt that just became final."""
    if record["attempt"]:
        record["stdout"] = read_tail(exp.attempt_path(record, "out"))
        record["stderr"] = read_tail(exp.attempt_path(record, "err"))
    why = record["reason"] if record["state"] in FINAL_STATES else None   # e.g. how it vanished
    found = error_line(record["state"], record["exit_code"], record["stderr"] or "", record["signal"])
    if why and found in ("", _STATE_TEXT.get(record["state"])):
        found = why
    elif not found and record["state"] != COMPLETED:
        found = "ended without an exit code (killed?)"
    record["error"] = found
    record["reason"] = None
    if record["ended"] is None:
        record["ended"] = time.time()
