"""The local queue: runs job scripts on this machine, N at a time.

Jobs handed to the local queue wait (PENDING) for a *runner*: the process that called
``ps.submit(..., use='local')`` or ``ps.wait``. A runner records itself as the owner of the
jobs it runs; if it dies, its running jobs keep going (they are recognised by pid and
process start time) and its pending jobs are picked up by the next runner.
"""
from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from typing import TYPE_CHECKING

from ..outcome import process_alive, read_start, read_status
from ..states import JobState, state_from_exit_code
from .base import Queue

if TYPE_CHECKING:
    from ..experiment import Experiment, Record

NO_RUNNER = "no local runner is running it: call ps.wait(jobs) or ps.submit(...) again"


def runner_identity() -> str:
    """``host:pid:ticks`` naming this process unambiguously (pids get reused)."""
    with open(f"/proc/{os.getpid()}/stat") as f:
        ticks = f.read().rsplit(")", 1)[-1].split()[19]
    return f"{os.uname().nodename}:{os.getpid()}:{ticks}"


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
        self.submit(exp, [r for r in records if read_start(exp.attempt_path(r, "status")) is None])

    def poll(self, exp: "Experiment", records: list["Record"]) -> None:
        for record in records:
            if record["state"] == JobState.RUNNING.value:
                _check_running(exp, record)
            elif record["state"] in (JobState.PENDING.value, JobState.SUBMITTING.value):
                alive = owner_alive(record["owner"])
                record["reason"] = "waiting for a free worker" if alive else NO_RUNNER

    def cancel(self, exp: "Experiment", records: list["Record"]) -> None:
        for record in records:
            started = read_start(exp.attempt_path(record, "status"))
            if started and started.pid and process_alive(started.pid, started.ticks, started.host):
                _kill_group(started.pid, signal.SIGTERM)
            record.update(state=JobState.CANCELLED.value, signal="TERM" if started else None,
                          ended=time.time())


def _check_running(exp: "Experiment", record: "Record") -> None:
    started = read_start(exp.attempt_path(record, "status"))
    if started is None or not started.pid:
        return
    record["job_id"] = str(started.pid)
    if process_alive(started.pid, started.ticks, started.host) is False:
        if read_status(exp.attempt_path(record, "status"))[1] is None:
            record.update(state=JobState.FAILED.value, ended=time.time(),
                          stderr="the job's process ended without recording an exit code (killed?)")


