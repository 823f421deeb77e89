"""Document readers: JSONL (plain, gzip, zstandard, bzip2 or xz) and Parquet, from files,
folders, globs or URIs (pyarrow filesystems, else fsspec), streamed through Ray Data.

Each input file is read by one Ray Data task, as a stream: JSONL line by line (the codec found
by magic bytes, a UTF-8 byte-order mark skipped), Parquet batch by batch, documents yielded in
small batches that Ray Data packs into blocks; a file is never held whole in memory. Nothing is
lost and nothing stops the job: every line or row ends up either as a document or as a reject
with its reason (malformed JSON, too deeply nested, not an object, missing or non-string or
empty text, non-UTF-8 bytes, over the size limit, duplicate id), and any failure to open,
decompress or parse a file (a corrupt Parquet footer, a truncated gzip) becomes a reject naming
the file and the line or row reached, the documents before it kept. Only a config error or an
input that matches no file stops the run before work.

Documents carry ``doc_id`` (the input's id field, else ``<file name>:<line>``; the file name
is the shortest path suffix unique among the inputs), ``text``, ``source`` (the file) and
``line`` (1-based line, or row for Parquet). Two documents with the same id: the first in input
order (files in sorted order, then lines) is kept, every later one is rejected as
``duplicate_id`` naming the first one's file and line, whether its text is the same or not.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa

from synth_ray.io import fs
from synth_ray.io.lines import (
    CODEC_ERRORS,
    COMPRESSED_SUFFIXES,
    FileProblem,
    iter_lines,
    open_text_stream,
)
from synth_ray.io.rejects import reject, write_rejects

JSONL_SUFFIXES = tuple(
    base + codec for base in (".jsonl", ".json", ".ndjson") for codec in ("", *COMPRESSED_SUFFIXES)
)
PARQUET_SUFFIXES = (".parquet",)
DOC_SCHEMA = pa.schema(
    [("doc_id", pa.string()), ("text", pa.string()), ("source", pa.string()), ("line", pa.int64())]
)
REJECTS_PER_FILE = 10_000  # rejects are flushed in content-named files of at most this many


class InputError(ValueError):
    pass


@dataclass(frozen=True)
class ReadOptions:
    text_field: str = "text"
    id_field: str | None = "id"
    max_doc_bytes: int = 1_000_000
    rejects_dir: str = ""
    batch_docs: int = 1024  # documents per batch handed to Ray Data
    batch_bytes: int = 8 << 20  # ... or fewer, once their texts reach this many bytes


@dataclass(frozen=True)
class InputFile:
    path: str
    name: str  # shortest path suffix unique among the inputs: the fallback ids' prefix
    kind: str  # jsonl | parquet


def find_inputs(inputs: str | list[str]) -> list[InputFile]:
    """The input files named by ``inputs`` (each once, sorted); one that matches nothing fails."""
    specs = [inputs] if isinstance(inputs, str) else list(inputs)
    paths: list[str] = []
    for spec in specs:
        files = fs.list_files(spec, JSONL_SUFFIXES + PARQUET_SUFFIXES)
        if not files:
            raise InputError(
                f"input: no input files at {spec!r} (looked for {', '.join(JSONL_SUFFIXES)}, "
                f".parquet files at {fs.absolute(spec)})"
            )
        paths += files
    paths = sorted(set(paths))
    names = short_names(paths)
    return [
        InputFile(p, names[p], "parquet" if p.lower().endswith(PARQUET_SUFFIXES) else "jsonl")
        for p in paths
    ]


def short_names(paths: list[str]) -> dict[str, str]:
    """Each path's shortest trailing run of components that no other path ends with."""
    names: dict[str, str] = {}
    pending, k = list(paths), 1
    while pending:
        cand = {p: "/".join(p.split("/")[-k:]) for p in pending}
        counts = Counter(cand.values())
        names.update({p: n for p, n in cand.items() if counts[n] == 1 or n == p})
        pending, k = [p for p in pending if p not in names], k + 1
    return names


def read_documents(inputs: str | list[str], opts: ReadOptions):
    """A Ray Dataset of valid documents, ids unique; rejects written to ``opts.rejects_dir``.

    The documents are materialized once (in Ray's object store, spilled to disk when large) so
    that duplicate ids are found from the id columns alone, with no second read of the files.
    """
    import ray.data

    files = find_inputs(inputs)
    items = [{"path": f.path, "name": f.name, "kind": f.kind} for f in files]
    docs = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        read_files, fn_kwargs={"opts": opts}, batch_size=1, batch_format="pyarrow"
    )
    from synth_ray.io.dedup import drop_duplicate_ids

    return drop_duplicate_ids(docs.materialize(), [f.path for f in files], opts.rejects_dir)


def read_files(batch: pa.Table, opts: ReadOptions) -> Iterator[pa.Table]:
    """Ray Data UDF: rows (path, name, kind) -> batches of documents (DOC_SCHEMA)."""
    for row in batch.to_pylist():
        yield from FileReader(InputFile(row["path"], row["name"], row["kind"]), opts).batches()


