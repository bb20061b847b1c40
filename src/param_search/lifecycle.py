"""A job's life as one state machine: facts come in as events, :func:`apply` changes state.

Queues, the local runner and the refresh engine only *report* what they saw (the queue
took the job, the wrapper wrote a start line, squeue says TIMEOUT, the job left the
scheduler without a trace); the rules that turn those facts into states live here::

    NEW --Handed--> SUBMITTING --Accepted--> PENDING --Started--> RUNNING --Exited--> final
                    |  Refused: back as before                  ^ Requeued         ^
                    |  Unsent: back to NEW (the queue never got it)                |
    any active state --Verdict (the scheduler's word) / Cancelled / Vanished -------+
    any active state --Pruned (an adaptive search stopped the trial) --> PRUNED

PRUNED is param_search's own decision, so no later word of the scheduler (it reports the
job it was told to cancel as CANCELLED) or exit line of the killed job replaces it.

A job held back (``Held``: over ``max_queued`` or the scheduler's submit limit) is PENDING
in the experiment only, with a reason starting ``held back:``; no queue is asked about it
until Handed sends it. A final record never becomes active again but by Handed, which starts the next attempt; a
Verdict may still replace its state by a final one only the scheduler can give (TIMEOUT,
OUT_OF_MEMORY, ...), or by any final one if the job recorded no exit code itself.

Requeue. A scheduler that may run an attempt again after stopping it (Slurm: preemption,
``scontrol requeue``, a failed node) reports a signal exit as ``Exited(held=True)``: the
record keeps the run's exit facts but stays RUNNING (:func:`stopped`) until the scheduler
says what it did: pending again means requeued (PENDING, ``restarts`` + 1, the stopped run's
facts cleared, its lines ignored from then on); a final verdict ends the attempt as an
unheld exit would have. The next run's start (``Started`` with a higher ``restarts``)
supersedes the stopped run too. The attempt number never changes on the way.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .record import ATTEMPT_FIELDS
from .states import (
    ACTIVE_STATES, CANCELLED, COMPLETED, FAILED, FINAL_STATES, NEW, PENDING, PRUNED, RUNNING,
    SCHEDULER_VERDICTS, SUBMITTING, UNKNOWN,
)

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from .record import Record

#: Signals that mean someone stopped the job on purpose (the wrapper records them).
CANCEL_SIGNALS = ("TERM", "INT")
#: The reason of a record whose scheduler no longer lists it, followed by an ISO time.
UNLISTED = "not listed by the scheduler since "
#: The reason of a record held back in the experiment (never handed to its queue yet).
HELD = "held back: "
#: The reason of a record whose run a signal stopped, until its scheduler says what it did.
STOPPED = "stopped by SIG{}; the scheduler may run it again"


@dataclass(frozen=True)
class Handed:
    """A new attempt goes to ``queue`` in ``batch`` (recorded before the queue is asked)."""
    queue: str
    batch: str
    at: float


@dataclass(frozen=True)
class Held:
    """The next attempt waits in the experiment, not in ``queue``, for ``why``; ``batch``
    names the stored settings it will go out with."""
    queue: str
    batch: str | None
    why: str


@dataclass(frozen=True)
class Noted:
    """A decision about the record, kept in its history (e.g. why it is sent again)."""
    note: str


@dataclass(frozen=True)
class Refused:
    """The queue refused the attempt: the record goes back to ``previous``."""
    previous: "Record"


@dataclass(frozen=True)
class Unsent:
    """A dead controller's attempt that the queue never got: back to the attempt before (NEW
    if there was none; else UNKNOWN until its files are read)."""


@dataclass(frozen=True)
class Accepted:
    """The queue took the attempt (its id, if it gives one, and the resources it asks for:
    ``time_limit``, ``mem_limit``, ``excluded``)."""
    job_id: str | None
    reason: str | None = None
    resources: "dict[str, str | None] | None" = None


@dataclass(frozen=True)
class Waiting:
    """Still pending, for ``reason``."""
    reason: str | None


@dataclass(frozen=True)
class Started:
    """The attempt runs (``at``: start time, if known; ``node``; ``job_id``: the scheduler job
    that claimed it, when that is not the one the record follows; ``restarts``: the run's
    restart count, 0 for the run that claimed the attempt)."""
    at: float | None = None
    node: str | None = None
    job_id: str | None = None
    restarts: int = 0


@dataclass(frozen=True)
class Exited:
    """The wrapper recorded the run's end: its exit code, time, and the signal that stopped it.
    ``held``: a signal stopped it and its scheduler may run the attempt again, so the scheduler's
    word decides (see the module's notes on requeue)."""
    exit_code: int | None
    at: float
    signal: str | None = None
    held: bool = False


@dataclass(frozen=True)
class Verdict:
    """What the scheduler says of the attempt (a state in our vocabulary and details)."""
    state: str
    reason: str | None = None
    node: str | None = None
    exit_code: int | None = None
    signal: str | None = None
    start: float | None = None
    end: float | None = None


@dataclass(frozen=True)
class Cancelled:
    """The attempt was cancelled (by param_search or the user)."""
    at: float
    signal: str | None = None


@dataclass(frozen=True)
class Pruned:
    """An adaptive search's pruner stopped the trial (its job is then cancelled); ``reason``
    says at which step and value."""
    at: float
    reason: str


@dataclass(frozen=True)
class Vanished:
    """The attempt ended without any record of how: ``state`` (final) and why."""
    state: str
    at: float
    reason: str


@dataclass(frozen=True)
class Recovered:
    """Rebuilt from files: attempt ``attempt`` went to ``queue`` in ``batch``. If it started
    (it has a status file) its files tell the rest (UNKNOWN until read); if not, its queue is
    asked whether it holds it (SUBMITTING, see ``Queue.reconcile``)."""
    attempt: int
    queue: str | None
    batch: str | None
    submitted: float | None
    started: bool


@dataclass(frozen=True)
class Unlisted:
    """The scheduler no longer lists the attempt and nothing says how it ended (yet): the
    record's reason says since when (see :func:`unlisted_since`)."""
    at: float


@dataclass(frozen=True)
class Requeued:
    """The attempt goes back to waiting (e.g. a local runner handed it back unstarted)."""
    reason: str | None = None


Event = (Handed | Held | Noted | Refused | Unsent | Accepted | Waiting | Started | Exited | Verdict | Cancelled
         | Pruned | Vanished | Recovered | Unlisted | Requeued)


def apply(record: "Record", event: Event) -> bool:
    """Apply one event to a record in place; return whether it was taken (an event that
    does not fit the record's state, e.g. a late start line of a final job, is ignored)."""
    state = record["state"]
    active = state in ACTIVE_STATES
    if is_held(record) and not isinstance(event, (Handed, Held, Noted, Cancelled, Refused)):
        return False   # in no queue: nothing a queue or a status file says is about it
    if isinstance(event, Noted):
        record["history"] = "; ".join(filter(None, [record["history"], event.note]))
    elif isinstance(event, Handed):
        if active and not is_held(record):
            return False
        record.update(dict.fromkeys(ATTEMPT_FIELDS), state=SUBMITTING, attempt=record["attempt"] + 1,
                      restarts=0, queue=event.queue, batch=event.batch, submitted=event.at)
    elif isinstance(event, Held):
        if active and not is_held(record):
            return False
        record.update(dict.fromkeys(ATTEMPT_FIELDS), state=PENDING, queue=event.queue,
                      batch=event.batch, submitted=None, reason=HELD + event.why)
    elif isinstance(event, Refused):
        if state != SUBMITTING:
            return False
        record.update(event.previous)
    elif isinstance(event, Unsent):
        if state != SUBMITTING:
            return False
        previous = record["attempt"] - 1   # its files tell how it ended, if it ran
        record.update(state=UNKNOWN if previous else NEW, attempt=previous, restarts=0, queue=None,
                      batch=None, submitted=None)
    elif isinstance(event, Accepted):
        if state not in (SUBMITTING, UNKNOWN, PENDING):
            return False
        record.update(state=PENDING, job_id=event.job_id, reason=event.reason)
        record.update(event.resources or {})
    elif isinstance(event, Waiting):
        if state not in (PENDING, SUBMITTING):
            return False
        record["reason"] = event.reason
    elif isinstance(event, Started):
        return _start(record, event)
    elif isinstance(event, Exited):
        if not active:
            return False
        record.update(exit_code=event.exit_code, ended=event.at, signal=event.signal, reason=None,
                      state=_exit_state(event.exit_code, event.signal))
        if event.held and event.signal:
            record.update(state=RUNNING, reason=STOPPED.format(event.signal))
    elif isinstance(event, Verdict):
        return _verdict(record, event)
    elif isinstance(event, Cancelled):
        if not active:
            return False
        record.update(state=CANCELLED, ended=record["ended"] or event.at, reason=None,
                      signal=event.signal or record["signal"])
    elif isinstance(event, Pruned):
        if not active:
            return False
        record.update(state=PRUNED, ended=record["ended"] or event.at, reason=event.reason)
    elif isinstance(event, Vanished):
        if not active or event.state not in FINAL_STATES:
            return False
        record.update(state=event.state, ended=record["ended"] or event.at, reason=event.reason)
    elif isinstance(event, Recovered):
        if state not in (NEW, UNKNOWN, SUBMITTING) or event.attempt < record["attempt"]:
            return False
        record.update(attempt=event.attempt, state=UNKNOWN if event.started else SUBMITTING, restarts=0,
                      queue=event.queue or record["queue"], batch=event.batch or record["batch"],
                      submitted=event.submitted or record["submitted"])
    elif isinstance(event, Unlisted):
        if not active or unlisted_since(record) is not None:
            return False
        record["reason"] = UNLISTED + datetime.fromtimestamp(event.at).isoformat(timespec="seconds")
    elif isinstance(event, Requeued):
        if state not in (RUNNING, PENDING, UNKNOWN):
            return False
        record.update(state=PENDING, reason=event.reason, started=None, node=None, exit_code=None,
                      signal=None, ended=None)
    else:
        raise TypeError(f"not a lifecycle event: {event!r}")
    return True


def is_held(record: "Record") -> bool:
    """Whether the record waits in the experiment (see :class:`Held`), not in a queue."""
    return record["state"] == PENDING and (record["reason"] or "").startswith(HELD)


def in_a_queue(record: "Record") -> bool:
    """Whether a queue holds the record's attempt (active, and not held back)."""
    return record["state"] in ACTIVE_STATES and not is_held(record)


def in_a_queue_rows(index: "pa.Table") -> "np.ndarray":
    """:func:`in_a_queue` of each row of an index table, as a boolean mask."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    active = pc.is_in(index.column("state"), pa.array(sorted(ACTIVE_STATES), pa.large_string()))
    held = pc.and_(pc.equal(index.column("state"), PENDING),
                   pc.fill_null(pc.starts_with(index.column("reason"), HELD), False))
    both = pc.and_(active, pc.invert(held)).combine_chunks()
    return np.asarray(both.to_numpy(zero_copy_only=False), dtype=bool)


def unlisted_since(record: "Record") -> float | None:
    """Since when the scheduler no longer lists the record's attempt (None: it does)."""
    reason = record["reason"] or ""
    if not reason.startswith(UNLISTED):
        return None
    try:
        return datetime.fromisoformat(reason[len(UNLISTED):]).timestamp()
    except ValueError:
        return None


def _exit_state(exit_code: int | None, signal: str | None) -> str:
    if signal in CANCEL_SIGNALS:
        return CANCELLED
    return COMPLETED if exit_code == 0 else FAILED


def stopped(record: "Record") -> bool:
    """Whether a signal stopped the record's run and its scheduler has yet to say whether it
    runs the attempt again (``Exited(held=True)``)."""
    return record["state"] == RUNNING and record["ended"] is not None


def _start(record: "Record", event: Started) -> bool:
    if record["state"] not in (SUBMITTING, PENDING, UNKNOWN, RUNNING):
        return False
    if event.restarts < record["restarts"]:
        return False   # a run the scheduler took back; the next one has not started yet
    if event.job_id:   # the scheduler job that claimed the attempt (see attempts.observe)
        record["job_id"] = event.job_id
    later = event.restarts > record["restarts"]
    if record["state"] != RUNNING or later:
        record["reason"] = None   # (a running job's reason, e.g. Unlisted, stays)
    if later:   # a requeued run took the attempt over: the stopped run's end is superseded
        record.update(restarts=event.restarts, exit_code=None, signal=None, ended=None, started=None)
    record.update(state=RUNNING, started=event.at or record["started"], node=event.node or record["node"])
    return True


def _verdict(record: "Record", event: Verdict) -> bool:
    """The scheduler's word. The job's own exit code (from its status file) wins, except for
    the verdicts only the scheduler can give (TIMEOUT, CANCELLED, OUT_OF_MEMORY, ...)."""
    if record["state"] == PRUNED:
        return False   # our own decision: the scheduler only saw a cancelled job
    final = record["state"] in FINAL_STATES
    has_exit = record["exit_code"] is not None and final
    if event.state == UNKNOWN or record["state"] == NEW or (has_exit and event.state not in SCHEDULER_VERDICTS):
        return False
    if final and event.state not in FINAL_STATES:
        return False   # an ended job never runs again (a stale answer, or one still completing)
    if stopped(record):
        if event.state == PENDING:   # requeued: only a later run's lines count from now on
            record.update(state=PENDING, reason=event.reason, restarts=record["restarts"] + 1, started=None,
                          node=None, exit_code=None, signal=None, ended=None)
            return True
        if event.state not in FINAL_STATES:
            return False   # still completing: the scheduler has not decided yet
        if event.state not in SCHEDULER_VERDICTS:   # the run's own exit line decides, as unheld
            event = replace(event, state=_exit_state(record["exit_code"], record["signal"]))
    record["state"] = event.state
    record["reason"] = event.reason if event.state == PENDING else None
    record["node"] = event.node or record["node"]
    if event.state in FINAL_STATES:
        failed_with_0 = event.state != COMPLETED and event.exit_code == 0   # never 0 for a failure
        if record["exit_code"] is None and event.exit_code is not None and not failed_with_0:
            record["exit_code"] = event.exit_code
        record["signal"] = record["signal"] or event.signal
        record["started"] = record["started"] or event.start
        record["ended"] = record["ended"] or event.end
    return True


def verdict_of(info: dict[str, Any], state: str | None = None) -> Verdict:
    """A Verdict from a parser's info dict (keys state, reason, node, exit_code, signal,
    start, end; missing ones are None)."""
    return Verdict(state or info["state"], info.get("reason"), info.get("node"),
                   info.get("exit_code"), info.get("signal"), info.get("start"), info.get("end"))
