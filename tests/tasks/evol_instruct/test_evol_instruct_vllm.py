"""Evol-Instruct on the generic tasks job end to end on the tiny model through real vLLM
(jobs/tiny/evol_instruct.yaml: 2 generations, JSON evolutions, the regex-constrained equality
check), then the same command again: it resumes and regenerates nothing."""

from __future__ import annotations

import pytest

from synth_ray.tasks.evol_instruct import OPERATIONS
from tests.methods.jobs import DATASET_COLUMNS, dataset, rejects, run_tiny

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

KNOWN_REASONS = {
    "copies_evolving_prompt",
    "empty_evolution",
    "no_information_gain",
    "unparsed_equality",
    "response_sorry",
    "response_only_stopwords",
    "empty_response",
    "generation_error",
    "invalid_request",
}


def test_tiny_evol_instruct_then_resume(ray_local, tmp_path):
    out = tmp_path / "evol"
    rec = run_tiny("evol_instruct", out)
    assert rec["status"] == "succeeded" and rec["engine_starts"] == 1
    c = rec["counts"]
    assert c["input_rows"] == 12
    steps = c["steps"]
    assert len(steps) == 6  # evolve, equal, respond x 2 generations
    for s in steps.values():  # every row in: passed through, a new row, or one reject
        assert s["rows_in"] == s["passed"] + s["new"] + s["rejected"], s
        assert s["rows_out"] == s["passed"] + s["new"] + s["carried"]
        assert set(s["rejects_by_reason"]) <= KNOWN_REASONS, s["rejects_by_reason"]
    g1 = steps["s01-evol_instruct.evolve-g1"]
    assert g1["requests"] == 12 and g1["new"] > 0
    rows = dataset(out)
    assert rows and len(rows) == c["dataset_rows"]
    assert set(rows[0]) == DATASET_COLUMNS
    for r in rows:
        assert r["method"] == "evol_instruct" and r["instruction"] and r["output"]
        assert r["extra"]["operation"] in OPERATIONS
        assert r["extra"]["generation"] == r["round"] in (1, 2)
        assert r["seed_ids"] == [r["extra"]["parent_id"]]
    gen2_parents = {r["extra"]["parent_id"] for r in rows if r["round"] == 2}
    assert all(p.startswith(("seed-", "evol-g1-")) for p in gen2_parents)
    for r in rejects(out):
        assert r["reason"] in KNOWN_REASONS or r["stage"] == "read", r

    again = run_tiny("evol_instruct", out)
    assert again["status"] == "succeeded" and again["engine_starts"] == 0
    for name, g in again["counts"]["generation"].items():
        assert g["generated"] == 0 and g["skipped_done"] == g["requested"], name
        assert g["requested"] == rec["counts"]["generation"][name]["requested"]
    strip = lambda rs: sorted((r["id"], r["instruction"], r["output"]) for r in rs)  # noqa: E731
    assert strip(dataset(out)) == strip(rows)
    assert again["counts"]["rejects_by_reason"] == rec["counts"]["rejects_by_reason"]
