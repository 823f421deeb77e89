"""One module per survey method. Importing this package registers the built-in methods."""

from synth_ray.methods.base import METHODS, JobConfig, JobContext, Method

from synth_ray.methods import wrap as _wrap  # noqa: F401,E402  (registers "wrap")

__all__ = ["METHODS", "JobConfig", "JobContext", "Method"]
