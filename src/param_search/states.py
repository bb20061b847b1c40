"""One normalized vocabulary of job states, shared by every queue."""
from __future__ import annotations

import enum


class JobState(str, enum.Enum):
    """The state of one job attempt, whatever queue it went to.

    ``NEW`` jobs are set up on disk but were never handed to a queue;
    ``SUBMITTING`` jobs were handed to a queue whose acceptance is not yet
    recorded (a controller died in between); ``PRUNED`` trials were stopped early by an
    adaptive search's pruner (``ps.optimize``); the rest mirror Slurm's names.
    """

    NEW = "NEW"
    SUBMITTING = "SUBMITTING"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    NODE_FAIL = "NODE_FAIL"
    PREEMPTED = "PREEMPTED"
    PRUNED = "PRUNED"
    UNKNOWN = "UNKNOWN"

    def __str__(self) -> str:
        return self.value

    @property
    def is_final(self) -> bool:
        """True if the attempt has ended and will not change state again."""
        return self.value in FINAL_STATES

    @property
    def is_active(self) -> bool:
        """True if the attempt is handed to a queue and not yet ended."""
        return self.value in ACTIVE_STATES


# The states as plain strings (what records and tables hold), for fast comparisons.
NEW, SUBMITTING, PENDING, RUNNING = "NEW", "SUBMITTING", "PENDING", "RUNNING"
COMPLETED, FAILED, CANCELLED, TIMEOUT = "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"
OUT_OF_MEMORY, NODE_FAIL, PREEMPTED, UNKNOWN = "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "UNKNOWN"
PRUNED = "PRUNED"

FINAL_STATES = frozenset(
    {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "PRUNED"}
)
ACTIVE_STATES = frozenset({"SUBMITTING", "PENDING", "RUNNING", "UNKNOWN"})
#: States the scheduler knows better than a job's own exit code.
SCHEDULER_VERDICTS = frozenset({"CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED"})
#: Not a job state: a scheduler's word that a job ended without saying how (its own status
#: file then decides).
ENDED = "ENDED"
#: What ``resubmit`` sends again by default.
RESUBMIT_STATES = ("FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "CANCELLED", "PREEMPTED")


def signal_name(number: int) -> str:
    """``9`` -> ``'KILL'`` (the number as text if it names no signal)."""
    import signal

    try:
        return signal.Signals(number).name[3:]
    except ValueError:
        return str(number)
