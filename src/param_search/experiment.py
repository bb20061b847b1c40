"""An experiment is a directory: its jobs' folders plus ``.param_search/`` with the index.

Layout::

    work_dir/
      .param_search/experiment.json   token and format version
      .param_search/index.arrow       every job's record (atomically replaced, never appended)
      .param_search/lock              POSIX lock serializing writers
      .param_search/wrapper.sh        runs every job attempt (see wrapper.sh)
      <job_name>/params.json          the job's identity: params + hash (source of truth)
      <job_name>/job.sh               the rendered script
      <job_name>/job.<N>.{status,out,err}   attempt N, written by the wrapper

Why one file replaced by rename (its columnar format is described in index_file.py): ``os.replace`` is atomic on local filesystems and on NFS and
Lustre (the server renames), so a reader on any node sees the old or the new index, never a
mix; a crash mid-write leaves a stray temp file and the old index. Writers serialize on a
``fcntl.lockf`` lock, which NFSv3 (lockd) and NFSv4 honour across clients and Lustre honours
when mounted with ``-o flock``; where locks are unsupported the lock call fails loudly.
The job folders stay the source of truth: a lost or corrupt index is rebuilt from them.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import time
import warnings
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .errors import ConflictError, ExperimentError
from . import index_file
from .files import atomic_write, file_version, token, write_file, write_json
from .identity import json_default, params_hash, untag_nonfinite
from .record import Record, new_record, script_digest
from .record_map import Carried, RecordMap
from .render import STATE_DIR_NAME, RenderedJob
from .lifecycle import Recovered, apply
from .states import PRUNED

if TYPE_CHECKING:
    import pyarrow as pa

INDEX_VERSION = 2


class Experiment:
    """The on-disk state of one sweep (see the module docstring for the layout)."""

    def __init__(self, work_dir: str | os.PathLike):
        self.work_dir = os.path.abspath(os.fspath(work_dir))
        self.state_dir = os.path.join(self.work_dir, STATE_DIR_NAME)
        self.index_path = os.path.join(self.state_dir, "index.arrow")
        self.legacy_index_path = os.path.join(self.state_dir, "index.json")
        self.wrapper = os.path.join(self.state_dir, "wrapper.sh")
        self._batches: dict[str, dict[str, Any]] = {}   # batch settings read so far
        self._token: str | None = None
        self._lock_depth = 0
        self._lock_fd: int | None = None
        self._written: "tuple[tuple | None, pa.Table] | None" = None   # see unchanged_index
        self._carried: "Carried | None" = None   # what the RecordMap that wrote it knew of it

    # -- opening -----------------------------------------------------------------------
    @classmethod
    def create(cls, work_dir: str | os.PathLike) -> "Experiment":
        """Open the experiment in ``work_dir``, making it if needed."""
        exp = cls(work_dir)
        if not os.path.isdir(exp.state_dir):
            os.makedirs(exp.work_dir, exist_ok=True)
            tmp = f"{exp.state_dir}.tmp-{token(4)}"
            os.makedirs(os.path.join(tmp, "batches"))
            write_json(os.path.join(tmp, "experiment.json"),
                        {"version": INDEX_VERSION, "token": token(4), "created": time.time()})
            with contextlib.suppress(FileExistsError, OSError):
                os.rename(tmp, exp.state_dir)
            shutil.rmtree(tmp, ignore_errors=True)
        return exp

    @classmethod
    def open(cls, work_dir: str | os.PathLike) -> "Experiment":
        """Open an existing experiment; raise if ``work_dir`` is none."""
        exp = cls(work_dir)
        if os.path.isdir(exp.state_dir) and not os.path.isfile(os.path.join(exp.state_dir, "experiment.json")):
            raise ExperimentError(
                f"{exp.state_dir}/experiment.json is missing: the experiment's token (which tags "
                "its jobs in the scheduler) is lost; restore the file from a backup, or write "
                '{"version": 2, "token": "<8 hex digits>"} with a new token'
            )
        if not os.path.isfile(os.path.join(exp.state_dir, "experiment.json")):
            raise ExperimentError(
                f"{exp.work_dir!r} is not a param_search experiment (it has no {STATE_DIR_NAME}/ "
                "folder); pass the work_dir that ps.submit was given"
            )
        return exp

    def install_wrapper(self) -> None:
        """Put this version's wrapper.sh in place (before jobs are handed to a queue)."""
        with open(os.path.join(os.path.dirname(__file__), "wrapper.sh")) as f:
            text = f.read()
        try:
            with open(self.wrapper) as f:
                if f.read() == text:
                    return
        except FileNotFoundError:
            pass
        atomic_write(self.wrapper, text, mode=0o755)

    @property
    def token(self) -> str:
        """A random id of this experiment, used to tag its jobs in a scheduler."""
        if self._token is None:
            self._token = self._read_token()
        return self._token

    def _read_token(self) -> str:
        path = os.path.join(self.state_dir, "experiment.json")
        try:
            with open(path) as f:
                token = json.load(f)["token"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ExperimentError(
                f"{path} is damaged ({type(exc).__name__}: {exc}); it holds the experiment's token, "
                "which tags its jobs in the scheduler: restore it from a backup, or write "
                '{"version": 2, "token": "<8 hex digits>"} with a new token (jobs queued under the '
                "old token are then not found again after a crash)"
            ) from None
        if not (isinstance(token, str) and token.isalnum()):
            raise ExperimentError(f"{path} holds no valid token ({token!r}): restore it from a backup")
        return token

    def job_dir(self, job_name: str) -> str:
        return os.path.join(self.work_dir, job_name)

    def attempt_path(self, record: Record, suffix: str, attempt: int | None = None) -> str:
        """Path of an attempt's file: ``status``, ``out`` or ``err``."""
        n = record["attempt"] if attempt is None else attempt
        return os.path.join(self.work_dir, record["job_name"], f"job.{n}.{suffix}")

    # -- batches: what each submission was sent to, with which settings -------------------
    def batch_path(self, batch: str) -> str:
        return os.path.join(self.state_dir, "batches", f"{batch}.json")

    def save_batch(self, batch: str, queue: str, settings: dict[str, Any],
                   overrides: dict[str, Any] | None = None) -> None:
        """Record the queue and its settings a batch goes to (before it is submitted), so
        that status, cancel and resubmit in any later process use the very same queue."""
        data = {"batch": batch, "queue": queue, "settings": settings, "created": time.time()}
        if overrides:
            data["overrides"] = overrides
        try:
            text = json.dumps(data, indent=1, sort_keys=True, default=json_default)
        except (TypeError, ValueError) as exc:
            raise ExperimentError(
                f"the {queue} queue's settings {settings!r} cannot be stored as JSON ({exc}); "
                "give options as strings, numbers, booleans or lists of them"
            ) from None
        os.makedirs(os.path.dirname(self.batch_path(batch)), exist_ok=True)
        atomic_write(self.batch_path(batch), text)
        self._batches[batch] = data

    def batch_settings(self, batch: str) -> dict[str, Any] | None:
        """What :meth:`save_batch` recorded for ``batch`` (None for a batch of an older
        version, which recorded nothing)."""
        if batch not in self._batches:
            try:
                with open(self.batch_path(batch)) as f:
                    self._batches[batch] = json.load(f)
            except FileNotFoundError:
                return None
            except ValueError as exc:
                raise ExperimentError(
                    f"{self.batch_path(batch)} is not valid JSON ({exc}); it records the queue "
                    "settings of that batch: restore it, or delete it to use default settings"
                ) from None
        return self._batches[batch]

    # -- the policy --------------------------------------------------------------------
    @property
    def policy_path(self) -> str:
        return os.path.join(self.state_dir, "policy.json")

    def policy(self) -> dict[str, Any]:
        """What the sweep does by itself (``retry``, ``max_queued``, a learned ``submit_limit``),
        as :meth:`save_policy` stored it; {} if nothing."""
        try:
            with open(self.policy_path) as f:
                return json.load(f)
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise ExperimentError(
                f"{self.policy_path} is not valid JSON ({exc}); it holds the sweep's retry policy "
                "and submit limits: delete it and pass retry=/max_queued= to ps.submit again"
            ) from None

    def save_policy(self, policy: dict[str, Any]) -> None:
        atomic_write(self.policy_path, json.dumps(policy, indent=1, sort_keys=True))

    # -- locking -----------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the experiment's writer lock (re-entrant within one process)."""
        if self._lock_depth == 0:
            fd = os.open(os.path.join(self.state_dir, "lock"), os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP):
                    raise ExperimentError(
                        f"the filesystem of {self.work_dir!r} does not support file locks; "
                        "use a work_dir on a local disk, NFS with lockd, or Lustre mounted with flock"
                    ) from exc
                raise
            self._lock_fd = fd
        self._lock_depth += 1
        try:
            yield
        finally:
            self._lock_depth -= 1
            if self._lock_depth == 0:
                os.close(self._lock_fd)  # closing releases the lock
                self._lock_fd = None

    # -- the index ---------------------------------------------------------------------
    def load_records(self) -> RecordMap:
        """All job records by name, from the index (rebuilt from job folders if it is lost);
        rows become records as they are read."""
        index = self.load_index()
        carried = self._carried if self._written is not None and index is self._written[1] else None
        return RecordMap(index, self.work_dir, carried)

    def load_index(self) -> "pa.Table":
        """The index as an Arrow table (see index_file.py), rebuilt from job folders if it is lost."""
        index = self.unchanged_index()
        if index is not None:
            return index
        try:
            index = index_file.read(self.index_path)
        except FileNotFoundError:
            if os.path.exists(self.legacy_index_path):
                return self._migrate_legacy_index()
            return index_file.from_records(list(self._rebuild_if_jobs("is missing").values()), self.work_dir)
        except ValueError as exc:   # not a whole index file (an OSError is no verdict on it)
            return index_file.from_records(list(self._rebuild_if_jobs(f"is unreadable ({exc})").values()),
                                     self.work_dir)
        if index_file.token_of(index) not in (None, self.token):
            why = f"belongs to another experiment (token {index_file.token_of(index)}, not {self.token})"
            return index_file.from_records(list(self._rebuild_if_jobs(why).values()), self.work_dir)
        return index

    def _migrate_legacy_index(self) -> "pa.Table":
        """Convert the JSON index of param_search 0.2 (``index.json``) to the Arrow one."""
        with self.lock():
            with open(self.legacy_index_path, "rb") as f:
                records = index_file.loads(f.read())["jobs"]
            index = index_file.from_records(records, self.work_dir)
            self.save_index(index)
            os.replace(self.legacy_index_path, self.legacy_index_path + ".migrated")
        return index

    def save_records(self, records: "Mapping[str, Record]") -> None:
        """Atomically replace the index with ``records`` (all of them)."""
        if isinstance(records, RecordMap) and records.work_dir == self.work_dir:
            table = records.table()
            if table is not records.index:   # else nothing changed since it was read or saved
                self.save_index(table)
                records.saved(table)
                self._carried = records.carried()
        else:
            self.save_index(index_file.from_records(list(records.values()), self.work_dir))

    def save_index(self, index: "pa.Table") -> None:
        """Atomically replace the index with an index table (see index_file.py)."""
        index = index_file.with_token(index, self.token)
        index_file.write(self.index_path, index)
        self._written = file_version(self.index_path), index
        self._carried = None

    def unchanged_index(self) -> "pa.Table | None":
        """The index this object saved last, if that file is still the stored one (nobody
        wrote it since): a loop that writes the index every round need not read it back."""
        if self._written is not None and file_version(self.index_path) == self._written[0]:
            return self._written[1]
        return None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[RecordMap]:
        """Lock, load every record (by name), let the caller change them, save them.

        An exception inside leaves the index as the caller last saved it (nothing more).
        """
        with self.lock():
            records = self.load_records()
            yield records
            self.save_records(records)

    def update(self, changed: list[Record]) -> RecordMap:
        """Write ``changed`` records into the index under the lock; return the new index.

        A trial that an adaptive search pruned meanwhile stays PRUNED: the copy of a runner
        that watched its job end (killed, so CANCELLED) is older news."""
        with self.transaction() as records:
            merge(records, changed)
        return records

    def merged_index(self, changed: list[Record], index: "pa.Table | None" = None,
                     fields: "set[str] | None" = None) -> "pa.Table":
        """The index (``index``, else the stored one) with ``changed`` merged in as :meth:`update`
        does (the caller holds the lock and saves it); only their ``fields``, if given: a
        table to read those columns of, never to save (see ``RecordMap.view``)."""
        records = self.load_records() if index is None else RecordMap(index, self.work_dir)
        merge(records, changed)
        return records.table() if fields is None else records.view(fields)

    def _rebuild_if_jobs(self, why: str) -> dict[str, Record]:
        records = self.rebuild()
        if records:
            warnings.warn(
                f"the index of experiment {self.work_dir!r} {why}; rebuilt it from "
                f"{len(records)} job folders (scheduler ids of jobs not yet started are lost)",
                stacklevel=3,
            )
            with self.lock():
                self.save_records(records)
        return records

    def rebuild(self) -> dict[str, Record]:
        """Records derived from the job folders (``params.json`` + wrapper files) and the
        batches' member and settings files.

        Folders whose ``params.json`` is missing or cut short were never completely set up
        (the next ``ps.submit`` writes them again) and are left out. An attempt that a batch
        lists but that has not started is SUBMITTING: the next refresh asks its queue whether
        it holds it (and it is sent again if the queue never got it).
        """
        records = self.folder_records(set(), "the rebuilt index")
        for (job_name, attempt), (batch, sent) in sorted(self._batch_members().items()):
            record = records.get(job_name)
            if record is not None and attempt >= record["attempt"]:
                queue = (self.batch_settings(batch) or {}).get("queue")
                apply(record, Recovered(attempt, queue, batch, sent, started=attempt == record["attempt"]))
        return records

    def folder_records(self, known: "set[str]", left_out_of: str) -> dict[str, Record]:
        """Records of the complete job folders not named in ``known``, from their files alone
        (:meth:`record_from_dir`); a folder that is no intact job is left out of
        ``left_out_of`` with a warning that names it and the fix."""
        records = {}
        for entry in sorted(os.scandir(self.work_dir), key=lambda e: e.name):
            if entry.name in known or entry.name.startswith(".") or not entry.is_dir():
                continue
            if _is_complete(entry.path):
                try:
                    records[entry.name] = self.record_from_dir(entry.name)
                except (ExperimentError, KeyError, TypeError, ValueError, OSError) as exc:
                    warnings.warn(
                        f"{entry.path!r} is left out of {left_out_of}: it is no intact job folder "
                        f"({type(exc).__name__}: {exc}); restore its params.json and job.sh, or move it "
                        "out of the work_dir", stacklevel=3)
        return records

    def save_members(self, batch: str, records: list[Record]) -> None:
        """List which attempt of which job a batch sends (``<batch>.jobs``), before it goes
        out, so that a rebuilt index knows every attempt's batch and queue; rewritten without
        the attempts the queue refused (removed if it took none)."""
        path = os.path.join(self.state_dir, "batches", f"{batch}.jobs")
        if records:
            atomic_write(path, "".join(f"{r['job_name']}\t{r['attempt']}\n" for r in records))
        else:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)

    def drop_members(self, batch: str, names: set[str]) -> None:
        """Take jobs whose attempt the batch's queue never got out of its member list."""
        path = os.path.join(self.state_dir, "batches", f"{batch}.jobs")
        kept = [{"job_name": n, "attempt": a} for n, a in _read_members(path) if n not in names]
        self.save_members(batch, kept)

    def _batch_members(self) -> dict[tuple[str, int], tuple[str, float]]:
        """(job name, attempt) -> (its batch, when that batch was written)."""
        found: dict[tuple[str, int], tuple[str, float]] = {}
        try:
            entries = list(os.scandir(os.path.join(self.state_dir, "batches")))
        except FileNotFoundError:
            return found
        for entry in sorted(entries, key=lambda e: e.name):   # batch names sort by time: latest wins
            if entry.name.endswith(".jobs"):
                sent = entry.stat().st_mtime
                found.update({member: (entry.name[:-5], sent) for member in _read_members(entry.path)})
        return found

    def record_from_dir(self, job_name: str) -> Record:
        """Rebuild one job's record from its folder, checking its identity."""
        job_dir = self.job_dir(job_name)
        with open(os.path.join(job_dir, "params.json")) as f:
            meta = json.load(f)   # lenient: earlier versions wrote bare NaN and Infinity
        params = untag_nonfinite(meta["params"])
        if params_hash(params) != meta["hash"]:
            if params_hash(meta["params"]) != meta["hash"]:
                raise ExperimentError(
                    f"{job_dir}/params.json does not match its hash: the file was edited; "
                    "restore it or remove the job folder"
                )
            params = meta["params"]   # an earlier version's dict that looks like a tag
        with open(os.path.join(job_dir, "job.sh")) as f:
            script = f.read()
        record = new_record(RenderedJob(job_name, meta["hash"], params, script))
        attempts = [int(n.split(".")[1]) for n in os.listdir(job_dir)
                    if n.startswith("job.") and n.endswith(".status") and n.split(".")[1].isdigit()]
        if attempts:
            apply(record, Recovered(max(attempts), None, None, None, started=True))
        return record

    # -- job folders -------------------------------------------------------------------
    def setup_job(self, job: RenderedJob) -> None:
        """Write a job's folder: ``checkpoint/`` (``$PS_CHECKPOINT_DIR``, made here so that the
        wrapper need not run ``mkdir`` for every job), ``job.sh``, then ``params.json``, which
        marks it complete.

        Callers set up jobs the index does not name (or whose folder was deleted). A folder
        holding only part of that (a crash between the writes) is written again; so is a
        complete one that holds another job but never ran (nothing in it but what this
        writes): a process killed between writing it and writing the index left it, and
        never sent its job (e.g. a search's trial, whose number the next run gives to a new
        trial). A complete folder of the same job is kept; any other folder of that name is
        not touched (ConflictError).
        """
        job_dir = f"{self.work_dir}/{job.job_name}"
        try:
            os.mkdir(job_dir)
        except FileExistsError:
            if _is_complete(job_dir):
                if self._holds(job):
                    return
                if not _never_ran(job_dir):
                    raise ConflictError(conflict_message(self, job.job_name)) from None
                os.remove(f"{job_dir}/params.json")   # incomplete again until written below
            elif not set(os.listdir(job_dir)) <= _SET_UP:
                raise ConflictError(
                    f"{job_dir!r} exists and is not a job folder of this experiment; move it away, "
                    "or use a work_dir or job name format that does not collide with it"
                ) from None
        os.makedirs(f"{job_dir}/{CHECKPOINTS}", exist_ok=True)
        write_file(f"{job_dir}/job.sh", job.script, mode=0o755)
        write_file(f"{job_dir}/params.json", job.params_json())

    def replace_job(self, job: RenderedJob) -> None:
        """Overwrite an existing job's params.json and script (``replace=True``), moving what
        its earlier attempts wrote (metrics, outputs) into ``.replaced-<time>/``, so that it
        is never read as the new job's."""
        job_dir = self.job_dir(job.job_name)
        old = [n for n in os.listdir(job_dir) if not n.startswith(".") and n not in ("params.json", "job.sh")
               and not (n.startswith("job.") and n.split(".")[1].isdigit())]
        if old:
            aside = os.path.join(job_dir, f".replaced-{int(time.time() * 1000)}")
            os.mkdir(aside)
            for name in old:
                os.replace(os.path.join(job_dir, name), os.path.join(aside, name))
        atomic_write(os.path.join(job_dir, "job.sh"), job.script, mode=0o755)
        atomic_write(os.path.join(job_dir, "params.json"), job.params_json())

    def _holds(self, job: RenderedJob) -> bool:
        """Whether the job's complete folder holds this same job (params and script)."""
        existing = self.record_from_dir(job.job_name)
        return existing["hash"] == job.hash and existing["script_hash"] == script_digest(job.script)


