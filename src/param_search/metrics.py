"""Reading every job's metrics files into one table."""
from __future__ import annotations

import glob
import os
import warnings

import numpy as np
import pandas as pd

from .errors import MetricsError

from .table import work_dir_of

DEFAULT_PATTERN = "{job_name}.metrics"


def metrics(jobs: pd.DataFrame, pattern: str = DEFAULT_PATTERN, sep: str | None = None) -> pd.DataFrame:
    """Read each job's metrics file(s) into one table joined with the params and job_name.

    A metrics file is a header line of column names and one or more rows (e.g. one per
    epoch), whitespace separated, or comma separated if the file ends in ``.csv``.
    Cells that do not parse as numbers become NaN in numeric columns. A missing, empty
    or unparsable file does not stop the others: those jobs are named in a warning.

    Args:
        jobs: the jobs table (from ps.submit, ps.status or ps.load) or some of its rows.
        pattern: file name inside each job folder, formatted with ``job_name``, ``hash``
            and the params; may contain glob wildcards (all matches are read, in order).
        sep: column separator; default whitespace (``,`` for ``.csv`` files).
    """
    param_names = _param_columns(jobs)
    work_dir = work_dir_of(jobs)
    reader = _Reader(sep)
    problems: list[str] = []
    columns = [jobs[name].tolist() for name in param_names]
    params_rows = [dict(zip(param_names, values)) for values in zip(*columns)] if columns \
        else [{}] * len(jobs)
    hashes = dict(zip(jobs["job_name"].tolist(), jobs["hash"].tolist())) if "hash" in jobs else {}
    paths = _path_maker(work_dir, pattern, hashes)
    for row, (job_name, params) in enumerate(zip(jobs["job_name"].tolist(), params_rows)):
        for path in paths(job_name, params, problems):
            reader.read(path, job_name, row, problems)
    if problems:
        _warn(problems, len(jobs))
    if not reader.n_rows and len(jobs):
        raise MetricsError(f"no metrics could be read for any of the {len(jobs)} jobs: "
                           f"{problems[0]}; check the pattern ({pattern!r})")
    return reader.table(jobs, param_names)


def _param_columns(jobs: pd.DataFrame) -> list[str]:
    from .table import JOB_COLUMNS

    return [c for c in jobs.columns if c not in JOB_COLUMNS]


def _path_maker(work_dir: str, pattern: str, hashes: dict[str, str]):
    """A function (job_name, params, problems) -> metrics file paths of that job."""
    prefix = work_dir.rstrip("/") + "/"
    if pattern == DEFAULT_PATTERN:
        def paths(job_name, params, problems):
            return (f"{prefix}{job_name}/{job_name}.metrics",)
        return paths

    def name_of(job_name, params):
        try:
            return pattern.format_map({**params, "job_name": job_name, "hash": hashes.get(job_name, "")})
        except (KeyError, IndexError, AttributeError, ValueError) as exc:
            raise MetricsError(
                f"the metrics pattern {pattern!r} cannot be filled for job {job_name!r} ({type(exc).__name__}: "
                f"{exc}); it may use {{job_name}}, {{hash}} and the params: {', '.join(params)}"
            ) from None

    if glob.has_magic(pattern):
        def paths(job_name, params, problems):
            name = name_of(job_name, params)
            found = sorted(glob.glob(glob.escape(prefix + job_name + "/") + name))
            if not found:
                problems.append(f"{job_name} (no file matches {name!r})")
            return found
    else:
        def paths(job_name, params, problems):
            return (prefix + job_name + "/" + name_of(job_name, params),)
    return paths


