"""Training rows (instruction datasets, pretraining text, preference pairs and rankings) read as
the document readers read documents: file by file, streamed, codec by magic bytes, a BOM
skipped; every record either a row in one canonical shape or a reject with its reason.

Canonical shapes (one Arrow schema per kind, whatever mix of formats came in):

- ``sft``: ``messages`` (list of {role, content}, ending with the assistant's response). An
  Alpaca row (``instruction``, optional ``input``, ``output``) becomes a user turn (instruction,
  a blank line, input) and an assistant turn, as ``synth_ray.train.data.conversation`` does.
- ``text``: ``text`` (continued pretraining; ``text_field`` names the input's field).
- ``pairwise``: ``prompt`` (messages), ``chosen`` and ``rejected`` (one assistant message each,
  TRL's conversational format) - strings are accepted and converted.
- ``kwise``: ``prompt`` (messages) and ``responses`` (two or more strings, best first).
- ``attributes``: ``prompt`` (messages), ``response`` (one assistant message) and the response's
  attribute scores as ``names``/``values`` (from an ``attributes`` object of name -> number or
  null; SteerLM's attribute prediction model trains on them).
- ``soft_pairwise``: a ``pairwise`` row and its soft ``label``, the probability that ``chosen``
  is the better response (from ``label``, or ``score_chosen`` as the RL-CAI rows carry it).

A ``.json`` file holding one JSON list (an Alpaca export) is read whole (such exports are
small); each element is a record, numbered from 1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pyarrow as pa

from synth_ray.io import fs
from synth_ray.io.lines import COMPRESSED_SUFFIXES, FileProblem, open_text_stream
from synth_ray.io.readers import FileReader, InputFile, ReadOptions, find_inputs

MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
ROW_SCHEMAS = {
    "sft": pa.schema([("messages", MESSAGES)]),
    "text": pa.schema([("text", pa.string())]),
    "pairwise": pa.schema([("prompt", MESSAGES), ("chosen", MESSAGES), ("rejected", MESSAGES)]),
    "kwise": pa.schema([("prompt", MESSAGES), ("responses", pa.list_(pa.string()))]),
    "attributes": pa.schema(
        [
            ("prompt", MESSAGES),
            ("response", MESSAGES),
            ("names", pa.list_(pa.string())),
            ("values", pa.list_(pa.float64())),
        ]
    ),
    "soft_pairwise": pa.schema(
        [
            ("prompt", MESSAGES),
            ("chosen", MESSAGES),
            ("rejected", MESSAGES),
            ("label", pa.float64()),
        ]
    ),
}
ROLES = ("system", "user", "assistant")


class RowProblem(ValueError):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def _text(obj: dict, key: str, *, optional: bool = False) -> str:
    v = obj.get(key)
    if v is None and optional:
        return ""
    if v is None:
        raise RowProblem("missing_field", f"no '{key}' field")
    if not isinstance(v, str):
        raise RowProblem("wrong_type", f"'{key}' is a {type(v).__name__}, expected a string")
    if not v.strip() and not optional:
        raise RowProblem("empty_field", f"'{key}' is empty or whitespace")
    return v


def _messages(v, key: str) -> list[dict]:
    if not isinstance(v, list) or not v:
        raise RowProblem("bad_messages", f"'{key}' is not a non-empty list of messages")
    out = []
    for i, m in enumerate(v):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise RowProblem("bad_messages", f"'{key}[{i}]' has no role among {ROLES}")
        if not isinstance(m.get("content"), str) or not m["content"].strip():
            raise RowProblem("bad_messages", f"'{key}[{i}]' has no text content")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def _prompt(obj: dict) -> list[dict]:
    p = obj.get("prompt")
    return (
        _messages(p, "prompt")
        if isinstance(p, list)
        else [{"role": "user", "content": _text(obj, "prompt")}]
    )


def _response(obj: dict, key: str) -> list[dict]:
    v = obj.get(key)
    if isinstance(v, list):
        msgs = _messages(v, key)
        if len(msgs) != 1 or msgs[0]["role"] != "assistant":
            raise RowProblem("bad_messages", f"'{key}' must be one assistant message")
        return msgs
    return [{"role": "assistant", "content": _text(obj, key)}]


def _scores(obj: dict) -> dict[str, list]:
    v = obj.get("attributes")
    if not isinstance(v, dict):
        raise RowProblem("missing_field", "no 'attributes' object (name -> score)")
    names, values = [], []
    for k in sorted(v):
        x = v[k]
        if x is None:
            continue  # not rated: no target for that attribute
        if isinstance(x, bool) or not isinstance(x, (int, float)) or x != x:
            raise RowProblem("bad_attributes", f"attribute {k!r} is {x!r}, expected a number")
        names.append(str(k))
        values.append(float(x))
    if not names:
        raise RowProblem("bad_attributes", "no attribute has a score")
    return {"names": names, "values": values}


def _label(obj: dict) -> float:
    key = "label" if "label" in obj else "score_chosen"
    v = obj.get(key)
    if v is None:
        raise RowProblem("missing_field", "no 'label' (or 'score_chosen') field")
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
        raise RowProblem("bad_label", f"'{key}' is {v!r}, expected a probability in [0, 1]")
    return float(v)


def canonical_row(obj, kind: str, text_field: str = "text") -> dict:
    """The canonical row of a parsed record (see the module docstring), or ``RowProblem``."""
    if not isinstance(obj, dict):
        raise RowProblem("not_an_object", f"a JSON {type(obj).__name__}, expected an object")
    if kind == "text":
        return {"text": _text(obj, text_field)}
    if kind == "sft":
        if "messages" in obj:
            msgs = _messages(obj["messages"], "messages")
            if msgs[-1]["role"] != "assistant":
                raise RowProblem("bad_messages", "the last message is not the assistant's")
            return {"messages": msgs}
        user, inp = _text(obj, "instruction"), _text(obj, "input", optional=True)
        user += f"\n\n{inp}" if inp else ""
        return {
            "messages": [
                {"role": "user", "content": user},
                {"role": "assistant", "content": _text(obj, "output")},
            ]
        }
    if kind == "attributes":
        return {"prompt": _prompt(obj), "response": _response(obj, "response"), **_scores(obj)}
    if kind == "soft_pairwise":
        return {**canonical_row(obj, "pairwise"), "label": _label(obj)}
    if kind == "pairwise":
        row = {
            "prompt": _prompt(obj),
            "chosen": _response(obj, "chosen"),
            "rejected": _response(obj, "rejected"),
        }
        if row["chosen"] == row["rejected"]:
            raise RowProblem("chosen_equals_rejected", "chosen and rejected are the same")
        return row
    if kind == "kwise":
        resp = obj.get("responses")
        if not isinstance(resp, list) or len(resp) < 2:
            raise RowProblem("too_few_responses", "'responses' needs two or more (best first)")
        if not all(isinstance(r, str) and r.strip() for r in resp):
            raise RowProblem("wrong_type", "'responses' must be non-empty strings")
        return {"prompt": _prompt(obj), "responses": resp}
    raise ValueError(f"unknown row kind {kind!r} (known: {', '.join(ROW_SCHEMAS)})")


class RowReader(FileReader):
    """A ``FileReader`` whose records become canonical training rows of ``kind``."""

    def __init__(
        self, file: InputFile, opts: ReadOptions, kind: str, sink: list[dict] | None = None
    ):
        super().__init__(file, opts)
        self.kind, self.schema = kind, ROW_SCHEMAS[kind]
        self.sink = sink  # a list: rejects are collected there instead of written

    def _flush(self) -> None:
        if self.sink is None:
            super()._flush()
        else:
            self.sink.extend(self.rejects)
            self.rejects = []

    def _check(self, obj, line: int, fallback: str) -> dict | None:
        try:
            return canonical_row(obj, self.kind, self.opts.text_field)
        except RowProblem as exc:
            return self._reject(exc.reason, line, fallback, str(exc))

    def _parquet_columns(self, pf) -> list[str] | None:
        return super()._parquet_columns(pf) if self.kind == "text" else None  # None: all

    def _jsonl(self) -> Iterator[dict]:
        name = self.file.path.lower()
        if not any(name.endswith(".json" + c) for c in ("", *COMPRESSED_SUFFIXES)):
            yield from super()._jsonl()
            return
        with fs.open_raw(self.file.path) as raw:  # a .json file: a JSON list, or JSON lines
            stream, self.codec = open_text_stream(raw)
            data = stream.read().removeprefix(b"\xef\xbb\xbf")
        if not data.lstrip().startswith(b"["):
            yield from super()._jsonl()
            return
        try:
            items = json.loads(data.decode("utf-8"))
        except (ValueError, RecursionError) as exc:
            raise FileProblem("malformed_json", f"a JSON list that does not parse: {exc}") from None
        for i, obj in enumerate(items, start=1):
            self.line = self.records = i
            row = self._check(obj, i, f"{self.file.name}#{i}")
            if row is not None:
                yield row


def read_row_files(batch: pa.Table, opts: ReadOptions, kind: str) -> Iterator[pa.Table]:
    """Ray Data UDF: rows (path, name, kind) -> batches of canonical rows of ``kind``."""
    for r in batch.to_pylist():
        yield from RowReader(InputFile(r["path"], r["name"], r["kind"]), opts, kind).batches()


def read_rows(inputs: str | list[str], kind: str, opts: ReadOptions):
    """A Ray Dataset of the canonical ``kind`` rows at ``inputs``; rejects to ``opts``."""
    import ray.data

    if kind not in ROW_SCHEMAS:
        raise ValueError(f"unknown row kind {kind!r} (known: {', '.join(ROW_SCHEMAS)})")
    files = find_inputs(inputs)
    items = [{"path": f.path, "name": f.name, "kind": f.kind} for f in files]
    return ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        read_row_files, fn_kwargs={"opts": opts, "kind": kind}, batch_size=1, batch_format="pyarrow"
    )


def read_rows_local(inputs: str | list[str], kind: str, opts: ReadOptions | None = None):
    """(rows, rejects) of ``inputs`` read in this process, without Ray: for small inputs read
    before a job starts (a loop's seed pairs). The rejects are returned, not written."""
    if kind not in ROW_SCHEMAS:
        raise ValueError(f"unknown row kind {kind!r} (known: {', '.join(ROW_SCHEMAS)})")
    opts = opts or ReadOptions(id_field=None)
    rows: list[dict] = []
    rejects: list[dict] = []
    for f in find_inputs(inputs):
        for table in RowReader(f, opts, kind, sink=rejects).batches():
            rows += table.to_pylist()
    return rows, rejects