#: The job's own checkpoint folder inside its job folder (the wrapper's $PS_CHECKPOINT_DIR).
CHECKPOINTS = "checkpoint"
#: What :meth:`Experiment.setup_job` writes in a job's folder, before any attempt runs.
_SET_UP = {"job.sh", "params.json", CHECKPOINTS}


def _never_ran(job_dir: str) -> bool:
    """Whether a job folder holds only what setting it up wrote (no attempt, no output)."""
    if not set(os.listdir(job_dir)) <= _SET_UP:
        return False
    checkpoints = f"{job_dir}/{CHECKPOINTS}"
    return not os.path.isdir(checkpoints) or not os.listdir(checkpoints)


def conflict_message(exp: Experiment, job_name: str) -> str:
    return (
        f"job {job_name!r} already exists in {exp.work_dir!r} with different parameters or a "
        "different script; use a new work_dir for the changed sweep, or pass replace=True to "
        "overwrite the jobs that changed (their old results are then stale)"
    )


def _read_members(path: str) -> list[tuple[str, int]]:
    """(job name, attempt) per line of a batch's member list; damaged lines are skipped."""
    return _name_attempt_rows(path, exact=True)


def write_map(path: str, lines: list[tuple[str, int, str]]) -> None:
    """A chunk's map file: line i is task i's ``JOB_DIR<tab>ATTEMPT<tab>MODE``."""
    with open(path, "w") as f:
        f.writelines(f"{job_dir}\t{attempt}\t{mode}\n" for job_dir, attempt, mode in lines)