def _kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class _Worker:
    """A long-lived ``wrapper.sh --worker`` bash and the job it is running, if any.

    Forking that bash per job is much cheaper than starting a bash per job. Jobs run in
    their own process groups and outlive a killed controller.
    """

    def __init__(self, wrapper: str):
        import subprocess

        self.proc = subprocess.Popen(["bash", wrapper, "--worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     start_new_session=True, bufsize=0)
        self.fd = self.proc.stdout.fileno()
        self.buffer = b""
        self.record: "Record | None" = None
        self.pid: int | None = None

    def start(self, line: str, record: "Record") -> None:
        self.record, self.pid = record, None
        self.proc.stdin.write(line.encode())

    def messages(self) -> list[list[str]]:
        data = os.read(self.fd, 65536)
        if not data:
            raise OSError("a local worker process ended unexpectedly")
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        return [line.decode().split() for line in lines]

    def close(self) -> None:
        """Let the worker end after its current job (not waiting for a busy one)."""
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        self.proc.stdout.close()
        if self.record is None:
            self.proc.wait()


class LocalRunner:
    """Runs an experiment's pending local jobs in this process, ``workers`` at a time."""

    def __init__(self, exp: "Experiment", workers: int, progress: bool = True):
        self.exp, self.workers, self.progress = exp, workers, progress
        self.me = runner_identity()
        self.pool: list[_Worker] = []
        self.orphans: dict[int, "Record"] = {}    # pidfd -> record, started by a dead runner
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
            for worker in self.pool:
                worker.close()
            for fd in self.orphans:
                os.close(fd)
            self._flush()

    def _busy(self) -> list[_Worker]:
        return [w for w in self.pool if w.record is not None]

    def _loop(self, todo: list["Record"], bar, deadline: float | None) -> None:
        queue = list(reversed(todo))
        last_flush = time.monotonic()
        while queue or self._busy() or self.orphans:
            if deadline is not None and time.monotonic() >= deadline:
                for record in queue:
                    record.update(owner=None, reason=NO_RUNNER)
                self.dirty += queue
                return
            while queue and len(self._busy()) + len(self.orphans) < self.workers:
                self._launch(queue.pop())
            for record in self._wait_some():
                bar.update(1)
                self.dirty.append(record)
            if time.monotonic() - last_flush > 2.0:
                queue = self._sync(queue)
                last_flush = time.monotonic()

    def _launch(self, record: "Record") -> None:
        worker = next((w for w in self.pool if w.record is None), None)
        if worker is None:
            worker = _Worker(self.exp.wrapper)
            self.pool.append(worker)
        job_dir = self.exp.job_dir(record["job_name"])
        worker.start(f"{job_dir}\t{record['attempt']}\t{record['mode']}\n", record)
        record.update(state=JobState.RUNNING.value, reason=None, owner=self.me)
        self.dirty.append(record)

    def _watch_orphan(self, record: "Record") -> None:
        started = read_start(self.exp.attempt_path(record, "status"))
        if started and started.pid and process_alive(started.pid, started.ticks, started.host):
            try:
                self.orphans[os.pidfd_open(started.pid)] = record
            except ProcessLookupError:
                pass

    def _wait_some(self) -> list["Record"]:
        """Block until at least one job ends (or a second passes); return the ended ones."""
        busy = {w.fd: w for w in self._busy()}
        ready, _, _ = select.select([*busy, *self.orphans], [], [], 1.0)
        done = []
        for fd in ready:
            if fd in busy:
                done += self._read_worker(busy[fd])
            else:
                record = self.orphans.pop(fd)
                os.close(fd)
                self._settle(record)
                done.append(record)
        return done

    def _read_worker(self, worker: _Worker) -> list["Record"]:
        done = []
        for message in worker.messages():
            if message[0] == "S":
                worker.pid = int(message[1])
                worker.record["job_id"] = message[1]
            elif message[0] == "E" and worker.record is not None:
                record, pid, status = worker.record, int(message[1]), int(message[2])
                worker.record = worker.pid = None
                if self._claimed_elsewhere(record, pid):
                    self._watch_orphan(record)
                    continue
                self._settle(record, exit_code=status if status < 128 else None)
                done.append(record)
        return done

    def _claimed_elsewhere(self, record: "Record", pid: int) -> bool:
        """Did another copy of this attempt (an orphan's) claim it before ours?"""
        for _ in range(100):
            started = read_start(self.exp.attempt_path(record, "status"))
            if started is None or started.pid == pid:
                return False
            if started.pid:
                return True
            time.sleep(0.01)   # the claimant has not written its pid yet
        return False

    def _settle(self, record: "Record", verdict: JobState = JobState.FAILED,
                exit_code: int | None = None) -> None:
        """Finalize an ended job from its exit file; without one, from the process's exit
        status (e.g. the script replaced the wrapper's EXIT trap) or else ``verdict``."""
        from ..tracking import apply_wrapper_files, finalize

        apply_wrapper_files(self.exp, record)
        if record["state"] in (JobState.RUNNING.value, JobState.PENDING.value):
            if exit_code is not None:
                record.update(state=state_from_exit_code(exit_code).value, exit_code=exit_code)
            else:
                record.update(state=verdict.value)
            record["ended"] = time.time()
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
        busy = self._busy()
        for worker in busy:
            pid = worker.pid or _started_pid(self.exp, worker.record)
            if pid:
                _kill_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5.0
        while self._busy() and time.monotonic() < deadline:
            fds = {w.fd: w for w in self._busy()}
            ready, _, _ = select.select(list(fds), [], [], 0.1)
            for fd in ready:
                with contextlib.suppress(OSError):
                    self._read_worker(fds[fd])
        for worker in self._busy():
            pid = worker.pid or _started_pid(self.exp, worker.record)
            if pid:
                _kill_group(pid, signal.SIGKILL)
        for record in todo:
            if record["state"] in (JobState.PENDING.value, JobState.RUNNING.value):
                self._settle(record, verdict=JobState.CANCELLED)
                self.dirty.append(record)


def _started_pid(exp: "Experiment", record: "Record") -> int | None:
    started = read_start(exp.attempt_path(record, "status"))
    return started.pid if started and started.pid else None


def _progress_bar(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc="jobs", unit="job", leave=True)
