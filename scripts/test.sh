#!/usr/bin/env bash
# Run the whole test suite: makes .venv, starts the local Slurm cluster when it can
# (root with apt; required when CI=true), then pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh
if scripts/start-slurm.sh; then
    export PS_SLURM_AVAILABLE=1
elif [ "${CI:-}" = "true" ]; then
    echo "CI=true but the local Slurm cluster could not be started" >&2
    exit 1
else
    echo "Slurm tests will be skipped: the local Slurm cluster could not be started" >&2
fi
exec .venv/bin/python -m pytest -ra "$@"
