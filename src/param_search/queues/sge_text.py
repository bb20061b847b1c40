"""Son of Grid Engine: the pure part of the backend, qsub argv pieces and parsers of SGE's text.

What SGE prints, and when, is in tests/data/sge/README.md (captures from SGE 8.1.9). Ids are
``"<job>.<task>"`` for an array task (SGE's own 1-based task number) and ``"<job>"`` otherwise.
SGE prints local times without a zone; they are read as local time (like ``time.mktime``).
"""
from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ..errors import OptionError, QueueError
from ..states import signal_name

DEFAULT_MAX_AJ_TASKS = 75000
#: qsub options param_search sets itself; found in ``#$`` directives they are dropped.
#: SGE's qsub takes no glued values (``-Nx`` is an invalid option), so values are separate.
OWN_OPTIONS = ("-N", "-o", "-e", "-j", "-t", "-tc", "-cwd", "-wd", "-terse", "-S", "-b")
_NO_VALUE = ("-cwd", "-terse")
#: SGE's state letters (qstat(1)); any other letter makes a state UNKNOWN.
_LETTERS = set("dEhrRsStTqw")
_QACCT_LINE = re.compile(r"^(\w+)\s+(.*?)\s*$")
_FAILED = re.compile(r"^(\d+)\s*(?::\s*(.*))?$")
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}
_QIM_PREFIX = re.compile(r"^\d\d/\d\d/\d{4} \d\d:\d\d:\d\d \[[^\]]*\]:\s*(?:error:\s*)?")
_QACCT_GONE = re.compile(r"^error: job (id \S+|name .*) not found$|^no jobs running since startup$"
                         r"|: No such file or directory$")
_QDEL_GONE = re.compile(r'^denied: job "[^"]+" does not exist$|^job "[^"]+" task "[^"]+" does not exist$')
_QDEL_DONE = re.compile(r" has (registered the .* for deletion|deleted (job|job-array task) \S+)$")


# -- job ids -------------------------------------------------------------------------------
def task_id(job_id: str, index: int) -> str:
    """The id of 0-based map line ``index`` of array ``job_id``: SGE numbers tasks from 1."""
    return f"{job_number(job_id)}.{index + 1}"


def job_number(job_id: str) -> str:
    """``'10.3'`` -> ``'10'``: qdel, qstat -j and qacct take job numbers."""
    return job_id.split(".", 1)[0]


# -- argv pieces ---------------------------------------------------------------------------
def array_spec(size: int, max_running: int | None) -> list[str]:
    """``-t 1-size`` (task ids start at 1; 0 is refused), ``-tc N`` limits running tasks."""
    return ["-t", f"1-{size}"] + (["-tc", str(max_running)] if max_running else [])


def resource_options(queue: str | None = None, pe: str | None = None, slots: int | None = None,
                     h_rt: str | None = None, h_vmem: str | None = None, project: str | None = None) -> list[str]:
    """qsub options for the queue's named settings (None: not set)."""
    if slots is not None and pe is None:
        raise OptionError(f"slots={slots} needs a parallel environment: set pe= too (qconf -spl lists them)")
    options: list[str] = []
    for opt, *values in (("-q", queue), ("-pe", pe, slots or 1), ("-l", h_rt and f"h_rt={h_rt}"),
                         ("-l", h_vmem and f"h_vmem={h_vmem}"), ("-P", project)):
        options += [opt, *map(str, values)] if values[0] else []
    return options


def drop_own_options(options: list[str]) -> list[str]:
    """``options`` without OWN_OPTIONS and their values (-cwd and -terse take none)."""
    kept, items = [], iter(options)
    for opt in items:
        if opt not in OWN_OPTIONS:
            kept.append(opt)
        elif opt not in _NO_VALUE:
            next(items, None)
    return kept


def qsub_argv(name: str, log: str, work_dir: str, options: list[str], array: list[str],
              script: str, script_args: list[str]) -> list[str]:
    """The qsub command line of one chunk; the hard ``-l`` resources merged into one option.

    SGE 8.1.9's qsub adds up several ``-l`` (``-l h_rt=10,h_vmem=100M -l h_rt=30`` gives
    ``h_vmem=100M,h_rt=30``), so merging changes nothing there but keeps one place per resource.
    """
    others, resources = split_resources(options)
    merged = ["-l", ",".join(k if v is None else f"{k}={v}" for k, v in resources.items())] if resources else []
    return ["qsub", "-terse", "-N", name, "-o", log, "-j", "y", "-wd", work_dir, "-S", "/bin/bash",
            "-b", "n", *array, *merged, *others, script, *script_args]


