"""The local queue: runs job scripts on this machine, N at a time.

Jobs handed to the local queue wait (PENDING) for a *runner*: the process that called
``ps.submit(..., use='local')`` or ``ps.wait``. A runner records itself as the owner of the
jobs it runs; if it dies, its running jobs keep going (they are recognised by pid and
process start time) and its pending jobs are picked up by the next runner.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import time
from typing import TYPE_CHECKING

from ..attempts import finalize, observe, process_alive, process_identity, read_start, read_status
from ..errors import ExperimentError, OptionError
from ..proc import start_detached
from ..lifecycle import Accepted, Cancelled, Exited, Requeued, Started, Vanished, Waiting, apply, in_a_queue, is_held
from ..states import CANCELLED, FAILED, FINAL_STATES, PENDING, RUNNING, SUBMITTING
from .base import Queue

if TYPE_CHECKING:
    from collections.abc import Callable

    import pyarrow as pa

    from ..attempts import ExitInfo, StartInfo
    from ..experiment import Experiment
    from ..record import Record

NO_RUNNER = "no local runner is running it: call ps.wait(jobs) or ps.submit(...) again"


runner_identity = process_identity


def owner_alive(exp: "Experiment", owner: str | None) -> bool:
    """Whether the runner ``owner`` is still running jobs: it holds a lock on its file in
    ``.param_search/runners/`` while it runs (a runner that stopped, even in a process that
    lives on, holds none). Without that file (an older runner), whether its process lives."""
    if not owner:
        return False
    try:
        fd = os.open(_runner_file(exp, owner), os.O_RDONLY)
    except FileNotFoundError:
        host, pid, ticks = owner.rsplit(":", 2)
        return process_alive(int(pid), int(ticks), host) is not False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _runner_file(exp: "Experiment", owner: str) -> str:
    return os.path.join(exp.state_dir, "runners", owner.replace(":", "_") + ".lock")


class LocalQueue(Queue):
    """Run jobs with bash on this machine.

    Args:
        workers: how many jobs run at once (default: the number of cores).
        detach: with ``ps.submit(..., wait=False)``, run the jobs in a background process of
            their own, so that the submitting process (a notebook, an SSH session) may end.
    """

    name = "local"
    waits_by_default = True
    submits_outside = False   # submit only marks the records: any runner of this machine takes them

    def __init__(self, workers: int | None = None, detach: bool = False):
        if workers is not None and (not isinstance(workers, int) or workers < 1):
            raise OptionError(f"workers must be a positive int, not {workers!r}")
        self.workers = workers or os.cpu_count() or 1
        self.detach = detach

    def start_runner(self, exp: "Experiment") -> int:
        """Start a detached process that runs the experiment's pending jobs; return its pid."""
        return start_detached("param_search._runner", [exp.work_dir, str(self.workers)],
                              os.path.join(exp.state_dir, "runner.log")).pid

    def submit(self, exp: "Experiment", records: list["Record"], scripts: "list[str] | None" = None) -> None:
        for record in records:
            record["owner"] = None
            apply(record, Accepted(None, NO_RUNNER))

    def reconcile(self, exp: "Experiment", records: list["Record"]) -> None:
        self.submit(exp, [r for r in records if read_start(exp.attempt_path(r, "status")) is None])

    def poll(self, exp: "Experiment", records: list["Record"], snapshot: "pa.Table | None" = None) -> None:
        for record in records:
            if record["state"] in (PENDING, SUBMITTING):
                observe(exp, record)   # a runner that died may have started it
            if record["state"] == RUNNING:
                _check_running(exp, record)
            elif record["state"] in (PENDING, SUBMITTING):
                alive = owner_alive(exp, record["owner"])
                apply(record, Waiting("waiting for a free worker" if alive else NO_RUNNER))

    def cancel(self, exp: "Experiment", records: list["Record"]) -> None:
        for record in records:
            started = read_start(exp.attempt_path(record, "status"))
            if started and started.pid and process_alive(started.pid, started.ticks, started.host):
                _kill_group(started.pid, signal.SIGTERM)
            apply(record, Cancelled(time.time(), "TERM" if started else None))

    def after_submit(self, exp: "Experiment", records: list["Record"]) -> None:
        """With ``detach=True``, a background process of their own runs the jobs."""
        if self.detach and records:
            self.start_runner(exp)

    def drive(self, exp: "Experiment", names: list[str] | None, progress: bool = True,
              deadline: float | None = None, workers: int | None = None) -> bool:
        """Run here the jobs among ``names`` that no live runner owns (``workers`` at a time,
        default this queue's); False if there were none."""
        records = exp.load_records()
        chosen = records.values() if names is None else [records[n] for n in names if n in records]
        if not any(r["queue"] == self.name and in_a_queue(r) and not owner_alive(exp, r["owner"]) for r in chosen):
            return False
        LocalRunner(exp, workers or self.workers, progress).run(None if names is None else set(names), deadline)
        return True

    def stepper(self, exp: "Experiment") -> "LocalStepper":
        """Runs the jobs in the caller's own loop (see :class:`LocalStepper`)."""
        return LocalStepper(exp, self.workers)

    def run_detached(self, exp: "Experiment") -> bool:
        """Start a background runner if some local job has none."""
        if not any(r["queue"] == self.name and in_a_queue(r) and not owner_alive(exp, r["owner"]) for r in exp.load_records().values()):
            return False
        self.start_runner(exp)
        return True

    def refresh_records(self, exp: "Experiment", records: list["Record"]) -> None:
        """Bring the local records up to date: their attempt files, then their processes."""
        active = [r for r in records if in_a_queue(r)]
        for record in active:
            observe(exp, record)
        self.poll(exp, active)
        for record in active:
            if record["state"] in FINAL_STATES:
                finalize(exp, record)


