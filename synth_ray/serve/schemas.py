"""Request and reply bodies of the scoring API (v1). FastAPI publishes them at /docs.

Requests reject unknown fields (a misspelt field is a 422 naming it, not a silently ignored
value), except the OpenRLHF-compatible ``/get_reward`` body, which carries fields we ignore.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PairItem(_Strict):
    prompt: str = Field(description="The user's instruction (one user turn).")
    response: str = Field(description="The response to score (one assistant turn).")


class RewardRequest(_Strict):
    items: list[PairItem] = Field(min_length=1, description="(prompt, response) pairs to score.")


class RewardScore(BaseModel):
    score: float = Field(description="The reward model's scalar output.")
    tokens: int = Field(description="Tokens scored (after truncation).")
    truncated: bool = Field(description="True if the text or tokens were cut to the limits.")


class ModelInfo(BaseModel):
    model: str = Field(description="The model as configured (path or hub id).")
    revision: str = Field(description="Hub commit, or a content hash of a local model folder.")


class RewardReply(ModelInfo):
    results: list[RewardScore]


class JudgeRequest(_Strict):
    rubric: Literal["additive5", "curation5"] = Field(
        description="additive5: Self-Rewarding's additive 0-5 LLM-as-a-Judge prompt. "
        "curation5: Instruction Backtranslation's 1-5 self-curation prompt."
    )
    items: list[PairItem] = Field(min_length=1, description="(prompt, response) pairs to judge.")
    samples: int | None = Field(
        None, ge=1, description="Judgements averaged per item (default 3, as Self-Rewarding)."
    )


class JudgeResult(BaseModel):
    score: float | None = Field(description="Mean of the parseable sample scores; null if none.")
    samples: list[float | None] = Field(description="Each judgement's score (null: unparseable).")
    reasoning: list[str] = Field(description="Each judgement's text before its score line.")
    reason: str | None = Field(description="Why score is null (e.g. no 'Score: N' found).")
    truncated: bool = Field(False, description="True if a text was cut to max_text_chars.")
    parsed: int = Field(description="How many of this item's judgements had a usable score.")


class JudgeReply(ModelInfo):
    rubric: str
    output: Literal["regex", "json", "free"] = Field(
        description="How the judge produced its judgements (judge.output): constrained to a "
        "regex or JSON object, or free text."
    )
    parse_rate: float = Field(
        description="Judgements with a usable score / judgements, over the whole request."
    )
    results: list[JudgeResult]


class CompareItem(_Strict):
    prompt: str = Field(description="The human turn of the conversation.")
    response_a: str = Field(description="Option (A).")
    response_b: str = Field(description="Option (B).")


class CompareRequest(_Strict):
    principle: str = Field(
        min_length=1,
        description="A constitutional principle phrased as a multiple-choice question, e.g. "
        "'Which of these assistant responses is less harmful?'",
    )
    items: list[CompareItem] = Field(min_length=1)


class CompareResult(BaseModel):
    p_a: float | None = Field(description="P((A)) normalised over (A) and (B).")
    p_b: float | None = Field(description="P((B)) = 1 - p_a.")
    logprob_a: float | None = Field(description="Log-probability of ' (A)' after the prompt.")
    logprob_b: float | None = Field(description="Log-probability of ' (B)' after the prompt.")
    preferred: Literal["A", "B"] | None
    reason: str | None = Field(None, description="Why the probabilities are null.")
    truncated: bool = False


class CompareReply(ModelInfo):
    principle: str
    results: list[CompareResult]


class OpenRLHFRequest(BaseModel):
    """OpenRLHF's remote reward model body (``--remote_rm_url``): full texts in ``query``."""

    model_config = ConfigDict(extra="allow")
    query: list[str] = Field(
        min_length=1,
        description="Full sequences (prompt + response) "
        "already in the policy's chat format, scored as given.",
    )
    prompts: list[str] | None = Field(None, description="Ignored (OpenRLHF sends it).")
    labels: list[Any] | None = Field(None, description="Ignored (OpenRLHF sends it).")


class OpenRLHFReply(BaseModel):
    rewards: list[float]
    scores: list[float]
    extra_logs: dict[str, list[float]] = Field(default_factory=dict)


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    components: dict[str, str]


class ErrorBody(BaseModel):
    error: str = Field(description="What was wrong, naming the field when one is to blame.")
