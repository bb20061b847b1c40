"""Adaptive search over cluster jobs: ``ps.optimize`` asks Optuna for trials, sends each as an
ordinary job of the experiment, and tells Optuna what each job's metrics file says.

It is the one loop (:mod:`param_search.loop`) with its own steps: tell the trials whose
jobs ended, prune running ones (their metrics rows so far are intermediate values), ask for
new trials up to ``max_running`` and send them. No barrier between batches: a trial that
ends is told and replaced at the next refresh, or, where this process runs the jobs, the
moment it ends.

Nothing lives only in this process. Each trial is a job whose ``params.json`` holds its
values and its number (the ``trial`` parameter, so two trials never share a job); the
search's settings are in ``.param_search/optimize.json``. Running the same call again
rebuilds the study from the files: ended trials are told again, queued and running ones
are adopted, and the total never exceeds ``n_trials``.
"""
from __future__ import annotations

import contextlib
import inspect
import json
import math
import os
import pickle
import shutil
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import api, loop
from .attempts import finalize
from .dispatch import apply_policy, new_batch, retry_policy, send, to_retry, will_retry
from .errors import ExperimentError, MetricsError, OptionError, ParamSpaceError, QueueError, TemplateError
from .experiment import Experiment, merge
from .record_map import RecordMap
from .files import atomic_write
from .lockfile import held
from .lifecycle import Handed, Pruned, apply
from .proc import start_detached
from .progress import quiet_auto_import
from .metrics import DEFAULT_PATTERN, job_rows
from .queues.base import Queue
from .queues.registry import DEFAULT, make_queue, queue_for
from .record import new_record
from .render import RenderedJob, Template, render_jobs
from .search_space import SearchSpace, search_space
from .states import COMPLETED, FINAL_STATES, NEW, PENDING, PRUNED, RUNNING, UNKNOWN
from .table import JOB_COLUMNS, frame, record_fields
from .trial_book import ROUND_COLUMNS, Looked, TrialBook
from .trials import SETTINGS, TRIAL, trial_rows, trials_table, with_metrics
from .watch import refreshed

if TYPE_CHECKING:
    import optuna
    import pyarrow as pa

SAMPLERS = ("tpe", "random", "gp", "cmaes", "nsga2")
PRUNERS = ("median", "hyperband")
DIRECTIONS = ("minimize", "maximize")
#: The columns a stored retry policy reads too (besides the round's, see trial_book.py).
POLICY_COLUMNS = ("attempt", "exit_code", "history")
#: Completed trials read before an objective that none of them wrote is called an error.
FIRST_TRIALS = 3
#: While this process runs the trials' jobs and starts each one's successor as it ends (see
#: Controller._hand_off), the round writes the index once no job ended for QUIET seconds, or
#: ROUND_EVERY seconds after the first end: jobs ending in a stream are written together,
#: and a trial is named in the index soon after it started.
ROUND_EVERY = 0.2
QUIET = 0.05


@dataclass
class Search:
    """What one ``ps.optimize`` call asks for, checked (nothing written yet)."""

    template: str
    name: str
    space: SearchSpace
    objectives: list[str]
    directions: list[str]
    n_trials: int
    max_running: int
    pattern: str
    sampler: Any
    pruner: Any
    storage: Any = None


def optimize(template: str, name: str, space: Mapping[str, Any], objective: "str | Sequence[str]",
             direction: "str | Sequence[str]" = "minimize", n_trials: int = 100, max_running: int = 4,
             sampler: Any = "tpe", seed: int | None = None, pruner: Any = None, pattern: str | None = None,
             use: "str | Queue" = DEFAULT, work_dir: "str | os.PathLike" = ".", *, detach: bool = False,
             storage: Any = None, timeout: float | None = None, poll_interval: float = 1.0,
             max_interval: float = 30.0, progress: bool = True, **queue_options: Any) -> pd.DataFrame:
    """Search ``space`` adaptively: up to ``max_running`` trials run as jobs at any time, each
    ended one is told to the sampler and replaced, until ``n_trials`` jobs in total ended.

    Returns the trials' jobs table plus one column per metric of each job's last metrics row
    (see :func:`best`). Resumable: the same call on the same ``work_dir`` continues the search.

    Args:
        template, name: the job script and job name formats (as in ``ps.submit``); the name
            must use ``{hash}`` or ``{trial}`` (the trial number, also a template field).
        space: a ParamSpace: lists are choices, ranges integers, scipy distributions
            continuous ranges over their support (loguniform: log scale), single values fixed.
        objective: the metrics column to optimize (several: a Pareto front), read from the
            last row of each job's metrics file (``pattern``, as in ``ps.metrics``).
        direction: ``'minimize'`` or ``'maximize'`` (one per objective).
        sampler: ``'tpe'`` (pending trials handled by a constant liar), ``'random'``, ``'gp'``,
            ``'cmaes'``, ``'nsga2'`` or an ``optuna.samplers.BaseSampler``; ``seed`` seeds it.
        pruner: None, ``'median'``, ``'hyperband'`` or an ``optuna.pruners.BasePruner``: running
            trials whose metrics rows (a ``step`` column, else the row number) fall behind are
            cancelled and end PRUNED.
        use, work_dir, **queue_options: where the jobs go, as in ``ps.submit``.
        detach: run this controller in a background process of its own (its log is
            ``.param_search/optimize.log``) and return the table as it is now.
        storage: an Optuna storage (e.g. ``'sqlite:///search.db'``) for optuna-dashboard;
            not needed to resume.
        timeout: give up waiting after this many seconds (TimeoutError; rerun to continue).
    """
    quiet_auto_import()
    search = check(template, name, space, objective, direction, n_trials, max_running, sampler, seed,
                   pruner, pattern, storage)
    queue = _queue(use, max_running, queue_options)
    render_jobs(template, name, [probe(search.space)], os.fspath(work_dir))   # template errors, first
    exp = Experiment.create(work_dir)
    _save_settings(exp, search)
    if detach:
        return _detach(exp, search, queue, poll_interval, max_interval)
    deadline = None if timeout is None else time.monotonic() + timeout
    with controlling(exp), _quiet_optuna():
        controller = Controller(exp, search, queue, progress, poll_interval)
        try:
            table = loop.run(controller.refresh, controller.steps(), done=controller.done,
                             show=controller.show, deadline=deadline, timeout_words=f" after {timeout} s",
                             **controller.intervals(poll_interval, max_interval, deadline))
        finally:
            controller.close()
    return controller.results(table)


