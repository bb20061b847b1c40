"""Torque/PBS: the pure part of the backend, qsub argv pieces and parsers of Torque's text.

Job ids are kept as qsub printed them, with the task index in Torque's brackets:
``123[4].server`` (real Torque prints ``123[].server`` for an array) or ``123[4]`` (Slurm's
Torque wrappers print a bare ``123``). ``123_4`` is read as well.
"""
from __future__ import annotations

import re
import shlex
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import QueueError
from ..states import ENDED, FINAL_STATES, signal_name

if TYPE_CHECKING:
    from ..record import Record

#: Torque's job_state letters mapped to ours; C (completed) is decided by exit_status.
NATIVE_STATES = {"Q": "PENDING", "H": "PENDING", "W": "PENDING", "T": "PENDING", "S": "PENDING",
                 "R": "RUNNING", "E": "RUNNING", "B": "RUNNING", "C": ENDED, "F": ENDED}
#: Torque's own (negative) exit codes: -10 memory, -11 walltime, -12 CPU time limit;
#: the rest (-1 .. -9, -13, -14) mean the job could not be started or set up.
TORQUE_EXIT_STATES = {-10: "OUT_OF_MEMORY", -11: "TIMEOUT", -12: "TIMEOUT"}
#: qsub options param_search sets itself; the same options found in scripts are dropped.
OWN_OPTIONS = ("-N", "-o", "-e", "-j", "-t", "-J")
DEFAULT_MAX_ARRAY_SIZE = 1000
_JOB_ID = re.compile(r"^(\d+)(?:\[(\d*)\]|_(\d+))?((?:\.\S*)?)$")
_ATTRIBUTE = re.compile(r"^\s+([A-Za-z_][\w.]*) = ?(.*)$")
# -- argv pieces -------------------------------------------------------------------------
def queue_options(queue: str | None, walltime: str | None, mem: str | None, nodes: int | None,
                  ppn: int | None, account: str | None) -> list[str]:
    """qsub options for the queue's named settings."""
    options: list[str] = []
    if queue is not None:
        options += ["-q", str(queue)]
    if account is not None:
        options += ["-A", str(account)]
    resources = [f"walltime={walltime}" if walltime is not None else "",
                 f"mem={mem}" if mem is not None else "", node_spec(nodes, ppn)]
    for item in filter(None, resources):
        options += ["-l", item]
    return options


def node_spec(nodes: int | None, ppn: int | None) -> str:
    """``nodes=N[:ppn=M]`` ('' if neither is set)."""
    if nodes is None and ppn is None:
        return ""
    return f"nodes={nodes or 1}" + (f":ppn={ppn}" if ppn is not None else "")


def array_spec(size: int, max_running: int | None) -> str:
    """The ``-t`` value for ``size`` tasks, with Torque's slot limit ``%N``."""
    return f"0-{size - 1}" + (f"%{max_running}" if max_running else "")


def qsub_argv(name: str, log: str, work_dir: str, driver: str, options: Sequence[str],
              array: str | None) -> list[str]:
    """The qsub command line of one chunk; all ``-l`` resources merged into one option."""
    others, resources = split_resources(options)
    argv = ["qsub", "-N", name, "-j", "oe", "-o", log, "-w", work_dir]
    if array is not None:
        argv += ["-t", array]
    argv += others
    if resources:
        argv += ["-l", ",".join(f"{k}={v}" if v is not None else k for k, v in resources.items())]
    return argv + [driver]


def split_resources(options: Sequence[str]) -> tuple[list[str], dict[str, str | None]]:
    """Options without their ``-l`` parts, and those resources (later values win).

    Slurm's qsub keeps only the last ``-l``; Torque adds them up: one merged ``-l`` suits both.
    """
    others: list[str] = []
    resources: dict[str, str | None] = {}
    items = iter(options)
    for opt in items:
        if opt == "-l" or (opt.startswith("-l") and len(opt) > 2):
            value = next(items, "") if opt == "-l" else opt[2:]
            for part in filter(None, value.split(",")):
                key, sep, val = part.partition("=")
                resources.pop(key, None)   # re-insert: the latest setting keeps its place last
                resources[key] = val if sep else None
        else:
            others.append(opt)
    return others, resources


