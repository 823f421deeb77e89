"""Self-Rewarding's pure parts (no engine, no Ray): the few-shot prompt, the new prompt's
parse, pair selection with its tie rules, the positive examples, the held-out win rate."""

from __future__ import annotations

import random
import re
from collections import defaultdict
from typing import Any

from synth_ray.io.ids import stable_hash
from synth_ray.stages.prompt import fill, shipped_template

_PACKAGE = __name__.rsplit(".", 1)[0]
_NUMBERING = re.compile(r"^\s*(?:task\s*\d*\s*[:.)-]|\d+\s*[:.)-]|[-*]\s+)\s*", re.IGNORECASE)


def fewshot(pool: list[str], shots: int, key: str) -> list[str]:
    """``shots`` distinct instructions drawn from ``pool``, by a generator seeded with ``key``
    (a rerun draws the same)."""
    rng = random.Random(int(stable_hash(key, length=12), 16))
    return rng.sample(pool, min(shots, len(pool)))


def instruction_prompt(examples: list[str]) -> str:
    """The prompt asking M_t for one new instruction after ``examples`` (our wording)."""
    lines = "\n".join(f"Task {i}: {' '.join(e.split())}" for i, e in enumerate(examples, 1))
    return fill(
        shipped_template(_PACKAGE, "instructions").text,
        shots=str(len(examples)),
        examples=lines,
    )


def normalise(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


def parse_instruction(text: str) -> str:
    """The new instruction: the first non-empty line, a leading "Task 9:" / "3." / "- " cut."""
    for line in (text or "").splitlines():
        line = _NUMBERING.sub("", line).strip()
        if line:
            return line
    return ""


def select_pair(cands: list[dict[str, Any]]) -> tuple[dict | None, str | None, str]:
    """One prompt's preference pair from its judged candidates (each with ``score``, None when
    no judgement parsed, and ``sample_index``): (pair or None, reject reason, detail).

    The highest-scored candidate is chosen, the lowest rejected (paper); ties for highest or
    lowest go to the lowest sample index. Skipped: fewer than 2 parsed scores
    (``fewer_than_2_scores``), all scores equal (``scores_tied``)."""
    scored = sorted(
        (c for c in cands if c.get("score") is not None), key=lambda c: c["sample_index"]
    )
    if len(scored) < 2:
        return None, "fewer_than_2_scores", f"{len(scored)} of {len(cands)} candidates scored"
    hi = max(c["score"] for c in scored)
    lo = min(c["score"] for c in scored)
    if hi == lo:
        return None, "scores_tied", f"all {len(scored)} scored {hi:.3g}"
    chosen = next(c for c in scored if c["score"] == hi)
    rejected = next(c for c in scored if c["score"] == lo)
    return {"chosen": chosen, "rejected": rejected}, None, ""


def group_by_prompt(cands: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in cands:
        out[c["prompt_id"]].append(c)
    return dict(sorted(out.items()))


def positives(cands: list[dict[str, Any]], min_score: float) -> list[dict[str, Any]]:
    """The positive-examples-only variant's data: candidates scoring >= ``min_score``."""
    return [c for c in cands if c.get("score") is not None and c["score"] >= min_score]


def win_rate(new: dict[str, float | None], old: dict[str, float | None]) -> dict[str, Any]:
    """M_{t+1} against M_t on held-out instructions (key -> score under one judge): a win is a
    higher score, a tie counts half; instructions without both scores are left out."""
    both = sorted(k for k in new if new[k] is not None and old.get(k) is not None)
    wins = sum(new[k] > old[k] for k in both)
    ties = sum(new[k] == old[k] for k in both)

    def mean(d):
        vals = [d[k] for k in both]
        return round(sum(vals) / len(vals), 4) if vals else None

    return {
        "compared": len(both),
        "wins": wins,
        "ties": ties,
        "losses": len(both) - wins - ties,
        "win_rate": round((wins + 0.5 * ties) / len(both), 4) if both else None,
        "mean_score_new": mean(new),
        "mean_score_old": mean(old),
    }


def histogram(scores: list[float]) -> dict[str, int]:
    """Scores rounded to the nearest integer point, counted."""
    out: dict[str, int] = defaultdict(int)
    for s in scores:
        out[str(int(s + 0.5))] += 1  # half up (scores are >= 0)
    return dict(sorted(out.items()))
