"""The columns a search controller's rounds read, for tables this process wrote itself.

Why: where this process runs every trial and nobody else writes the index, a round's table
is the index this process wrote last plus what its runner saw since (jobs that started or
ended). Reading that index back into pandas at every round cost in proportion to every
trial so far; :class:`TrialBook` keeps those columns and changes by the rows each write
changed, so that a round costs what changed in it.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .index_file import PARAM_PREFIX
from .lifecycle import HELD, is_held
from .record import Record
from .states import FINAL_STATES, PENDING, PRUNED
from .table import dataframe_of
from .trials import TRIAL

#: The columns a round of the controller reads (what its steps look at).
ROUND_COLUMNS = (TRIAL, "job_name", "job_state", "error", "reason")


@dataclass
class Looked:
    """The columns of a round's table that the steps read, taken out once per table."""

    table: pd.DataFrame
    names: np.ndarray
    states: np.ndarray
    final: np.ndarray   # whether the row's job ended
    errors: np.ndarray
    held: np.ndarray | None = None   # whether the row's job is held back (None: not looked at)
    rows: dict[str, int] | None = field(default=None, repr=False)   # job name -> row, when asked
    top: int | None = None   # the highest trial number, for a table of trials in order (None: not known)

    @classmethod
    def of(cls, table: pd.DataFrame) -> "Looked":
        states = table["job_state"].to_numpy()
        # (a set lookup per row: cheaper than pandas' isin on a few hundred Arrow strings)
        final = np.fromiter((state in FINAL_STATES for state in states), bool, len(states))
        errors = table["error"].to_numpy(dtype=object, na_value=None)
        return cls(table, table["job_name"].to_numpy(), states, final, errors)

    def row(self, name: str) -> int | None:
        """The row of job ``name`` (None: not in the table)."""
        if self.rows is None:
            self.rows = dict(zip(self.names.tolist(), range(len(self.names))))
        row = self.rows.get(name)   # (a book's rows, which grows past this table)
        return row if row is not None and row < len(self.names) else None


class TrialBook:
    """The round columns of an index table whose rows are all trials, in trial order."""

    #: The columns kept, with the numpy type of each.
    KINDS = {TRIAL: np.int64, "job_name": object, "job_state": object, "error": object, "reason": object,
             "held": bool, "final": bool, "attempt": object}

    def __init__(self, index: pa.Table, columns: dict[str, list]):
        self.index = index   # the index table these columns are of (the same object)
        self.columns = {name: np.array(columns[name], dtype=kind) for name, kind in self.KINDS.items()}
        self.rows = dict(zip(columns["job_name"], range(len(columns["job_name"]))))

    @classmethod
    def of(cls, index: pa.Table) -> "TrialBook | None":
        """The book of ``index``; None if it holds rows that are not trials, or not in order."""
        columns: dict[str, list] = {TRIAL: []}
        if index.num_rows:
            numbers = index.column(PARAM_PREFIX + TRIAL) if PARAM_PREFIX + TRIAL in index.column_names else None
            if numbers is None or not pa.types.is_integer(numbers.type) or numbers.null_count:
                return None
            columns[TRIAL] = numbers.to_pylist()
            if any(b < a for a, b in zip(columns[TRIAL], columns[TRIAL][1:])):
                return None
        for column, name in (("job_name", "job_name"), ("job_state", "state"), ("error", "error"),
                             ("reason", "reason"), ("attempt", "attempt")):
            columns[column] = index.column(name).to_pylist()
        held = pc.and_(pc.equal(index.column("state"), PENDING), pc.starts_with(index.column("reason"), HELD))
        columns["held"] = pc.fill_null(held, False).to_pylist()
        columns["final"] = [state in FINAL_STATES for state in columns["job_state"]]
        return cls(index, columns)

    def update(self, index: pa.Table, records: Mapping[str, Record], rows: Mapping[str, int]) -> "TrialBook | None":
        """The book of ``index``, written from this book's index by changing ``records`` (and
        nothing else), now at ``rows``; None where that would not keep trials in order."""
        trials, names = self.columns[TRIAL], self.columns["job_name"]
        n_rows, top = len(names), int(trials[-1]) if len(trials) else None
        new: list[dict] = []
        for name in sorted(records, key=rows.__getitem__):
            record, row = records[name], rows[name]
            trial = record["params"].get(TRIAL)
            if row == n_rows + len(new):
                if type(trial) is not int or (top is not None and trial < top):
                    return None
                new.append({TRIAL: trial, "job_name": name, **_round_values(record)})
                top = trial
            elif row >= n_rows or trials[row] != trial or names[row] != name:
                return None
            else:
                for column, value in _round_values(record).items():
                    self.columns[column][row] = value
        if new:
            self.columns = {name: np.concatenate([values, np.array([r[name] for r in new], dtype=values.dtype)])
                            for name, values in self.columns.items()}
            self.rows.update((r["job_name"], n_rows + i) for i, r in enumerate(new))
        self.index = index
        return self

    def round(self, news: list[Record], work_dir: str) -> "Looked | None":
        """The round's table (as ``frame`` gives its ``ROUND_COLUMNS``) of the index with the
        runner's ``news`` merged in, as ``Experiment.merge`` would: a trial pruned meanwhile
        stays PRUNED; trials the index does not hold yet (started as others ended) come last,
        in trial order. None if one of them is no trial numbered after the index's last."""
        trials, rows = self.columns[TRIAL], self.rows
        columns = {name: values.copy() for name, values in self.columns.items() if name != TRIAL}
        new = {r["job_name"]: r for r in news if r["job_name"] not in rows}
        if new:
            numbers = sorted((r["params"].get(TRIAL), name) for name, r in new.items()
                             if type(r["params"].get(TRIAL)) is int)
            if len(numbers) < len(new) or (len(trials) and numbers[0][0] <= trials[-1]):
                return None
            added = [{"job_name": name, **_round_values(new[name])} for _, name in numbers]
            rows = {**rows, **{name: len(trials) + i for i, (_, name) in enumerate(numbers)}}
            trials = np.concatenate([trials, np.array([n for n, _ in numbers], dtype=trials.dtype)])
            columns = {name: np.concatenate([values, np.array([r[name] for r in added], dtype=values.dtype)])
                       for name, values in columns.items()}
        else:
            trials = trials.copy()
        for record in news:
            row = rows[record["job_name"]]
            if columns["job_state"][row] == PRUNED and columns["attempt"][row] == record["attempt"]:
                continue
            for column, value in _round_values(record).items():
                columns[column][row] = value
        table = dataframe_of({TRIAL: trials, **{name: columns[name] for name in ROUND_COLUMNS[1:]}}, len(trials))
        table.attrs["work_dir"] = work_dir
        return Looked(table, columns["job_name"], columns["job_state"], columns["final"], columns["error"],
                      columns["held"], rows=rows, top=int(trials[-1]) if len(trials) else None)


def _round_values(record: Record) -> dict:
    """What the book keeps of a record, but its trial number and name."""
    return {"job_state": record["state"], "error": record["error"], "reason": record["reason"],
            "held": is_held(record), "final": record["state"] in FINAL_STATES, "attempt": record["attempt"]}
