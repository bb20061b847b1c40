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


def test_a_record_follows_the_copy_of_an_attempt_that_claimed_it(in_tmp):
    """If a scheduler ever holds two copies of one attempt, the second exits without running;
    the record must follow the first (the one named in the status file's start line)."""
    from param_search.attempts import observe

    _sweep(wait=False)
    exp = Experiment.open(".")
    record = exp.load_records()["job_0"]
    record.update(state="RUNNING", attempt=1, job_id="200_0", queue="slurm")
    with open("job_0/job.1.status", "w") as f:
        f.write("start 1800000000.5 4242 0 node7 100_0\n")
    observe(exp, record)
    assert (record["job_id"], record["node"], record["state"]) == ("100_0", "node7", "RUNNING")
    record.update(job_id="100[0]")       # the same task spelled the Torque way: kept as it is
    observe(exp, record)
    assert record["job_id"] == "100[0]"


class _TimeoutQueue(ps.LocalQueue):
    """A queue whose submission times out after the queue may have taken the jobs."""

    def submit(self, exp, records, scripts=None):
        raise ps.QueueError("submit timed out")


class _RefusingQueue(ps.LocalQueue):
    def submit(self, exp, records, scripts=None):
        raise ps.RefusedError("no, thank you")


def test_an_unknown_outcome_leaves_the_jobs_submitting_and_they_are_found_again(in_tmp):
    with pytest.raises(ps.QueueError, match="timed out"):
        ps.submit("echo {i}\n", "job_{i}", ps.ParamSpace(i=range(2)), use=_TimeoutQueue(), progress=False)
    assert set(ps.load(".").job_state) == {"SUBMITTING"}
    jobs = ps.wait(".", timeout=60, progress=False)   # the local queue finds and runs them
    assert set(jobs.job_state) == {"COMPLETED"} and set(jobs.attempt) == {1}


def test_a_refused_resubmission_is_no_sent_attempt_after_a_rebuild(in_tmp):
    ps.submit("exit 3\n", "job_{i}", ps.ParamSpace(i=range(2)), progress=False)
    with pytest.raises(ps.RefusedError):
        ps.resubmit(".", use=_RefusingQueue())
    assert list(ps.load(".").job_state) == ["FAILED", "FAILED"]
    members = sorted(glob.glob(".param_search/batches/*.jobs"))
    assert len(members) == 1                      # the refused batch's list is gone
    os.remove(".param_search/index.arrow")
    with pytest.warns(UserWarning, match="rebuilt"):
        jobs = ps.status(".")
    assert list(jobs.job_state) == ["FAILED", "FAILED"] and list(jobs.attempt) == [1, 1]


def test_a_damaged_member_list_does_not_block_the_experiment(in_tmp):
    _sweep()
    path, = glob.glob(".param_search/batches/*.jobs")
    with open(path, "a") as f:
        f.write("job_9\n\x00garbage\tx\n")
    os.remove(".param_search/index.arrow")
    with pytest.warns(UserWarning, match="rebuilt"):
        assert set(ps.status(".").job_state) == {"COMPLETED"}


