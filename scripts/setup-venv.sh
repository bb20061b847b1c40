#!/usr/bin/env bash
# Create .venv (if needed) and install param_search with its test dependencies into it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    if ! "$PYTHON" -m venv .venv 2> /dev/null; then
        echo "python venv module missing; installing python3-venv" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv > /dev/null
        rm -rf .venv && "$PYTHON" -m venv .venv
    fi
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip > /dev/null
    .venv/bin/python -m pip install -q -e '.[test]'
    touch "$stamp"
fi
