"""The WRAP job end to end (tiny model, real vLLM on CPU) over a folder as real corpora come:
gzip and zstd JSONL, a corrupt Parquet file, an empty file, a deeply nested line, a BOM-prefixed
file and duplicate ids. The job finishes; every good document is in data/, every bad record or
file in rejects/ with its reason and counted by source in run.json; a rerun generates nothing."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from synth_ray.runner import load_job_config, run_job

from ..conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.vllm]


def _line(doc: dict) -> bytes:
    return json.dumps({"id": doc["id"], "text": doc["text"][:400]}).encode() + b"\n"


@pytest.fixture(scope="module")
def folder(tmp_path_factory, c4_docs) -> tuple[Path, set[str], set[tuple[str, int | None, str]]]:
    d = tmp_path_factory.mktemp("wrap-bad-in")
    docs = c4_docs[:6]
    (d / "shard-0.jsonl.gz").write_bytes(gzip.compress(b"".join(_line(x) for x in docs[:3])))
    zst = _line(docs[3]) + b'{"id": "deep", "text": ' + b"[" * 50_000 + b"]" * 50_000 + b"}\n"
    zst += _line(dict(docs[4], id=docs[1]["id"], text="another text under a taken id"))
    (d / "shard-1.jsonl.zst").write_bytes(pa.compress(zst, "zstd", asbytes=True))
    (d / "windows.jsonl").write_bytes(b"\xef\xbb\xbf" + _line(docs[5]) + _line(docs[0]))
    (d / "broken.parquet").write_bytes(b"PAR1" + b"\x00" * 64)
    (d / "empty.jsonl").write_bytes(b"")
    good = {x["id"] for x in docs[:4]} | {docs[5]["id"]}
    bad = {
        ("shard-1.jsonl.zst", 2, "too_deeply_nested"),
        ("shard-1.jsonl.zst", 3, "duplicate_id"),  # a different text under shard-0's 2nd id
        ("windows.jsonl", 2, "duplicate_id"),  # shard-0's first document again, identical
        ("broken.parquet", None, "bad_parquet"),
        ("empty.jsonl", None, "empty_file"),
    }
    return d, good, bad


def _run(folder: Path, out: Path) -> dict:
    config = load_job_config(
        str(REPO / "jobs/wrap.yaml"),
        [f"input={folder}", f"output_dir={out}", "sampling.max_tokens=8", "engine.batch_size=32"],
    )
    return run_job(config)


def test_wrap_over_a_real_corpus_folder_then_rerun(ray_local, folder, tmp_path):
    d, good, bad = folder
    out = tmp_path / "out"
    first = _run(d, out)
    assert first["status"] == "succeeded"
    data = pads.dataset(out / "data", format="parquet").to_table()
    assert set(data.column("doc_id").to_pylist()) == good
    assert first["counts"]["documents"] == len(good)
    assert first["counts"]["generated"] == data.num_rows == 4 * first["counts"]["chunks"]
    rejects = pq.read_table(out / "rejects" / "rejects.parquet").to_pylist()
    got = {(r["source"].rsplit("/", 1)[1], r["line"], r["reason"]) for r in rejects}
    assert got == bad
    dup = next(r for r in rejects if r["source"].endswith("windows.jsonl"))
    assert "shard-0.jsonl.gz line 1" in dup["detail"] and "the same text" in dup["detail"]
    by_source = {Path(k).name: v for k, v in first["counts"]["rejects_by_source"].items()}
    assert by_source == {
        "shard-1.jsonl.zst": 2,
        "windows.jsonl": 1,
        "broken.parquet": 1,
        "empty.jsonl": 1,
    }
    assert first["counts"]["rejects_by_reason"] == {
        "too_deeply_nested": 1,
        "duplicate_id": 2,
        "bad_parquet": 1,
        "empty_file": 1,
    }

    again = _run(d, out)
    assert again["status"] == "succeeded"
    assert again["counts"]["generated"] == 0 and again["engine_starts"] == 0
    assert again["counts"]["skipped_done"] == data.num_rows
    assert pads.dataset(out / "data", format="parquet").to_table().num_rows == data.num_rows
    assert pq.read_table(out / "rejects" / "rejects.parquet").num_rows == len(bad)
    assert again["counts"]["rejects_by_source"] == first["counts"]["rejects_by_source"]
