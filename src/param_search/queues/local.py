"""The local queue: runs job scripts on this machine, N at a time.

Jobs handed to the local queue wait (PENDING) for a *runner*: the process that called
``ps.submit(..., use='local')`` or ``ps.wait``. A runner records itself as the owner of the
jobs it runs; if it dies, its running jobs keep going (they are recognised by pid and
process start time) and its pending jobs are picked up by the next runner.
"""
from __future__ import annotations

import os
import select
import signal
import socket
import time
from typing import TYPE_CHECKING

from ..outcome import process_alive, read_exit, read_start
from ..states import JobState
from .base import Queue

if TYPE_CHECKING:
    from ..experiment import Experiment, Record

NO_RUNNER = "no local runner is running it: call ps.wait(jobs) or ps.submit(...) again"


def runner_identity() -> str:
    """``host:pid:ticks`` naming this process unambiguously (pids get reused)."""
    with open(f"/proc/{os.getpid()}/stat") as f:
        ticks = f.read().rsplit(")", 1)[-1].split()[19]
    return f"{socket.gethostname()}:{os.getpid()}:{ticks}"


def owner_alive(owner: str | None) -> bool:
    if not owner:
        return False
    host, pid, ticks = owner.rsplit(":", 2)
    alive = process_alive(int(pid), int(ticks), host)
    return alive is not False


class LocalQueue(Queue):
    """Run jobs with bash on this machine.

    Args:
        workers: how many jobs run at once (default: the number of cores).
    """

    name = "local"

    def __init__(self, workers: int | None = None):
        if workers is not None and (not isinstance(workers, int) or workers < 1):
            raise ValueError(f"workers must be a positive int, not {workers!r}")
        self.workers = workers or os.cpu_count() or 1

    def submit(self, exp: "Experiment", records: list["Record"], scripts: "list[str] | None" = None) -> None:
        for record in records:
            record.update(state=JobState.PENDING.value, owner=None, job_id=None, reason=NO_RUNNER)

    def reconcile(self, exp: "Experiment", records: list["Record"]) -> None:
        self.submit(exp, [r for r in records if read_start(exp.attempt_path(r, "start")) is None])

    def poll(self, exp: "Experiment", records: list["Record"]) -> None:
        for record in records:
            if record["state"] == JobState.RUNNING.value:
                _check_running(exp, record)
            elif record["state"] in (JobState.PENDING.value, JobState.SUBMITTING.value):
                alive = owner_alive(record["owner"])
                record["reason"] = "waiting for a free worker" if alive else NO_RUNNER

    def cancel(self, exp: "Experiment", records: list["Record"]) -> None:
        for record in records:
            started = read_start(exp.attempt_path(record, "start"))
            if started and started.pid and process_alive(started.pid, started.ticks, started.host):
                _kill_group(started.pid, signal.SIGTERM)
            record.update(state=JobState.CANCELLED.value, signal="TERM" if started else None,
                          ended=time.time())


def _check_running(exp: "Experiment", record: "Record") -> None:
    started = read_start(exp.attempt_path(record, "start"))
    if started is None or not started.pid:
        return
    record["job_id"] = str(started.pid)
    if process_alive(started.pid, started.ticks, started.host) is False:
        ended = read_exit(exp.attempt_path(record, "exit"))
        if ended is None:
            record.update(state=JobState.FAILED.value, ended=time.time(),
                          stderr="the job's process ended without recording an exit code (killed?)")


