"""The generation stage's bookkeeping (``synth_ray.stages.generate``) on a scripted engine: what
is done, what is still missing, error rows retried and superseded, ``invalid_request`` rows
counted done, and ``generate_rows`` returning exactly the rows of its requests.

The engine is not under test: ``tests/scripted.py`` answers from a function of the prompt
through a real Ray Data pipeline (the session's ``ray_local``)."""

from __future__ import annotations

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from synth_ray.engines.base import SamplingConfig
from synth_ray.io.layout import read_parquet_dir
from synth_ray.stages.generate import generate_pending, generate_rows
from tests.scripted import ScriptedEngine, ScriptedEngineConfig, ScriptError, job_context

pytestmark = [pytest.mark.slow, pytest.mark.ray]

ONE = SamplingConfig(max_tokens=8).to_json()
TWO = SamplingConfig(max_tokens=8, n=2, seed=5).to_json()
FINAL = "invalid_request: prompt longer than the context"

# id -> (prompt, sampling): 6 rows once expanded (two requests with n=2)
REQUESTS = {
    "ok-0": ("ok zero", TWO),
    "ok-1": ("ok one", ONE),
    "flaky-0": ("flaky zero", TWO),
    "long-0": ("long zero", ONE),
}


def _requests(ids=REQUESTS):
    return [{"id": i, "prompt": REQUESTS[i][0], "sampling": REQUESTS[i][1]} for i in ids]


def first_script(prompt: str) -> str:
    if prompt.startswith("flaky"):
        raise ScriptError("engine timeout")  # retryable
    if prompt.startswith("long"):
        raise ScriptError(FINAL)  # retrying cannot help
    return f"answer to {prompt}"


def healed_script(prompt: str) -> str:
    return f"answer to {prompt}"


def _pending(ctx, ds):
    return generate_pending(ctx.engine, ds, ctx.layout.data, ctx.run_id)


def _rows(ctx, rows, out):
    return generate_rows(ctx.engine, rows, out, ctx.run_id)


def _data(ctx) -> dict[str, dict]:
    rows = read_parquet_dir(ctx.layout.data).to_pylist()
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), f"an id stored twice: {sorted(ids)}"
    return {r["id"]: r for r in rows}


def test_done_missing_retried_and_final_errors(ray_local, tmp_path):
    engine = ScriptedEngine(first_script)
    ctx = job_context(engine, tmp_path)
    s = _pending(ctx, ray_local.data.from_items(_requests()))
    assert (s.requested, s.skipped_done, s.generated, s.errors) == (6, 0, 6, 3)
    assert s.prompt_tokens == 12 and s.completion_tokens == 3 * 4  # "answer to ok x": 4 words
    assert engine.calls == 1 and engine.rows_sent == 6
    data = _data(ctx)
    assert sorted(data) == sorted(
        ["ok-0-s0", "ok-0-s1", "ok-1", "flaky-0-s0", "flaky-0-s1", "long-0"]
    )
    assert {r["run_id"] for r in data.values()} == {ctx.run_id}
    assert data["ok-0-s1"]["request_id"] == "ok-0" and data["ok-0-s1"]["sample_index"] == 1
    assert data["flaky-0-s0"]["error"] == "engine timeout"
    assert data["long-0"]["error"] == FINAL and data["long-0"]["finish_reason"] == "error"
    assert "prompt" not in data["ok-1"]  # the prompt is not stored with the generation

    # Rerun: only the retryable errors go to the engine; the invalid request counts as done.
    engine2 = ScriptedEngine(healed_script)
    ctx2 = job_context(engine2, tmp_path)
    s2 = _pending(ctx2, ray_local.data.from_items(_requests()))
    assert (s2.requested, s2.skipped_done, s2.generated, s2.errors) == (6, 4, 2, 0)
    assert engine2.calls == 1 and engine2.rows_sent == 2
    data2 = _data(ctx2)  # the old error rows of the retried ids are gone: one row per id
    assert sorted(data2) == sorted(data)
    for i in ("flaky-0-s0", "flaky-0-s1"):
        assert data2[i]["error"] is None and data2[i]["run_id"] == ctx2.run_id
        assert data2[i]["completion"] == "answer to flaky zero"
    assert data2["long-0"]["error"] == FINAL and data2["long-0"]["run_id"] == ctx.run_id
    for i in ("ok-0-s0", "ok-0-s1", "ok-1"):
        assert data2[i] == data[i]  # done rows untouched

    # A third run finds everything done and never calls the engine.
    engine3 = ScriptedEngine(healed_script)
    s3 = _pending(job_context(engine3, tmp_path), ray_local.data.from_items(_requests()))
    assert (s3.requested, s3.skipped_done, s3.generated) == (6, 6, 0) and engine3.calls == 0


