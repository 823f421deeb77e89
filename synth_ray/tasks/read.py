"""Input rows of the ``tasks`` job: any JSONL (plain or compressed) or Parquet records, read as
the document readers read documents (``synth_ray.io.readers``: streamed file by file, every bad
line or file a reject naming it, duplicate ids rejected naming the first), each record kept
whole as JSON so that any columns flow to the tasks.

Rows carry ``doc_id`` (the id field, else ``<file>:<line>``), ``text`` (the record as JSON, with
``id`` set to ``doc_id``), ``source`` and ``line``: the document schema, so the readers'
duplicate-id step applies as it is.

:func:`input_columns` reads only the first good record of each file (a Parquet file's schema):
the columns a chain's first task is checked against before any work.
"""

from __future__ import annotations

import json

import pyarrow as pa

from synth_ray.io import fs
from synth_ray.io.lines import iter_lines, open_text_stream
from synth_ray.io.readers import FileReader, InputFile, ReadOptions, find_inputs

MAX_PROBE_LINES = 100  # lines looked at for a JSONL file's first good record


class TaskRowReader(FileReader):
    """A ``FileReader`` whose records are kept whole (any columns)."""

    def _parquet_columns(self, pf):
        return None  # every column

    def _check(self, obj, line: int, fallback: str) -> dict | None:
        if not isinstance(obj, dict):
            kind = type(obj).__name__
            return self._reject(
                "not_an_object", line, fallback, f"a JSON {kind}, expected an object"
            )
        raw_id = obj.get(self.opts.id_field) if self.opts.id_field else None
        if isinstance(raw_id, (dict, list)):
            detail = f"'{self.opts.id_field}' is a JSON {type(raw_id).__name__}"
            return self._reject("bad_id", line, fallback, detail)
        rid = str(raw_id) if raw_id not in (None, "") else fallback
        text = json.dumps({**obj, "id": rid}, sort_keys=True, ensure_ascii=False, default=str)
        if len(text.encode("utf-8", "replace")) > self.opts.max_doc_bytes:
            return self._reject("too_large", line, rid, f"record over {self.opts.max_doc_bytes} B")
        return {"doc_id": rid, "text": text, "source": self.file.path, "line": line}


def read_task_row_files(batch: pa.Table, opts: ReadOptions):
    for r in batch.to_pylist():
        yield from TaskRowReader(InputFile(r["path"], r["name"], r["kind"]), opts).batches()


def read_task_rows(inputs: str | list[str], opts: ReadOptions):
    """A materialized Ray Dataset of input rows (ids unique); rejects to ``opts.rejects_dir``."""
    import ray.data

    from synth_ray.io.dedup import drop_duplicate_ids

    files = find_inputs(inputs)
    items = [{"path": f.path, "name": f.name, "kind": f.kind} for f in files]
    rows = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        read_task_row_files, fn_kwargs={"opts": opts}, batch_size=1, batch_format="pyarrow"
    )
    return drop_duplicate_ids(rows.materialize(), [f.path for f in files], opts.rejects_dir)


def _first_record_columns(f: InputFile) -> set[str] | None:
    if f.kind == "parquet":
        import pyarrow.parquet as pq

        with fs.open_raw(f.path) as raw:
            return set(pq.ParquetFile(raw).schema_arrow.names)
    with fs.open_raw(f.path) as raw:
        stream, _ = open_text_stream(raw)
        for n, data, _size in iter_lines(stream, 1 << 24):
            if n > MAX_PROBE_LINES:
                break
            try:
                obj = json.loads(data) if data and data.strip() else None
            except ValueError:
                continue
            if isinstance(obj, dict):
                return set(obj)
    return None


def input_columns(inputs: str | list[str]) -> dict[str, set[str]]:
    """File -> the columns of its first good record (files with none are left out: their
    lines all become rejects when read)."""
    out = {}
    for f in find_inputs(inputs):
        try:
            cols = _first_record_columns(f)
        except Exception:  # an unreadable file is a reject at read time, not a config error
            cols = None
        if cols is not None:
            out[f.path] = cols
    return out
