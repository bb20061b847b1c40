"""Jobs tables as a terminal shows them: aligned columns like squeue's, states coloured on a
terminal, failures grouped by their error line with the parameter values they share."""
from __future__ import annotations

import math
import os
import shutil

import pandas as pd

from .resources import clock
from .states import FINAL_STATES

#: ANSI colours of states on a terminal.
COLOURS = {"COMPLETED": "32", "RUNNING": "34", "PENDING": "33", "SUBMITTING": "33", "NEW": "2",
           "UNKNOWN": "35", "CANCELLED": "2"}
FAILED_COLOUR = "31"
#: The columns of the aligned table, in order, and their headers.
COLUMNS = {"job_name": "NAME", "job_state": "STATE", "exit_code": "EXIT", "attempt": "ATT",
           "restarts": "RESTARTS", "job_id": "JOBID", "node": "NODE", "runtime": "TIME", "why": "REASON/ERROR"}


def counts_line(table: pd.DataFrame) -> str:
    """``16 jobs: 12 COMPLETED, 4 FAILED``."""
    counts = table["job_state"].value_counts()
    return f"{len(table)} jobs: " + ", ".join(f"{n} {state}" for state, n in counts.items())


def jobs_text(table: pd.DataFrame, colour: bool = False, width: int | None = None) -> str:
    """The jobs as an aligned table, its last column cut to the terminal's width."""
    width = width or shutil.get_terminal_size((120, 24)).columns
    rows = [[_cell(row, name) for name in COLUMNS] for row in _rows(table)]
    header = list(COLUMNS.values())
    widths = [max([len(header[i]), *(len(r[i]) for r in rows)]) for i in range(len(header) - 1)]
    lines = [_line(header, widths, width)]
    for cells in rows:
        line = _line(cells, widths, width)
        if colour:
            state = cells[1]
            start = sum(w + 2 for w in widths[:1])
            line = line[:start] + _paint(line[start:start + widths[1]], state) + line[start + widths[1]:]
        lines.append(line)
    return "\n".join(lines)


def _rows(table: pd.DataFrame):
    why = table["error"].where(table["job_state"].isin(FINAL_STATES) & (table["job_state"] != "COMPLETED"),
                               table["reason"])
    view = table.assign(why=why)
    return view.itertuples(index=False)


def _cell(row, name: str) -> str:
    value = getattr(row, name)
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    if name == "runtime":
        return clock(int(value))
    return str(value).replace("\n", " ")


def _line(cells: list[str], widths: list[int], width: int) -> str:
    head = "  ".join(c.ljust(w) for c, w in zip(cells, widths))
    last = cells[-1]
    room = max(width - len(head) - 2, 10)
    return f"{head}  {last if len(last) <= room else last[:room - 3] + '...'}".rstrip()


def _paint(text: str, state: str) -> str:
    code = COLOURS.get(state.strip(), FAILED_COLOUR if state.strip() in FINAL_STATES else "0")
    return f"\x1b[{code}m{text}\x1b[0m"


def failure_groups(table: pd.DataFrame, params: list[str]) -> pd.DataFrame:
    """Failed jobs grouped by error line: how many, in which states, a few names, and the
    parameter values every job of the group shares while the sweep varies them (what makes
    jobs fail?)."""
    failed = table[table["job_state"].isin(FINAL_STATES) & (table["job_state"] != "COMPLETED")]
    varied = [p for p in params if p in table and table[p].astype(str).nunique() > 1]
    rows = []
    for error, group in failed.groupby(failed["error"].fillna("(no error line)"), sort=False):
        shared = {p: group[p].iloc[0] for p in varied if group[p].astype(str).nunique() == 1}
        rows.append({"error": error, "jobs": len(group),
                     "states": ", ".join(sorted(group["job_state"].unique())),
                     "shared_params": ", ".join(f"{p}={v}" for p, v in shared.items()),
                     "examples": ", ".join(group["job_name"].head(3)) + (", ..." if len(group) > 3 else "")})
    groups = pd.DataFrame(rows, columns=["error", "jobs", "states", "shared_params", "examples"])
    return groups.sort_values("jobs", ascending=False, kind="stable").reset_index(drop=True)


def failures_text(groups: pd.DataFrame) -> str:
    lines = []
    for row in groups.itertuples(index=False):
        lines.append(f"{row.jobs} x {row.error}  [{row.states}]")
        if row.shared_params:
            lines.append(f"    all with {row.shared_params}")
        lines.append(f"    e.g. {row.examples}")
    return "\n".join(lines)


def colour_wanted(stream) -> bool:
    """Colours on a terminal, unless NO_COLOR is set (no-color.org)."""
    return stream.isatty() and not os.environ.get("NO_COLOR")
