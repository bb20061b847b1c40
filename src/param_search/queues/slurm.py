"""Slurm: job arrays within MaxArraySize, one squeue + one sacct per refresh, scancel.

Every sbatch call submits one chunk: an array whose task i runs line i of the chunk's map
file (``JOB_DIR ATTEMPT MODE``) through the experiment's wrapper, in the job's folder.
The chunk is named ``<batch>.<k>`` so a controller that died before recording the ids
finds its jobs again by name. ``#SBATCH`` directives in the rendered scripts are applied
to the chunk, except job name, output, error and array, which param_search sets itself
(stdout and stderr go to ``job.<attempt>.out/err`` in the job's folder).
"""
from __future__ import annotations

import functools
import os
import re
import shlex
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from ..errors import CommandError, QueueError
from ..proc import call
from ..states import CANCELLED, FINAL_STATES, PENDING, SCHEDULER_VERDICTS
from .base import Queue

if TYPE_CHECKING:
    from ..experiment import Experiment, Record

#: Slurm's state names mapped to ours.
NATIVE_STATES = {
    "PENDING": "PENDING", "CONFIGURING": "PENDING", "REQUEUED": "PENDING", "REQUEUE_FED": "PENDING",
    "REQUEUE_HOLD": "PENDING", "RESV_DEL_HOLD": "PENDING", "SUSPENDED": "PENDING",
    "RUNNING": "RUNNING", "COMPLETING": "RUNNING", "STAGE_OUT": "RUNNING", "SIGNALING": "RUNNING",
    "RESIZING": "RUNNING", "STOPPED": "RUNNING",
    "COMPLETED": "COMPLETED", "FAILED": "FAILED", "BOOT_FAIL": "NODE_FAIL", "DEADLINE": "TIMEOUT",
    "CANCELLED": "CANCELLED", "REVOKED": "CANCELLED", "SPECIAL_EXIT": "FAILED",
    "TIMEOUT": "TIMEOUT", "OUT_OF_MEMORY": "OUT_OF_MEMORY", "NODE_FAIL": "NODE_FAIL",
    "PREEMPTED": "PREEMPTED",
}
SQUEUE_FORMAT = "%i|%T|%r|%N|%V"
SACCT_FIELDS = "JobID,JobIDRaw,JobName,State,ExitCode,Elapsed,NodeList,Submit,Start,End"
TRANSIENT = ("socket timed out", "temporarily unable to accept", "resource temporarily unavailable",
             "unable to contact slurm controller", "connection refused", "slurm_persist_conn")
#: sbatch options param_search sets itself; the same options found in scripts are dropped.
OWN_OPTIONS = {"-J": "--job-name", "-o": "--output", "-e": "--error", "-a": "--array"}
IDS_PER_CALL = 1000


