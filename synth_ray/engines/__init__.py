"""Generation engines: one interface, chosen by ``engine.type`` in the job config.

Importing this package registers the built-in engines (``vllm``, ``openai``).
"""

from synth_ray.engines import openai_engine as _openai_engine  # noqa: F401  (registers "openai")
from synth_ray.engines import vllm_engine as _vllm_engine  # noqa: F401  (registers "vllm")
from synth_ray.engines.base import (
    ENGINES,
    Engine,
    EngineConfig,
    EngineSpec,
    SamplingConfig,
    build_engine,
)

__all__ = ["ENGINES", "Engine", "EngineConfig", "EngineSpec", "SamplingConfig", "build_engine"]
