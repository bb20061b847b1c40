"""Grid Engine benchmarks against raw SGE commands timed in the same run (needs a live SGE).

    python benchmarks/bench_sge.py [--jobs 2000] [--small 100]

The 2,000-job figures submit held jobs (``qsub -h``) and cancel them afterwards with
ps.cancel, so the cluster is not kept busy; the 100-job figure runs its jobs to the end.
Scheduler calls are counted by logging shims first on PATH (as tests/conftest.py does).
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import subprocess
import time
from collections.abc import Iterator

import pandas as pd

import param_search as ps

from common import interleaved, report, scratch_dir, seconds

SCRIPT = "#!/bin/bash\ntrue\n"


def run(argv: list[str]) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def max_aj_tasks() -> int:
    """The largest array job, from ``qconf -sconf`` (SGE's default 75000 when unset)."""
    match = re.search(r"^max_aj_tasks\s+(\d+)", run(["qconf", "-sconf"]), re.M)
    return int(match.group(1)) if match else 75000


def in_qstat(numbers: set[str]) -> set[str]:
    """Those of the job numbers that qstat still lists."""
    return {line.split()[0] for line in run(["qstat"]).splitlines()[2:] if line.split()} & numbers


def numbers_of(jobs: pd.DataFrame) -> set[str]:
    return set(jobs.job_id.str.split(".").str[0])


@contextlib.contextmanager
def logging_shims(root: str, names: tuple[str, ...]) -> Iterator[str]:
    """Shims of ``names`` first on PATH, each logging its argv to the log file it yields."""
    shims = os.path.join(root, "shims")
    os.makedirs(shims, exist_ok=True)
    log = os.path.join(shims, "calls.log")
    for name in names:
        with open(os.path.join(shims, name), "w") as f:
            f.write(f'#!/bin/bash\necho "{name} $*" >> {log}\nexec /usr/bin/{name} "$@"\n')
        os.chmod(os.path.join(shims, name), 0o755)
    path = os.environ["PATH"]
    os.environ["PATH"] = f"{shims}:{path}"
    try:
        yield log
    finally:
        os.environ["PATH"] = path


def read_log(log: str, name: str) -> list[str]:
    return [ln for ln in open(log).read().splitlines() if ln.split()[0] == name] if os.path.exists(log) else []


def plain_setup_and_raw_qsub(root: str, n: int, hold: bool) -> tuple[float, set[str]]:
    """The baseline: a plain loop writing the job folders, then raw ``qsub -t`` calls of a driver,
    chunked by max_aj_tasks (read each time, as ps.submit with use='sge' does)."""
    work_dir = os.path.join(root, f"raw{time.time_ns()}")
    t0 = time.perf_counter()
    max_aj = max_aj_tasks()
    os.makedirs(work_dir)
    for i in range(n):
        job_dir = os.path.join(work_dir, f"job_{i}")
        os.mkdir(job_dir)
        with open(os.path.join(job_dir, "params.json"), "w") as f:
            f.write(f'{{"i": {i}}}')
        with open(os.path.join(job_dir, "job.sh"), "w") as f:
            f.write(SCRIPT)
    ids = set()
    for offset in range(0, n, max_aj):
        driver = os.path.join(work_dir, f"driver{offset}.sh")
        with open(driver, "w") as f:
            f.write(f"#!/bin/bash\ncd {work_dir}/job_$((SGE_TASK_ID - 1 + {offset})) && bash job.sh\n")
        argv = ["qsub", "-terse", *(["-h"] if hold else []), "-t", f"1-{min(max_aj, n - offset)}",
                "-o", "/dev/null", "-j", "y", "-S", "/bin/bash", driver]
        ids.add(run(argv).strip().split(".")[0])
    return time.perf_counter() - t0, ids


def cancel_all(jobs: pd.DataFrame, timeout: float = 60) -> int:
    """ps.cancel the jobs; returns how many of their job numbers qstat still lists after ``timeout``."""
    ps.cancel(jobs)
    deadline, left = time.time() + timeout, in_qstat(numbers_of(jobs))
    while left and time.time() < deadline:
        time.sleep(0.5)
        left = in_qstat(left)
    return len(left)


def bench_submit(root: str, n: int, rounds: int = 3) -> None:
    """Alternates the raw baseline and ps.submit of held jobs ``rounds`` times (fresh folders
    each time), keeps the best of each, then benchmarks ps.status on the last submission."""
    max_aj = max_aj_tasks()
    t_raw, t_ours, qsubs = [], [], []
    with logging_shims(root, ("qsub",)) as log:
        for k in range(rounds):
            seconds_raw, raw_ids = plain_setup_and_raw_qsub(root, n, hold=True)
            t_raw.append(seconds_raw)
            run(["qdel", *raw_ids])
            before = len(read_log(log, "qsub"))
            t0 = time.perf_counter()
            jobs = ps.submit(SCRIPT, "job_{i}", ps.ParamSpace(i=range(n)), use="sge", extra_args=["-h"],
                             work_dir=os.path.join(root, f"ours{k}"), progress=False)
            t_ours.append(time.perf_counter() - t0)
            qsubs.append(len(read_log(log, "qsub")) - before)
            if k < rounds - 1:
                cancel_all(jobs)
    want = math.ceil(n / max_aj)
    report(f"ps.submit of {n} held jobs (set-up + submit, best of {rounds})", min(t_ours), min(t_raw),
           "plain loop writing the folders + raw qsub -terse -h -t", 1.3,
           f"; qsub calls per submit {qsubs} (max_aj_tasks={max_aj}, ceil = {want}) "
           f"{'OK' if set(qsubs) == {want} else 'MISSED'}")
    try:
        bench_status(root, jobs)
    finally:
        left = cancel_all(jobs)
        print(f"  after ps.cancel: {left} of {len(numbers_of(jobs))} arrays left in qstat "
              f"{'OK' if left == 0 else 'MISSED'}")


def bench_status(root: str, jobs: pd.DataFrame, rounds: int = 5) -> None:
    """ps.status of every held job vs one raw ``qstat -xml``; scheduler calls counted by shims."""
    names = ("qstat", "qacct", "qconf", "qsub", "qdel")
    with logging_shims(os.path.join(root, "status"), names) as log:
        t0 = time.perf_counter()
        table = ps.status(jobs)
        t_first = time.perf_counter() - t0
        calls = [call for name in names for call in read_log(log, name)]
    t_ours, t_raw = interleaved(rounds, lambda: ps.status(jobs), lambda: run(["qstat", "-xml"]))
    states = table.job_state.value_counts().to_dict()
    report(f"ps.status of {len(table)} held jobs (best of {rounds} alternations)", t_ours, t_raw,
           "one raw qstat -xml", 2.0, f"; states {states}")
    print(f"  scheduler calls per ps.status: {len(calls)} {calls} (target 1) "
          f"{'OK' if len(calls) <= 1 else 'MISSED'}; the first ps.status: {seconds(t_first)}")


def bench_small_run(root: str, n: int, rounds: int = 3) -> None:
    """n trivial jobs from submit to the end of wait, vs raw ``qsub -t`` + a 0.5 s qstat loop;
    the two alternate ``rounds`` times and the best of each is kept."""
    t_ours, t_raw = [], []
    for k in range(rounds):
        t0 = time.perf_counter()
        _, ids = plain_setup_and_raw_qsub(root, n, hold=False)
        while in_qstat(ids):
            time.sleep(0.5)
        t_raw.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        jobs = ps.submit(SCRIPT, "job_{i}", ps.ParamSpace(i=range(n)), use="sge",
                         work_dir=os.path.join(root, f"small{k}"), progress=False)
        jobs = ps.wait(jobs, poll_interval=0.5, max_interval=2, progress=False)
        t_ours.append(time.perf_counter() - t0)
        assert set(jobs.job_state) == {"COMPLETED"}, jobs.job_state.value_counts()
    report(f"{n} trivial jobs, ps.submit to the end of ps.wait (best of {rounds})", min(t_ours), min(t_raw),
           "raw qsub -terse -t + qstat polling loop (0.5 s)", 1.15,
           f"; all runs: ours {[round(t, 2) for t in t_ours]}, raw {[round(t, 2) for t in t_raw]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=2_000)
    parser.add_argument("--small", type=int, default=100)
    args = parser.parse_args()
    with scratch_dir("ps-bench-sge-") as root:
        bench_submit(root, args.jobs)
        if args.small:
            bench_small_run(root, args.small)


if __name__ == "__main__":
    main()