class SlurmQueue(Queue):
    """Submit to Slurm with job arrays (or one sbatch per job with ``array=False``).

    Args:
        partition, time, mem, cpus_per_task, gres, account, qos, constraint: sbatch options
            (``--partition`` etc.) applied to every job, overriding the scripts' directives.
        extra_args: more sbatch arguments, e.g. ``['--exclusive']``.
        array: submit job arrays (default) or one job per sbatch call.
        max_running: at most this many tasks of each array run at once (``%N``).
        max_array_size: the site's MaxArraySize (default: read from ``scontrol show config``).
        submit_timeout: how long transient sbatch refusals are retried, in seconds.
    """

    name = "slurm"

    def __init__(self, partition: str | None = None, time: str | None = None,
                 mem: str | None = None, cpus_per_task: int | None = None, gres: str | None = None,
                 account: str | None = None, qos: str | None = None, constraint: str | None = None,
                 extra_args: Sequence[str] = (), array: bool = True, max_running: int | None = None,
                 max_array_size: int | None = None, submit_timeout: float = 120.0):
        named = {"partition": partition, "time": time, "mem": mem, "cpus-per-task": cpus_per_task,
                 "gres": gres, "account": account, "qos": qos, "constraint": constraint}
        self.options = [f"--{k}={v}" for k, v in named.items() if v is not None] + list(extra_args)
        if max_running is not None and (not isinstance(max_running, int) or max_running < 1):
            raise ValueError(f"max_running must be a positive int, not {max_running!r}")
        self.array, self.max_running = array, max_running
        self._max_array_size, self.submit_timeout = max_array_size, submit_timeout

    # -- submit ------------------------------------------------------------------------
    def submit(self, exp: "Experiment", records: list["Record"], scripts: Sequence[str] | None = None) -> None:
        """Submit chunks of records, grouped by their scripts' #SBATCH directives."""
        scripts = scripts or [_read(os.path.join(exp.job_dir(r["job_name"]), "job.sh")) for r in records]
        groups: dict[tuple, list["Record"]] = {}
        for record, script in zip(records, scripts):
            groups.setdefault(tuple(script_directives(script)), []).append(record)
        size = self.max_array_size() if self.array else 1
        k = 0
        for directives, group in groups.items():
            for start in range(0, len(group), size):
                self._submit_chunk(exp, group[start:start + size], list(directives), k)
                k += 1

    def max_array_size(self) -> int:
        """The highest array index + 1 this cluster accepts (MaxArraySize)."""
        if self._max_array_size is None:
            self._max_array_size = parse_max_array_size(call(["scontrol", "show", "config"]))
        return self._max_array_size

    def _submit_chunk(self, exp: "Experiment", chunk: list["Record"], directives: list[str], k: int) -> None:
        name = f"{chunk[0]['batch']}.{'a' if self.array else 's'}{k}"
        map_path = os.path.join(exp.state_dir, "batches", f"{name}.map")
        _write_map(exp, map_path, chunk)
        argv = ["sbatch", "--parsable", f"--job-name={name}", f"--chdir={exp.work_dir}",
                f"--output={exp.state_dir}/batches/{name}_%a.log", *directives, *self.options]
        if self.array:
            throttle = f"%{self.max_running}" if self.max_running else ""
            argv.append(f"--array=0-{len(chunk) - 1}{throttle}")
        argv += [exp.wrapper, f"@{map_path}"]
        job_id = parse_sbatch(self._sbatch(argv))
        for i, record in enumerate(chunk):
            record.update(job_id=f"{job_id}_{i}" if self.array else job_id,
                          state=PENDING)

    def _sbatch(self, argv: list[str]) -> str:
        deadline, delay = time.monotonic() + self.submit_timeout, 0.5
        while True:
            try:
                return call(argv)
            except CommandError as exc:
                transient = any(t in exc.stderr.lower() for t in TRANSIENT)
                if not transient or time.monotonic() + delay > deadline:
                    raise QueueError(f"sbatch refused the jobs: {exc.stderr.strip() or exc}") from exc
            time.sleep(delay)
            delay = min(delay * 2, 10.0)

    # -- reconcile / poll / cancel -----------------------------------------------------
    def reconcile(self, exp: "Experiment", records: list["Record"]) -> None:
        batches = sorted({r["batch"] for r in records if r["batch"]})
        if not batches:
            return
        found = self._find_by_name(exp, batches, min(r["submitted"] or 0 for r in records))
        by_key = {(r["job_name"], r["attempt"]): r for r in records}
        for name, array_id in found.items():
            path = os.path.join(exp.state_dir, "batches", f"{name}.map")
            is_array = name.rsplit(".", 1)[-1].startswith("a")
            for i, (job_dir, attempt) in enumerate(_read_map(path)):
                record = by_key.get((os.path.basename(job_dir), attempt))
                if record is not None:
                    record.update(job_id=f"{array_id}_{i}" if is_array else array_id,
                                  state=PENDING)

    def _find_by_name(self, exp: "Experiment", batches: list[str], since: float) -> dict[str, str]:
        """Chunk name -> Slurm job id, for chunks whose names start with one of ``batches``."""
        names = [os.path.basename(p)[:-4] for p in sorted(os.listdir(os.path.join(exp.state_dir, "batches")))
                 if p.endswith(".map") and p.rsplit(".", 2)[0] in batches]
        found: dict[str, str] = {}
        for part in _chunks(names, IDS_PER_CALL):
            for line in _lines(call(["squeue", "--noheader", f"--name={','.join(part)}", "--format=%F|%j"])):
                array_id, name = line.split("|", 1)
                found[name] = array_id
            start = datetime.fromtimestamp(since - 60).strftime("%Y-%m-%dT%H:%M:%S")
            for line in _lines(_sacct(["-X", f"--name={','.join(part)}", f"--starttime={start}",
                                       "--format=JobIDRaw,JobName,JobID"])):
                raw, name, job_id = line.split("|")[:3]
                found.setdefault(name, job_id.split("_")[0])
        return found

    def poll(self, exp: "Experiment", records: list["Record"]) -> None:
        """One squeue call for jobs that may be queued, one sacct call for the rest."""
        from ..tracking import apply_wrapper_files

        with_id = [r for r in records if r["job_id"]]
        queued = [r for r in with_id if r["state"] not in FINAL_STATES]
        seen = _fresh(self._squeue(queued), queued)
        for record in queued:
            info = seen.get(record["job_id"])
            if record["state"] == PENDING and (info is None or info["state"] != "PENDING"):
                apply_wrapper_files(exp, record)   # it left the queue: what did the job record?
            if info is not None and record["state"] not in FINAL_STATES:
                _apply(record, info)
        rest = [r for r in with_id if r["job_id"] not in seen or r["state"] in FINAL_STATES]
        if not rest:
            return
        accounted = self._sacct(rest)
        if accounted is None:
            return   # accounting off or unreachable: an empty answer is never read as failure
        accounted = _fresh(accounted, rest)
        known_arrays = {job_id.split("_")[0] for job_id in accounted}
        for record in rest:
            info = accounted.get(record["job_id"])
            if info is not None:
                _apply(record, info)
            elif _vanished_while_pending(record, known_arrays):
                record.update(state=CANCELLED, reason=None)

    def _squeue(self, records: list["Record"]) -> dict[str, dict]:
        ids = sorted({r["job_id"].split("_")[0] for r in records})
        out: dict[str, dict] = {}
        for part in _chunks(ids, IDS_PER_CALL):
            try:
                text = call(["squeue", "--noheader", "--array", "--states=all",
                             f"--format={SQUEUE_FORMAT}", f"--jobs={','.join(part)}"])
            except CommandError as exc:
                if "invalid job id" not in exc.stderr.lower():
                    raise
                text = ""   # every id in this call has left squeue: sacct will tell
            out.update(parse_squeue(text))
        return out

    def _sacct(self, records: list["Record"]) -> dict[str, dict] | None:
        """Accounting of the records' jobs, or None if sacct gave no usable answer."""
        ids = sorted({r["job_id"].split("_")[0] for r in records})
        out: dict[str, dict] = {}
        for part in _chunks(ids, IDS_PER_CALL):
            try:
                text = _sacct(["-X", f"--format={SACCT_FIELDS}", f"--jobs={','.join(part)}"])
            except (CommandError, QueueError):
                return None
            out.update(parse_sacct(text))
        return out or None

    def cancel(self, exp: "Experiment", records: list["Record"]) -> None:
        ids = [r["job_id"] for r in records if r["job_id"]]
        for part in _chunks(ids, IDS_PER_CALL):
            call(["scancel", *part])
        now = time.time()
        for record in records:
            record.update(state=CANCELLED, ended=record["ended"] or now)


