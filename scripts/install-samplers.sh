#!/usr/bin/env bash
# Install into .venv what ps.optimize's 'gp' and 'cmaes' samplers need beyond Optuna: a CPU
# build of PyTorch (for Optuna's GPSampler) and cmaes. Used by the tests only: users add
# them with `pip install torch cmaes` when they want these samplers.
set -euo pipefail
cd "$(dirname "$0")/.."
if .venv/bin/python -c "import torch, cmaes" 2> /dev/null; then
    exit 0
fi
# torch 2.13.0 is pinned: a CPU build of that release lies beside the package index on the
# machines this project's CI runs on; a bare `torch` would pull a CUDA build of several GB.
.venv/bin/python -m pip install -q "torch==${PS_TORCH_VERSION:-2.13.0}" "cmaes>=0.10" 2>&1 |
    grep -v -i "warning: location\|running pip as\|root user" >&2 || true
.venv/bin/python -c "import torch, cmaes"
