"""Benchmarks of the core path (parameter space aside): set-up, metrics, local queue, import.

Every figure is a ratio against a baseline measured in the same run::

    python benchmarks/bench_core.py [--jobs 10000] [--local-jobs 1000]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import param_search as ps
from param_search.experiment import Experiment
from param_search.record import new_record
from param_search.render import render_jobs

from common import best_of, interleaved, report, scratch_dir, seconds

TEMPLATE = "#!/bin/bash\necho {a} {b} {c}\necho 'loss acc' > {job_name}.metrics\n"


def space_of(n: int) -> ps.ParamSpace:
    return ps.ParamSpace(a=range(n // 100), b=range(10), c=range(10))


def bench_setup(root: str, n: int) -> None:
    space = space_of(n)

    def ours(work_dir):
        jobs = render_jobs(TEMPLATE, "job_{a}_{b}_{c}", space, work_dir)
        exp = Experiment.create(work_dir)
        records = {}
        for job in jobs:
            exp.setup_job(job)
            records[job.job_name] = new_record(job)
        exp.save_records(records)

    def plain(work_dir):
        os.makedirs(work_dir)
        for p in space:
            name = f"job_{p['a']}_{p['b']}_{p['c']}"
            d = os.path.join(work_dir, name)
            os.mkdir(d)
            with open(os.path.join(d, "params.json"), "w") as f:
                f.write(json.dumps({"job_name": name, "params": p}))
            with open(os.path.join(d, "job.sh"), "w") as f:
                f.write(TEMPLATE.format(**p, job_name=name))

    counter = iter(range(100))
    fresh = lambda: os.path.join(root, f"setup{next(counter)}")  # noqa: E731
    t_ours, t_plain = interleaved(5, ours, plain, fresh)
    report(f"set up {n} jobs (render + folders + files + index)", t_ours, t_plain,
           "plain loop making the same folders and files", 1.5)


def bench_metrics(root: str, n: int) -> None:
    work_dir = os.path.join(root, "metrics")
    space = space_of(n)
    jobs = render_jobs(TEMPLATE, "job_{a}_{b}_{c}", space, work_dir)
    exp = Experiment.create(work_dir)
    records = {}
    for i, job in enumerate(jobs):
        exp.setup_job(job)
        records[job.job_name] = record = new_record(job)
        record.update(state="COMPLETED", attempt=1, queue="local", exit_code=0)
        with open(os.path.join(work_dir, job.job_name, f"{job.job_name}.metrics"), "w") as f:
            f.write(f"loss acc\n{i * 0.5} {i % 7}\n")
    exp.save_records(records)
    table = ps.load(work_dir)
    paths = [os.path.join(work_dir, name, f"{name}.metrics") for name in table.job_name]

    def raw():
        for path in paths:
            with open(path) as f:
                f.read()

    def read_csv_loop():
        import pandas as pd
        pd.concat([pd.read_csv(p, sep=r"\s+") for p in paths[: len(paths) // 10]])

    t_ours, t_raw = interleaved(7, lambda: ps.metrics(table), raw)
    report(f"ps.metrics over {n} jobs", t_ours, t_raw, "opening and reading the files", 2.0)
    t_csv = best_of(1, read_csv_loop) * 10
    print(f"  (for scale: a pd.read_csv loop + concat takes {t_csv:.2f} s = {t_csv / t_raw:.0f}x)")


def bench_persistence(root: str, n: int) -> None:
    """ps.load of an n-job experiment, and re-running its unchanged ps.submit (nothing to do)."""
    work_dir = os.path.join(root, "persist")
    space = space_of(n)
    ps.submit(TEMPLATE, "job_{a}_{b}_{c}", space, work_dir=work_dir, wait=False)
    exp = Experiment.open(work_dir)
    records = exp.load_records()
    for r in records.values():   # as if every job had run: final states, logs in the index
        r.update(state="COMPLETED", exit_code=0, started=1.7e9, ended=1.7e9 + 5, owner=None,
                 stdout=f"{r['params']}\n", stderr="", error="", job_id="123")
    exp.save_records(records)
    index = exp.index_path

    def raw():
        with open(index, "rb") as f:
            f.read()

    t_load, t_raw = interleaved(21, lambda: ps.load(work_dir), raw)   # ~1 ms each: many rounds
    print(f"ps.load of {n} jobs ({os.path.getsize(index) / 1e6:.1f} MB index): {seconds(t_load)} "
          f"(target <= 3 ms) {'OK' if t_load <= 0.003 else 'MISSED'}; reading the index's bytes raw "
          f"{seconds(t_raw)} = {t_load / t_raw:.2f}x (the index is read into private memory, not mapped)")
    t0 = time.perf_counter()
    jobs = ps.submit(TEMPLATE, "job_{a}_{b}_{c}", space, work_dir=work_dir, wait=False)
    t_again = time.perf_counter() - t0
    assert set(jobs.job_state) == {"COMPLETED"}
    print(f"re-running the unchanged ps.submit of {n} jobs: {t_again:.3f} s (target <= 1 s) "
          f"{'OK' if t_again <= 1 else 'MISSED'}")


def bench_local_queue(root: str, n: int) -> None:
    """Run phase only: both sides start from the same job folders already set up."""
    space = ps.ParamSpace(i=range(n))
    counter = iter(range(100))

    def setup():
        work_dir = os.path.join(root, f"local{next(counter)}")
        ps.submit("true\n", "job_{i}", space, work_dir=work_dir, wait=False)
        return work_dir

    def ours(work_dir):
        jobs = ps.wait(work_dir, workers=2, progress=False)
        assert set(jobs.job_state) == {"COMPLETED"}

    def xargs(work_dir):
        scripts = "\n".join(os.path.join(work_dir, f"job_{i}", "job.sh") for i in range(n))
        subprocess.run(["xargs", "-P", "2", "-n", "1", "bash"], input=scripts, text=True, check=True)

    t_ours, t_xargs = interleaved(3, ours, xargs, setup)
    report(f"local queue runs {n} trivial jobs, 2 workers (ps.wait)", t_ours, t_xargs,
           "xargs -P 2 -n 1 bash", 1.3)


def bench_import() -> None:
    def importer(module):
        return lambda: subprocess.run([sys.executable, "-c", f"import {module}"], check=True)

    ours, pandas = interleaved(15, importer("param_search"), importer("pandas"))
    extra = ours - pandas
    print(f"import param_search: {ours:.3f} s vs import pandas {pandas:.3f} s = +{extra:.3f} s "
          f"(target <= +0.1 s) {'OK' if extra <= 0.1 else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--local-jobs", type=int, default=1000)
    args = parser.parse_args()
    with scratch_dir("ps-bench-") as root:
        bench_setup(root, args.jobs)
        bench_metrics(root, args.jobs)
        bench_persistence(root, args.jobs)
        bench_local_queue(root, args.local_jobs)
        bench_import()


if __name__ == "__main__":
    main()
