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

    def __init__(self, index: pa.Table, columns: dict[str, list]):
        self.index = index   # the index table these columns are of (the same object)
        self.trials: list[int] = columns[TRIAL]
        self.names: list[str] = columns["job_name"]
        self.states: list[str] = columns["job_state"]
        self.errors: list[str | None] = columns["error"]
        self.reasons: list[str | None] = columns["reason"]
        self.held: list[bool] = columns["held"]
        self.rows = dict(zip(self.names, range(len(self.names))))

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
                             ("reason", "reason")):
            columns[column] = index.column(name).to_pylist()
        held = pc.and_(pc.equal(index.column("state"), PENDING), pc.starts_with(index.column("reason"), HELD))
        columns["held"] = pc.fill_null(held, False).to_pylist()
        return cls(index, columns)

    def update(self, index: pa.Table, records: Mapping[str, Record], rows: Mapping[str, int]) -> "TrialBook | None":
        """The book of ``index``, written from this book's index by changing ``records`` (and
        nothing else), now at ``rows``; None where that would not keep trials in order."""
        for name in sorted(records, key=rows.__getitem__):
            record, row = records[name], rows[name]
            trial = record["params"].get(TRIAL)
            if row == len(self.names):
                if type(trial) is not int or (self.trials and trial < self.trials[-1]):
                    return None
                self.trials.append(trial)
                self.names.append(name)
                for values in (self.states, self.errors, self.reasons, self.held):
                    values.append(None)
                self.rows[name] = row
            elif row > len(self.names) or self.trials[row] != trial or self.names[row] != name:
                return None
            self._put(row, record)
        self.index = index
        return self

    def _put(self, row: int, record: Record) -> None:
        self.states[row], self.errors[row], self.reasons[row] = record["state"], record["error"], record["reason"]
        self.held[row] = is_held(record)

    def round(self, news: list[Record], work_dir: str) -> "Looked | None":
        """The round's table (as ``frame`` gives its ``ROUND_COLUMNS``) of the index with the
        runner's ``news`` merged in, as ``Experiment.merge`` would: a trial pruned meanwhile
        stays PRUNED. None if the news name a job the index does not hold."""
        states, errors = np.array(self.states, dtype=object), np.array(self.errors, dtype=object)
        reasons, held = np.array(self.reasons, dtype=object), np.array(self.held, dtype=bool)
        for record in news:
            row = self.rows.get(record["job_name"])
            if row is None:
                return None
            if states[row] == PRUNED:
                continue
            states[row], errors[row], reasons[row] = record["state"], record["error"], record["reason"]
            held[row] = is_held(record)
        names = np.array(self.names, dtype=object)
        columns = {TRIAL: np.array(self.trials, dtype=np.int64), "job_name": names, "job_state": states,
                   "error": errors, "reason": reasons}
        table = dataframe_of(columns, len(names))
        table.attrs["work_dir"] = work_dir
        final = np.fromiter((state in FINAL_STATES for state in states), bool, len(states))
        return Looked(table, names, states, final, errors, held, rows=self.rows)
