"""One HTML file that shows a sweep: its summary, a sortable jobs table, the failures grouped
by error line, the metrics plots and, for ps.optimize experiments, the best trial.

The file is self-contained (inline CSS and JS, figures as data URIs) so that it can be
mailed or attached; its jobs are an embedded JSON array that the page's script paginates,
so a sweep of many thousand jobs stays small and quick to open.
"""
from __future__ import annotations

import datetime
import math
import os
import warnings
from typing import Any

import pandas as pd

from . import api
from .errors import ExperimentError, MetricsError, OptionError
from .experiment import Experiment
from .files import atomic_write
from .states import FINAL_STATES
from .table import JOB_COLUMNS, work_dir_of
from .textview import failure_groups

#: Characters of stdout/stderr tails the page carries over all jobs (each job gets its share,
#: between the bounds below), so that the file stays small for big sweeps.
TAIL_BUDGET = 3_000_000
TAIL_BOUNDS = (200, 2000)
#: The jobs table's columns after the params: (key in the table, header).
JOB_FIELDS = {"job_name": "name", "job_state": "state", "exit_code": "exit", "runtime": "runtime (s)",
              "attempt": "attempt", "error": "error line"}


def report(jobs: "pd.DataFrame | str | os.PathLike", path: "str | os.PathLike | None" = None,
           metrics: pd.DataFrame | None = None) -> str:
    """Write the sweep's report, one HTML file that opens in any browser without a network,
    and return its path (default: ``report.html`` in the experiment folder).

    ``jobs``: a jobs table (ps.submit, ps.status, ps.load) or an experiment folder, whose jobs
    are refreshed first. ``metrics``: the table to plot; by default ``ps.metrics(jobs)`` when
    the job folders hold metrics files.
    """
    if path is not None and not os.fspath(path).lower().endswith((".html", ".htm")):
        raise OptionError(f"a report is an HTML file; name it .html (got {os.fspath(path)!r})")
    table = jobs if isinstance(jobs, pd.DataFrame) else api.current(_folder(jobs))
    work_dir = work_dir_of(table)
    target = os.fspath(path) if path is not None else os.path.join(work_dir, "report.html")
    atomic_write(target, render(context(table, work_dir, metrics)))
    return target


def _folder(work_dir: "str | os.PathLike") -> str:
    folder = os.fspath(work_dir)
    if not os.path.isdir(os.path.join(folder, ".param_search")):
        raise ExperimentError(f"{folder!r} is not an experiment folder (no .param_search inside); "
                              "pass the work_dir given to ps.submit or ps.optimize")
    return folder


def render(page: dict[str, Any]) -> str:
    """The page from the package's Jinja2 template."""
    try:
        import jinja2
    except ImportError:
        raise OptionError("ps.report needs Jinja2: pip install 'param_search[report]' (or jinja2)") from None

    env = jinja2.Environment(loader=jinja2.PackageLoader("param_search", "templates"),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True)
    return env.get_template("report.html.j2").render(**page)


def context(table: pd.DataFrame, work_dir: str, metrics: pd.DataFrame | None) -> dict[str, Any]:
    """Everything the template shows."""
    from . import report_figures

    if "objectives" in table.attrs:   # a search's table (ps.optimize, ps.status): metrics are not params
        loaded = api.load(work_dir)
        table = loaded[loaded["job_name"].isin(table["job_name"]).to_numpy()]
    params = [c for c in table.columns if c not in JOB_COLUMNS]
    read_here = metrics is None
    metrics = _metrics(table, metrics)
    search = search_section(work_dir, table, metrics if read_here else None)
    return {
        "title": os.path.basename(os.path.abspath(work_dir)) or work_dir,
        "work_dir": work_dir,
        "generated": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "summary": summary(table),
        "columns": [{"key": p, "label": p, "param": True} for p in params]
                   + [{"key": k, "label": v, "param": False} for k, v in JOB_FIELDS.items()],
        "jobs_json": jobs_json(table, params),
        "groups": failure_groups(table, params).to_dict("records"),
        "figures": report_figures.metric_figures(metrics, params) if metrics is not None else [],
        "metrics_rows": 0 if metrics is None else len(metrics),
        "search": search,
        "failed_states": sorted(s for s in FINAL_STATES if _failed(s)),
    }


def _metrics(table: pd.DataFrame, metrics: pd.DataFrame | None) -> pd.DataFrame | None:
    """The given metrics, else those the job folders hold (none: no plots, not an error)."""
    if metrics is not None or not len(table):
        return metrics
    from .metrics import metrics as read_metrics

    with warnings.catch_warnings():   # jobs without a file (e.g. failed ones) are expected here
        warnings.simplefilter("ignore")
        try:
            return read_metrics(table)
        except (MetricsError, ExperimentError):
            return None


