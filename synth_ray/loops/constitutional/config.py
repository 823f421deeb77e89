"""``method: constitutional_sl``: the config (the paper's defaults, deviations as named options)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from synth_ray.engines.base import SamplingConfig
from synth_ray.loops.base import LoopConfig, check_train_settings

# The paper fine-tuned the pretrained model for one epoch on the revisions and helpful samples.
SFT_DEFAULTS: dict[str, Any] = {"epochs": 1.0}


class CAIConfig(LoopConfig):
    """Fields both Constitutional AI stages share: the prompts and the constitution."""

    red_team: str | None = Field(
        None,
        description="JSONL of red-team prompts (a 'prompt' string per row). Null: the shipped "
        "40 prompts of this project's own wording (the paper: 183k).",
    )
    constitution: str | None = Field(
        None,
        description="JSONL of principles (name, critique, revision, choice: the RL stage asks "
        "the 'choice' question). Null: the shipped 16 principles of this project's own wording "
        "(the paper's count).",
    )
    max_prompts: int | None = Field(
        None, ge=1, description="Use at most this many prompts (or given pairs), in file order."
    )
    seed: int = Field(
        0, description="Seed of the principle sampling (SL: per prompt and round; RL: per pair)."
    )


class ConstitutionalSLConfig(CAIConfig):
    method: Literal["constitutional_sl"] = Field(
        "constitutional_sl",
        description="Constitutional AI, supervised stage (SL-CAI; Bai et al. 2022).",
    )
    iterations: int = Field(
        1, ge=1, description="Iterations (paper: one pass; more repeat it with M_{t+1})."
    )
    fewshot: str | None = Field(
        None,
        description="JSONL of few-shot critique/revision examples (prompt, response, principle, "
        "critique, revision), shown before every critique as earlier turns (as the paper "
        "does). Null: the 2 shipped examples.",
    )
    fewshot_examples: int = Field(
        2, ge=0, description="How many few-shot examples to show (0: none)."
    )
    revisions: int = Field(
        4,
        ge=1,
        le=16,
        description="Critique-revision rounds per prompt, each under a newly sampled principle "
        "(paper: four revisions per prompt).",
    )
    train_on: Literal["final", "all"] = Field(
        "final",
        description="SFT targets: the final revision of each prompt (the survey's account) or "
        "every revision, one row each.",
    )
    helpful: str | None = Field(
        None,
        description="Helpfulness instructions: JSONL/Parquet of instruction/input/output or "
        "messages rows. Null: the shipped Self-Instruct seed instances (Apache-2.0; the paper: "
        "135k human-written instructions).",
    )
    helpful_samples: int = Field(
        2,
        ge=1,
        le=8,
        description="Responses sampled per helpfulness instruction (paper: two, from a helpful "
        "model; here M_t).",
    )
    helpful_source: Literal["model", "data"] = Field(
        "model",
        description="Where helpful responses come from: sampled from M_t (the paper's way, "
        "from its helpful RLHF model) or the instruction file's own outputs.",
    )
    helpful_ratio: float = Field(
        135 / 183,
        ge=0.0,
        description="Helpful rows per harmlessness row in the SFT data (paper: 135k "
        "instructions to 183k red-team prompts); the helpful instructions are used in file "
        "order up to this share, every sample of each.",
    )
    response_sampling: SamplingConfig = Field(
        default_factory=lambda: SamplingConfig(temperature=1.0, top_p=1.0, max_tokens=256, seed=0),
        description="How M_t answers the red-team and helpfulness prompts (temperature 1.0; "
        "the survey gives none).",
    )
    critique_sampling: SamplingConfig = Field(
        default_factory=lambda: SamplingConfig(temperature=1.0, top_p=1.0, max_tokens=256, seed=1),
        description="How M_t writes critiques.",
    )
    revision_sampling: SamplingConfig = Field(
        default_factory=lambda: SamplingConfig(temperature=1.0, top_p=1.0, max_tokens=256, seed=2),
        description="How M_t writes revisions.",
    )
    train_from: Literal["base", "previous"] = Field(
        "base",
        description="The SFT's starting point: the base model (`model`; the paper fine-tunes "
        "the pretrained model) or M_t.",
    )
    sft: dict[str, Any] = Field(
        default_factory=lambda: dict(SFT_DEFAULTS),
        description="Settings of the SFT (fields of `method: sft`; paper: one epoch).",
    )

    @field_validator("sft")
    @classmethod
    def _sft(cls, v: dict[str, Any]) -> dict[str, Any]:
        return check_train_settings("sft", {**SFT_DEFAULTS, **v})


# DPO on the labelled pairs (the cheaper option the RL stage offers): TRL's defaults laid under
# the job file's (the paper trains a preference model and then the policy with RL against it).
DPO_DEFAULTS: dict[str, Any] = {"beta": 0.1}


class ConstitutionalRLConfig(CAIConfig):
    method: Literal["constitutional_rl"] = Field(
        "constitutional_rl",
        description="Constitutional AI, RL stage (RL-CAI; Bai et al. 2022): AI feedback labels.",
    )
    iterations: int = Field(1, ge=1, description="Iterations (paper: one labelling pass).")
    feedback_model: str | None = Field(
        None,
        description="The feedback model that labels pairs (a named model, folder or hub id). "
        "Null: the policy model itself (the paper: a pretrained language model).",
    )
    pairs: str | None = Field(
        None,
        description="Label these preference rows (prompt, chosen, rejected; e.g. an SL-CAI "
        "run's iter_0/preferences) instead of sampling pairs, and report how often the feedback "
        "model agrees with their order.",
    )
    response_sampling: SamplingConfig = Field(
        default_factory=lambda: SamplingConfig(temperature=1.0, top_p=1.0, max_tokens=256, seed=0),
        description="How the policy samples the two responses of a pair (temperature 1.0).",
    )
    principles_per_pair: int = Field(
        1,
        ge=1,
        le=16,
        description="Principles sampled per pair, their labels averaged (paper: one, sampled "
        "at random; more is the ensembling it reports as more robust).",
    )
    both_orders: bool = Field(
        False,
        description="Ask with the responses in both orders and average, cancelling position "
        "bias (ours; the paper asks once).",
    )
    train: Literal["dpo", "reward", "none"] = Field(
        "dpo",
        description="What the labelled pairs train: dpo (DPO of the policy on them, chosen = "
        "the response the feedback model prefers: the cheaper option, M_{t+1}), reward (the "
        "paper's preference model: a reward model on the soft labels, `loss: soft_pairwise`, "
        "the policy unchanged) or none (labels only). RL of the policy against the preference "
        "model (the paper's last step) is not built yet.",
    )
    dpo: dict[str, Any] = Field(
        default_factory=lambda: dict(DPO_DEFAULTS),
        description="Settings of the DPO (fields of `method: dpo`; the reference is the policy).",
    )
    reward: dict[str, Any] = Field(
        default_factory=dict,
        description="Settings of the preference model (fields of `method: reward`; the loss is "
        "soft_pairwise, its base the policy model).",
    )

    @field_validator("dpo")
    @classmethod
    def _dpo(cls, v: dict[str, Any]) -> dict[str, Any]:
        return check_train_settings("dpo", {**DPO_DEFAULTS, **v})

    @field_validator("reward")
    @classmethod
    def _reward(cls, v: dict[str, Any]) -> dict[str, Any]:
        if "loss" in v:
            raise ValueError("loss is set by the job (soft_pairwise)")
        return check_train_settings("reward", {**v, "loss": "soft_pairwise"})
