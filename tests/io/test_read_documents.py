"""``read_documents`` on a real local Ray: the bad-input corpus through Ray Data tasks (one per
file, streamed), every record accounted for, ids unique; one file's lines spread over several
blocks."""

from __future__ import annotations

import json

import pytest

from synth_ray.io.readers import ReadOptions, read_documents
from synth_ray.io.rejects import read_rejects

from . import corpus

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def test_corpus_through_ray_data(ray_local, tmp_path):
    c = corpus.build(tmp_path / "in")
    opts = ReadOptions(max_doc_bytes=corpus.MAX_DOC_BYTES, rejects_dir=str(tmp_path / "rej"))
    docs = read_documents(str(c.root), opts).take_all()
    rejects = read_rejects(opts.rejects_dir).to_pylist()
    corpus.check(c, {d["doc_id"] for d in docs}, rejects, {(d["source"], d["line"]) for d in docs})
    assert len(docs) == len({d["doc_id"] for d in docs})


def test_one_file_spread_over_blocks(ray_local, tmp_path):
    from ray.data import DataContext

    path = tmp_path / "one.jsonl"
    n = 20_000
    with path.open("wb") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"d{i}", "text": f"document {i} " + "w" * 200}).encode())
            f.write(b"\n")
    ctx = DataContext.get_current()
    saved = ctx.target_max_block_size
    ctx.target_max_block_size = 1 << 20  # 4 MB of text: several blocks of at most 1 MiB
    try:
        opts = ReadOptions(rejects_dir=str(tmp_path / "rej"), batch_docs=500)
        ds = read_documents(str(path), opts)
        blocks = ds.materialize().num_blocks()
        ids = [r["doc_id"] for r in ds.select_columns(["doc_id"]).take_all()]
    finally:
        ctx.target_max_block_size = saved
    assert blocks >= 3, blocks  # several blocks from one file
    assert sorted(ids) == sorted(f"d{i}" for i in range(n))
    assert read_rejects(opts.rejects_dir).num_rows == 0


def test_only_bad_files_give_an_empty_dataset_with_the_schema(ray_local, tmp_path):
    (tmp_path / "empty.jsonl").write_bytes(b"")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1")
    (tmp_path / "lines.jsonl").write_bytes(b"not json\n")
    opts = ReadOptions(rejects_dir=str(tmp_path / "rej"))
    ds = read_documents(str(tmp_path), opts)
    assert ds.count() == 0
    assert ds.schema().names == ["doc_id", "text", "source", "line"]
    reasons = sorted(r["reason"] for r in read_rejects(opts.rejects_dir).to_pylist())
    assert reasons == ["bad_parquet", "empty_file", "malformed_json"]
