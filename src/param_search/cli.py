"""``param-search``: look after an experiment from the shell.

    param-search status  WORK_DIR [--all]     jobs per state, and the failed ones' errors
    param-search wait    WORK_DIR [--timeout S]
    param-search resubmit WORK_DIR [--states FAILED,TIMEOUT] [--max-attempts N]
    param-search cancel  WORK_DIR

Errors print their message (exit code 1); ``--debug`` shows the traceback too.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .errors import ParamSearchError
from .states import RESUBMIT_STATES

SHOWN = ["job_name", "job_state", "exit_code", "attempt", "restarts", "job_id", "reason", "error"]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except (ParamSearchError, TimeoutError, OSError) as exc:
        if args.debug:
            raise
        print(f"param-search: error: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="param-search", description=__doc__.split("\n\n")[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    status = commands.add_parser("status", help="refresh and summarize the jobs")
    status.add_argument("--all", action="store_true", help="list every job, not only unfinished")
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
    for sub in (status, wait, resubmit, cancel):
        sub.add_argument("work_dir", help="the experiment folder (ps.submit's work_dir)")
        sub.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def _summary(jobs) -> str:
    counts = jobs["job_state"].value_counts()
    return ", ".join(f"{n} {state}" for state, n in counts.items())


def _status(args) -> int:
    from . import api

    jobs = api.status(args.work_dir)
    print(f"{len(jobs)} jobs: {_summary(jobs)}")
    shown = jobs if args.all else jobs[jobs["job_state"] != "COMPLETED"]
    if len(shown):
        print(shown[SHOWN].to_string(index=False))
    return 0


def _wait(args) -> int:
    from . import api

    jobs = api.wait(args.work_dir, timeout=args.timeout)
    print(f"{len(jobs)} jobs: {_summary(jobs)}")
    return 0 if (jobs["job_state"] == "COMPLETED").all() else 3


def _resubmit(args) -> int:
    from . import api

    states = [s.strip().upper() for s in args.states.split(",") if s.strip()]
    jobs = api.resubmit(args.work_dir, states=states, max_attempts=args.max_attempts)
    print(f"{len(jobs)} jobs: {_summary(jobs)}")
    return 0


def _cancel(args) -> int:
    from . import api

    jobs = api.cancel(args.work_dir)
    print(f"{len(jobs)} jobs: {_summary(jobs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
