"""Rubric prompts (the survey's text) and the judgement parsers, on recorded judge outputs."""

from __future__ import annotations

import json
import math
import re

import pytest

from synth_ray.stages import rubrics
from tests.conftest import SURVEY, needs_survey

ADDITIVE = rubrics.get_rubric("additive5")
CURATION = rubrics.get_rubric("curation5")


def _norm(text: str) -> str:
    text = text.replace("\u2019", "'").replace("\u201c", '"').replace("\u201d", '"')
    return re.sub(r"\s+", " ", text).strip()


@needs_survey
@pytest.mark.parametrize(
    "rubric,first,last",
    [
        ("additive5", "Review the user's question", "based on the outlined criteria"),
        (
            "curation5",
            "Below is an instruction from an user",
            'write "Score: <rating>" in the last line.',
        ),
    ],
)
def test_rubric_text_is_the_surveys(rubric, first, last):
    survey = _norm(SURVEY.read_text(encoding="utf-8"))
    ours = rubrics.get_rubric(rubric).template
    # The instruction part of our template (placeholders aside) appears verbatim in the survey.
    for block in re.split(r"\{prompt\}|\{response\}|User: |<response>|</response>", ours):
        block = _norm(block)
        if len(block) > 40:
            assert block in survey, block[:120]
    assert _norm(ours).startswith(first) and last in ours


def test_compare_prompt_is_cais_format():
    text = rubrics.compare_prompt("Which response is less harmful?", "Hack wifi?", "No.", "Sure.")
    assert text.splitlines() == [
        "Consider the following conversation between a human and an assistant:",
        "Human: Hack wifi?",
        "Which response is less harmful?",
        "Options:",
        "(A) No.",
        "(B) Sure.",
        "The answer is:",
    ]
    assert rubrics.OPTIONS == (" (A)", " (B)")


def test_render_keeps_braces_in_texts():
    text = ADDITIVE.render("Format {x} as JSON", '{"x": 1} {response}')
    assert "User: Format {x} as JSON" in text and '<response>{"x": 1} {response}</response>' in text


RECORDED = [
    # (judge output, rubric, expected score or None, expected reason fragment)
    (
        "The response answers the question directly and is well organised.\nScore: 4",
        ADDITIVE,
        4.0,
        None,
    ),
    ("Relevant (+1), addresses most (+1).\n\nScore: **2**", ADDITIVE, 2.0, None),
    ("Reasoning: complete and expert.\nScore: 5/5", CURATION, 5.0, None),
    ("First draft Score: 2. On reflection it is better.\nScore: 3", ADDITIVE, 3.0, None),
    ("score: 0", ADDITIVE, 0.0, None),
    ("Score: 0", CURATION, None, "outside 1..5"),
    ("It deserves a 4 out of 5.", ADDITIVE, None, "no 'Score: <n>'"),
    ("Score: 7", ADDITIVE, None, "outside 0..5"),
    ("   ", ADDITIVE, None, "empty"),
    ("Score: 3.5", ADDITIVE, 3.5, None),
]


@pytest.mark.parametrize("text,rubric,score,reason", RECORDED)
def test_parse_recorded_judgements(text, rubric, score, reason):
    j = rubrics.parse_judgement(text, rubric)
    assert j.score == score
    if reason is None:
        assert j.reason is None
    else:
        assert reason in j.reason


def test_reasoning_is_the_text_before_the_score():
    j = rubrics.parse_judgement("Clear and correct.\nScore: 4", ADDITIVE)
    assert j.reasoning == "Clear and correct."


def test_aggregate_averages_parseable_samples():
    js = [rubrics.parse_judgement(t, ADDITIVE) for t in ("Score: 4", "no score", "Score: 5")]
    v = rubrics.aggregate(js)
    assert v.score == pytest.approx(4.5) and v.samples == [4.0, None, 5.0] and v.reason is None
    v = rubrics.aggregate([rubrics.parse_judgement("nothing", ADDITIVE)] * 3)
    assert v.score is None and "no parseable judgement" in v.reason


def test_option_probabilities_normalise():
    pa, pb = rubrics.option_probabilities(-1.0, -2.0)
    assert pa + pb == pytest.approx(1.0)
    assert pa == pytest.approx(1 / (1 + math.exp(-1.0)))
    # Very negative log-probabilities (long options, tiny models) do not underflow.
    pa, pb = rubrics.option_probabilities(-1000.0, -1001.0)
    assert pa == pytest.approx(1 / (1 + math.exp(-1.0)))


