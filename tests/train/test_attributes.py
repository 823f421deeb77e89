"""SteerLM's attribute prediction model on Ray Train (2 CPU workers) on the tiny model: one
regression output per attribute learns an easy rule (quality 4 with the marker word, 0 without;
a second attribute rated on only some rows) and scores HELD-OUT responses by it; the folder names
its outputs (id2label) and loads as AutoModelForSequenceClassification."""

from __future__ import annotations

import json
import random

import pytest

from synth_ray.runner import load_job_config, run_job

from ..conftest import REPO
from .test_reward import _prompt, _text

pytestmark = [pytest.mark.slow, pytest.mark.train]


def rated(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        marker = i % 2
        attrs = {"quality": 4.0 * marker}
        if i % 3 == 0:  # rated on humor too (unrelated to the marker)
            attrs["humor"] = float(rng.randint(0, 4))
        rows.append({"prompt": _prompt(rng), "response": _text(rng, marker), "attributes": attrs})
    return rows


def test_attribute_model_scores_heldout_responses(ray_local, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from synth_ray.engines.reward_model import AttributeScorer
    from synth_ray.models.chat import full_tokens

    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rated(64, 0)))
    overrides = [
        f"input={tmp_path / 'train.jsonl'}",
        f"output_dir={tmp_path / 'out'}",
        "learning_rate=0.003",
        "max_steps=30",
        "per_device_batch_size=8",
        "logging_steps=5",
        "checkpoint.save_steps=1000",
    ]
    rec = run_job(load_job_config(str(REPO / "jobs/attributes.yaml"), overrides))
    assert rec["status"] == "succeeded" and rec["attributes"] == ["humor", "quality"]
    t = rec["counts"]["training"]
    assert t["rows_trained"] == 64 and t["last_logged_loss"] < t["first_logged_loss"]

    folder = str(tmp_path / "out" / "model")
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    assert model.config.id2label == {0: "humor", 1: "quality"}
    assert model.config.problem_type == "regression" and model.config.num_labels == 2
    held = rated(40, 1)
    # the annotating scorer (batched, padded) gives what a plain forward of one pair gives
    scorer = AttributeScorer(folder)
    got = scorer.attribute_pairs([r["prompt"] for r in held], [r["response"] for r in held])
    assert scorer.names == ["humor", "quality"] and set(got[0]) == {"humor", "quality"}
    ids = torch.tensor([full_tokens(tok, held[0]["prompt"], held[0]["response"])])
    with torch.no_grad():
        one = model(input_ids=ids).logits[0].tolist()
    assert [got[0]["humor"], got[0]["quality"]] == pytest.approx(one, abs=1e-4)

    good = [g["quality"] for g, r in zip(got, held) if r["attributes"]["quality"] == 4.0]
    bad = [g["quality"] for g, r in zip(got, held) if r["attributes"]["quality"] == 0.0]
    right = sum(g > b for g in good for b in bad) / (len(good) * len(bad))
    assert right >= 0.9, right
    assert sum(good) / len(good) - sum(bad) / len(bad) > 1.0
