"""The index file: every job's record as one Arrow IPC file (columnar, uncompressed).

Why Arrow: ``ps.load`` maps the file and hands its columns to pandas without parsing
anything, so loading 10,000 jobs costs about what reading the file's bytes costs. Writers
still work on plain dict records (:func:`to_records` / :func:`from_records`).

Columns: the record fields of :data:`FIELDS` (``params`` as exact JSON text, the source
for records), plus one display column per parameter, named ``PARAM_PREFIX + name``,
typed by Arrow when the table shows every distinct value distinctly that way (numbers,
strings, booleans; see :func:`_typed_param`) and otherwise stored as JSON text with
``{"json": "1"}`` field metadata. All JSON here is strict: non-finite floats are tagged
as in ``params.json`` (``identity.tag_nonfinite``).
"""
from __future__ import annotations

import json
import os
import re
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from .files import atomic_write
from .identity import json_default, tag_nonfinite, untag_nonfinite
from .record import FIELDS as RECORD_FIELDS

try:   # 3-5x faster than json; json is the fallback, same text
    import orjson
except ImportError:  # pragma: no cover
    orjson = None

if TYPE_CHECKING:
    import numpy as np

    from .record import Record

#: File format version, kept in the schema metadata.
FORMAT_VERSION = "2"
PARAM_PREFIX = "param:"

_STR, _INT, _TIME = pa.large_string(), pa.int64(), pa.timestamp("us")
#: Record fields and their Arrow types, in file order (``params`` is stored as JSON text).
FIELDS: dict[str, pa.DataType] = {
    name: {"text": _STR, "json": _STR, "int": _INT, "time": _TIME}[kind] for name, kind in RECORD_FIELDS.items()
}
#: Record fields stored as Arrow timestamps (epoch seconds in records).
TIME_FIELDS = frozenset(name for name, kind in FIELDS.items() if kind == _TIME)
#: Fields added since this format version began, with what an index without them means:
#: such an index is read as it is (no rebuild, which would lose pending jobs' ids).
ADDED: dict[str, Any] = {"restarts": 0, "time_limit": None, "mem_limit": None, "excluded": None,
                         "history": None}


# -- records <-> Arrow ------------------------------------------------------------------
def from_records(records: list["Record"], work_dir: str) -> pa.Table:
    """The Arrow table of ``records`` (record fields, ``job_dir``, one column per parameter).

    ``job_dir`` is stored, not derived, so that loading does not build 10,000 paths; the
    ``work_dir`` it was made for is kept in the metadata (see :func:`job_dirs`).
    """
    columns = {name: _array([r[name] for r in records], kind) for name, kind in FIELDS.items()
               if name != "params"}
    columns["params"] = pa.array([dumps(r["params"]) for r in records], type=_STR)
    fields = [pa.field(name, FIELDS[name]) for name in FIELDS] + [pa.field("job_dir", _STR)]
    arrays = [columns[name] for name in FIELDS]
    arrays.append(_job_dirs(columns["job_name"], work_dir))
    for name in param_names(records):
        field, array = _param_column(PARAM_PREFIX + name, [r["params"].get(name) for r in records])
        fields.append(field)
        arrays.append(array)
    schema = pa.schema(fields, metadata={"param_search": FORMAT_VERSION, "work_dir": work_dir})
    return pa.Table.from_arrays(arrays, schema=schema)


def to_records(table: pa.Table) -> list["Record"]:
    """Plain dict records of an index table (the inverse of :func:`from_records`)."""
    names = [name for name in FIELDS if name != "params"]
    values = [_values(table.column(name)) for name in names]
    records = [dict(zip(names, row)) for row in zip(*values)]
    for record, params in zip(records, loads_column(table.column("params"))):
        record["params"] = params
    return records


