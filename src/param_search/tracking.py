"""Refreshing job records: wrapper files first, then one batched question per queue."""
from __future__ import annotations

import itertools
import operator
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from . import store
from .experiment import Experiment, Record
from .outcome import error_line, read_status, read_tail
from .queues.base import queue_for
from .states import (
    ACTIVE_STATES, COMPLETED, FINAL_STATES, NEW, PENDING, RUNNING, SUBMITTING, JobState,
    state_from_exit_code,
)

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

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
            if record["queue"] is None and not started.scheduler_id:
                record["queue"] = "local"   # no batch settings (an older version's job)
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


def refresh(exp: Experiment, records: Iterable[Record],
            snapshots: "dict[str, pa.Table] | None" = None) -> list[Record]:
    """Bring active records up to date in place; return the ones that changed.

    A scheduler's pending job has not started, so its folder is not even looked at until
    the scheduler stops calling it pending (that saves 10,000 file reads per refresh).
    ``snapshots``: per queue name, what its scheduler already answered this refresh.
    """
    active = [r for r in records if r["state"] in ACTIVE_STATES]
    before = [_signature(r) for r in active]
    for record in active:
        if record["state"] != PENDING or record["queue"] in (None, "local"):
            apply_wrapper_files(exp, record)
    ask = [r for r in active if r["state"] in ACTIVE_STATES
           or (r["queue"] not in (None, "local") and r["state"] != COMPLETED)]
    snapshots = snapshots or {}
    for name, group in itertools.groupby(sorted(ask, key=_queue_name), key=_queue_name):
        group = list(group)
        queue_for(exp, name, latest_batch(group)).poll(exp, group, snapshot=snapshots.get(name))
    for record in active:
        if record["state"] in FINAL_STATES:
            finalize(exp, record)
    return [r for r, sig in zip(active, before) if _signature(r) != sig]


_signature = operator.itemgetter("state", "job_id", "reason", "node", "exit_code", "started", "ended")


def _queue_name(record: Record) -> str:
    return record["queue"] or "local"


def latest_batch(records: list[Record]) -> str | None:
    """The most recent batch among ``records``: one queue answers for a scheduler's jobs
    (one status call per scheduler), built with the settings that batch recorded."""
    return max((r["batch"] for r in records if r["batch"]), default=None)


def reconcile(exp: Experiment, records: list[Record]) -> list[Record]:
    """Find jobs a dead controller left SUBMITTING; revert those the queue never got."""
    stuck = [r for r in records if r["state"] == SUBMITTING]
    for name in {r["queue"] for r in stuck}:
        group = [r for r in stuck if r["queue"] == name]
        queue_for(exp, name, latest_batch(group)).reconcile(exp, group)
    for record in stuck:
        if record["state"] == SUBMITTING:
            record.update(state=NEW, attempt=record["attempt"] - 1, queue=None,
                          batch=None, submitted=None)
    return stuck


# -- the column-wise refresh of an index table --------------------------------------------
def refresh_index(exp: Experiment, index: "pa.Table", rows: "np.ndarray | None" = None
                  ) -> "tuple[pa.Table, bool]":
    """Refresh the chosen ``rows`` of an index table (default: all); return it and whether
    anything changed.

    Jobs whose scheduler snapshot (see ``Queue.snapshot``) confirms their state are updated
    column-wise (reason, node); only the others -- state changes, jobs the scheduler no
    longer lists, local jobs -- become records and go through :func:`refresh`.
    """
    import numpy as np
    import pyarrow.compute as pc

    active = _mask(pc.is_in(index.column("state"), _string_set(ACTIVE_STATES)))
    if rows is not None:
        chosen = np.zeros(index.num_rows, dtype=bool)
        chosen[rows] = True
        active &= chosen
    if not active.any():
        return index, False
    index, confirmed, snapshots, changed = _apply_snapshots(exp, index, active)
    slow = np.flatnonzero(active & ~confirmed)
    if len(slow):
        records = store.to_records(index.take(slow))
        stuck = reconcile(exp, records)
        if refresh(exp, records, snapshots) or stuck:
            index, changed = store.replace_rows(index, slow, records), True
    return index, changed


