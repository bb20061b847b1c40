"""param_search: parameter sweeps on compute clusters.

Define a space of parameters, fill a job-script template per point, submit one job per
point to Slurm or your own machine, come back later to check, resubmit and collect.

>>> import param_search as ps
>>> space = ps.ParamSpace(lr=[0.1, 0.01], depth=range(3))
>>> len(space)
6
"""
from .api import cancel, load, resubmit, status, submit, wait
from .errors import (ColumnError, CommandError, ConflictError, ExperimentError, MetricsError, OptionError,
                     ParamSearchError, ParamSpaceError, QueueError, RefusedError, SubmitLimitError,
                     TemplateError)
from .jobview import show
from .metrics import metrics
from .optimize import optimize
from .trials import best, plot_history
from .plot import plot
from .queues.base import Queue
from .queues.local import LocalQueue
from .report import report
from .retry import Retry
from .space import Params, ParamSpace
from .states import JobState

__version__ = "0.2.0"


def __getattr__(name: str):
    """Scheduler backends load on first use, keeping ``import param_search`` fast."""
    from .queues.registry import queue_class

    backends = {"SlurmQueue": "slurm", "TorqueQueue": "torque", "SGEQueue": "sge"}
    if name in backends:
        return queue_class(backends[name])
    raise AttributeError(f"module 'param_search' has no attribute {name!r}")


__all__ = [
    "ParamSpace", "Params", "submit", "status", "load", "wait", "resubmit", "cancel", "metrics",
    "plot", "Queue", "LocalQueue", "SlurmQueue", "TorqueQueue", "SGEQueue", "JobState", "ParamSearchError", "ParamSpaceError",
    "TemplateError", "ExperimentError", "ConflictError", "QueueError", "CommandError", "MetricsError",
    "OptionError", "ColumnError", "RefusedError", "SubmitLimitError", "Retry", "optimize", "best",
    "plot_history", "report", "show",
]
