"""The public functions: submit, load, status, wait, resubmit, cancel."""
from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from .errors import ConflictError, ExperimentError, OptionError, ParamSearchError
from .experiment import Experiment, conflict_message
from .record import Record, new_record, script_digest
from .attempts import finalize
from .dispatch import apply_policy, check_max_queued, queues_again, send as dispatch, store_policy
from .lifecycle import HELD, Cancelled, apply, is_held
from . import loop
from .queues.base import Queue
from .queues.registry import DEFAULT, make_queue, queue_for
from .retry import Retry
from .render import RenderedJob, render_jobs
from .space import as_points
from .states import (
    ACTIVE_STATES, COMPLETED, FINAL_STATES, NEW, RESUBMIT_STATES,
)
from .table import frame, jobs_table, record_fields, work_dir_of
from .trials import with_search
from .refresh import latest_batch, reconcile, refresh, refresh_index

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

JobsLike = "pd.DataFrame | str | os.PathLike"


def submit(
    template: str,
    name: str,
    param_space: Iterable,
    use: "str | Queue" = DEFAULT,
    work_dir: "str | os.PathLike" = ".",
    *,
    wait: bool | None = None,
    replace: bool = False,
    retry_failed: bool = True,
    max_attempts: int | None = None,
    retry: Retry | bool | None = None,
    max_queued: int | None = None,
    progress: bool = True,
    **queue_options: Any,
) -> pd.DataFrame:
    """Set up and submit one job per point of ``param_space``; return the jobs table.

    Idempotent: jobs already pending, running or completed in ``work_dir`` are not sent
    again; new points are; failed ones are retried (``retry_failed``).

    Args:
        template: the job script, a format string (see :mod:`param_search.render`).
        name: the job name format, e.g. ``'job_{lr}_{hash}'``.
        param_space: a ParamSpace, or any iterable of dicts.
        use: 'local', 'slurm', or a Queue instance.
        work_dir: the experiment folder (made if needed).
        wait: block until every job ended (default: True for the local queue only).
        replace: overwrite jobs whose params or script changed (otherwise an error).
        retry_failed: send jobs that ended FAILED, TIMEOUT, ... again.
        max_attempts: never send a job more than this many times.
        retry: a :class:`Retry` policy, stored in the experiment: jobs that end in the
            states it names are sent again (with more time or memory, if it says so) by
            ``ps.wait``, ``ps.status(apply=True)`` or ``param-search watch``. None keeps
            the stored one, False removes it.
        max_queued: keep at most this many of the experiment's jobs in the queue; the rest
            wait in the experiment (PENDING, reason "held back: ...") and go out as others
            end (stored like ``retry``; 0 removes the cap).
        progress: show a progress bar while waiting.
        **queue_options: options of the queue, e.g. ``workers=4`` or ``partition='gpu'``.
    """
    queue = make_queue(use, **queue_options)
    _check_policy(queue, retry)
    check_max_queued(max_queued)
    jobs = render_jobs(template, name, as_points(param_space), work_dir)
    if not jobs:
        _print_plan({k: [] for k in _PLAN_KINDS}, queue)
        return _empty_table(Experiment(work_dir), param_space)
    exp = Experiment.create(work_dir)
    store_policy(exp, retry, max_queued)
    with exp.transaction() as records:
        known = [records[j.job_name] for j in jobs if j.job_name in records]
        reconcile(exp, known)
        refresh(exp, known)
        plan = _plan(exp, records, jobs, replace, retry_failed, max_attempts)
        _print_plan(plan, queue)
        _setup(exp, records, plan)
        send = plan["new"] + plan["unsent"] + plan["retry"] + plan["changed"] + plan["lost"]
        dispatch(exp, queue, records, [records[j.job_name] for j in send], {j.job_name: j.script for j in send})
    if wait if wait is not None else queue.waits_by_default:
        return _wait_for(exp.work_dir, names=[j.job_name for j in jobs], progress=progress,
                         workers=getattr(queue, "workers", None))
    queue.after_submit(exp, [r for r in (records[j.job_name] for j in send) if not is_held(r)])
    return jobs_table(exp, [records[j.job_name] for j in jobs])


