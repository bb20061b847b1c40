"""Slurm benchmarks against raw Slurm commands timed in the same run (needs a live cluster).

    python benchmarks/bench_slurm.py [--jobs 10000] [--small 200]

The 10,000-job figures submit held jobs (``--hold``) and cancel them afterwards, so the
cluster is not kept busy; the 200-job figure runs its jobs to the end.
"""
from __future__ import annotations

import argparse
import io
import math
import os
import shutil
import subprocess
import time

import param_search as ps
from param_search.dispatch import apply_policy, store_policy
from param_search.experiment import Experiment
from param_search.queues.slurm import SlurmQueue
from param_search.watch import View, refreshed

from common import interleaved, report, scratch_dir, seconds

SCRIPT = "#!/bin/bash\ntrue\n"


def run(argv: list[str]) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def plain_setup_and_raw_sbatch(root: str, n: int, max_array: int, hold: bool) -> tuple[float, list[str]]:
    """The baseline: a plain loop writing the job folders, then raw sbatch --array calls."""
    work_dir = os.path.join(root, f"raw{time.time_ns()}")
    t0 = time.perf_counter()
    os.makedirs(work_dir)
    for i in range(n):
        job_dir = os.path.join(work_dir, f"job_{i}")
        os.mkdir(job_dir)
        with open(os.path.join(job_dir, "params.json"), "w") as f:
            f.write(f'{{"i": {i}}}')
        with open(os.path.join(job_dir, "job.sh"), "w") as f:
            f.write(SCRIPT)
    ids = []
    for offset in range(0, n, max_array):
        size = min(max_array, n - offset)
        driver = os.path.join(work_dir, f"driver{offset}.sh")   # (--export=OFFSET slows Slurm 4x)
        with open(driver, "w") as f:
            f.write(f"#!/bin/bash\ncd {work_dir}/job_$((SLURM_ARRAY_TASK_ID + {offset})) && bash job.sh\n")
        argv = ["sbatch", "--parsable", f"--array=0-{size - 1}", "-o", "/dev/null",
                *(["--hold"] if hold else []), driver]
        ids.append(run(argv).strip().split(";")[0])
    return time.perf_counter() - t0, ids


def bench_submit(root: str, n: int, rounds: int = 3) -> None:
    """Alternates the raw baseline and ps.submit ``rounds`` times (fresh folders each time)
    and keeps the best of each: file creation on this disk varies 2x from run to run."""
    queue = SlurmQueue(extra_args=["--hold"])
    max_array = queue.max_array_size()
    t_raw, t_ours = [], []
    for k in range(rounds):
        seconds, raw_ids = plain_setup_and_raw_sbatch(root, n, max_array, hold=True)
        t_raw.append(seconds)
        run(["scancel", *raw_ids])
        work_dir = os.path.join(root, f"ours{k}")
        t0 = time.perf_counter()
        jobs = ps.submit(SCRIPT, "job_{i}", ps.ParamSpace(i=range(n)), use=queue, work_dir=work_dir,
                         progress=False)
        t_ours.append(time.perf_counter() - t0)
        if k < rounds - 1:
            run(["scancel", *sorted(set(jobs.job_id.str.split("_").str[0]))])
    n_arrays = jobs.job_id.str.split("_").str[0].nunique()
    report(f"ps.submit of {n} jobs (set-up + submit, best of {rounds})", min(t_ours), min(t_raw),
           "plain loop writing the folders + raw sbatch --array", 1.3,
           f"; {n_arrays} sbatch calls (MaxArraySize={max_array}, ceil = {math.ceil(n / max_array)})")

    # submit alone, on jobs already set up
    exp = Experiment.open(work_dir)
    records = list(exp.load_records().values())
    for r in records:
        r.update(attempt=r["attempt"] + 1, batch=f"ps-bench-{time.time_ns()}", state="SUBMITTING")
    t0 = time.perf_counter()
    SlurmQueue(extra_args=["--hold"], max_array_size=max_array).submit(exp, records, [SCRIPT] * n)
    t_submit = time.perf_counter() - t0
    again_ids = sorted({r["job_id"].split("_")[0] for r in records})
    print(f"submitting {n} set-up jobs: {t_submit:.3f} s in {len(again_ids)} sbatch calls "
          f"(target <= 0.5 s and <= {math.ceil(n / max_array)} calls) "
          f"{'OK' if t_submit <= 0.5 and len(again_ids) <= math.ceil(n / max_array) else 'MISSED'}")
    run(["scancel", *again_ids])
    bench_status(jobs, root)


