"""Sending attempts to queues, within the sweep's limits, and the stored policy applied.

Every attempt is recorded before its queue is asked (so a crash loses nothing and runs
nothing twice, see ``refresh.reconcile``). Jobs beyond ``max_queued`` or a scheduler's
submit limit are held back in the experiment (PENDING, reason ``held back: ...``) and go
out as others end; jobs that ended in a state the retry policy names go out again with the
resources it decides. :func:`apply_policy` is that decision round, run by ``ps.wait``, the
supervisor and ``ps.status(apply=True)`` alike.
"""
from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ExperimentError, OptionError, RefusedError, SubmitLimitError
from .experiment import Experiment
from .files import token
from .lifecycle import HELD, Handed, Held, Noted, Refused, apply, in_a_queue, in_a_queue_rows, is_held
from .queues.base import Queue
from .queues.registry import DEFAULT, make_queue, queue_class, queue_for
from .record import Record
from .record_map import RecordMap
from .retry import Retry
from .states import ACTIVE_STATES, FINAL_STATES

if TYPE_CHECKING:
    import pandas as pd


# -- the stored policy -------------------------------------------------------------------
def check_max_queued(max_queued: Any) -> None:
    if max_queued is not None and (isinstance(max_queued, bool) or not isinstance(max_queued, int)
                                   or max_queued < 0):
        raise OptionError(f"max_queued must be an int >= 1 (0 lifts a stored cap; None keeps it), "
                          f"not {max_queued!r}")


def store_policy(exp: Experiment, retry: "Retry | bool | None", max_queued: int | None) -> None:
    """Keep ``retry`` and ``max_queued`` in the experiment (None: keep what is stored;
    ``retry=False`` and ``max_queued=0`` remove it); a submit limit learned earlier is
    forgotten (it is found again if still there)."""
    with exp.lock():
        policy = exp.policy()
        new = dict(policy)
        new.pop("submit_limit", None)
        if retry is False:
            new.pop("retry", None)
        elif retry is not None:
            new["retry"] = retry.to_json()
        if max_queued == 0:
            new.pop("max_queued", None)
        elif max_queued is not None:
            new["max_queued"] = max_queued
        if new != policy:
            exp.save_policy(new)


def retry_policy(policy: Mapping[str, Any]) -> Retry | None:
    return Retry.from_json(policy["retry"]) if policy.get("retry") else None


def in_queue(records: Mapping[str, Record]) -> int:
    """How many of the experiment's jobs the queues hold (held-back ones are not there)."""
    if isinstance(records, RecordMap):   # without reading every row
        return records.count(in_a_queue, in_a_queue_rows)
    return sum(map(in_a_queue, records.values()))


def room(policy: Mapping[str, Any], records: Mapping[str, Record]) -> float:
    """How many more jobs may go out now."""
    if policy.get("max_queued") is None and learned_limit(policy) is None:
        return float("inf")   # no limit: no need to count
    return free_room(policy, in_queue(records))


def free_room(policy: Mapping[str, Any], queued: int) -> float:
    """Room left with ``queued`` of the experiment's jobs in queues. A learned submit limit
    always lets one job go out when none of ours is queued (other sweeps may have filled
    the quota and left since), and is forgotten after ``LIMIT_MEMORY`` seconds."""
    limits = [policy.get("max_queued"), learned_limit(policy)]
    limits = [n for n in limits if n is not None]
    return max(min(limits) - queued, 0 if queued else 1) if limits else float("inf")


#: Seconds a learned submit limit is trusted before the whole backlog is tried again.
LIMIT_MEMORY = 600.0


def learned_limit(policy: Mapping[str, Any]) -> int | None:
    limit = policy.get("submit_limit") or {}
    if limit.get("queued") is None or time.time() - limit.get("at", 0) > LIMIT_MEMORY:
        return None
    return limit["queued"]


