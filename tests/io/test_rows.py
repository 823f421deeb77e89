"""Training rows (instruction datasets, pretraining text, preference pairs and rankings): each
kind of bad record a reject with its reason, every record accounted for, formats mixed (JSONL
plain and compressed, an Alpaca JSON list, Parquet, a BOM), one canonical shape per kind."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synth_ray.io.readers import ReadOptions, find_inputs
from synth_ray.io.rejects import read_rejects
from synth_ray.io.rows import ROW_SCHEMAS, RowReader

U = {"role": "user", "content": "Hi?"}
A = {"role": "assistant", "content": "Hello."}

# kind -> [(record bytes, expected reason or None)]
CASES: dict[str, list[tuple[bytes, str | None]]] = {
    "sft": [
        (b'{"instruction": "Add 2 and 3.", "input": "", "output": "5"}', None),
        (b'{"instruction": "Sum.", "input": "2, 3", "output": "5"}', None),
        (json.dumps({"messages": [U, A]}).encode(), None),
        (b'{"instruction": "No output."}', "missing_field"),
        (b'{"instruction": "", "output": "x"}', "empty_field"),
        (b'{"instruction": 3, "output": "x"}', "wrong_type"),
        (b'{"instruction": "x", "input": ["a"], "output": "x"}', "wrong_type"),
        (json.dumps({"messages": [U]}).encode(), "bad_messages"),  # no response
        (json.dumps({"messages": [{"role": "robot", "content": "x"}, A]}).encode(), "bad_messages"),
        (json.dumps({"messages": []}).encode(), "bad_messages"),
        (b'{"instruction": "cut', "malformed_json"),
        (b'{"instruction": "caf\xe9", "output": "x"}', "invalid_utf8"),
        (b'"a string"', "not_an_object"),
        (b'{"messages": ' + b"[" * 20000 + b"]" * 20000 + b"}", "too_deeply_nested"),
    ],
    "text": [
        (b'{"text": "Plain pretraining text."}', None),
        (b'{"text": ""}', "empty_field"),
        (b'{"body": "x"}', "missing_field"),
        (b'{"text": 1}', "wrong_type"),
    ],
    "pairwise": [
        (b'{"prompt": "Q?", "chosen": "good", "rejected": "bad"}', None),
        (json.dumps({"prompt": [U], "chosen": [A], "rejected": "Bye."}).encode(), None),
        (b'{"prompt": "Q?", "chosen": "same", "rejected": "same"}', "chosen_equals_rejected"),
        (b'{"prompt": "Q?", "chosen": "good"}', "missing_field"),
        (json.dumps({"prompt": "Q?", "chosen": [U], "rejected": "x"}).encode(), "bad_messages"),
        (json.dumps({"prompt": "Q?", "chosen": [A, A], "rejected": "x"}).encode(), "bad_messages"),
        (b'{"prompt": null, "chosen": "a", "rejected": "b"}', "missing_field"),
    ],
    "attributes": [
        (b'{"prompt": "Q?", "response": "A.", "attributes": {"quality": 4, "humor": 0.5}}', None),
        (b'{"prompt": "Q?", "response": "A.", "attributes": {"quality": 3, "humor": null}}', None),
        (b'{"prompt": "Q?", "response": "A.", "attributes": {"humor": null}}', "bad_attributes"),
        (
            b'{"prompt": "Q?", "response": "A.", "attributes": {"quality": "high"}}',
            "bad_attributes",
        ),
        (b'{"prompt": "Q?", "response": "A.", "attributes": [4]}', "missing_field"),
        (b'{"prompt": "Q?", "attributes": {"quality": 4}}', "missing_field"),
    ],
    "soft_pairwise": [
        (b'{"prompt": "Q?", "chosen": "good", "rejected": "bad", "label": 0.8}', None),
        (b'{"prompt": "Q?", "chosen": "good", "rejected": "bad", "score_chosen": 1}', None),
        (b'{"prompt": "Q?", "chosen": "good", "rejected": "bad"}', "missing_field"),
        (b'{"prompt": "Q?", "chosen": "good", "rejected": "bad", "label": 1.5}', "bad_label"),
        (b'{"prompt": "Q?", "chosen": "good", "rejected": "bad", "label": "0.5"}', "bad_label"),
        (b'{"prompt": "Q?", "chosen": "good", "rejected": "bad", "label": true}', "bad_label"),
        (
            b'{"prompt": "Q?", "chosen": "x", "rejected": "x", "label": 0.5}',
            "chosen_equals_rejected",
        ),
    ],
    "kwise": [
        (b'{"prompt": "Q?", "responses": ["best", "mid", "worst"]}', None),
        (b'{"prompt": "Q?", "responses": ["only one"]}', "too_few_responses"),
        (b'{"prompt": "Q?", "responses": ["a", 2]}', "wrong_type"),
        (b'{"prompt": "Q?", "responses": "ab"}', "too_few_responses"),
    ],
}


def _read(path, kind, tmp_path, text_field="text"):
    opts = ReadOptions(text_field=text_field, rejects_dir=str(tmp_path / f"rej-{kind}"))
    rows = [
        r
        for f in find_inputs(str(path))
        for t in RowReader(f, opts, kind).batches()
        for r in (assert_schema(t, kind) or t.to_pylist())
    ]
    return rows, read_rejects(opts.rejects_dir).to_pylist()


def assert_schema(table: pa.Table, kind: str) -> None:
    assert table.schema == ROW_SCHEMAS[kind]


@pytest.mark.parametrize("kind", list(CASES))
def test_each_kind_read_or_rejected_with_reason(kind, tmp_path):
    cases = CASES[kind]
    d = tmp_path / "in"
    d.mkdir()
    lines = b"\n".join(line for line, _ in cases) + b"\n"
    (d / "rows.jsonl.gz").write_bytes(gzip.compress(b"\xef\xbb\xbf" + lines))
    rows, rejects = _read(d, kind, tmp_path)
    assert len(rows) == sum(r is None for _, r in cases)
    assert {(r["line"], r["reason"]) for r in rejects} == {
        (i, r) for i, (_, r) in enumerate(cases, start=1) if r
    }
    assert len(rows) + len(rejects) == len(cases)  # every record accounted for


def test_sft_formats_mixed_to_one_shape(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    alpaca = [{"instruction": "Sum.", "input": "2, 3", "output": "5"}, {"instruction": "x"}]
    (d / "export.json").write_text(json.dumps(alpaca, indent=1))  # a pretty-printed JSON list
    (d / "chat.jsonl").write_text(json.dumps({"messages": [U, A]}) + "\n")
    pq.write_table(
        pa.table({"instruction": ["Say hi."], "input": [None], "output": ["hi"]}),
        d / "dataset.parquet",
    )
    (d / "broken.json").write_bytes(b'[{"instruction": "x", "output": "y"}, ')
    (d / "empty.jsonl").write_bytes(b"")
    rows, rejects = _read(d, "sft", tmp_path)
    assert {json.dumps(r["messages"]) for r in rows} == {
        json.dumps(
            [{"role": "user", "content": "Sum.\n\n2, 3"}, {"role": "assistant", "content": "5"}]
        ),
        json.dumps([U, A]),
        json.dumps(
            [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "hi"}]
        ),
    }
    got = {(r["source"].rsplit("/", 1)[1], r["line"], r["reason"]) for r in rejects}
    assert got == {
        ("export.json", 2, "missing_field"),
        ("broken.json", None, "malformed_json"),
        ("empty.jsonl", None, "empty_file"),
    }


def test_pretraining_text_from_parquet_needs_the_column(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    pq.write_table(pa.table({"text": ["a", " "], "origin": ["real", "synthetic"]}), d / "m.parquet")
    pq.write_table(pa.table({"body": ["a"]}), d / "other.parquet")
    rows, rejects = _read(d, "text", tmp_path)
    assert rows == [{"text": "a"}]
    assert {(r["source"].rsplit("/", 1)[1], r["line"], r["reason"]) for r in rejects} == {
        ("m.parquet", 2, "empty_field"),
        ("other.parquet", None, "missing_text_column"),
    }


def test_attribute_rows_keep_only_rated_names(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text(
        json.dumps({"prompt": "Q?", "response": "A.", "attributes": {"b": 1, "a": None, "c": 2.5}})
        + "\n"
    )
    rows, rejects = _read(p, "attributes", tmp_path)
    assert not rejects
    assert (rows[0]["names"], rows[0]["values"]) == (["b", "c"], [1.0, 2.5])
