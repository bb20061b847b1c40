"""Sweeps that finish by themselves: the retry policy, held-back jobs, the decision loop
(local queue here; the schedulers' live tests exercise the same code)."""
import json
import os
import warnings

import pytest

import param_search as ps
from param_search import resources
from param_search import dispatch
from param_search.experiment import Experiment
from param_search.queues.registry import make_queue
from param_search.record import new_record
from param_search.render import RenderedJob
from param_search.retry import Retry

#: Exits 75 on its first two attempts (counted by its status files), then succeeds;
#: job i=1 always exits 3.
FLAKY = """n=$(ls job.*.status | wc -l)
if [ {i} = 1 ]; then exit 3; fi
if [ $n -lt 3 ]; then exit 75; fi
echo ok
"""


# -- reading and writing resources ----------------------------------------------------------
@pytest.mark.parametrize("text, bare, expected", [
    ("1:00:00", 60, 3600), ("90", 60, 5400), ("90", 1, 90), ("2:30", 60, 150), ("1-12", 60, 129600),
    ("1-0:30", 60, 88200), ("2-00:00:10", 1, 172810), (3600, 1, 3600),
])
def test_durations_are_read_as_schedulers_write_them(text, bare, expected):
    assert resources.seconds(text, bare) == expected


@pytest.mark.parametrize("text, bare, expected", [
    ("4G", 1, 4096), ("4096M", 1, 4096), ("4gb", 1, 4096), ("512K", 1, 0.5), ("2048", 1, 2048),
    ("1073741824", 1 / 2**20, 1024), ("1.5G", 1, 1536), ("1T", 1, 1024 ** 2),
])
def test_memory_sizes_are_read_as_schedulers_write_them(text, bare, expected):
    assert resources.megabytes(text, bare) == expected


def test_unreadable_resources_say_how_to_write_them():
    with pytest.raises(ps.OptionError, match="hours:minutes:seconds"):
        resources.seconds("an hour")
    with pytest.raises(ps.OptionError, match="'4G'"):
        resources.megabytes("lots")
    assert resources.clock(7200.2) == "2:00:01" and resources.clock(90000) == "25:00:00"


# -- the policy ---------------------------------------------------------------------------
def _ended(state, **fields):
    record = new_record(RenderedJob("j", "h", {}, "echo\n"))
    record.update(state=state, attempt=1, **fields)
    return record


SLURM = make_queue("slurm").resource_syntax()


def test_a_timeout_doubles_the_time_limit_up_to_the_cap():
    policy = Retry(max_attempts=4, on={"TIMEOUT": {"time": 2.0}}, max_time="3:00:00")
    record = _ended("TIMEOUT", time_limit="1:00:00")
    assert policy.wants(record)
    decision = policy.decide(record, SLURM)
    assert decision.resources == {"time_limit": "2:00:00"}
    assert decision.note == "attempt 1: TIMEOUT at 1:00:00 -> time 2:00:00"
    record.update(time_limit="2:00:00", attempt=2)
    assert policy.decide(record, SLURM).resources == {"time_limit": "3:00:00"}   # capped
    record.update(attempt=4)
    assert not policy.wants(record)   # max_attempts counts the first attempt


def test_memory_grows_and_bare_numbers_use_the_schedulers_unit():
    policy = Retry(on={"OUT_OF_MEMORY": {"mem": 1.5}})
    assert policy.decide(_ended("OUT_OF_MEMORY", mem_limit="4G"), SLURM).resources == {"mem_limit": "6144M"}
    assert policy.decide(_ended("OUT_OF_MEMORY", mem_limit="1000"), SLURM).resources == {"mem_limit": "1500M"}
    sge = make_queue("sge").resource_syntax()   # a bare number is bytes there
    assert policy.decide(_ended("OUT_OF_MEMORY", mem_limit=str(2**30)), sge).resources == {"mem_limit": "1536M"}
    note = policy.decide(_ended("OUT_OF_MEMORY"), SLURM).note
    assert "mem unknown" in note   # no limit was given: the queue's default, not scaled


def test_a_node_failure_keeps_the_next_attempt_off_the_nodes_it_failed_on():
    policy = Retry(on={"NODE_FAIL": {"exclude_node": True}})
    decision = policy.decide(_ended("NODE_FAIL", node="n2", excluded="n1"), SLURM)
    assert decision.resources == {"excluded": "n1,n2"} and "NODE_FAIL on n2" in decision.note
    with pytest.raises(ps.OptionError, match="cannot keep a job off a node"):
        policy.check("local", None)


