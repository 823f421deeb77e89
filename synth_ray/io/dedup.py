"""Duplicate document ids: the first document in input order keeps its id, every later one with
the same id is a ``duplicate_id`` reject naming the first one's file and line (identical text
or not: never a silent merge, never two documents under one id).

Input order is the sorted file list, then the line (or Parquet row) within a file, so the same
inputs reject the same documents on every run, whatever order Ray ran the read tasks in. Only
the id columns reach the driver (a few dozen bytes per document); texts stay in the object store.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synth_ray.io.ids import text_hash
from synth_ray.io.rejects import reject, write_rejects


def id_keys(batch: pa.Table) -> pa.Table:
    """Ray Data UDF: documents -> (doc_id, source, line, text hash)."""
    hashes = [text_hash(t) for t in batch.column("text").to_pylist()]
    return pa.table(
        {
            "doc_id": batch.column("doc_id"),
            "source": batch.column("source"),
            "line": batch.column("line"),
            "hash": pa.array(hashes, pa.string()),
        }
    )


def duplicate_rejects(keys: pa.Table, files: list[str]) -> list[dict]:
    """The ``duplicate_id`` rejects among ``keys`` (doc_id, source, line, hash)."""
    if keys.num_rows < 2:
        return []
    order = pc.index_in(keys.column("source"), value_set=pa.array(files, pa.string()))
    keys = keys.append_column("order", order).sort_by(
        [("doc_id", "ascending"), ("order", "ascending"), ("line", "ascending")]
    )
    ids = keys.column("doc_id").combine_chunks()
    same = pc.equal(ids.slice(1), ids.slice(0, len(ids) - 1)).to_numpy(zero_copy_only=False)
    is_first = np.concatenate([[True], ~same])
    if is_first.all():
        return []
    first_of = np.flatnonzero(is_first)[np.cumsum(is_first) - 1]
    rows = keys.select(["doc_id", "source", "line", "hash"]).to_pylist()
    out = []
    for i in np.flatnonzero(~is_first):
        r, first = rows[i], rows[first_of[i]]
        same_text = "the same text" if r["hash"] == first["hash"] else "a different text"
        detail = (
            f"id {r['doc_id']!r} already read from {first['source']} line {first['line']} "
            f"(kept there; this one has {same_text})"
        )
        row = reject(r["source"], "duplicate_id", stage="read", line=r["line"], id=r["doc_id"])
        out.append(dict(row, detail=detail[:500]))
    return out


def drop_rows(batch: pa.Table, drop: dict[str, set[int]]) -> pa.Table:
    """Ray Data UDF: documents without those at ``drop[source]`` lines."""
    keep = [
        line not in drop.get(source, ())
        for source, line in zip(
            batch.column("source").to_pylist(), batch.column("line").to_pylist()
        )
    ]
    return batch.filter(pa.array(keep, pa.bool_()))


def drop_duplicate_ids(docs, files: list[str], rejects_dir: str):
    """``docs`` (a materialized Ray Dataset) without its duplicate ids, their rejects written."""
    import ray

    tables = ray.get(docs.map_batches(id_keys, batch_format="pyarrow").to_arrow_refs())
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return docs
    rejects = duplicate_rejects(pa.concat_tables(tables), files)
    if not rejects:
        return docs
    write_rejects(rejects_dir, rejects, "read-dup")
    drop: dict[str, set[int]] = {}
    for r in rejects:
        drop.setdefault(r["source"], set()).add(r["line"])
    return docs.map_batches(drop_rows, fn_kwargs={"drop": drop}, batch_format="pyarrow")
