"""Benchmarks of adaptive search (ps.optimize): the controller's overhead per trial.

Every figure is a ratio against a baseline measured in the same run::

    python benchmarks/bench_optimize.py [--trials 1000] [--slurm]

* local: ps.optimize of N trivial trials (random sampler, 16 at a time: ask + render +
  submit + poll + tell per trial) against ps.submit of the same N jobs (16 workers), and
  the controller's own time per trial (the difference, over N);
* --slurm: scheduler status calls per controller refresh on the live Slurm cluster,
  whatever max_running (target: 1).
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import scipy.stats as st

import param_search as ps

from common import report, scratch_dir, seconds

TEMPLATE = "echo loss > {job_name}.metrics\necho {x} >> {job_name}.metrics\n"
WORKERS = 16


def bench_local(root: str, n: int) -> None:
    space = ps.ParamSpace(x=st.uniform(0, 1))
    grid = [{"trial": i, "x": i / n} for i in range(n)]

    def optimize(tag):
        return ps.optimize(TEMPLATE, "trial_{hash}", space, objective="loss", n_trials=n, max_running=WORKERS,
                           sampler="random", seed=0, work_dir=os.path.join(root, f"opt{tag}"),
                           poll_interval=0.05, progress=False)

    def submit(tag):
        return ps.submit(TEMPLATE, "trial_{hash}", grid, work_dir=os.path.join(root, f"sub{tag}"),
                         workers=WORKERS, progress=False)

    ours, base = [], []
    for tag in range(2):   # alternately, so that machine noise hits both alike
        t0 = time.perf_counter()
        trials = optimize(tag)
        ours.append(time.perf_counter() - t0)
        assert len(trials) == n and (trials.job_state == "COMPLETED").all()
        t0 = time.perf_counter()
        submit(tag)
        base.append(time.perf_counter() - t0)
    t_ours, t_base = min(ours), min(base)
    report(f"ps.optimize of {n} trivial trials ({WORKERS} at a time, random sampler)", t_ours, t_base,
           f"ps.submit of the same {n} jobs ({WORKERS} workers)", 1.5)
    per_trial = (t_ours - t_base) / n
    verdict = "OK" if per_trial <= 0.020 else "MISSED"
    print(f"controller overhead per trial at {n} trials: {seconds(per_trial)} (ps.optimize minus ps.submit, "
          f"over {n}; target <= 20 ms) {verdict}; all in: {seconds(t_ours / n)} per trial")


def bench_slurm(root: str) -> None:
    """Status calls (squeue) per refresh of the controller, for a few max_running values."""
    from param_search.optimize import Controller

    shims = tempfile.mkdtemp(prefix="shims", dir=root)
    log = os.path.join(shims, "calls.log")
    for name in ("sbatch", "squeue", "sacct"):
        real = shutil.which(name)
        with open(os.path.join(shims, name), "w") as f:
            f.write(f'#!/bin/bash\necho "{name} $*" >> {log}\nexec {real} "$@"\n')
        os.chmod(os.path.join(shims, name), 0o755)
    os.environ["PATH"] = f"{shims}:{os.environ['PATH']}"
    original = Controller.refresh
    for max_running in (2, 8):
        refreshes = 0

        def counted(self):
            nonlocal refreshes
            refreshes += 1
            return original(self)

        Controller.refresh = counted
        open(log, "w").close()
        template = "sleep 1\n" + TEMPLATE
        ps.optimize(template, "trial_{hash}", ps.ParamSpace(x=st.uniform(0, 1)), objective="loss",
                    n_trials=2 * max_running, max_running=max_running, sampler="random", seed=0, use="slurm",
                    work_dir=os.path.join(root, f"slurm{max_running}"), poll_interval=0.5, max_interval=2,
                    progress=False)
        Controller.refresh = original
        with open(log) as f:
            calls = [line.split()[0] for line in f]
        squeue = calls.count("squeue")
        verdict = "OK" if squeue <= refreshes else "MISSED"
        print(f"slurm, max_running={max_running}, {2 * max_running} trials: {squeue} squeue calls in {refreshes} "
              f"refreshes = {squeue / refreshes:.2f} per refresh (target <= 1) {verdict}; "
              f"{calls.count('sbatch')} sbatch, {calls.count('sacct')} sacct calls")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--slurm", action="store_true", help="also measure on the live Slurm cluster")
    args = parser.parse_args()
    with scratch_dir("bench_optimize") as root:
        bench_local(root, args.trials)
        if args.slurm:
            bench_slurm(root)


if __name__ == "__main__":
    main()