def test_exit_codes_choose_which_failures_are_retried():
    policy = Retry(on={"FAILED": {"exit_codes": [75]}})
    assert policy.wants(_ended("FAILED", exit_code=75))
    assert not policy.wants(_ended("FAILED", exit_code=1))
    assert not policy.wants(_ended("TIMEOUT"))   # not named: not retried
    assert not Retry(on={"FAILED": None}).wants(_ended("FAILED", exit_code=1))
    assert Retry().wants(_ended("PREEMPTED")) and not Retry().wants(_ended("FAILED"))


@pytest.mark.parametrize("kwargs, words", [
    ({"on": {"COMPLETED": {}}}, "not a state to retry"),
    ({"on": {"TIMEOUT": {"time": -1}}}, "factor > 0"),
    ({"on": {"TIMEOUT": {"walltime": 2}}}, "unknown action"),
    ({"on": {"TIMEOUT": 2.0}}, "a rule is a dict"),
    ({"on": {"FAILED": {"exit_codes": "75"}}}, "list of exit codes"),
    ({"max_attempts": 0}, "max_attempts"),
    ({"max_time": "soon"}, "hours:minutes:seconds"),
])
def test_a_bad_policy_is_refused_with_the_fix(kwargs, words):
    with pytest.raises(ps.OptionError, match=words):
        Retry(**kwargs)


def test_the_policy_survives_its_json_form():
    policy = Retry(max_attempts=4, on={"TIMEOUT": {"time": 2.0}, "FAILED": None}, max_mem="64G")
    assert Retry.from_json(json.loads(json.dumps(policy.to_json()))) == policy


# -- the sweep ----------------------------------------------------------------------------
def test_the_local_queue_retries_the_exit_codes_the_policy_lists(tmp_path):
    policy = ps.Retry(max_attempts=4, on={"FAILED": {"exit_codes": [75]}})
    jobs = ps.submit(FLAKY, "j{i}", ps.ParamSpace(i=range(3)), work_dir=tmp_path, retry=policy,
                     progress=False)
    assert jobs.job_state.tolist() == ["COMPLETED", "FAILED", "COMPLETED"]
    assert jobs.attempt.tolist() == [3, 1, 3]
    assert jobs.history[0] == "attempt 1: FAILED (exit 75) -> again; attempt 2: FAILED (exit 75) -> again"
    assert jobs.exit_code[1] == 3 and jobs.history.isna()[1]
    assert os.path.isfile(tmp_path / "j0" / "job.2.err")   # every attempt keeps its logs


def test_the_same_failure_stops_at_max_attempts_with_the_last_error(tmp_path):
    policy = ps.Retry(max_attempts=2, on={"FAILED": {}})
    jobs = ps.submit("echo broken >&2; exit 1\n", "j{i}", ps.ParamSpace(i=range(2)), work_dir=tmp_path,
                     retry=policy, progress=False)
    assert jobs.job_state.tolist() == ["FAILED", "FAILED"] and jobs.attempt.tolist() == [2, 2]
    assert jobs.error.tolist() == ["broken", "broken"]


def test_a_later_process_applies_the_stored_policy(tmp_path):
    policy = ps.Retry(max_attempts=4, on={"FAILED": {"exit_codes": [75]}})
    jobs = ps.submit(FLAKY, "j{i}", ps.ParamSpace(i=[0]), work_dir=tmp_path, retry=policy, wait=False,
                     progress=False)
    assert json.loads((tmp_path / ".param_search" / "policy.json").read_text())["retry"]["max_attempts"] == 4
    table = ps.wait(str(tmp_path), progress=False)   # a new call, from the work_dir alone
    assert table.job_state.tolist() == ["COMPLETED"] and table.attempt.tolist() == [3]


def test_status_with_apply_takes_one_decision_round(tmp_path):
    policy = ps.Retry(max_attempts=3, on={"FAILED": {}})
    ps.submit("exit 1\n", "j{i}", ps.ParamSpace(i=[0]), work_dir=tmp_path, progress=False)
    ps.submit("exit 1\n", "j{i}", ps.ParamSpace(i=[0]), work_dir=tmp_path, retry=policy, wait=False,
              progress=False, retry_failed=False)
    assert ps.status(str(tmp_path)).job_state.tolist() == ["FAILED"]   # no apply: nothing sent
    table = ps.status(str(tmp_path), apply=True)
    assert table.attempt.tolist() == [2] and table.job_state.tolist() == ["PENDING"]


