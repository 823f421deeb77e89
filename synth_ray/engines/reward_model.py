"""A reward model scorer: a sequence classifier with one label, as the reward trainer saves it;
and SteerLM's attribute scorer, the same with one output per attribute (``AttributeScorer``).

``RewardScorer`` is the one piece of code that turns (prompt, response) pairs into reward scores,
whether it runs inside the Ray Serve reward deployment (``synth_ray.serve.reward``) or on a Ray
Data actor pool (``synth_ray.stages.judge`` without a service URL). Pairs are rendered with
``synth_ray.models.chat.full_tokens``, the exact tokens the reward trainer trained on.

Over-long inputs are truncated to ``max_length`` tokens keeping the START (the reward trainer's
``keep_start``): the score is read at the last kept token. ``truncated`` in each result says so.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any


@dataclass
class RewardResult:
    score: float
    tokens: int
    truncated: bool


class RewardScorer:
    """Load once, then ``score_pairs(prompts, responses)`` / ``score_texts(texts)`` in batches."""

    single_output = True  # a reward model: one score

    def __init__(
        self,
        model_source: str,
        *,
        max_length: int = 2048,
        device: str = "auto",
        dtype: str = "float32",
        torch_threads: int | None = None,
    ):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        if torch_threads:
            torch.set_num_threads(torch_threads)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        self.tokenizer = AutoTokenizer.from_pretrained(model_source)
        self.model = AutoModelForSequenceClassification.from_pretrained(
            model_source, dtype=getattr(torch, dtype)
        ).to(device)
        self.model.eval()
        if self.model.config.num_labels != 1 and self.single_output:
            raise ValueError(
                f"reward model {model_source!r} has num_labels={self.model.config.num_labels}; "
                "a reward model has one output (num_labels=1)"
            )
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id
        self.pad_id = int(pad if pad is not None else 0)
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.pad_id
        self.max_length = max_length
        self._lock = threading.Lock()  # one forward at a time per scorer

    def tokens_for_pair(self, prompt: Any, response: Any) -> list[int]:
        from synth_ray.models.chat import full_tokens

        return full_tokens(self.tokenizer, prompt, response)

    def tokens_for_text(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def score_pairs(self, prompts: list[Any], responses: list[Any]) -> list[RewardResult]:
        return self.score_ids([self.tokens_for_pair(p, r) for p, r in zip(prompts, responses)])

    def score_texts(self, texts: list[str]) -> list[RewardResult]:
        return self.score_ids([self.tokens_for_text(t) for t in texts])

    def score_ids(self, seqs: list[list[int]]) -> list[RewardResult]:
        """One forward pass over right-padded sequences (the classifier reads each row's last
        non-pad token); empty sequences get the pad token so the batch still runs."""
        if not seqs:
            return []
        cut, logits = self._forward(seqs)
        scores = logits[:, 0].float().cpu().tolist()
        return [
            RewardResult(float(sc), len(c), len(s) > self.max_length)
            for sc, c, s in zip(scores, cut, seqs)
        ]

    def _forward(self, seqs: list[list[int]]):
        """(the sequences as cut to ``max_length``, the model's (B, num_labels) outputs)."""
        import torch

        cut = [s[: self.max_length] or [self.pad_id] for s in seqs]
        width = max(len(s) for s in cut)
        ids = torch.full((len(cut), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(cut), width), dtype=torch.long)
        for i, s in enumerate(cut):
            ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
        with self._lock, torch.inference_mode():
            logits = self.model(
                input_ids=ids.to(self.device), attention_mask=mask.to(self.device)
            ).logits
        return cut, logits


class AttributeScorer(RewardScorer):
    """SteerLM's attribute prediction model (``method: attributes``): one output per attribute,
    named by the folder's ``id2label``. ``attribute_pairs(prompts, responses)`` -> one
    {name: score} per pair, from the same tokens and truncation as the reward scorer."""

    single_output = False

    @property
    def names(self) -> list[str]:
        labels = self.model.config.id2label
        return [str(labels[i]) for i in range(self.model.config.num_labels)]

    def attribute_pairs(self, prompts: list[Any], responses: list[Any]) -> list[dict[str, float]]:
        seqs = [self.tokens_for_pair(p, r) for p, r in zip(prompts, responses)]
        if not seqs:
            return []
        _, logits = self._forward(seqs)
        names = self.names
        return [dict(zip(names, row)) for row in logits.float().cpu().tolist()]
