"""Self-Rewarding's parts that need no engine: the few-shot prompt, parsing of new prompts and
of judgements, pair selection and its tie rules on recorded judgements, the rejects, the seed
data, the config's checks, and DPO's reference being M_t."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from synth_ray.config import ConfigError
from synth_ray.io.layout import read_parquet_dir
from synth_ray.io.rejects import read_rejects
from synth_ray.job import load_all_jobs
from synth_ray.loops.base import Iteration
from synth_ray.loops.self_rewarding import parts as P
from synth_ray.loops.self_rewarding import seeds as S
from synth_ray.loops.self_rewarding import self_rewarding as SR
from synth_ray.loops.self_rewarding.config import SelfRewardingConfig, dpo_settings
from synth_ray.runner import load_job_config
from synth_ray.stages import rubrics
from synth_ray.train.api import TrainResult

TINY = "jobs/tiny/self_rewarding.yaml"
M_T = SimpleNamespace(spec="m_t", source="/models/m_t", fingerprint="fp-m_t")


def cfg(tmp_path, **kw) -> SelfRewardingConfig:
    return SelfRewardingConfig(output_dir=str(tmp_path), **kw)


# -- the prompt-writing prompt and its parse --


def test_instruction_prompt_numbers_eight_shots():
    pool = [f"Instruction number {i}\nwith a second line" for i in range(30)]
    shots = P.fewshot(pool, 8, "iter0-prompt3")
    assert len(shots) == len(set(shots)) == 8 and set(shots) <= set(pool)
    text = P.instruction_prompt(shots)
    assert text.startswith("Here are 8 tasks")
    for i, s in enumerate(shots, 1):
        assert f"Task {i}: {' '.join(s.split())}\n" in text + "\n"
    assert "{" not in text  # every placeholder filled
    assert text.rstrip().endswith("on a single line.")


def test_fewshot_draws_are_repeatable_and_vary_by_key():
    pool = [f"t{i}" for i in range(50)]
    assert P.fewshot(pool, 8, "iter0-prompt1") == P.fewshot(pool, 8, "iter0-prompt1")
    assert P.fewshot(pool, 8, "iter0-prompt1") != P.fewshot(pool, 8, "iter1-prompt1")
    assert sorted(P.fewshot(pool[:3], 8, "k")) == pool[:3]  # a small pool: all of it


@pytest.mark.parametrize(
    "text,want",
    [
        ("Write a haiku about rain.", "Write a haiku about rain."),
        ("Task 9: Write a haiku about rain.\nTask 10: more", "Write a haiku about rain."),
        ("\n\n  9. List three fruits.  \n", "List three fruits."),
        ("- Name a planet", "Name a planet"),
        ("task: Sort the list", "Sort the list"),
        ("", ""),
        ("  \n \n", ""),
        ("Task 9:", ""),
    ],
)
def test_parse_instruction(text, want):
    assert P.parse_instruction(text) == want


# -- judgements, recorded --

RECORDED = {
    "The answer is relevant and complete.\nScore: 4": 4.0,
    "Helpful but vague. Score: 3/5": 3.0,
    "Two points so far (Score: 2), then a third.\nScore: 3": 3.0,  # the last one counts
    "Perfect.\nScore: 7": None,  # outside 0..5
    "No score given here.": None,
    "": None,
}


@pytest.mark.parametrize("text", list(RECORDED))
def test_judgements_parsed_with_the_additive_rubric(text):
    j = rubrics.parse_judgement(text, rubrics.get_rubric("additive5"))
    assert j.score == RECORDED[text]
    assert (j.reason is None) == (RECORDED[text] is not None)


def _cand(pid, k, score, out=None):
    return {
        "id": f"{pid}-s{k}",
        "prompt_id": pid,
        "instruction": f"question {pid}",
        "output": out if out is not None else f"answer {pid}/{k}",
        "sample_index": k,
        "score": score,
        "judge_samples": [] if score is None else [score] * 3,
    }


def test_pair_is_highest_against_lowest():
    pair, why, _ = P.select_pair(
        [_cand("p", 0, 2.0), _cand("p", 1, 4.667), _cand("p", 2, 1.0), _cand("p", 3, 3.0)]
    )
    assert why is None
    assert (pair["chosen"]["sample_index"], pair["rejected"]["sample_index"]) == (1, 2)


def test_ties_at_the_top_or_bottom_go_to_the_first_candidate():
    pair, _, _ = P.select_pair(
        [_cand("p", 3, 5.0), _cand("p", 1, 5.0), _cand("p", 0, 1.0), _cand("p", 2, 1.0)]
    )
    assert (pair["chosen"]["sample_index"], pair["rejected"]["sample_index"]) == (1, 0)


def test_all_scores_tied_is_skipped():
    pair, why, detail = P.select_pair([_cand("p", k, 3.0) for k in range(4)])
    assert pair is None and why == "scores_tied" and "3" in detail


@pytest.mark.parametrize("parsed", [0, 1])
def test_fewer_than_two_parsed_scores_is_skipped(parsed):
    cands = [_cand("p", k, 4.0 if k < parsed else None) for k in range(4)]
    pair, why, detail = P.select_pair(cands)
    assert pair is None and why == "fewer_than_2_scores"
    assert detail == f"{parsed} of 4 candidates scored"


def test_unparsed_candidates_are_left_out_of_the_pair():
    pair, why, _ = P.select_pair(
        [_cand("p", 0, None), _cand("p", 1, 2.0), _cand("p", 2, None), _cand("p", 3, 2.5)]
    )
    assert why is None and pair["chosen"]["id"] == "p-s3" and pair["rejected"]["id"] == "p-s1"


def test_histogram_win_rate_positives():
    assert P.histogram([0.0, 2.5, 2.4, 4.667, 5.0]) == {"0": 1, "2": 1, "3": 1, "5": 2}
    w = P.win_rate({"a": 4.0, "b": 2.0, "c": 3.0, "d": None}, {"a": 3.0, "b": 2.0, "c": 4.0})
    assert (w["compared"], w["wins"], w["ties"], w["losses"]) == (3, 1, 1, 1)
    assert w["win_rate"] == 0.5 and w["mean_score_new"] == 3.0
    assert P.win_rate({"a": None}, {"a": 1.0})["win_rate"] is None
    cands = [_cand("p", 0, 5.0), _cand("p", 1, 4.667), _cand("q", 0, None)]
    assert [c["id"] for c in P.positives(cands, 5.0)] == ["p-s0"]


# -- the select stage on a recorded judged table: preference rows and rejects --


def _select_on_recorded(tmp_path, judged: list[dict], prompts: list[str], **kw):
    import pyarrow as pa

    from synth_ray.stages.records import write_table_dir

    c = cfg(tmp_path, **kw)
    it = Iteration(str(tmp_path), 0, "run-a")
    write_table_dir(it.sub("judged"), pa.Table.from_pylist(judged))
    write_table_dir(it.sub("prompts"), pa.Table.from_pylist([{"id": p} for p in prompts]))
    ctx = SimpleNamespace(config=c, run_id="run-a")
    return it, SR.SelfRewarding()._select(ctx, it, M_T)


def test_select_writes_preference_rows_and_a_reject_per_skipped_prompt(tmp_path):
    judged = (
        [_cand("p1", k, s) for k, s in enumerate([3.0, 4.333, 1.0, 2.0])]  # a pair
        + [_cand("p2", k, 3.0) for k in range(4)]  # tied
        + [_cand("p3", k, s) for k, s in enumerate([None, None, 5.0, None])]  # 1 parsed
        + [_cand("p5", k, s, "" if k == 1 else None) for k, s in enumerate([1.0, 5.0])]  # empty
    )
    it, res = _select_on_recorded(tmp_path, judged, ["p1", "p2", "p3", "p4", "p5"])
    assert res["pairs"] == 1 and res["prompts"] == 5
    assert res["rejected"] == {
        "empty_response": 1,
        "fewer_than_2_scores": 2,  # p3 and p4 (no candidate at all)
        "scores_tied": 1,
    }
    rejects = {r["id"]: r["reason"] for r in read_rejects(it.sub("rejects")).to_pylist()}
    assert rejects == {
        "p2": "scores_tied",
        "p3": "fewer_than_2_scores",
        "p4": "fewer_than_2_scores",
        "p5": "empty_response",
    }
    (row,) = read_parquet_dir(it.sub("preferences")).to_pylist()
    assert (row["prompt"], row["chosen"], row["rejected"]) == (
        "question p1",
        "answer p1/1",
        "answer p1/2",
    )
    assert (row["score_chosen"], row["score_rejected"], row["iteration"]) == (4.333, 1.0, 0)
    assert row["model_chosen"] == row["model_rejected"] == M_T.fingerprint
    assert row["method"] == "self_rewarding" and row["run_id"] == "run-a"
    extra = json.loads(row["extra"])
    assert extra["candidate_chosen"] == "p1-s1" and extra["judge_samples_chosen"] == [4.333] * 3
    # positives (score 5, not empty) for the positive-only variant: p3's (p5's is empty)
    assert res["positives"] == 1


def test_preference_rows_export_and_read_as_dpo_input(tmp_path):
    from synth_ray.export import export_preferences
    from synth_ray.train.data import read_training_rows_local

    judged = [_cand("p1", k, s) for k, s in enumerate([3.0, 4.0, 1.0])]
    it, _ = _select_on_recorded(tmp_path, judged, ["p1"])
    out = tmp_path / "prefs.jsonl"
    counts = export_preferences(it.dir, str(out))
    assert counts["written"] == 1
    line = json.loads(out.read_text())
    assert (line["prompt"], line["chosen"], line["rejected"]) == (
        "question p1",
        "answer p1/1",
        "answer p1/2",
    )
    rows, rejects = read_training_rows_local(it.sub("preferences"), "pairwise")
    assert len(rows) == 1 and not rejects


# -- training: DPO of M_t with M_t as the reference --


class _Served:
    def __init__(self):
        self.calls = []

    def before_training(self, scaling):
        self.calls.append(scaling)


def _train(tmp_path, monkeypatch, sel, **kw):
    calls = []

    def fake_train(kind, data, base, out, settings):
        calls.append((kind, data, base, out, settings))
        return TrainResult(f"{out}/model", {"dpo": {"last": {"rewards/margins": 0.1}}})

    monkeypatch.setattr(SR, "train_model", fake_train)
    c = cfg(tmp_path, **kw)
    it = Iteration(str(tmp_path), 1, "run-a")
    served = _Served()
    return it, served, calls, SR.SelfRewarding()._train(c, it, served, M_T, sel)


def test_dpo_starts_from_m_t_with_m_t_as_reference(tmp_path, monkeypatch):
    assert dpo_settings(cfg(tmp_path), M_T.source)["ref_model"] == M_T.source
    it, served, calls, res = _train(tmp_path, monkeypatch, {"pairs": 3, "positives": 0})
    ((kind, data, base, out, settings),) = calls
    assert (kind, base, settings["ref_model"]) == ("dpo", M_T.source, M_T.source)
    assert data == it.sub("preferences") and out == it.sub("m_next")
    assert settings["beta"] == 0.1 and settings["learning_rate"] == 1e-6  # paper
    assert res["reference"]["fingerprint"] == M_T.fingerprint == res["base"]["fingerprint"]
    assert it.manifest["settings"]["dpo_reference"]["source"] == M_T.source
    assert served.calls == [{}]  # room made for Ray Train first


def test_positive_variant_is_sft_of_m_t_on_score_5(tmp_path, monkeypatch):
    it, _, calls, res = _train(
        tmp_path, monkeypatch, {"pairs": 3, "positives": 2}, feedback="positive"
    )
    ((kind, data, base, _, settings),) = calls
    assert (kind, data, base) == ("sft", it.sub("positives"), M_T.source)
    assert "ref_model" not in settings and res["rows"] == 2


def test_no_pairs_carries_m_t_over_without_training(tmp_path, monkeypatch):
    _, served, calls, res = _train(tmp_path, monkeypatch, {"pairs": 0, "positives": 0})
    assert calls == [] and served.calls == []
    assert res["model"] == M_T.source and res["skipped"] == "no training rows"


# -- seed data --


def test_eft_by_rule_has_the_three_kinds_with_parseable_scores():
    ift = S.shipped_ift()
    assert len(ift) >= 175
    eft = S.eft_by_rule(ift, limit=9)
    assert [e["kind"] for e in eft] == ["matched", "truncated", "mismatched"] * 3
    assert [S.eft_score(e["output"]) for e in eft] == [4.0, 2.0, 0.0] * 3
    rubric = rubrics.get_rubric("additive5")
    for e, p in zip(eft, ift):
        assert e["instruction"].startswith(rubric.template.split("\n", 1)[0])
        assert f"User: {p['instruction']}" in e["instruction"]
    assert f"<response>{ift[0]['output']}</response>" in eft[0]["instruction"]
    assert f"<response>{ift[2]['output']}</response>" not in eft[2]["instruction"]


def test_seed_files_and_eft_rejects(tmp_path):
    ift = tmp_path / "ift.jsonl"
    ift.write_text(
        json.dumps({"instruction": "Say hi.", "output": "Hi!"})
        + "\n"
        + json.dumps(
            {
                "messages": [
                    {"role": "user", "content": "Count to 3."},
                    {"role": "assistant", "content": "1 2 3"},
                ]
            }
        )
        + "\n"
    )
    assert S.load_ift(str(ift)) == [
        {"instruction": "Say hi.", "output": "Hi!"},
        {"instruction": "Count to 3.", "output": "1 2 3"},
    ]
    eft = tmp_path / "eft.jsonl"
    eft.write_text(
        json.dumps({"instruction": "Judge this.", "output": "Fine.\nScore: 3"})
        + "\n"
        + json.dumps({"instruction": "Judge that.", "output": "No verdict."})
        + "\n"
    )
    rej = tmp_path / "rejects"
    rows = S.load_eft(str(eft), [], rejects_dir=str(rej))
    assert [r["instruction"] for r in rows] == ["Judge this."]
    (bad,) = read_rejects(str(rej)).to_pylist()
    assert bad["reason"] == "eft_no_score"


def test_heldout_instructions_leave_training_and_the_pool():
    ift = S.shipped_ift()
    train, held = S.split_heldout(ift, 5)
    assert len(held) == 5 and not {p["instruction"] for p in train} & set(held)
    assert S.split_heldout(ift, 5) == (train, held)  # the same every time
    assert S.split_heldout(ift, 0)[1] == []


# -- the config --


def test_paper_defaults(tmp_path):
    c = cfg(tmp_path)
    assert (c.iterations, c.shots, c.candidates, c.feedback) == (2, 8, 4, "pairs")
    r = c.response_sampling
    assert (r.temperature, r.top_p) == (0.7, 0.9)
    assert (c.judge.rubric, c.judge.samples, c.judge.threshold) == ("additive5", 3, None)
    assert c.positive_score == 5.0
    assert (c.dpo["beta"], c.dpo["learning_rate"], c.sft["learning_rate"]) == (0.1, 1e-6, 5.5e-6)
    real = load_job_config("jobs/self_rewarding.yaml")
    assert (real.model, real.iterations, real.candidates, real.judge.samples) == (
        "smollm2-135m",
        2,
        4,
        3,
    )
    assert load_all_jobs().get("self_rewarding").kind == "loop"


@pytest.mark.parametrize(
    "override,field",
    [
        ("candidates=1", "candidates"),
        ("feedback=negative", "feedback"),
        ("dpo.ref_model=tiny", "ref_model"),
        ("dpo.beta=0", "beta"),
        ("sft.max_steps=0", "max_steps"),
        ("judge.rubric=nope", "judge.rubric"),
        ("promts=3", "promts"),
    ],
)
def test_bad_settings_rejected_before_work(tmp_path, override, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_job_config(TINY, [f"output_dir={tmp_path}", override])


def test_preflight_refuses_unusable_seeds(tmp_path):
    job = SR.SelfRewarding()
    job.preflight(load_job_config(TINY, [f"output_dir={tmp_path}"]))
    with pytest.raises(ConfigError, match="fewer than shots=8"):
        job.preflight(load_job_config(TINY, [f"output_dir={tmp_path}", "max_ift=3"]))
    eft = tmp_path / "eft.jsonl"
    eft.write_text(json.dumps({"instruction": "Judge.", "output": "no score"}) + "\n")
    with pytest.raises(ConfigError, match="EFT"):
        job.preflight(load_job_config(TINY, [f"output_dir={tmp_path}", f"eft={eft}"]))
    with pytest.raises(ConfigError, match="engine.lifetime"):
        job.preflight(load_job_config(TINY, [f"output_dir={tmp_path}", "engine.lifetime=dataset"]))
