"""What the generation methods share on top of the job contract (``synth_ray.job``): the rounds
jobs' fields and the instruction jobs' last step (judge, then the dataset)."""

from __future__ import annotations

from pydantic import Field

from synth_ray.job import GenerationJobConfig, JobContext
from synth_ray.stages.judge import JudgeStageConfig, judge_rows
from synth_ray.stages.prompt import PROMPT_FORMAT_HELP, PromptFormat
from synth_ray.stages.records import write_dataset


class RoundsJobConfig(GenerationJobConfig):
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
