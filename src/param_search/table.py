"""The jobs table: one pandas row per job, params as columns.

Built column by column from the Arrow index (index_file.py) without going through Python
objects: strings stay in Arrow buffers (pandas' ``str`` dtype), numbers become numpy.
"""
from __future__ import annotations

from collections.abc import Collection, Iterable

import numpy as np
import pandas as pd
import pyarrow as pa

from . import index_file
from .errors import ExperimentError
from .experiment import Experiment
from .record import Record
from .attempts import read_tail
from .states import RUNNING

#: Columns after the params, in order.
JOB_COLUMNS = (
    "job_name", "job_dir", "job_id", "job_state", "exit_code", "runtime", "error",
    "stdout", "stderr", "attempt", "restarts", "queue", "batch", "node", "reason", "hash", "submitted",
    "started", "ended", "time_limit", "mem_limit", "excluded", "history",
)
_FROM_FIELD = {"job_state": "state"}
_TIMES = ("submitted", "started", "ended")
_STR_DTYPE = pd.StringDtype("pyarrow", na_value=np.nan)


def jobs_table(exp: Experiment, records: Iterable[Record]) -> pd.DataFrame:
    """Build the jobs table of ``records`` (in the order given)."""
    return frame(exp, index_file.from_records(list(records), exp.work_dir))


def frame(exp: Experiment, index: pa.Table, live_logs: bool = True,
          only: "Collection[str] | None" = None) -> pd.DataFrame:
    """The jobs table of an index table (see index_file.py), rows in the index's order.
    ``live_logs=False``: running jobs' log tails as last recorded, not read from their files
    (for a loop that looks at states only). ``only``: just these columns (params or job
    columns), for a loop that reads a few at every round."""
    columns: dict[str, object] = {}
    for field in index.schema:
        if field.name.startswith(index_file.PARAM_PREFIX):
            name = field.name[len(index_file.PARAM_PREFIX):]
            if name not in JOB_COLUMNS and (only is None or name in only):
                columns[name] = _param_values(field, index.column(field.name))
    running = _running_rows(index) if live_logs else np.array([], dtype=int)
    for name in JOB_COLUMNS:
        if only is None or name in only:
            columns[name] = _job_column(exp, index, name, running)
    table = dataframe_of(columns, index.num_rows)
    table.attrs["work_dir"] = exp.work_dir
    return table


def record_fields(columns: "Collection[str]") -> set[str]:
    """The record fields the job columns ``columns`` are made of."""
    fields = {_FROM_FIELD.get(name, name) for name in columns}
    if "runtime" in fields:
        fields |= {"started", "ended"}
    return fields & set(index_file.FIELDS)


def dataframe_of(columns: dict, n_rows: int) -> pd.DataFrame:
    """``pd.DataFrame(columns)`` without copies or type inference (pandas >= 3: one block
    per column, as pyarrow's own ``to_pandas`` builds it)."""
    try:
        from pandas.api.internals import create_dataframe_from_blocks
    except ImportError:   # pandas 2
        return pd.DataFrame(columns, copy=False)
    blocks = [(values.reshape(1, -1) if isinstance(values, np.ndarray) else values, np.array([i]))
              for i, values in enumerate(columns.values())]
    return create_dataframe_from_blocks(blocks, index=pd.RangeIndex(n_rows), columns=pd.Index(list(columns)))


def _job_column(exp: Experiment, index: pa.Table, name: str, running: np.ndarray):
    import pyarrow.compute as pc

    if name == "job_dir":
        return _strings(index_file.job_dirs(index, exp.work_dir))
    if name == "runtime":
        return _seconds_between(index.column("started"), index.column("ended"))
    if name in ("stdout", "stderr"):
        return _strings(_logs(exp, index, name, running))
    column = index.column(_FROM_FIELD.get(name, name))
    if name in _TIMES:
        return _numbers(column)
    if name == "exit_code":
        if not column.null_count:
            return pd.arrays.IntegerArray(_numbers(column), np.zeros(len(column), dtype=bool))
        return pd.arrays.IntegerArray(_writable(pc.fill_null(column, 0).to_numpy()), _is_null(column))
    if name in ("attempt", "restarts"):
        return _numbers(column)
    return _strings(column)