def _check_policy(queue: Queue, retry: Any) -> None:
    """A retry policy that is no Retry, or asks what the queue cannot do: say so first."""
    if retry is None or retry is False:
        return
    if not isinstance(retry, Retry):
        raise OptionError(f"retry= takes a ps.Retry(...) policy, e.g. ps.Retry(max_attempts=3, "
                          f"on={{'TIMEOUT': {{'time': 2.0}}}}), not {retry!r}")
    retry.check(queue.name, queue.resource_syntax())


_PLAN_KINDS = ("new", "unsent", "active", "completed", "retry", "failed", "changed", "lost")


def _empty_table(exp: Experiment, param_space: Any) -> pd.DataFrame:
    """The jobs table of no jobs: the usual columns (and the space's names, if it has any)."""
    table = jobs_table(exp, [])
    names = [k for k in param_space.keys() if k not in table] if isinstance(param_space, Mapping) else []
    if names:
        table = pd.concat([pd.DataFrame({k: pd.Series(dtype=object) for k in names}), table], axis=1)
        table.attrs["work_dir"] = exp.work_dir
    return table


def _plan(exp: Experiment, records: dict[str, Record], jobs: list[RenderedJob], replace: bool,
          retry_failed: bool, max_attempts: int | None) -> dict[str, list]:
    """Sort the space's jobs by what submit must do with each."""
    plan: dict[str, list] = {k: [] for k in _PLAN_KINDS}
    for job in jobs:
        record = records.get(job.job_name)
        if record is not None and record["hash"] == job.hash:
            record["params"] = job.params   # exact: earlier versions indexed NaN and inf as null
        if record is None:
            plan["new"].append(job)
        elif record["hash"] != job.hash or record["script_hash"] != script_digest(job.script):
            if not replace or record["state"] in ACTIVE_STATES:
                raise ConflictError(conflict_message(exp, job.job_name) + (
                    "; it is still queued or running: ps.cancel it first" if replace else ""))
            plan["changed"].append(job)
        elif record["state"] in ACTIVE_STATES:
            plan["active"].append(job)
        elif not os.path.isfile(f"{exp.work_dir}/{job.job_name}/params.json"):
            plan["lost"].append(job)   # its folder was deleted: written and sent again
        elif record["state"] == NEW:
            plan["unsent"].append(job)
        elif record["state"] == COMPLETED:
            plan["completed"].append(job)
        elif retry_failed and (max_attempts is None or record["attempt"] < max_attempts):
            plan["retry"].append(job)
        else:
            plan["failed"].append(job)
    return plan


def _print_plan(plan: dict[str, list], queue: Queue) -> None:
    parts = [f"{len(plan['new']) + len(plan['unsent'])} new",
             f"{len(plan['active'])} already queued or running",
             f"{len(plan['completed'])} completed",
             f"{len(plan['retry'])} failed to retry",
             f"{len(plan['failed'])} failed, not retried"]
    if plan["changed"]:
        parts.append(f"{len(plan['changed'])} changed, replaced")
    if plan["lost"]:
        parts.append(f"{len(plan['lost'])} whose folder was deleted, written and sent again")
    print(f"param_search: {', '.join(parts)} (queue: {queue.name})", file=sys.stderr)


def _setup(exp: Experiment, records: dict[str, Record], plan: dict[str, list]) -> None:
    """Write the folders of new and changed jobs and add them to the index."""
    for job in plan["new"]:
        if job.job_name in records:
            continue
        exp.setup_job(job)
        records[job.job_name] = new_record(job)
    for job in plan["lost"]:
        exp.setup_job(job)
    for job in plan["changed"]:
        exp.replace_job(job)
        old = records[job.job_name]
        records[job.job_name] = {**new_record(job), "attempt": old["attempt"]}


