"""Benchmark of ps.report: the HTML page of a 10,000-job sweep (jobs table, failure groups,
metrics figures), against writing the same jobs table with pandas' ``to_html``, measured in
the same run::

    python benchmarks/bench_report.py [--jobs 10000]
"""
from __future__ import annotations

import argparse
import os

import matplotlib
import numpy as np
import pandas as pd

from param_search.experiment import Experiment
from param_search.report import report
from param_search.table import JOB_COLUMNS

from common import interleaved, report as report_line, scratch_dir, seconds

#: The issue's target for 10,000 jobs, in seconds.
TARGET_SECONDS = 3.0
SIZE_LIMIT = 10_000_000


def sweep(work_dir: str, n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A made-up finished sweep of ``n`` jobs over two parameters, a tenth failed, with
    outputs of a few hundred lines, and one metrics row per job."""
    Experiment.create(work_dir)
    rng = np.random.default_rng(0)
    a, b = np.arange(n) // 100, np.arange(n) % 100
    failed = rng.random(n) < 0.1
    names = [f"job_{i}_{j}" for i, j in zip(a, b)]
    table = pd.DataFrame({"a": a, "b": b, **{c: None for c in JOB_COLUMNS}}).assign(
        job_name=names, job_dir=[os.path.join(work_dir, name) for name in names],
        job_state=np.where(failed, "FAILED", "COMPLETED"), exit_code=np.where(failed, 1, 0),
        runtime=rng.uniform(1, 100, n), error=np.where(failed, "RuntimeError: diverged", None),
        stdout=["epoch 1 loss 0.5\n" * 200] * n, stderr=["warning: slow\n" * 100] * n, attempt=1,
        queue="local", submitted=pd.Timestamp("2026-01-01"))
    table.attrs["work_dir"] = work_dir
    metrics = pd.DataFrame({"a": a, "b": b, "job_name": names, "loss": rng.random(n), "acc": rng.random(n)})
    return table, metrics


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10_000)
    n = parser.parse_args().jobs
    matplotlib.use("Agg")
    with scratch_dir("bench-report-") as root:
        table, metrics = sweep(os.path.join(root, "sweep"), n)
        ours_path, base_path = os.path.join(root, "report.html"), os.path.join(root, "table.html")
        report(table, ours_path, metrics=metrics)   # warm-up: imports, fonts
        t_ours, t_base = interleaved(3, lambda: report(table, ours_path, metrics=metrics),
                                     lambda: table.to_html(base_path))
        size = os.path.getsize(ours_path)
        report_line(f"report of {n} jobs (jobs table + failure groups + {metrics.shape[1] - 3}x2 "
                    "metrics plots + heat-maps)", t_ours, t_base, "pandas to_html of the jobs table", 1.5,
                    f"; absolute {seconds(t_ours)} (target <= {TARGET_SECONDS} s) "
                    f"{'OK' if t_ours <= TARGET_SECONDS else 'MISSED'}; file {size / 1e6:.1f} MB "
                    f"(to_html {os.path.getsize(base_path) / 1e6:.1f} MB; limit {SIZE_LIMIT / 1e6:.0f} MB) "
                    f"{'OK' if size < SIZE_LIMIT else 'MISSED'}")


if __name__ == "__main__":
    main()
