"""Reward models on Ray Train (2 CPU workers, DDP over gloo) on the tiny model: pairwise (TRL's
RewardTrainer, Bradley-Terry), K-wise (Plackett-Luce) and soft-label pairwise (Constitutional AI's
preference model; half the pairs have the better response as "rejected", said only by the label)
all learn an easy preference (responses with the marker word beat those without) and rank
HELD-OUT pairs correctly; the output
loads as AutoModelForSequenceClassification with one score and its tokenizer."""

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
    "music",
    "table",
    "chair",
    "bread",
    "water",
    "light",
    "house",
    "road",
    "sun",
    "moon",
]
MARKER = "banana"


def _text(rng: random.Random, markers: int) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(3, 6))]
    for _ in range(markers):
        words.insert(rng.randint(0, len(words)), MARKER)
    return " ".join(words)


def _prompt(rng: random.Random) -> str:
    return f"Tell me about the {rng.choice(WORDS)} {rng.choice(WORDS)}."


def pairs(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [
        {"prompt": _prompt(rng), "chosen": _text(rng, 1), "rejected": _text(rng, 0)}
        for _ in range(n)
    ]


def rankings(n: int, seed: int, k: int = 4) -> list[dict]:
    rng = random.Random(seed)
    return [
        {"prompt": _prompt(rng), "responses": [_text(rng, m) for m in range(k - 1, -1, -1)]}
        for _ in range(n)
    ]


def soft_pairs(n: int, seed: int) -> list[dict]:
    """Pairs whose soft label says which side is better: half of them have the marker response
    as "rejected" with label 0.1-0.3 (P(chosen is better)), so only the labels, not the
    positions, teach the marker preference."""
    out = []
    for i, r in enumerate(pairs(n, seed)):
        rng = random.Random(seed * 1000 + i)
        if i % 2:
            r = {**r, "chosen": r["rejected"], "rejected": r["chosen"]}
            out.append({**r, "label": round(rng.uniform(0.1, 0.3), 3)})
        else:
            out.append({**r, "label": round(rng.uniform(0.7, 0.9), 3)})
    return out


def _write_jsonl(path, rows) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def heldout_accuracy(model_dir: str, rows: list[dict]) -> float:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from synth_ray.train.losses import pairwise_accuracy
    from synth_ray.train.pref_data import full_tokens

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    assert model.config.num_labels == 1 and model.config.pad_token_id == tok.pad_token_id

    def score(prompt, response) -> float:
        ids = torch.tensor([full_tokens(tok, prompt, response)])
        with torch.no_grad():
            out = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
        assert out.shape == (1, 1)
        return float(out[0, 0])

    chosen = torch.tensor([score(r["prompt"], r["chosen"]) for r in rows])
    rejected = torch.tensor([score(r["prompt"], r["rejected"]) for r in rows])
    return pairwise_accuracy(chosen, rejected)


def _run(root, loss: str, rows: list[dict], extra: list[str]):
    _write_jsonl(root / "train.jsonl", rows)
    overrides = [
        f"input={root / 'train.jsonl'}",
        f"output_dir={root / 'out'}",
        f"loss={loss}",
        "per_device_batch_size=8",
        "logging_steps=5",
        "checkpoint.save_steps=1000",
        *extra,
    ]
    return run_job(load_job_config(str(REPO / "jobs/reward.yaml"), overrides))


HELDOUT = pairs(32, seed=1)


@pytest.mark.parametrize(
    "loss,rows",
    [
        ("pairwise", lambda: pairs(64, seed=0)),
        ("kwise", lambda: rankings(64, seed=0)),
        ("soft_pairwise", lambda: soft_pairs(64, seed=0)),
    ],
    ids=["pairwise", "kwise", "soft_pairwise"],
)
def test_reward_model_ranks_heldout_pairs(ray_local, tmp_path, loss, rows):
    rec = _run(tmp_path, loss, rows(), ["learning_rate=0.003", "max_steps=30"])
    assert rec["status"] == "succeeded"
    t = rec["counts"]["training"]
    assert t["rows_trained"] == 64 and t["global_step"] == 30
    assert t["last_logged_loss"] < t["first_logged_loss"]
    acc = heldout_accuracy(str(tmp_path / "out" / "model"), HELDOUT)
    assert acc >= 0.9, acc