def test_max_queued_holds_the_rest_back_and_tops_up_as_jobs_end(tmp_path, monkeypatch):
    jobs = ps.submit("sleep 0.1\n", "j{i}", ps.ParamSpace(i=range(7)), work_dir=tmp_path, max_queued=3,
                     wait=False, progress=False)
    held = jobs.reason.str.startswith("held back: max_queued=3", na=False)
    assert held.sum() == 4 and (jobs.job_state == "PENDING").all()
    assert jobs.attempt[held].tolist() == [0] * 4 and jobs.submitted[held].isna().all()
    seen = []
    exp = Experiment.open(tmp_path)
    original = dispatch.send

    def counting_send(exp_, queue, records, chosen, *args, **kwargs):
        sent = original(exp_, queue, records, chosen, *args, **kwargs)
        seen.append(dispatch.in_queue(records))
        return sent

    monkeypatch.setattr(dispatch, "send", counting_send)
    table = ps.wait(jobs, progress=False)
    assert table.job_state.tolist() == ["COMPLETED"] * 7 and table.attempt.tolist() == [1] * 7
    assert seen and max(seen) <= 3
    assert exp.policy()["max_queued"] == 3


def test_held_jobs_can_be_cancelled_without_asking_a_queue(tmp_path):
    jobs = ps.submit("sleep 0.1\n", "j{i}", ps.ParamSpace(i=range(3)), work_dir=tmp_path, max_queued=1,
                     wait=False, progress=False)
    held = jobs[jobs.reason.str.startswith("held back", na=False)]
    table = ps.cancel(held)
    assert table.job_state.tolist() == ["CANCELLED", "CANCELLED"]
    assert ps.wait(jobs, progress=False).job_state.tolist() == ["COMPLETED", "CANCELLED", "CANCELLED"]


def test_bad_policy_arguments_are_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ps.OptionError, match="ps.Retry"):
        ps.submit("echo\n", "j{i}", ps.ParamSpace(i=[0]), work_dir=tmp_path / "a", retry={"TIMEOUT": {}})
    with pytest.raises(ps.OptionError, match="max_queued"):
        ps.submit("echo\n", "j{i}", ps.ParamSpace(i=[0]), work_dir=tmp_path / "b", max_queued=-1)
    with pytest.raises(ps.OptionError, match="cannot keep a job off a node"):
        ps.submit("echo\n", "j{i}", ps.ParamSpace(i=[0]), work_dir=tmp_path / "c",
                  retry=ps.Retry(on={"NODE_FAIL": {"exclude_node": True}}))
    assert not any((tmp_path / d).exists() for d in "abc")


def test_an_index_written_before_the_resource_columns_still_loads(tmp_path):
    from param_search import index_file

    ps.submit("echo\n", "j{i}", ps.ParamSpace(i=range(2)), work_dir=tmp_path, progress=False)
    exp = Experiment.open(tmp_path)
    old = index_file.read(exp.index_path).drop_columns(["time_limit", "mem_limit", "excluded", "history"])
    exp.save_index(old)
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # read as it is, not rebuilt (which warns)
        table = ps.load(tmp_path)
    assert table.job_state.tolist() == ["COMPLETED"] * 2 and table.history.isna().all()


# -- found by review: each fails without its fix ------------------------------------------
def test_a_retry_held_back_stays_held_and_wait_keeps_its_timeout(tmp_path):
    """A held retry is in no queue: the failed attempt's status file must not make it FAILED
    again (which retried it again and again, without sleeping, past the timeout)."""
    policy = ps.Retry(max_attempts=3, on={"FAILED": {}})
    jobs = ps.submit("exit 1\n", "j{i}", ps.ParamSpace(i=range(3)), work_dir=tmp_path, retry=policy,
                     max_queued=1, wait=False, progress=False)
    table = ps.wait(jobs, timeout=60, progress=False)
    assert table.job_state.tolist() == ["FAILED"] * 3 and table.attempt.tolist() == [3] * 3
    assert table.history.str.count("attempt").tolist() == [2, 2, 2]   # one note per retry


