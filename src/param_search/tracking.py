"""Refreshing job records: wrapper files first, then one batched question per queue."""
from __future__ import annotations

import itertools
import operator
import time
from collections.abc import Iterable

from .experiment import Experiment, Record
from .outcome import error_line, read_status, read_tail
from .queues.base import queue_for
from .states import (
    ACTIVE_STATES, COMPLETED, FINAL_STATES, JobState, PENDING, RUNNING, state_from_exit_code,
)

_CANCEL_SIGNALS = ("TERM", "INT")


def apply_wrapper_files(exp: Experiment, record: Record) -> None:
    """Update an active record from the start and exit files of its current attempt."""
    if record["attempt"] == 0:
        return
    started, ended = read_status(exp.attempt_path(record, "status"))
    if record["started"] is None or ended is None:
        if started is not None and started.started:
            record["started"], record["node"] = started.started, started.host
            if started.scheduler_id and not record["job_id"]:
                record["job_id"] = started.scheduler_id
            if record["queue"] is None:
                record["queue"] = "slurm" if started.scheduler_id else "local"
            if ended is None:
                record["state"] = RUNNING
                record["reason"] = None
    if ended is not None:
        record["exit_code"], record["ended"], record["signal"] = ended.exit_code, ended.ended, ended.signal
        record["state"] = (JobState.CANCELLED if ended.signal in _CANCEL_SIGNALS
                           else state_from_exit_code(ended.exit_code)).value


def finalize(exp: Experiment, record: Record) -> None:
    """Read the log tails and error line of a record that just became final."""
    if record["attempt"]:
        record["stdout"] = read_tail(exp.attempt_path(record, "out"))
        record["stderr"] = read_tail(exp.attempt_path(record, "err"))
    record["error"] = error_line(record["state"], record["exit_code"], record["stderr"] or "",
                                 record["signal"])
    record["reason"] = None
    if record["ended"] is None:
        record["ended"] = time.time()


def refresh(exp: Experiment, records: Iterable[Record]) -> list[Record]:
    """Bring active records up to date in place; return the ones that changed.

    A scheduler's pending job has not started, so its folder is not even looked at until
    the scheduler stops calling it pending (that saves 10,000 file reads per refresh).
    """
    active = [r for r in records if r["state"] in ACTIVE_STATES]
    before = [_signature(r) for r in active]
    for record in active:
        if record["state"] != PENDING or record["queue"] in (None, "local"):
            apply_wrapper_files(exp, record)
    ask = [r for r in active if r["state"] in ACTIVE_STATES
           or (r["queue"] not in (None, "local") and r["state"] != COMPLETED)]
    for name, group in itertools.groupby(sorted(ask, key=_queue_name), key=_queue_name):
        queue_for(name).poll(exp, list(group))
    for record in active:
        if record["state"] in FINAL_STATES:
            finalize(exp, record)
    return [r for r, sig in zip(active, before) if _signature(r) != sig]


_signature = operator.itemgetter("state", "job_id", "reason", "node", "exit_code", "started", "ended")


def _queue_name(record: Record) -> str:
    return record["queue"] or "local"
