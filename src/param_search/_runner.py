"""A detached local runner: ``python -m param_search._runner WORK_DIR WORKERS``.

Started by ``ps.submit(..., use='local', wait=False, detach=True)`` in its own session, it runs
the experiment's pending local jobs and exits; the submitting process may end meanwhile.
"""
from __future__ import annotations

import sys

from .experiment import Experiment
from .queues.local import LocalRunner


def main(argv: list[str]) -> int:
    work_dir, workers = argv[0], int(argv[1])
    LocalRunner(Experiment.open(work_dir), workers, progress=False).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
