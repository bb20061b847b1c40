"""Torque/PBS: job arrays (``qsub -t``), one ``qstat -f`` per refresh, ``qdel``.

Every qsub call submits one chunk: a small driver script next to the chunk's map file
(``<batch>.a<k>.sh`` and ``.map`` in ``.param_search/batches``) that runs line
``$PBS_ARRAYID`` of the map file through the experiment's wrapper. qsub takes no script
arguments, hence the driver. The chunk is named ``<batch>.a<k>`` (``-N``) so a controller
that died before recording the ids finds its jobs again by ``Job_Name``.

``#PBS`` directives in the rendered scripts are applied to the chunk, except job name,
output, error, join and array, which param_search sets itself. All ``-l`` resources (from
the directives, then from the queue's options, which win) are merged into one ``-l`` option.

The argv pieces and parsers of Torque's text are in torque_text.py.

Slurm's Torque wrappers (package slurm-wlm-torque) differ from Torque: ``qstat`` has no
``-t`` and lists array tasks under per-task Slurm ids without their index, ``qstat -f``
has no ``exit_status``, and ``qdel`` reads ``123[4]`` as ``123``, the whole array. With them,
array tasks are tracked through the wrapper's status files alone, and a subset of an array
cannot be cancelled while other tasks of it are still active (QueueError, nothing killed).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import CommandError
from ..proc import call
from .batch import BatchQueue, arg_list, chunks
from .torque_text import (
    DEFAULT_MAX_ARRAY_SIZE, array_spec, chunks_in_qstat, driver_text, drop_own_options, id_key,
    parse_max_array_size, parse_qstat_full, parse_qsub, qdel_ids, qsub_argv, query_ids, split_resources,
    queue_options, task_id, wrapper_task,
)

if TYPE_CHECKING:
    from ..experiment import Experiment
    from ..record import Record

TRANSIENT = ("timed out", "temporarily", "try again", "cannot connect", "connection refused",
             "unable to contact", "resource temporarily unavailable", "pbs_server busy")
#: qstat programs found to lack ``-t`` (Slurm's wrapper), so later calls skip the retry.
_NO_EXPAND: set[str] = set()


class TorqueQueue(BatchQueue):
    """Submit to Torque/PBS with job arrays (or one qsub per job with ``array=False``).

    Args:
        queue: the destination queue (``-q``).
        walltime, mem: ``-l walltime=``, ``-l mem=`` for every job, overriding directives.
        nodes, ppn: ``-l nodes=N:ppn=M`` (``ppn`` alone means one node).
        account: ``-A``.
        extra_args: more qsub arguments, e.g. ``['-l', 'pmem=2gb', '-V']``.
        array: submit job arrays (default) or one job per qsub call.
        max_running: at most this many tasks of each array run at once (``-t 0-9%N``).
        max_array_size: tasks per array (default: the server's ``max_job_array_size``
            from ``qstat -B -f``, else 1000).
        submit_timeout: how long transient qsub refusals are retried, in seconds.
    """

    name = "torque"
    directive = "#PBS"
    submit_command = "qsub"
    transient = TRANSIENT
    gone = ("unknown job", "already", "invalid job id", "invalid state")
    status_lists_ended = True
    lists_every_job = False   # Slurm's wrapper lists no array task by its index
    limit_refusals = ("maximum number of jobs", "would exceed", "qosmaxsubmitjobperuserlimit",
                      "assocmaxsubmitjoblimit", "job submit limit")
    time_setting, mem_setting = "walltime", "mem"
    mem_unit = "mb"

    def __init__(self, queue: str | None = None, walltime: str | None = None, mem: str | None = None,
                 nodes: int | None = None, ppn: int | None = None, account: str | None = None,
                 extra_args: Sequence[str] = (), array: bool = True, max_running: int | None = None,
                 max_array_size: int | None = None, submit_timeout: float = 120.0):
        options = queue_options(queue, walltime, mem, nodes, ppn, account) + arg_list(extra_args, "qsub")
        super().__init__(options, array, max_running, max_array_size, submit_timeout)

    def own_options(self, options: list[str]) -> list[str]:
        return drop_own_options(options)

    def resource_options(self, options: list[str]) -> dict[str, str]:
        resources = split_resources(options)[1]
        return {k: resources[r] for k, r in (("time_limit", "walltime"), ("mem_limit", "mem")) if resources.get(r)}

    def discover_max_array_size(self) -> int:
        """The server's max_job_array_size, else 1000."""
        try:
            return parse_max_array_size(call(["qstat", "-B", "-f"]))
        except CommandError:
            return DEFAULT_MAX_ARRAY_SIZE

    def submit_argv(self, exp: "Experiment", name: str, map_path: str, size: int,
                    directives: list[str]) -> list[str]:
        """qsub takes no script arguments: a driver script next to the map file names it."""
        base = map_path[: -len(".map")]
        write_driver(f"{base}.sh", exp.wrapper, map_path)
        array = array_spec(size, self.max_running) if self.array else None
        return qsub_argv(name, f"{base}.log", exp.work_dir, f"{base}.sh", directives + self.options, array)

    def parse_submit(self, text: str) -> str:
        return parse_qsub(text)

    def task_id(self, job_id: str, index: int) -> str:
        return task_id(job_id, index)

    def key(self, job_id: str) -> tuple[str, int | None] | None:
        return id_key(job_id)

    def query_ids(self, job_ids: list[str]) -> list[str]:
        return query_ids(job_ids)

    def status_argv(self, ids: list[str]) -> list[str]:
        return ["qstat", "-f", "-1", *ids]

    def status_text(self, ids: list[str]) -> str:
        """``qstat -f -1 [-t]``: pending and running jobs, and ended ones Torque still keeps.

        A PENDING record whose job qstat no longer calls pending (or does not list: Slurm's
        wrapper never lists array tasks by index) gets its wrapper files read; jobs qstat
        does not list otherwise keep their state.
        """
        return qstat_full(ids)

    def parse_status(self, text: str) -> dict:
        return parse_qstat_full(text)

    def cancel_argv(self, ids: list[str]) -> list[str]:
        return ["qdel", *ids]

    def cancel_ids(self, exp: "Experiment", records: list["Record"]) -> list[str]:
        bare = any(wrapper_task(r["job_id"]) for r in records if r["job_id"])
        known = [r for r in exp.load_records().values() if r["queue"] == self.name] if bare else []
        return qdel_ids(records, known)

    def find_chunks(self, exp: "Experiment", names: list[str], since: float) -> dict[str, str]:
        return chunks_in_qstat(qstat_full([]), names)