def driver_text(wrapper: str, map_path: str) -> str:
    """The chunk's job script: qsub passes no arguments, so the map file is named here."""
    return ("#!/bin/bash\n# param_search: task $PBS_ARRAYID runs that line of the map file\n"
            f"exec bash {shlex.quote(wrapper)} {shlex.quote('@' + map_path)}\n")


def drop_own_options(options: list[str]) -> list[str]:
    """``options`` without -N/-o/-e/-j/-t/-J and their values (separate or glued)."""
    kept, items = [], iter(options)
    for opt in items:
        if opt in OWN_OPTIONS:
            next(items, None)
        elif not (opt[:2] in OWN_OPTIONS and len(opt) > 2):
            kept.append(opt)
    return kept


# -- job ids -----------------------------------------------------------------------------
def split_id(job_id: str) -> tuple[str, int | None, str] | None:
    """``'123[4].srv'`` or ``'123_4'`` -> (number, index, server suffix); None if not an id."""
    match = _JOB_ID.match(job_id.strip())
    if not match:
        return None
    number, bracket, underscore, suffix = match.groups()
    index = bracket if bracket else underscore
    return number, int(index) if index else None, suffix


def task_id(array_id: str, index: int) -> str:
    """The id of task ``index`` of the array qsub called ``array_id`` (``123[]`` or ``123``)."""
    parts = split_id(array_id)
    if parts is None:
        raise QueueError(f"not a Torque job id: {array_id!r}")
    return f"{parts[0]}[{index}]{parts[2]}"


def id_key(job_id: str) -> tuple[str, int | None] | None:
    """The server-independent key of a job id: (number, index)."""
    parts = split_id(job_id)
    return None if parts is None else parts[:2]


def query_ids(job_ids: Iterable[str]) -> list[str]:
    """The ids to ask qstat about: each array once (``123[].srv`` / ``123``), other jobs as such."""
    ids = set()
    for job_id in job_ids:
        number, index, suffix = split_id(job_id)
        ids.add(f"{number}[]{suffix}" if index is not None and suffix else f"{number}{suffix}")
    return sorted(ids)


def qdel_ids(records: list["Record"], known: Iterable["Record"]) -> list[str]:
    """The ids to give qdel for ``records``.

    Torque ids (with a server suffix) are given as they are. A bare ``123[4]`` comes from
    Slurm's wrapper, whose qdel kills the whole array 123 for it: that is only done when
    every other task of the array (among ``known`` records) has ended or is cancelled too.
    """
    ids, arrays = [], {}
    for record in records:
        number, index, suffix = split_id(record["job_id"]) or ("", None, "")
        if not number:
            continue
        if wrapper_task(record["job_id"]):
            arrays.setdefault(number, set()).add(record["job_name"])
        else:
            ids.append(record["job_id"])
    for number, names in sorted(arrays.items()):
        busy = [r["job_name"] for r in known if r["job_name"] not in names
                and r["state"] not in FINAL_STATES
                and (id_key(r["job_id"] or "") or ("",))[0] == number]
        if busy:
            raise QueueError(
                f"cannot cancel part of array {number}: this qdel (Slurm's Torque wrapper) can only "
                f"cancel the whole array, and {len(busy)} other job(s) of it are active, e.g. "
                f"{busy[0]!r}; cancel them together, or submit with array=False")
        ids.append(number)
    return ids


def wrapper_task(job_id: str) -> bool:
    """An array task id without a server suffix (``123[4]``): from Slurm's wrapper."""
    parts = split_id(job_id)
    return parts is not None and parts[1] is not None and not parts[2]