def record_at(table: pa.Table, row: int) -> "Record":
    """The record of one row of an index table (what :func:`to_records` gives for it,
    without a column-wide conversion)."""
    record: dict[str, Any] = {}
    for name, kind in FIELDS.items():
        if name != "params":
            value = table.column(name)[row]
            record[name] = value.as_py() if kind != _TIME or value.value is None else value.value / 1e6
    record["params"] = loads(table.column("params")[row].as_py())
    return record


def append_records(table: pa.Table, records: list["Record"], work_dir: str) -> pa.Table | None:
    """``table`` with ``records`` appended, or None where that would not be the table
    :func:`from_records` makes of all of them: a parameter column it would type otherwise
    once the values meet (a new parameter, a typed column with gaps, floats meeting ints)."""
    if (table.schema.metadata or {}).get(b"work_dir") != work_dir.encode():
        return None   # the experiment moved: every job_dir is made again
    tail = from_records(records, work_dir)
    head_params = [n for n in table.column_names if n.startswith(PARAM_PREFIX)]
    if sorted(head_params) != sorted(n for n in tail.column_names if n.startswith(PARAM_PREFIX)):
        return None
    for name in head_params:
        field, other = table.schema.field(name), tail.schema.field(name)
        if field.type != other.type or (field.metadata or {}) != (other.metadata or {}):
            return None
        if field.metadata and field.metadata.get(b"json") or field.type == pa.null():
            continue
        if table.column(name).null_count or tail.column(name).null_count:
            return None
        if field.type == pa.float64() and not _plain_floats([r["params"].get(name[len(PARAM_PREFIX):])
                                                            for r in records]):
            return None
    tail = tail.select(table.column_names).replace_schema_metadata(table.schema.metadata)
    return pa.concat_tables([table, tail]).combine_chunks()   # chunks per append would slow every read


def _plain_floats(values: list[Any]) -> bool:
    """Whether none of ``values`` could meet an int shown as a float (an int, or a whole float)."""
    import numpy as np

    return all(isinstance(v, (float, np.floating)) and not float(v).is_integer() for v in values)


def job_dirs(table: pa.Table, work_dir: str) -> pa.ChunkedArray:
    """The job folders of an index table's rows, for an experiment now at ``work_dir``."""
    if (table.schema.metadata or {}).get(b"work_dir") == work_dir.encode():
        return table.column("job_dir")
    return pa.chunked_array([_job_dirs(table.column("job_name"), work_dir)], type=_STR)


def _job_dirs(names: "pa.Array | pa.ChunkedArray", work_dir: str) -> pa.Array:
    import pyarrow.compute as pc

    prefix = pa.scalar(work_dir.rstrip("/") + "/", _STR)
    return pc.binary_join_element_wise(prefix, names, pa.scalar("", _STR))


def _array(values: list[Any], kind: pa.DataType) -> pa.Array:
    """Record values as an Arrow array; times go from epoch seconds to microseconds."""
    if values.count(None) == len(values):   # (``pa.array`` takes several times longer on these)
        return pa.nulls(len(values), kind)
    if kind != _TIME:
        return pa.array(values, type=kind)
    # round half to even, as Arrow's own round would (and as every earlier index was written)
    return pa.array([None if v is None else round(float(v) * 1e6) for v in values], type=_TIME)


def _values(column: pa.ChunkedArray) -> list[Any]:
    """The inverse of :func:`_array`."""
    if column.type != _TIME:
        return column.to_pylist()
    import pyarrow.compute as pc

    return pc.divide(pc.cast(column, _INT), 1e6).to_pylist()


