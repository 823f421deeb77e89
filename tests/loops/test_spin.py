"""SPIN end to end on the tiny model (real Ray, vLLM, Ray Train), 2 iterations: every prompt a
pair (dataset response against M_t's answer) or a reject with its reason, the SPIN step DPO of
M_t with M_t as the reference on this iteration's pairs and the previous one's, the swap probe,
the per-iteration figures in the manifests, run.json and ``synth-ray lineage``; then the
finished job run again: nothing generated, nothing trained, no engine started."""

from __future__ import annotations

import json

import pytest

from synth_ray.io.layout import read_parquet_dir

from .loopproc import REPO, assert_rerun_redoes_nothing, cli, finish, lineage, manifest

pytestmark = [pytest.mark.slow, pytest.mark.vllm, pytest.mark.train]

JOB = REPO / "jobs" / "tiny" / "spin.yaml"
STAGES = ["generate", "pairs", "train", "swap", "evaluate"]


def test_two_iterations_then_a_rerun_that_redoes_nothing(tmp_path):
    out = tmp_path / "run"
    finish(cli(JOB, out))
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "succeeded"
    m0, m1 = manifest(out, 0), manifest(out, 1)
    assert list(m0["stages"]) == list(m1["stages"]) == STAGES
    assert m1["parent_model"]["fingerprint"] == m0["model_out"]["fingerprint"]
    for t, m in enumerate((m0, m1)):
        d = out / f"iter_{t}"
        st = {k: v["result"] for k, v in m["stages"].items()}
        assert all(s["status"] == "done" and s["attempts"] == 1 for s in m["stages"].values())
        # M_t answered the 8 prompts and the 2 held-out ones, each id once
        gen = read_parquet_dir(str(d / "data" / "generate")).column("id").to_pylist()
        assert len(gen) == len(set(gen)) == st["generate"]["requested"] == 8 + 2
        # every prompt a pair or a reject with its reason
        pairs = st["pairs"]
        assert pairs["prompts"] == 8 == pairs["pairs"] + sum(pairs["rejected"].values())
        prefs = read_parquet_dir(str(d / "preferences")).to_pylist()
        assert len(prefs) == pairs["pairs"] > 0
        for p in prefs:
            assert (p["model_chosen"], p["model_rejected"]) == (
                "data",
                m["parent_model"]["fingerprint"],
            )
            assert p["chosen"] != p["rejected"] and p["iteration"] == t and p["method"] == "spin"
        # the SPIN step: DPO of M_t, reference M_t, on this iteration's pairs (+ the previous)
        tr = st["train"]
        assert tr["reference"]["fingerprint"] == m["parent_model"]["fingerprint"]
        assert tr["base"]["fingerprint"] == m["parent_model"]["fingerprint"]
        want = pairs["pairs"] + (m0["stages"]["pairs"]["result"]["pairs"] if t == 1 else 0)
        assert tr["rows"] == want and len(tr["sources"]) == 1 + t
        assert m["probe"]["ok"] and m["probe"]["model"] == m["model_out"]["fingerprint"]
        assert m["probe"]["differs_from_parent"] is True
        mt = m["metrics"]
        assert mt["pairs"] == pairs["pairs"] and mt["train_rows"] == want
        assert isinstance(mt["dpo_reward_margin"], float)
        assert 0.0 <= mt["dpo_reward_accuracy"] <= 1.0
        assert 0.0 <= mt["heldout_rouge_l_before"] <= 1.0
        assert 0.0 <= mt["heldout_rouge_l_after"] <= 1.0
        assert record["counts"]["iterations"][t]["pairs"] == pairs["pairs"]
    # the pairs read as DPO input
    from synth_ray.train.data import read_training_rows_local

    rows, bad = read_training_rows_local(str(out / "iter_1" / "preferences"), "pairwise")
    assert len(rows) == m1["metrics"]["pairs"] and not bad
    lines = lineage(out)
    assert len(lines) == 2 and all("probe: ok" in ln and "sft_data=8" in ln for ln in lines)
    assert all(f"pairs.preferences={m['metrics']['pairs']}" in ln for m, ln in zip((m0, m1), lines))

    # run again: every stage found done, nothing generated or trained, no engine started
    assert_rerun_redoes_nothing(JOB, out, record, STAGES)
