"""``method: spin``: the config (the paper's defaults, deviations as named options)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from synth_ray.engines.base import SamplingConfig
from synth_ray.loops.base import LoopConfig, check_train_settings

# The reference implementation's training settings (configs/config*.yaml of Chen et al.'s
# repository): beta 0.1, learning rate 5e-7, linear decay, 0.1 warm-up, 3 epochs, 1,024 tokens.
DPO_DEFAULTS: dict[str, Any] = {
    "beta": 0.1,
    "learning_rate": 5e-7,
    "warmup_ratio": 0.1,
    "epochs": 3.0,
    "max_length": 1024,
}


class SpinConfig(LoopConfig):
    method: Literal["spin"] = Field("spin", description="SPIN, Self-Play fIne-tuNing (Chen 2024).")
    iterations: int = Field(3, ge=1, description="Iterations (paper: 3; gains taper after 4).")
    data: str | None = Field(
        None,
        description="The SFT dataset: JSONL/Parquet of instruction/input/output or messages rows "
        "(prompt x, human response y). Null: the shipped Self-Instruct seed instances (the "
        "paper: 50k UltraChat-200k conversations).",
    )
    max_prompts: int | None = Field(
        None, ge=1, description="Use at most this many (prompt, response) pairs (in file order)."
    )
    heldout: int = Field(
        16,
        ge=0,
        description="Prompts held out of training, answered greedily by M_t and M_{t+1} in the "
        "evaluate stage and scored by ROUGE-L against their dataset response (ours).",
    )
    response_sampling: SamplingConfig = Field(
        default_factory=lambda: SamplingConfig(temperature=1.0, top_p=1.0, max_tokens=256, seed=0),
        description="How M_t answers the prompts (reference implementation: temperature 1.0, "
        "top_p 1.0, 256 new tokens).",
    )
    mix_previous: bool = Field(
        True,
        description="From iteration 1 on, train on the previous iteration's pairs as well as "
        "this one's (the reference configurations: iteration t on the data of t and t-1).",
    )
    dpo: dict[str, Any] = Field(
        default_factory=lambda: dict(DPO_DEFAULTS),
        description="Settings of the SPIN step (fields of `method: dpo`; beta is SPIN's lambda; "
        "the reference model is M_t, set by the loop).",
    )
    evaluation_sampling: SamplingConfig = Field(
        default_factory=lambda: SamplingConfig(temperature=0.0, max_tokens=256, seed=0),
        description="How M_t and M_{t+1} answer the held-out prompts (greedy).",
    )

    @field_validator("dpo")
    @classmethod
    def _dpo(cls, v: dict[str, Any]) -> dict[str, Any]:
        return check_train_settings("dpo", {**DPO_DEFAULTS, **v})
