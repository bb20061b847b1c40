"""The experiment's records as a mapping over its index table, turned into dicts only where
touched.

Why: a refresh loop (``ps.wait``, the supervisor, ``ps.optimize``) changes a few jobs per
round in an index of thousands. Turning every row into a dict and back for each write made
a round cost the whole index twice over; here a round costs the rows it reads, plus
column-wise Arrow work (splicing the changed rows, appending new ones) for the write.

Records read from the map are plain dicts, the same object on every read, so callers
change them in place as before; :meth:`RecordMap.table` is the index to save.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from . import index_file
from .record import Record

if TYPE_CHECKING:
    import numpy as np

#: Rows read one at a time before the rest are read at once (many single reads cost more).
SINGLE_READS = 32


class RecordMap(MutableMapping):
    """Job name -> record, backed by an index table; rows become dicts when read.

    ``carried``: what the map that saved ``index`` knew of it (see :meth:`carried`), so that
    a loop writing the index at every round neither finds rows by name again nor splices
    every field of the records it puts in place of rows it did not read."""

    def __init__(self, index: pa.Table, work_dir: str, carried: "Carried | None" = None):
        self.index, self.work_dir = index, work_dir
        self._positions: dict[str, int] | None = None if carried is None else carried.positions
        self._known: dict[str, Record] = {} if carried is None else carried.known   # rows as the index
        # holds them, copies that nobody changes (never more than the carried ones)
        self._read: dict[str, Record] = {}    # rows of the index read so far (maybe changed)
        self._before: dict[str, Record] = {}  # copies of them as the index holds them
        self._added: dict[str, Record] = {}   # records of jobs the index does not hold
        self._replaced: dict[str, Record] = {}   # records put in place of rows not read
        self._singles = 0

    # -- the mapping ----------------------------------------------------------------------
    def positions(self) -> dict[str, int]:
        if self._positions is None:
            names = self.index.column("job_name").to_pylist()
            self._positions = dict(zip(names, range(len(names))))
        return self._positions

    def __contains__(self, name: object) -> bool:
        return name in self._added or name in self.positions()

    def _held(self, name: str) -> Record | None:
        """The record of ``name`` as a dict, if the map holds one (read, replaced or added)."""
        return self._read.get(name) or self._replaced.get(name) or self._added.get(name)

    def __getitem__(self, name: str) -> Record:
        record = self._held(name)
        if record is not None:
            return record
        position = self.positions()[name]   # KeyError: no such job
        self._singles += 1
        if self._singles > SINGLE_READS:
            self._read_all()
            return self._read[name]
        record = self._keep(name, index_file.record_at(self.index, position))
        return record

    def _keep(self, name: str, record: Record) -> Record:
        self._before[name] = dict(record)
        return self._read.setdefault(name, record)

    def __setitem__(self, name: str, record: Record) -> None:
        if name in self._read:
            self._read[name] = record
        elif name in self._known:   # as good as read: only its changed fields are spliced
            self._before[name] = self._known[name]
            self._read[name] = record
        elif name in self.positions():
            self._replaced[name] = record
        else:
            self._added[name] = record

    def touched(self) -> dict[str, Record]:
        """The records read, put or added through this map, as they are now."""
        return {**self._read, **self._replaced, **self._added}

    def stored(self, name: str, field: str):
        """One field of a job's record as the map holds it now, without reading its row."""
        record = self._held(name) or self._known.get(name)
        if record is not None:
            return record[field]
        value = self.index.column(field)[self.positions()[name]]
        return value.as_py() if field not in index_file.TIME_FIELDS else self[name][field]

    def __delitem__(self, name: str) -> None:
        raise TypeError("records are never removed from an experiment's index")

    def __iter__(self) -> Iterator[str]:
        yield from self.positions()
        yield from list(self._added)

    def __len__(self) -> int:
        return len(self.positions()) + len(self._added)

    def values(self):   # noqa: D102 (read at once, not row by row)
        self._read_all()
        return [self[name] for name in self]

    def items(self):   # noqa: D102
        self._read_all()
        return [(name, self[name]) for name in self]

    def prefetch(self, names: list[str]) -> None:
        """Read the rows of ``names`` (those in the index, not read yet) in one go."""
        positions = self.positions()
        wanted = [n for n in dict.fromkeys(names) if n in positions and n not in self._read
                  and n not in self._replaced]
        if len(wanted) > 1:
            rows = self.index.take([positions[n] for n in wanted])
            for name, record in zip(wanted, index_file.to_records(rows)):
                self._keep(name, record)

    def _read_all(self) -> None:
        if len(self._read) == self.index.num_rows:
            return
        records = index_file.to_records(self.index)
        for name, record in zip(self.positions(), records):
            if name not in self._read and name not in self._replaced:
                self._keep(name, record)

    # -- counting without reading ----------------------------------------------------------
    def count(self, record_test: Callable[[Record], bool], column_test: Callable[[pa.Table], "np.ndarray"]) -> int:
        """How many records pass a test: rows read (maybe changed) by ``record_test``, the
        others by ``column_test``, a boolean mask over the rows of an index table."""
        import numpy as np

        mask = np.asarray(column_test(self.index), dtype=bool).copy()
        positions = self.positions()
        mask[[positions[n] for n in [*self._read, *self._replaced]]] = False
        return int(mask.sum()) + sum(map(record_test, self._read.values())) \
            + sum(map(record_test, self._replaced.values())) + sum(map(record_test, self._added.values()))

    # -- writing -------------------------------------------------------------------------
    def table(self) -> pa.Table:
        """The index with every record as it is now (``self.index`` itself if none changed):
        the changed fields of changed rows spliced in, new rows appended; built from all
        records where that is not exact (a job's params changed, new parameter columns) or
        not cheaper."""
        changed = self._changed()
        fields = {f for n, r in changed.items() for f, v in r.items() if v != self._before[n][f]}
        moved = "hash" in fields   # a job's params changed
        positions = self.positions()
        if self._replaced:
            hashes = self.index.column("hash")
            moved = moved or any(r["hash"] != hashes[positions[n]].as_py() for n, r in self._replaced.items())
            changed.update(self._replaced)
            fields = set(index_file.FIELDS)
        if not changed and not self._added:
            return self.index
        if len(changed) * 2 > self.index.num_rows or moved:
            return self._rebuilt()
        table = index_file.replace_rows(self.index, [positions[n] for n in changed], list(changed.values()),
                                        fields)
        if not self._added:
            return table
        appended = index_file.append_records(table, list(self._added.values()), self.work_dir)
        return appended if appended is not None else self._rebuilt()

    def view(self, fields: "set[str]") -> pa.Table:
        """The index with only ``fields`` of the changed rows spliced in: a table to read
        those columns from, cheaper than :meth:`table` for a few of them; never to save."""
        changed = {**self._changed(), **self._replaced}
        if self._added:
            return self.table()
        if not changed:
            return self.index
        positions = self.positions()
        return index_file.replace_rows(self.index, [positions[n] for n in changed], list(changed.values()), fields)

    def _changed(self) -> dict[str, Record]:
        """Rows read and changed since (not counting replaced or added ones)."""
        return {n: r for n, r in self._read.items() if r != self._before[n]}

    def saved(self, table: pa.Table) -> None:
        """``table`` (what :meth:`table` gave) is now the stored index: changes count from here."""
        self._read.update(self._replaced)
        self._replaced = {}
        if self._added:   # (a new dict: the one carried in may be another map's)
            positions = self.positions()
            self._positions = {**positions, **dict(zip(self._added, range(len(positions),
                                                                          len(positions) + len(self._added))))}
            self._read.update(self._added)
            self._added = {}
        self.index = table
        self._before = {n: dict(r) for n, r in self._read.items()}

    def carried(self) -> "Carried":
        """What this map knows of its index (after :meth:`saved`), for the next map of it."""
        return Carried(self.positions(), {**self._known, **self._before})

    def _rebuilt(self) -> pa.Table:
        return index_file.from_records(list(self.values()), self.work_dir)


@dataclass(frozen=True)
class Carried:
    """Job name -> row of an index table, and copies of some of its rows as records."""

    positions: dict[str, int]
    known: dict[str, Record]
