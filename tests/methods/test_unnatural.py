"""Unnatural Instructions end to end on the tiny model through real vLLM
(jobs/tiny/unnatural.yaml): examples, greedy outputs, template expansion."""

from __future__ import annotations

import pytest

from synth_ray.methods.unnatural.prompts import load_seeds, seed_combinations
from tests.methods.jobs import (
    DATASET_COLUMNS,
    assert_rerun_generates_nothing,
    dataset,
    rejects,
    run_tiny,
)

pytestmark = [pytest.mark.slow, pytest.mark.vllm]


@pytest.fixture(scope="module")
def first_run(ray_local, tmp_path_factory):
    out = tmp_path_factory.mktemp("unnatural")
    return out, run_tiny("unnatural", out)


def test_core_examples_and_reformulations(first_run):
    out, rec = first_run
    assert rec["status"] == "succeeded" and rec["engine_starts"] == 1
    c = rec["counts"]
    assert c["core_examples"] == 12
    combos = [{s["id"] for s in combo} for combo in seed_combinations(load_seeds())]
    rows = dataset(out)
    assert set(rows[0]) == DATASET_COLUMNS and len(rows) == c["dataset_rows"]
    core = [r for r in rows if "reformulation_of" not in r["extra"]]
    reform = [r for r in rows if "reformulation_of" in r["extra"]]
    assert core and reform
    assert (
        len(core)
        + sum(
            r["reason"] in ("empty_output", "generation_error") and r["stage"] == "output"
            for r in rejects(out)
        )
        == 12
    )  # every core example: row or reject
    by_id = {r["id"]: r for r in core}
    for r in core:
        assert set(r["seed_ids"]) in combos  # one of the 5 fixed 3-shot prompts
        assert r["input"] and r["output"]
        if r["extra"]["constraints"] != "None.":
            assert r["instruction"].endswith("\n" + r["extra"]["constraints"])
    for r in reform:
        src = by_id[r["extra"]["reformulation_of"]]
        assert r["input"] == "" and r["output"] == src["output"]  # same task, same output
        assert "{INPUT}" in r["extra"]["formulation"]
        assert r["instruction"] == r["extra"]["formulation"].replace("{INPUT}", src["input"])
    # At most 2 formulations per task (paper), never the same one twice.
    per_task: dict[str, list[str]] = {}
    for r in reform:
        per_task.setdefault(r["extra"]["reformulation_of"], []).append(r["instruction"])
    assert all(len(v) <= 2 and len(set(v)) == len(v) for v in per_task.values())
    assert rec["counts"]["generation"]["reformulations"]["requested"] == 2 * len(core)


def test_examples_filtered_for_duplicates_and_shot_copies(first_run):
    out, _ = first_run
    core = [r for r in dataset(out) if "reformulation_of" not in r["extra"]]
    keys = [(r["instruction"], r["input"]) for r in core]
    assert len(set(keys)) == len(keys)
    shots = {(s["instruction"], s["input"]) for s in load_seeds()}
    assert not shots & {(r["instruction"].split("\n")[0], r["input"]) for r in core}


def test_rerun_resumes_without_engine(first_run):
    out, rec = first_run
    before = dataset(out)
    again = run_tiny("unnatural", out)
    assert_rerun_generates_nothing(rec, again, before, dataset(out))