def test_a_retry_that_fails_again_stays_pending(ray_local, tmp_path):
    for _ in range(2):
        ctx = job_context(ScriptedEngine(first_script), tmp_path)
        s = _pending(ctx, ray_local.data.from_items(_requests(["flaky-0", "ok-1"])))
    assert (s.requested, s.skipped_done, s.generated, s.errors) == (3, 1, 2, 2)
    engine = ScriptedEngine(healed_script)
    ctx = job_context(engine, tmp_path)
    s = _pending(ctx, ray_local.data.from_items(_requests(["flaky-0", "ok-1"])))
    assert (s.skipped_done, s.generated, s.errors) == (1, 2, 0) and engine.rows_sent == 2
    table = read_parquet_dir(ctx.layout.data)
    flaky = table.filter(pc.equal(table.column("request_id"), "flaky-0")).to_pylist()
    assert sorted(r["id"] for r in flaky) == ["flaky-0-s0", "flaky-0-s1"]  # errors superseded
    assert all(r["error"] is None for r in flaky)


def test_generate_rows_returns_exactly_its_requests(ray_local, tmp_path):
    out = str(tmp_path / "data" / "stage")
    ctx = job_context(ScriptedEngine(first_script), tmp_path)
    rows, s = generate_rows(ctx.engine, _requests(["ok-0", "ok-1"]), out, ctx.run_id)
    assert [r["id"] for r in rows] == ["ok-0-s0", "ok-0-s1", "ok-1"] and s.generated == 3
    # Overlapping requests in the same folder: the stored ok-1 is reused, flaky-0 generated;
    # only the rows of these requests come back, sorted by id, errors included.
    engine = ScriptedEngine(first_script)
    rows, s = _rows(job_context(engine, tmp_path), _requests(["flaky-0", "ok-1"]), out)
    assert [r["id"] for r in rows] == ["flaky-0-s0", "flaky-0-s1", "ok-1"]
    assert [r["error"] for r in rows] == ["engine timeout", "engine timeout", None]
    assert (s.skipped_done, s.generated, s.errors) == (1, 2, 2) and engine.rows_sent == 2
    assert generate_rows(ctx.engine, [], out, ctx.run_id)[0] == []


def test_each_engine_batch_written_on_its_own(ray_local, tmp_path):
    """One input block of 20 requests, engine batches of 8: three files in data/ (8, 8, 4 rows),
    each written when its batch is done, so a killed run keeps its finished batches (one block
    used to be one file, written only when all of it was generated)."""
    engine = ScriptedEngine(healed_script)
    engine.config = ScriptedEngineConfig(batch_size=8)
    ctx = job_context(engine, tmp_path)
    rows = [{"id": f"r{i:02d}", "prompt": f"ok {i}", "sampling": ONE} for i in range(20)]
    ds = ray_local.data.from_items(rows, override_num_blocks=1)
    s = _pending(ctx, ds)
    assert (s.requested, s.generated, s.errors) == (20, 20, 0)
    files = sorted((tmp_path / "data").glob("*.parquet"))
    sizes = sorted(pq.read_metadata(f).num_rows for f in files)
    assert sizes == [4, 8, 8], sizes
    assert sorted(_data(ctx)) == [r["id"] for r in rows]
