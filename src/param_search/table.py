"""The jobs table: one pandas row per job, params as columns."""
from __future__ import annotations

import os
from collections.abc import Iterable

import pandas as pd

from .errors import ExperimentError
from .experiment import Experiment, Record
from .outcome import read_tail
from .states import RUNNING

#: Columns after the params, in order.
JOB_COLUMNS = (
    "job_name", "job_dir", "job_id", "job_state", "exit_code", "runtime", "error",
    "stdout", "stderr", "attempt", "queue", "node", "reason", "hash", "submitted", "started", "ended",
)


def jobs_table(exp: Experiment, records: Iterable[Record]) -> pd.DataFrame:
    """Build the jobs table of ``records`` (in the order given)."""
    records = list(records)
    param_names = _param_names(records)
    columns: dict[str, list] = {name: [r["params"].get(name) for r in records] for name in param_names}
    prefix = exp.work_dir.rstrip("/") + "/"
    columns["job_name"] = [r["job_name"] for r in records]
    columns["job_dir"] = [prefix + name for name in columns["job_name"]]
    columns["job_id"] = [r["job_id"] for r in records]
    columns["job_state"] = [r["state"] for r in records]
    columns["exit_code"] = [r["exit_code"] for r in records]
    columns["runtime"] = [r["ended"] - r["started"] if r["started"] and r["ended"] else None
                          for r in records]
    columns["error"] = [r["error"] for r in records]
    columns["stdout"], columns["stderr"] = _logs(exp, records)
    for name, key in (("attempt", "attempt"), ("queue", "queue"), ("node", "node"),
                      ("reason", "reason"), ("hash", "hash"), ("submitted", "submitted"),
                      ("started", "started"), ("ended", "ended")):
        columns[name] = [r[key] for r in records]
    table = pd.DataFrame(columns)
    table["exit_code"] = table["exit_code"].astype("Int64")
    table["attempt"] = table["attempt"].astype("int64")
    table["runtime"] = table["runtime"].astype("float64")
    for name in ("submitted", "started", "ended"):
        table[name] = pd.to_datetime(table[name].astype("float64"), unit="s")
    table.attrs["work_dir"] = exp.work_dir
    return table


def _param_names(records: list[Record]) -> list[str]:
    names: dict[str, None] = {}
    for keys in dict.fromkeys(tuple(r["params"]) for r in records):   # distinct key tuples
        names.update(dict.fromkeys(keys))
    return [n for n in names if n not in JOB_COLUMNS]


def _logs(exp: Experiment, records: list[Record]) -> tuple[list[str], list[str]]:
    """stdout and stderr tails: kept in the index for ended jobs, read live for running ones."""
    out, err = [], []
    for r in records:
        if r["state"] == RUNNING:
            out.append(read_tail(exp.attempt_path(r, "out")))
            err.append(read_tail(exp.attempt_path(r, "err")))
        else:
            out.append(r["stdout"] or "")
            err.append(r["stderr"] or "")
    return out, err


def work_dir_of(jobs: pd.DataFrame) -> str:
    """The experiment folder a jobs table came from."""
    work_dir = jobs.attrs.get("work_dir")
    if work_dir:
        return work_dir
    if "job_dir" in jobs and len(jobs):
        return os.path.dirname(jobs["job_dir"].iloc[0])
    raise ExperimentError("this table has no job_dir column; pass the jobs table that ps.submit returned")
