"""WRAP end to end on the tiny model through real vLLM on a local Ray: schema, chunk bounds,
four styles per chunk, the 1:1 mix, bad rows rejected with reasons, every input accounted for,
and resume (nothing regenerated; only what is missing regenerated)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from synth_ray.runner import load_job_config, run_job
from synth_ray.stages.tokenizers import load_tokenizer

from ..conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

STYLES = ["easy", "medium", "hard", "qa"]
REQUIRED = [
    "id",
    "doc_id",
    "chunk_id",
    "style",
    "template",
    "template_hash",
    "input_text",
    "completion",
    "model",
    "sampling",
    "prompt_tokens",
    "completion_tokens",
    "finish_reason",
    "error",
    "run_id",
]


@pytest.fixture(scope="module")
def docs_file(tmp_path_factory, c4_docs) -> tuple[Path, dict[int, str]]:
    """20 real documents (one made long enough to need many chunks) and 6 bad rows in the middle;
    returns the file and {line number: reject reason} of the bad rows."""
    good: list[bytes] = []
    for i, doc in enumerate(c4_docs[:20]):
        if i == 3:
            doc = dict(doc, text=" ".join(d["text"] for d in c4_docs[20:26]))
        good.append(json.dumps(doc).encode())
    bad_rows = [
        (b'{"id": "bad-json", "text": "unterminated', "malformed_json"),
        (b'{"id": "no-text", "body": "wrong field"}', "missing_text"),
        (b'{"id": "empty", "text": ""}', "empty_text"),
        (b'{"id": "latin1", "text": "na\xefve caf\xe9"}', "invalid_utf8"),
        (json.dumps({"id": "huge", "text": "word " * 10_000}).encode(), "too_large"),
        (b'"just a string"', "not_an_object"),
    ]
    half = len(good) // 2
    lines = good[:half] + [raw for raw, _ in bad_rows] + good[half:]
    bad = {half + k + 1: reason for k, (_, reason) in enumerate(bad_rows)}  # 1-based lines
    path = tmp_path_factory.mktemp("wrap-in") / "docs.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path, bad


def _config(docs: Path, out: Path, **extra):
    overrides = [
        f"input={docs}",
        f"output_dir={out}",
        "sampling.max_tokens=16",
        "max_doc_bytes=30000",
        "engine.batch_size=32",
    ]
    return load_job_config(
        str(REPO / "jobs/wrap.yaml"), overrides + [f"{k}={v}" for k, v in extra.items()]
    )


def _data(out: Path) -> pa.Table:
    return pads.dataset(out / "data", format="parquet").to_table()


@pytest.fixture(scope="module")
def first_run(ray_local, docs_file, tmp_path_factory):
    docs, bad = docs_file
    out = tmp_path_factory.mktemp("wrap-out")
    record = run_job(_config(docs, out))
    return out, record, bad


def test_outputs_schema_styles_and_chunks(first_run, tiny_model):
    out, record, _ = first_run
    assert record["status"] == "succeeded"
    data = _data(out)
    assert set(REQUIRED) <= set(data.column_names)
    assert data.num_rows == record["counts"]["generated"] == 4 * record["counts"]["chunks"]
    assert len(set(data.column("id").to_pylist())) == data.num_rows
    assert data.filter(pc.is_valid(data.column("error"))).num_rows == 0
    rows = data.to_pylist()
    by_chunk: dict[str, set] = {}
    for r in rows:
        by_chunk.setdefault(r["chunk_id"], set()).add(r["style"])
        assert r["model"] == "tiny" and r["template"] == f"wrap/{r['style']}"
        assert r["finish_reason"] in ("stop", "length")
        assert 0 < r["completion_tokens"] <= 16 and r["prompt_tokens"] > 0
        assert json.loads(r["sampling"])["max_tokens"] == 16
    assert all(styles == set(STYLES) for styles in by_chunk.values())
    tok = load_tokenizer(tiny_model)
    chunk_texts = {r["chunk_id"]: r["input_text"] for r in rows}
    for text in chunk_texts.values():
        assert 0 < len(tok(text, add_special_tokens=False)["input_ids"]) <= 300
    long_doc_chunks = [c for c in chunk_texts if c.startswith("c4-0003#")]
    assert len(long_doc_chunks) >= 4  # the long document was chunked, not rejected


def test_every_input_row_accounted_for(first_run, docs_file):
    out, record, bad = first_run
    docs, _ = docs_file
    rejects = pq.read_table(out / "rejects" / "rejects.parquet").to_pylist()
    assert {r["line"]: r["reason"] for r in rejects} == bad
    assert record["counts"]["rejected"] == len(bad)
    produced = set(_data(out).column("doc_id").to_pylist())
    for n, raw in enumerate(docs.read_bytes().splitlines(), start=1):
        if n in bad:
            continue
        assert json.loads(raw)["id"] in produced, f"line {n} neither in data nor in rejects"
    assert record["counts"]["documents"] + len(bad) == len(docs.read_bytes().splitlines())


def test_mix_is_one_to_one(first_run):
    out, record, _ = first_run
    mix = pads.dataset(out / "mix", format="parquet").to_table()
    origins = mix.column("origin").to_pylist()
    n_real, n_syn = origins.count("real"), origins.count("synthetic")
    assert n_real == n_syn == record["counts"]["chunks"] == record["counts"]["mix"]["real"]
    data = _data(out)
    chunk_text = dict(
        zip(data.column("chunk_id").to_pylist(), data.column("input_text").to_pylist())
    )
    for r in mix.to_pylist():
        if r["origin"] == "real":
            assert r["text"] == chunk_text[r["chunk_id"]]


def test_run_json(first_run):
    out, record, _ = first_run
    saved = json.loads((out / "run.json").read_text())
    assert saved["run_id"] == record["run_id"] and saved["status"] == "succeeded"
    assert saved["config"]["method"] == "wrap" and saved["versions"]["ray"] == "2.60.0"
    assert saved["counts"]["generated"] > 0 and saved["counts"]["skipped_done"] == 0
    assert saved["tokens"]["completion"] == int(
        pc.sum(_data(out).column("completion_tokens")).as_py()
    )
    assert (
        saved["timings_s"]["generate"] > 0
        and saved["tokens_per_s"]["completion_per_generate_s"] > 0
    )
    assert saved["engine_starts"] == 1
    assert (out / "runs" / f"{record['run_id']}.json").exists()


def test_rerun_regenerates_nothing(first_run, docs_file):
    out, first, bad = first_run
    before = _data(out).num_rows
    again = run_job(_config(docs_file[0], out))
    assert again["counts"]["generated"] == 0
    assert again["counts"]["skipped_done"] == before
    assert again["engine_starts"] == 0
    assert _data(out).num_rows == before
    assert again["counts"]["rejected"] == len(bad)
    assert pq.read_table(out / "rejects" / "rejects.parquet").num_rows == len(bad)


def test_rerun_after_partial_loss_generates_only_missing(first_run, docs_file):
    out, _, _ = first_run
    full = _data(out)
    files = list((out / "data").glob("*.parquet"))
    keep = full.filter(pc.not_equal(pc.utf8_slice_codeunits(full.column("id"), 0, 1), "a"))
    missing = full.num_rows - keep.num_rows
    assert missing > 0
    for f in files:
        f.unlink()
    pq.write_table(keep, out / "data" / "kept.parquet")
    record = run_job(_config(docs_file[0], out))
    assert record["counts"]["generated"] == missing
    assert record["counts"]["skipped_done"] == keep.num_rows
    after = _data(out)
    assert sorted(after.column("id").to_pylist()) == sorted(full.column("id").to_pylist())
