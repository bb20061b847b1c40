"""The jobs table: one pandas row per job, params as columns."""
from __future__ import annotations

import os
from collections.abc import Iterable

import pandas as pd

from .experiment import Experiment, Record
from .outcome import read_tail
from .states import JobState

#: Columns after the params, in order.
JOB_COLUMNS = (
    "job_name", "job_dir", "job_id", "job_state", "exit_code", "runtime", "error",
    "stdout", "stderr", "attempt", "queue", "node", "reason", "hash", "submitted", "started", "ended",
)


def jobs_table(exp: Experiment, records: Iterable[Record]) -> pd.DataFrame:
    """Build the jobs table of ``records`` (in the order given)."""
    records = list(records)
    param_names = _param_names(records)
    columns: dict[str, list] = {name: [] for name in param_names}
    columns.update({name: [] for name in JOB_COLUMNS})
    for r in records:
        params = r["params"]
        for name in param_names:
            columns[name].append(params.get(name))
        _append_job_columns(exp, r, columns)
    table = pd.DataFrame(columns)
    table["exit_code"] = table["exit_code"].astype("Int64")
    table["attempt"] = table["attempt"].astype("int64")
    for name in ("submitted", "started", "ended"):
        table[name] = pd.to_datetime(table[name].astype("float64"), unit="s")
    table.attrs["work_dir"] = exp.work_dir
    return table


def _param_names(records: list[Record]) -> list[str]:
    names: dict[str, None] = {}
    for r in records:
        if len(names) and r["params"].keys() == names.keys():
            continue
        names.update(dict.fromkeys(r["params"]))
    return [n for n in names if n not in JOB_COLUMNS]


def _append_job_columns(exp: Experiment, r: Record, columns: dict[str, list]) -> None:
    stdout, stderr = r["stdout"], r["stderr"]
    if r["state"] == JobState.RUNNING.value:   # live logs of running jobs
        stdout = read_tail(exp.attempt_path(r, "out"))
        stderr = read_tail(exp.attempt_path(r, "err"))
    started, ended = r["started"], r["ended"]
    values = (
        r["job_name"], os.path.join(exp.work_dir, r["job_name"]), r["job_id"], r["state"],
        r["exit_code"], (ended - started) if started and ended else None, r["error"],
        stdout or "", stderr or "", r["attempt"], r["queue"], r["node"], r["reason"], r["hash"],
        r["submitted"], started, ended,
    )
    for name, value in zip(JOB_COLUMNS, values):
        columns[name].append(value)


def work_dir_of(jobs: pd.DataFrame) -> str:
    """The experiment folder a jobs table came from."""
    work_dir = jobs.attrs.get("work_dir")
    if work_dir:
        return work_dir
    if "job_dir" in jobs and len(jobs):
        return os.path.dirname(jobs["job_dir"].iloc[0])
    from .errors import ExperimentError

    raise ExperimentError("this table has no job_dir column; pass the jobs table that ps.submit returned")
