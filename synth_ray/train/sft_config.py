"""``method: sft`` config: supervised finetuning on instruction data (survey: instruction tuning
on synthetic data, e.g. Alpaca, Self-Instruct, Unnatural Instructions outputs)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from synth_ray.job import JobConfig
from synth_ray.train.base import TrainCommon


class SFTJobConfig(TrainCommon, JobConfig):
    method: Literal["sft"] = Field("sft", description="Supervised finetuning (TRL SFTTrainer).")
    learning_rate: float = Field(2e-5, gt=0, description="Peak learning rate (Alpaca: 2e-5).")
    epochs: float = Field(3.0, gt=0, description="Passes over the data (Alpaca: 3).")