# -- sending -----------------------------------------------------------------------------
def send(exp: Experiment, queue: Queue, records: dict[str, Record], chosen: list[Record],
         scripts: Mapping[str, str] | None = None, overrides: dict[str, Any] | None = None,
         probe: bool = False, then: "Callable[[list[Record]], None] | None" = None) -> int:
    """Hand ``chosen`` to ``queue`` within the sweep's limits; hold back the rest; return
    how many were handed.

    ``scripts``: rendered scripts by job name, when at hand. ``probe``: try one job more
    than a learned submit limit allows (the limit may have grown). ``then``: called with
    each group the queue took, before the write that records it (to change them in that
    same write, e.g. a local stepper's claim). Raises RefusedError if
    the queue refused them (they are as before), QueueError if the outcome is unknown (they
    stay SUBMITTING, found again by the next call).
    """
    if not chosen:
        return 0
    policy = exp.policy()
    free = room(policy, records) + (1 if probe and _limit_binds(policy) else 0)
    now, later = (chosen, []) if free >= len(chosen) else (chosen[:int(free)], chosen[int(free):])
    binds = _limit_binds(policy)
    _hold(exp, queue, later, _limit_words(policy) if binds else f"max_queued={policy.get('max_queued')}", overrides)
    refused = _within_limit(exp, queue, records, now, scripts or {}, overrides, then) if now else None
    if refused:
        exp.save_records(records)
        _learn_limit(exp, records, refused[1])
        _hold(exp, queue, refused[0], _limit_words(exp.policy()), overrides)
    elif probe and binds and now:
        policy["submit_limit"]["queued"] = max(policy["submit_limit"]["queued"], in_queue(records))
        exp.save_policy(policy)
    if refused or not now:   # else the last hand-over saved every record, held ones included
        exp.save_records(records)
    return len(now) - (len(refused[0]) if refused else 0)


def _limit_binds(policy: Mapping[str, Any]) -> bool:
    """Whether a learned submit limit, not ``max_queued``, is what holds jobs back."""
    limit = learned_limit(policy)
    max_queued = policy.get("max_queued")
    return limit is not None and (max_queued is None or limit < max_queued)


def _within_limit(exp: Experiment, queue: Queue, records: dict[str, Record], group: list[Record],
                  scripts: Mapping[str, str], overrides: dict[str, Any] | None,
                  then: "Callable[[list[Record]], None] | None" = None) -> "tuple[list[Record], str] | None":
    """Send ``group``; if a submit limit refuses part of it, send halves of that part until
    one job is refused. Returns the refused records and the scheduler's words, if any."""
    try:
        _hand(exp, queue, records, group, scripts, overrides, then)
        return None
    except SubmitLimitError as exc:
        refused = [r for r in group if _unsent(r)]
        if len(refused) <= 1:
            return refused, str(exc)
        half = len(refused) // 2
        first = _within_limit(exp, queue, records, refused[:half], scripts, overrides, then)
        if first:
            return first[0] + refused[half:], first[1]
        return _within_limit(exp, queue, records, refused[half:], scripts, overrides, then)


def _unsent(record: Record) -> bool:
    """Whether a record handed in a refused submission went back (it has no live attempt)."""
    return not in_a_queue(record)


def _hand(exp: Experiment, queue: Queue, records: dict[str, Record], sending: list[Record],
          scripts: Mapping[str, str], overrides: dict[str, Any] | None,
          then: "Callable[[list[Record]], None] | None" = None) -> None:
    """Hand one group to the queue, recording the intent (and the queue's settings) before
    (for a queue that :attr:`~Queue.submits_outside`) and the outcome after; records the
    queue definitely refused are restored as they were."""
    batch = new_batch(exp)
    exp.install_wrapper()
    before = {r["job_name"]: dict(r) for r in sending}
    now = time.time()
    for record in sending:
        if not apply(record, Handed(queue.name, batch, now)):
            raise ExperimentError(f"job {record['job_name']!r} is still {record['state']}: not sent again")
    exp.save_batch(batch, queue.name, queue.settings, overrides)
    exp.save_members(batch, sending)
    if queue.submits_outside:
        exp.save_records(records)
    refused = True
    try:
        texts = [scripts.get(r["job_name"]) for r in sending]
        queue.submit(exp, sending, texts if all(texts) else None)
    except RefusedError:
        raise
    except BaseException:
        refused = False
        raise
    else:
        if then is not None:
            then(sending)
    finally:
        if refused:   # what the queue did not take goes back as it was
            back = [r for r in sending if apply(r, Refused(before[r["job_name"]]))]
            if back:
                exp.save_members(batch, [r for r in sending if r["batch"] == batch])
        exp.save_records(records)


