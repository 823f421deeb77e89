"""Filters over generated data (novelty / near-duplicate filtering)."""

from synth_ray.filters.novelty import NoveltyDecision, NoveltyIndex, rouge_l, tokenize

__all__ = ["NoveltyDecision", "NoveltyIndex", "rouge_l", "tokenize"]
