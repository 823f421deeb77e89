"""Constitutional AI's RL stage end to end on the tiny model (real Ray, vLLM, Ray Train): two
sampled responses per red-team prompt, soft labels from the feedback model's log-probabilities
of " (A)" and " (B)" under 2 sampled principles in both orders (checked against an independent
transformers computation), preference rows by the label, DPO on them, the swap probe; then the
finished job run again: nothing redone, no engine started."""

from __future__ import annotations

import json

import pytest

from synth_ray.io.layout import read_parquet_dir
from synth_ray.loops.constitutional import constitution as C
from synth_ray.loops.constitutional import rl_cai as RL
from synth_ray.stages import rubrics

from ..logprobs import transformers_option_logprob
from .loopproc import REPO, assert_rerun_redoes_nothing, cli, finish, lineage, manifest

pytestmark = [pytest.mark.slow, pytest.mark.vllm, pytest.mark.train]

JOB = REPO / "jobs" / "tiny" / "constitutional_rl.yaml"
STAGES = ["respond", "label", "pairs", "train", "swap"]


def test_labels_pairs_dpo_then_a_rerun_that_redoes_nothing(tmp_path, tiny_model):
    out = tmp_path / "run"
    finish(cli(JOB, out))
    record = json.loads((out / "run.json").read_text())
    m = manifest(out, 0)
    assert record["status"] == "succeeded" and list(m["stages"]) == STAGES
    st = {k: v["result"] for k, v in m["stages"].items()}
    d = out / "iter_0"

    # 6 prompts: each a pair to label or a reject with its reason
    rejected = sum(st["respond"]["rejected"].values())
    assert st["respond"]["pairs"] + rejected == 6 and st["respond"]["pairs"] > 0
    labels = read_parquet_dir(str(d / "labels")).to_pylist()
    assert len(labels) == st["respond"]["pairs"] == st["label"]["labelled"]
    assert st["label"]["questions"] == 4 * len(labels)  # 2 principles x 2 orders
    cons = C.load_constitution()
    by_name = {p.name: p for p in cons}
    for lab in labels:
        js = json.loads(lab["judgements"])
        want = [p.name for p in RL.principles_for(cons, lab["id"], 2, 0)]
        assert sorted({j["principle"] for j in js}) == sorted(want)
        assert sorted(j["order"] for j in js) == ["01", "01", "10", "10"]
        for j in js:
            assert j["p_a"] == pytest.approx(
                rubrics.option_probabilities(j["logprob_a"], j["logprob_b"])[0]
            )
        assert lab["p_0"] == pytest.approx(RL.soft_label(js)) and 0.0 <= lab["p_0"] <= 1.0
    assert 0.0 <= st["label"]["position_consistency"] <= 1.0

    # the first pair's log-probabilities, computed independently with transformers
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    lab = labels[0]
    for j in json.loads(lab["judgements"])[:2]:
        a, b = (lab["response_0"], lab["response_1"])
        a, b = (a, b) if j["order"] == "01" else (b, a)
        prefix = rubrics.compare_prompt(by_name[j["principle"]].choice, lab["prompt"], a, b)
        for option, got in zip(rubrics.OPTIONS, (j["logprob_a"], j["logprob_b"])):
            want = transformers_option_logprob(model, tok, prefix, option)
            assert got == pytest.approx(want, abs=0.15), (j, option)

    # preference rows: chosen = the response the feedback model prefers, the soft label kept
    prefs = read_parquet_dir(str(d / "preferences")).to_pylist()
    by_id = {lab["id"]: lab for lab in labels}
    assert len(prefs) == st["pairs"]["pairs"] == len(labels) - sum(st["pairs"]["rejected"].values())
    for p in prefs:
        lab = by_id[json.loads(p["extra"])["label_id"]]
        first = lab["p_0"] >= 0.5
        assert p["chosen"] == (lab["response_0"] if first else lab["response_1"])
        assert p["score_chosen"] == pytest.approx(max(lab["p_0"], 1 - lab["p_0"]))
        assert p["score_chosen"] + p["score_rejected"] == pytest.approx(1.0)
    # DPO of the policy, reference = the policy; the engine serves the new model
    assert st["train"]["rows"] == len(prefs)
    assert st["train"]["reference"]["fingerprint"] == m["parent_model"]["fingerprint"]
    assert m["probe"]["ok"] and m["probe"]["model"] == m["model_out"]["fingerprint"]
    assert m["probe"]["differs_from_parent"] is True
    (line,) = lineage(out)
    assert "probe: ok" in line and f"pairs.preferences={len(prefs)}" in line

    assert_rerun_redoes_nothing(JOB, out, record, STAGES)