# -- pure helpers: argv pieces and parsers of Slurm's text -----------------------------
def script_directives(script: str) -> list[str]:
    """The sbatch options in a script's ``#SBATCH`` lines, minus those param_search sets.

    Like sbatch, reading stops at the first line that is neither blank nor a comment.
    """
    options: list[str] = []
    for line in script.splitlines()[1 if script.startswith("#!") else 0:]:
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            break
        if stripped.startswith("#SBATCH"):
            options += shlex.split(stripped[len("#SBATCH"):], comments=True)
    return _drop_own_options(options)


def _drop_own_options(options: list[str]) -> list[str]:
    kept, skip = [], False
    for opt in options:
        if skip:
            skip = False
            continue
        flag = opt.split("=", 1)[0]
        if flag in OWN_OPTIONS or flag in OWN_OPTIONS.values():
            skip = "=" not in opt and not (flag in OWN_OPTIONS and len(opt) > 2)
            continue
        if len(flag) > 2 and flag[:2] in OWN_OPTIONS and not flag.startswith("--"):
            continue   # short option glued to its value, e.g. -o%J.out
        kept.append(opt)
    return kept


def parse_sbatch(text: str) -> str:
    """The job id from ``sbatch --parsable`` output (``id`` or ``id;cluster``)."""
    first = text.strip().splitlines()[-1] if text.strip() else ""
    job_id = first.split(";")[0].strip()
    if not job_id.isdigit():
        raise QueueError(f"sbatch printed no job id: {text.strip()!r}")
    return job_id


def parse_max_array_size(config_text: str) -> int:
    match = re.search(r"^MaxArraySize\s*=\s*(\d+)", config_text, re.M)
    return int(match.group(1)) if match else 1001