def summary(table: pd.DataFrame) -> dict[str, Any]:
    """Counts per state, runtimes, queues and submission times."""
    runtime = pd.to_numeric(table["runtime"], errors="coerce")
    submitted = table["submitted"].dropna() if "submitted" in table else pd.Series(dtype="datetime64[us]")
    return {
        "jobs": len(table),
        "counts": [{"state": s, "n": int(n), "failed": _failed(s)}
                   for s, n in table["job_state"].value_counts().items()],
        "total_runtime": duration(runtime.sum()),
        "mean_runtime": duration(runtime.mean()),
        "queues": ", ".join(sorted(table["queue"].dropna().astype(str).unique())) if "queue" in table else "",
        "first_submitted": _when(submitted.min()) if len(submitted) else "",
        "last_submitted": _when(submitted.max()) if len(submitted) else "",
    }


def _failed(state: str) -> bool:
    return state in FINAL_STATES and state != "COMPLETED"


def duration(seconds: float) -> str:
    """``1:02:03``, or ``4.2 s`` under a minute (empty when unknown)."""
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return ""
    if seconds < 60:
        return f"{seconds:.2g} s" if seconds < 10 else f"{seconds:.0f} s"
    whole = int(round(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def _when(stamp: Any) -> str:
    return pd.Timestamp(stamp).strftime("%Y-%m-%d %H:%M:%S")


def jobs_json(table: pd.DataFrame, params: list[str]) -> str:
    """The jobs as a JSON array of rows (params, JOB_FIELDS, stdout tail, stderr tail), safe to
    put inside a <script> element."""
    import orjson

    tail = max(TAIL_BOUNDS[0], min(TAIL_BOUNDS[1], TAIL_BUDGET // max(2 * len(table), 1)))
    columns = [_plain(table[c]) for c in [*params, *JOB_FIELDS]]
    runtime = len(params) + list(JOB_FIELDS).index("runtime")
    columns[runtime] = [None if v is None else round(v, 3) for v in columns[runtime]]
    columns += [[_tail(t, tail) for t in _plain(table[s])] for s in ("stdout", "stderr")]
    rows = list(zip(*columns)) if columns else []
    data = orjson.dumps(rows, default=str, option=orjson.OPT_SERIALIZE_NUMPY)
    return data.replace(b"<", b"\\u003c").decode()


def _plain(column: pd.Series) -> list:
    """Python values, missing ones as None (JSON null)."""
    values = column.astype(object)
    return values.where(column.notna(), None).tolist()


def _tail(text: str | None, chars: int) -> str:
    """The end of an output, from a line start when it is cut."""
    if not text or len(text) <= chars:
        return text or ""
    cut = text[-chars:]
    return "…" + cut[cut.find("\n") + 1:] if "\n" in cut[:-1] else "…" + cut


def search_section(work_dir: str, table: pd.DataFrame, metrics: pd.DataFrame | None) -> dict[str, Any] | None:
    """For a ps.optimize experiment: its objectives, trials, best trial(s) and history.

    ``metrics``: every job's metrics as read with the default pattern, if at hand; a search
    that reads the same files takes each trial's last row from it instead of reading again.
    """
    from .metrics import DEFAULT_PATTERN
    from .trials import best, settings, trial_rows, trials_table, with_metrics
    from .report_figures import history_figure

    stored = settings(Experiment.open(work_dir))
    if stored is None:
        return None
    if metrics is not None and stored["pattern"] == DEFAULT_PATTERN and "job_name" in metrics:
        columns = [c for c in metrics.columns if c not in table.columns or c == "job_name"]
        last = metrics[columns].drop_duplicates("job_name", keep="last").set_index("job_name")
        rows = {name: {k: v for k, v in row.items() if not (isinstance(v, float) and math.isnan(v))}
                for name, row in last.to_dict("index").items()}
        trials = with_metrics(trial_rows(table), rows, {}, stored["objectives"], stored["directions"])
    else:
        trials = trials_table(work_dir)
    section = {"objectives": stored["objectives"], "directions": stored["directions"],
               "n_trials": stored["n_trials"], "ran": len(trials), "best": [], "history": None}
    try:
        found = best(trials)
    except MetricsError:
        return section
    rows = found.to_frame().T if isinstance(found, pd.Series) else found
    shown = [c for c in rows.columns if c not in JOB_COLUMNS or c == "job_name"]
    section["best_columns"] = shown
    section["best"] = [[_cell(v) for v in row] for row in rows[shown].itertuples(index=False)]
    section["history"] = history_figure(trials)
    return section


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return "" if value is None else str(value)
