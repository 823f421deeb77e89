"""The problem-generator plugin contract: problems whose answers no model wrote.

AlphaGeometry (survey, "Synthetic data for pretraining") generates theorems and proofs with a
symbolic engine, so every answer is checked by construction; ReST-EM (survey, "Synthetic data for
instruction-tuning") needs exactly such problems with ground-truth answers for its binary reward.
A domain is one module registering a ``ProblemGenerator`` under a name: ``make(rng, difficulty)``
returns a ``Problem`` whose answer the generator has recomputed from the problem statement on a
path independent of the one that built it. ``generate_problems`` draws them, seeded and
deduplicated by question, as rows that the math verifier checks (``answer`` is a worked solution
ending in GSM8K's ``#### answer``) and that can be written as SFT rows.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

from synth_ray.io.ids import stable_hash
from synth_ray.registry import Registry

GENERATORS: Registry[type[ProblemGenerator]] = Registry("problem generator")


@dataclass(frozen=True)
class Problem:
    question: str
    final_answer: str  # the bare answer, e.g. "-3/4"
    solution: str  # worked steps, ending in "#### <final_answer>"
    difficulty: int
    domain: str


class ProblemGenerator:
    """Subclasses set ``name`` and ``levels`` and implement ``make``."""

    name = ""
    levels: tuple[int, ...] = ()

    def make(self, rng: random.Random, difficulty: int) -> Problem:
        raise NotImplementedError


def generate_problems(
    name: str, n: int, *, seed: int = 0, difficulties: list[int] | None = None
) -> list[dict]:
    """``n`` distinct problems of generator ``name`` (levels taken in turn), as rows:
    id, question, answer (worked solution with ``#### x``), final_answer, difficulty, domain."""
    import synth_ray.stages.problems  # noqa: F401 - registers the built-in generators

    gen = GENERATORS.get(name)()
    levels = list(difficulties or gen.levels)
    unknown = [d for d in levels if d not in gen.levels]
    if unknown:
        raise ValueError(f"{name}: unknown difficulty {unknown}; levels: {list(gen.levels)}")
    rng = random.Random(seed)
    rows, seen, attempts = [], set(), 0
    while len(rows) < n:
        attempts += 1
        if attempts > 50 * n + 100:
            raise RuntimeError(f"{name}: only {len(rows)} distinct problems in {attempts} draws")
        p = gen.make(rng, levels[len(rows) % len(levels)])
        if p.question in seen:
            continue
        seen.add(p.question)
        d = asdict(p)
        rows.append(
            {
                "id": f"{name}-{stable_hash(p.question, length=16)}",
                "question": d["question"],
                "answer": d["solution"],
                "final_answer": d["final_answer"],
                "difficulty": d["difficulty"],
                "domain": d["domain"],
            }
        )
    return rows


def sft_row(problem: dict) -> dict:
    """A generated problem as an instruction row (``id``, ``instruction``, ``input``,
    ``output``: the columns ``synth-ray export`` and the SFT trainer read), the worked solution
    as the output: its ``#### answer`` line is what the math verifier extracts."""
    return {
        "id": problem["id"],
        "instruction": problem["question"],
        "input": "",
        "output": problem["answer"],
    }
