"""Alpaca end to end on the tiny model through real vLLM (jobs/tiny/alpaca.yaml)."""

from __future__ import annotations

import shutil

import pytest

from synth_ray.methods.self_instruct.prompts import load_seed_tasks
from tests.methods.jobs import (
    DATASET_COLUMNS,
    assert_novel,
    assert_rerun_generates_nothing,
    dataset,
    rejects,
    run_tiny,
)

pytestmark = [pytest.mark.slow, pytest.mark.vllm]


@pytest.fixture(scope="module")
def first_run(ray_local, tmp_path_factory):
    out = tmp_path_factory.mktemp("alpaca")
    return out, run_tiny("alpaca", out, "requests_per_round=6")


def test_dataset_lineage_and_filters(first_run):
    out, rec = first_run
    assert rec["status"] == "succeeded" and rec["engine_starts"] == 1
    c = rec["counts"]
    assert c["instructions"] == c["dataset_rows"] == 20 and c["alpaca"]["rounds"] >= 2
    seeds = load_seed_tasks()
    seed_ids = {t["id"] for t in seeds}
    rows = dataset(out)
    assert len(rows) == 20 and set(rows[0]) == DATASET_COLUMNS
    for r in rows:
        assert r["method"] == "alpaca" and r["model"] == "tiny"
        assert len(r["seed_ids"]) == 3 and set(r["seed_ids"]) <= seed_ids  # 3 seed examples
        assert r["output"] and 4 <= len(r["instruction"].split()) <= 150
    rows.sort(key=lambda r: (r["round"], r["request_id"]))
    assert_novel([r["instruction"] for r in rows], [t["instruction"] for t in seeds])
    boot = c["bootstrap"]
    reasons = [r["reason"] for r in rejects(out)]
    assert boot["candidates"] == 20 + reasons.count("rouge_l_too_similar") + reasons.count(
        "target_reached"
    )


def test_rerun_resumes_without_engine(first_run):
    out, rec = first_run
    before = dataset(out)
    again = run_tiny("alpaca", out, "requests_per_round=6")
    assert_rerun_generates_nothing(rec, again, before, dataset(out))


def test_judge_stage_on_the_job_rows(first_run, tmp_path):
    """The judge stage wired into the job (in-process reward model): a rerun of the finished
    run with ``judge`` set scores its rows without generating, keeps those at or over the
    threshold and rejects the others; a third run re-splits from the stored scores."""
    src, rec = first_run
    out = tmp_path / "judged"
    shutil.copytree(src, out)
    everyone = run_tiny(
        "alpaca", out, "requests_per_round=6", "judge={scorer: reward, threshold: null}"
    )
    assert everyone["status"] == "succeeded" and everyone["engine_starts"] == 0
    j = everyone["counts"]["judge"]
    assert j == {
        "rows": 20,
        "scored_now": 20,
        "from_cache": 0,
        "kept": 20,
        "unscored": 0,
        "below_threshold": 0,
    }
    rows = dataset(out)
    scores = sorted(r["extra"]["judge"]["score"] for r in rows)
    assert len(rows) == 20 and all(isinstance(s, float) for s in scores)
    assert {r["extra"]["judge"]["model"] for r in rows} == {"tiny-reward"}
    cut = scores[12]  # keep the 8 best (scores of a random model: distinct floats)
    again = run_tiny(
        "alpaca", out, "requests_per_round=6", f"judge={{scorer: reward, threshold: {cut!r}}}"
    )
    j = again["counts"]["judge"]
    assert j["scored_now"] == 0 and j["from_cache"] == 20 and again["engine_starts"] == 0
    kept = dataset(out)
    assert j["kept"] == len(kept) == sum(s >= cut for s in scores) == 8
    assert all(r["extra"]["judge"]["score"] >= cut for r in kept)
    below = {r["id"] for r in rejects(out) if r["reason"] == "judge_below_threshold"}
    assert len(below) == j["below_threshold"] == 12
    assert below.isdisjoint(r["id"] for r in kept) and below | {r["id"] for r in kept} == {
        r["id"] for r in rows
    }
    # back to no threshold: every row kept again, and no row is left among the judge's rejects
    third = run_tiny(
        "alpaca", out, "requests_per_round=6", "judge={scorer: reward, threshold: null}"
    )
    assert third["counts"]["judge"]["kept"] == len(dataset(out)) == 20
    assert not [r for r in rejects(out) if r["stage"] == "judge"]


def test_judge_stage_in_process_llm_judge(first_run, tmp_path):
    """``judge.rubric=curation5`` with no url: the rubric prompts go through the job's own vLLM
    engine, constrained by default (output auto -> regex): the tiny random model, which never
    writes "Score: N" by itself, is scored on every row; none is lost, none kept by accident."""
    src, _ = first_run
    out = tmp_path / "llm-judged"
    shutil.copytree(src, out)
    rec = run_tiny(
        "alpaca", out, "requests_per_round=6", "judge.rubric=curation5", "judge.max_tokens=32"
    )
    assert rec["status"] == "succeeded" and rec["engine_starts"] == 1  # the judge's generations
    j = rec["counts"]["judge"]
    assert j["rows"] == j["scored_now"] == 20
    assert j["output"] == "regex" and (j["samples"], j["parsed"], j["parse_rate"]) == (20, 20, 1.0)
    assert j["unscored"] == 0 and j["kept"] + j["below_threshold"] == 20
    kept = dataset(out)
    assert len(kept) == j["kept"] and all(r["extra"]["judge"]["score"] >= 4 for r in kept)
    judged = [r for r in rejects(out) if r["stage"] == "judge"]
    assert len(judged) == 20 - j["kept"]
    assert all(r["detail"] for r in judged if r["reason"] == "judge_unscored")
