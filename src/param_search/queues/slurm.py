"""Slurm's dialect: job arrays within MaxArraySize, one squeue + one sacct per refresh, scancel.

Every sbatch call submits one chunk (see batch.py): an array whose task i runs line i of
the chunk's map file through the experiment's wrapper, in the job's folder. ``#SBATCH`` directives in the rendered scripts are applied
to the chunk, except job name, output, error and array, which param_search sets itself
(stdout and stderr go to ``job.<attempt>.out/err`` in the job's folder).
"""
from __future__ import annotations

import functools
import io
import re
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from ..errors import CommandError, OptionError, QueueError
from ..proc import call
from ..states import UNKNOWN, signal_name
from .batch import BatchQueue, arg_list, chunks, lines
from .snapshot import array_ids, per_value, snapshot_infos, snapshot_types

if TYPE_CHECKING:
    import pyarrow as pa

    from ..experiment import Experiment
    from ..record import Record

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
SACCT = ("sacct", "--parsable2", "--noheader")
TRANSIENT = ("socket timed out", "temporarily unable to accept", "resource temporarily unavailable",
             "unable to contact slurm controller", "connection refused", "slurm_persist_conn")
#: Fragments of sbatch's refusals for a reached submit limit (per user, account or QOS).
#: The whole cluster's MaxJobCount is not among them: sbatch reports it as "temporarily
#: unavailable", like a busy controller, and retrying is the answer to both.
LIMIT_REFUSALS = ("qosmaxsubmitjobperuserlimit", "qosmaxsubmitjobperaccountlimit", "assocmaxsubmitjoblimit",
                  "assocgrpsubmitjobslimit", "qosgrpsubmitjobslimit", "job submit limit")
#: sbatch's spellings of the options holding an attempt's resources.
RESOURCE_OPTIONS = {"--time": "time_limit", "-t": "time_limit", "--mem": "mem_limit", "--exclude": "excluded",
                    "-x": "excluded"}
#: sbatch options param_search sets itself; the same options found in scripts are dropped.
OWN_OPTIONS = {"-J": "--job-name", "-o": "--output", "-e": "--error", "-a": "--array"}


