"""The refresh engine: job records brought up to date from their attempt files first, then
one batched question per queue (its scheduler's answer applied through the lifecycle)."""
from __future__ import annotations

import operator
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING

from . import index_file
from .experiment import Experiment
from .record import Record
from .attempts import finalize, observe
from .lifecycle import Unsent, Waiting, apply, in_a_queue, in_a_queue_rows
from .queues.registry import DEFAULT, queue_class, queue_for
from .states import COMPLETED, FINAL_STATES, PENDING, RUNNING, SUBMITTING

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

def refresh(exp: Experiment, records: Iterable[Record],
            snapshots: "dict[str, pa.Table] | None" = None) -> list[Record]:
    """Bring active records up to date in place; return the ones that changed.

    A scheduler's pending job has not started, so its folder is not even looked at until
    the scheduler stops calling it pending (that saves 10,000 file reads per refresh).
    ``snapshots``: per queue name, what its scheduler already answered this refresh.
    """
    active = [r for r in records if in_a_queue(r)]
    before = [_signature(r) for r in active]
    for name, group in _by_queue(active):
        hold = queue_class(name or DEFAULT).requeues   # a signal exit waits for its scheduler's word
        for record in group:
            if record["state"] != PENDING:
                observe(exp, record, hold)
    ask = [r for r in active if r["state"] != COMPLETED]   # a scheduler's verdict may still come
    snapshots = snapshots or {}
    for name, group in _by_queue(ask):
        queue_for(exp, name, latest_batch(group)).poll(exp, group, snapshot=snapshots.get(name))
    for record in active:
        if record["state"] in FINAL_STATES:
            finalize(exp, record)
    return [r for r, sig in zip(active, before) if _signature(r) != sig]


_signature = operator.itemgetter("state", "job_id", "reason", "node", "exit_code", "started", "ended", "restarts")


def _by_queue(records: list[Record]) -> "list[tuple[str | None, list[Record]]]":
    groups: dict[str | None, list[Record]] = {}
    for record in records:
        groups.setdefault(record["queue"], []).append(record)
    return list(groups.items())


def latest_batch(records: list[Record]) -> str | None:
    """The most recent batch among ``records``: one queue answers for a scheduler's jobs
    (one status call per scheduler), built with the settings that batch recorded."""
    return max((r["batch"] for r in records if r["batch"]), default=None)


def reconcile(exp: Experiment, records: list[Record]) -> list[Record]:
    """Find jobs a dead controller left SUBMITTING; those the queue never got are NEW again
    (those it cannot tell about now stay SUBMITTING, asked again next time)."""
    stuck = [r for r in records if r["state"] == SUBMITTING]
    undecided: list[Record] = []
    for name, group in _by_queue(stuck):
        undecided += queue_for(exp, name, latest_batch(group)).reconcile(exp, group) or []
    unsure = {id(r) for r in undecided}
    unsent: dict[str, set[str]] = {}
    for record in stuck:
        batch = record["batch"]
        if id(record) in unsure:
            apply(record, Waiting(UNDECIDED))
        elif apply(record, Unsent()) and batch:
            unsent.setdefault(batch, set()).add(record["job_name"])
    for batch, names in unsent.items():
        exp.drop_members(batch, names)   # so that a rebuilt index does not count them as sent
    return stuck


UNDECIDED = ("its queue cannot tell yet whether it took this job (its accounting is unreachable); "
             "asked again at the next refresh")


# -- the column-wise refresh of an index table --------------------------------------------
def refresh_index(exp: Experiment, index: "pa.Table", rows: "np.ndarray | None" = None,
                  watched: "Collection[str]" = ()) -> "tuple[pa.Table, bool]":
    """Refresh the chosen ``rows`` of an index table (default: all); return it and whether
    anything changed. ``watched``: jobs this process runs and watches end itself (left as
    they are).

    Jobs whose scheduler snapshot (see ``Queue.snapshot``) confirms their state are updated
    column-wise (reason, node); only the others -- state changes, jobs the scheduler no
    longer lists, local jobs -- become records and go through :func:`refresh`.
    """
    import numpy as np

    active = in_a_queue_rows(index)
    if watched and active.any():   # the few active rows' names looked up, not every row's
        rows_active = np.flatnonzero(active)
        names = index.column("job_name").take(rows_active).to_pylist()
        active[rows_active[[name in watched for name in names]]] = False
    if rows is not None:
        chosen = np.zeros(index.num_rows, dtype=bool)
        chosen[rows] = True
        active &= chosen
    if not active.any():
        return index, False
    index, confirmed, snapshots, changed = _apply_snapshots(exp, index, active)
    slow = np.flatnonzero(active & ~confirmed)
    if len(slow):
        records = index_file.to_records(index.take(slow))
        stuck = reconcile(exp, records)
        if refresh(exp, records, snapshots) or stuck:
            index, changed = index_file.replace_rows(index, slow, records), True
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
    id), and a RUNNING row whose start time is not known yet or whose run a signal stopped
    (waiting for the scheduler's word, while a requeued run may have begun): the refresh
    reads their status files.
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
    stopped = _mask(pc.and_(pc.equal(state, RUNNING), pc.is_valid(index.column("ended"))))
    ok = (mine & _mask(pc.is_valid(found)) & _mask(pc.equal(said, state)) & ~_mask(stale)
          & _mask(pc.is_in(state, _string_set({PENDING, RUNNING}))) & ~unstarted & ~stopped)
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