class _Reader:
    """Accumulates metrics rows column-wise (fast: no DataFrame per file)."""

    def __init__(self, sep: str | None):
        self.sep = sep
        self.header: list[str] | None = None
        self.columns: dict[str, list] = {}
        self.rows: list[int] = []   # the jobs table row of each metrics row
        self.job_names: list[str] = []
        self.n_rows = 0

    def read(self, path: str, job_name: str, row: int, problems: list[str]) -> None:
        try:
            with open(path, "rb") as f:
                text = f.read().decode()
        except FileNotFoundError:
            problems.append(f"{job_name} (no file {os.path.basename(path)})")
            return
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{job_name} ({os.path.basename(path)}: {exc})")
            return
        sep = self.sep if self.sep is not None else ("," if path.endswith(".csv") else None)
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if len(lines) < 2:
            problems.append(f"{job_name} ({os.path.basename(path)} is empty or has no data rows)")
            return
        header = [h.strip() for h in lines[0].split(sep)]
        problem = _header_problem(header)
        if problem:
            problems.append(f"{job_name} ({os.path.basename(path)}: {problem})")
            return
        if header != self.header:
            self._use_header(header)
        width = len(header)
        for line in lines[1:]:
            cells = line.split(sep)
            if len(cells) > width:
                problems.append(f"{job_name} ({os.path.basename(path)}: a row has more cells than the header)")
                cells = cells[:width]
            for i, column in enumerate(self._order):
                column.append(cells[i] if i < len(cells) else None)
            self.rows.append(row)
            self.job_names.append(job_name)
            self.n_rows += 1

    def _use_header(self, header: list[str]) -> None:
        for name in header:
            if name not in self.columns:
                self.columns[name] = [None] * self.n_rows
        self.header = header
        self._order = [self.columns[name] for name in header]

    def table(self, jobs: pd.DataFrame, param_names: list[str]) -> pd.DataFrame:
        """The metrics rows, each with its job's params as the jobs table holds them (same
        dtypes: 1, 1.0 and True stay three values, a NaN param is not a missing one)."""
        for column in self.columns.values():
            column.extend([None] * (self.n_rows - len(column)))
        rows = np.asarray(self.rows, dtype=np.intp)
        data = {name: jobs[name].array.take(rows) for name in param_names}
        data["job_name"] = self.job_names
        for name, values in self.columns.items():
            key = name if name not in data else f"{name}_metric"
            data[key] = _parse_column(values)
        frame = pd.DataFrame(data)
        frame.attrs["params"] = list(param_names)
        return frame


def _header_problem(header: list[str]) -> str | None:
    """What is wrong with a metrics file's first line as a header of column names, if anything."""
    if all(_is_number(h) for h in header):
        return (f"its first line {' '.join(header)!r} holds numbers, not column names: write a header "
                "line (e.g. 'loss accuracy') before the rows")
    if any(not h.isprintable() or not h for h in header):
        return "its first line holds empty or unprintable column names: write a plain header line"
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        return f"column {repeated[0]!r} appears twice in the header: give each column its own name"
    return None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parse_column(values: list) -> pd.Series:
    """Numbers where any cell is a number (the rest NaN); text columns stay text."""
    raw = pd.Series(values, dtype=object)
    numbers = pd.to_numeric(raw, errors="coerce")
    if numbers.notna().any() or raw.isna().all():
        return numbers.astype("float64") if numbers.dtype == object else numbers
    return raw


def _warn(problems: list[str], n_jobs: int) -> None:
    shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
    warnings.warn(f"metrics not read for {len(problems)} of {n_jobs} jobs: {shown}", stacklevel=3)


def job_rows(work_dir: str, job_name: str, params: dict, job_hash: str, pattern: str = DEFAULT_PATTERN,
             sep: str | None = None) -> "tuple[dict[str, list] | None, str | None]":
    """One job's metrics rows read as :func:`metrics` reads them (a running job's rows so far),
    column by column (numbers as floats, NaN for empty cells, other text kept), or None and
    what is wrong (no file yet, no data rows, a bad header). No DataFrame: an adaptive search
    reads one job at a time."""
    reader, problems = _Reader(sep), []
    for path in _path_maker(work_dir, pattern, {job_name: job_hash})(job_name, params, problems):
        reader.read(path, job_name, 0, problems)
    if not reader.n_rows:
        return None, problems[0] if problems else f"{job_name} (no metrics file)"
    for column in reader.columns.values():
        column.extend([None] * (reader.n_rows - len(column)))
    return {name: [_cell(v) for v in values] for name, values in reader.columns.items()}, None


def _cell(text: str | None) -> "float | str":
    if text is None:
        return float("nan")
    try:
        return float(text)
    except ValueError:
        return text
