"""The contract every queue (scheduler backend) implements."""
from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import OptionError, ParamSearchError

if TYPE_CHECKING:
    import pyarrow as pa

    from ..experiment import Experiment, Record


class Queue(ABC):
    """A place jobs run. Subclasses set ``name`` and implement the four methods.

    Records are the experiment index's dicts; methods update them in place. The wrapper's
    files in each job folder are read by the caller first, so a queue only reports what
    the scheduler knows (pending reasons, ids, and verdicts such as TIMEOUT).
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
    def reconcile(self, exp: "Experiment", records: list["Record"]) -> None:
        """For records left SUBMITTING by a dead controller, find them in the scheduler.

        Found ones get their job_id and PENDING; the rest stay SUBMITTING (to be sent again).
        """

    @abstractmethod
    def poll(self, exp: "Experiment", records: list["Record"], snapshot: "pa.Table | None" = None) -> None:
        """Refresh active records from the scheduler, in as few calls as possible.

        ``snapshot``: what :meth:`snapshot` already answered in this refresh, if anything.
        """

    @abstractmethod
    def cancel(self, exp: "Experiment", records: list["Record"]) -> None:
        """Cancel pending and running records."""

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



def make_queue(use: "str | Queue", **options: Any) -> Queue:
    """The queue for ``use`` ('local', 'slurm', ... or a Queue instance)."""
    from . import local, slurm, torque

    if isinstance(use, Queue):
        if options:
            raise ParamSearchError(
                f"options {sorted(options)} were given with a {type(use).__name__} instance; "
                "pass them to its constructor instead"
            )
        return use
    classes = {"local": local.LocalQueue, "slurm": slurm.SlurmQueue, "torque": torque.TorqueQueue,
               "pbs": torque.TorqueQueue}
    try:
        cls = classes[str(use).lower()]
    except KeyError:
        raise ParamSearchError(
            f"unknown queue {use!r}; use one of {', '.join(sorted(classes))} or a Queue instance"
        ) from None
    valid = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise OptionError(
            f"unknown option {unknown[0]!r} for use={use!r}; valid options: {', '.join(valid)}"
        )
    return cls(**options)


def queue_for(exp: "Experiment", name: str, batch: str | None = None) -> Queue:
    """The queue that ``batch`` was submitted to, rebuilt from the settings stored with it
    (a queue of that name with default settings if the batch stored none)."""
    stored = exp.batch_settings(batch) if batch else None
    if stored is not None and stored.get("queue") == name:
        return make_queue(name, **stored.get("settings", {}))
    return make_queue(name)