def parse_squeue(text: str) -> dict[str, dict]:
    """``squeue --format=%i|%T|%r|%N|%V`` lines -> {job id: info}."""
    out = {}
    for line in _lines(text):
        job_id, state, reason, node, submit = (line.split("|") + [""] * 5)[:5]
        out[job_id] = {"state": NATIVE_STATES.get(state, "UNKNOWN"), "native": state,
                       "reason": None if reason in ("None", "") else reason,
                       "node": node or None, "submit": _epoch(submit)}
    return out


def parse_sacct(text: str) -> dict[str, dict]:
    """``sacct -X --parsable2`` lines (fields SACCT_FIELDS) -> {job id: info}.

    Rows of array tasks not yet started (``493_[1-3%1]``) are expanded to one per task.
    """
    out = {}
    for line in _lines(text):
        fields = line.split("|")
        if len(fields) < 10:
            continue
        job_id, _raw, _name, state, exit_code, _elapsed, node, submit, start, end = fields[:10]
        native = state.split()[0] if state else ""
        code, _, sig = exit_code.partition(":")
        info = {
            "state": NATIVE_STATES.get(native, "UNKNOWN"), "native": native, "reason": None,
            "node": None if node in ("", "None assigned") else node,
            "exit_code": int(code) if code.isdigit() else None,
            "signal": sig if sig not in ("", "0") else None,
            "submit": _epoch(submit), "start": _epoch(start), "end": _epoch(end),
        }
        for task_id in expand_array_id(job_id):
            out[task_id] = info
    return out


def expand_array_id(job_id: str) -> list[str]:
    """``'7_[1-3,5%2]'`` -> ``['7_1', '7_2', '7_3', '7_5']``; other ids unchanged."""
    match = re.fullmatch(r"(\d+)_\[([\d,\-]+)(?:%\d+)?\]", job_id)
    if not match:
        return [job_id]
    base, ranges = match.groups()
    tasks = []
    for part in ranges.split(","):
        low, _, high = part.partition("-")
        tasks += range(int(low), int(high or low) + 1)
    return [f"{base}_{t}" for t in tasks]


def _fresh(infos: dict[str, dict], records: list["Record"]) -> dict[str, dict]:
    """Drop answers about an older job that had the same id (ids are reused after a reset)."""
    oldest = min((r["submitted"] or 0 for r in records), default=0) - 120
    if all(info["submit"] is None or info["submit"] >= oldest for info in infos.values()):
        return infos   # the common case: every answer is about a job submitted since
    submitted = {r["job_id"]: r["submitted"] or 0 for r in records}
    return {job_id: info for job_id, info in infos.items()
            if info["submit"] is None or info["submit"] >= submitted.get(job_id, 0) - 120}


def _vanished_while_pending(record: "Record", known_arrays: set[str]) -> bool:
    """A pending array task cancelled with scancel leaves squeue and sacct without a trace."""
    return (record["started"] is None and "_" in record["job_id"]
            and record["job_id"].split("_")[0] in known_arrays and record["state"] not in FINAL_STATES)


def _apply(record: "Record", info: dict) -> None:
    """Merge what Slurm says into a record; the job's own exit file wins except for verdicts."""
    state = info["state"]
    has_exit = record["exit_code"] is not None and record["state"] in FINAL_STATES
    if has_exit and state not in SCHEDULER_VERDICTS:
        return
    if state == "UNKNOWN":
        return
    record["state"] = state
    record["reason"] = info.get("reason") if state == "PENDING" else None
    record["node"] = info.get("node") or record["node"]
    if state in FINAL_STATES:
        if record["exit_code"] is None and info.get("exit_code") is not None:
            record["exit_code"] = info["exit_code"]
        record["started"] = record["started"] or info.get("start")
        record["ended"] = record["ended"] or info.get("end")


@functools.lru_cache(maxsize=4096)
def _epoch(text: str) -> float | None:
    if not text or text in ("Unknown", "None", "N/A"):
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def _sacct(args: list[str]) -> str:
    return call(["sacct", "--parsable2", "--noheader", *args])


def _write_map(exp: "Experiment", path: str, chunk: list["Record"]) -> None:
    lines = [f"{exp.job_dir(r['job_name'])}\t{r['attempt']}\t{r['mode']}\n" for r in chunk]
    with open(path, "w") as f:
        f.writelines(lines)


def _read_map(path: str) -> list[tuple[str, int]]:
    try:
        with open(path) as f:
            return [(p[0], int(p[1])) for p in (line.rstrip("\n").split("\t") for line in f) if len(p) >= 2]
    except FileNotFoundError:
        return []


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _lines(text: str) -> Iterable[str]:
    return (line.strip() for line in text.splitlines() if line.strip())


def _chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