def bench_status(jobs, root: str, rounds: int = 5) -> None:
    """ps.status of every held job, vs the raw scheduler calls it makes.

    The first call records every job's pending reason (the index is rewritten); later
    ones find nothing new. Both are shown; the ratio is the best of ``rounds`` alternations.
    """
    shims = os.path.join(root, "shims")
    os.makedirs(shims, exist_ok=True)
    log = os.path.join(root, "status.log")
    for name in ("squeue", "sacct"):
        real = shutil.which(name)
        with open(os.path.join(shims, name), "w") as f:
            f.write(f'#!/bin/bash\nprintf "%s\\0" {real} "$@" >> {log}; echo >> {log}\nexec {real} "$@"\n')
        os.chmod(os.path.join(shims, name), 0o755)
    path = os.environ["PATH"]
    os.environ["PATH"] = f"{shims}:{path}"
    try:
        t0 = time.perf_counter()
        table = ps.status(jobs)
        t_first = time.perf_counter() - t0
    finally:
        os.environ["PATH"] = path
    calls = [line.rstrip("\0").split("\0") for line in open(log).read().splitlines() if line]

    def raw():
        for argv in calls:
            subprocess.run(argv, capture_output=True, text=True)

    t_ours, t_raw = interleaved(rounds, lambda: ps.status(jobs), raw)
    states = table.job_state.value_counts().to_dict()
    report(f"ps.status of {len(table)} jobs ({len(calls)} scheduler calls, target <= 2; best of {rounds})",
           t_ours, t_raw, "the same raw calls", 2.0, f"; states {states}")
    print(f"  the first ps.status (records every pending reason): {seconds(t_first)} = "
          f"{t_first / t_raw:.2f}x the raw calls")
    bench_supervisor(table, shims, log, rounds)
    run(["scancel", *sorted(set(table.job_id.str.split("_").str[0]))])


def bench_supervisor(jobs, shims: str, log: str, rounds: int) -> None:
    """One refresh of ``param-search watch`` (refresh, retry policy and top-up decisions, the
    live view) over the whole experiment, vs one raw squeue call of its jobs."""
    exp = Experiment.open(jobs.attrs["work_dir"])
    store_policy(exp, ps.Retry(on={"TIMEOUT": {"time": 2.0}, "NODE_FAIL": {}}), None)
    view = View(io.StringIO(), tty=True)

    def tick() -> None:
        table = refreshed(exp)
        apply_policy(exp, table)
        view.show(table)

    open(log, "w").close()
    path = os.environ["PATH"]
    os.environ["PATH"] = f"{shims}:{path}"
    try:
        tick()
    finally:
        os.environ["PATH"] = path
    calls = [line.rstrip("\0").split("\0") for line in open(log).read().splitlines() if line]
    squeue = [argv for argv in calls if argv[0].endswith("squeue")]

    def raw():
        subprocess.run(squeue[0], capture_output=True, text=True)

    t_ours, t_raw = interleaved(rounds, tick, raw)
    cpu = min(_cpu(tick) for _ in range(rounds))
    report(f"supervisor refresh of {len(jobs)} jobs ({len(calls)} scheduler call(s) per refresh, target 1; "
           f"this process's CPU {seconds(cpu)}; best of {rounds})", t_ours, t_raw, "one raw squeue call", 2.0)


def _cpu(fn) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def bench_small_run(root: str, n: int, rounds: int = 2) -> None:
    """n trivial jobs from submit to the end of wait, vs raw sbatch --array + a polling loop.

    Alternates the two ``rounds`` times and keeps the best of each, so a busy cluster
    (e.g. still purging the 10,000 cancelled jobs) hits both alike.
    """
    t_ours, t_raw = [], []
    for k in range(rounds):
        t0 = time.perf_counter()
        _, ids = plain_setup_and_raw_sbatch(root, n, 10**9, hold=False)
        while run(["squeue", "--noheader", "--array", f"--jobs={','.join(ids)}", "--format=%i"]).strip():
            time.sleep(0.5)
        t_raw.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        jobs = ps.submit(SCRIPT, "job_{i}", ps.ParamSpace(i=range(n)), use="slurm",
                         work_dir=os.path.join(root, f"small{k}"), progress=False)
        jobs = ps.wait(jobs, progress=False, poll_interval=0.5)
        t_ours.append(time.perf_counter() - t0)
        assert set(jobs.job_state) == {"COMPLETED"}, jobs.job_state.value_counts()
    report(f"{n} trivial jobs, ps.submit to the end of ps.wait", min(t_ours), min(t_raw),
           "raw sbatch --array + squeue polling loop (0.5 s)", 1.15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--small", type=int, default=200)
    args = parser.parse_args()
    with scratch_dir("ps-bench-slurm-") as root:
        bench_submit(root, args.jobs)
        if args.small:
            bench_small_run(root, args.small)


if __name__ == "__main__":
    main()
