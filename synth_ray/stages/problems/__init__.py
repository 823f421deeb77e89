"""Generators of problems with checked answers (survey: AlphaGeometry's pattern; ReST-EM's
ground truth). ``generate_problems(name, n, seed=..., difficulties=...)``."""

from synth_ray.stages.problems import arithmetic  # noqa: F401 - registration
from synth_ray.stages.problems.base import (
    GENERATORS,
    Problem,
    ProblemGenerator,
    generate_problems,
    sft_row,
)

__all__ = ["GENERATORS", "Problem", "ProblemGenerator", "generate_problems", "sft_row"]
