"""What every batch scheduler shares; each scheduler is a small dialect on top of it.

A dialect (slurm.py, torque.py, sge.py) provides argv builders and pure parsers of its
scheduler's text: how to submit one chunk and read the id it prints, how to ask about jobs
(``status_argv`` / ``parse_status``) and about ended ones (``accounting_argv`` /
``parse_accounting``), how to cancel, its native state map, directive prefix and array
syntax. This base owns the rest: calling commands, chunking arrays within the site's limit,
batching ids per call, retrying transient refusals, dropping answers about an older job
with a reused id, and turning answers into lifecycle events.

A chunk is what one submit command sends: an array (or with ``array=False`` a single job)
named ``<batch>.a<k>`` (``.s<k>``), whose task i runs line i of the chunk's map file
``.param_search/batches/<name>.map`` through the experiment's wrapper. Map files are
written before the submit command runs, so a controller that dies before recording the
ids finds its chunks again by name (:meth:`BatchQueue.reconcile`).
"""
from __future__ import annotations

import math
import os
import shlex
import time
from abc import abstractmethod
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from ..attempts import observe
from ..errors import CommandError, OptionError, QueueError, RefusedError, SubmitLimitError
from ..experiment import read_map, write_map
from ..lifecycle import Accepted, Cancelled, Unlisted, Vanished, apply, unlisted_since, verdict_of
from ..proc import call
from ..resources import clock, megabytes, seconds
from ..retry import Resources
from ..states import CANCELLED, ENDED, FAILED, FINAL_STATES, PENDING
from .base import Queue

if TYPE_CHECKING:
    import pyarrow as pa

    from ..experiment import Experiment
    from ..record import Record

#: Ids per scheduler call, so that no command line grows without bound.
IDS_PER_CALL = 1000
#: An answer about a job submitted this long before our submission is about an older job
#: that had the same id (ids restart after a scheduler reset); clocks may differ a little.
STALE_SLACK = 120.0


