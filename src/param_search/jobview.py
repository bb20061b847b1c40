"""The jobs table as Jupyter shows it: states coloured, failed jobs plain to see, long
outputs cut in the HTML view only (the table itself keeps them whole)."""
from __future__ import annotations

from typing import Any

import pandas as pd

from .states import FINAL_STATES

#: CSS of each state's cell; the failed states share one.
STATE_CSS = {"COMPLETED": "color: #1a7f37", "RUNNING": "color: #0550ae", "PENDING": "color: #9a6700",
             "SUBMITTING": "color: #9a6700", "NEW": "color: #777", "UNKNOWN": "color: #8250df"}
FAILED_CSS = "color: #cf222e; font-weight: bold"
#: Columns whose long texts are cut in the view, and how many characters of them stay.
LONG_COLUMNS = ("stdout", "stderr", "error", "history")


def show(jobs: pd.DataFrame, width: int = 80, max_rows: int | None = 200) -> Any:
    """The jobs table as a pandas Styler for Jupyter: states coloured, the ends of long outputs
    (``width`` characters), at most ``max_rows`` rows (None: all). The data is not changed."""
    shown = jobs if max_rows is None or len(jobs) <= max_rows else jobs.head(max_rows)
    long = [c for c in LONG_COLUMNS if c in shown]
    styler = shown.style.format({c: lambda v: cut(v, width) for c in long}, na_rep="", escape="html")
    if "job_state" in shown:
        styler = styler.map(state_css, subset=["job_state"])
    styler = styler.set_properties(subset=long, **{"white-space": "pre", "font-family": "monospace"})
    if len(shown) < len(jobs):
        styler = styler.set_caption(f"the first {max_rows} of {len(jobs)} jobs (ps.show(jobs, max_rows=None): all)")
    return styler


def state_css(state: Any) -> str:
    if state in STATE_CSS:
        return STATE_CSS[state]
    return FAILED_CSS if state in FINAL_STATES else ""


def cut(value: Any, width: int) -> str:
    """The end of a text on one line (outputs say what happened last), ``…`` where cut."""
    if not isinstance(value, str):
        return "" if value is None or value is pd.NA or value != value else str(value)
    line = value.strip().replace("\n", " ⏎ ")
    return line if len(line) <= width else "…" + line[-(width - 1):]
