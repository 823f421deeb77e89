"""One consistent novelty pool for a whole run: a Ray actor holding a :class:`NoveltyIndex`.

Self-Instruct keeps a generated instruction only when its ROUGE-L against *every* instruction
kept so far (and the seeds) is at most 0.7, in order. However many engines generate and however
many tasks parse their completions, the decisions must come from one pool, applied one text
after another: this actor is that pool. Calls are serialised by the actor (one at a time),
each call decides its texts in the order given, and the job decides the order (request id,
then position in the completion), so a rerun makes the same decisions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict

from synth_ray.filters.novelty import NoveltyIndex


class _NoveltyPoolActor:
    def __init__(self, threshold: float, seeds: list[str]):
        self.index = NoveltyIndex(threshold, seeds)

    def add_detailed(self, texts: list[str]) -> list[dict]:
        return [asdict(d) for d in self.index.add_detailed(texts)]

    def size(self) -> tuple[int, int]:
        return len(self.index), self.index.n_seeds


class NoveltyPool:
    """Driver-side handle: ``add_detailed(texts)`` -> one dict per text (kept, nearest, score)."""

    def __init__(self, threshold: float = 0.7, seeds: Iterable[str] = ()):
        import ray

        # One CPU-less actor: the ROUGE-L scan is fast (benchmarks/novelty.py) and runs between
        # generation calls, so it needs no reserved core.
        self._actor = ray.remote(num_cpus=0)(_NoveltyPoolActor).remote(
            float(threshold), list(seeds)
        )

    def add_detailed(self, texts: list[str]) -> list[dict]:
        import ray

        return ray.get(self._actor.add_detailed.remote(list(texts))) if texts else []

    def size(self) -> tuple[int, int]:
        """(texts in the pool, of which seeds)."""
        import ray

        return ray.get(self._actor.size.remote())

    def close(self) -> None:
        import ray

        ray.kill(self._actor)