class BatchQueue(Queue):
    """A scheduler driven by commands; subclasses supply the scheduler's dialect."""

    #: The script directive prefix, e.g. ``#SBATCH``.
    directive: ClassVar[str]
    #: The submit command's name, for messages.
    submit_command: ClassVar[str]
    #: Lower-case fragments of the submit command's transient refusals.
    transient: ClassVar[tuple[str, ...]]
    #: Lower-case fragments of transient failures after which the jobs may be queued anyway
    #: (the answer was lost, not the request).
    ambiguous: ClassVar[tuple[str, ...]] = ("timed out",)
    #: Lower-case fragments of a cancel command's complaint about jobs already gone.
    gone: ClassVar[tuple[str, ...]] = ()
    #: Whether the status command also lists ended jobs with their outcome (then there is no
    #: separate accounting call).
    status_lists_ended: ClassVar[bool] = False
    #: Whether the status command lists every queued or running job (so one it does not list,
    #: and accounting does not know, has left the scheduler).
    lists_every_job: ClassVar[bool] = True
    #: Seconds a job may be unknown to the scheduler without an exit record before it is final.
    vanish_grace: ClassVar[float] = 300.0
    #: The settings (constructor arguments) holding the time limit, memory and excluded nodes.
    time_setting: ClassVar[str]
    mem_setting: ClassVar[str]
    exclude_setting: ClassVar[str | None] = None
    #: What a bare number is worth: seconds of time, MiB of memory.
    bare_time: ClassVar[float] = 1.0
    bare_mem: ClassVar[float] = 1.0 / 2**20
    #: How memory is written back: MiB followed by this unit.
    mem_unit: ClassVar[str] = "M"
    #: Whether lower-case k, m, g are powers of 1000 (capitals: of 1024).
    mem_decimal_lower: ClassVar[bool] = False

    def __init__(self, options: list[str], array: bool, max_running: int | None,
                 max_array_size: int | None, submit_timeout: float):
        if max_running is not None and (not isinstance(max_running, int) or max_running < 1):
            raise OptionError(f"max_running must be a positive int, not {max_running!r}")
        self.options, self.array, self.max_running = options, array, max_running
        self._max_array_size, self.submit_timeout = max_array_size, submit_timeout

    # -- the dialect -------------------------------------------------------------------
    @abstractmethod
    def own_options(self, options: list[str]) -> list[str]:
        """``options`` without those param_search sets itself (name, logs, array)."""

    @abstractmethod
    def discover_max_array_size(self) -> int:
        """Ask the scheduler how many tasks one array may hold."""

    @abstractmethod
    def submit_argv(self, exp: "Experiment", name: str, map_path: str, size: int,
                    directives: list[str]) -> list[str]:
        """The command submitting one chunk of ``size`` tasks (an array if ``self.array``)."""

    @abstractmethod
    def parse_submit(self, text: str) -> str:
        """The job (array) id the submit command printed."""

    @abstractmethod
    def task_id(self, job_id: str, index: int) -> str:
        """The id of task ``index`` (0-based map line) of array ``job_id``."""

    @abstractmethod
    def status_argv(self, ids: list[str]) -> list[str]:
        """The command asking about these jobs (as given by :meth:`query_ids`)."""

    @abstractmethod
    def parse_status(self, text: str) -> dict[str, dict[str, Any]]:
        """{job id: info} from the status command's output (see ``lifecycle.verdict_of`` for
        the info keys, plus ``submit``: the scheduler's submit time, for stale answers)."""

    def accounting_argv(self, ids: list[str]) -> list[str] | None:
        """The command asking accounting about ended jobs (None: the scheduler has none)."""
        return None

    def parse_accounting(self, text: str) -> dict[str, dict[str, Any]]:
        return {}

    @abstractmethod
    def cancel_argv(self, ids: list[str]) -> list[str]:
        """The command cancelling these jobs."""

    @abstractmethod
    def find_chunks(self, exp: "Experiment", names: list[str], since: float) -> dict[str, str | None]:
        """Chunk name -> job id, for the chunks among ``names`` the scheduler knows; None for
        those it cannot tell about now (listed nowhere while its accounting is unreachable)."""

    @abstractmethod
    def resource_options(self, options: list[str]) -> dict[str, str]:
        """The ``time_limit``, ``mem_limit`` and ``excluded`` nodes that ``options`` ask for."""

    def query_ids(self, job_ids: list[str]) -> list[str]:
        """The ids to name in a status or accounting call (default: each array once)."""
        return sorted({i.split("_")[0].split(".")[0] for i in job_ids})

    def key(self, job_id: str) -> Any:
        """A job id as the parsers' dict keys spell it (default: unchanged)."""
        return job_id

    def cancel_ids(self, exp: "Experiment", records: list["Record"]) -> list[str]:
        return [r["job_id"] for r in records if r["job_id"]]

    def vanished(self, record: "Record", accounted: dict) -> bool:
        """Whether a record that neither status nor accounting lists left no trace because
        it was cancelled while pending (default: never concluded)."""
        return False

    # -- resources ---------------------------------------------------------------------
    def resource_syntax(self) -> Resources:
        return Resources(lambda t: seconds(t, self.bare_time), clock,
                         lambda m: megabytes(m, self.bare_mem, self.mem_decimal_lower), lambda mib: f"{math.ceil(mib)}{self.mem_unit}",
                         self.exclude_setting is not None)

    def with_resources(self, settings: dict[str, Any], resources: dict[str, str | None]) -> dict[str, Any]:
        names = {"time_limit": self.time_setting, "mem_limit": self.mem_setting, "excluded": self.exclude_setting}
        new = dict(settings)
        for key, value in resources.items():
            if names[key] is None:
                raise OptionError(f"the {self.name} queue cannot keep jobs off nodes")
            new[names[key]] = value
        return new

    def attempt_resources(self, directives: list[str]) -> dict[str, str | None]:
        """What an attempt asks for: the queue's options win over the script's directives."""
        found = {"time_limit": None, "mem_limit": None, "excluded": None}
        found.update(self.resource_options(directives))
        found.update(self.resource_options(self.options))
        return found

    # -- calling -----------------------------------------------------------------------
    def run_submit(self, argv: list[str]) -> str:
        """Run the submit command, retrying transient refusals for ``submit_timeout`` s.

        Raises RefusedError when the scheduler said no (nothing was queued), QueueError when
        the outcome is unknown (it kept timing out: the jobs may be queued)."""
        try:
            return self.call_patiently(argv, f"{self.submit_command} refused the jobs", RefusedError)
        except RefusedError as exc:
            if any(fragment in str(exc).lower() for fragment in self.limit_refusals):
                raise SubmitLimitError(str(exc)) from exc
            raise

    def call_patiently(self, argv: list[str], failure: str, refused: type = QueueError) -> str:
        """Run a command, retrying transient failures (the controller restarting, a socket
        timeout) with backoff for ``submit_timeout`` seconds; a definite failure raises
        ``refused``, transient ones that outlast the timeout QueueError."""
        deadline, delay = time.monotonic() + self.submit_timeout, 0.5
        while True:
            try:
                return call(argv)
            except CommandError as exc:
                said = f"{exc.stderr}\n{exc.stdout}".strip()   # some wrappers report on stdout
                if not any(t in said.lower() for t in self.transient):
                    raise refused(f"{failure}: {said or exc}") from exc
                if time.monotonic() + delay > deadline:
                    if not any(t in said.lower() for t in self.ambiguous):
                        raise refused(f"{failure} for {self.submit_timeout:g} s: {said or exc}") from exc
                    raise QueueError(f"{failure} for {self.submit_timeout:g} s (the jobs may be queued; "
                                     f"the next call finds them by name): {said or exc}") from exc
            time.sleep(delay)
            delay = min(delay * 2, 10.0)

    def status_text(self, ids: list[str]) -> str:
        """The status command's output for ``ids`` (one call per IDS_PER_CALL ids); a call
        refused only because every id in it has left the scheduler answers nothing."""
        out = []
        for part in chunks(ids):
            try:
                out.append(call(self.status_argv(part)))
            except CommandError as exc:
                if not self.only_gone(exc):
                    raise
        return "\n".join(out)

    def accounting(self, records: list["Record"]) -> dict[str, dict] | None:
        """Accounting of the records' jobs ({} if it knows none yet); None if there is no
        usable answer (accounting off or unreachable, never read as a job's failure)."""
        ids = self.query_ids([r["job_id"] for r in records])
        if self.accounting_argv(ids) is None:
            return None
        out: dict[str, dict] = {}
        for part in chunks(ids):
            try:
                out.update(self.parse_accounting(call(self.accounting_argv(part))))
            except (CommandError, QueueError):
                return None
        return out

    # -- submit ------------------------------------------------------------------------
    def submit(self, exp: "Experiment", records: list["Record"], scripts: Sequence[str] | None = None) -> None:
        """Submit records in chunks, grouped by their scripts' directives."""
        scripts = scripts or [_read(os.path.join(exp.job_dir(r["job_name"]), "job.sh")) for r in records]
        groups: dict[tuple, list["Record"]] = {}
        for record, script in zip(records, scripts):
            groups.setdefault(tuple(self.script_directives(script)), []).append(record)
        size = self.max_array_size() if self.array else 1
        k = 0
        for directives, group in groups.items():
            for start in range(0, len(group), size):
                self._submit_chunk(exp, group[start:start + size], list(directives), k)
                k += 1

    def script_directives(self, script: str) -> list[str]:
        """The options in a script's directive lines, minus those param_search sets.

        Like sbatch and qsub, reading stops at the first line that is neither blank nor a
        comment.
        """
        options: list[str] = []
        for number, line in enumerate(script.splitlines()[1 if script.startswith("#!") else 0:], 1):
            stripped = line.strip()
            if stripped and not stripped.startswith("#"):
                break
            if stripped.startswith(self.directive):
                try:
                    options += shlex.split(stripped[len(self.directive):], comments=True)
                except ValueError as exc:
                    raise OptionError(f"the job script's directive line {stripped!r} cannot be "
                                      f"read ({exc}); balance its quotes") from None
        return self.own_options(options)

    def max_array_size(self) -> int:
        """The most tasks one array may hold (asked once)."""
        if self._max_array_size is None:
            self._max_array_size = self.discover_max_array_size()
        return self._max_array_size

    def _submit_chunk(self, exp: "Experiment", chunk: list["Record"], directives: list[str], k: int) -> None:
        name = f"{chunk[0]['batch']}.{'a' if self.array else 's'}{k}"
        map_path = os.path.join(exp.state_dir, "batches", f"{name}.map")
        write_map(map_path, [(exp.job_dir(r["job_name"]), r["attempt"], r["mode"]) for r in chunk])
        job_id = self.parse_submit(self.run_submit(self.submit_argv(exp, name, map_path, len(chunk), directives)))
        resources = self.attempt_resources(directives)
        for i, record in enumerate(chunk):
            apply(record, Accepted(self.task_id(job_id, i) if self.array else job_id, resources=resources))

    # -- reconcile ---------------------------------------------------------------------
    def reconcile(self, exp: "Experiment", records: list["Record"]) -> list["Record"]:
        """Adopt the ids of chunks the scheduler lists under the batches' chunk names; return
        the records of chunks it cannot tell about now (see :meth:`find_chunks`)."""
        batches = sorted({r["batch"] for r in records if r["batch"]})
        names = chunk_names(exp, batches)
        if not names:
            return []
        found = self.find_chunks(exp, names, min(r["submitted"] or 0 for r in records))
        by_key = {(r["job_name"], r["attempt"]): r for r in records}
        undecided = []
        for name, job_id in found.items():
            is_array = name.rsplit(".", 1)[-1].startswith("a")
            path = os.path.join(exp.state_dir, "batches", f"{name}.map")
            for i, (job_dir, attempt) in enumerate(read_map(path)):
                record = by_key.get((os.path.basename(job_dir), attempt))
                if record is None:
                    continue
                if job_id is None:
                    undecided.append(record)
                else:
                    apply(record, Accepted(self.task_id(job_id, i) if is_array else job_id))
        return undecided

    # -- poll --------------------------------------------------------------------------
    def poll(self, exp: "Experiment", records: list["Record"], snapshot: "pa.Table | None" = None) -> None:
        """One status call (or its ``snapshot``) for the records, one accounting call for those
        it does not list and those that ended (the records are those active when the refresh
        began: one that ended meanwhile may still get a verdict only the scheduler gives)."""
        with_id = [r for r in records if r["job_id"] and self.key(r["job_id"]) is not None]
        asked = with_id   # final ones too: the wrapper saw SIGTERM, squeue may say TIMEOUT
        infos = fresh(self._status_infos(asked, snapshot), asked, self.key) if asked else {}
        deferred = []   # FAILED without an exit code: accounting says how (it may lag a little)
        for record in asked:
            info = infos.get(self.key(record["job_id"]))
            if record["state"] == PENDING and (info is None or info["state"] != PENDING):
                observe(exp, record, self.requeues)   # it left the queue: what did the job record?
            if info is not None and self.awaits_accounting(info):
                deferred.append((record, info))
            elif info is not None:
                self._apply_info(exp, record, info)
        rest = [r for r in with_id if self.key(r["job_id"]) not in infos or r["state"] in FINAL_STATES]
        rest += [r for r, _ in deferred if r["state"] not in FINAL_STATES]
        accounted = self.accounting(rest) if rest and not self.status_lists_ended else None
        for record, info in deferred:
            if accounted is None:   # no accounting: the status command's word is all there is
                self._apply_info(exp, record, info)
        accounted = fresh(accounted, rest, self.key) if accounted else {}
        now = time.time()
        for record in rest:
            info = accounted.get(self.key(record["job_id"]))
            if info is not None:
                self._apply_info(exp, record, info)
            elif record["state"] not in FINAL_STATES and self.key(record["job_id"]) not in infos:
                if accounted and self.vanished(record, accounted):
                    apply(record, Vanished(CANCELLED, now, "cancelled while pending"))
                elif self.lists_every_job:
                    self._unlisted(exp, record, now)

    def _unlisted(self, exp: "Experiment", record: "Record", now: float) -> None:
        """A job neither status nor accounting knows, which recorded no end: after
        ``vanish_grace`` seconds (NFS delays, a scheduler restarting) it is final. (A run
        stopped by a signal ends here as its exit line says: nothing will run it again.)"""
        observe(exp, record)
        if record["state"] in FINAL_STATES:
            return
        apply(record, Unlisted(now))
        since = unlisted_since(record)
        if since is not None and now - since >= self.vanish_grace:
            if record["started"] is None:
                apply(record, Vanished(CANCELLED, now, "removed from the queue before it started "
                                                       "(the scheduler and its accounting know it no more)"))
            else:
                apply(record, Vanished(FAILED, now, "vanished from the scheduler without an exit record "
                                                    "(killed, or its node failed)"))

    def awaits_accounting(self, info: dict) -> bool:
        """Whether a status answer is better completed by accounting: FAILED without an exit
        code (accounting has it, maybe a moment later)."""
        return info["state"] == FAILED and info.get("exit_code") is None and not self.status_lists_ended

    def _status_infos(self, records: list["Record"], snapshot: "pa.Table | None") -> dict:
        if snapshot is not None:
            return self.snapshot_infos(snapshot, [r["job_id"] for r in records])
        return self.parse_status(self.status_text(self.query_ids([r["job_id"] for r in records])))

    def snapshot_infos(self, snapshot: "pa.Table", job_ids: list[str]) -> dict:
        """{job id: info} of a :meth:`snapshot` table (for dialects that provide one)."""
        raise NotImplementedError

    def _apply_info(self, exp: "Experiment", record: "Record", info: dict) -> None:
        state = info["state"]
        if state == ENDED:   # ended, but the scheduler does not say how: the job's files do
            observe(exp, record)
            if record["state"] in FINAL_STATES:
                return
            state = CANCELLED if record["started"] is None else FAILED
        apply(record, verdict_of(info, state))

    # -- cancel ------------------------------------------------------------------------
    def cancel(self, exp: "Experiment", records: list["Record"]) -> None:
        """Cancel the records' jobs (batched calls) and record them cancelled."""
        self.kill(self.cancel_ids(exp, records))
        now = time.time()
        for record in records:
            apply(record, Cancelled(now))

    def kill(self, ids: list[str]) -> None:
        """Run the cancel command for ``ids`` (batched); jobs already gone are no error."""
        for part in chunks(ids):
            try:
                call(self.cancel_argv(part))
            except CommandError as exc:
                if not self.only_gone(exc):
                    said = (exc.stderr or exc.stdout).strip()
                    raise QueueError(f"{exc.argv[0]} failed: {said or exc}") from exc

    def only_gone(self, exc: CommandError) -> bool:
        """Whether a failed command only complained about jobs that had already left."""
        return only_gone(exc, self.gone)