def load(work_dir: "str | os.PathLike") -> pd.DataFrame:
    """The jobs table of the experiment in ``work_dir``, as last recorded (no scheduler calls)."""
    exp = Experiment.open(work_dir)
    return frame(exp, exp.load_index())


def _open(jobs: JobsLike, as_list: bool = True) -> "tuple[Experiment, list[str] | pd.Series | None]":
    """The experiment behind a jobs table or work_dir, and the job names it covers (a
    list, or with ``as_list=False`` the table's own column)."""
    if isinstance(jobs, pd.DataFrame):
        if "job_name" not in jobs:
            return Experiment.open(work_dir_of(jobs)), None
        names = jobs["job_name"]
        return Experiment.open(work_dir_of(jobs)), names.tolist() if as_list else names
    return Experiment.open(jobs), None


def _select(records: dict[str, Record], names: list[str] | None) -> list[Record]:
    if names is None:
        return list(records.values())
    missing = [n for n in names if n not in records]
    if missing:
        raise ParamSearchError(f"job {missing[0]!r} is not in this experiment's index")
    return [records[n] for n in names]


def status(jobs: JobsLike, apply: bool = False) -> pd.DataFrame:
    """The jobs table refreshed from the job folders and the queues (batched queries).

    With ``apply=True``, also apply the experiment's stored policy once (retry what it
    names, send held-back jobs there is room for) and return the table after that. For the
    experiment of a search (``ps.optimize``), each trial's metrics (its last row) are
    columns too, and ``best`` marks the best trial so far (several objectives: the Pareto
    front); ``ps.best`` takes the table.
    """
    return with_search(current(jobs, apply))


def current(jobs: JobsLike, apply: bool = False) -> pd.DataFrame:
    """:func:`status` without a search's metrics (what loops refreshing the table call)."""
    table = _status(jobs)[0]
    if apply:
        exp = Experiment.open(work_dir_of(table))
        if apply_policy(exp, table):
            table = _status(_names_frame(exp, table["job_name"].tolist()))[0]
    return table


def _status(jobs: JobsLike, news: list[Record] | None = None, watched: "Collection[str]" = (),
            write_news: bool = True, only: "Collection[str] | None" = None) -> tuple[pd.DataFrame, bool]:
    """The table and whether the news were written into the index."""
    exp, names = _open(jobs, as_list=False)
    with exp.lock():
        index = exp.load_index()
        rows = _rows(index, names)
        index, changed = refresh_index(exp, index, rows, watched)   # the news' jobs are watched
        if news and write_news:
            index = shown = exp.merged_index(news, index)
        else:   # news merged for reading only (just the fields shown, if few are)
            shown = exp.merged_index(news, index, None if only is None else record_fields(only)) if news else index
        if changed or (news and write_news):
            exp.save_index(index)
    return frame(exp, shown if rows is None else shown.take(rows), live_logs=news is None,
                 only=only), bool(news and write_news)


def status_with(work_dir: str, news: list[Record], watched: "Collection[str]", write_news: bool = True,
                only: "Collection[str] | None" = None) -> tuple[pd.DataFrame, bool]:
    """:func:`status` of every job but those this process runs and watches itself
    (``watched``), with their latest records (``news``) merged in; and whether the news
    were written into the index. ``write_news=False``: they are not (the caller writes them
    in a later write of its own).
    Running jobs' log tails are left as recorded (the caller's loop looks at states);
    ``only``: just these columns."""
    return _status(work_dir, news, watched, write_news, only)