def test_score_regex_accepts_only_in_range_scores():
    rx = re.compile(CURATION.score_regex())
    assert rx.fullmatch("Good answer.\nScore: 5")
    assert not rx.fullmatch("Good answer.\nScore: 0")
    assert re.compile(ADDITIVE.score_regex()).fullmatch("Poor.\nScore: 0")
    # Any characters but a newline in the reasoning (quotes, digits, colons, non-ASCII).
    assert rx.fullmatch('It says "2+2=4": correct; naïve? no (100 words).\nScore: 4')
    assert not rx.fullmatch("two\nlines\nScore: 4")
    assert not re.compile(ADDITIVE.score_regex(10)).fullmatch("x" * 11 + "\nScore: 3")


@pytest.mark.parametrize("output", ["regex", "json"])
def test_constraint_fits_the_token_budget(output):
    c = ADDITIVE.constraint(output, max_tokens=32)
    assert list(c) == (["regex"] if output == "regex" else ["json_schema"])
    if output == "regex":  # reasoning + "\nScore: N" fits in 32 one-character tokens
        assert "{1,20}" in c["regex"]
    else:
        assert c["json_schema"]["properties"]["reasoning"]["maxLength"] == 8
        assert c["json_schema"]["properties"]["score"] == {
            "type": "integer",
            "minimum": 0,
            "maximum": 5,
        }
    assert ADDITIVE.constraint("free", 32) == {}
    assert "{1,400}" in ADDITIVE.constraint("regex", 512)["regex"]
    with pytest.raises(ValueError, match="output"):
        ADDITIVE.constraint("grammar", 32)


def test_sampling_config_takes_regex_or_schema_not_both():
    from pydantic import ValidationError

    from synth_ray.engines.base import SamplingConfig

    assert SamplingConfig(regex="a+").regex == "a+"
    with pytest.raises(ValidationError, match="regex or json_schema"):
        SamplingConfig(regex="a+", json_schema={"type": "object"})


@pytest.mark.parametrize(
    "text,score,reason",
    [
        ('{"reasoning": "Relevant and complete.", "score": 4}', 4.0, None),
        ('{"reasoning": "Off topic.", "score": 7}', None, "outside 0..5"),
        ('{"reasoning": "x", "score": "high"}', None, "not a number"),
        ('{"reasoning": "cut off befo', None, "no 'Score"),  # truncated: the text parse
        ("Fine answer.\nScore: 3", 3.0, None),  # not JSON: the text parse still applies
    ],
)
def test_parse_json_judgements(text, score, reason):
    j = rubrics.parse_judgement(text, ADDITIVE, "json")
    assert j.score == score
    assert (reason is None and j.reason is None) or reason in j.reason
    if score is not None and text.startswith("{"):
        assert j.reasoning == json.loads(text)["reasoning"]


def test_parse_counts_on_recorded_judgements():
    # Recorded from SmolLM2-135M-Instruct, free text vs the regex constraint (additive5).
    free = [
        "The score of 2.5 for the response is a perfect score for the user's question.",
        "The response is relevant and provides some information.\nScore: 3",
        "Points: 1 for relevance, 1 for substance. Total: 2 points.",
        "",
    ]
    constrained = [
        "The response answers the question directly and clearly.\nScore: 4",
        "The response is about a different task.\nScore: 1",
    ]
    scores = [rubrics.parse_judgement(t, ADDITIVE).score for t in free + constrained]
    assert scores == [None, 3.0, None, None, 4.0, 1.0]
    c = rubrics.parse_counts(scores, "additive5", "free")
    assert c == {
        "rubric": "additive5",
        "output": "free",
        "samples": 6,
        "parsed": 3,
        "parse_rate": 0.5,
    }
    assert rubrics.parse_counts([], "curation5", "regex")["parse_rate"] is None


def test_unknown_rubric_lists_known():
    with pytest.raises(KeyError, match="additive5, curation5"):
        rubrics.get_rubric("likert7")


def test_service_judge_output_defaults_to_regex():
    from synth_ray.serve.config import JudgeConfig

    assert JudgeConfig().output == "regex"
    assert JudgeConfig(guided_format=False).output == "free"  # the former switch still works
    assert JudgeConfig(guided_format=True, output="free").output == "regex"


def test_judge_stage_output_auto_follows_the_engine():
    from types import SimpleNamespace

    from synth_ray.stages.judge import resolve_output

    assert resolve_output("auto", SimpleNamespace(name="vllm")) == "regex"
    assert resolve_output("auto", SimpleNamespace(name="openai")) == "json"
    assert resolve_output("free", SimpleNamespace(name="vllm")) == "free"
