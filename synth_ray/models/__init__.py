"""Model resolution: `tiny` (built locally on demand), local folders, hub ids."""

from synth_ray.models.resolve import ModelNotFoundError, ResolvedModel, resolve_model

__all__ = ["ModelNotFoundError", "ResolvedModel", "resolve_model"]