def replace_rows(table: pa.Table, rows: "np.ndarray | list[int]", records: list["Record"],
                 fields: "set[str] | None" = None) -> pa.Table:
    """``table`` with the record fields of ``rows`` replaced by ``records`` (same order);
    only ``fields`` of them, if given (those that changed).

    Parameters and ``job_dir`` never change for a job, so only the record fields are spliced.
    """
    import numpy as np

    if not len(rows):
        return table
    names = [name for name in FIELDS if name not in ("job_name", "hash", "params")
             and (fields is None or name in fields)]
    if not names:
        return table
    selector = np.arange(table.num_rows)
    selector[rows] = table.num_rows + np.arange(len(rows))
    old = table.select(names)
    new = pa.Table.from_arrays([_array([r[name] for r in records], FIELDS[name]) for name in names],
                               schema=old.schema)
    spliced = pa.concat_tables([old, new]).take(pa.array(selector))   # one take for every column
    for name in names:
        table = table.set_column(table.schema.get_field_index(name), name, spliced.column(name))
    return table


def param_names(records: list["Record"]) -> list[str]:
    """Parameter names in order of first appearance across ``records``."""
    names: dict[str, None] = {}
    for keys in dict.fromkeys(tuple(r["params"]) for r in records):   # distinct key tuples
        names.update(dict.fromkeys(keys))
    return list(names)


def _param_column(name: str, values: list[Any]) -> tuple[pa.Field, pa.Array]:
    """A typed Arrow column if it keeps the values apart, else JSON text marked as such."""
    array = _typed_param(values)
    if array is not None:
        return pa.field(name, array.type), array
    texts = pa.array([None if v is None else dumps(v) for v in values], type=_STR)
    return pa.field(name, _STR, metadata={"json": "1"}), texts


#: Ints a float64 holds exactly (the table shows an int column with gaps as float64).
_EXACT_INT = 2 ** 53


def _typed_param(values: list[Any]) -> pa.Array | None:
    """The values as one typed Arrow array, or None where the table would show two
    different points alike: ``1``, ``1.0`` and ``True`` are three points, an int beyond 64
    bits (or beyond 2**53 next to floats or gaps) is no float, NaN is not None."""
    kind_of = {t: _kind(t) for t in set(map(type, values))}
    kinds = set(kind_of.values())
    gaps = None in kinds
    kinds.discard(None)
    if not kinds:
        return pa.nulls(len(values))
    if kinds == {int, float}:
        ints = {int(v) for v in values if kind_of[type(v)] is int}
        floats = {float(v) for v in values if kind_of[type(v)] is float}
        if any(abs(i) > _EXACT_INT or float(i) in floats for i in ints):
            return None
        kinds = {float}
    if len(kinds) > 1 or object in kinds:   # mixed kinds, lists, dicts
        return None
    kind, = kinds
    if gaps and kind is float and any(v != v for v in values if v is not None):
        return None
    if gaps and kind is int and any(abs(int(v)) > _EXACT_INT for v in values if v is not None):
        return None
    try:
        return pa.array(values, type={str: _STR, bool: pa.bool_(), int: _INT, float: pa.float64()}[kind])
    except (pa.ArrowException, TypeError, ValueError, OverflowError):   # e.g. an int beyond 64 bits
        return None


def _kind(kind: type) -> type | None:
    """The JSON kind of a Python (or numpy) type: None, bool, int, float, str or object."""
    import numpy as np

    if kind is type(None):
        return None
    for plain, numpy_kind in ((bool, np.bool_), (int, np.integer), (float, np.floating), (str, np.str_)):
        if issubclass(kind, (plain, numpy_kind)):
            return plain
    return object


# -- file I/O ---------------------------------------------------------------------------
def write(path: str, table: pa.Table) -> None:
    """Replace the file at ``path`` with ``table`` atomically (see ``atomic_write``)."""
    import pyarrow.ipc

    if any(column.num_chunks > 1 for column in table.columns):
        table = table.combine_chunks()   # one record batch: what read and take are fastest on
    sink = pa.BufferOutputStream()
    with pyarrow.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    atomic_write(path, memoryview(sink.getvalue()))


