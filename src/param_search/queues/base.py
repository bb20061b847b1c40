"""The contract every queue (scheduler backend) implements."""
from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import OptionError
from ..retry import Resources

if TYPE_CHECKING:
    import pyarrow as pa

    from ..experiment import Experiment
    from ..record import Record


class Queue(ABC):
    """A place jobs run. Subclasses set ``name`` and implement the four methods.

    Records are the experiment index's dicts; a queue reports what it learns as lifecycle
    events (``lifecycle.apply``), never by writing a state itself. The wrapper's files in each
    job folder are read by the caller first, so a queue only reports what the scheduler
    knows (pending reasons, ids, and verdicts such as TIMEOUT).
    """

    name: ClassVar[str]
    #: The constructor arguments this queue was given (JSON-able), stored with every batch
    #: it submits so that any later process rebuilds the very same queue.
    settings: dict[str, Any]

    def __new__(cls, *args: Any, **kwargs: Any) -> "Queue":
        queue = super().__new__(cls)
        try:
            bound = inspect.signature(cls.__init__).bind(queue, *args, **kwargs)
        except TypeError as exc:
            raise OptionError(f"{cls.__name__}(): {exc}") from None
        queue.settings = {k: list(v) if isinstance(v, tuple) else v
                          for k, v in list(bound.arguments.items())[1:]}
        return queue

    @abstractmethod
    def submit(self, exp: "Experiment", records: list["Record"], scripts: "list[str] | None" = None) -> None:
        """Hand records (state SUBMITTING, attempt set) to the scheduler; set job_id and PENDING.

        ``scripts`` are the records' rendered scripts when the caller has them at hand
        (else a queue that needs them reads ``job.sh``). Raises on refusal; records the scheduler accepted before the refusal must be updated.
        """

    @abstractmethod
    def reconcile(self, exp: "Experiment", records: list["Record"]) -> "list[Record] | None":
        """For records left SUBMITTING by a dead controller, find them in the scheduler.

        Found ones get their job_id and PENDING; the rest stay SUBMITTING (to be sent again),
        except those returned: the scheduler cannot tell now (e.g. its accounting is down),
        so they are asked about again at the next refresh, never sent twice.
        """

    @abstractmethod
    def poll(self, exp: "Experiment", records: list["Record"], snapshot: "pa.Table | None" = None) -> None:
        """Refresh active records from the scheduler, in as few calls as possible.

        ``snapshot``: what :meth:`snapshot` already answered in this refresh, if anything.
        """

    @abstractmethod
    def cancel(self, exp: "Experiment", records: list["Record"]) -> None:
        """Cancel pending and running records."""

    #: Whether ``ps.submit``/``ps.resubmit`` wait for the jobs unless told (True where the
    #: jobs run in the submitting process).
    waits_by_default: ClassVar[bool] = False
    #: Whether the scheduler may run an attempt again after a signal stopped it (a requeue):
    #: such a stop is then no end until the scheduler says so (``attempts.observe(hold=)``).
    requeues: ClassVar[bool] = False
    #: Whether :meth:`submit` reaches outside the experiment (a scheduler): the intent to
    #: send is then written before, so that a crash in between finds the jobs again. A
    #: queue that only changes the records (the local one) needs no such write.
    submits_outside: ClassVar[bool] = True

    def after_submit(self, exp: "Experiment", records: list["Record"]) -> None:
        """Called once a submission is recorded, when the caller does not wait for it."""

    def drive(self, exp: "Experiment", names: "list[str] | None", progress: bool = True,
              deadline: float | None = None, workers: int | None = None) -> bool:
        """Do in this process what the jobs among ``names`` need to progress (a scheduler's
        jobs need nothing: return False; the local queue runs the jobs no runner owns)."""
        return False

    #: Lower-case fragments of a refusal because a submit limit is reached (too many jobs
    #: queued by this user): the jobs are held back, not failed.
    limit_refusals: ClassVar[tuple[str, ...]] = ()

    def resource_syntax(self) -> Resources | None:
        """How this queue reads and writes time limits and memory (None: it has neither, so a
        retry policy can only send jobs again as they were)."""
        return None

    def with_resources(self, settings: dict[str, Any], resources: dict[str, str | None]) -> dict[str, Any]:
        """The queue settings for an attempt asking for ``resources`` (``time_limit``, ``mem_limit``,
        ``excluded``)."""
        if resources:
            raise OptionError(f"the {self.name} queue has no time limits, memory or nodes to change")
        return settings

    def stepper(self, exp: "Experiment") -> Any:
        """For a queue whose jobs run in the calling process: an object that a caller's own loop
        calls as ``stepper(wait, claim, write)`` to move them on (claim the jobs sent since,
        start them, wait up to ``wait`` s for one to end), with ``start`` (the same without
        waiting), ``take``, ``news`` and ``written`` (see ``LocalStepper``), and
        ``stepper.close()`` at the end. None
        (the default): the scheduler runs the jobs."""
        return None

    def run_detached(self, exp: "Experiment") -> bool:
        """Like :meth:`drive`, but in a process of its own that outlives the caller (a
        scheduler's jobs need none: return False)."""
        return False

    def snapshot(self, job_ids: "pa.Array") -> "pa.Table | None":
        """Optional fast path: the scheduler's view of these jobs (an Arrow string array of
        their ids) in one batched query.

        An Arrow table with columns ``job_id``, ``state`` (our names), ``reason``, ``node``
        and ``submit`` (epoch seconds), one row per job the scheduler lists. Jobs whose
        state it confirms are updated column-wise, without building their records; the
        others are passed to ``poll(exp, records, snapshot=table)``, which then uses the
        table instead of asking again. ``None`` (the default): no fast path.
        """
        return None