def _rows(index: "pa.Table", names: "Sequence[str] | pd.Series | None") -> "np.ndarray | None":
    """Positions of ``names`` in an index table (None: every row, in order)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if names is None:
        return None
    wanted = pa.array(names.array if isinstance(names, pd.Series) else names).cast(pa.large_string())
    if index.column("job_name").equals(pa.chunked_array([wanted])):
        return None   # the whole table, in order: the usual case
    found = pc.index_in(wanted, value_set=index.column("job_name"))
    if found.null_count:
        missing = wanted[int(np.argmax(found.is_null().to_numpy(zero_copy_only=False)))].as_py()
        raise ParamSearchError(f"job {missing!r} is not in this experiment's index")
    return found.to_numpy()


def _fresh_choice(exp: Experiment, records: dict[str, Record], names: list[str] | None) -> list[Record]:
    """The chosen records, reconciled and refreshed in place."""
    chosen = _select(records, names)
    reconcile(exp, chosen)
    refresh(exp, chosen)
    return chosen


def wait(jobs: JobsLike, timeout: float | None = None, *, names: Sequence[str] | None = None,
         progress: bool = True, workers: int | None = None, poll_interval: float = 1.0,
         max_interval: float = 30.0) -> pd.DataFrame:
    """Block until every job is final; return the refreshed table.

    Local jobs that no process is running are run here (``workers`` at a time). Other
    queues are polled (one batched refresh per poll) every ``poll_interval`` seconds while
    jobs change state, backing off by 1.5x per quiet poll up to ``max_interval``.

    Raises:
        TimeoutError: ``timeout`` seconds passed first.
    """
    exp, table_names = _open(jobs)
    names = list(names) if names is not None else table_names
    deadline = None if timeout is None else time.monotonic() + timeout
    first = loop.patiently(lambda: _refreshed(exp, names, workers, progress, deadline), deadline)
    _never_sent(first)
    names = list(first["job_name"])
    bar = _wait_bar(len(first), progress) if not loop.all_final(first) else None
    try:
        return loop.run(lambda: _refreshed(exp, names, workers, progress, deadline),
                        [lambda table: apply_policy(exp, table)], first=first,
                        show=lambda table: bar is not None and _show(bar, table), deadline=deadline,
                        poll_interval=poll_interval, max_interval=max_interval,
                        timeout_words=f" after {timeout} s")
    finally:
        if bar is not None:
            bar.close()


_wait_for = wait   # for functions whose ``wait`` parameter shadows the function


def _never_sent(table: pd.DataFrame) -> None:
    """ps.wait would wait forever for jobs no queue has: say so at once."""
    new = table.loc[table["job_state"] == NEW, "job_name"].tolist()
    if new:
        raise ExperimentError(
            f"{len(new)} job(s) were never sent to a queue (state NEW), e.g. {new[0]!r}, so waiting "
            "for them would never end; send them by calling the same ps.submit again (it sends "
            "new and unsent points), then wait"
        )


def _names_frame(exp: Experiment, names: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame({"job_name": names})
    frame.attrs["work_dir"] = exp.work_dir
    return frame


def _refreshed(exp: Experiment, names: list[str] | None, workers: int | None, progress: bool,
               deadline: float | None) -> pd.DataFrame:
    """The refreshed table, after each queue did in this process what its unfinished jobs
    need (the local queue runs those no runner owns). While some of them are held back,
    every job of the experiment is driven: those outside ``names`` may hold the room."""
    table = current(exp.work_dir if names is None else _names_frame(exp, names))
    unfinished = table.loc[~table["job_state"].isin(FINAL_STATES), ["queue", "batch", "job_name", "reason"]]
    held = unfinished["reason"].str.startswith(HELD, na=False).any()
    drove = False
    for name, group in unfinished.groupby("queue", dropna=False, sort=False):
        queue = queue_for(exp, None if pd.isna(name) else name, group["batch"].dropna().max() or None)
        drove |= queue.drive(exp, None if names is None or held else group["job_name"].tolist(), progress,
                             deadline, workers)
    if drove:
        table = current(_names_frame(exp, table["job_name"].tolist()))
    return table


def _wait_bar(total: int, enabled: bool):
    from .progress import bar

    return bar(total, "final", "job", enabled)


def _show(bar, table: pd.DataFrame) -> None:
    counts = Counter(table["job_state"])
    done = sum(n for s, n in counts.items() if s in FINAL_STATES)
    bar.update(done - bar.n)
    bar.set_postfix({"completed": counts.get("COMPLETED", 0),
                     "failed": done - counts.get("COMPLETED", 0),
                     "running": counts.get("RUNNING", 0), "pending": counts.get("PENDING", 0)})


def resubmit(jobs: JobsLike, states: Sequence[str] = RESUBMIT_STATES, *, use: "str | Queue | None" = None,
             max_attempts: int | None = None, wait: bool | None = None, progress: bool = True,
             **queue_options: Any) -> pd.DataFrame:
    """Send again the jobs that ended in one of ``states``; return the table of the jobs given.

    Each attempt keeps its own logs (``job.<attempt>.out/err``). Jobs still pending or
    running are never sent again (naming a non-final state in ``states`` is an error);
    ``max_attempts`` caps the attempts of each job. ``use`` and ``queue_options`` choose
    where they go (default: the queue each went to before).
    """
    states = [str(s) for s in states]
    bad = [s for s in states if s not in FINAL_STATES]
    if bad:
        raise ParamSearchError(f"cannot resubmit jobs in state {bad[0]}: only final states "
                               f"({', '.join(sorted(FINAL_STATES))}) can be resubmitted")
    exp, names = _open(jobs)
    with exp.transaction() as records:
        chosen = _fresh_choice(exp, records, names)
        send = [r for r in chosen if r["state"] in states
                and (max_attempts is None or r["attempt"] < max_attempts)]
        _check_folders(exp, send)
        groups = queues_again(exp, send, use, queue_options)
        print(f"param_search: resubmitting {len(send)} of {len(chosen)} jobs", file=sys.stderr)
        for queue, group in groups:
            dispatch(exp, queue, records, group, overrides=queue_options)
    chosen_names = [r["job_name"] for r in chosen]
    waits = any(queue.waits_by_default for queue, _ in groups)
    if groups and (wait if wait is not None else waits):
        return _wait_for(exp.work_dir, names=chosen_names, progress=progress)
    return jobs_table(exp, [records[n] for n in chosen_names])


def _check_folders(exp: Experiment, records: list[Record]) -> None:
    """Jobs whose folder was deleted cannot be resubmitted: their script is gone."""
    lost = [r["job_name"] for r in records if not os.path.isfile(os.path.join(exp.job_dir(r["job_name"]), "job.sh"))]
    if lost:
        raise ExperimentError(
            f"{len(lost)} job folder(s) are missing or lack job.sh (deleted by hand?), e.g. "
            f"{exp.job_dir(lost[0])!r}; run the same ps.submit again: it writes them anew and sends them"
        )


def cancel(jobs: JobsLike) -> pd.DataFrame:
    """Cancel the pending and running jobs among ``jobs`` (a table, rows of it, or a work_dir)."""
    exp, names = _open(jobs)
    with exp.transaction() as records:
        chosen = _fresh_choice(exp, records, names)
        active = [r for r in chosen if r["state"] in ACTIVE_STATES]
        now = time.time()
        for record in active:
            if is_held(record):   # in no queue: nothing to ask
                apply(record, Cancelled(now))
        for name in {r["queue"] for r in active if r["state"] in ACTIVE_STATES}:
            group = [r for r in active if r["queue"] == name and r["state"] in ACTIVE_STATES]
            queue_for(exp, name, latest_batch(group)).cancel(exp, group)
        refresh(exp, active)
        for record in active:
            if record["state"] in FINAL_STATES and record["error"] is None:
                finalize(exp, record)
    return jobs_table(exp, chosen)