def _kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class LocalRunner:
    """Runs an experiment's pending local jobs in this process, ``workers`` at a time."""

    def __init__(self, exp: "Experiment", workers: int, progress: bool = True):
        self.exp, self.workers, self.progress = exp, workers, progress
        self.me = runner_identity()
        self.children: dict[int, "Record"] = {}   # pid -> record, started by us
        self.orphans: dict[int, "Record"] = {}    # pid -> record, started by a dead runner
        self.pidfds: dict[int, int] = {}          # pidfd -> pid
        self.dirty: list["Record"] = []

    def claim(self, names: set[str] | None) -> tuple[list["Record"], list["Record"]]:
        """Take ownership of pending local jobs nobody runs; find running orphans."""
        from ..tracking import refresh

        with self.exp.lock():
            records = self.exp.load_records()
            local = [r for r in records.values() if r["queue"] == "local"
                     and (names is None or r["job_name"] in names)]
            refresh(self.exp, local)
            todo = [r for r in local if r["state"] == JobState.PENDING.value
                    and not owner_alive(r["owner"])]
            for record in todo:
                record.update(owner=self.me, reason="waiting for a free worker")
            running = [r for r in local if r["state"] == JobState.RUNNING.value]
            self.exp.save_records(records)
        return todo, running

    def run(self, names: set[str] | None = None, deadline: float | None = None) -> None:
        """Run every claimable job (of ``names``, if given) to the end.

        At ``deadline`` (a ``time.monotonic()`` value) stop launching, hand the jobs not yet
        started back to the queue (any later runner takes them) and return; jobs already
        running go on.
        """
        todo, running = self.claim(names)
        for record in running:
            self._watch_orphan(record)
        if not todo and not self.orphans:
            return
        bar = _progress_bar(len(todo) + len(self.orphans), self.progress)
        try:
            self._loop(todo, bar, deadline)
        except BaseException:
            self._stop(todo)
            raise
        finally:
            bar.close()
            self._flush()

    def _loop(self, todo: list["Record"], bar, deadline: float | None) -> None:
        queue = list(reversed(todo))
        last_flush = time.monotonic()
        while queue or self.children or self.orphans:
            if deadline is not None and time.monotonic() >= deadline:
                for record in queue:
                    record.update(owner=None, reason=NO_RUNNER)
                self.dirty += queue
                return
            while queue and len(self.children) + len(self.orphans) < self.workers:
                self._launch(queue.pop())
            for record in self._wait_some():
                bar.update(1)
                self.dirty.append(record)
            if time.monotonic() - last_flush > 2.0:
                queue = self._sync(queue)
                last_flush = time.monotonic()

    def _launch(self, record: "Record") -> None:
        job_dir = self.exp.job_dir(record["job_name"])
        argv = ["bash", self.exp.wrapper, job_dir, str(record["attempt"]), record["mode"]]
        pid = os.posix_spawn("/bin/bash", argv, os.environ, setsid=True)
        record.update(state=JobState.RUNNING.value, job_id=str(pid), reason=None, owner=self.me)
        self.children[pid] = record
        self._open_pidfd(pid)
        self.dirty.append(record)

    def _watch_orphan(self, record: "Record") -> None:
        started = read_start(self.exp.attempt_path(record, "start"))
        if started and started.pid and process_alive(started.pid, started.ticks, started.host):
            self.orphans[started.pid] = record
            self._open_pidfd(started.pid)

    def _open_pidfd(self, pid: int) -> None:
        try:
            self.pidfds[os.pidfd_open(pid)] = pid
        except (AttributeError, OSError):
            pass  # no pidfd support: _wait_some falls back to polling

    def _wait_some(self) -> list["Record"]:
        """Block until at least one job ends (or a short timeout); return the ended ones."""
        if self.pidfds and len(self.pidfds) == len(self.children) + len(self.orphans):
            ready, _, _ = select.select(list(self.pidfds), [], [], 1.0)
        else:
            time.sleep(0.02)
            ready = list(self.pidfds)
        done = []
        for fd in ready:
            record = self._reap(self.pidfds[fd])
            if record is not None:
                os.close(fd)
                del self.pidfds[fd]
                done.append(record)
        if not self.pidfds:
            done += [r for r in (self._reap(pid) for pid in list({**self.children, **self.orphans})) if r]
        return done

    def _reap(self, pid: int) -> "Record | None":
        """The record of ``pid`` if that job has ended (finalized), else None."""
        if pid in self.children:
            if os.waitpid(pid, os.WNOHANG) == (0, 0):
                return None
            record = self.children.pop(pid)
            if self._claimed_elsewhere(record, pid):
                self._watch_orphan(record)
                return None
        else:
            record = self.orphans[pid]
            started = read_start(self.exp.attempt_path(record, "start"))
            if process_alive(started.pid, started.ticks, started.host):
                return None
            del self.orphans[pid]
        self._settle(record)
        return record

    def _claimed_elsewhere(self, record: "Record", pid: int) -> bool:
        """Did another copy of this attempt (an orphan's) claim it before our child?"""
        for _ in range(100):
            started = read_start(self.exp.attempt_path(record, "start"))
            if started is None or started.pid == pid:
                return False
            if started.pid:
                return True
            time.sleep(0.01)   # the claimant has not written its pid yet
        return False

    def _settle(self, record: "Record", verdict: JobState = JobState.FAILED) -> None:
        """Finalize an ended job from its exit file; without one, use ``verdict``."""
        from ..tracking import apply_wrapper_files, finalize

        apply_wrapper_files(self.exp, record)
        if record["state"] in (JobState.RUNNING.value, JobState.PENDING.value):
            record.update(state=verdict.value, ended=time.time())
        finalize(self.exp, record)

    def _sync(self, queue: list["Record"]) -> list["Record"]:
        """Persist progress; drop queued jobs that another process cancelled meanwhile."""
        with self.exp.lock():
            current = self.exp.load_records()
            queue = [r for r in queue if current[r["job_name"]]["state"] == JobState.PENDING.value]
            self._flush()
        return queue

    def _flush(self) -> None:
        if self.dirty:
            self.exp.update(self.dirty)
            self.dirty = []

    def _stop(self, todo: list["Record"]) -> None:
        """Ctrl-C or an error: terminate our running jobs and record them cancelled."""
        for pid in self.children:
            _kill_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5.0
        while self.children and time.monotonic() < deadline:
            for pid in [p for p in self.children if os.waitpid(p, os.WNOHANG) != (0, 0)]:
                del self.children[pid]
            time.sleep(0.02)
        for pid in self.children:
            _kill_group(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        for record in todo:
            if record["state"] in (JobState.PENDING.value, JobState.RUNNING.value):
                self._settle(record, verdict=JobState.CANCELLED)
                self.dirty.append(record)
        for fd in self.pidfds:
            os.close(fd)
        self.pidfds.clear()


def _progress_bar(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc="jobs", unit="job", leave=True)
