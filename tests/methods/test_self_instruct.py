"""Self-Instruct end to end on the tiny model through real vLLM (jobs/tiny/self_instruct.yaml:
structured output, so rows reach every stage), and the paper-default free-text path."""

from __future__ import annotations

import re

import pytest

from synth_ray.methods.self_instruct.prompts import load_seed_tasks
from tests.methods.jobs import (
    DATASET_COLUMNS,
    assert_novel,
    assert_rerun_generates_nothing,
    dataset,
    rejects,
    run_tiny,
    table,
)

pytestmark = [pytest.mark.slow, pytest.mark.vllm]


@pytest.fixture(scope="module")
def first_run(ray_local, tmp_path_factory):
    out = tmp_path_factory.mktemp("self_instruct")
    # 6 prompts of at most 3 tasks a round: the target of 20 takes more than one round.
    return out, run_tiny("self_instruct", out, "requests_per_round=6")


def test_run_record(first_run):
    out, rec = first_run
    assert rec["status"] == "succeeded"
    assert rec["engine_starts"] == 1  # one engine pool for every round and stage
    c = rec["counts"]
    assert c["instructions"] == 20 and c["generate"]["rounds"] >= 2
    gen = c["generation"]
    assert gen["generate"]["requested"] == 6 * c["generate"]["rounds"]
    assert gen["classify"]["requested"] == gen["instances"]["requested"] == 20
    assert rec["tokens"]["completion"] > 0 and (out / "run.json").exists()


def test_instructions_lineage_and_novelty(first_run):
    out, _ = first_run
    seeds = load_seed_tasks()
    seed_ids = {t["id"] for t in seeds}
    inst = table(out / "instructions")
    assert len(inst) == 20 and len({r["id"] for r in inst}) == 20
    rounds = sorted({r["round"] for r in inst})
    assert rounds[0] == 0 and rounds[-1] >= 1
    machine_ids = {r["id"] for r in inst}
    for r in inst:
        assert len(r["seed_ids"]) == 8
        n_machine = sum(i.startswith("si-") for i in r["seed_ids"])
        # Round 0 shows 8 human tasks; later rounds 6 human + 2 machine-generated (the paper).
        assert n_machine == (0 if r["round"] == 0 else 2), r
        assert all(i in seed_ids or i in machine_ids for i in r["seed_ids"])
        assert r["is_classification"] in (True, False)
    assert {r["is_classification"] for r in inst} == {True, False}  # both instance paths ran
    # Kept in order (round, then request id, then position): check with rouge-score itself.
    inst.sort(key=lambda r: (r["round"], r["request_id"]))
    assert_novel([r["instruction"] for r in inst], [t["instruction"] for t in seeds])


def test_dataset_rows_and_instance_paths(first_run):
    out, rec = first_run
    rows = dataset(out)
    inst = {r["id"]: r for r in table(out / "instructions")}
    assert rows and len(rows) == rec["counts"]["dataset_rows"]
    assert set(rows[0]) == DATASET_COLUMNS
    for r in rows:
        m = inst[r["extra"]["instruction_id"]]
        assert r["instruction"] == m["instruction"] and r["round"] == m["round"]
        assert r["seed_ids"] == m["seed_ids"] and r["method"] == "self_instruct"
        assert r["model"] == "tiny" and r["run_id"] == rec["run_id"]
        assert r["input"] != r["output"]
        if m["is_classification"]:  # output-first: the output is the class label
            assert re.fullmatch(r"[A-Z][a-z]{2,7}", r["output"]), r
        else:  # input-first: the schema's lower-case words
            assert re.fullmatch(r"[a-z]{2,7}( [a-z]{2,7}){0,5}", r["output"]), r
    # No input repeated with a different output within a task.
    pairs = {}
    for r in rows:
        pairs.setdefault((r["instruction"], r["input"]), set()).add(r["output"])
    assert all(len(v) == 1 for v in pairs.values())


def test_every_candidate_accounted_for(first_run):
    out, rec = first_run
    boot = rec["counts"]["bootstrap"]
    by_reason: dict[str, int] = {}
    for r in rejects(out):
        by_reason[r["reason"]] = by_reason.get(r["reason"], 0) + 1
        assert r["reason"] and r["stage"]
    # Candidates that passed the filters were either kept, too similar, or past the target.
    assert boot["candidates"] == boot["kept"] + by_reason.get(
        "rouge_l_too_similar", 0
    ) + by_reason.get("target_reached", 0)
    assert rec["counts"]["rejected"] == sum(by_reason.values())


def test_rerun_resumes_without_engine(first_run):
    out, rec = first_run
    before = dataset(out)
    again = run_tiny("self_instruct", out, "requests_per_round=6")
    assert_rerun_generates_nothing(rec, again, before, dataset(out))


def test_paper_default_free_text_rejects_with_reasons(ray_local, tmp_path):
    """The paper's free-text prompts on a random model: nothing parses, every completion is a
    recorded reject, and the job stops cleanly after `patience` dry rounds."""
    rec = run_tiny(
        "self_instruct",
        tmp_path,
        "structured_output.enabled=false",
        "requests_per_round=4",
        "patience=1",
        "sampling.generate.max_tokens=48",
    )
    assert rec["status"] == "succeeded" and rec["engine_starts"] == 1
    assert rec["counts"]["instructions"] == 0 and rec["counts"]["dataset_rows"] == 0
    assert "nothing kept in 1 rounds" in rec["counts"]["generate"]["stopped_early"]
    reasons = {r["reason"] for r in rejects(tmp_path)}
    assert reasons and reasons <= {
        "truncated",
        "no_tasks_parsed",
        "too_short",
        "too_long",
        "starts_with_punctuation",
        "starts_with_non_ascii",
        "banned_prefix",
        "rouge_l_too_similar",
    } | {r for r in reasons if r.startswith("blocked_keyword:")}


def test_export_of_the_run_loads_with_datasets(first_run, tmp_path):
    from datasets import load_dataset

    from synth_ray.export import export

    out, rec = first_run
    counts = export(str(out), str(tmp_path / "a.json"), "alpaca")
    assert counts["written"] == rec["counts"]["dataset_rows"]
    ds = load_dataset("json", data_files=str(tmp_path / "a.json"), split="train")
    assert ds.column_names == ["instruction", "input", "output"] and len(ds) == counts["written"]
    export(str(out), str(tmp_path / "m.jsonl"), "messages")
    chat = load_dataset("json", data_files=str(tmp_path / "m.jsonl"), split="train")
    assert [m["role"] for m in chat[0]["messages"]] == ["user", "assistant"]
