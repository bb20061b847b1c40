"""A job's record: the one type every layer passes around, defined once.

A record is a plain dict (cheap to build by the ten thousand, and what the index codec
reads and writes); :class:`JobRecord` names its fields and :data:`FIELDS` their kinds, from
which the index file derives its columns. Only ``lifecycle.apply`` changes a record's state.
"""
from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, TypedDict

from .states import NEW

if TYPE_CHECKING:
    from .render import RenderedJob


class JobRecord(TypedDict):
    """One job in the experiment's index: identity, current attempt, where it went, outcome."""

    job_name: str
    hash: str                 # digest of the params (identity.params_hash)
    params: dict[str, Any]
    script_hash: str          # digest of the rendered script
    mode: str                 # how the wrapper runs job.sh: "source" or "exec"
    attempt: int              # 0 until first sent; attempt N writes job.N.{status,out,err}
    restarts: int             # times the scheduler ran the current attempt again (requeue)
    queue: str | None         # the queue name the current attempt went to
    job_id: str | None        # the scheduler's id of the current attempt
    batch: str | None         # the submission it went out in (settings in batches/<batch>.json)
    owner: str | None         # the local runner running it (host:pid:ticks)
    state: str                # a states.JobState value
    exit_code: int | None
    signal: str | None        # e.g. "TERM", "KILL"
    submitted: float | None   # epoch seconds
    started: float | None
    ended: float | None
    node: str | None
    reason: str | None        # why a job is pending (or what made it final)
    error: str | None         # the most telling line of stderr, once final
    stdout: str | None        # log tails, once final
    stderr: str | None
    time_limit: str | None    # the attempt's resources as sent (option or script directive)
    mem_limit: str | None
    excluded: str | None      # nodes the attempt was kept off
    history: str | None       # one line per retry decision, e.g. "attempt 1: TIMEOUT at 0:01:00 -> time 0:02:00"


Record = JobRecord

#: Each field's kind, in index-file order: "text", "int", "time" (epoch seconds) or "json".
FIELDS: dict[str, str] = {
    "job_name": "text", "hash": "text", "params": "json", "script_hash": "text", "mode": "text",
    "attempt": "int", "restarts": "int", "queue": "text", "job_id": "text", "batch": "text", "owner": "text",
    "state": "text", "exit_code": "int", "signal": "text",
    "submitted": "time", "started": "time", "ended": "time", "node": "text", "reason": "text",
    "error": "text", "stdout": "text", "stderr": "text",
    "time_limit": "text", "mem_limit": "text", "excluded": "text", "history": "text",
}
#: The fields that describe one attempt (its resources and outcome), cleared when a new
#: attempt is sent.
ATTEMPT_FIELDS = ("job_id", "owner", "exit_code", "signal", "started", "ended", "node", "reason",
                  "error", "stdout", "stderr", "time_limit", "mem_limit", "excluded")


def new_record(job: "RenderedJob") -> JobRecord:
    """The record of a job just set up and never submitted."""
    return {
        "job_name": job.job_name, "hash": job.hash, "params": job.params,
        "script_hash": script_digest(job.script), "mode": script_mode(job.script),
        "attempt": 0, "restarts": 0, "queue": None, "job_id": None, "batch": None, "owner": None,
        "state": NEW, "exit_code": None, "signal": None,
        "submitted": None, "started": None, "ended": None, "node": None, "reason": None,
        "error": None, "stdout": None, "stderr": None,
        "time_limit": None, "mem_limit": None, "excluded": None, "history": None,
    }


def script_digest(script: str) -> str:
    return hashlib.sha256(script.encode()).hexdigest()[:16]


def script_mode(script: str) -> str:
    """How the wrapper runs a script: ``exec`` by its own #! unless that is a shell."""
    if not script.startswith("#!"):
        return "source"
    interpreter = script[2:].split("\n", 1)[0].strip()
    shells = ("/bin/bash", "/usr/bin/bash", "/bin/sh", "/usr/bin/sh", "/usr/bin/env bash", "/usr/bin/env sh")
    return "source" if interpreter.split(" -")[0].strip() in shells else "exec"
