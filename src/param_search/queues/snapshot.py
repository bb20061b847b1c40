"""The status snapshot: a scheduler's view of many jobs as one Arrow table (see
``Queue.snapshot``), so a refresh of 10,000 jobs joins it to the index column-wise.

Columns: ``job_id``, ``state`` (ours), ``native``, ``reason``, ``node``, ``submit`` (epoch).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa


def per_value(column: "pa.Array | pa.ChunkedArray", interpret, kind: "pa.DataType") -> "pa.Array":
    """``interpret`` applied to each distinct value of a text column, spread to its rows."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(column, pa.ChunkedArray):
        column = column.chunk(0) if column.num_chunks else pa.array([], column.type)
    codes = column.dictionary_encode()
    values = pa.array([interpret(v) for v in codes.dictionary.to_pylist()], kind)
    return pc.take(values, codes.indices)


def array_ids(job_ids: "pa.Array") -> list[str]:
    """The distinct array (or plain job) ids of these job ids: ``7_3`` -> ``7``, sorted."""
    import pyarrow.compute as pc

    return sorted(pc.unique(pc.list_element(pc.split_pattern(job_ids, "_", max_splits=1), 0)).to_pylist())


def id_array(job_ids: list[str]) -> "pa.Array":
    import pyarrow as pa

    return pa.array(job_ids, pa.large_string())


def snapshot_infos(snapshot: "pa.Table", job_ids: "Sequence[str] | None" = None) -> dict[str, dict]:
    """{job id: info} of the snapshot rows about ``job_ids`` (default: every row)."""
    import pyarrow.compute as pc

    if job_ids is not None:
        snapshot = snapshot.filter(pc.is_in(snapshot.column("job_id"), id_array(list(job_ids))))
    columns = {name: snapshot.column(name).to_pylist() for name in ("state", "native", "reason", "node", "submit")}
    return {job_id: {name: values[i] for name, values in columns.items()}
            for i, job_id in enumerate(snapshot.column("job_id").to_pylist())}


def snapshot_types() -> dict:
    import pyarrow as pa

    text = pa.large_string()
    return {"job_id": text, "state": text, "native": text, "reason": text, "node": text, "submit": pa.float64()}
