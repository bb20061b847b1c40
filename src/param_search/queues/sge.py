"""Grid Engine's dialect (Son of Grid Engine, Univa/Altair GE): ``qsub -t`` arrays within
max_aj_tasks, one ``qstat -xml`` per refresh, ``qacct`` for ended jobs, ``qdel``.

The argv pieces and parsers of SGE's text are in sge_text.py. Each chunk's tasks run the
experiment's wrapper with the chunk's map file as argument (SGE's qsub passes script
arguments; ``$SGE_TASK_ID`` counts from 1). ``#$`` directives in the rendered scripts apply
to their chunk, except name, logs, array and shell, which param_search sets itself.

A job in an error state (``Eqw``: e.g. its output folder is missing) never runs by itself:
it is recorded FAILED with SGE's reason and deleted from the queue, so that a later admin
``qmod -cj`` cannot run an attempt that was already given up (no double runs).
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import CommandError, OptionError, QueueError
from ..lifecycle import Vanished, apply
from ..proc import call
from ..states import ACTIVE_STATES, FAILED
from . import sge_text as text
from .batch import BatchQueue, arg_list

if TYPE_CHECKING:
    from ..experiment import Experiment
    from ..record import Record

TRANSIENT = ("unable to contact qmaster", "failed receiving gdi request", "commlib error",
             "got no connection", "try again later", "timed out", "connection refused")


class SGEQueue(BatchQueue):
    """Submit to Grid Engine with job arrays (or one qsub per job with ``array=False``).

    Args:
        queue: the cluster queue (``-q``).
        pe, slots: parallel environment and its slots (``-pe smp 4``).
        h_rt: hard run time limit per job (``-l h_rt=1:00:00``); over it the job is TIMEOUT.
        h_vmem (or ``mem``): hard memory limit (``-l h_vmem=4G``); over it, OUT_OF_MEMORY.
        project: ``-P``.
        extra_args: more qsub arguments, e.g. ``['-l', 'gpu=1', '-V']``.
        array: submit job arrays (default) or one job per qsub call.
        max_running: at most this many tasks of each array run at once (``-tc N``).
        max_array_size: tasks per array (default: max_aj_tasks from ``qconf -sconf``).
        submit_timeout: how long transient qsub refusals are retried, in seconds.
    """

    name = "sge"
    directive = "#$"
    submit_command = "qsub"
    transient = TRANSIENT
    limit_refusals = ("jobs are allowed per user", "max_u_jobs", "jobs exceeds", "max_jobs")
    time_setting, mem_setting = "h_rt", "h_vmem"
    mem_decimal_lower = True   # sge_types(1): k, m, g are 1000-based, K, M, G 1024-based

    def __init__(self, queue: str | None = None, pe: str | None = None, slots: int | None = None,
                 h_rt: str | None = None, h_vmem: str | None = None, mem: str | None = None,
                 project: str | None = None, extra_args: Sequence[str] = (), array: bool = True,
                 max_running: int | None = None, max_array_size: int | None = None,
                 submit_timeout: float = 120.0):
        if mem is not None and h_vmem is not None:
            raise OptionError("give the memory limit once: mem= is another name for h_vmem=")
        options = text.resource_options(queue, pe, slots, h_rt, h_vmem or mem, project) + arg_list(extra_args, "qsub")
        super().__init__(options, array, max_running, max_array_size, submit_timeout)
        self._errored: list["Record"] = []

    # -- submit ------------------------------------------------------------------------
    def own_options(self, options: list[str]) -> list[str]:
        return text.drop_own_options(options)

    def resource_options(self, options: list[str]) -> dict[str, str]:
        resources = text.split_resources(options)[1]
        return {k: resources[r] for k, r in (("time_limit", "h_rt"), ("mem_limit", "h_vmem")) if resources.get(r)}

    def with_resources(self, settings: dict[str, Any], resources: dict[str, str | None]) -> dict[str, Any]:
        settings = dict(settings)
        if "mem_limit" in resources and settings.get("mem") is not None:
            settings["mem"] = None   # another name for h_vmem, which the new value replaces
        return super().with_resources(settings, resources)

    def discover_max_array_size(self) -> int:
        try:
            return text.parse_max_aj_tasks(call(["qconf", "-sconf"]))
        except CommandError:
            return text.DEFAULT_MAX_AJ_TASKS

    def submit_argv(self, exp: "Experiment", name: str, map_path: str, size: int,
                    directives: list[str]) -> list[str]:
        array = text.array_spec(size, self.max_running) if self.array else []
        log = f"{exp.state_dir}/batches/{name}.log"
        return text.qsub_argv(name, log, exp.work_dir, directives + self.options, array,
                              exp.wrapper, [f"@{map_path}"])

    def parse_submit(self, output: str) -> str:
        return text.parse_qsub(output)

    def task_id(self, job_id: str, index: int) -> str:
        return text.task_id(job_id, index)

    # -- status and accounting ---------------------------------------------------------
    def status_argv(self, ids: list[str]) -> list[str]:
        return ["qstat", "-xml"]   # the user's jobs; qstat -xml takes no job ids

    def status_text(self, ids: list[str]) -> str:
        return call(self.status_argv(ids))   # one call, whatever the number of jobs

    def parse_status(self, output: str) -> dict[str, dict[str, Any]]:
        return text.parse_qstat_xml(output)

    def accounting(self, records: list["Record"]) -> dict[str, dict] | None:
        """One ``qacct -j '<batch>.*'`` per batch (qacct takes one id or one name pattern)."""
        out: dict[str, dict] = {}
        for batch in sorted({r["batch"] for r in records if r["batch"]}):
            try:
                out.update(text.parse_qacct(call(["qacct", "-j", f"{batch}.*"])))
            except CommandError as exc:
                if not text.qacct_gone(exc.stderr, exc.stdout):
                    return None   # accounting cannot be read
            except QueueError:
                return None
        return out   # batches with nothing recorded yet add nothing

    def vanished(self, record: "Record", accounted: dict) -> bool:
        """An array task deleted while pending leaves qstat and gets no accounting record,
        while the tasks of its array that ran have one (a whole job deleted while pending
        leaves no trace at all: it is concluded after ``vanish_grace``)."""
        number = text.job_number(record["job_id"])
        return (record["started"] is None and "." in record["job_id"]
                and any(text.job_number(i) == number for i in accounted))

    # -- jobs in error -----------------------------------------------------------------
    def poll(self, exp: "Experiment", records: list["Record"], snapshot: Any = None) -> None:
        self._errored = []
        super().poll(exp, records, snapshot)
        if self._errored:
            self._give_up(self._errored)

    def awaits_accounting(self, info: dict) -> bool:
        return "E" not in (info.get("native") or "") and super().awaits_accounting(info)

    def _apply_info(self, exp: "Experiment", record: "Record", info: dict) -> None:
        if "E" in (info.get("native") or "") and record["state"] in ACTIVE_STATES:
            self._errored.append(record)
        else:
            super()._apply_info(exp, record, info)

    def _give_up(self, records: list["Record"]) -> None:
        """Record jobs in SGE's error state FAILED with its reason, and delete them."""
        numbers = sorted({text.job_number(r["job_id"]) for r in records})
        try:
            reasons = text.parse_qstat_j_xml_reasons(call(["qstat", "-j", ",".join(numbers), "-xml"]))
        except (CommandError, QueueError):
            reasons = {}
        self.kill([r["job_id"] for r in records])
        now = time.time()
        for record in records:
            why = reasons.get(text.job_number(record["job_id"]), "no reason given (see qstat -j)")
            apply(record, Vanished(FAILED, now, f"Grid Engine could not run the job (state Eqw): {why}"))

    # -- cancel and reconcile ----------------------------------------------------------
    def cancel_argv(self, ids: list[str]) -> list[str]:
        return ["qdel", *ids]

    def only_gone(self, exc: CommandError) -> bool:
        return text.qdel_gone(exc.stdout, exc.stderr)

    def find_chunks(self, exp: "Experiment", names: list[str], since: float) -> dict[str, str]:
        """Chunks still queued or running (qstat), then ended ones (qacct by batch)."""
        wanted = set(names)
        found = {info["name"]: text.job_number(job_id)
                 for job_id, info in text.parse_qstat_xml(call(["qstat", "-xml"])).items()
                 if info.get("name") in wanted}
        for batch in sorted({n.rsplit(".", 1)[0] for n in wanted - set(found)}):
            try:
                ended = text.parse_qacct(call(["qacct", "-j", f"{batch}.*"]))
            except CommandError:
                continue
            for job_id, info in ended.items():
                if info.get("name") in wanted and (info.get("submit") or since) >= since - 60:
                    found.setdefault(info["name"], text.job_number(job_id))
        return found