class SlurmQueue(BatchQueue):
    """Submit to Slurm with job arrays (or one sbatch per job with ``array=False``).

    Args:
        partition, time, mem, cpus_per_task, gres, account, qos, constraint, exclude: sbatch
            options (``--partition`` etc.) applied to every job, overriding the scripts' directives.
        extra_args: more sbatch arguments, e.g. ``['--exclusive']``.
        array: submit job arrays (default) or one job per sbatch call.
        max_running: at most this many tasks of each array run at once (``%N``).
        max_array_size: the site's MaxArraySize (default: read from ``scontrol show config``).
        submit_timeout: how long transient sbatch refusals are retried, in seconds.
        requeue: let Slurm requeue the jobs (``--requeue``: preemption, a failed node,
            ``scontrol requeue``) and warn each with SIGUSR1 ``requeue_grace`` seconds before its
            time limit (``--signal=B:USR1@<grace>``), so it can save a checkpoint. A requeued
            run continues the same attempt (``PS_RESTART_COUNT``, ``PS_CHECKPOINT_DIR``; see
            the README). Without it, sbatch gets no requeue option: the site's JobRequeue
            decides, and a requeued run continues the attempt all the same.
        requeue_grace: seconds before the time limit for that warning (default 60; Slurm may
            send it up to a minute early).
    """

    name = "slurm"
    directive = "#SBATCH"
    submit_command = "sbatch"
    transient = TRANSIENT
    gone = ("invalid job id", "already completing or completed")
    limit_refusals = LIMIT_REFUSALS
    time_setting, mem_setting, exclude_setting = "time", "mem", "exclude"
    bare_time, bare_mem = 60.0, 1.0   # sbatch reads a bare number as minutes, megabytes
    requeues = True   # preemption, scontrol requeue, NODE_FAIL (JobRequeue=1 is Slurm's default)

    def __init__(self, partition: str | None = None, time: str | None = None,
                 mem: str | None = None, cpus_per_task: int | None = None, gres: str | None = None,
                 account: str | None = None, qos: str | None = None, constraint: str | None = None,
                 exclude: str | None = None, extra_args: Sequence[str] = (), array: bool = True,
                 max_running: int | None = None, max_array_size: int | None = None,
                 submit_timeout: float = 120.0, requeue: bool = False, requeue_grace: int | None = None):
        named = {"partition": partition, "time": time, "mem": mem, "cpus-per-task": cpus_per_task,
                 "gres": gres, "account": account, "qos": qos, "constraint": constraint, "exclude": exclude}
        options = [f"--{k}={v}" for k, v in named.items() if v is not None]
        options += requeue_options(requeue, requeue_grace) + arg_list(extra_args, "sbatch")
        super().__init__(options, array, max_running, max_array_size, submit_timeout)

    def own_options(self, options: list[str]) -> list[str]:
        return _drop_own_options(options)

    def resource_options(self, options: list[str]) -> dict[str, str]:
        return parse_resource_options(options)

    def discover_max_array_size(self) -> int:
        return parse_max_array_size(self.call_patiently(["scontrol", "show", "config"],
                                                        "scontrol show config failed"))

    def submit_argv(self, exp: "Experiment", name: str, map_path: str, size: int,
                    directives: list[str]) -> list[str]:
        argv = ["sbatch", "--parsable", f"--job-name={name}", f"--chdir={exp.work_dir}",
                f"--output={exp.state_dir.replace('%', '%%')}/batches/{name}_%a.log", *directives, *self.options]
        if self.array:
            throttle = f"%{self.max_running}" if self.max_running else ""
            argv.append(f"--array=0-{size - 1}{throttle}")
        return [*argv, exp.wrapper, f"@{map_path}"]

    def parse_submit(self, text: str) -> str:
        return parse_sbatch(text)

    def task_id(self, job_id: str, index: int) -> str:
        return f"{job_id}_{index}"

    def status_argv(self, ids: list[str]) -> list[str]:
        return ["squeue", "--noheader", "--array", "--states=all", f"--format={SQUEUE_FORMAT}",
                f"--jobs={','.join(ids)}"]

    def parse_status(self, text: str) -> dict[str, dict]:
        return parse_squeue(text)

    def accounting_argv(self, ids: list[str]) -> list[str]:
        return [*SACCT, "-X", f"--format={SACCT_FIELDS}", f"--jobs={','.join(ids)}"]

    def parse_accounting(self, text: str) -> dict[str, dict]:
        return parse_sacct(text)

    def cancel_argv(self, ids: list[str]) -> list[str]:
        return ["scancel", *ids]

    def snapshot(self, job_ids: "pa.Array") -> "pa.Table":
        """One squeue call (per 1,000 arrays) for these jobs, parsed column-wise."""
        return parse_squeue_table(self.status_text(array_ids(job_ids)))

    def snapshot_infos(self, snapshot: "pa.Table", job_ids: list[str]) -> dict[str, dict]:
        return snapshot_infos(snapshot, job_ids)

    def vanished(self, record: "Record", accounted: dict) -> bool:
        """A pending array task cancelled with scancel leaves squeue and sacct without a trace."""
        return (record["started"] is None and "_" in record["job_id"]
                and record["job_id"].split("_")[0] in {i.split("_")[0] for i in accounted})

    def find_chunks(self, exp: "Experiment", names: list[str], since: float) -> dict[str, str | None]:
        """squeue lists the chunks still queued or running, sacct those that ended; with
        accounting down, a chunk squeue does not list may have run: None (ask again later)."""
        found: dict[str, str | None] = {}
        start = datetime.fromtimestamp(since - 60).strftime("%Y-%m-%dT%H:%M:%S")
        for part in chunks(names):
            for line in lines(call(["squeue", "--noheader", f"--name={','.join(part)}", "--format=%F|%j"])):
                array_id, name = line.split("|", 1)
                found[name] = array_id
            try:
                ended = call([*SACCT, "-X", f"--name={','.join(part)}", f"--starttime={start}",
                              "--format=JobIDRaw,JobName,JobID"])
            except CommandError:
                found.update({name: None for name in part if name not in found})
                continue
            for line in lines(ended):
                _raw, name, job_id = line.split("|")[:3]
                found.setdefault(name, job_id.split("_")[0])
        return found


# -- pure helpers: argv pieces and parsers of Slurm's text -----------------------------
#: Seconds before the time limit at which a requeue-able job is warned with SIGUSR1.
REQUEUE_GRACE = 60


