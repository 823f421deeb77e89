"""Rejects: every input row that does not become output is recorded here with its reason.

Rejects are written by the tasks that find them (streaming, no second pass), as Parquet files
named by the content they hold, so a rerun writes the same files again instead of adding
duplicates. At the end of a run ``compact`` folds them into one de-duplicated file.
"""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from synth_ray.io import fs
from synth_ray.io.ids import stable_hash

REJECT_SCHEMA = pa.schema(
    [
        ("source", pa.string()),  # input file (or stage) the row came from
        ("line", pa.int64()),  # 1-based line in a JSONL file, when known
        ("id", pa.string()),  # the row's id, when it has one
        ("stage", pa.string()),  # read | validate | chunk | generate | parse | filter ...
        ("reason", pa.string()),  # short machine-groupable reason
        ("detail", pa.string()),  # human detail (error message, snippet)
    ]
)
REJECT_KEY = ["source", "line", "id", "stage", "reason"]


def reject(
    source: str,
    reason: str,
    *,
    stage: str,
    line: int | None = None,
    id: str | None = None,
    detail: str = "",
) -> dict:
    return {
        "source": source,
        "line": line,
        "id": id,
        "stage": stage,
        "reason": reason,
        "detail": detail[:500],
    }


def write_rejects(rejects_dir: str, rows: list[dict], prefix: str) -> str | None:
    """Write ``rows`` as one Parquet file named by their content; None when there are none."""
    if not rows:
        return None
    table = pa.Table.from_pylist(rows, schema=REJECT_SCHEMA)
    name = f"{prefix}-{stable_hash([[r.get(k) for k in REJECT_KEY] for r in rows])}.parquet"
    buf = io.BytesIO()
    pq.write_table(table, buf)
    path = fs.join(rejects_dir, name)
    fs.write_bytes(path, buf.getvalue())
    return path


def drop_stage(rejects_dir: str, stage: str) -> int:
    """Remove the recorded rejects of ``stage``; returns how many. For a stage that decides
    afresh on a rerun (the judge under a new threshold): its new rejects replace the old ones
    instead of joining them, so no row is both kept and rejected."""
    dropped = 0
    for f in fs.list_files(rejects_dir, (".parquet",)):
        table = pq.read_table(io.BytesIO(fs.read_bytes(f))).cast(REJECT_SCHEMA)
        others = table.filter(pc.fill_null(pc.not_equal(table["stage"], stage), True))
        if others.num_rows == table.num_rows:
            continue
        dropped += table.num_rows - others.num_rows
        if f.endswith("/rejects.parquet"):  # the compacted file keeps its name
            buf = io.BytesIO()
            pq.write_table(others, buf)
            fs.write_bytes(f, buf.getvalue())
            continue
        if others.num_rows:  # a content-named file: the rest under its own content name
            write_rejects(rejects_dir, others.to_pylist(), f.rsplit("/", 1)[-1].split("-", 1)[0])
        fs.delete_file(f)
    return dropped


def read_rejects(rejects_dir: str) -> pa.Table:
    files = fs.list_files(rejects_dir, (".parquet",))
    if not files:
        return REJECT_SCHEMA.empty_table()
    tables = [pq.read_table(io.BytesIO(fs.read_bytes(f))).cast(REJECT_SCHEMA) for f in files]
    return pa.concat_tables(tables)


def compact(rejects_dir: str) -> pa.Table:
    """Fold all reject files into ``rejects.parquet``, one row per distinct reject."""
    files = fs.list_files(rejects_dir, (".parquet",))
    table = read_rejects(rejects_dir)
    if table.num_rows:
        table = table.group_by(REJECT_KEY, use_threads=False).aggregate([("detail", "max")])
        table = table.rename_columns(
            ["detail" if c == "detail_max" else c for c in table.column_names]
        ).select(REJECT_SCHEMA.names)
        table = table.sort_by([("source", "ascending"), ("line", "ascending"), ("id", "ascending")])
    buf = io.BytesIO()
    pq.write_table(table, buf)
    target = fs.join(rejects_dir, "rejects.parquet")
    fs.write_bytes(target, buf.getvalue())
    for f in files:
        if not f.endswith("/rejects.parquet") and f != target:
            fs.delete_file(f)
    return table
