"""The errors param_search raises: one small hierarchy.

Every message names the problem and, where there is one, the fix.
"""
from __future__ import annotations


class ParamSearchError(Exception):
    """Base class of every error raised by param_search."""


class ParamSpaceError(ParamSearchError, ValueError):
    """A parameter space is malformed or used in a way it does not support."""


class OptionError(ParamSearchError, ValueError):
    """An argument or option has a value the function cannot use (the message says which)."""


class ColumnError(ParamSearchError, KeyError):
    """A table lacks a column the call names."""

    def __str__(self) -> str:   # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class TemplateError(ParamSearchError, ValueError):
    """A job name or template cannot be rendered for some parameter setting."""


class ExperimentError(ParamSearchError):
    """The experiment directory is missing, not an experiment, or inconsistent."""


class ConflictError(ExperimentError):
    """A job already exists with different content (e.g. a changed template)."""


class QueueError(ParamSearchError):
    """A queue (scheduler) refused a request or could not be reached."""


class RefusedError(QueueError):
    """The scheduler definitely did not take a submission (it refused it, or its command is
    not installed); a submission whose outcome is unknown (a timeout) raises QueueError."""


class SubmitLimitError(RefusedError):
    """The scheduler refused jobs because a submit limit is reached (too many queued)."""


class CommandNotFoundError(RefusedError):
    """A scheduler's command is not installed (or not on PATH)."""


class CommandError(QueueError):
    """An external command exited with a non-zero code.

    Attributes:
        argv: the command line that ran.
        returncode: its exit code.
        stdout: what it printed on stdout.
        stderr: what it printed on stderr.
    """

    def __init__(self, argv: list[str], returncode: int, stdout: str, stderr: str):
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        message = stderr.strip() or stdout.strip() or "(no output)"
        super().__init__(
            f"command {' '.join(self.argv)!r} failed with exit code {returncode}: {message}"
        )


class MetricsError(ParamSearchError):
    """Metrics could not be read for any job."""
