"""``method: self_rewarding``: the config (paper defaults, deviations as named options)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from synth_ray.config import StrictModel
from synth_ray.engines.base import SamplingConfig
from synth_ray.loops.base import LoopConfig, check_train_settings
from synth_ray.stages.judge import JudgeStageConfig

# The paper's training settings (Yuan et al. 2024, section 3): SFT at 5.5e-6, DPO at 1e-6 with
# beta 0.1. The paper's batch size (16) and decays are left to the trainers' fields.
SFT_DEFAULTS: dict[str, Any] = {"learning_rate": 5.5e-6}
DPO_DEFAULTS: dict[str, Any] = {"learning_rate": 1e-6, "beta": 0.1}


def self_judge() -> JudgeStageConfig:
    """The survey's additive 5-point LLM-as-a-Judge prompt, each response scored thrice and the
    scores averaged; sampled at temperature 0.7, top-p 0.9 (ours: the survey gives none)."""
    return JudgeStageConfig(
        rubric="additive5",
        samples=3,
        threshold=None,
        input_field=None,
        prompt_field="instruction",
        response_field="output",
        temperature=0.7,
        top_p=0.9,
        max_tokens=256,
        seed=0,
    )


class EvaluationConfig(StrictModel):
    enabled: bool = Field(True, description="Run the evaluate stage after every swap.")
    judge: JudgeStageConfig = Field(
        default_factory=self_judge,
        description="The judge of the held-out comparison. In-process (default) it is the "
        "served model, M_{t+1}, judging M_t's and M_{t+1}'s answers alike; for a judge fixed "
        "across iterations set url (the scoring service) or scorer: reward.",
    )
    sampling: SamplingConfig = Field(
        default_factory=lambda: SamplingConfig(temperature=0.0, max_tokens=512, seed=0),
        description="How M_t and M_{t+1} answer the held-out instructions (greedy).",
    )


class SelfRewardingConfig(LoopConfig):
    method: Literal["self_rewarding"] = Field(
        "self_rewarding", description="Self-Rewarding Language Models (Yuan et al. 2024)."
    )
    ift: str | None = Field(
        None,
        description="IFT seed data: JSONL/Parquet of instruction/input/output or messages rows. "
        "Null: the shipped Self-Instruct seed instances (the paper: 3,200 top-ranked "
        "OpenAssistant first turns; see SEEDS.md).",
    )
    eft: str | None = Field(
        None,
        description="EFT seed data: rows whose instruction is an evaluation prompt and whose "
        "output is a justification ending in 'Score: N'. Null: built by rule from the IFT "
        "pairs (the paper: ranked OpenAssistant responses, 1,775 rows).",
    )
    max_ift: int | None = Field(None, ge=1, description="Use at most this many IFT pairs.")
    max_eft: int | None = Field(None, ge=1, description="Use at most this many EFT rows.")
    heldout: int = Field(
        16,
        ge=0,
        description="IFT instructions held out of training and of the few-shot pool, answered "
        "by M_t and M_{t+1} in the evaluate stage (ours; the paper evaluated on AlpacaEval).",
    )
    shots: int = Field(
        8, ge=1, description="IFT instructions per prompt-writing prompt (paper: 8)."
    )
    prompts: int = Field(
        500, ge=1, description="New prompts M_t is asked for per iteration (ours)."
    )
    instruction_sampling: SamplingConfig = Field(
        default_factory=lambda: SamplingConfig(temperature=0.7, top_p=0.9, max_tokens=128, seed=0),
        description="Sampling of the new prompts (ours: the survey gives none).",
    )
    keep_truncated: bool = Field(
        False,
        description="Keep prompts cut off at instruction_sampling.max_tokens (default: reject "
        "them as instruction_truncated). The tiny test model never stops by itself.",
    )
    candidates: int = Field(4, ge=2, description="Candidate responses per prompt (paper: 4).")
    response_sampling: SamplingConfig = Field(
        default_factory=lambda: SamplingConfig(temperature=0.7, top_p=0.9, max_tokens=512, seed=0),
        description="Sampling of the candidates (paper: temperature 0.7, top_p 0.9).",
    )
    judge: JudgeStageConfig = Field(
        default_factory=self_judge,
        description="M_t judging its own candidates: the additive 5-point prompt, 3 samples "
        "averaged (paper). Its threshold is not used.",
    )
    feedback: Literal["pairs", "positive"] = Field(
        "pairs",
        description="pairs: DPO on (highest, lowest) scored candidates (paper's main method); "
        "positive: SFT of M_t on candidates scoring >= positive_score (the paper's "
        "positive-examples-only variant).",
    )
    positive_score: float = Field(
        5.0, ge=0, le=5, description="feedback: positive: the score a candidate needs (paper: 5)."
    )
    sft: dict[str, Any] = Field(
        default_factory=lambda: dict(SFT_DEFAULTS),
        description="SFT settings for M1 and the positive variant (fields of `method: sft`).",
    )
    dpo: dict[str, Any] = Field(
        default_factory=lambda: dict(DPO_DEFAULTS),
        description="DPO settings for M_{t+1} (fields of `method: dpo`; the reference is M_t, "
        "set by the loop).",
    )
    evaluation: EvaluationConfig = Field(
        default_factory=EvaluationConfig, description="The held-out figure of every iteration."
    )

    @field_validator("sft")
    @classmethod
    def _sft(cls, v: dict[str, Any]) -> dict[str, Any]:
        return check_train_settings("sft", v)

    @field_validator("dpo")
    @classmethod
    def _dpo(cls, v: dict[str, Any]) -> dict[str, Any]:
        return check_train_settings("dpo", v)


def dpo_settings(cfg: SelfRewardingConfig, m_t_source: str) -> dict[str, Any]:
    """The DPO call's settings: the user's, with M_t as the reference policy."""
    return {**cfg.dpo, "ref_model": m_t_source}


def sft_settings(cfg: SelfRewardingConfig) -> dict[str, Any]:
    return dict(cfg.sft)
