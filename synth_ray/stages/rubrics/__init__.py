"""LLM-as-judge rubrics and the pairwise feedback prompt of the survey, with their parsers.

Shared by the Ray Serve judge (``synth_ray.serve.judge``) and the in-process judge stage
(``synth_ray.stages.judge``), so a score means the same thing wherever it was computed.

- ``additive5``: Self-Rewarding Language Models' LLM-as-a-Judge prompt (survey, "Self-Rewarding
  Language Models"): points 0-5 accumulated over five criteria, the judgement ends with
  "Score: <total points>"; each response is scored three times and the scores averaged.
- ``curation5``: Instruction Backtranslation's self-curation prompt (survey, "Self-Alignment with
  Instruction Backtranslation"): a 1-5 quality scale, "Score: <rating>" in the last line; the
  paper keeps pairs scoring >= 4 (A_4) or = 5 (A_5).
- ``compare_cai.txt``: Constitutional AI's feedback-model prompt (survey, "Constitutional AI"):
  a conversation, a principle phrased as a multiple-choice question, options (A)/(B), "The
  answer is:"; the preference is the normalised probability of "(A)" vs "(B)" from the model's
  log-probabilities.

The rubric texts are the survey's, verbatim but for typographic apostrophes and quotes made
ASCII. The judge is sent the rubric as one user turn in the model's chat template. The sampling
of the judgements (temperature 0.7, top-p 0.9, the temperature Self-Rewarding samples its
candidate responses with) is ours: the survey states only that each response is scored thrice.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from synth_ray.stages.prompt import fill, shipped_template


@dataclass(frozen=True)
class Rubric:
    name: str
    template: str
    min_score: int
    max_score: int
    source: str  # the survey section it comes from

    def render(self, prompt: str, response: str) -> str:
        return fill(self.template, prompt=prompt, response=response)

    def messages(self, prompt: str, response: str) -> list[dict[str, str]]:
        return [{"role": "user", "content": self.render(prompt, response)}]

    def score_regex(self, max_reason_chars: int = 400) -> str:
        """Structured output ``regex``: one reasoning line (any characters but a newline, at
        most ``max_reason_chars``), then ``Score: N`` with N in the rubric's range."""
        digits = "".join(str(i) for i in range(self.min_score, self.max_score + 1))
        return rf"[^\n]{{1,{max_reason_chars}}}\nScore: [{digits}]"

    def score_schema(self, max_reason_chars: int = 400) -> dict[str, Any]:
        """Structured output ``json``: ``{"reasoning": str, "score": int}`` (reasoning first,
        so the model still justifies before it scores)."""
        return {
            "type": "object",
            "properties": {
                "reasoning": {"type": "string", "maxLength": max_reason_chars},
                "score": {"type": "integer", "minimum": self.min_score, "maximum": self.max_score},
            },
            "required": ["reasoning", "score"],
            "additionalProperties": False,
        }

    def constraint(self, output: str, max_tokens: int, max_reason_chars: int = 400) -> dict:
        """The sampling fields that constrain a judgement (``SamplingConfig.regex`` or
        ``json_schema``; empty for ``free``). The reasoning is bounded so the score still fits
        in ``max_tokens`` (a character costs at most one token for ASCII text)."""
        if output == "free":
            return {}
        if output == "regex":
            return {"regex": self.score_regex(_reason_budget(max_reason_chars, max_tokens, 12))}
        if output == "json":
            return {
                "json_schema": self.score_schema(_reason_budget(max_reason_chars, max_tokens, 24))
            }
        raise ValueError(f"output: {output!r} is not one of {', '.join(OUTPUTS)}")


def _reason_budget(max_reason_chars: int, max_tokens: int, overhead: int) -> int:
    return max(1, min(max_reason_chars, max_tokens - overhead))


RUBRICS: dict[str, Rubric] = {
    "additive5": Rubric(
        "additive5",
        shipped_template(__name__, "additive5").text,
        0,
        5,
        "Self-Rewarding Language Models",
    ),
    "curation5": Rubric(
        "curation5",
        shipped_template(__name__, "curation5").text,
        1,
        5,
        "Self-Alignment with Instruction Backtranslation",
    ),
}

