"""The one state machine: which facts change which states."""
import pytest

from param_search.lifecycle import (
    Accepted, Cancelled, Exited, Handed, Pruned, Recovered, Refused, Requeued, Started, Unsent, Vanished,
    Verdict, apply,
)
from param_search.record import new_record
from param_search.render import RenderedJob


def record(**fields):
    rec = new_record(RenderedJob("job", "h", {"x": 1}, "true\n"))
    rec.update(fields)
    return rec


def test_a_job_goes_out_runs_and_ends():
    rec = record()
    assert apply(rec, Handed("slurm", "b1", 10.0))
    assert (rec["state"], rec["attempt"], rec["queue"], rec["batch"]) == ("SUBMITTING", 1, "slurm", "b1")
    assert apply(rec, Accepted("7_0")) and rec["state"] == "PENDING" and rec["job_id"] == "7_0"
    assert apply(rec, Started(11.0, "node1")) and rec["state"] == "RUNNING" and rec["node"] == "node1"
    assert apply(rec, Exited(3, 12.0)) and (rec["state"], rec["exit_code"]) == ("FAILED", 3)
    assert not apply(rec, Started(13.0))          # a late start line of an ended job changes nothing
    assert apply(rec, Handed("slurm", "b2", 20.0)) and rec["attempt"] == 2
    assert rec["exit_code"] is None and rec["job_id"] is None and rec["started"] is None


def test_signals_term_and_int_mean_cancelled():
    for sig, state in (("TERM", "CANCELLED"), ("INT", "CANCELLED"), ("KILL", "FAILED"), (None, "COMPLETED")):
        rec = record(state="RUNNING", attempt=1)
        apply(rec, Exited(0 if sig is None else 143, 1.0, sig))
        assert rec["state"] == state


def test_the_schedulers_verdict_wins_only_where_the_job_cannot_know():
    rec = record(state="RUNNING", attempt=1)
    apply(rec, Exited(143, 5.0, "TERM"))          # the wrapper saw SIGTERM at the time limit
    assert rec["state"] == "CANCELLED"
    assert apply(rec, Verdict("TIMEOUT")) and rec["state"] == "TIMEOUT" and rec["exit_code"] == 143
    assert not apply(rec, Verdict("COMPLETED"))   # the job's own exit code stays
    assert not apply(rec, Verdict("RUNNING"))     # an ended job never runs again


def test_a_failure_never_gets_exit_code_0():
    rec = record(state="RUNNING", attempt=1)
    apply(rec, Verdict("FAILED", exit_code=0, signal="KILL"))
    assert rec["state"] == "FAILED" and rec["exit_code"] is None and rec["signal"] == "KILL"


def test_refused_and_unsent_undo_a_handing():
    rec = record(state="FAILED", attempt=1, exit_code=2, queue="local", batch="b0")
    before = dict(rec)
    apply(rec, Handed("local", "b1", 1.0))
    assert apply(rec, Refused(before)) and rec == before
    apply(rec, Handed("local", "b1", 1.0))
    assert apply(rec, Unsent()) and (rec["state"], rec["attempt"], rec["batch"]) == ("UNKNOWN", 1, None)
    fresh = record(state="SUBMITTING", attempt=1)
    assert apply(fresh, Unsent()) and (fresh["state"], fresh["attempt"]) == ("NEW", 0)
    assert not apply(rec, Refused(before))        # only a SUBMITTING record can be refused


def test_cancel_vanish_requeue_and_recover():
    rec = record(state="PENDING", attempt=1, job_id="3")
    assert apply(rec, Cancelled(9.0)) and rec["state"] == "CANCELLED" and rec["ended"] == 9.0
    assert not apply(rec, Cancelled(10.0))
    rec = record(state="RUNNING", attempt=1)
    assert apply(rec, Vanished("FAILED", 4.0, "gone")) and rec["reason"] == "gone"
    with pytest.raises(TypeError):
        apply(rec, "not an event")
    rec = record(state="RUNNING", attempt=1, started=2.0, node="n")
    assert apply(rec, Requeued("no runner")) and (rec["state"], rec["started"]) == ("PENDING", None)
    rec = record()
    assert apply(rec, Recovered(2, "sge", "b", 5.0, started=False))
    assert (rec["state"], rec["attempt"], rec["queue"]) == ("SUBMITTING", 2, "sge")
    assert not apply(rec, Recovered(1, "sge", "a", 1.0, started=True))   # an older attempt


def test_unlisted_keeps_its_first_time_while_the_job_is_seen_running():
    from param_search.lifecycle import Unlisted, unlisted_since

    rec = record(state="RUNNING", attempt=1, started=5.0)
    assert apply(rec, Unlisted(1_800_000_000.0)) and unlisted_since(rec) == 1_800_000_000.0
    assert not apply(rec, Unlisted(1_800_000_100.0))
    apply(rec, Started(5.0, "n1"))              # its start line, read again at every refresh
    assert unlisted_since(rec) == 1_800_000_000.0
    apply(rec, Verdict("RUNNING"))              # listed again
    assert unlisted_since(rec) is None


def test_a_pruned_trial_stays_pruned_whatever_the_scheduler_or_its_exit_line_say():
    rec = record(state="RUNNING", attempt=1)
    assert apply(rec, Pruned(5.0, "pruned at step 3 (loss 0.9)"))
    assert (rec["state"], rec["ended"]) == ("PRUNED", 5.0)
    assert not apply(rec, Cancelled(6.0))                     # the queue then cancels its job
    assert not apply(rec, Exited(143, 6.0, "TERM"))           # the killed job's exit line
    assert not apply(rec, Verdict("CANCELLED", exit_code=0))  # the scheduler's word on it
    assert rec["state"] == "PRUNED"
    assert not apply(record(state="COMPLETED", attempt=1), Pruned(5.0, "late"))   # ended: too late