def _param_values(field: pa.Field, column: pa.ChunkedArray):
    if field.metadata and field.metadata.get(b"json") == b"1":
        return _objects(index_file.loads_column(column))
    if pa.types.is_large_string(column.type):
        return _strings(column)
    if pa.types.is_null(column.type):
        return np.full(len(column), None, dtype=object)
    if pa.types.is_boolean(column.type) and column.null_count:
        return _objects(column.to_pylist())
    return _numbers(column)


def _writable(array: np.ndarray) -> np.ndarray:
    """Arrow's zero-copy numpy views are read-only; users edit their tables."""
    return array if array.flags.writeable else array.copy()


def _numbers(column: pa.ChunkedArray) -> np.ndarray:
    """A numeric or time column as a writable numpy array, without a copy when it has no
    nulls and its memory is writable (see index_file.read)."""
    array = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    kind = array.type.to_pandas_dtype()
    if array.null_count or not (pa.types.is_integer(array.type) or pa.types.is_floating(array.type)
                                or pa.types.is_timestamp(array.type)):
        return _writable(array.to_numpy(zero_copy_only=False))
    values = np.frombuffer(array.buffers()[1], dtype=kind, count=len(array),
                           offset=array.offset * np.dtype(kind).itemsize)
    return _writable(values)


def _objects(values: list) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = values   # element-wise, even when the values are lists
    return array


def _strings(column: pa.ChunkedArray) -> pd.api.extensions.ExtensionArray:
    return pd.arrays.ArrowStringArray(column, dtype=_STR_DTYPE)   # zero-copy for large_string


def _seconds_between(start: pa.ChunkedArray, end: pa.ChunkedArray) -> np.ndarray:
    micros = end.to_numpy().view(np.int64) - start.to_numpy().view(np.int64)
    seconds = micros / 1e6
    if start.null_count or end.null_count:
        seconds[_is_null(start) | _is_null(end)] = np.nan
    return seconds


def _is_null(column: pa.ChunkedArray) -> np.ndarray:
    import pyarrow.compute as pc

    return pc.is_null(column).to_numpy(zero_copy_only=False)


def _running_rows(index: pa.Table) -> np.ndarray:
    import pyarrow.compute as pc

    return np.flatnonzero(pc.equal(index.column("state"), RUNNING).to_numpy(zero_copy_only=False))


def _logs(exp: Experiment, index: pa.Table, name: str, running: np.ndarray) -> pa.ChunkedArray:
    """A log tail column: kept in the index for ended jobs, read live for running ones."""
    import pyarrow.compute as pc

    column = index.column(name)
    if column.null_count:
        column = pc.fill_null(column, pa.scalar("", pa.large_string()))
    if not len(running):
        return column
    values = column.to_pylist()
    names, attempts = index.column("job_name"), index.column("attempt")
    suffix = "out" if name == "stdout" else "err"
    for row in running.tolist():
        record = {"job_name": names[row].as_py(), "attempt": attempts[row].as_py()}
        values[row] = read_tail(exp.attempt_path(record, suffix))
    return pa.chunked_array([pa.array(values, type=pa.large_string())])


def work_dir_of(jobs: pd.DataFrame) -> str:
    """The experiment folder a jobs table came from."""
    work_dir = jobs.attrs.get("work_dir")
    if work_dir:
        return work_dir
    if "job_dir" in jobs and len(jobs):
        folders = jobs["job_dir"].str.rsplit("/", n=1).str[0].unique()
        if len(folders) > 1:
            raise ExperimentError(
                f"this table holds jobs of {len(folders)} experiments ({', '.join(map(str, folders[:3]))}); "
                "call the function for each experiment's rows (e.g. grouped by the job_dir's folder)"
            )
        return str(folders[0])
    raise ExperimentError("this table has no job_dir column; pass the jobs table that ps.submit returned")