# How a judgement is produced: free text (the papers), or constrained by structured outputs to
# "<reasoning line>\nScore: N" (regex) or {"reasoning": ..., "score": N} (json).
OUTPUTS = ("free", "regex", "json")

COMPARE_TEMPLATE = shipped_template(__name__, "compare_cai").text
OPTIONS = (" (A)", " (B)")


def get_rubric(name: str) -> Rubric:
    try:
        return RUBRICS[name]
    except KeyError:
        raise KeyError(f"unknown rubric {name!r}; known: {', '.join(sorted(RUBRICS))}") from None


@dataclass
class Judgement:
    score: float | None  # None when the text has no usable "Score: N"
    reason: str | None  # why the score is None
    reasoning: str  # the judge's text before its score line


_SCORE = re.compile(r"score\s*:\s*\**\s*(-?\d+(?:\.\d+)?)\s*(?:/\s*\d+)?", re.IGNORECASE)


def parse_judgement(text: str, rubric: Rubric, output: str = "free") -> Judgement:
    """The LAST "Score: N" of a judgement (the rubrics ask for it at the end); N must be within
    the rubric's range. ``output="json"``: the ``score`` of the JSON object, the text parse
    as a fallback (a truncated object). Anything else is a null score with the reason, never
    an exception."""
    text = text or ""
    if output == "json":
        j = _parse_json(text, rubric)
        if j is not None:
            return j
    matches = list(_SCORE.finditer(text))
    if not matches:
        why = "empty judgement" if not text.strip() else "no 'Score: <n>' in the judgement"
        return Judgement(None, why, text.strip())
    last = matches[-1]
    value = float(last.group(1))
    reasoning = text[: last.start()].strip()
    if not rubric.min_score <= value <= rubric.max_score:
        return Judgement(
            None, f"score {last.group(1)} outside {rubric.min_score}..{rubric.max_score}", reasoning
        )
    return Judgement(value, None, reasoning)


def _parse_json(text: str, rubric: Rubric) -> Judgement | None:
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    if not isinstance(obj, dict) or "score" not in obj:
        return None
    value, reasoning = obj["score"], str(obj.get("reasoning") or "")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return Judgement(None, f"score {value!r} is not a number", reasoning)
    if not rubric.min_score <= value <= rubric.max_score:
        return Judgement(
            None, f"score {value} outside {rubric.min_score}..{rubric.max_score}", reasoning
        )
    return Judgement(float(value), None, reasoning)


def parse_counts(scores: list[float | None], rubric: str, output: str) -> dict[str, Any]:
    """Parse-rate accounting of a judge call: samples judged, samples with a usable score."""
    parsed = sum(s is not None for s in scores)
    return {
        "rubric": rubric,
        "output": output,
        "samples": len(scores),
        "parsed": parsed,
        "parse_rate": round(parsed / len(scores), 4) if scores else None,
    }


@dataclass
class Verdict:
    score: float | None  # mean of the parseable samples
    samples: list[float | None]
    reasoning: list[str]
    reason: str | None  # why score is None (every sample unparseable)


def aggregate(judgements: list[Judgement]) -> Verdict:
    """Self-Rewarding averages the three scores of a response; a sample that could not be
    parsed is left out of the mean (and reported as null); none parseable -> null score."""
    scores = [j.score for j in judgements]
    good = [s for s in scores if s is not None]
    reason = None
    if not good:
        reasons = sorted({j.reason for j in judgements if j.reason})
        reason = "no parseable judgement: " + "; ".join(reasons) if reasons else "no judgement"
    return Verdict(
        sum(good) / len(good) if good else None, scores, [j.reasoning for j in judgements], reason
    )


def compare_prompt(principle: str, prompt: str, response_a: str, response_b: str) -> str:
    return fill(
        COMPARE_TEMPLATE,
        principle=principle.strip(),
        prompt=prompt,
        response_a=response_a,
        response_b=response_b,
    ).rstrip("\n")


def option_probabilities(logprob_a: float, logprob_b: float) -> tuple[float, float]:
    """Normalise the two options' log-probabilities to probabilities that sum to 1."""
    m = max(logprob_a, logprob_b)
    ea, eb = math.exp(logprob_a - m), math.exp(logprob_b - m)
    return ea / (ea + eb), eb / (ea + eb)
