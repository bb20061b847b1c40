#!/usr/bin/env bash
# Run the whole test suite: makes .venv (the package installed as users install it), starts
# the local Slurm cluster and Grid Engine when it can (root with apt; required when
# CI=true), installs headless Chromium for the browser tests and PyTorch (CPU) and cmaes for
# the 'gp' and 'cmaes' samplers (both required when CI=true), then pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh
for scheduler in slurm sge; do
    if scripts/start-$scheduler.sh; then
        :
    elif [ "${CI:-}" = "true" ]; then
        echo "CI=true but the local $scheduler could not be started" >&2
        exit 1
    else
        echo "$scheduler tests will be skipped: scripts/start-$scheduler.sh failed" >&2
    fi
done
if ! scripts/install-samplers.sh; then
    if [ "${CI:-}" = "true" ]; then
        echo "CI=true but the samplers' packages (torch, cmaes) could not be installed" >&2
        exit 1
    fi
    echo "the 'gp' and 'cmaes' sampler tests will be skipped: scripts/install-samplers.sh failed" >&2
fi
if ! scripts/install-chromium.sh; then
    if [ "${CI:-}" = "true" ]; then
        echo "CI=true but Chromium could not be installed" >&2
        exit 1
    fi
    echo "browser tests will be skipped: scripts/install-chromium.sh failed" >&2
fi
exec .venv/bin/python -m pytest -ra "$@"
