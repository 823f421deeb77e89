"""``method: dpo`` config: Direct Preference Optimization (Rafailov et al. 2023) on preference
rows prompt/chosen/rejected, with TRL's DPOTrainer. Also SPIN (see ``dpo_trainer``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from synth_ray.job import JobConfig
from synth_ray.train.base import TrainCommon


class DPOJobConfig(TrainCommon, JobConfig):
    method: Literal["dpo"] = Field(
        "dpo", description="DPO (TRL DPOTrainer); SPIN is DPO, see dpo_trainer."
    )
    beta: float = Field(
        0.1, gt=0, description="KL strength beta (DPO paper / TRL default 0.1; SPIN's lambda)."
    )
    loss_type: str = Field(
        "sigmoid",
        description="TRL DPOConfig.loss_type: sigmoid (DPO, SPIN), hinge, ipo, robust, ... "
        "(any value TRL 1.16 accepts).",
    )
    ref_model: str | None = Field(
        None,
        description="Reference policy (same forms as `model`). None: a fresh copy of `model` "
        "(DPO: the SFT model; SPIN: the previous iteration).",
    )
    learning_rate: float = Field(
        5e-7,
        gt=0,
        description="Peak learning rate. 5e-7 is Zephyr's DPO value (Tunstall et al. "
        "2023) and the order of the DPO paper's 1e-6; SPIN used 5e-7 too.",
    )
    epochs: float = Field(1.0, gt=0, description="Passes over the data.")
    warmup_ratio: float = Field(
        0.1, ge=0, lt=1, description="Linear warm-up fraction (Zephyr: 0.1)."
    )
