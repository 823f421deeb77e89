"""``method: pretrain`` config: continued pretraining (causal LM) on text, e.g. WRAP's 1:1 mix of
real and rephrased web text (survey, "Synthetic data for pretraining")."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from synth_ray.job import JobConfig
from synth_ray.train.base import TrainCommon


class PretrainJobConfig(TrainCommon, JobConfig):
    method: Literal["pretrain"] = Field(
        "pretrain", description="Continued pretraining (causal LM)."
    )
    text_field: str = Field("text", description="Column holding the text (WRAP's mix: text).")
    learning_rate: float = Field(1e-4, gt=0, description="Peak learning rate (ours).")
    epochs: float = Field(1.0, gt=0, description="Passes over the text.")
