"""Slurm's text, captured from a real Slurm 22.05 (tests/data/slurm/README.md), parsed."""
import pathlib

import numpy as np
import pytest

from param_search import index_file, refresh
from param_search.errors import QueueError
from param_search.queues import slurm
from param_search.lifecycle import apply, verdict_of
from param_search.queues.batch import fresh

DATA = pathlib.Path(__file__).parent / "data" / "slurm"


def read(name):
    return (DATA / name).read_text()


def test_sbatch_parsable():
    assert slurm.parse_sbatch(read("sbatch_parsable.txt")) == "472"
    assert slurm.parse_sbatch(read("sbatch_parsable_cluster.txt")) == "479"
    with pytest.raises(QueueError, match="no job id"):
        slurm.parse_sbatch("sbatch: error: something\n")


def test_max_array_size_from_scontrol():
    assert slurm.parse_max_array_size(read("scontrol_show_config.txt")) == 1001
    assert slurm.parse_max_array_size("MaxArraySize            = 40001\n") == 40001


def test_squeue_pending_running_and_reasons():
    # the capture has extra columns; our own format is %i|%T|%r|%N|%V
    lines = [ln.split("|") for ln in read("squeue.txt").splitlines()]
    ours = "\n".join("|".join([f[0], f[4], f[5], f[6], f[8]]) for f in lines)
    info = slurm.parse_squeue(ours)
    assert info["472_1"]["state"] == "PENDING" and info["472_1"]["reason"] == "JobArrayTaskLimit"
    assert info["474"]["reason"] == "JobHeldUser"
    assert info["472_0"]["state"] == "RUNNING" and info["472_0"]["node"] == "localhost"
    assert info["472_0"]["reason"] is None
    assert info["475"]["submit"] is not None


def test_squeue_with_all_states_maps_final_states():
    lines = [ln.split("|") for ln in read("squeue_finished.txt").splitlines()]
    ours = "\n".join("|".join([f[0], f[4], f[5], f[6], f[8]]) for f in lines)
    info = slurm.parse_squeue(ours)
    assert info["472_2"]["state"] == "CANCELLED"
    assert info["472_1"]["state"] == "FAILED"
    assert info["473"]["state"] == "COMPLETED"


def test_sacct_final_states_exit_codes_and_signals():
    info = slurm.parse_sacct(read("sacct.txt"))
    assert info["470"]["state"] == "TIMEOUT"
    assert info["475"]["state"] == "CANCELLED"          # "CANCELLED by 0"
    assert info["475"]["node"] is None and info["475"]["start"] is None   # never started
    assert info["472_1"]["state"] == "FAILED" and info["472_1"]["exit_code"] == 3
    assert info["492"]["state"] == "FAILED" and info["492"]["signal"] == "KILL"   # ExitCode 0:9
    assert info["492"]["exit_code"] == 137            # never 0 for a job killed by a signal
    assert info["473"]["state"] == "COMPLETED" and info["473"]["exit_code"] == 0
    assert info["473"]["end"] - info["473"]["start"] == 25
    assert "481_1" not in info   # a pending task cancelled by scancel leaves no trace


def test_sacct_expands_pending_array_ranges():
    info = slurm.parse_sacct(read("sacct_active.txt"))
    assert info["493_0"]["state"] == "COMPLETED"
    assert [info[f"493_{i}"]["state"] for i in (1, 2, 3)] == ["PENDING"] * 3
    assert slurm.expand_array_id("7_[1-3,5%2]") == ["7_1", "7_2", "7_3", "7_5"]


@pytest.mark.parametrize("native,ours", [
    ("OUT_OF_MEMORY", "OUT_OF_MEMORY"), ("NODE_FAIL", "NODE_FAIL"), ("PREEMPTED", "PREEMPTED"),
    ("BOOT_FAIL", "NODE_FAIL"), ("DEADLINE", "TIMEOUT"), ("COMPLETING", "RUNNING"),
    ("REQUEUED", "PENDING"), ("SUSPENDED", "PENDING"),
])
def test_native_state_map(native, ours):
    line = f"9|9|j|{native}|0:0|00:00:01|n|2026-01-01T00:00:00|2026-01-01T00:00:00|Unknown"
    assert slurm.parse_sacct(line)["9"]["state"] == ours


def _record(**kw):
    base = {"job_id": "9", "state": "RUNNING", "exit_code": None, "started": None, "ended": None,
            "node": None, "reason": None, "signal": None, "submitted": 1_800_000_000.0}
    return {**base, **kw}


def test_answers_about_an_older_job_with_the_same_id_are_ignored():
    old = {"9": {"state": "FAILED", "submit": 1_700_000_000.0}}
    new = {"9": {"state": "FAILED", "submit": 1_800_000_010.0}}
    assert fresh(old, [_record()]) == {}
    assert fresh(new, [_record()]) == new


