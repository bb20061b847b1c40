"""The one job-state vocabulary."""
from param_search import JobState


def test_job_states_know_which_are_final():
    assert JobState.TIMEOUT.is_final and not JobState.TIMEOUT.is_active
    assert JobState.PENDING.is_active and not JobState.PENDING.is_final
    assert not JobState.NEW.is_final and not JobState.NEW.is_active
    assert str(JobState.OUT_OF_MEMORY) == "OUT_OF_MEMORY"


def test_pruned_is_a_final_state_no_retry_policy_names():
    from param_search.retry import RETRYABLE

    assert JobState.PRUNED.is_final and not JobState.PRUNED.is_active
    assert "PRUNED" not in RETRYABLE
