"""Each submission's queue settings are stored with its batch and used by every later call."""
import glob
import json
import os
import subprocess
import sys

import pytest

import param_search as ps
from param_search.experiment import Experiment

SPAN = "date +%s.%N > t0.{attempt}; sleep 0.3; date +%s.%N > t1.{attempt}\n"


def batches(work_dir="."):
    """The stored batch settings, oldest first."""
    files = sorted(glob.glob(os.path.join(work_dir, ".param_search", "batches", "*.json")))
    return [json.load(open(f)) for f in files]


def peak_concurrency(job_dirs, attempt):
    events = []
    for d in job_dirs:
        t0, t1 = (float(open(os.path.join(d, f"{name}.{attempt}")).read()) for name in ("t0", "t1"))
        events += [(t0, 1), (t1, -1)]
    running = peak = 0
    for _, step in sorted(events):
        running += step
        peak = max(peak, running)
    return peak


def test_local_workers_are_kept_for_a_wait_in_another_process(in_tmp):
    script = SPAN.replace("{attempt}", "1")
    jobs = ps.submit(script, "job_{i}", ps.ParamSpace(i=range(4)), workers=1, wait=False)
    assert [b["settings"] for b in batches()] == [{"workers": 1}]
    assert [b["queue"] for b in batches()] == ["local"]
    subprocess.run([sys.executable, "-c", "import param_search as ps; ps.wait('.', progress=False)"],
                   check=True, timeout=120)
    assert set(ps.load(".").job_state) == {"COMPLETED"}
    assert peak_concurrency(jobs.job_dir, 1) == 1


def test_resubmit_keeps_the_settings_and_records_overrides(in_tmp):
    script = "date +%s.%N > t0.$A; sleep 0.3; date +%s.%N > t1.$A\nexit 1\n"
    script = "A=$(ls job.*.status | wc -l)\n" + script
    jobs = ps.submit(script, "job_{i}", ps.ParamSpace(i=range(4)), workers=1, progress=False)
    assert set(jobs.job_state) == {"FAILED"} and peak_concurrency(jobs.job_dir, 1) == 1
    again = ps.resubmit(jobs, progress=False)          # same settings: one at a time again
    assert set(again.attempt) == {2} and peak_concurrency(jobs.job_dir, 2) == 1
    third = ps.resubmit(again, workers=4, progress=False)   # an override, on purpose
    assert set(third.attempt) == {3} and peak_concurrency(jobs.job_dir, 3) > 1
    stored = batches()
    assert [b["settings"] for b in stored] == [{"workers": 1}, {"workers": 1}, {"workers": 4}]
    assert "overrides" not in stored[1] and stored[2]["overrides"] == {"workers": 4}


def test_a_refused_resubmission_leaves_the_jobs_as_they_were(in_tmp):
    jobs = ps.submit("exit 2\n", "job_{i}", ps.ParamSpace(i=range(2)), progress=False)
    with pytest.raises(ps.OptionError, match="workers must be a positive int"):
        ps.resubmit(jobs, workers=0)
    after = ps.load(".")
    assert list(after.job_state) == ["FAILED", "FAILED"] and list(after.attempt) == [1, 1]
    assert list(after.exit_code) == [2, 2]


def test_queue_instances_store_their_constructor_arguments():
    assert ps.LocalQueue(workers=3).settings == {"workers": 3}
    assert ps.LocalQueue().settings == {}
    queue = ps.SlurmQueue(time="0:03:00", extra_args=("--comment=keepme",), partition="debug")
    assert queue.settings == {"time": "0:03:00", "extra_args": ["--comment=keepme"],
                              "partition": "debug"}
    assert ps.TorqueQueue(walltime="1:00:00").settings == {"walltime": "1:00:00"}
    with pytest.raises(ps.OptionError, match="unexpected keyword argument 'nodes'"):
        ps.SlurmQueue(nodes=2)


def test_a_rebuilt_index_knows_each_batch_queue(in_tmp):
    """Rebuilding from the job folders takes each attempt's queue and batch from the batch
    files, instead of guessing the scheduler from the status file."""
    ps.submit("true\n", "job_{i}", ps.ParamSpace(i=range(2)), workers=1, progress=False)
    exp = Experiment.open(".")
    first = exp.load_records()["job_0"]["batch"]
    # a second attempt of job_1, sent to a batch scheduler but not started yet
    exp.save_batch("ps-x-0000000001", "torque", {"walltime": "0:05:00"})
    exp.save_members("ps-x-0000000001", [{**exp.load_records()["job_1"], "attempt": 2}])
    records = exp.rebuild()
    assert (records["job_0"]["attempt"], records["job_0"]["batch"], records["job_0"]["queue"]) == (1, first, "local")
    assert records["job_0"]["state"] == "UNKNOWN"          # started: its status file tells the rest
    assert records["job_1"]["queue"] == "torque" and records["job_1"]["batch"] == "ps-x-0000000001"
    assert records["job_1"]["attempt"] == 2 and records["job_1"]["state"] == "SUBMITTING"
    os.remove(".param_search/index.arrow")
    with pytest.warns(UserWarning, match="rebuilt it"):
        rebuilt = ps.load(".")
    assert list(rebuilt.queue) == ["local", "torque"] and list(rebuilt.attempt) == [1, 2]
