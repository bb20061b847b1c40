"""What the batch schedulers (Slurm, Torque/PBS) share: chunked array submission through
map files, retried submit commands, finding a dead controller's chunks again by name.

A chunk is what one submit command sends: an array (or with ``array=False`` a single job)
named ``<batch>.a<k>`` (``.s<k>``), whose task i runs line i of the chunk's map file
``.param_search/batches/<name>.map`` (``JOB_DIR<tab>ATTEMPT<tab>MODE``) through the
experiment's wrapper. Map files are written before the submit command runs.
"""
from __future__ import annotations

import os
import shlex
import time
from abc import abstractmethod
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, ClassVar

from ..errors import CommandError, OptionError, QueueError
from ..experiment import read_map, write_map
from ..proc import call
from ..states import FINAL_STATES, PENDING, SCHEDULER_VERDICTS, UNKNOWN
from .base import Queue

if TYPE_CHECKING:
    from ..experiment import Experiment, Record

#: Ids per scheduler call, so that no command line grows without bound.
IDS_PER_CALL = 1000


class BatchQueue(Queue):
    """A scheduler driven by a submit command; subclasses supply the scheduler's dialect."""

    #: The script directive prefix, e.g. ``#SBATCH``.
    directive: ClassVar[str]
    #: The submit command's name, for messages.
    submit_command: ClassVar[str]
    #: Lower-case fragments of the submit command's transient refusals.
    transient: ClassVar[tuple[str, ...]]

    def __init__(self, options: list[str], array: bool, max_running: int | None,
                 max_array_size: int | None, submit_timeout: float):
        if max_running is not None and (not isinstance(max_running, int) or max_running < 1):
            raise OptionError(f"max_running must be a positive int, not {max_running!r}")
        self.options, self.array, self.max_running = options, array, max_running
        self._max_array_size, self.submit_timeout = max_array_size, submit_timeout

    # -- what subclasses provide -------------------------------------------------------
    @abstractmethod
    def own_options(self, options: list[str]) -> list[str]:
        """``options`` without those param_search sets itself (name, logs, array)."""

    @abstractmethod
    def discover_max_array_size(self) -> int:
        """Ask the scheduler how many tasks one array may hold."""

    @abstractmethod
    def submit_chunk(self, exp: "Experiment", name: str, map_path: str, size: int,
                     directives: list[str]) -> str:
        """Submit one chunk; return the scheduler's job (array) id."""

    @abstractmethod
    def task_id(self, job_id: str, index: int) -> str:
        """The id of task ``index`` of array ``job_id``."""

    @abstractmethod
    def find_chunks(self, exp: "Experiment", names: list[str], since: float) -> dict[str, str]:
        """Chunk name -> job id, for the chunks among ``names`` the scheduler knows."""

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
        for line in script.splitlines()[1 if script.startswith("#!") else 0:]:
            stripped = line.strip()
            if stripped and not stripped.startswith("#"):
                break
            if stripped.startswith(self.directive):
                options += shlex.split(stripped[len(self.directive):], comments=True)
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
        job_id = self.submit_chunk(exp, name, map_path, len(chunk), directives)
        for i, record in enumerate(chunk):
            record.update(job_id=self.task_id(job_id, i) if self.array else job_id, state=PENDING)

    def run_submit(self, argv: list[str]) -> str:
        """Run the submit command, retrying transient refusals for ``submit_timeout`` s."""
        deadline, delay = time.monotonic() + self.submit_timeout, 0.5
        while True:
            try:
                return call(argv)
            except CommandError as exc:
                said = f"{exc.stderr}\n{exc.stdout}".strip()   # some wrappers report on stdout
                if not any(t in said.lower() for t in self.transient) or time.monotonic() + delay > deadline:
                    raise QueueError(f"{self.submit_command} refused the jobs: {said or exc}") from exc
            time.sleep(delay)
            delay = min(delay * 2, 10.0)

    # -- reconcile ---------------------------------------------------------------------
    def reconcile(self, exp: "Experiment", records: list["Record"]) -> None:
        """Adopt the ids of chunks the scheduler lists under the batches' chunk names."""
        batches = sorted({r["batch"] for r in records if r["batch"]})
        names = chunk_names(exp, batches)
        if not names:
            return
        found = self.find_chunks(exp, names, min(r["submitted"] or 0 for r in records))
        by_key = {(r["job_name"], r["attempt"]): r for r in records}
        for name, job_id in found.items():
            is_array = name.rsplit(".", 1)[-1].startswith("a")
            path = os.path.join(exp.state_dir, "batches", f"{name}.map")
            for i, (job_dir, attempt) in enumerate(read_map(path)):
                record = by_key.get((os.path.basename(job_dir), attempt))
                if record is not None:
                    record.update(job_id=self.task_id(job_id, i) if is_array else job_id, state=PENDING)


def merge_info(record: "Record", info: dict, state: str | None = None) -> None:
    """Merge what the scheduler says of a job into its record.

    The job's own exit code (from its status file) wins, except for the verdicts only the
    scheduler can give (TIMEOUT, CANCELLED, OUT_OF_MEMORY, NODE_FAIL, PREEMPTED).
    """
    state = state or info["state"]
    has_exit = record["exit_code"] is not None and record["state"] in FINAL_STATES
    if state == UNKNOWN or (has_exit and state not in SCHEDULER_VERDICTS):
        return
    record["state"] = state
    record["reason"] = info.get("reason") if state == PENDING else None
    record["node"] = info.get("node") or record["node"]
    if state in FINAL_STATES:
        if record["exit_code"] is None and info.get("exit_code") is not None:
            record["exit_code"] = info["exit_code"]
        record["signal"] = record["signal"] or info.get("signal")
        record["started"] = record["started"] or info.get("start")
        record["ended"] = record["ended"] or info.get("end")


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