# -- files and calls ----------------------------------------------------------------------
def write_driver(path: str, wrapper: str, map_path: str) -> None:
    """Write the chunk's driver script (executable)."""
    with open(path, "w") as f:
        f.write(driver_text(wrapper, map_path))
    os.chmod(path, 0o755)


def qstat_full(ids: list[str]) -> str:
    """``qstat -f -1 [-t] ids`` (``-t`` expands Torque arrays), 1,000 ids per call.

    With no ids every job is listed. Never raises on a refusal: a failed call yields what it
    printed on stdout (Torque prints the jobs it knows and complains about the others).
    """
    if not ids:
        return _qstat(["qstat", "-f", "-1"])
    return "\n".join(_qstat_ids(part) for part in chunks(ids))


def _qstat_ids(ids: list[str]) -> str:
    """One qstat call for ``ids``; a qstat without ``-t`` (Slurm's wrapper) is asked again without."""
    if any("[]" in i for i in ids) and "qstat" not in _NO_EXPAND:
        try:
            return call(["qstat", "-f", "-1", "-t", *ids])
        except CommandError as exc:
            if "unknown option: t" not in exc.stderr.lower():
                return exc.stdout
            _NO_EXPAND.add("qstat")
    return _qstat(["qstat", "-f", "-1", *ids])


def _qstat(argv: list[str]) -> str:
    try:
        return call(argv)
    except CommandError as exc:
        return exc.stdout
