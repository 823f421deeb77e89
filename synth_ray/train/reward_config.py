"""``method: reward`` config: a reward model (a scalar-output sequence classifier) trained on
preference data: pairs (Bradley-Terry, TRL's RewardTrainer) or K-wise rankings (Plackett-Luce,
as Starling-7B's reward model; survey, "Distillation techniques")."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from synth_ray.job import JobConfig
from synth_ray.train.base import TrainCommon


class RewardJobConfig(TrainCommon, JobConfig):
    method: Literal["reward"] = Field("reward", description="Reward model (TRL RewardTrainer).")
    loss: Literal["pairwise", "kwise", "soft_pairwise"] = Field(
        "pairwise",
        description="pairwise: rows prompt/chosen/rejected, Bradley-Terry loss (TRL's). "
        "kwise: rows prompt/responses (list, best first), Plackett-Luce loss (Starling). "
        "soft_pairwise: pairwise rows with a soft label (label, or score_chosen: P(chosen is "
        "better)), Bradley-Terry cross-entropy against it (Constitutional AI's preference "
        "model).",
    )
    learning_rate: float = Field(
        1e-5, gt=0, description="Peak learning rate (InstructGPT RM: ~9e-6)."
    )
    epochs: float = Field(
        1.0, gt=0, description="Passes over the data (InstructGPT RM: 1; more overfits)."
    )
    center_rewards_coefficient: float | None = Field(
        None,
        ge=0,
        description="Pairwise only: TRL's penalty on (chosen+rejected)^2 keeping rewards "
        "centred at 0 (Eisenstein et al. suggest 0.01). None: off.",
    )
