"""One module per survey method. Importing this package registers the built-in methods."""

from synth_ray.methods import alpaca as _alpaca  # noqa: F401
from synth_ray.methods import self_instruct as _self_instruct  # noqa: F401
from synth_ray.methods import unnatural as _unnatural  # noqa: F401
from synth_ray.methods import wrap as _wrap  # noqa: F401  (registers "wrap")
from synth_ray.methods.base import METHODS, JobConfig, JobContext, Method

__all__ = ["METHODS", "JobConfig", "JobContext", "Method"]