def split_resources(options: Sequence[str]) -> tuple[list[str], dict[str, str | None]]:
    """Options without their hard ``-l`` parts (soft ones, after ``-soft``, stay), and those
    resources (later values win)."""
    others: list[str] = []
    resources: dict[str, str | None] = {}
    soft, items = False, iter(options)
    for opt in items:
        soft = {"-soft": True, "-hard": False}.get(opt, soft)
        if opt != "-l" or soft:
            others.append(opt)
            continue
        for part in filter(None, next(items, "").split(",")):
            key, sep, val = part.partition("=")
            resources.pop(key, None)   # re-insert: the latest setting keeps its place last
            resources[key] = val if sep else None
    return others, resources


# -- parsers of SGE's text -----------------------------------------------------------------
def parse_qsub(text: str) -> str:
    """The job number qsub printed: ``9``, ``10.1-5:1`` (-terse) or ``Your job(-array) 9 ...``."""
    match = (re.search(r"^\s*(\d+)(?:\.\d+-\d+:\d+)?\s*$", text, re.M)
             or re.search(r"^Your job(?:-array)? (\d+)\b", text, re.M))
    if not match:
        raise QueueError(f"qsub printed no job id: {text.strip()!r}")
    return match.group(1)


def parse_max_aj_tasks(qconf_sconf_text: str) -> int:
    """``max_aj_tasks`` (most tasks of one array) from ``qconf -sconf``, default 75000."""
    match = re.search(r"^max_aj_tasks\s+(\d+)", qconf_sconf_text, re.M)
    return int(match.group(1)) if match else DEFAULT_MAX_AJ_TASKS


def native_state(code: str) -> tuple[str, str | None]:
    """SGE's state letters -> (our state, reason). A job in error (E) never runs by itself."""
    letters = set(code)
    if not letters or not letters <= _LETTERS:
        return "UNKNOWN", None
    if "E" in letters:
        return "FAILED", f"error state {code}"
    if "d" in letters:
        return "CANCELLED", None
    if letters & set("sST"):
        return "PENDING", "suspended"
    if letters & set("rt"):
        return "RUNNING", None
    return "PENDING", "held" if "h" in letters else None   # qw, hqw, hRwq


def expand_tasks(tasks: str) -> list[int]:
    """qstat's task ids: ``3-5:1``, ``2-10:4``, ``1,2``, ``7`` (or a mix) -> each task id."""
    out: list[int] = []
    for part in filter(None, tasks.replace(" ", "").split(",")):
        span, _, step = part.partition(":")
        low, _, high = span.partition("-")
        out += range(int(low), int(high or low) + 1, int(step or 1))
    return out


def parse_qstat_xml(text: str) -> dict[str, dict[str, Any]]:
    """``qstat [-g d] [-u '*'] -xml`` -> {task or job id: info}; pending ranges expanded."""
    out: dict[str, dict[str, Any]] = {}
    for job in _xml(text, "qstat").iter("job_list"):
        number, native = job.findtext("JB_job_number", ""), job.findtext("state", "")
        state, reason = native_state(native)
        queue = job.findtext("queue_name") or ""
        info = {"state": state, "native": native, "reason": reason, "node": queue.partition("@")[2] or None,
                "submit": _epoch(job.findtext("JB_submission_time")),
                "start": _epoch(job.findtext("JAT_start_time")), "name": job.findtext("JB_name")}
        tasks = job.findtext("tasks")
        for key in [f"{number}.{t}" for t in expand_tasks(tasks)] if tasks else [number]:
            out[key] = dict(info)
    return out


def parse_qstat_j_xml_reasons(text: str) -> dict[str, str]:
    """``qstat -j IDS -xml`` -> {job number: why it is in error (Eqw), without date and pid}."""
    out: dict[str, str] = {}
    for job in _xml(text, "qstat -j").iterfind("djob_info/element"):
        number = job.findtext("JB_job_number")
        messages = [m.text for m in job.iterfind("JB_ja_tasks/*/JAT_message_list/*/QIM_message") if m.text]
        if number and messages:
            out.setdefault(number, _QIM_PREFIX.sub("", messages[0].strip()))
    return out


def parse_qacct(text: str) -> dict[str, dict[str, Any]]:
    """``qacct -j ...`` -> {task or job id: info}; a job number's last record wins (ids restart)."""
    out: dict[str, dict[str, Any]] = {}
    for block in re.split(r"^=+\s*$", text.split("Total System Usage")[0], flags=re.M):
        fields = dict(m.groups() for m in map(_QACCT_LINE.match, block.splitlines()) if m)
        if fields.get("jobnumber", "").isdigit():
            task = fields.get("taskid", "undefined")
            out[fields["jobnumber"] + (f".{task}" if task.isdigit() else "")] = qacct_info(fields)
    return out