def new_batch(exp: Experiment) -> str:
    return f"ps-{exp.token}-{int(time.time() * 1000) % 10**10:010d}-{token(2)}"


def _hold(exp: Experiment, queue: Queue, held: list[Record], why: str,
          overrides: dict[str, Any] | None) -> None:
    """Keep ``held`` in the experiment; the batch recorded for them says where they go."""
    if not held:
        return
    batch = new_batch(exp)
    exp.save_batch(batch, queue.name, queue.settings, overrides)
    for record in held:
        apply(record, Held(queue.name, batch, why))


def _learn_limit(exp: Experiment, records: Mapping[str, Record], said: str) -> None:
    """Remember how many jobs were queued when the scheduler's submit limit refused more."""
    words = next((line.strip() for line in said.splitlines() if "limit" in line.lower()), said.strip())
    policy = exp.policy()
    policy["submit_limit"] = {"queued": in_queue(records), "why": words[:200], "at": time.time()}
    exp.save_policy(policy)
    print(f"param_search: the scheduler's submit limit is reached with {in_queue(records)} jobs "
          f"queued ({words[:200]}); the rest are held back and go out as jobs end", file=sys.stderr)


def _limit_words(policy: Mapping[str, Any]) -> str:
    limit = policy.get("submit_limit") or {}
    return f"the scheduler's submit limit ({limit.get('why', 'too many jobs queued')})"


# -- where a job goes again ----------------------------------------------------------------
def queues_again(exp: Experiment, records: list[Record], use: "str | Queue | None",
                 overrides: dict[str, Any]) -> "list[tuple[Queue, list[Record]]]":
    """The queue each record goes to when sent again: the one its last batch went to,
    with the settings stored with that batch, updated by ``overrides``; grouped."""
    if isinstance(use, Queue):
        return [(make_queue(use, **overrides), records)] if records else []
    entries = []
    for record in records:
        name = queue_class(str(use or record["queue"] or DEFAULT)).name
        entries.append((name, {**stored_settings(exp, record, name), **overrides}, record))
    return by_destination(entries)


def by_destination(entries: "list[tuple[str, dict[str, Any], Record]]") -> "list[tuple[Queue, list[Record]]]":
    """Records grouped by where they go (a queue name and its settings), with one queue
    object per group: each group is one submission."""
    groups: dict[str, tuple[Queue, list[Record]]] = {}
    for name, settings, record in entries:
        key = json.dumps([name, settings], sort_keys=True, default=repr)
        if key not in groups:
            groups[key] = (make_queue(name, **settings), [])
        groups[key][1].append(record)
    return list(groups.values())


def stored_settings(exp: Experiment, record: Record, name: str) -> dict[str, Any]:
    """The settings the record's last batch went out with (if it went to queue ``name``)."""
    stored = exp.batch_settings(record["batch"]) if record["batch"] else None
    return dict(stored["settings"]) if stored and stored.get("queue") == name else {}


# -- the decision round ----------------------------------------------------------------------
def apply_policy(exp: Experiment, table: "pd.DataFrame", policy: "Mapping[str, Any] | None" = None) -> bool:
    """Retry the ended jobs of ``table`` that the stored policy names; send its held-back
    jobs as room frees up. Returns whether any job was handed to a queue (the table is then
    stale). ``policy``: the stored policy as the caller read it for this table (a policy
    stored since takes effect at the caller's next round), else read now."""
    policy = exp.policy() if policy is None else policy
    retry = retry_policy(policy)
    if not _something_to_do(table, retry, policy):
        return False
    names = set(table["job_name"])
    with exp.transaction() as records:
        chosen = [r for n, r in records.items() if n in names]
        ended = [r for r in chosen if r["state"] in FINAL_STATES and will_retry(r, retry)]
        sent = _retry(exp, records, ended, retry) if ended else 0
        sent += _release(exp, records, [r for r in chosen if is_held(r)])
    return sent > 0


def _something_to_do(table: "pd.DataFrame", retry: Retry | None, policy: Mapping[str, Any]) -> bool:
    """Whether a decision round may do anything: looked up in the table, without the lock."""
    if not len(table):
        return False
    held = _held_rows(table)
    if held.any():
        queued = int((table["job_state"].isin(ACTIVE_STATES).to_numpy() & ~held).sum())
        if free_room(policy, queued) > 0:
            return True
    return retry is not None and bool(to_retry(table, retry).any())


