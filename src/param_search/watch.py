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
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import TextIO

import pandas as pd

from . import api, loop
from .dispatch import apply_policy
from .errors import ExperimentError
from .experiment import Experiment
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
    table = api.status(exp.work_dir)
    unfinished = ~table["job_state"].isin(FINAL_STATES).to_numpy()
    if unfinished.any():
        for name in pd.unique(table["queue"].to_numpy()[unfinished].astype(object)):
            if isinstance(name, str) and queue_class(name).run_detached is not Queue.run_detached:
                batches = table.loc[unfinished & (table["queue"] == name).to_numpy(), "batch"].dropna()
                queue_for(exp, name, batches.max() if len(batches) else None).run_detached(exp)
    return table


@contextlib.contextmanager
def supervising(exp: Experiment) -> Iterator[None]:
    """Be the experiment's one supervisor for a while (pid file while it lasts)."""
    fd = os.open(os.path.join(exp.state_dir, "watch.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ExperimentError(f"a supervisor already watches {exp.work_dir} (pid {supervisor_pid(exp)}); "
                              f"stop it with: param-search watch --stop {exp.work_dir}") from None
    pid_path = os.path.join(exp.state_dir, "watch.pid")
    with open(pid_path, "w") as f:
        f.write(f"{os.getpid()}\n")
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(pid_path)
        os.close(fd)


def supervisor_pid(exp: Experiment) -> int | None:
    """The pid of the supervisor watching the experiment, if one is."""
    fd = os.open(os.path.join(exp.state_dir, "watch.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            with open(os.path.join(exp.state_dir, "watch.pid")) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return -1   # starting up: the lock is held, the pid not yet written
    finally:
        os.close(fd)
    return None


def detach(work_dir: str) -> int:
    """Start a supervisor in the background (its log: ``.param_search/watch.log``); its pid."""
    exp = Experiment.open(work_dir)
    running = supervisor_pid(exp)
    if running:
        raise ExperimentError(f"a supervisor already watches {exp.work_dir} (pid {running})")
    with open(os.path.join(exp.state_dir, "watch.log"), "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "param_search.cli", "watch", exp.work_dir],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 10
    while supervisor_pid(exp) is None and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if proc.poll() is not None and proc.returncode != 0:
        raise ExperimentError(f"the supervisor exited at once (code {proc.returncode}); see "
                              f"{exp.state_dir}/watch.log")
    return proc.pid


def stop(work_dir: str, timeout: float = 30.0) -> int | None:
    """Stop the experiment's supervisor (never its jobs); the pid stopped, None if none ran."""
    exp = Experiment.open(work_dir)
    pid = supervisor_pid(exp)
    if not pid or pid < 0:
        return None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while supervisor_pid(exp) and time.monotonic() < deadline:
        time.sleep(0.1)
    return pid


class View:
    """The live view: redrawn in place on a terminal, a line per change otherwise."""

    def __init__(self, out: TextIO, tty: bool, rows: int = 8):
        self.out, self.tty, self.rows = out, tty, rows
        self.drawn = 0
        self.last = ""

    def show(self, table: pd.DataFrame) -> None:
        counts = ", ".join(f"{n} {s}" for s, n in table["job_state"].value_counts().items())
        line = f"{time.strftime('%H:%M:%S')} {len(table)} jobs: {counts}"
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
        if not len(running):
            return []
        now = time.time()
        rows = [f"  {r.job_name:<30} {str(r.node or ''):<12} "
                f"{'' if pd.isna(r.started) else _clock(now - r.started.timestamp())}"
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


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