def qacct_info(fields: dict[str, str]) -> dict[str, Any]:
    """One qacct record (its fields) -> info with our state, exit code and signal."""
    match = _FAILED.match(fields.get("failed", ""))
    failed, why = (int(match.group(1)), match.group(2)) if match else (-1, fields.get("failed"))
    status = int(re.match(r"\d*", fields.get("exit_status", "")).group() or -1)
    state, exit_code, sig = qacct_state(failed, status, fields.get("category", ""), fields.get("ru_wallclock", ""))
    return {"state": state, "native": f"failed={failed} exit_status={status}", "exit_code": exit_code,
            "signal": sig, "node": fields.get("hostname") or None, "submit": _epoch(fields.get("qsub_time")),
            "start": _epoch(fields.get("start_time")), "end": _epoch(fields.get("end_time")),
            "maxvmem": _bytes(fields.get("maxvmem", "")), "reason": why or None, "name": fields.get("jobname")}


def qacct_state(failed: int, status: int, category: str, wallclock: str) -> tuple[str, int | None, str | None]:
    """(state, exit code, signal) from qacct's ``failed`` and ``exit_status``: failed 0 is the
    script's own exit, 37 a limit kill by sge_execd, 100 qdel or any outside kill (indistinguishable),
    others a job that could not start (file errors)."""
    killed = signal_name(status - 128) if status > 128 else None
    if failed == 0:
        return ("COMPLETED", 0, None) if status == 0 else ("FAILED", status, killed)
    if failed == 37:
        return _limit_state(category, wallclock), None, "KILL"
    return "FAILED", None, killed if failed == 100 else None


def _limit_state(category: str, wallclock: str) -> str:
    """TIMEOUT or OUT_OF_MEMORY by the job's ``-l`` request (FAILED for a queue's own limit)."""
    asked = {}
    for request in re.findall(r"(?:^|\s)-l\s+(\S+)", category):
        asked.update(part.partition("=")[::2] for part in request.split(","))
    rt = asked.get("h_rt") or asked.get("s_rt")
    if "h_vmem" not in asked and "s_vmem" not in asked:
        return "TIMEOUT" if rt or "h_cpu" in asked or "s_cpu" in asked else "FAILED"
    if rt is None:
        return "OUT_OF_MEMORY"
    used, limit = _seconds(wallclock), _seconds(rt)
    return "TIMEOUT" if used is not None and limit is not None and used >= limit else "OUT_OF_MEMORY"


def qacct_gone(stderr: str, stdout: str) -> bool:
    """A failed qacct only said "nothing known yet" (job not found, no accounting file yet)."""
    said = [ln.strip() for ln in f"{stderr}\n{stdout}".splitlines() if ln.strip()]
    return bool(said) and all(_QACCT_GONE.search(ln) for ln in said)


def qdel_gone(stdout: str, stderr: str) -> bool:
    """A failed qdel only complained about jobs or tasks that no longer exist."""
    said = [ln.strip() for ln in f"{stdout}\n{stderr}".splitlines() if ln.strip()]
    complaints = [ln for ln in said if not _QDEL_DONE.search(ln)]
    return bool(complaints) and all(_QDEL_GONE.match(ln) for ln in complaints)


# -- small readers -------------------------------------------------------------------------
def _xml(text: str, command: str) -> ET.Element:
    try:
        return ET.fromstring(text.strip()) if text.strip() else ET.Element("empty")
    except ET.ParseError as exc:
        raise QueueError(f"{command} printed no valid XML ({exc}): {text.strip()[:200]!r}") from exc


def _epoch(text: str | None) -> float | None:
    """SGE's times: ``2026-11-30T08:01:02``, ``Mon Nov 30 08:01:02 2026``, epoch; ``-/-`` is None."""
    text = " ".join((text or "").split())
    try:
        if text.isdigit():
            return float(text) or None
        if "T" in text[:11]:
            return datetime.fromisoformat(text).timestamp()
        return time.mktime(time.strptime(text, "%a %b %d %H:%M:%S %Y"))
    except ValueError:
        return None


def _bytes(text: str) -> float | None:
    """``273.734MB``, ``0.000B``, ``1.2G`` -> bytes (SGE's units are powers of 1024)."""
    match = re.fullmatch(r"([\d.]+)\s*([KMGTP]?)B?", text.strip(), re.I)
    return float(match.group(1)) * _UNITS[match.group(2).upper()] if match else None


def _seconds(text: str) -> float | None:
    """``6s``, ``6``, ``0:0:5`` or ``1:30`` -> seconds."""
    try:
        return float(sum(float(p or 0) * 60 ** i for i, p in enumerate(reversed(text.rstrip("s").split(":")))))
    except ValueError:
        return None