def _held_rows(table: "pd.DataFrame") -> np.ndarray:
    """Which rows' jobs are held back, tested at every round: at once on the jobs table's
    Arrow strings (pandas' string methods cost more), else row by row."""
    reason = table["reason"].array
    arrow = reason.__arrow_array__() if hasattr(reason, "__arrow_array__") else None
    if arrow is not None:
        import pyarrow as pa
        import pyarrow.compute as pc

        if pa.types.is_large_string(arrow.type) or pa.types.is_string(arrow.type):
            return pc.fill_null(pc.starts_with(arrow, HELD), False).to_numpy(zero_copy_only=False)
    return np.fromiter((isinstance(r, str) and r.startswith(HELD) for r in reason), bool, len(table))


def to_retry(table: "pd.DataFrame", retry: Retry) -> np.ndarray:
    """Which rows of a jobs table the retry policy sends again (:func:`will_retry` of each)."""
    wanted = table["job_state"].isin(retry.states) & (table["attempt"] < retry.max_attempts)
    for state, rule in retry.on.items():
        if rule and rule.get("exit_codes") is not None:
            wanted &= (table["job_state"] != state) | table["exit_code"].isin(rule["exit_codes"])
    refused = table["history"].str.extract(REFUSED_NOTE, expand=False).astype(float)
    return (wanted & ~(refused == table["attempt"])).to_numpy(dtype=bool)


def will_retry(record: Record, retry: Retry | None) -> bool:
    """Whether the policy sends the record's ended attempt again (one it was refused is not)."""
    return retry is not None and retry.wants(record) and not _refused_before(record)


#: A retry the queue refused: not tried again for that attempt (a new ps.submit or
#: ps.resubmit sends the job again by hand).
REFUSED_NOTE = r"attempt (\d+): retry refused[^;]*$"


def _refused_before(record: Record) -> bool:
    found = re.search(REFUSED_NOTE, record["history"] or "")
    return bool(found) and int(found.group(1)) == record["attempt"]


def _retry(exp: Experiment, records: dict[str, Record], ended: list[Record], retry: Retry) -> int:
    """Send ``ended`` again, each with the resources the policy decides, grouped by queue
    settings (one submission per group); return how many were handed to a queue."""
    entries, changed = [], {}
    for record in ended:
        queue = queue_for(exp, record["queue"], record["batch"])
        decision = retry.decide(record, queue.resource_syntax())
        settings = queue.with_resources(stored_settings(exp, record, queue.name), decision.resources)
        apply(record, Noted(decision.note))
        entries.append((queue.name, settings, record))
        changed[record["job_name"]] = dict(decision.resources)   # alike across a group (same settings)
    sent = 0
    for queue, group in by_destination(entries):
        try:
            sent += send(exp, queue, records, group, overrides=changed[group[0]["job_name"]] or None)
        except RefusedError as exc:   # e.g. the doubled time is over the partition's limit
            for record in group:
                said = " ".join(str(exc).replace(";", ",").split())
                apply(record, Noted(f"attempt {record['attempt']}: retry refused ({said})"))
            exp.save_records(records)
            print(f"param_search: {len(group)} retries were refused, not tried again: {exc}", file=sys.stderr)
    return sent


def _release(exp: Experiment, records: dict[str, Record], held: list[Record]) -> int:
    """Send ``held`` (held-back jobs), in the experiment's order, as far as there is room
    (and, when a learned submit limit is what holds them, one more to see whether it has
    grown); return how many were handed to a queue."""
    policy = exp.policy()
    free = room(policy, records)
    if not held or not free:
        return 0
    probe = _limit_binds(policy) and free < len(held)
    take = held[:int(min(free + probe, len(held)))]
    by_batch: dict[str | None, list[Record]] = {}
    for record in take:
        by_batch.setdefault(record["batch"], []).append(record)
    sent = 0
    for batch, group in by_batch.items():
        stored = exp.batch_settings(batch) if batch else None
        sent += send(exp, queue_for(exp, group[0]["queue"], batch), records, group,
                     overrides=(stored or {}).get("overrides"), probe=probe)
        probe = False   # one extra job per round, not per group
    return sent
