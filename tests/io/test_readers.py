"""Readers: every line ends as a document or a reject with its reason."""

import gzip

import pyarrow as pa

from synth_ray.io.readers import ReadOptions, _parse_jsonl_files, _validate_parquet_rows
from synth_ray.io.rejects import compact, read_rejects


def _files(*items):
    return pa.table({"path": [p for p, _ in items], "bytes": [b for _, b in items]})


BAD_LINES = [
    (b'{"id": "ok1", "text": "A fine document."}', None),
    (b'{"id": "broken", "text": "no closing brace"', "malformed_json"),
    (b'{"id": "nul", "text": null}', "missing_text"),
    (b'{"id": "notext"}', "missing_text"),
    (b'{"id": "num", "text": 42}', "text_not_string"),
    (b'{"id": "blank", "text": "   \\n "}', "empty_text"),
    (b'{"id": "latin1", "text": "caf\xe9"}', "invalid_utf8"),
    (b"[1, 2, 3]", "not_an_object"),
    (b'{"id": "surrogate", "text": "bad \\ud800 here"}', "invalid_unicode"),
    (b'{"id": "big", "text": "' + b"x" * 2000 + b'"}', "too_large"),
    (b'{"text": "No id field here."}', None),
]


def test_jsonl_rejects_with_reasons(tmp_path):
    opts = ReadOptions(max_doc_bytes=1000, rejects_dir=str(tmp_path / "rejects"))
    data = b"\n".join(line for line, _ in BAD_LINES) + b"\n\n"
    docs = _parse_jsonl_files(_files(("/in/docs.jsonl", data)), opts)
    assert docs.column("doc_id").to_pylist() == ["ok1", "docs.jsonl:11"]
    assert docs.column("line").to_pylist() == [1, 11]
    rej = read_rejects(opts.rejects_dir).to_pylist()
    got = {r["line"]: r["reason"] for r in rej}
    want = {i + 1: reason for i, (_, reason) in enumerate(BAD_LINES) if reason}
    assert got == want
    assert all(
        r["source"] == "/in/docs.jsonl" and r["stage"] == "read" and r["detail"] for r in rej
    )


def test_rejects_rewritten_not_duplicated_and_compacted(tmp_path):
    opts = ReadOptions(rejects_dir=str(tmp_path / "rejects"))
    data = b'{"text": ""}\nnot json\n'
    for _ in range(3):  # a rerun writes the same content-named file again
        _parse_jsonl_files(_files(("/in/a.jsonl", data)), opts)
    assert read_rejects(opts.rejects_dir).num_rows == 2
    table = compact(opts.rejects_dir)
    assert table.num_rows == 2
    assert [p.name for p in (tmp_path / "rejects").iterdir()] == ["rejects.parquet"]


def test_gzip_and_corrupt_gzip(tmp_path):
    opts = ReadOptions(rejects_dir=str(tmp_path / "rejects"))
    good = gzip.compress(b'{"id": "g", "text": "zipped"}\n')
    docs = _parse_jsonl_files(
        _files(("/in/a.jsonl.gz", good), ("/in/b.jsonl.gz", b"not gzip")), opts
    )
    assert docs.column("doc_id").to_pylist() == ["g"]
    assert [r["reason"] for r in read_rejects(opts.rejects_dir).to_pylist()] == ["bad_gzip"]


def test_parquet_rows_validated(tmp_path):
    opts = ReadOptions(max_doc_bytes=50, rejects_dir=str(tmp_path / "rejects"))
    batch = pa.table(
        {
            "id": ["a", "b", "c", None],
            "text": ["good text", "", None, "y" * 60],
            "path": ["/in/p.parquet"] * 4,
        }
    )
    docs = _validate_parquet_rows(batch, opts)
    assert docs.column("doc_id").to_pylist() == ["a"]
    reasons = sorted(r["reason"] for r in read_rejects(opts.rejects_dir).to_pylist())
    assert reasons == ["empty_text", "missing_text", "too_large"]
