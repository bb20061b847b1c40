"""A detached search controller: ``python -m param_search._controller WORK_DIR``.

Started by ``ps.optimize(..., detach=True)`` in its own session, it runs the search whose call
that function saved in ``.param_search/optimize-call.pkl`` and exits when it is done; the
calling process (a notebook, an SSH session) may end meanwhile.
"""
from __future__ import annotations

import sys

from .optimize import run_detached


def main(argv: list[str]) -> int:
    run_detached(argv[0])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
