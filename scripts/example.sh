#!/usr/bin/env bash
# Run the original README's example sweep (16 jobs) on this machine's local queue:
# prints the metrics table and saves the plot to example-run/metrics.png.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh
rm -rf example-run && mkdir example-run && cd example-run
MPLBACKEND=Agg ../.venv/bin/python ../examples/seed_sweep.py local
echo "plot: $(pwd)/metrics.png"
