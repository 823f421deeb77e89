"""``method: attributes`` config: SteerLM's attribute prediction model (Dong et al. 2023), here a
multi-output regression head on a base model, trained on responses with attribute scores."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from synth_ray.job import JobConfig
from synth_ray.train.base import TrainCommon


class AttributeJobConfig(TrainCommon, JobConfig):
    method: Literal["attributes"] = Field(
        "attributes",
        description="Attribute prediction model (SteerLM): one regression output per attribute.",
    )
    attributes: list[str] | None = Field(
        None,
        min_length=1,
        description="The attributes predicted, in output order. Null: every name found in the "
        "data (sorted; the input is read once before training to find them).",
    )
    learning_rate: float = Field(1e-5, gt=0, description="Peak learning rate.")
    epochs: float = Field(1.0, gt=0, description="Passes over the data.")