# -- checking the call ------------------------------------------------------------------
def check(template: str, name: str, space: Mapping[str, Any], objective: Any, direction: Any, n_trials: Any,
          max_running: Any, sampler: Any, seed: Any, pruner: Any, pattern: str | None, storage: Any) -> Search:
    """Every argument checked, before anything is written or submitted."""
    if _missing("optuna"):
        raise OptionError("ps.optimize needs Optuna: pip install 'param_search[search]' (or optuna)")
    objectives, directions = _objectives(objective, direction)
    for what, value in (("n_trials", n_trials), ("max_running", max_running)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise OptionError(f"{what} must be an int >= 1, not {value!r}")
    searched = search_space(space)
    if TRIAL in searched.order:
        raise ParamSpaceError(f"parameter {TRIAL!r} is reserved for the trial number in ps.optimize; "
                              "rename it")
    shadowed = [o for o in objectives if o in searched.order]
    if shadowed:
        raise OptionError(f"objective {shadowed[0]!r} is also a parameter of the space; name the metric "
                          "otherwise in the metrics file")
    roots = {f.split(".")[0].split("[")[0] for f in Template.parse(name, "name").fields}
    if not roots & {"hash", TRIAL}:
        raise TemplateError(f"the job name {name!r} must contain {{hash}} or {{{TRIAL}}}: two trials may "
                            "propose the same values, and each needs a job of its own; e.g. 'trial_{hash}'")
    return Search(template, name, searched, objectives, directions, n_trials, max_running,
                  pattern or DEFAULT_PATTERN, make_sampler(sampler, seed, len(objectives)),
                  make_pruner(pruner, len(objectives)), storage)


def _objectives(objective: Any, direction: Any) -> tuple[list[str], list[str]]:
    objectives = [objective] if isinstance(objective, str) else list(objective or [])
    directions = [direction] * len(objectives) if isinstance(direction, str) else list(direction or [])
    if not objectives or not all(isinstance(o, str) and o for o in objectives):
        raise OptionError(f"objective must be a metrics column name (or a list of them), not {objective!r}")
    clash = [o for o in objectives if o in JOB_COLUMNS or o == TRIAL]
    if clash:
        raise OptionError(f"objective {clash[0]!r} is also a column of the jobs table; name the metric "
                          "otherwise in the metrics file (e.g. 'val_' + name)")
    if len(set(objectives)) < len(objectives):
        raise OptionError(f"objective names a column twice: {objectives}")
    if len(directions) != len(objectives) or any(d not in DIRECTIONS for d in directions):
        raise OptionError(f"direction must be 'minimize' or 'maximize', one per objective ({len(objectives)}), "
                          f"not {direction!r}")
    return objectives, directions


def make_sampler(sampler: Any, seed: int | None, n_objectives: int) -> "optuna.samplers.BaseSampler":
    """An Optuna sampler from its short name (or the instance given)."""
    import optuna

    if isinstance(sampler, optuna.samplers.BaseSampler):
        return sampler
    needs = {"gp": "torch", "cmaes": "cmaes"}
    if sampler not in SAMPLERS:
        raise OptionError(f"sampler must be one of {', '.join(map(repr, SAMPLERS))} or an "
                          f"optuna.samplers.BaseSampler, not {sampler!r}")
    if sampler in needs and _missing(needs[sampler]):
        raise OptionError(f"sampler={sampler!r} needs the {needs[sampler]!r} package: pip install "
                          f"{needs[sampler]} (or pick 'tpe')")
    if sampler == "cmaes" and n_objectives > 1:
        raise OptionError("sampler='cmaes' optimizes one objective only; use 'nsga2' or 'tpe' for several")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if sampler == "tpe":   # pending trials get a constant liar's value: parallel asks spread out
            return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
        return {"random": optuna.samplers.RandomSampler, "gp": optuna.samplers.GPSampler,
                "cmaes": optuna.samplers.CmaEsSampler, "nsga2": optuna.samplers.NSGAIISampler}[sampler](seed=seed)


def _missing(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is None


def make_pruner(pruner: Any, n_objectives: int) -> "optuna.pruners.BasePruner | None":
    import optuna

    if pruner is None:
        return None
    if n_objectives > 1:
        raise OptionError("pruning needs a single objective (Optuna cannot prune multi-objective trials); "
                          "pass pruner=None")
    if isinstance(pruner, optuna.pruners.BasePruner):
        return pruner
    if pruner == "median":
        return optuna.pruners.MedianPruner()
    if pruner == "hyperband":
        return optuna.pruners.HyperbandPruner()
    raise OptionError(f"pruner must be None, {', '.join(map(repr, PRUNERS))} or an "
                      f"optuna.pruners.BasePruner, not {pruner!r}")


def probe(space: SearchSpace) -> dict[str, Any]:
    """One point of the space (each range's low end), to render the template before anything runs."""
    values = {}
    for key, dist in space.distributions.items():
        values[key] = dist.choices[0] if hasattr(dist, "choices") else dist.low
    return {TRIAL: 0, **space.params(values)}


def _queue(use: "str | Queue", max_running: int, options: dict[str, Any]) -> Queue:
    """The queue; one that runs jobs in processes of this machine runs ``max_running`` at once."""
    queue = make_queue(use, **options)
    if "workers" not in options and "workers" in inspect.signature(type(queue).__init__).parameters \
            and not isinstance(use, Queue):
        queue = make_queue(use, **options, workers=max_running)
    return queue


# -- one controller per experiment ---------------------------------------------------------
def controlling(exp: Experiment) -> "contextlib.AbstractContextManager[None]":
    """Be the experiment's one search controller for a while (two would both ask for trials);
    ``optimize.pid`` says who, meanwhile."""
    def busy(who: str | None) -> ExperimentError:
        return ExperimentError(f"a ps.optimize controller already runs on {exp.work_dir} "
                               f"({who or 'starting up'}: host:pid:ticks); wait for it, or stop it and call again")

    return held(os.path.join(exp.state_dir, "optimize.lock"), os.path.join(exp.state_dir, "optimize.pid"), busy)


@contextlib.contextmanager
def _quiet_optuna():
    """Optuna logs a line per trial; the progress bar says it better."""
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)


def _save_settings(exp: Experiment, search: Search) -> None:
    """What ``ps.best``, ``ps.status`` and ``param-search status`` need to read the trials."""
    atomic_write(os.path.join(exp.state_dir, SETTINGS), json.dumps(
        {"objectives": search.objectives, "directions": search.directions, "n_trials": search.n_trials,
         "max_running": search.max_running, "pattern": search.pattern}, indent=1))


def _detach(exp: Experiment, search: Search, queue: Queue, poll_interval: float, max_interval: float) -> pd.DataFrame:
    """Run the controller in a process of its own (the call is pickled for it)."""
    path = os.path.join(exp.state_dir, "optimize-call.pkl")
    with open(path + ".tmp", "wb") as f:
        pickle.dump({"search": search, "queue": (queue.name, queue.settings), "poll_interval": poll_interval,
                     "max_interval": max_interval}, f)
    os.replace(path + ".tmp", path)
    proc = start_detached("param_search._controller", [exp.work_dir], os.path.join(exp.state_dir, "optimize.log"))
    print(f"param_search: search controller running in the background (pid {proc.pid}); its log: "
          f"{exp.state_dir}/optimize.log; progress: param-search status {exp.work_dir}", file=sys.stderr)
    return trials_table(exp.work_dir)


def run_detached(work_dir: str) -> pd.DataFrame:
    """The detached controller's body (see ``param_search._controller``)."""
    exp = Experiment.open(work_dir)
    with open(os.path.join(exp.state_dir, "optimize-call.pkl"), "rb") as f:
        call = pickle.load(f)
    queue = make_queue(call["queue"][0], **call["queue"][1])
    with controlling(exp), _quiet_optuna():
        controller = Controller(exp, call["search"], queue, False, call["poll_interval"])
        try:
            table = loop.run(controller.refresh, controller.steps(), done=controller.done,
                             **controller.intervals(call["poll_interval"], call["max_interval"]))
        finally:
            controller.close()
    return controller.results(table)


# -- the controller: the loop's steps ----------------------------------------------------------
@dataclass
class Outcome:
    """How an ended trial is told: its values, or why it has none; its last metrics row."""

    values: list[float] | None
    state: str                       # an optuna TrialState name: COMPLETE, FAIL or PRUNED
    problem: str | None = None
    last: dict[str, Any] = field(default_factory=dict)
    intermediate: dict[int, float] = field(default_factory=dict)


class Controller:
    """The study and the experiment's trial jobs, kept in step by the loop's steps."""

    def __init__(self, exp: Experiment, search: Search, queue: Queue, progress: bool = True,
                 wait: float = 1.0):
        import optuna

        self.exp, self.search, self.queue = exp, search, queue
        self.study = optuna.create_study(
            storage=search.storage, sampler=search.sampler, pruner=search.pruner,
            directions=[d for d in search.directions], study_name=f"param_search-{exp.token}",
            load_if_exists=True)
        self.pending: dict[str, "optuna.Trial"] = {}   # job name -> its trial, not told yet
        self.outcomes: dict[str, Outcome] = {}
        self.reported: dict[str, int] = {}             # job name -> last step reported
        self.bar = _bar(search.n_trials, progress)
        self.rebuilt = False
        self.stepper = queue.stepper(exp)   # jobs run by this process (else by a scheduler)
        self.wait = self.patience = wait   # see intervals()
        self.deadline: float | None = None
        self.round_started: float | None = None   # when our last round of work began
        self.waiting: list[str] = []   # trials queued in the experiment at the last refresh
        self.identity: dict[str, tuple[dict, str]] = {}   # job name -> its params and hash
        self.shown: set[int] = set()   # ids of the stepper's news in the last table, not yet written
        self.policy: dict[str, Any] = {}   # the experiment's stored policy, as read this round
        self.setups: ThreadPoolExecutor | None = None   # writes new trials' folders (see _set_up)
        self.handed: list = []   # trials started as others ended, since the last write (see _hand_off)
        self.hand_batch: str | None = None   # the batch they went out in
        self.unsent: list[str] = []   # trials asked whose hand-off failed (told failed at close)
        self.others_active = 0   # trials in a queue at the last read that the study was told of
        # (sent again from another process): they count against max_running too
        self.top_trial = -1     # the highest trial number given so far
        self.objective_seen = False   # some completed trial wrote the objective (see _check_objective)
        self.all_ours = False   # every trial in a queue was this process's to run, at the last read
        self.looked: Looked | None = None   # the columns the steps read of the last table
        self.book: TrialBook | None = None   # those columns of the index this process wrote last

    def steps(self) -> list:
        return [self.tell, self.prune, self.policy_step, self.ask]

    def policy_step(self, table: pd.DataFrame) -> bool:
        """The stored policy's step, with the policy this round's table was read for (see
        :meth:`refresh`; one stored since acts next round). A trial told is final in the
        study: a retry policy stored after its job ended does not send that job again."""
        look = self._look(table)
        if not self.policy and look.held is not None and not look.held.any():
            return False   # nothing to retry, nothing held back
        if self.outcomes and retry_policy(self.policy) is not None:
            told = np.fromiter((name in self.outcomes for name in look.names), bool, len(table))
            if told.any():
                table = table[~told]
        return apply_policy(self.exp, table, self.policy)

    def intervals(self, poll_interval: float, max_interval: float, deadline: float | None = None
                  ) -> dict[str, float]:
        """The loop's sleeps: none where this process runs the jobs (it waits for one to end
        instead, see :meth:`refresh`: up to ``max_interval`` seconds, or ``poll_interval``
        with a pruner, which looks at the running trials' rows at every refresh)."""
        if self.stepper is not None:
            self.wait = poll_interval
            self.patience = poll_interval if self.search.pruner is not None else max(max_interval, poll_interval)
            self.deadline = deadline
            return {"poll_interval": 0.0, "max_interval": 0.0}
        return {"poll_interval": poll_interval, "max_interval": max_interval}

    def close(self) -> None:
        """Stop: the trials started since the last write go into the index (running jobs go
        on; the next start follows them)."""
        try:
            if self.setups is not None:
                self.setups.shutdown()
            self._save_handed()
            if self.stepper is not None:
                self.stepper.close()   # (writes its news: the handed trials among them)
        finally:
            if self.bar is not None:
                self.bar.close()
            self._fail_unsent()

    def _fail_unsent(self) -> None:
        """Tell the trials asked and never started failed: a stored study must not wait for
        them (if it cannot be told now, the next start does it, see :meth:`_rebuild`)."""
        unsent, self.unsent = [n for n in self.unsent if n in self.pending], []
        try:
            for name in unsent:
                self.study.tell(self.pending.pop(name), state=_trial_state("FAIL"))
        except Exception as exc:   # e.g. a stored study left locked by a call Ctrl-C cut short:
            # not to hide why the search stopped
            print(f"param_search: {len(unsent)} trial(s) asked and never started stay RUNNING in the "
                  f"study until the search starts again ({type(exc).__name__}: {exc})", file=sys.stderr)

    # -- refresh ------------------------------------------------------------------------
    def refresh(self) -> pd.DataFrame:
        """The trial jobs, refreshed (one status call per queue); the first time, the study
        is rebuilt from them.

        Where this process runs the jobs, the trials sent last round start first; it waits
        for one to end (up to ``patience``), reads the table while the others run, then
        waits, for as long as its last round of work took (at least ``ROUND_EVERY``), for
        others that end meanwhile. Trials are told and replaced as they end (see
        :meth:`_on_end`): the round's work is writing the index. Ends after the table was
        read are not in it: :meth:`tell` and :meth:`ask` take them from the stepper's news,
        which :meth:`ask` writes."""
        self.policy = self.exp.policy()   # what the stored policy asks, read once a round
        if self.stepper is None:
            table = self._seen(trial_rows(refreshed(self.exp)))
        elif not self.rebuilt:   # claim and start what waits for a runner; no waiting yet
            self._adopt()
            self.stepper(0.0, None, write=False)
            table = self._trial_table()
        else:
            self.stepper.start(self.waiting)
            last_round = self._before_deadline(
                0.0 if self.round_started is None else time.monotonic() - self.round_started)
            patience = self._before_deadline(self.patience)
            if self._early() and self.pending and self.stepper.busy():   # the table is read while the others run
                ended = self.stepper(patience, self.waiting, write=False, on_end=self._on_end)
                table = self._trial_table()
                if ended:   # (successors start as trials end: the write can wait a little)
                    self.stepper.gather(self._before_deadline(max(last_round, ROUND_EVERY)), on_end=self._on_end,
                                        quiet=QUIET)
            else:
                table = self._trial_table()
                if len(table) >= self.search.n_trials and self._look(table).final.all():
                    return table   # the search is done: nothing to wait for
                self.stepper(patience, self.waiting, write=False, gather=last_round)
            self.round_started = time.monotonic()
        if not self.rebuilt:
            self._rebuild(table)
            self.rebuilt = True
            self._count_others(self._look(table))   # (now that the study's trials are known)
        return table

    def _before_deadline(self, seconds: float) -> float:
        """``seconds``, or what is left of them before the caller's deadline."""
        if self.deadline is None:
            return seconds
        return max(min(seconds, self.deadline - time.monotonic()), 0.0)

    def _early(self) -> bool:
        """Whether trials are told and replaced as their jobs end, while others run (see
        :meth:`_on_end`): not with a pruner, whose PRUNED trials end CANCELLED in the stepper's
        news, nor with a stored retry policy, which may send an ended trial's job again."""
        return self.search.pruner is None and not self.policy

    def _on_end(self, records: list) -> None:
        """Tell each trial whose job just ended and start its successor at once, while the
        other trials' jobs still run (see :meth:`_hand_off`)."""
        ended = sorted((r for r in records if r["state"] in FINAL_STATES and r["job_name"] in self.pending),
                       key=lambda r: r["params"][TRIAL])
        for record in ended:
            self._tell_one(record["job_name"], record["state"], record["error"])
            made = len(self.identity)   # every trial made, sent or not
            in_flight = len(self.pending) + self.others_active   # asked and not told, or sent again
            if made < self.search.n_trials and in_flight < self.search.max_running:
                self._hand_off(self._new_trials(1))

    def _hand_off(self, jobs: list[RenderedJob]) -> None:
        """Write the folders of trials just asked and start their jobs on this process's
        workers before any index names them: a worker never waits for the round's write,
        which records them later (with its batch's member list). A controller killed before
        that write leaves complete folders the index does not name: the next start takes
        them in (:meth:`_adopt`)."""
        if self.hand_batch is None:
            self.hand_batch = self._local_batch()
        now, records, made = time.time(), [], 0
        try:
            for job in jobs:
                records.append(new_record(job))
                apply(records[-1], Handed(self.queue.name, self.hand_batch, now))
                self.exp.setup_job(job)   # (its own refusal leaves a folder of that name be)
                made += 1
            self.queue.submit(self.exp, records)
            self.stepper.hand(records)   # (its news first: from then on, close() writes them)
        except BaseException as exc:   # Ctrl-C, a full disk: no folder that no index will name
            news = {id(r) for r in self.stepper.news()}
            if not any(id(r) in news for r in records):
                ours = records if isinstance(exc, (KeyboardInterrupt, OSError)) else records[:made]
                for record in ours:
                    shutil.rmtree(self.exp.job_dir(record["job_name"]), ignore_errors=True)
                self.unsent += [job.job_name for job in jobs]
            raise
        self.handed += records

    def _local_batch(self) -> str:
        """A new batch of this process's queue, its settings stored (as ``send`` stores them),
        for trials started without ``send``."""
        batch = new_batch(self.exp)
        self.exp.install_wrapper()
        self.exp.save_batch(batch, self.queue.name, self.queue.settings, None)
        return batch

    def _save_handed(self) -> None:
        """List the trials started since the last write as their batch's members (see
        :meth:`Experiment.save_members`); the index is written next."""
        if self.handed:
            self.exp.save_members(self.hand_batch, self.handed)
            self.handed, self.hand_batch = [], None

    def _adopt(self) -> None:
        """Take in the trials a controller killed before its round's write had set up or
        started (:meth:`_hand_off`): complete trial folders that the index does not name.
        Those that started are followed from their files; the others are sent again, and if
        a worker of that controller starts one as well, the claim in its status file lets
        only one of them run."""
        if self.stepper is None:   # (hand-offs go to this machine's workers only)
            return
        known = set(self.exp.load_index().column("job_name").to_pylist())
        found = [r for r in self.exp.folder_records(known, "the search").values()
                 if type(r["params"].get(TRIAL)) is int]
        if not found:
            return
        batch, now = self._local_batch(), time.time()
        with self.exp.transaction() as records:
            for record in sorted(found, key=lambda r: r["params"][TRIAL]):
                if record["state"] == UNKNOWN:   # it started: its files tell the rest
                    record.update(queue=self.queue.name, batch=batch)
                else:
                    apply(record, Handed(self.queue.name, batch, now))
                    self.queue.submit(self.exp, [record])
                records[record["job_name"]] = record
            self.exp.save_members(batch, found)
        print(f"param_search: taking in {len(found)} trial(s) that a stopped search had set up or started "
              f"but not yet recorded", file=sys.stderr)

    def _trial_table(self) -> pd.DataFrame:
        table = self._status_with_news()
        look = self.looked if self.looked is not None and self.looked.table is table else None
        if look is not None and look.top is not None:   # the book's: trials only, in order
            self.top_trial = max(self.top_trial, look.top)
        else:
            table = self._seen(trial_rows(table))
            look = self._look(table)
        pending = look.states == PENDING
        self.waiting = look.names[pending].tolist() if pending.any() else []
        self._count_others(look)
        return table

    def _count_others(self, look: "Looked") -> None:
        """Note the trials in a queue that the study was told of already (another process
        sent them again): they count against ``max_running`` too."""
        self.others_active = sum(1 for name in look.names[~look.final] if name not in self.pending)

    def _look(self, table: pd.DataFrame) -> "Looked":
        if self.looked is None or self.looked.table is not table:
            self.looked = Looked.of(table)
        return self.looked

    def _seen(self, table: pd.DataFrame) -> pd.DataFrame:
        """Note the highest trial number given (new trials are numbered on from it)."""
        if len(table):
            self.top_trial = max(self.top_trial, int(table[TRIAL].max()))
        return table

    def _ended_news(self) -> dict[str, tuple[str, Any]]:
        """Job name -> (state, error) of the stepper's jobs that ended since the table was read."""
        if self.stepper is None:
            return {}
        return {r["job_name"]: (r["state"], r["error"]) for r in self.stepper.news() if r["state"] in FINAL_STATES}

    def _status_with_news(self) -> pd.DataFrame:
        """The table with the jobs the stepper saw end. Their records go into the index with
        the next trials asked for (one write per round), or now: when they were shown once
        already (no trials were asked since) or a stored policy (retry, max_queued) acts on
        the index. Until then their status files say how they ended, as for any runner."""
        news = self.stepper.news()
        write = bool(self.shown.intersection(map(id, news))) or bool(self.policy)
        index = self.exp.unchanged_index() if not write and self.all_ours and self.search.pruner is None \
            else None
        if index is not None:   # each trial in a queue is one this process runs (it hears their
            # ends), and no stored policy reads more columns
            if self.book is None or self.book.index is not index:
                self.book = TrialBook.of(index)
            looked = self.book.round(news, self.exp.work_dir) if self.book is not None else None
            if looked is not None:   # (the book: no reading of the index back)
                self.looked, self.shown = looked, set(map(id, news))
                return looked.table
            view = self.exp.merged_index(news, index, record_fields(ROUND_COLUMNS)) if news else index
            self.shown = set(map(id, news))
            return frame(self.exp, view, live_logs=False, only=ROUND_COLUMNS)
        table, written = api.status_with(self.exp.work_dir, news, self.stepper.mine, write_news=write,
                                         only=ROUND_COLUMNS + POLICY_COLUMNS)
        if written:
            self.stepper.written(news)
        self.shown = set() if written else set(map(id, news))
        look = self._look(table)
        self.all_ours = all(name in self.stepper.mine for name in look.names[~look.final & (look.states != NEW)])
        return table

    def _rebuild(self, table: pd.DataFrame) -> None:
        """Tell the study every ended trial, adopt the others (a fresh study: all of them)."""
        import optuna

        known = {t.user_attrs.get("job_name"): t for t in self.study.get_trials(deepcopy=False)}
        names = set(table["job_name"])
        for frozen in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            if frozen.user_attrs.get("job_name") not in names:   # asked, never sent (a stored study)
                self.study.tell(frozen.number, state=optuna.trial.TrialState.FAIL)
        records = self.exp.load_records()
        records.prefetch(table["job_name"].tolist())
        for row in table.sort_values(TRIAL).itertuples():
            record = records[row.job_name]
            self.identity[row.job_name] = record["params"], record["hash"]
            ours = self.search.space.trial_params(record["params"])
            if row.job_name in known:
                frozen = known[row.job_name]
                if frozen.state.is_finished():
                    self.outcomes[row.job_name] = self._outcome(row.job_name, row.job_state, row.error)
                else:
                    self.pending[row.job_name] = optuna.Trial(self.study, frozen._trial_id)
                continue
            if row.job_state in FINAL_STATES:
                outcome = self._outcome(row.job_name, row.job_state, row.error)
                self.outcomes[row.job_name] = outcome
                self.study.add_trial(optuna.trial.create_trial(
                    state=optuna.trial.TrialState[outcome.state],
                    values=outcome.values if outcome.state == "COMPLETE" else None,
                    params=ours, distributions=self.search.space.distributions,
                    user_attrs={"job_name": row.job_name}, intermediate_values=outcome.intermediate))
            else:
                self.study.enqueue_trial(ours, user_attrs={"job_name": row.job_name})
                self.pending[row.job_name] = self.study.ask(self.search.space.distributions)
        self._check_objective()

    # -- tell ---------------------------------------------------------------------------
    def tell(self, table: pd.DataFrame) -> bool:
        """Tell the study the trials whose jobs ended (changes nothing on disk)."""
        self._check_objective()   # (trials told as they ended, see _on_end)
        if not self.pending:
            return False
        look, ended = self._look(table), {}
        for name in self.pending:
            row = look.row(name)
            if row is not None and look.final[row]:
                ended[name] = look.states[row], look.errors[row]
        # ends seen since the table was read; where the table shows an end, it wins (a trial
        # pruned is PRUNED there, while the stepper saw its killed job end CANCELLED)
        ended.update((n, end) for n, end in self._ended_news().items() if n in self.pending and n not in ended)
        ended = {n: end for n, end in ended.items() if n not in self._retried(table)}
        if not ended:
            return False
        for name in sorted(ended, key=lambda n: self.identity[n][0][TRIAL]):   # in trial order
            self._tell_one(name, *ended[name])
        self._check_objective()
        return False

    def _tell_one(self, name: str, state: str, error: Any) -> None:
        trial = self.pending.pop(name)
        outcome = self._outcome(name, state, error)
        self.outcomes[name] = outcome
        self._report(name, trial, outcome.intermediate)
        self.study.tell(trial, outcome.values if outcome.state == "COMPLETE" else None,
                        state=_trial_state(outcome.state))

    def _retried(self, table: pd.DataFrame) -> set[str]:
        """Trials whose ended job a stored retry policy sends again: told when it ends for good."""
        retry = retry_policy(self.policy)
        if retry is None:
            return set()
        names = set(table["job_name"].to_numpy()[to_retry(table, retry)])
        news = self.stepper.news() if self.stepper is not None else []
        return names | {r["job_name"] for r in news if r["state"] in FINAL_STATES and will_retry(r, retry)}

    def _outcome(self, job_name: str, state: str, error: Any) -> Outcome:
        rows, problem = self._rows(job_name)
        last = {} if rows is None else {k: v[-1] for k, v in rows.items()}
        intermediate = self._intermediate(rows)
        if state == PRUNED:
            return Outcome(None, "PRUNED", None, last, intermediate)
        if state != COMPLETED:
            return Outcome(None, "FAIL", f"the job ended {state}: {error or 'no error line'}", last, intermediate)
        if rows is None:
            return Outcome(None, "FAIL", f"no metrics: {problem}", last, intermediate)
        missing = [o for o in self.search.objectives if o not in last]
        if missing:
            return Outcome(None, "FAIL", f"its metrics have no column {missing[0]!r} (columns: "
                           f"{', '.join(map(str, last))})", last, intermediate)
        values = [last[o] for o in self.search.objectives]
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            return Outcome(None, "FAIL", f"no number in its last metrics row for {self.search.objectives} "
                           f"({values})", last, intermediate)
        return Outcome([float(v) for v in values], "COMPLETE", None, last, intermediate)

    def _rows(self, job_name: str) -> "tuple[dict[str, list] | None, str | None]":
        params, digest = self.identity[job_name]
        return job_rows(self.exp.work_dir, job_name, params, digest, self.search.pattern)

    def _intermediate(self, rows: "dict[str, list] | None") -> dict[int, float]:
        """Step -> objective value of each metrics row (``step`` column, else the row number),
        for the pruner (none without one)."""
        objective = self.search.objectives[0]
        if self.search.pruner is None or rows is None or objective not in rows:
            return {}
        values = rows[objective]
        steps = rows.get("step", range(len(values)))
        return {int(s): float(v) for s, v in zip(steps, values)
                if isinstance(v, float) and isinstance(s, (int, float)) and math.isfinite(v) and math.isfinite(s)}

    def _check_objective(self) -> None:
        """An objective no completed trial wrote is a mistake in the call: say so early."""
        if self.objective_seen:
            return
        done = [o for o in self.outcomes.values() if o.problem is None or not o.problem.startswith("the job")]
        completed = [o for o in done if o.state in ("COMPLETE", "FAIL")]
        if any(o.values for o in completed):
            self.objective_seen = True
            return
        if len(completed) < min(FIRST_TRIALS, self.search.n_trials):
            return
        found = sorted({str(c) for o in completed for c in o.last})
        where = (f"the columns it found: {', '.join(found)}" if found
                 else f"no metrics file matched {self.search.pattern!r} ({completed[0].problem})")
        raise MetricsError(
            f"none of the first {len(completed)} completed trials wrote the objective "
            f"{self.search.objectives} in its metrics ({where}); fix objective= (or pattern=, or the "
            f"template) and call ps.optimize again: it continues this search (queued and running jobs go on)")

    # -- prune --------------------------------------------------------------------------
    def prune(self, table: pd.DataFrame) -> bool:
        """Report the running trials' new metrics rows; cancel those the pruner stops."""
        if self.search.pruner is None:
            return False
        running = table.loc[(table["job_state"] == RUNNING).to_numpy(), "job_name"].tolist()
        running = [n for n in running if n in self.pending]
        stop = {}
        for job_name in running:
            trial = self.pending[job_name]
            rows, _ = self._rows(job_name)
            step = self._report(job_name, trial, self._intermediate(rows))
            if step is not None and trial.should_prune():
                stop[job_name] = f"pruned at step {step} ({self.search.objectives[0]} " \
                                 f"{self._intermediate(rows)[step]:.6g})"
        if stop:
            self._cancel(stop)
        return bool(stop)

    def _report(self, job_name: str, trial: "optuna.Trial", values: dict[int, float]) -> int | None:
        """Report the steps not reported yet; the last step reported (None: none new)."""
        if self.search.pruner is None:
            return None
        last = self.reported.get(job_name, -1)
        new = sorted(s for s in values if s > last)
        for step in new:
            trial.report(values[step], step)
        if new:
            self.reported[job_name] = new[-1]
        return new[-1] if new else None

    def _cancel(self, stop: dict[str, str]) -> None:
        """PRUNED first (our decision), then each job cancelled on its queue."""
        now = time.time()
        with self.exp.transaction() as records:
            pruned = [records[n] for n in stop if apply(records[n], Pruned(now, stop[n]))]
            by_queue: dict[str | None, list] = {}
            for record in pruned:
                by_queue.setdefault(record["queue"], []).append(record)
            for name, group in by_queue.items():
                queue_for(self.exp, name, max(r["batch"] for r in group if r["batch"])).cancel(self.exp, group)
            for record in pruned:
                finalize(self.exp, record)

    # -- ask ----------------------------------------------------------------------------
    def ask(self, table: pd.DataFrame) -> bool:
        """Send new trials up to ``max_running`` (and trials set up but never sent), never more
        than ``n_trials`` in all, in the write that also records the stepper's news (the jobs
        that ended, and the trials started as others ended)."""
        look = self._look(table)
        unsent = look.names[look.states == NEW].tolist()
        ended = self._ended_news()   # since the table was read
        late = [r for r in self.handed if look.row(r["job_name"]) is None]   # started after the table was read
        active = sum(1 for name in look.names[~look.final] if name not in ended) + \
            sum(1 for r in late if r["job_name"] not in ended)
        n_new = max(min(self.search.max_running - active, self.search.n_trials - len(table) - len(late)), 0)
        news = [] if self.stepper is None else self.stepper.news()   # (trials started as others ended too)
        if n_new <= 0 and not unsent and not news:
            return False
        jobs = self._new_trials(n_new)
        try:
            with self.exp.transaction() as records:
                base = records.index   # (what the book, if any, is of)
                taken = [j.job_name for j in jobs if j.job_name in records]
                if taken:   # never: trials are numbered on from the highest the index holds
                    raise ExperimentError(
                        f"a new trial's job name {taken[0]!r} is already in the index of {self.exp.work_dir!r}; "
                        "this is a bug in param_search: please report it")
                folders = self._set_up(jobs)
                merge(records, news)   # the jobs that ended or started, in this same write
                self._save_handed()
                try:
                    for folder in folders:
                        folder.result()   # written before the index names the job
                    for job in jobs:
                        records[job.job_name] = new_record(job)
                except BaseException:   # (no more folders the index will not name)
                    for folder in folders:
                        folder.cancel()
                    raise
                chosen = [records[j.job_name] for j in jobs] + [records[n] for n in unsent]
                # ours to run (local): claimed in the write that records the hand-over
                send(self.exp, self.queue, records, chosen, {j.job_name: j.script for j in jobs},
                     then=None if self.stepper is None else self.stepper.take)
        except QueueError as exc:   # refused or unanswered: they stay NEW (or SUBMITTING), sent next round
            print(f"param_search: sending {len(jobs) + len(unsent)} trial(s) failed ({exc}); trying again",
                  file=sys.stderr)
            return False   # after the loop's pause (backing off), not at once
        self._note_write(base, records)
        if news:
            self.stepper.written(news)
            self.shown = set()
        return bool(jobs or unsent)   # (a write of news alone changes no decision)

    def _note_write(self, base: "pa.Table", records: RecordMap) -> None:
        """Keep the book of the index in step with a write of ``records`` over ``base``."""
        index = self.exp.unchanged_index()   # None: written by another process since
        if self.book is not None and self.book.index is base and index is not None:
            self.book = self.book.update(index, records.touched(), records.positions())
        else:
            self.book = None

    def _new_trials(self, n: int) -> list[RenderedJob]:
        """Ask the study for ``n`` trials (numbered on from the last) and render their jobs."""
        if n <= 0:
            return []
        trials = [self.study.ask(self.search.space.distributions) for _ in range(n)]
        first, self.top_trial = self.top_trial + 1, self.top_trial + n
        params = [{TRIAL: first + i, **self.search.space.params(t.params)} for i, t in enumerate(trials)]
        jobs = render_jobs(self.search.template, self.search.name, params, self.exp.work_dir)
        for job, trial in zip(jobs, trials):
            trial.set_user_attr("job_name", job.job_name)
            self.pending[job.job_name] = trial
            self.identity[job.job_name] = job.params, job.hash
        return jobs

    def _set_up(self, jobs: list) -> list["Future"]:
        """Write the new trials' folders in two threads, while this one records them: their
        work is mostly the kernel's, and no job runs meanwhile to use the other core."""
        if not jobs:
            return []
        if self.setups is None:
            self.setups = ThreadPoolExecutor(2, thread_name_prefix="param_search-setup")
        return [self.setups.submit(self.exp.setup_job, job) for job in jobs]

    # -- done, show, results --------------------------------------------------------------
    def done(self, table: pd.DataFrame) -> bool:
        return (len(table) >= self.search.n_trials or not self.search.n_trials) \
            and bool(self._look(table).final.all()) and not self.pending

    def show(self, table: pd.DataFrame) -> None:
        if self.bar is None:
            return
        look = self._look(table)
        self.bar.update(int(look.final.sum()) - self.bar.n)
        postfix = {"running": int((look.states == RUNNING).sum()),
                   "failed": sum(o.state == "FAIL" for o in self.outcomes.values()),
                   "pruned": sum(o.state == "PRUNED" for o in self.outcomes.values())}
        best = [o.values[0] for o in self.outcomes.values() if o.values]
        if best and len(self.search.objectives) == 1:
            pick = min if self.search.directions[0] == "minimize" else max
            postfix[f"best {self.search.objectives[0]}"] = f"{pick(best):.4g}"
        self.bar.set_postfix(postfix)

    def results(self, table: pd.DataFrame) -> pd.DataFrame:
        """The trials' whole jobs table (the loop's last one, or for a search this process ran
        the jobs of, the index as :meth:`close` left it) with their metrics."""
        if self.stepper is not None:   # its rounds read a few columns only
            table = trial_rows(frame(self.exp, self.exp.load_index()))
        problems = {n: o.problem for n, o in self.outcomes.items() if o.problem}
        rows = {n: o.last for n, o in self.outcomes.items()}
        return with_metrics(table, rows, problems, self.search.objectives, self.search.directions)


def _trial_state(name: str) -> "optuna.trial.TrialState":
    import optuna

    return optuna.trial.TrialState[name]


def _bar(total: int, enabled: bool):
    if not enabled:
        return None
    from .progress import bar

    return bar(total, "trials", "trial")