def read_map(path: str) -> list[tuple[str, int]]:
    """(job dir, attempt) per line of a map file (nothing if it is gone)."""
    return _name_attempt_rows(path, exact=False)


def _name_attempt_rows(path: str, exact: bool) -> list[tuple[str, int]]:
    """The first two tab-separated fields of each line, (text, attempt); lines with fewer
    fields (with ``exact``: other than two) or no attempt number are skipped."""
    try:
        with open(path) as f:
            rows = [line.rstrip("\n").split("\t") for line in f]
    except FileNotFoundError:
        return []
    return [(row[0], int(row[1])) for row in rows
            if (len(row) == 2 if exact else len(row) >= 2) and row[1].isdigit()]


def _is_complete(job_dir: str) -> bool:
    """Whether a job folder's ``params.json`` (written last) is there and whole."""
    try:
        with open(f"{job_dir}/params.json", "rb") as f:
            json.loads(f.read())
        return True
    except (FileNotFoundError, ValueError):
        return False


def merge(records: RecordMap, changed: list[Record]) -> None:
    """Put ``changed`` records in place of theirs, but for a trial pruned meanwhile (see
    :meth:`Experiment.update`)."""
    for record in changed:
        name = record["job_name"]
        if name in records and records.stored(name, "state") == PRUNED \
                and records.stored(name, "attempt") == record["attempt"]:
            continue
        records[name] = record
