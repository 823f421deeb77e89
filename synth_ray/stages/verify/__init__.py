"""Verifiers (binary rewards for ReST-EM: survey, "Synthetic data for instruction-tuning") and
the sandbox that runs model-written code. ``build_verifier(name, config)``; ``verify_rows`` is the
Ray Data stage."""

from synth_ray.stages.verify import code_verifier, math_verifier  # noqa: F401 - registration
from synth_ray.stages.verify.base import VERIFIERS, Verdict, Verifier, build_verifier

__all__ = ["VERIFIERS", "Verdict", "Verifier", "build_verifier"]