def requeue_options(requeue: bool, grace: int | None) -> list[str]:
    """sbatch options for ``requeue=True`` (none without it: today's submissions unchanged)."""
    if not isinstance(requeue, bool):
        raise OptionError(f"requeue must be True or False, not {requeue!r}")
    if grace is not None and not requeue:
        raise OptionError("requeue_grace is the warning before the time limit of a requeue-able job; "
                          "pass requeue=True with it")
    if grace is not None and (isinstance(grace, bool) or not isinstance(grace, int) or grace < 1):
        raise OptionError(f"requeue_grace must be a positive number of seconds (int), not {grace!r}")
    return ["--requeue", f"--signal=B:USR1@{grace or REQUEUE_GRACE}"] if requeue else []


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


def parse_resource_options(options: list[str]) -> dict[str, str]:
    """``time_limit``, ``mem_limit`` and ``excluded`` from sbatch options (``--time=1:00:00``,
    ``--time 1:00:00``, ``-t 60``, ``-t60``; later ones win, as in sbatch)."""
    found: dict[str, str] = {}
    items = iter(options)
    for opt in items:
        flag, eq, value = opt.partition("=")
        if flag in RESOURCE_OPTIONS:
            found[RESOURCE_OPTIONS[flag]] = value if eq else next(items, "")
        elif opt[:2] in ("-t", "-x") and len(opt) > 2 and not opt.startswith("--"):
            found[RESOURCE_OPTIONS[opt[:2]]] = opt[2:]
    return found


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
    return snapshot_infos(parse_squeue_table(text))


def parse_squeue_table(text: str) -> "pa.Table":
    """``squeue --format=%i|%T|%r|%N|%V`` lines -> a table with columns ``job_id``,
    ``state`` (ours), ``native``, ``reason``, ``node`` and ``submit`` (epoch seconds).

    Parsed by Arrow's CSV reader; each distinct state, reason, node or time is then
    interpreted once (10,000 lines: ~2 ms). A line without exactly five fields is skipped:
    its job then counts as not listed, and sacct is asked about it.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as csv

    data = text.encode()
    if not data.strip():
        return pa.table({name: pa.array([], type) for name, type in snapshot_types().items()})
    text_type = pa.large_string()
    raw = csv.read_csv(
        io.BytesIO(data),
        read_options=csv.ReadOptions(column_names=["job_id", "native", "reason", "node", "submit"],
                                     use_threads=False, block_size=max(len(data), 1 << 20)),
        parse_options=csv.ParseOptions(delimiter="|", quote_char=False, invalid_row_handler=lambda row: "skip"),
        convert_options=csv.ConvertOptions(
            column_types=dict.fromkeys(["job_id", "native", "reason", "node", "submit"], text_type),
            strings_can_be_null=False),
    ).combine_chunks()
    native = per_value(raw.column("native"), str.strip, text_type)
    return pa.table({
        "job_id": pc.utf8_trim_whitespace(raw.column("job_id")),
        "state": per_value(native, lambda v: NATIVE_STATES.get(v, UNKNOWN), text_type),
        "native": native,
        "reason": per_value(raw.column("reason"), lambda v: None if v in ("None", "") else v, text_type),
        "node": per_value(raw.column("node"), lambda v: v or None, text_type),
        "submit": per_value(raw.column("submit"), lambda v: _epoch(v.strip()), pa.float64()),
    })


def parse_sacct(text: str) -> dict[str, dict]:
    """``sacct -X --parsable2`` lines (fields SACCT_FIELDS) -> {job id: info}.

    Rows of array tasks not yet started (``493_[1-3%1]``) are expanded to one per task.
    """
    out = {}
    for line in lines(text):
        fields = line.split("|")
        if len(fields) < 10:
            continue
        job_id, _raw, _name, state, exit_code, _elapsed, node, submit, start, end = fields[:10]
        native = state.split()[0] if state else ""
        code, _, sig = exit_code.partition(":")
        killed = sig.isdigit() and sig != "0"   # "0:9": its shell was killed by signal 9
        info = {
            "state": NATIVE_STATES.get(native, "UNKNOWN"), "native": native, "reason": None,
            "node": None if node in ("", "None assigned") else node,
            "exit_code": 128 + int(sig) if killed else int(code) if code.isdigit() else None,
            "signal": signal_name(int(sig)) if killed else None,
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


@functools.lru_cache(maxsize=4096)
def _epoch(text: str) -> float | None:
    if not text or text in ("Unknown", "None", "N/A"):
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


