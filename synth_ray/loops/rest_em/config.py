"""``method: rest_em``: the config (the paper's defaults, deviations as named options)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from synth_ray.config import StrictModel
from synth_ray.engines.base import SamplingConfig
from synth_ray.loops.base import LoopConfig, check_train_settings
from synth_ray.stages.verify.stage import VerifyStageConfig

# The M-step's settings: the paper fine-tuned PaLM 2 through Google Cloud's tuning API and gives
# no learning rate; the SFT trainer's own defaults are used, laid under the job file's.
SFT_DEFAULTS: dict[str, Any] = {}


class GeneratedProblems(StrictModel):
    generator: str = Field(
        "arithmetic", description="Problem generator of synth_ray.stages.problems."
    )
    count: int = Field(
        1000, ge=1, description="Problems generated (training and held-out split together)."
    )
    seed: int = Field(0, description="Seed of the generator.")
    difficulties: list[int] | None = Field(
        None, description="Difficulty levels taken in turn (null: all of the generator's)."
    )


class RestEMConfig(LoopConfig):
    method: Literal["rest_em"] = Field(
        "rest_em", description="ReST-EM, self-training on verified samples (Singh et al. 2023)."
    )
    iterations: int = Field(3, ge=1, description="EM iterations (paper: up to 3 on MATH).")
    problems: str | None = Field(
        None,
        description="JSONL (optionally compressed) of problems: GSM8K (question, answer with "
        "'#### n'), the generators' rows (question, answer), MATH (problem, solution), "
        "HumanEval (task_id, prompt, entry_point, test) or MBPP (text, test_list). Null: "
        "problems from the generator (`generate`).",
    )
    generate: GeneratedProblems = Field(
        default_factory=GeneratedProblems,
        description="Problems generated when `problems` is null (ours: the paper used MATH "
        "and APPS).",
    )
    max_problems: int | None = Field(
        None, ge=1, description="Use at most this many training problems (in file order)."
    )
    heldout: int = Field(
        100,
        ge=0,
        description="Problems held out of training (the first by content hash), on which "
        "pass@1 and pass@k are measured for M_0 and after every iteration.",
    )
    verifier: Literal["math", "code"] = Field(
        "math", description="Binary reward: math (final answer) or code (tests in the sandbox)."
    )
    verify: dict[str, Any] = Field(
        default_factory=dict,
        description="Settings of the verify stage (fields of VerifyStageConfig but verifier "
        "and output_field, which the loop sets): math, code, batch_size, concurrency.",
    )
    samples: int = Field(
        32, ge=1, le=64, description="Samples per problem in the E-step (paper: 32 for MATH)."
    )
    sampling: SamplingConfig = Field(
        default_factory=lambda: SamplingConfig(temperature=0.7, top_p=1.0, max_tokens=512, seed=0),
        description="How M_t samples solutions (paper: temperature 0.7 with top-K 40; top-K is "
        "not an engine setting here: plain temperature sampling).",
    )
    max_per_problem: int = Field(
        10,
        ge=1,
        description="At most this many correct solutions kept per problem (paper and reference "
        "implementations: 10), the first by sample index.",
    )
    include_reference_solutions: bool = Field(
        False,
        description="Add each training problem's own worked solution (GSM8K/generator answer, "
        "MATH solution, HumanEval canonical solution) as a sample; it is verified like the "
        "model's and, when correct, kept (ours; the paper trains on model samples only).",
    )
    eval_samples: int = Field(
        16, ge=1, le=64, description="Samples per held-out problem for pass@k (ours)."
    )
    pass_k: int = Field(8, ge=1, description="k of the pass@k figure (unbiased estimator).")
    evaluation_sampling: SamplingConfig = Field(
        default_factory=lambda: SamplingConfig(temperature=0.7, top_p=1.0, max_tokens=512, seed=1),
        description="How held-out problems are sampled for pass@1/pass@k.",
    )
    sft: dict[str, Any] = Field(
        default_factory=lambda: dict(SFT_DEFAULTS),
        description="Settings of the M-step (fields of `method: sft`); its base is always the "
        "base model (`model`), never M_t (paper).",
    )

    @field_validator("sft")
    @classmethod
    def _sft(cls, v: dict[str, Any]) -> dict[str, Any]:
        return check_train_settings("sft", {**SFT_DEFAULTS, **v})

    @field_validator("verify")
    @classmethod
    def _verify(cls, v: dict[str, Any]) -> dict[str, Any]:
        for key in ("verifier", "output_field"):
            if key in v:
                raise ValueError(f"verify.{key} is set by the loop")
        VerifyStageConfig.model_validate(v)
        return v

    @model_validator(mode="after")
    def _k(self) -> RestEMConfig:
        if self.pass_k > self.eval_samples:
            raise ValueError(f"pass_k ({self.pass_k}) > eval_samples ({self.eval_samples})")
        return self

    def verify_config(self) -> VerifyStageConfig:
        return VerifyStageConfig.model_validate(
            {**self.verify, "verifier": self.verifier, "output_field": "output"}
        )
