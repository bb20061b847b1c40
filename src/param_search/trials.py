"""A search's trials read back from its experiment: the jobs table plus each trial's last
metrics row, its best trial or Pareto front, the history of its values.

Below the API (``ps.status`` of a search shows its metrics and best trial) and above the
metrics reader; needs no Optuna, which only the search controller (``optimize.py``) loads.
"""
from __future__ import annotations

import json
import os
from typing import Any

import pandas as pd

from .errors import ExperimentError, MetricsError
from .experiment import Experiment
from .metrics import job_rows
from .states import COMPLETED
from .table import frame, work_dir_of

#: The parameter numbering the trials (in every trial job's params, usable in templates).
TRIAL = "trial"
#: The search's settings, in the experiment's state folder.
SETTINGS = "optimize.json"


def settings(exp: Experiment) -> dict[str, Any] | None:
    """The stored settings of the experiment's search (None: it has none)."""
    try:
        with open(os.path.join(exp.state_dir, SETTINGS)) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def trial_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of the experiment's jobs table that are trials of its search, by trial number."""
    if TRIAL not in table:
        empty = table.iloc[:0].assign(**{TRIAL: pd.Series(dtype="int64")})
        empty.attrs = dict(table.attrs)
        return empty
    numbers = table[TRIAL]
    values = numbers.to_numpy()
    if values.dtype.kind in "iu" and (len(values) < 2 or bool((values[1:] >= values[:-1]).all())) \
            and isinstance(table.index, pd.RangeIndex) and table.index.start == 0 and table.index.step == 1:
        return table   # only trials, in order: as a search's own experiment holds them
    rows = table[numbers.notna().to_numpy()]
    return rows.sort_values(TRIAL, kind="stable").reset_index(drop=True) if len(rows) else rows


def with_metrics(table: pd.DataFrame, last_rows: dict[str, dict[str, Any]], problems: dict[str, str],
                 objectives: list[str], directions: list[str]) -> pd.DataFrame:
    """The trials' table plus one column per metric of their last rows; a trial that completed
    without a value gets its reason as its ``error``."""
    table = table.copy()
    names = table["job_name"].tolist()
    columns: dict[str, None] = dict.fromkeys(objectives)
    for row in last_rows.values():
        columns.update(dict.fromkeys(map(str, row)))
    for column in columns:
        key = column if column not in table else f"{column}_metric"
        table[key] = _column([last_rows.get(n, {}).get(column) for n in names], table.index)
    if problems and "error" in table:
        error = table["error"].astype(object)
        for i, name in enumerate(names):
            if name in problems and table["job_state"].iat[i] == COMPLETED:
                error.iat[i] = problems[name]
        table["error"] = error
    table.attrs.update(objectives=list(objectives), directions=list(directions))
    return table


def _column(values: list, index: pd.Index) -> pd.Series:
    raw = pd.Series(values, index=index, dtype=object)
    numbers = pd.to_numeric(raw, errors="coerce")
    return numbers.astype("float64") if numbers.notna().any() or raw.isna().all() else raw


def trials_table(jobs: "pd.DataFrame | str | os.PathLike") -> pd.DataFrame:
    """The search's trials as last recorded (no scheduler call), with their metrics read."""
    exp = Experiment.open(jobs if not isinstance(jobs, pd.DataFrame) else work_dir_of(jobs))
    stored = settings(exp)
    if stored is None:
        raise ExperimentError(f"{exp.work_dir!r} holds no ps.optimize search (no {SETTINGS}); "
                              "pass the work_dir given to ps.optimize")
    return _read(exp, trial_rows(frame(exp, exp.load_index())), stored)


