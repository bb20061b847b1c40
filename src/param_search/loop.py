"""The one loop behind ``ps.wait``, the supervisor and adaptive search.

Refresh, let each policy decide and act (retry, top up, ask for new trials, prune), show,
sleep; poll again soon while things change, backing off while nothing does. A scheduler
that does not answer is waited out with backoff until the caller's deadline. The callers
differ only in the steps they pass and in how they show progress.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .errors import QueueError
from .states import FINAL_STATES

if TYPE_CHECKING:
    import pandas as pd

Refresh = Callable[[], "pd.DataFrame"]
#: A policy step: looks at the table, acts, and says whether it did anything.
Step = Callable[["pd.DataFrame"], bool]


def all_final(table: "pd.DataFrame") -> bool:
    return bool(table["job_state"].isin(FINAL_STATES).all())


def run(refresh: Refresh, steps: Sequence[Step] = (), *, done: Callable[["pd.DataFrame"], bool] = all_final,
        show: Callable[["pd.DataFrame"], None] = lambda table: None, deadline: float | None = None,
        poll_interval: float = 1.0, max_interval: float = 30.0, timeout_words: str = "",
        first: "pd.DataFrame | None" = None) -> "pd.DataFrame":
    """Run until ``done(table)``; return the last table. ``first``: a table just refreshed.

    Raises:
        TimeoutError: ``deadline`` (a ``time.monotonic()`` value) passed first.
    """
    table = patiently(refresh, deadline) if first is None else first
    interval = poll_interval
    while True:
        acted = False
        for step in steps:
            acted |= bool(step(table))
        if acted:   # decide again on what the action changed before calling anything done
            _check_deadline(table, deadline, 0.0, timeout_words)
            table = patiently(refresh, deadline)
            interval = poll_interval
            continue
        show(table)
        if done(table):
            return table
        _check_deadline(table, deadline, interval, timeout_words)
        time.sleep(interval)
        before = _signature(table)
        table = patiently(refresh, deadline)
        interval = min(interval * 1.5, max_interval) if _signature(table) == before else poll_interval


def _check_deadline(table: "pd.DataFrame", deadline: float | None, ahead: float, words: str) -> None:
    if deadline is not None and time.monotonic() + ahead > deadline:
        raise TimeoutError(f"jobs still not finished{words}: {_signature(table)}")


def _signature(table: "pd.DataFrame") -> dict:
    return table["job_state"].value_counts().to_dict()


def patiently(refresh: Refresh, deadline: float | None) -> "pd.DataFrame":
    """A refresh; a scheduler that does not answer (restarting, overloaded) is waited out
    with backoff until ``deadline``, with one line saying so."""
    delay, said = 2.0, False
    while True:
        try:
            return refresh()
        except QueueError as exc:
            if deadline is not None and time.monotonic() + delay > deadline:
                raise
            if not said:
                print(f"param_search: the scheduler did not answer ({exc}); retrying", file=sys.stderr)
                said = True
            time.sleep(delay)
            delay = min(delay * 2, 60.0)
