"""The queues by name: ``use='slurm'`` and the rest, and the queue a batch was sent to.

Backends are imported on first use, so ``import param_search`` stays fast.
"""
from __future__ import annotations

import importlib
import inspect
from typing import TYPE_CHECKING, Any

from ..errors import OptionError, ParamSearchError
from .base import Queue

if TYPE_CHECKING:
    from ..experiment import Experiment

#: Queue name -> (module in this package, class name).
BACKENDS = {
    "local": ("local", "LocalQueue"),
    "slurm": ("slurm", "SlurmQueue"),
    "torque": ("torque", "TorqueQueue"),
    "pbs": ("torque", "TorqueQueue"),
    "sge": ("sge", "SGEQueue"),
}
#: The queue of jobs whose batch recorded none (made by param_search 0.2, or never sent).
DEFAULT = "local"


def queue_class(name: str) -> type[Queue]:
    try:
        module, cls = BACKENDS[str(name).lower()]
    except KeyError:
        raise ParamSearchError(
            f"unknown queue {name!r}; use one of {', '.join(sorted(BACKENDS))} or a Queue instance"
        ) from None
    return getattr(importlib.import_module(f".{module}", __package__), cls)


def make_queue(use: "str | Queue", **options: Any) -> Queue:
    """The queue for ``use`` ('local', 'slurm', ... or a Queue instance)."""
    if isinstance(use, Queue):
        if options:
            raise OptionError(
                f"options {sorted(options)} were given with a {type(use).__name__} instance; "
                "pass them to its constructor instead"
            )
        return use
    cls = queue_class(use)
    valid = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise OptionError(
            f"unknown option {unknown[0]!r} for use={use!r}; valid options: {', '.join(valid)}"
        )
    return cls(**options)


def queue_for(exp: "Experiment", name: str | None, batch: str | None = None) -> Queue:
    """The queue that ``batch`` was submitted to, rebuilt from the settings stored with it.

    A batch that stored none (an older version's), or settings this version no longer
    accepts, give the queue of that name with default settings: enough to ask about and
    cancel its jobs, which is what this is used for (``resubmit`` checks settings itself).
    """
    name = name or DEFAULT
    stored = exp.batch_settings(batch) if batch else None
    if stored is not None and stored.get("queue") == name:
        try:
            return make_queue(name, **stored.get("settings", {}))
        except OptionError:
            pass
    return make_queue(name)