def _read(exp: Experiment, table: pd.DataFrame, stored: dict[str, Any]) -> pd.DataFrame:
    """``table`` (trials) plus their metrics' last rows."""
    records = exp.load_records() if len(table) else {}
    last: dict[str, dict[str, Any]] = {}
    names = table["job_name"].tolist()
    if names:
        records.prefetch(names)
    for name in names:
        rows, _ = job_rows(exp.work_dir, name, records[name]["params"], records[name]["hash"], stored["pattern"])
        if rows is not None:
            last[name] = {k: v[-1] for k, v in rows.items()}
    return with_metrics(table, last, {}, stored["objectives"], stored["directions"])


def with_search(table: pd.DataFrame) -> pd.DataFrame:
    """A jobs table of a search's experiment with each trial's metrics (last row) and a
    ``best`` column marking the best trial so far (several objectives: the Pareto front);
    any other table as it is."""
    if TRIAL not in table or not len(table):
        return table
    exp = Experiment.open(work_dir_of(table))
    stored = settings(exp)
    if stored is None:
        return table
    table = _read(exp, table, stored)
    marked = pd.Series(False, index=table.index)
    try:
        found = best(table[table[TRIAL].notna().to_numpy()])
    except MetricsError:
        found = None
    if isinstance(found, pd.Series):
        marked[found.name] = True
    elif found is not None:
        marked[found.index] = True
    table["best" if "best" not in table else "best_trial"] = marked
    return table


def best(trials: "pd.DataFrame | str | os.PathLike") -> "pd.Series | pd.DataFrame":
    """The best trial's row (params, metrics, job_name); with several objectives, the Pareto
    front's rows (trials no other trial beats on every objective).

    ``trials``: what ``ps.optimize`` returned, or its work_dir.
    """
    if not isinstance(trials, pd.DataFrame) or "objectives" not in trials.attrs:
        trials = trials_table(trials)
    objectives, directions = trials.attrs["objectives"], trials.attrs["directions"]
    missing = [o for o in objectives if o not in trials]
    ok = trials[(trials["job_state"] == COMPLETED).to_numpy()] if not missing else trials.iloc[:0]
    if not missing:
        ok = ok.dropna(subset=objectives)
    if not len(ok):
        raise MetricsError(f"no trial has completed with a value of {objectives} yet; "
                           "look at the trials' error column for why")
    signs = [1.0 if d == "minimize" else -1.0 for d in directions]
    values = ok[objectives].to_numpy(dtype=float) * signs
    if len(objectives) == 1:
        return ok.iloc[int(values[:, 0].argmin())]
    dominated = [bool(((values <= v).all(axis=1) & (values < v).any(axis=1)).any()) for v in values]
    return ok[[not d for d in dominated]]


def plot_history(trials: "pd.DataFrame | str | os.PathLike", path: "str | os.PathLike | None" = None):
    """Each trial's value and the best so far against the trial number (one panel per
    objective); saved to ``path`` if given. Returns the matplotlib Figure."""
    from matplotlib import pyplot as plt

    if not isinstance(trials, pd.DataFrame) or "objectives" not in trials.attrs:
        trials = trials_table(trials)
    objectives, directions = trials.attrs["objectives"], trials.attrs["directions"]
    fig, axes = plt.subplots(1, len(objectives), figsize=(5 * len(objectives), 3.5), squeeze=False,
                             constrained_layout=True)
    for ax, objective, direction in zip(axes[0], objectives, directions):
        ok = trials[(trials["job_state"] == COMPLETED).to_numpy()] if objective in trials else trials.iloc[:0]
        ok = ok.dropna(subset=[objective]).sort_values(TRIAL) if len(ok) else ok
        if not len(ok):
            raise MetricsError(f"no trial has a value of {objective!r} yet: nothing to plot")
        values = ok[objective].astype(float)
        so_far = values.cummin() if direction == "minimize" else values.cummax()
        ax.scatter(ok[TRIAL], values, s=10, alpha=0.5, label="trial")
        ax.step(ok[TRIAL], so_far, where="post", color="C1", label="best so far")
        ax.set_xlabel("trial")
        ax.set_ylabel(objective)
        ax.legend()
    if path is not None:
        fig.savefig(path)
    return fig