def test_a_loaded_table_survives_its_index_file_being_truncated_or_overwritten(in_tmp):
    """A notebook kernel holding a ps.load table must never die of SIGBUS because the index
    file under it was cut short or overwritten in place."""
    import subprocess
    import sys

    _sweep()
    code = ("import param_search as ps, os\n"
            "t = ps.load('.')\n"
            "open('.param_search/index.arrow', 'r+b').truncate(10)\n"
            "print(t.exit_code.sum(), ''.join(t.job_name), t.stdout.str.len().sum(), t.started.max())\n"
            "open('.param_search/index.arrow', 'wb').write(b'x' * 100)\n"
            "print(t.i.sum(), ''.join(t.job_dir)[:5])\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, (done.returncode, done.stderr[-500:])
    assert done.stdout.splitlines()[0].startswith("0 job_0job_1job_2")


def test_an_index_copied_from_another_experiment_is_not_taken(in_tmp):
    _sweep(work_dir="a")
    ps.submit("echo {k}\n", "other_{k}", ps.ParamSpace(k=range(2)), work_dir="b", progress=False)
    shutil.copy("a/.param_search/index.arrow", "b/.param_search/index.arrow")
    with pytest.warns(UserWarning, match="belongs to another experiment"):
        assert list(ps.load("b").job_name) == ["other_0", "other_1"]


def test_a_table_mixing_two_experiments_is_refused(in_tmp):
    import pandas as pd

    a = _sweep(work_dir="a")
    b = ps.submit("echo {i}\n", "job_{i}", ps.ParamSpace(i=range(2)), work_dir="b", progress=False)
    both = pd.concat([a, b], ignore_index=True)
    with pytest.raises(ps.ExperimentError, match="jobs of 2 experiments"):
        ps.status(both)
    assert len(ps.status(pd.concat([a.iloc[:1], a.iloc[1:]]))) == 3   # one experiment: fine


def test_replacing_a_job_moves_its_old_outputs_aside(in_tmp):
    script = "echo 'loss' > job_{i}.metrics; echo {i} >> job_{i}.metrics\n"
    ps.submit(script, "job_{i}", ps.ParamSpace(i=range(2)), progress=False)
    failing = "exit 1\n# changed\n"
    with pytest.warns(UserWarning, match="metrics not read for 2 of 2 jobs"):
        jobs = ps.submit(failing, "job_{i}", ps.ParamSpace(i=range(2)), progress=False, replace=True)
        assert set(jobs.job_state) == {"FAILED"}
        with pytest.raises(ps.MetricsError):
            ps.metrics(jobs)                     # the old attempts' rows are not the new ones'
    assert glob.glob("job_0/.replaced-*/job_0.metrics")


def test_plot_says_why_it_cannot_draw(in_tmp):
    import pandas as pd

    table = pd.DataFrame({"lr": [1, 2], "name": ["a", "b"], "loss": [0.5, 0.4]})
    with pytest.raises(ps.ColumnError, match="'name' holds no numbers"):
        ps.plot(table, x="lr", y="name")
    with pytest.raises(ps.MetricsError, match="empty"):
        ps.plot(table.iloc[:0], x="lr", y="loss")


def test_a_job_folder_deleted_by_hand_is_written_again_by_submit(in_tmp, capfd):
    _sweep()
    shutil.rmtree("job_1")
    with pytest.raises(ps.ExperimentError, match=r"missing or lack job.sh.*same ps.submit again"):
        ps.resubmit(".", states=["COMPLETED"], progress=False)
    jobs = _sweep()
    assert "1 whose folder was deleted, written and sent again" in capfd.readouterr().err
    assert set(jobs.job_state) == {"COMPLETED"} and list(jobs.attempt) == [1, 2, 1]
    assert open("job_1/job.2.out").read() == "1\n"


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs (root only; CI runs as root)."""
    import subprocess

    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"cannot mount a tmpfs: {done.stderr}")
        pytest.skip(f"cannot mount a tmpfs: {done.stderr}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_full_disk_mid_sweep_strands_nothing(small_disk):
    import subprocess
    import sys

    work_dir = small_disk / "sweep"
    script = "head -c 100000 /dev/zero > out.bin || exit 1\necho done\n"
    with pytest.raises(ps.ExperimentError, match=r"runner stopped.*No space left.*did not run.*ps.wait"):
        ps.submit(script, "job_{i}", ps.ParamSpace(i=range(60)), work_dir=work_dir, workers=2,
                  progress=False)
    assert not glob.glob(str(work_dir / ".param_search" / "*.tmp-*"))
    for path in glob.glob(str(work_dir / "*" / "out.bin")):   # free the space
        os.remove(path)
    code = ("import param_search as ps, sys\n"
            "ps.wait(sys.argv[1], timeout=120, progress=False)\n"
            "ps.submit(sys.argv[2], 'job_{i}', ps.ParamSpace(i=range(60)), work_dir=sys.argv[1], workers=1,\n"
            "          progress=False)\n")
    # from another process: the jobs not run are run, those that failed for want of space are retried
    for _ in range(3):
        done = subprocess.run([sys.executable, "-c", code, str(work_dir), script], capture_output=True,
                              text=True, timeout=300)
        jobs = ps.load(work_dir)
        if set(jobs.job_state) == {"COMPLETED"}:
            break
        for path in glob.glob(str(work_dir / "*" / "out.bin")):
            os.remove(path)
    assert set(jobs.job_state) == {"COMPLETED"}, (jobs.job_state.value_counts(), done.stderr[-500:])


def test_one_bad_folder_does_not_block_the_rebuild(in_tmp):
    import json

    _sweep()
    os.makedirs("notes")
    with open("notes/params.json", "w") as f:
        json.dump({"something": "else"}, f)          # a user's folder with its own params.json
    with open("job_1/params.json") as f:
        meta = json.load(f)
    meta["params"]["i"] = 7                           # hand-edited: no longer matches its hash
    with open("job_1/params.json", "w") as f:
        json.dump(meta, f)
    os.remove(".param_search/index.arrow")
    with pytest.warns(UserWarning) as caught:
        jobs = ps.load(".")
    said = " ".join(str(w.message) for w in caught)
    assert "notes' is left out" in said and "job_1' is left out" in said and "params.json" in said
    assert list(jobs.job_name) == ["job_0", "job_2"]
