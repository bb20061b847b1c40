"""The supervisor: ``param-search watch WORK_DIR`` keeps a sweep going when no Python
session does.

It is ``ps.wait``'s loop over the whole experiment (retry policy, held-back jobs topped up),
polling politely (5 s, backing off to 60 s while nothing changes) and showing a live view.
It never cancels a job: Ctrl-C or ``--stop`` stop the supervisor only. Local jobs are run by
a detached runner of their own, so they too outlive it. One supervisor per experiment: it
holds a lock on ``.param_search/watch.lock`` and writes its pid to ``watch.pid``.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from typing import TextIO

import pandas as pd

from . import api, loop
from .dispatch import apply_policy
from .errors import ExperimentError
from .attempts import process_alive
from .experiment import Experiment
from .lockfile import held, holder
from .proc import start_detached
from .resources import clock
from .textview import counts_line
from .queues.base import Queue
from .queues.registry import queue_class, queue_for
from .states import FINAL_STATES, RUNNING


def watch(work_dir: str, *, poll_interval: float = 5.0, max_interval: float = 60.0,
          out: TextIO | None = None) -> pd.DataFrame:
    """Supervise the experiment in ``work_dir`` until every job is final; return its table."""
    exp = Experiment.open(work_dir)
    out = out or sys.stdout
    view = View(out, out.isatty())
    with supervising(exp):
        signal.signal(signal.SIGTERM, _stop)
        try:
            return loop.run(lambda: refreshed(exp), [lambda table: apply_policy(exp, table)],
                            show=view.show, poll_interval=poll_interval, max_interval=max_interval)
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _stop(signum, frame) -> None:
    raise KeyboardInterrupt   # unwinds like Ctrl-C: the lock and pid file go, the jobs stay


def refreshed(exp: Experiment) -> pd.DataFrame:
    """The whole experiment refreshed; jobs that need a process of this machine to run get a
    detached one (so that stopping the supervisor stops none of them)."""
    table = api.current(exp.work_dir)
    unfinished = ~table["job_state"].isin(FINAL_STATES).to_numpy()
    if unfinished.any():
        for name in pd.unique(table["queue"].to_numpy()[unfinished].astype(object)):
            if isinstance(name, str) and queue_class(name).run_detached is not Queue.run_detached:
                batches = table.loc[unfinished & (table["queue"] == name).to_numpy(), "batch"].dropna()
                queue_for(exp, name, batches.max() if len(batches) else None).run_detached(exp)
    return table


def supervising(exp: Experiment) -> "contextlib.AbstractContextManager[None]":
    """Be the experiment's one supervisor for a while (``watch.pid`` says who, meanwhile)."""
    def busy(who: str | None) -> ExperimentError:
        return ExperimentError(f"a supervisor already watches {exp.work_dir} ({_who(who)}); "
                               f"stop it with: param-search watch --stop {exp.work_dir}")

    # patience: someone asking who supervises (see supervisor) holds the lock a moment
    return held(*_files(exp), busy, patience=2.0)


def supervisor(exp: Experiment) -> str | None:
    """Who supervises the experiment (``host:pid:ticks``; "" while one starts up), None if
    nobody does."""
    return holder(*_files(exp))


def _files(exp: Experiment) -> tuple[str, str]:
    return os.path.join(exp.state_dir, "watch.lock"), os.path.join(exp.state_dir, "watch.pid")


def _who(identity: str | None) -> str:
    if not identity:
        return "starting up"
    host, pid, _ticks = identity.rsplit(":", 2)
    return f"pid {pid} on {host}"


def detach(work_dir: str, poll_interval: float = 5.0) -> int:
    """Start a supervisor in the background (its log: ``.param_search/watch.log``); its pid."""
    exp = Experiment.open(work_dir)
    running = supervisor(exp)
    if running is not None:
        raise ExperimentError(f"a supervisor already watches {exp.work_dir} ({_who(running)})")
    proc = start_detached("param_search.cli", ["watch", exp.work_dir, "--interval", str(poll_interval)],
                          os.path.join(exp.state_dir, "watch.log"))
    deadline = time.monotonic() + 10
    while not supervisor(exp) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    if proc.poll() is not None and proc.returncode != 0:
        raise ExperimentError(f"the supervisor exited at once (code {proc.returncode}); see "
                              f"{exp.state_dir}/watch.log")
    return proc.pid


def stop(work_dir: str, timeout: float = 30.0) -> int | None:
    """Stop the experiment's supervisor (never its jobs); the pid stopped, None if none ran."""
    exp = Experiment.open(work_dir)
    identity = supervisor(exp)
    if identity is None:
        return None
    if not identity:
        raise ExperimentError(f"the supervisor of {exp.work_dir} is starting up; try again in a moment")
    host, pid, ticks = identity.rsplit(":", 2)
    alive = process_alive(int(pid), int(ticks), host)
    if alive is False:
        return None
    if alive is None:
        raise ExperimentError(f"the supervisor of {exp.work_dir} runs on {host}, not here (pid {pid}); "
                              f"run param-search watch --stop there")
    os.kill(int(pid), signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while supervisor(exp) is not None:
        if time.monotonic() > deadline:
            raise ExperimentError(f"the supervisor (pid {pid}) did not stop within {timeout:g} s")
        time.sleep(0.1)
    return int(pid)


class View:
    """The live view: redrawn in place on a terminal, a line per change otherwise."""

    def __init__(self, out: TextIO, tty: bool, rows: int = 8):
        self.out, self.tty, self.rows = out, tty, rows
        self.drawn = 0
        self.last = ""

    def show(self, table: pd.DataFrame) -> None:
        line = f"{time.strftime('%H:%M:%S')} {counts_line(table)}"
        if not self.tty:
            if line[9:] != self.last[9:]:
                print(line, file=self.out, flush=True)
            self.last = line
            return
        lines = [line, *self._running(table), *self._failures(table)]
        if self.drawn:
            self.out.write(f"\x1b[{self.drawn}F\x1b[J")
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()
        self.drawn = len(lines)

    def _running(self, table: pd.DataFrame) -> list[str]:
        is_running = (table["job_state"] == RUNNING).to_numpy()
        if not is_running.any():
            return []
        running = table.loc[is_running, ["job_name", "node", "started"]]
        now = time.time()
        rows = [f"  {r.job_name:<30} {str(r.node or ''):<12} "
                f"{'' if pd.isna(r.started) else clock(int(max(now - r.started.timestamp(), 0)))}"
                for r in running.head(self.rows).itertuples()]
        more = [f"  ... and {len(running) - self.rows} more running"] if len(running) > self.rows else []
        return ["running:", *rows, *more]

    def _failures(self, table: pd.DataFrame) -> list[str]:
        state = table["job_state"]
        is_failed = (state.isin(FINAL_STATES) & (state != "COMPLETED")).to_numpy()
        if not is_failed.any():
            return []
        failed = table.loc[is_failed, ["job_name", "job_state", "error", "ended"]]
        latest = failed.sort_values("ended", na_position="first").tail(self.rows)
        return ["latest failures:", *(f"  {r.job_name:<30} {r.job_state:<13} {str(r.error or '')[:80]}"
                                      for r in latest.itertuples())]

