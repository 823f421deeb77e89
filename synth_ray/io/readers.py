"""Document readers: JSONL (optionally gzipped) and Parquet, local paths or any pyarrow/fsspec
URI, streamed through Ray Data.

Nothing is lost: every line or row ends up either as a document or as a reject with its
reason (malformed JSON, not an object, missing or non-string or empty text, non-UTF-8 bytes,
over the size limit). Documents carry ``doc_id`` (the input's id field, else
``<file name>:<line>``), ``text``, ``source`` and ``line``.
"""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass

import pyarrow as pa

from synth_ray.io import fs
from synth_ray.io.ids import text_hash
from synth_ray.io.rejects import reject, write_rejects

JSONL_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz", ".ndjson")
PARQUET_SUFFIXES = (".parquet",)
DOC_SCHEMA = pa.schema(
    [("doc_id", pa.string()), ("text", pa.string()), ("source", pa.string()), ("line", pa.int64())]
)


class InputError(ValueError):
    pass


@dataclass(frozen=True)
class ReadOptions:
    text_field: str = "text"
    id_field: str | None = "id"
    max_doc_bytes: int = 1_000_000
    rejects_dir: str = ""


def find_inputs(inputs: str | list[str]) -> tuple[list[str], list[str]]:
    """(jsonl files, parquet files) named by ``inputs``; an input that matches nothing fails."""
    specs = [inputs] if isinstance(inputs, str) else list(inputs)
    jsonl, parquet = [], []
    for spec in specs:
        files = fs.list_files(spec, JSONL_SUFFIXES + PARQUET_SUFFIXES)
        if not files:
            raise InputError(
                f"input: no input files at {spec!r} (looked for {', '.join(JSONL_SUFFIXES)}, "
                f".parquet files at {fs.absolute(spec)})"
            )
        for f in files:
            (parquet if f.lower().endswith(PARQUET_SUFFIXES) else jsonl).append(f)
    return jsonl, parquet


def read_documents(inputs: str | list[str], opts: ReadOptions):
    """A Ray Dataset of valid documents; rejects are written to ``opts.rejects_dir``."""
    import ray.data

    jsonl, parquet = find_inputs(inputs)
    parts = []
    if jsonl:
        files = ray.data.read_binary_files(jsonl, include_paths=True)
        parts.append(
            files.map_batches(
                _parse_jsonl_files, fn_kwargs={"opts": opts}, batch_size=1, batch_format="pyarrow"
            )
        )
    if parquet:
        ds = ray.data.read_parquet(parquet, include_paths=True)
        parts.append(
            ds.map_batches(_validate_parquet_rows, fn_kwargs={"opts": opts}, batch_format="pyarrow")
        )
    return parts[0] if len(parts) == 1 else parts[0].union(*parts[1:])


def _check_doc(obj, source: str, line: int | None, opts: ReadOptions, fallback_id: str):
    """(doc dict, None) or (None, reject dict)."""
    doc_id = None
    if isinstance(obj, dict) and opts.id_field and obj.get(opts.id_field) is not None:
        doc_id = str(obj[opts.id_field])
    rid = doc_id or fallback_id

    def bad(reason, detail=""):
        return (
            None,
            reject(source, reason, stage="read", line=line, id=rid, detail=detail),
        )

    if not isinstance(obj, dict):
        return bad("not_an_object", f"a JSON {type(obj).__name__}, expected an object")
    if opts.text_field not in obj or obj[opts.text_field] is None:
        return bad("missing_text", f"no '{opts.text_field}' field")
    text = obj[opts.text_field]
    if not isinstance(text, str):
        return bad("text_not_string", f"'{opts.text_field}' is a {type(text).__name__}")
    if not text.strip():
        return bad("empty_text", f"'{opts.text_field}' is empty or whitespace")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:  # lone surrogates, e.g. from a "\\ud800" JSON escape
        return bad("invalid_unicode", f"{exc.reason} at character {exc.start}")
    if size > opts.max_doc_bytes:
        return bad("too_large", f"{size} bytes > max_doc_bytes={opts.max_doc_bytes}")
    return {"doc_id": rid, "text": text, "source": source, "line": line}, None


def _parse_jsonl_files(batch: pa.Table, opts: ReadOptions) -> pa.Table:
    docs, rejects = [], []
    for path, data in zip(batch.column("path").to_pylist(), batch.column("bytes").to_pylist()):
        name = os.path.basename(path)
        if path.lower().endswith(".gz"):
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError) as exc:
                rejects.append(reject(path, "bad_gzip", stage="read", detail=str(exc)))
                continue
        max_line = 4 * opts.max_doc_bytes + 65536  # JSON escapes can quadruple a text's size
        for lineno, raw in enumerate(data.split(b"\n"), start=1):
            if not raw.strip():
                continue  # blank lines (e.g. the final newline) are not rows
            fallback = f"{name}:{lineno}"
            if len(raw) > max_line:
                rejects.append(
                    reject(
                        path,
                        "too_large",
                        stage="read",
                        line=lineno,
                        id=fallback,
                        detail=f"line of {len(raw)} bytes",
                    )
                )
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                rejects.append(
                    reject(
                        path,
                        "invalid_utf8",
                        stage="read",
                        line=lineno,
                        id=fallback,
                        detail=f"{exc.reason} at byte {exc.start}",
                    )
                )
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                rejects.append(
                    reject(
                        path,
                        "malformed_json",
                        stage="read",
                        line=lineno,
                        id=fallback,
                        detail=f"{exc.msg} (col {exc.colno}): {line[:120]}",
                    )
                )
                continue
            doc, rej = _check_doc(obj, path, lineno, opts, fallback)
            (docs.append(doc) if doc else rejects.append(rej))
    if rejects:
        write_rejects(opts.rejects_dir, rejects, "read")
    return pa.Table.from_pylist(docs, schema=DOC_SCHEMA)


def _validate_parquet_rows(batch: pa.Table, opts: ReadOptions) -> pa.Table:
    docs, rejects = [], []
    for row in batch.to_pylist():
        path = row.pop("path", "") or ""
        text = row.get(opts.text_field)
        fallback = f"sha:{text_hash(text)}" if isinstance(text, str) else "unknown"
        doc, rej = _check_doc(row, path, None, opts, fallback)
        (docs.append(doc) if doc else rejects.append(rej))
    if rejects:
        write_rejects(opts.rejects_dir, rejects, "read")
    return pa.Table.from_pylist(docs, schema=DOC_SCHEMA)