def _check_running(exp: "Experiment", record: "Record") -> None:
    path = exp.attempt_path(record, "status")
    started = read_start(path)
    if (started is None or not started.pid) and not owner_alive(exp, record["owner"]):
        # handed to a worker of a runner that stopped before the job wrote its start line
        if started is None:
            apply(record, Requeued(NO_RUNNER))   # never launched: any runner may take it
        else:
            apply(record, Vanished(FAILED, time.time(), "the job could not write its status file "
                                                        "(disk full or read-only?) and did not run"))
        return
    if started is None or not started.pid or started.scheduler_id:
        return   # not started yet, or run by a scheduler (not a process of this machine to judge)
    record["job_id"] = str(started.pid)
    if process_alive(started.pid, started.ticks, started.host) is False:
        if read_status(exp.attempt_path(record, "status"))[1] is None:
            apply(record, Vanished(FAILED, time.time(),
                                   "the job's process ended without recording an exit code (killed?)"))


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

    #: Jobs handed to a worker at once: the one running and the next, so a worker never
    #: waits for the controller between two jobs.
    DEPTH = 2

    def __init__(self, wrapper: str):
        import subprocess

        self.proc = subprocess.Popen(["bash", wrapper, "--worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     start_new_session=True, bufsize=0)
        self.fd = self.proc.stdout.fileno()
        self.buffer = b""
        self.assigned: list["Record"] = []   # head: running (or about to), then queued
        self.pid: int | None = None          # pid of the head job once started

    def give(self, line: str, record: "Record") -> None:
        self.assigned.append(record)
        self.proc.stdin.write(line.encode())

    def messages(self) -> list[list[str]]:
        data = os.read(self.fd, 65536)
        if not data:
            raise OSError("a local worker process ended unexpectedly")
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        return [line.decode().split() for line in lines]

    def halt(self) -> None:
        """Kill the worker itself (not its jobs) so that it starts nothing more."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        self.proc.stdout.close()
        if not self.assigned:
            self.proc.wait()


class LocalRunner:
    """Runs an experiment's pending local jobs in this process, ``workers`` at a time."""

    def __init__(self, exp: "Experiment", workers: int, progress: bool = True):
        self.exp, self.workers, self.progress = exp, workers, progress
        self.me = runner_identity()
        self.pool: list[_Worker] = []
        self.orphans: dict[int, "Record"] = {}    # pidfd -> record, started by a dead runner
        self.dirty: list["Record"] = []
        self.returned: list["Record"] = []        # handed back by a killed worker, not started

    def claim(self, names: set[str] | None) -> tuple[list["Record"], list["Record"]]:
        """Take ownership of pending local jobs nobody runs; find running orphans."""
        with self.exp.transaction() as records:
            local = [r for r in records.values() if r["queue"] == LocalQueue.name
                     and (names is None or r["job_name"] in names)]
            LocalQueue().refresh_records(self.exp, local)
            todo = [r for r in local if r["state"] == PENDING and not is_held(r)
                    and not owner_alive(self.exp, r["owner"])]
            for record in todo:
                record["owner"] = self.me
                apply(record, Waiting("waiting for a free worker"))
            running = [r for r in local if r["state"] == RUNNING]
        return todo, running

    def run(self, names: set[str] | None = None, deadline: float | None = None) -> None:
        """Run every claimable job (of ``names``, if given) to the end.

        At ``deadline`` (a ``time.monotonic()`` value) stop launching, hand the jobs not yet
        started back to the queue (any later runner takes them) and return; jobs already
        running go on.
        """
        lock = self._hold()
        try:
            todo, running = self.claim(names)
            for record in running:
                self._watch_orphan(record)
            if todo or self.orphans:
                self._run(todo, deadline)
        except BaseException:
            os.close(lock)   # the file stays, unlocked: the jobs it claimed are nobody's (owner_alive)
            raise
        self._unhold(lock)

    def _hold(self) -> int:
        """Lock this runner's file for as long as it runs (see :func:`owner_alive`)."""
        os.makedirs(os.path.join(self.exp.state_dir, "runners"), exist_ok=True)
        fd = os.open(_runner_file(self.exp, self.me), os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    def _unhold(self, lock: int) -> None:
        """Release the lock (any runner may take what is left) and remove its file (which
        only a runner that gave back every job it claimed may do, see :func:`owner_alive`)."""
        os.close(lock)
        with contextlib.suppress(FileNotFoundError):
            os.remove(_runner_file(self.exp, self.me))

    def _let_go(self) -> None:
        """Close the workers' pipes and the orphans' pidfds: running jobs go on by themselves."""
        for worker in self.pool:
            worker.close()
        for fd in self.orphans:
            os.close(fd)

    def _run(self, todo: list["Record"], deadline: float | None) -> None:
        bar = _progress_bar(len(todo) + len(self.orphans), self.progress)
        failed = None
        try:
            self._loop(todo, bar, deadline)
        except OSError as exc:   # e.g. the disk is full: stop launching, leave running jobs be
            failed = exc
            for worker in self._busy():
                worker.halt()
                worker.assigned = []
        except BaseException:
            self._stop(todo)
            raise
        finally:
            bar.close()
            self._let_go()
            try:
                self._flush()
            except OSError as exc:
                failed = failed or exc
        if failed is not None:
            left = [r["job_name"] for r in todo if r["state"] not in FINAL_STATES]
            raise ExperimentError(
                f"the local runner stopped: {failed} (work_dir {self.exp.work_dir!r}). {len(left)} job(s) did "
                f"not run or finish here{', e.g. ' + repr(left[0]) if left else ''}; jobs already running "
                "go on. Free space (or fix the cause), then call ps.wait on the work_dir from any "
                "process: it runs the rest"
            ) from failed

    def _busy(self) -> list[_Worker]:
        return [w for w in self.pool if w.assigned]

    def _loop(self, todo: list["Record"], bar, deadline: float | None) -> None:
        queue = list(reversed(todo))
        last_flush = time.monotonic()
        while queue or self._busy() or self.orphans:
            if deadline is not None and time.monotonic() >= deadline:
                self._give_back(queue)
                return
            self._dispatch(queue)
            for record in self._wait_some():
                bar.update(1)
                self.dirty.append(record)
            queue += reversed(self.returned)   # unstarted jobs of a worker that was killed
            self.returned = []
            if time.monotonic() - last_flush > 2.0:
                queue = self._sync(queue)
                last_flush = time.monotonic()

    def _dispatch(self, queue: list["Record"]) -> None:
        """Keep every allowed worker supplied with its running job and the next one."""
        allowed = max(self.workers - len(self.orphans), 0)
        while len(self.pool) < min(allowed, len(queue) + len(self._busy())):
            self.pool.append(_Worker(self.exp.wrapper))
        for depth in range(1, _Worker.DEPTH + 1):   # running slots first, in space order
            for worker in self.pool[:allowed]:
                if queue and len(worker.assigned) < depth:
                    self._launch(worker, queue.pop())

    def _launch(self, worker: _Worker, record: "Record") -> None:
        job_dir = self.exp.job_dir(record["job_name"])
        worker.give(f"{job_dir}\t{record['attempt']}\t{record['mode']}\n", record)
        record["owner"] = self.me
        apply(record, Started())
        self.dirty.append(record)

    def _give_back(self, queue: list["Record"]) -> None:
        """Deadline: stop the workers; jobs not started go back to the queue for any runner."""
        for worker in self._busy():
            worker.halt()
            head, *queued = worker.assigned
            for record in queued:
                if read_start(self.exp.attempt_path(record, "status")) is None:
                    queue.append(record)
            worker.assigned = []
        for record in queue:
            record["owner"] = None
            apply(record, Requeued(NO_RUNNER))
        self.dirty += queue

    def _watch_orphan(self, record: "Record") -> None:
        started = read_start(self.exp.attempt_path(record, "status"))
        if started and started.pid and process_alive(started.pid, started.ticks, started.host):
            try:
                self.orphans[os.pidfd_open(started.pid)] = record
            except ProcessLookupError:
                pass

    def _wait_some(self, timeout: float = 1.0) -> list["Record"]:
        """Block until at least one job ends (or ``timeout`` seconds pass); return the ended ones."""
        busy = {w.fd: w for w in self._busy()}
        ready, _, _ = select.select([*busy, *self.orphans], [], [], max(timeout, 0.0))   # (a deadline just passed)
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
        try:
            messages = worker.messages()
        except OSError:   # the worker bash itself was killed: only its jobs are concerned
            self._lose(worker)
            return []
        done = []
        for message in messages:
            if message[0] == "S" and worker.assigned:
                worker.pid = int(message[1])
                worker.assigned[0]["job_id"] = message[1]
            elif message[0] == "E" and worker.assigned:
                record, pid, status = worker.assigned.pop(0), int(message[1]), int(message[2])
                worker.pid = None
                written = self._claim_of(record, pid)
                if written is None:   # another copy of the attempt (an orphan's) claimed it first
                    self._watch_orphan(record)
                    continue
                self._settle(record, exit_code=status if status < 128 else None, status=written)
                done.append(record)
        return done

    def _lose(self, worker: _Worker) -> None:
        """A killed worker: its running job (in a process group of its own) is watched like
        a dead runner's, its jobs not yet started go back to the queue."""
        self.pool.remove(worker)
        assigned, worker.assigned = worker.assigned, []
        worker.close()
        for record in assigned:
            if read_start(self.exp.attempt_path(record, "status")) is None:
                self.returned.append(record)
            else:
                self._watch_orphan(record)
                if record not in self.orphans.values():   # it ended already: how?
                    self._settle(record)
                    self.dirty.append(record)

    def _claim_of(self, record: "Record", pid: int) -> "tuple[StartInfo | None, ExitInfo | None] | None":
        """The attempt's status file as our job (``pid``) left it; None if another copy of
        the attempt (an orphan's) claimed it before ours."""
        for _ in range(100):
            status = read_status(self.exp.attempt_path(record, "status"))
            started = status[0]
            if started is None or started.pid == pid:
                return status
            if started.pid:
                return None
            time.sleep(0.01)   # the claimant has not written its pid yet
        return status

    def _settle(self, record: "Record", verdict: str = FAILED, exit_code: int | None = None,
                status: "tuple[StartInfo | None, ExitInfo | None] | None" = None) -> None:
        """Finalize an ended job from its exit file (``status``: as just read, if at hand);
        without one, from the process's exit status (e.g. the script replaced the wrapper's
        EXIT trap) or else ``verdict``."""
        observe(self.exp, record, status=status)
        if record["state"] in (RUNNING, PENDING):
            if exit_code is not None and record["started"] is None:   # its claim never got written
                apply(record, Vanished(FAILED, time.time(), "the job could not write its status file "
                                                            "(disk full or read-only?) and did not run"))
            elif exit_code is not None:
                apply(record, Exited(exit_code, time.time()))
            else:
                apply(record, Vanished(verdict, time.time(), "cancelled" if verdict == CANCELLED
                                       else "the job's process ended without recording an exit code"))
        finalize(self.exp, record)

    def _sync(self, queue: list["Record"]) -> list["Record"]:
        """Persist progress; drop queued jobs that another process cancelled meanwhile."""
        with self.exp.lock():
            current = self.exp.load_records()
            queue = [r for r in queue if current[r["job_name"]]["state"] == PENDING]
            self._flush()
        return queue

    def _flush(self) -> None:
        if self.dirty:
            self.exp.update(self.dirty)
            self.dirty = []

    def _stop(self, todo: list["Record"]) -> None:
        """Ctrl-C or an error: terminate our running jobs and record them cancelled."""
        running = []
        for worker in self._busy():
            worker.halt()
            pid = worker.pid or _started_pid(self.exp, worker.assigned[0])
            if pid:
                _kill_group(pid, signal.SIGTERM)
                running.append(pid)
            worker.assigned = []
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and any(process_alive(p, 0, "") for p in running):
            time.sleep(0.02)
        for pid in running:
            _kill_group(pid, signal.SIGKILL)
        for record in todo:
            if record["state"] in (PENDING, RUNNING):
                self._settle(record, verdict=CANCELLED)
                self.dirty.append(record)


class LocalStepper:
    """A runner driven step by step by a caller's loop (an adaptive search sends jobs while
    others run): each call claims the jobs sent since, keeps ``workers`` of them running and
    returns once one ends. Jobs outlive the caller as they outlive any runner; a later runner
    watches those still running and takes those not started."""

    def __init__(self, exp: "Experiment", workers: int):
        self.runner = LocalRunner(exp, workers, progress=False)
        self.lock: int | None = None
        self.waiting: list["Record"] = []   # claimed, not yet handed to a worker (last: next)
        self.mine: set[str] = set()         # jobs this stepper runs or watches
        self.claimed = False                # whether it looked for jobs to run yet

    def __call__(self, wait: float, pending: "list[str] | None" = None, write: bool = True,
                 gather: float = 0.0, on_end: "Callable[[list[Record]], None] | None" = None) -> bool:
        """Claim the jobs that wait for a runner (when ``pending`` names one this stepper does
        not run yet, or on the first call), start what there is room for, wait up to ``wait``
        seconds for a job to end, then up to ``gather`` seconds more for others that end
        meanwhile (one round of the caller's work for all of them); return whether one did.
        ``write=False``: the records of jobs that ended are left for the caller's own write
        of the index (see :meth:`news`). ``on_end``: called with the jobs that ended at each
        wake-up (the caller's work on them overlaps the jobs still running)."""
        runner = self.runner
        self.start(pending)
        try:
            until = time.monotonic() + wait
            ended = self._ended(wait, on_end) if self.busy() else []
            while not ended and self.busy() and time.monotonic() < until:
                ended = self._ended(until - time.monotonic(), on_end)   # the first wake-up may be a start
            if not ended and wait and not self.busy():
                time.sleep(wait)
        finally:   # (on_end may raise) jobs a killed worker handed back are ours to start or give back
            self._take_back()
        if ended:
            ended += self.gather(gather, on_end)
        if write:
            runner._flush()
        return bool(ended)

    def busy(self) -> bool:
        """Whether a job of this stepper's runs (or waits for a worker that is running one)."""
        return bool(self.runner._busy() or self.runner.orphans)

    def gather(self, seconds: float, on_end: "Callable[[list[Record]], None] | None" = None,
               quiet: float | None = None) -> list["Record"]:
        """After a first end: wait up to ``seconds`` more for the jobs that end meanwhile (one
        round of the caller's work for all of them), or until none ended for ``quiet``
        seconds; return them. ``on_end``: as for a call."""
        ended: list["Record"] = []
        until = calm = time.monotonic() + seconds
        if quiet is not None:   # (measured from the last end: a job's start wakes the wait too)
            calm = time.monotonic() + quiet
        try:
            while self.busy() and time.monotonic() < min(until, calm):
                now = self._ended(min(until, calm) - time.monotonic(), on_end)
                if now and quiet is not None:
                    calm = time.monotonic() + quiet
                ended += now
        finally:
            self._take_back()
        return ended

    def _take_back(self) -> None:
        """Jobs a killed worker handed back are ours to start or give back."""
        self.waiting += reversed(self.runner.returned)
        self.runner.returned = []

    def _ended(self, timeout: float, on_end: "Callable[[list[Record]], None] | None") -> list["Record"]:
        """The jobs that end within ``timeout``, kept as news before the caller hears of them."""
        ended = self.runner._wait_some(timeout)
        self.runner.dirty += ended
        if ended and on_end is not None:
            on_end(ended)
        return ended

    def start(self, pending: "list[str] | None" = None) -> None:
        """Claim the jobs that wait for a runner (see :meth:`__call__`) and start what there
        is room for, without waiting."""
        runner = self.runner
        if self.lock is None:
            self.lock = runner._hold()
        held = self._held()
        if not self.claimed or pending is None or any(n not in held for n in pending):
            self.claimed = True   # (a job of ours that a retry policy sent again is pending anew)
            todo, running = runner.claim(None)
            for record in running:
                if record["job_name"] not in self.mine:
                    runner._watch_orphan(record)
            self.waiting = [r for r in reversed(todo) if r["job_name"] not in held] + self.waiting
            self.mine.update(r["job_name"] for r in [*todo, *running])
        runner._dispatch(self.waiting)

    def _held(self) -> set[str]:
        """Jobs this stepper has now: waiting for a worker, with a worker, or watched."""
        runner = self.runner
        return {r["job_name"] for r in [*self.waiting, *runner.orphans.values()]} | \
            {r["job_name"] for worker in runner.pool for r in worker.assigned}

    def news(self) -> list["Record"]:
        """Records this stepper changed and did not write yet (the caller writes them)."""
        return list(self.runner.dirty)

    def written(self, records: list["Record"]) -> None:
        """The caller wrote ``records`` (what :meth:`news` gave) into the index."""
        done = {id(r) for r in records}
        self.runner.dirty = [r for r in self.runner.dirty if id(r) not in done]

    def take(self, records: list["Record"]) -> None:
        """Claim records just handed to this queue, in the caller's own write of the index
        (saves a claim's read and write of it)."""
        if self.lock is None:
            self.lock = self.runner._hold()
        for record in records:
            if record["state"] == PENDING and not is_held(record) and record["job_name"] not in self.mine:
                record["owner"] = self.runner.me
                apply(record, Waiting("waiting for a free worker"))
                self.waiting.insert(0, record)
                self.mine.add(record["job_name"])

    def hand(self, records: list["Record"]) -> None:
        """Start ``records``, just handed to this queue and named in no index yet (a search's
        successors of trials that just ended): they are news from now on (see :meth:`news`),
        written with the caller's next write of the index, or by :meth:`close`."""
        self.runner.dirty += records   # (first: whatever stops this call, close() writes them)
        self.take(records)
        self.runner._dispatch(self.waiting)

    def close(self) -> None:
        """Stop starting jobs: those not started go back to the queue; running ones go on."""
        if self.lock is None:
            return
        self.runner._give_back(self.waiting)
        self.runner._let_go()
        self.runner._flush()
        self.runner._unhold(self.lock)
        self.lock = None


def _started_pid(exp: "Experiment", record: "Record") -> int | None:
    started = read_start(exp.attempt_path(record, "status"))
    return started.pid if started and started.pid else None


def _progress_bar(total: int, enabled: bool):
    from ..progress import bar

    return bar(total, "jobs", "job", enabled)
