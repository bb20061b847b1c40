"""param-search: look after parameter sweeps from the shell.

examples:
  param-search status sweep                  counts, unfinished jobs, failures grouped by error
  param-search status sweep --all --format csv > jobs.csv
  param-search wait sweep --timeout 3600
  param-search resubmit sweep --states FAILED,TIMEOUT --max-attempts 3
  param-search cancel sweep
  param-search watch sweep --detach          keep the sweep going (retry, top up) in the background
  param-search metrics sweep -o metrics.csv
  param-search plot sweep -x lr -y loss -o loss.png
  param-search report sweep -o sweep.html   one HTML page to open or mail: summary, jobs, failures, plots
  param-search ls ~/experiments              every experiment below a folder, counts per state

Errors print their message (exit code 1); --debug shows the traceback too.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence

from .errors import ParamSearchError
from .states import RESUBMIT_STATES
from .textview import counts_line



def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    formatting, warnings.formatwarning = warnings.formatwarning, _warning_line
    try:
        return args.run(args)
    except BrokenPipeError:   # e.g. `param-search status DIR --format csv | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ParamSearchError, TimeoutError, OSError) as exc:
        if args.debug:
            raise
        print(f"param-search: error: {exc}", file=sys.stderr)
        return 1
    finally:
        warnings.formatwarning = formatting


def _warning_line(message, *rest, **kwargs) -> str:
    return f"param-search: warning: {message}\n"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="param-search", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    status = commands.add_parser("status", help="refresh and summarize the jobs")
    status.add_argument("--all", action="store_true", help="list every job, not only unfinished")
    status.add_argument("--format", choices=["table", "csv", "json"], default="table",
                        help="table (default) for people; csv or json (every job, every column) for scripts")
    status.add_argument("--apply", action="store_true", help="also apply the stored retry policy once")
    status.set_defaults(run=_status)
    wait = commands.add_parser("wait", help="block until every job ended")
    wait.add_argument("--timeout", type=float, default=None)
    wait.set_defaults(run=_wait)
    resubmit = commands.add_parser("resubmit", help="send ended jobs again")
    resubmit.add_argument("--states", default=",".join(RESUBMIT_STATES))
    resubmit.add_argument("--max-attempts", type=int, default=None)
    resubmit.set_defaults(run=_resubmit)
    cancel = commands.add_parser("cancel", help="cancel pending and running jobs")
    cancel.set_defaults(run=_cancel)
    watch = commands.add_parser("watch", help="keep the sweep going: apply its retry policy, send "
                                "held-back jobs, show a live view; exits when every job is final")
    mode = watch.add_mutually_exclusive_group()
    mode.add_argument("--detach", action="store_true", help="run in the background (log: .param_search/watch.log)")
    mode.add_argument("--stop", action="store_true", help="stop the background supervisor (never the jobs)")
    watch.add_argument("--interval", type=float, default=5.0, help="seconds between refreshes at first")
    watch.set_defaults(run=_watch)
    metrics = commands.add_parser("metrics", help="read every job's metrics file into one table")
    metrics.add_argument("--pattern", default=None, help="metrics file name in each job folder "
                         "(default {job_name}.metrics)")
    metrics.add_argument("-o", "--output", default=None, help="save to a .csv or .json file instead of printing")
    metrics.set_defaults(run=_metrics)
    plot = commands.add_parser("plot", help="plot metrics against parameters into an image file")
    plot.add_argument("-x", required=True, action="append", help="parameter(s) on the x axis (repeatable)")
    plot.add_argument("-y", required=True, action="append", help="metric(s) on the y axis (repeatable)")
    plot.add_argument("--pattern", default=None, help="metrics file name, as for metrics")
    plot.add_argument("-o", "--output", required=True, help="the image file (.png, .pdf, .svg)")
    plot.set_defaults(run=_plot)
    report = commands.add_parser("report", help="write one self-contained HTML page about the sweep")
    report.add_argument("-o", "--output", default=None,
                        help="the HTML file (default: report.html in the experiment folder)")
    report.set_defaults(run=_report)
    for sub in (status, wait, resubmit, cancel, watch, metrics, plot, report):
        sub.add_argument("work_dir", help="the experiment folder (ps.submit's work_dir)")
    ls = commands.add_parser("ls", help="list the experiments under a folder with their counts per state")
    ls.add_argument("folder", nargs="?", default=".", help="where to look (default: here)")
    ls.set_defaults(run=_ls)
    for sub in (status, wait, resubmit, cancel, watch, metrics, plot, report, ls):
        sub.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def _status(args) -> int:
    from . import api, textview

    jobs = api.status(args.work_dir, apply=args.apply)
    if args.format != "table":
        _export(jobs, args.format, sys.stdout)
        return 0
    print(textview.counts_line(jobs))
    search = _search_line(jobs)
    if search:
        print(search)
    shown = jobs if args.all else jobs[jobs["job_state"] != "COMPLETED"]
    if len(shown):
        print(textview.jobs_text(shown, colour=textview.colour_wanted(sys.stdout)))
    groups = textview.failure_groups(jobs, _params(jobs))
    if len(groups):
        print("\nfailures by error line:")
        print(textview.failures_text(groups))
    return 0


def _params(jobs) -> list[str]:
    """The parameter columns (the table puts them before job_name)."""
    return list(jobs.columns[: list(jobs.columns).index("job_name")])


def _export(table, kind: str, out) -> None:
    if kind == "csv":
        table.to_csv(out, index=False)
    else:
        out.write(table.to_json(orient="records", date_format="iso", default_handler=str))
        out.write("\n")


def _metrics(args) -> int:
    from . import api
    from .metrics import metrics as read_metrics

    table = read_metrics(api.load(args.work_dir), **_pattern(args))
    if args.output is None:
        print(table.to_string(index=False))
        return 0
    kind = os.path.splitext(args.output)[1].lower().lstrip(".")
    if kind not in ("csv", "json"):
        from .errors import OptionError

        raise OptionError(f"cannot save metrics as {args.output!r}: name a .csv or .json file")
    with open(args.output, "w") as f:
        _export(table, kind, f)
    print(f"{len(table)} rows, {len(table.columns)} columns -> {args.output}")
    return 0


def _pattern(args) -> dict:
    return {} if args.pattern is None else {"pattern": args.pattern}


def _plot(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from . import api
    from .metrics import metrics as read_metrics
    from .plot import plot as draw

    fig = draw(read_metrics(api.load(args.work_dir), **_pattern(args)), x=args.x, y=args.y)
    fig.savefig(args.output)
    print(f"{len(args.y)} x {len(args.x)} panel(s) -> {args.output}")
    return 0


def _report(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from .report import report

    print(f"report -> {report(args.work_dir, args.output)}")
    return 0


def _ls(args) -> int:
    from . import api, textview

    found = list(_experiments(args.folder))
    for work_dir in found:
        try:
            print(f"{work_dir}: {textview.counts_line(api.load(work_dir))}")
        except ParamSearchError as exc:
            print(f"{work_dir}: unreadable ({exc})")
    if not found:
        print(f"no experiments under {args.folder}")
    return 0


def _experiments(folder: str, depth: int = 4):
    """Folders under ``folder`` holding an experiment (not looking inside one)."""
    if os.path.isfile(os.path.join(folder, ".param_search", "experiment.json")):
        yield folder
        return
    if depth == 0:
        return
    try:
        entries = [e for e in os.scandir(folder) if e.is_dir() and not e.name.startswith(".")]
    except OSError:
        return
    for entry in sorted(entries, key=lambda e: e.name):
        yield from _experiments(entry.path, depth - 1)


def _search_line(jobs) -> str | None:
    """Progress of the experiment's ps.optimize search and its best trial so far, if it has
    one (``jobs``: what ps.status gave, which holds the trials' metrics then)."""
    from .errors import MetricsError
    from .experiment import Experiment
    from .table import work_dir_of
    from .trials import best as best_of, settings, trial_rows

    stored = settings(Experiment.open(work_dir_of(jobs)))
    if stored is None:
        return None
    trials = trial_rows(jobs)
    line = f"search: {len(trials)} of {stored['n_trials']} trials"
    try:
        best = best_of(trials)
    except MetricsError:
        return line + ", none with a value yet"
    if len(stored["objectives"]) > 1:
        return line + f", {len(best)} on the Pareto front of {', '.join(stored['objectives'])}"
    objective = stored["objectives"][0]
    return line + f", best {objective} {best[objective]:.6g} (trial {int(best['trial'])}, {best['job_name']})"


def _wait(args) -> int:
    from . import api

    jobs = api.wait(args.work_dir, timeout=args.timeout)
    print(counts_line(jobs))
    return 0 if (jobs["job_state"] == "COMPLETED").all() else 3


def _resubmit(args) -> int:
    from . import api

    states = [s.strip().upper() for s in args.states.split(",") if s.strip()]
    jobs = api.resubmit(args.work_dir, states=states, max_attempts=args.max_attempts)
    print(counts_line(jobs))
    return 0


def _cancel(args) -> int:
    from . import api

    jobs = api.cancel(args.work_dir)
    print(counts_line(jobs))
    return 0


def _watch(args) -> int:
    from . import watch

    if args.stop:
        pid = watch.stop(args.work_dir)
        print(f"stopped the supervisor (pid {pid}); the jobs go on" if pid else "no supervisor was running")
        return 0
    if args.detach:
        pid = watch.detach(args.work_dir, args.interval)
        print(f"supervisor running in the background (pid {pid}); stop it with: "
              f"param-search watch --stop {args.work_dir}")
        return 0
    try:
        jobs = watch.watch(args.work_dir, poll_interval=args.interval)
    except KeyboardInterrupt:
        print("param-search: stopped watching; the jobs go on", file=sys.stderr)
        return 130
    print(counts_line(jobs))
    return 0 if (jobs["job_state"] == "COMPLETED").all() else 3


if __name__ == "__main__":
    sys.exit(main())