class FileReader:
    """One input file -> batches of documents; its rejects are written as it goes."""

    def __init__(self, file: InputFile, opts: ReadOptions):
        self.file, self.opts = file, opts
        self.line = 0  # the last line (or row) read
        self.records = 0  # non-blank lines or rows seen
        self.codec: str | None = None
        self.rejects: list[dict] = []
        self.schema = DOC_SCHEMA

    def batches(self) -> Iterator[pa.Table]:
        docs: list[dict] = []
        size, yielded = 0, False
        try:
            for doc in self._parquet() if self.file.kind == "parquet" else self._jsonl():
                docs.append(doc)
                size += len(doc.get("text") or "")
                if len(docs) >= self.opts.batch_docs or size >= self.opts.batch_bytes:
                    yield pa.Table.from_pylist(docs, schema=self.schema)
                    docs, size, yielded = [], 0, True
            if not self.records:
                self._reject("empty_file", None, None, "no records (empty or only blank lines)")
        except Exception as exc:  # any failure is this file's reject, not the job's
            self._file_failed(exc)
        if docs or not yielded:  # an empty table keeps the schema when a file gives nothing
            yield pa.Table.from_pylist(docs, schema=self.schema)
        self._flush()

    def _file_failed(self, exc: Exception) -> None:
        where = f"after line {self.line}" if self.line else "before the first record"
        if isinstance(exc, FileProblem):
            reason = exc.reason
        elif self.file.kind == "parquet":
            reason = "bad_parquet"
        elif self.codec and isinstance(exc, CODEC_ERRORS):
            reason = f"bad_{self.codec}"
        else:
            reason = "unreadable_file"
        line = self.line + 1 if self.line else None
        self._reject(reason, line, None, f"{type(exc).__name__}: {exc} ({where})")

    def _reject(self, reason: str, line: int | None, rid: str | None, detail: str) -> None:
        row = reject(self.file.path, reason, stage="read", line=line, id=rid, detail=detail)
        self.rejects.append(row)
        if len(self.rejects) >= REJECTS_PER_FILE:
            self._flush()

    def _flush(self) -> None:
        write_rejects(self.opts.rejects_dir, self.rejects, "read")
        self.rejects = []

    def _jsonl(self) -> Iterator[dict]:
        max_line = 4 * self.opts.max_doc_bytes + 65536  # JSON escapes can quadruple a text
        with fs.open_raw(self.file.path) as raw:
            stream, self.codec = open_text_stream(raw)
            for lineno, data, size in iter_lines(stream, max_line):
                self.line = lineno
                if data is not None and not data.strip():
                    continue  # blank lines (e.g. the final newline) are not records
                self.records += 1
                doc = self._jsonl_doc(lineno, data, size)
                if doc is not None:
                    yield doc

    def _jsonl_doc(self, lineno: int, data: bytes | None, size: int) -> dict | None:
        fallback = f"{self.file.name}:{lineno}"
        if data is None:
            return self._reject("too_large", lineno, fallback, f"line of {size} bytes")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            detail = f"{exc.reason} at byte {exc.start}"
            return self._reject("invalid_utf8", lineno, fallback, detail)
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            detail = f"{exc.msg} (col {exc.colno}): {text[:120]}"
            return self._reject("malformed_json", lineno, fallback, detail)
        except RecursionError:
            detail = f"nesting deeper than the parser's limit: {text[:60]}"
            return self._reject("too_deeply_nested", lineno, fallback, detail)
        except (ValueError, MemoryError, OverflowError) as exc:  # e.g. a 5,000-digit number
            detail = f"{type(exc).__name__}: {exc}"
            return self._reject("malformed_json", lineno, fallback, detail)
        return self._check(obj, lineno, fallback)

    def _parquet(self) -> Iterator[dict]:
        import pyarrow.parquet as pq

        with fs.open_raw(self.file.path) as raw:
            pf = pq.ParquetFile(raw)
            cols = self._parquet_columns(pf)
            for rb in pf.iter_batches(batch_size=1024, columns=cols):
                for obj in rb.to_pylist():
                    self.line += 1
                    self.records += 1
                    doc = self._check(obj, self.line, f"{self.file.name}:{self.line}")
                    if doc is not None:
                        yield doc

    def _parquet_columns(self, pf) -> list[str] | None:
        """The columns to read (None: all); a file without the text column is refused."""
        names, opts = pf.schema_arrow.names, self.opts
        if opts.text_field not in names:
            detail = f"no '{opts.text_field}' column ({pf.metadata.num_rows} rows; "
            raise FileProblem("missing_text_column", detail + f"columns: {names[:20]})")
        return [opts.text_field] + ([opts.id_field] if opts.id_field in names else [])

    def _check(self, obj, line: int, fallback: str) -> dict | None:
        """The document of a parsed record, or None after recording its reject."""
        opts = self.opts
        raw_id = obj.get(opts.id_field) if isinstance(obj, dict) and opts.id_field else None
        if isinstance(raw_id, (dict, list)):
            kind = type(raw_id).__name__
            detail = f"'{opts.id_field}' is a JSON {kind}, expected a string or number"
            return self._reject("bad_id", line, fallback, detail)
        rid = str(raw_id) if raw_id not in (None, "") else fallback
        problem = _text_problem(obj, opts)
        if problem:
            return self._reject(problem[0], line, rid, problem[1])
        text = obj[opts.text_field]
        return {"doc_id": rid, "text": text, "source": self.file.path, "line": line}


def _text_problem(obj, opts: ReadOptions) -> tuple[str, str] | None:
    """(reason, detail) when ``obj`` carries no usable text, else None."""
    if not isinstance(obj, dict):
        return "not_an_object", f"a JSON {type(obj).__name__}, expected an object"
    text = obj.get(opts.text_field)
    if text is None:
        return "missing_text", f"no '{opts.text_field}' field"
    if not isinstance(text, str):
        return "text_not_string", f"'{opts.text_field}' is a {type(text).__name__}"
    if not text.strip():
        return "empty_text", f"'{opts.text_field}' is empty or whitespace"
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:  # lone surrogates, e.g. from a "\\ud800" JSON escape
        return "invalid_unicode", f"{exc.reason} at character {exc.start}"
    if size > opts.max_doc_bytes:
        return "too_large", f"{size} bytes > max_doc_bytes={opts.max_doc_bytes}"
    return None