# -- parsers of Torque's text ----------------------------------------------------------
def parse_qsub(text: str) -> str:
    """The job id qsub printed: ``123.server``, ``123[].server`` or (Slurm's wrapper) ``123``."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    job_id = lines[-1] if lines else ""
    if split_id(job_id) is None:
        raise QueueError(f"qsub printed no job id: {text.strip()!r}")
    return job_id


def parse_max_array_size(server_text: str) -> int:
    """``max_job_array_size`` from ``qstat -B -f`` (default 1000)."""
    match = re.search(r"^\s*max_job_array_size\s*=\s*(\d+)", server_text, re.M)
    return int(match.group(1)) if match else DEFAULT_MAX_ARRAY_SIZE


def parse_qstat_blocks(text: str) -> list[dict[str, str]]:
    """``qstat -f`` output -> one dict of attributes per ``Job Id:`` block (key ``Job Id``).

    Lines wrapped by qstat (indented, without `` = ``) are joined to the attribute before.
    """
    blocks: list[dict[str, str]] = []
    last = None
    for line in text.splitlines():
        if line.startswith("Job Id:"):
            blocks.append({"Job Id": line[len("Job Id:"):].strip()})
            last = None
            continue
        match = _ATTRIBUTE.match(line)
        if blocks and match:
            last = match.group(1)
            blocks[-1][last] = match.group(2).strip()
        elif blocks and last and line[:1].isspace() and line.strip():
            blocks[-1][last] += line.strip()
    return blocks


def parse_qstat_full(text: str) -> dict[tuple[str, int | None], dict[str, Any]]:
    """``qstat -f`` output -> {(job number, array index): info}."""
    out = {}
    for block in parse_qstat_blocks(text):
        key = id_key(block["Job Id"])
        if key is not None:
            out[key] = job_info(block)
    return out


def job_info(block: dict[str, str]) -> dict[str, Any]:
    """One job's state, exit code, node and times from its qstat -f attributes."""
    native = block.get("job_state", "")
    state = NATIVE_STATES.get(native, "UNKNOWN")
    code = _int(block.get("exit_status"))
    exit_code, sig = None, None
    if state == ENDED and code is not None:
        state, exit_code, sig = exit_status_state(code)
    host = block.get("exec_host", "")
    return {"state": state, "native": native, "name": block.get("Job_Name"),
            "reason": "held" if native == "H" else None,
            "node": host.split("/")[0].split("+")[0] or None, "exit_code": exit_code, "signal": sig,
            "submit": _epoch(block.get("qtime")), "start": _epoch(block.get("start_time")),
            "end": _epoch(block.get("comp_time"))}


def exit_status_state(code: int) -> tuple[str, int | None, str | None]:
    """Torque's exit_status -> (state, job exit code, signal).

    0 is success; 1-255 the script's exit code; above 256, killed by signal code - 256;
    negative values are Torque's own codes (limits exceeded, or the job could not start).
    """
    if code == 0:
        return "COMPLETED", 0, None
    if 0 < code <= 256:
        return "FAILED", code, None
    if code > 256:
        name = signal_name(code - 256)
        return ("CANCELLED" if name in ("TERM", "KILL", "INT") else "FAILED"), None, name
    return TORQUE_EXIT_STATES.get(code, "NODE_FAIL"), code, None


def chunks_in_qstat(infos_text: str, names: Iterable[str]) -> dict[str, str]:
    """Chunk name -> job id (``123.srv`` or ``123``; see task_id) from ``qstat -f`` output.

    Real Torque lists an array as ``123[].srv`` (tasks as ``123[i].srv`` named ``<name>-i``);
    Slurm's wrapper lists each task under its own Slurm id, the array's being the lowest.
    """
    wanted, found = set(names), {}
    for block in parse_qstat_blocks(infos_text):
        name, parts = block.get("Job_Name", ""), split_id(block["Job Id"])
        if parts is None:
            continue
        if name not in wanted and parts[1] is not None:
            name = name.rsplit("-", 1)[0]
        if name not in wanted:
            continue
        number, suffix = parts[0], parts[2]
        candidate = f"{number}{suffix}"
        if name not in found or int(number) < int(split_id(found[name])[0]):
            found[name] = candidate
    return found


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _epoch(text: str | None) -> float | None:
    """Torque's times: ``Fri Aug 29 14:55:55 2008`` (local time) or epoch seconds."""
    if not text:
        return None
    if text.isdigit():
        return float(text)
    try:
        return time.mktime(time.strptime(" ".join(text.split()), "%a %b %d %H:%M:%S %Y"))
    except ValueError:
        return None
