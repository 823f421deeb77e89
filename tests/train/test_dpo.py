"""DPO on Ray Train (2 CPU workers, DDP over gloo, TRL's DPOTrainer with a frozen reference) on
the tiny model: the implicit-reward margin of chosen over rejected, computed directly from the
policy's and the reference's log-probs, goes from 0 (policy = reference) to clearly positive,
and TRL's own logged ``rewards/margins`` rise from first to last log."""

from __future__ import annotations

import json
import random

import pytest

from synth_ray.runner import load_job_config, run_job

from ..conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.train]

WORDS = [
    "red",
    "blue",
    "green",
    "cat",
    "dog",
    "tree",
    "river",
    "stone",
    "lamp",
    "door",
    "cloud",
    "seven",
    "apple",
    "quiet",
    "forest",
]


def rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        topic = " ".join(rng.choice(WORDS) for _ in range(2))
        out.append(
            {
                "prompt": f"Tell me about the {topic}.",
                "chosen": f"The {topic} is lovely and bright.",
                "rejected": f"I will not talk about {rng.choice(WORDS)} things.",
            }
        )
    return out


def logratio_margins(policy_dir: str, ref_dir: str, data: list[dict]) -> list[float]:
    """Per row: [log pi(c|x) - log ref(c|x)] - [log pi(r|x) - log ref(r|x)] (DPO's margin / beta)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from synth_ray.train.pref_data import dpo_tokens

    tok = AutoTokenizer.from_pretrained(ref_dir)
    policy = AutoModelForCausalLM.from_pretrained(policy_dir, dtype=torch.float32).eval()
    ref = AutoModelForCausalLM.from_pretrained(ref_dir, dtype=torch.float32).eval()

    def logp(model, prompt_ids, completion_ids) -> float:
        ids = torch.tensor([prompt_ids + completion_ids])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, :-1].log_softmax(-1)
        target = ids[0, 1:]
        lp = logits.gather(-1, target.unsqueeze(-1)).squeeze(-1)
        return float(lp[len(prompt_ids) - 1 :].sum())

    out = []
    for r in data:
        p, c, rej = dpo_tokens(tok, r["prompt"], r["chosen"], r["rejected"])
        out.append(
            (logp(policy, p, c) - logp(ref, p, c)) - (logp(policy, p, rej) - logp(ref, p, rej))
        )
    return out


def test_dpo_raises_the_chosen_over_rejected_margin(ray_local, tmp_path, tiny_model):
    data = rows(16, seed=0)
    (tmp_path / "prefs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in data))
    overrides = [
        f"input={tmp_path / 'prefs.jsonl'}",
        f"output_dir={tmp_path / 'out'}",
        "learning_rate=0.001",
        "max_steps=20",
        "warmup_ratio=0",
        "per_device_batch_size=4",
        "logging_steps=2",
        "checkpoint.save_steps=1000",
    ]
    cfg = load_job_config(str(REPO / "jobs/dpo.yaml"), overrides)
    assert (cfg.beta, cfg.loss_type, cfg.ref_model) == (0.1, "sigmoid", None)
    rec = run_job(cfg)
    assert rec["status"] == "succeeded"
    t = rec["counts"]["training"]
    assert t["rows_trained"] == 16 and t["global_step"] == 20
    assert t["last_logged_loss"] < t["first_logged_loss"]

    # Before training the policy is the reference: every margin is 0.
    assert all(abs(m) < 1e-4 for m in logratio_margins(tiny_model, tiny_model, data[:4]))
    after = logratio_margins(str(tmp_path / "out" / "model"), tiny_model, data)
    assert sum(after) / len(after) > 1.0 and sum(m > 0 for m in after) >= 15, after

    m = json.loads((tmp_path / "out" / "dpo_metrics.json").read_text())
    assert m["last"]["rewards/margins"] > m["first"]["rewards/margins"]
    assert m["last"]["rewards/accuracies"] >= 0.9
