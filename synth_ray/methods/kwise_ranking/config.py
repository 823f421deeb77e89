"""``method: kwise_ranking`` config: the responders (who answers each prompt), the judge (who
ranks the answers) and the outputs. Defaults are Starling's Nectar where the survey gives them
(K = 7 responses per prompt, every pair of a ranking a comparison); the rest are named choices."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from synth_ray.config import StrictModel
from synth_ray.engines import EngineSpec, SamplingConfig
from synth_ray.job import GenerationJobConfig
from synth_ray.methods.kwise_ranking.ranking import MAX_K

RESPONSE_SAMPLING = {"temperature": 0.7, "top_p": 0.9, "max_tokens": 512, "seed": 0}


class Responder(StrictModel):
    """One source of responses: a model on an engine, asked ``samples`` times per prompt."""

    name: str | None = Field(
        None,
        description="Name written in each row beside its responses (the `models` column). "
        "Default: the model spec.",
    )
    model: str | None = Field(
        None, description="Model spec (as the job's `model`); default: the job's model."
    )
    engine: EngineSpec | None = Field(
        None,
        description="Engine (vllm or openai, as the job's `engine`); default: the job's engine. "
        "Responders with the same engine and model share one engine (one start).",
    )
    samples: int = Field(1, ge=1, le=MAX_K, description="Responses per prompt from this model.")
    sampling: SamplingConfig = Field(
        default_factory=lambda: SamplingConfig(**RESPONSE_SAMPLING),
        description="Sampling of the responses (not given by the survey; here temperature 0.7, "
        "top_p 0.9, 512 tokens, seed 0). `n` is ignored: `samples` sets the count.",
    )


class RankingJudgeConfig(StrictModel):
    """Who ranks the K responses of a prompt."""

    type: Literal["llm", "reward_service"] = Field(
        "llm",
        description="llm: the job's model on the job's engine reads the K responses labelled "
        "A, B, ... in a shuffled order and writes an ordering (Nectar: GPT-4 ranking 7 "
        "responses). reward_service: each response scored by the scoring service "
        "(`POST /v1/reward` at `url`), sorted by score (no position to be biased by).",
    )
    judgements: int = Field(
        1,
        ge=1,
        le=16,
        description="llm: judgements per prompt, each with its own shuffle; ranks are averaged "
        "over those that parse (mean rank). Nectar: one ranking per prompt.",
    )
    output: Literal["auto", "regex", "json", "free"] = Field(
        "auto",
        description="llm: regex constrains the judgement to '<reasoning line>\\nRanking: C > A "
        "> ...' (every permutation listed up to exact_permutation_max_k responses, labels from "
        "the set above); json to {reasoning, ranking: [labels]}; free is unconstrained text "
        "parsed for its last 'Ranking:' line. auto: regex on vllm, json on openai engines.",
    )
    reasoning: bool = Field(
        True, description="llm: ask for one line of reasoning before the ranking."
    )
    max_reason_chars: int = Field(
        300, ge=16, description="llm, constrained: characters of reasoning at most."
    )
    exact_permutation_max_k: int = Field(
        5,
        ge=2,
        le=6,
        description="llm, regex: up to this K the regex lists every permutation (only a "
        "permutation can be written); above, a non-permutation is a parse reject.",
    )
    template: str | None = Field(
        None,
        description="llm: ranking prompt (path or text) with {k}, {prompt}, {responses}, "
        "{example}; default: the shipped templates/rank.txt (rank_noreason.txt without reasoning).",
    )
    max_response_chars: int = Field(
        4000, ge=64, description="llm: each response is cut to this many characters when shown."
    )
    temperature: float = Field(0.0, ge=0, description="llm: sampling temperature of the judge.")
    top_p: float = Field(1.0, gt=0, le=1, description="llm: nucleus sampling of the judge.")
    max_tokens: int = Field(256, ge=8, description="llm: tokens per judgement.")
    seed: int = Field(0, description="Seed of the shuffles (and of the judge's sampling).")
    url: str | None = Field(
        None, description="reward_service: base URL of the scoring service (synth-ray serve)."
    )
    token_env: str = Field(
        "SYNTH_RAY_SERVE_TOKEN", description="reward_service: variable holding its token."
    )
    batch_size: int = Field(16, ge=1, description="reward_service: items per request.")
    retries: int = Field(5, ge=0, description="reward_service: retries of a 429/503.")
    timeout_s: float = Field(300, gt=0, description="reward_service: per-request timeout.")

    @model_validator(mode="after")
    def _service_url(self) -> RankingJudgeConfig:
        if self.type == "reward_service" and not self.url:
            raise ValueError("judge.type reward_service needs judge.url (the scoring service)")
        return self


class KwiseRankingConfig(GenerationJobConfig):
    method: Literal["kwise_ranking"] = Field(
        "kwise_ranking", description="Starling-style k-wise ranking data (Nectar)."
    )
    prompts: str | None = Field(
        None,
        description="Prompts file (JSONL / JSON / Parquet) with a `prompt` field, or "
        "`instruction` (+ `input`). Default: the 175 Self-Instruct seed instructions shipped "
        "with synth-ray (Nectar used 183k chat prompts from public datasets).",
    )
    max_prompts: int | None = Field(None, ge=1, description="Use only the first N prompts.")
    k: int = Field(7, ge=2, le=MAX_K, description="Responses per prompt (Starling/Nectar: 7).")
    responders: list[Responder] | None = Field(
        None,
        description="Who answers, one after the other; their `samples` must add up to k. "
        "Default: the job's model, k samples (Nectar mixed GPT-4, GPT-3.5, Llama-2, Mistral...).",
    )
    min_responses: int = Field(
        2,
        ge=2,
        description="A prompt with fewer usable responses (failed or empty ones dropped) is a "
        "reject; between this and k it is ranked over those it has.",
    )
    judge: RankingJudgeConfig = Field(
        default_factory=RankingJudgeConfig, description="The ranking judge."
    )
    pairs: Literal["all", "best_vs_rest", "best_worst"] = Field(
        "all",
        description="Pairwise rows derived from each ranking: all K(K-1)/2 pairs (Starling: "
        "183k prompts x 21 = 3.8M comparisons), the best against each other, or best vs worst.",
    )

    @model_validator(mode="after")
    def _responders_fill_k(self) -> KwiseRankingConfig:
        if self.responders is None:
            self.responders = [Responder(samples=self.k)]
        total = sum(r.samples for r in self.responders)
        if total != self.k:
            raise ValueError(f"responders' samples add up to {total}, but k is {self.k}")
        names = [r.name or r.model or self.model for r in self.responders]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"responder names must differ (set `name`): {', '.join(dup)} twice")
        if self.min_responses > self.k:
            raise ValueError(f"min_responses ({self.min_responses}) > k ({self.k})")
        return self

    def responder_names(self) -> list[str]:
        return [r.name or r.model or self.model for r in self.responders or []]