def test_status_apply_leaves_a_held_retry_held(tmp_path):
    policy = ps.Retry(max_attempts=3, on={"FAILED": {}})
    ps.submit("exit 1\n", "j{i}", ps.ParamSpace(i=range(2)), work_dir=tmp_path, progress=False)
    ps.submit("exit 1\n", "j{i}", ps.ParamSpace(i=range(2)), work_dir=tmp_path, retry=policy, max_queued=1,
              wait=False, progress=False, retry_failed=False)
    first = ps.status(str(tmp_path), apply=True)
    assert first.job_state.tolist() == ["PENDING", "PENDING"] and sorted(first.attempt) == [1, 2]
    held = first[first.reason.str.startswith("held back", na=False)]
    assert len(held) == 1 and held.attempt.tolist() == [1]
    again = ps.status(str(tmp_path), apply=True)
    assert again.loc[held.index, "job_state"].tolist() == ["PENDING"]
    assert again.history.str.count("attempt").tolist() == [1, 1]


def test_waiting_on_some_jobs_releases_those_first(tmp_path):
    jobs = ps.submit("true\n", "j{i}", ps.ParamSpace(i=range(4)), work_dir=tmp_path, max_queued=1,
                     wait=False, progress=False)
    table = ps.wait(jobs.iloc[3:], timeout=30, progress=False)
    assert table.job_name.tolist() == ["j3"] and table.job_state.tolist() == ["COMPLETED"]


def test_limits_that_cannot_be_scaled_are_left_as_they_are():
    policy = Retry(on={"TIMEOUT": {"time": 2.0}})
    assert resources.seconds("1:00:00:00") == 86400   # PBS: days:hours:minutes:seconds
    for limit in ("UNLIMITED", "infinite", "soon"):
        decision = policy.decide(_ended("TIMEOUT", time_limit=limit), SLURM)
        assert decision.resources == {} and "time unknown" in decision.note


def test_grid_engine_reads_lower_case_units_as_powers_of_1000():
    assert resources.megabytes("4G", decimal_lower=True) == 4096
    assert resources.megabytes("4g", decimal_lower=True) == pytest.approx(4e9 / 2**20)
    assert resources.megabytes("4g") == 4096
    sge = make_queue("sge").resource_syntax()
    assert Retry(on={"OUT_OF_MEMORY": {"mem": 1.0}}).decide(
        _ended("OUT_OF_MEMORY", mem_limit="1g"), sge).resources == {"mem_limit": "954M"}


def test_a_stored_cap_or_policy_can_be_lifted(tmp_path):
    ps.submit("true\n", "j{i}", ps.ParamSpace(i=[0]), work_dir=tmp_path, max_queued=3,
              retry=ps.Retry(), progress=False)
    exp = Experiment.open(tmp_path)
    assert set(exp.policy()) == {"max_queued", "retry"}
    ps.submit("true\n", "j{i}", ps.ParamSpace(i=[0]), work_dir=tmp_path, progress=False)
    assert set(exp.policy()) == {"max_queued", "retry"}   # None keeps
    ps.submit("true\n", "j{i}", ps.ParamSpace(i=[0]), work_dir=tmp_path, max_queued=0, retry=False,
              progress=False)
    assert exp.policy() == {}


def test_a_refused_retry_is_noted_once_and_not_tried_again(tmp_path, monkeypatch, capsys):
    """E.g. a doubled time limit over the partition's maximum: the scheduler refuses it. The
    local queue refuses nothing, so the refusal is staged here."""
    from param_search.queues.local import LocalQueue

    ps.submit("exit 1\n", "j{i}", ps.ParamSpace(i=[0]), work_dir=tmp_path, progress=False)
    ps.submit("exit 1\n", "j{i}", ps.ParamSpace(i=[0]), work_dir=tmp_path, progress=False, wait=False,
              retry_failed=False, retry=ps.Retry(on={"FAILED": {}}))

    def refuse(self, exp, records, scripts=None):
        raise ps.RefusedError("sbatch: error: Requested time limit is invalid; too long")

    monkeypatch.setattr(LocalQueue, "submit", refuse)
    for _ in range(3):
        table = ps.wait(str(tmp_path), timeout=10, progress=False)
    assert table.job_state.tolist() == ["FAILED"] and table.attempt.tolist() == [1]
    assert table.history[0] == ("attempt 1: FAILED (exit 1) -> again; attempt 1: retry refused "
                                "(sbatch: error: Requested time limit is invalid, too long)")
    assert capsys.readouterr().err.count("retries were refused") == 1
