"""Odd files and odd input: a clear error naming the problem and the fix, nothing stranded."""
import glob
import os
import shutil

import pytest

import param_search as ps
from param_search.experiment import Experiment


def _sweep(**kwargs):
    return ps.submit("echo {i}\n", "job_{i}", ps.ParamSpace(i=range(3)), progress=False, **kwargs)


def test_a_garbage_status_file_is_read_as_far_as_it_makes_sense(in_tmp):
    _sweep()
    with open("job_1/job.1.status", "w") as f:
        f.write("start abc def\nexit x y\n\x00\x01garbage\n")
    os.remove(".param_search/index.arrow")
    with pytest.warns(UserWarning, match="rebuilt it from 3 job folders"):
        jobs = ps.status(".")
    assert list(jobs.job_name) == ["job_0", "job_1", "job_2"]
    assert jobs.job_state[0] == jobs.job_state[2] == "COMPLETED"


def test_a_damaged_or_missing_experiment_json_says_what_and_how(in_tmp):
    _sweep()
    with open(".param_search/experiment.json", "w") as f:
        f.write("{not json")
    with pytest.raises(ps.ExperimentError, match="experiment.json is damaged.*restore it"):
        _sweep()
    os.remove(".param_search/experiment.json")
    with pytest.raises(ps.ExperimentError, match="experiment.json is missing.*token"):
        ps.load(".")


def test_hidden_job_names_are_refused_at_submit(in_tmp):
    with pytest.raises(ps.TemplateError, match="starts with '.'"):
        ps.submit("true", ".job_{i}", ps.ParamSpace(i=[1]), progress=False)
    assert not os.path.exists(".param_search")


@pytest.mark.parametrize("bad", ["tab\there", "line\nbreak"])
def test_a_work_dir_with_a_tab_or_newline_is_refused_before_anything_is_written(in_tmp, bad):
    with pytest.raises(ps.TemplateError, match="tab or line break"):
        _sweep(work_dir=bad)
    assert os.listdir(in_tmp) == []


@pytest.mark.parametrize("use", ["slurm", "torque", "sge"])
def test_extra_args_as_one_string_is_an_option_error(in_tmp, use):
    with pytest.raises(ps.OptionError, match=r"extra_args must be a list.*\['--exclusive'\]"):
        _sweep(use=use, extra_args="--exclusive")
    assert os.listdir(in_tmp) == []


def test_an_unbalanced_quote_in_a_directive_is_an_option_error():
    script = "#!/bin/bash\n#SBATCH --comment='unclosed\necho hi\n"
    with pytest.raises(ps.OptionError, match="directive line.*balance its quotes"):
        ps.SlurmQueue().script_directives(script)


def test_wait_never_waits_for_jobs_no_queue_has(in_tmp):
    _sweep(wait=False)                       # local jobs, pending for a runner
    os.remove(".param_search/index.arrow")   # ... and an index lost with the batch files
    for path in glob.glob(".param_search/batches/*"):
        os.remove(path)
    with pytest.warns(UserWarning, match="rebuilt"):
        assert set(ps.load(".").job_state) == {"NEW"}
    with pytest.raises(ps.ExperimentError, match=r"3 job\(s\) were never sent.*'job_0'.*same ps.submit"):
        ps.wait(".", timeout=5, progress=False)
    assert set(_sweep().job_state) == {"COMPLETED"}   # as the message says: submit again


def test_a_rebuilt_index_recovers_queued_local_jobs_from_the_batch_files(in_tmp):
    _sweep(wait=False)
    os.remove(".param_search/index.arrow")
    with pytest.warns(UserWarning, match="rebuilt"):
        jobs = ps.status(".")
    assert set(jobs.job_state) == {"PENDING"} and set(jobs.queue) == {"local"}
    assert set(ps.wait(".", timeout=60, progress=False).job_state) == {"COMPLETED"}