def _apply_snapshots(exp: Experiment, index: "pa.Table", active: "np.ndarray"):
    """Per queue with a snapshot: update the rows it confirms; return (index, confirmed
    mask, snapshots by queue name, whether anything changed)."""
    import numpy as np
    import pyarrow.compute as pc

    confirmed = np.zeros(index.num_rows, dtype=bool)
    snapshots, changed = {}, False
    queues = index.column("queue")
    has_id = _mask(pc.is_valid(index.column("job_id")))
    for name in pc.unique(queues.filter(_pa_mask(active))).to_pylist():
        if name is None:
            continue
        mine = active & has_id & _mask(pc.equal(queues, name))
        ids = index.column("job_id").filter(_pa_mask(mine)).combine_chunks()
        batch = pc.max(index.column("batch").filter(_pa_mask(mine))).as_py() if len(ids) else None
        snapshot = queue_for(exp, name, batch).snapshot(ids) if len(ids) else None
        if snapshot is None:
            continue
        snapshots[name] = snapshot
        index, ok, updated = _confirm(index, mine, snapshot)
        confirmed |= ok
        changed |= updated
    return index, confirmed, snapshots, changed


def _confirm(index: "pa.Table", mine: "np.ndarray", snapshot: "pa.Table"):
    """Rows of ``mine`` still PENDING or RUNNING per ``snapshot``: set their reason and node.

    Returns (index, confirmed mask, whether any value changed). Left to ``poll``: a row
    whose scheduler submit time predates its own submission (an older job with a reused
    id), and a RUNNING row whose start time is not known yet (poll reads it from the job's
    status file).
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if not snapshot.num_rows:
        return index, np.zeros(index.num_rows, dtype=bool), False
    found = pc.index_in(index.column("job_id"), value_set=snapshot.column("job_id"))
    position = pc.fill_null(found, 0)
    state = index.column("state")
    said = pc.take(snapshot.column("state"), position)
    submitted = pc.divide(pc.cast(index.column("submitted"), pa.int64()), 1e6)
    submit = pc.take(snapshot.column("submit"), position)
    stale = pc.fill_null(pc.less(submit, pc.subtract(submitted, 120.0)), False)
    unstarted = _mask(pc.and_(pc.equal(state, RUNNING), pc.is_null(index.column("started"))))
    ok = (mine & _mask(pc.is_valid(found)) & _mask(pc.equal(said, state)) & ~_mask(stale)
          & _mask(pc.is_in(state, _string_set({PENDING, RUNNING}))) & ~unstarted)
    if not ok.any():
        return index, ok, False
    reason = pc.if_else(pc.equal(state, PENDING), pc.take(snapshot.column("reason"), position),
                        pa.scalar(None, pa.large_string()))
    node = pc.coalesce(pc.take(snapshot.column("node"), position), index.column("node"))
    changed = False
    for name, new in (("reason", reason), ("node", node)):
        old = index.column(name)
        differs = ok & _differs(old, new)
        if differs.any():
            changed = True
            index = index.set_column(index.schema.get_field_index(name), name,
                                     pc.if_else(_pa_mask(differs), new, old))
    return index, ok, changed


def _differs(old, new) -> "np.ndarray":
    """Null-aware inequality of two string columns, as a numpy mask."""
    import pyarrow.compute as pc

    equal = pc.fill_null(pc.equal(old, new), False)
    both_null = pc.and_(pc.is_null(old), pc.is_null(new))
    return ~(_mask(equal) | _mask(both_null))


def _mask(array) -> "np.ndarray":
    """An Arrow boolean array or column (no nulls) as a numpy bool array."""
    import numpy as np

    if hasattr(array, "combine_chunks"):
        array = array.combine_chunks()
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=bool)


def _pa_mask(mask: "np.ndarray"):
    import pyarrow as pa

    return pa.array(mask, type=pa.bool_())


def _string_set(values) -> "pa.Array":
    import pyarrow as pa

    return pa.array(sorted(values), type=pa.large_string())
