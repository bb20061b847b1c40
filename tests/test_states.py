"""The one job-state vocabulary."""
from param_search import JobState


def test_job_states_know_which_are_final():
    assert JobState.TIMEOUT.is_final and not JobState.TIMEOUT.is_active
    assert JobState.PENDING.is_active and not JobState.PENDING.is_final
    assert not JobState.NEW.is_final and not JobState.NEW.is_active
    assert str(JobState.OUT_OF_MEMORY) == "OUT_OF_MEMORY"
