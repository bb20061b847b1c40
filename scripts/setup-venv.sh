#!/usr/bin/env bash
# Create .venv (if needed) and install param_search into it the way users do: a wheel
# built from this tree (`pip install .`, not editable), with its test dependencies and the
# optional `search` and `report` extras (Optuna for ps.optimize, Jinja2 for ps.report).
# Run again after changing the code: the package is reinstalled every time.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    if ! "$PYTHON" -m venv .venv 2> /dev/null; then
        echo "python venv module missing; installing python3-venv" >&2
        apt-get -o DPkg::Lock::Timeout=300 update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq python3-venv > /dev/null
        rm -rf .venv && "$PYTHON" -m venv .venv
    fi
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip > /dev/null
    .venv/bin/python -m pip install -q '.[test,search,report]'   # Optuna for ps.optimize, Jinja2 for ps.report
    touch "$stamp"
fi
# The package itself, rebuilt from the current tree (dependencies are in place already).
.venv/bin/python -m pip install -q --no-deps --no-build-isolation --force-reinstall . 2>&1 |
    grep -v -i "warning: .*root user\|running pip as" >&2 || true
rm -rf build