def arg_list(extra_args: "Sequence[str]", command: str) -> list[str]:
    """``extra_args`` as a list of arguments; a single string is a mistake worth naming."""
    if isinstance(extra_args, str):
        raise OptionError(f"extra_args must be a list of {command} arguments, e.g. "
                          f"{extra_args.split()!r}, not the string {extra_args!r}")
    return [str(a) for a in extra_args]


def fresh(infos: dict, records: list["Record"], key=lambda job_id: job_id) -> dict:
    """Drop answers about an older job that had the same id (ids are reused after a reset)."""
    oldest = min((r["submitted"] or 0 for r in records), default=0) - STALE_SLACK
    if all(info.get("submit") is None or info["submit"] >= oldest for info in infos.values()):
        return infos   # the common case: every answer is about a job submitted since
    submitted = {key(r["job_id"]): r["submitted"] or 0 for r in records}
    return {k: info for k, info in infos.items()
            if info.get("submit") is None or info["submit"] >= submitted.get(k, 0) - STALE_SLACK}


def only_gone(exc: CommandError, gone: tuple[str, ...]) -> bool:
    """Whether a failed command only complained about jobs that had already left."""
    lines = [ln for ln in f"{exc.stderr}\n{exc.stdout}".lower().splitlines() if ln.strip()]
    return bool(lines) and all(any(g in ln for g in gone) for ln in lines)


def chunk_names(exp: "Experiment", batches: list[str]) -> list[str]:
    """Names of the chunks of ``batches`` that have a map file."""
    try:
        files = sorted(os.listdir(os.path.join(exp.state_dir, "batches")))
    except FileNotFoundError:
        return []
    return [f[:-4] for f in files if f.endswith(".map") and f.rsplit(".", 2)[0] in batches]


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def lines(text: str) -> Iterable[str]:
    return (line.strip() for line in text.splitlines() if line.strip())


def chunks(items: list, size: int = IDS_PER_CALL) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