def test_the_jobs_own_exit_code_wins_except_for_scheduler_verdicts():
    finished = _record(state="FAILED", exit_code=143)
    apply(finished, verdict_of({"state": "FAILED", "exit_code": 0}))
    assert finished["state"] == "FAILED" and finished["exit_code"] == 143
    apply(finished, verdict_of({"state": "TIMEOUT", "exit_code": 0, "start": 1.0, "end": 2.0}))
    assert finished["state"] == "TIMEOUT" and finished["exit_code"] == 143
    pending = _record(state="PENDING")
    apply(pending, verdict_of({"state": "PENDING", "reason": "Priority"}))
    assert pending["reason"] == "Priority"


def test_directives_are_read_like_sbatch_and_own_options_dropped():
    script = ("#!/bin/bash\n#SBATCH --job-name=x -o %J.out\n#SBATCH -e %J.err\n"
              "#SBATCH --mem=2G --cpus-per-task=4  # comment\n# plain comment\n\n"
              "#SBATCH -p gpu\n#SBATCH -J name\n#SBATCH -ofile\necho hi\n#SBATCH --time=5\n")
    assert slurm.SlurmQueue().script_directives(script) == ["--mem=2G", "--cpus-per-task=4", "-p", "gpu"]


def test_unknown_sbatch_option_keyword_lists_the_valid_ones():
    from param_search.errors import ParamSearchError
    from param_search.queues.registry import make_queue

    with pytest.raises(ParamSearchError, match="unknown option 'memory'.*partition, time, mem"):
        make_queue("slurm", memory="4G")
    queue = make_queue("slurm", partition="gpu", time="1:00:00", mem="4G", cpus_per_task=2,
                       gres="gpu:1", account="lab", extra_args=["--exclusive"])
    assert queue.options == ["--partition=gpu", "--time=1:00:00", "--mem=4G", "--cpus-per-task=2",
                             "--gres=gpu:1", "--account=lab", "--exclusive"]


def _index(*rows):
    """An index table of (job_id, state, submitted, node[, started]) rows."""
    records = [{"job_name": f"j{i}", "hash": "h", "params": {}, "script_hash": "s", "mode": "source",
                "attempt": 1, "restarts": 0, "queue": "slurm", "job_id": job_id, "batch": None, "owner": None,
                "state": state, "exit_code": None, "signal": None, "submitted": submitted,
                "started": started[0] if started else None, "ended": None, "node": node,
                "reason": None, "error": None, "stdout": None, "stderr": None,
                "time_limit": None, "mem_limit": None, "excluded": None, "history": None}
               for i, (job_id, state, submitted, node, *started) in enumerate(rows)]
    return index_file.from_records(records, "/w")


def test_a_snapshot_confirms_only_unchanged_states_of_fresh_jobs():
    snapshot = slurm.parse_squeue_table(
        "10_0|PENDING|JobHeldUser||2026-11-29T10:00:00\n"
        "10_1|RUNNING|None|n1|2026-11-29T10:00:00\n"
        "10_2|RUNNING|None|n2|2026-11-29T10:00:00\n"
        "11|PENDING|Priority||2020-01-01T00:00:00\n"
        "12_0|RUNNING|None||2026-11-29T10:00:00\n")
    submitted = slurm._epoch("2026-11-29T10:00:00")
    index = _index(("10_0", "PENDING", submitted, None), ("10_1", "RUNNING", submitted, None, 1.0),
                   ("10_2", "PENDING", submitted, None),      # started: a transition, not confirmed
                   ("11", "PENDING", submitted, None),        # id reused by an older job
                   ("12_0", "RUNNING", submitted, "n7", 1.0),  # squeue gave no node: keep ours
                   ("13", "PENDING", submitted, None),        # not listed
                   ("10_2", "RUNNING", submitted, None))      # start time unknown: poll reads it
    mine = np.ones(7, dtype=bool)
    index, confirmed, changed = refresh._confirm(index, mine, snapshot)
    assert list(confirmed) == [True, True, False, False, True, False, False] and changed
    assert index.column("reason").to_pylist() == ["JobHeldUser"] + [None] * 6
    assert index.column("node").to_pylist() == [None, "n1", None, None, "n7", None, None]
    _, _, again = refresh._confirm(index, mine, snapshot)
    assert not again   # nothing new the second time: the index is not rewritten


def test_squeue_table_skips_malformed_lines_and_maps_unknown_states():
    table = slurm.parse_squeue_table(" 5|PENDING|None||Unknown\ngarbage\n6|WEIRD|x|n|N/A\n")
    assert table.column("job_id").to_pylist() == ["5", "6"]
    assert table.column("state").to_pylist() == ["PENDING", "UNKNOWN"]
    assert table.column("submit").to_pylist() == [None, None]
    assert slurm.parse_squeue_table("").num_rows == 0


def test_a_qos_submit_limit_refusal_is_told_apart_from_other_refusals():
    said = (DATA / "sbatch_qos_submit_limit.txt").read_text().lower()
    assert any(f in said for f in slurm.SlurmQueue.limit_refusals)
    assert not any(f in "sbatch: error: invalid partition specified: nope" for f in slurm.SlurmQueue.limit_refusals)