def read(path: str) -> pa.Table:
    """The table in ``path``; ``ValueError`` if it is not a complete index file.

    The file is read into private memory (about half a millisecond per 10,000 jobs), never
    memory-mapped: a mapped file cut short or overwritten in place (``cp`` over it, another
    machine on NFS) would kill the process holding the table with SIGBUS. The memory is
    writable, so numpy views of its columns can be edited.
    """
    import pyarrow.ipc

    try:
        with open(path, "rb") as f:
            memory = bytearray(os.fstat(f.fileno()).st_size)
            f.readinto(memory)
        table = pyarrow.ipc.open_file(pa.py_buffer(memory)).read_all()
    except pa.ArrowInvalid as exc:
        raise ValueError(f"not an Arrow file ({exc})") from exc
    metadata = table.schema.metadata or {}
    if metadata.get(b"param_search") != FORMAT_VERSION.encode():
        raise ValueError("not a param_search index of this version")
    for name, value in ADDED.items():
        if name not in table.column_names:
            position = list(FIELDS).index(name)
            table = table.add_column(position, pa.field(name, FIELDS[name]),
                                     pa.array([value] * table.num_rows, FIELDS[name]))
    missing = set(FIELDS).difference(table.column_names)
    if missing:
        raise ValueError(f"columns {sorted(missing)} are missing")
    return table


def token_of(table: pa.Table) -> str | None:
    """The token of the experiment an index table was written for (None: not recorded)."""
    value = (table.schema.metadata or {}).get(b"token")
    return value.decode() if value else None


def with_token(table: pa.Table, token: str) -> pa.Table:
    """``table`` marked as the index of the experiment with ``token``."""
    return table.replace_schema_metadata({**(table.schema.metadata or {}), b"token": token.encode()})


def dumps(value: Any) -> str:
    """Compact strict JSON, keys in their order, non-finite floats tagged (see
    ``identity.tag_nonfinite``)."""
    if orjson is not None:
        try:
            text = orjson.dumps(value, default=json_default, option=orjson.OPT_SERIALIZE_NUMPY).decode()
        except TypeError:   # e.g. an int beyond 64 bits
            pass
        else:   # orjson writes NaN and inf as null: a text with null or a tag-like key is redone
            if "null" not in text and '{"$' not in text:   # (str's `in` is faster than bytes')
                return text
    return _dump(tag_nonfinite(value))


def _dump(value: Any) -> str:
    if orjson is not None:
        try:
            return orjson.dumps(value, default=json_default, option=orjson.OPT_SERIALIZE_NUMPY).decode()
        except TypeError:
            pass
    return json.dumps(value, separators=(",", ":"), default=json_default, allow_nan=False)


#: 19 digits in a row: perhaps an int beyond 64 bits, which orjson would read as a float.
_LONG_DIGITS = re.compile(r"\d{19}")
#: What plain ``orjson.loads`` would misread in a text: long ints, and tags to undo.
_NOT_PLAIN = _LONG_DIGITS.pattern + r'|\{"\$'


def loads(text: str | bytes) -> Any:
    """The value of a JSON text written by :func:`dumps` or ``identity.stored_json`` (or by
    an earlier version, with bare ``NaN`` and ``Infinity``): ints exact, tags undone."""
    if isinstance(text, bytes):
        text = text.decode()
    if orjson is not None and not _LONG_DIGITS.search(text):
        try:
            value = orjson.loads(text)
        except ValueError:   # e.g. NaN written by an earlier version
            value = json.loads(text)
    else:
        value = json.loads(text)
    return untag_nonfinite(value) if '{"$' in text else value


def loads_column(column: pa.ChunkedArray) -> list[Any]:
    """:func:`loads` of each text of a column (None stays None), looking once over the
    whole column (Arrow's regex) for what plain orjson would misread, not text by text."""
    import pyarrow.compute as pc

    texts = column.to_pylist()
    if orjson is not None and not pc.any(pc.match_substring_regex(column, _NOT_PLAIN)).as_py():
        try:
            return [None if text is None else orjson.loads(text) for text in texts]
        except ValueError:   # e.g. NaN written by an earlier version
            pass
    return [None if text is None else loads(text) for text in texts]
