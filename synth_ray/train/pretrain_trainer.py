"""Continued pretraining on Ray Train: plain text (WRAP's mix) -> causal-LM windows of
``max_length`` tokens, every token learned, through the same worker as SFT (TRL's SFTTrainer
with rows that arrive tokenized; labels = input_ids)."""

from __future__ import annotations

from synth_ray.job import JOBS, JobContext
from synth_ray.train.base import TrainMethod
from synth_ray.train.data import tokenize_text
from synth_ray.train.pretrain_config import PretrainJobConfig
from synth_ray.train.sft_trainer import sft_loop


@JOBS.register("pretrain")
class Pretrain(TrainMethod):
    """Continued pretraining on text (WRAP mix/) on Ray Train."""

    config_cls = PretrainJobConfig

    def run(self, ctx: JobContext) -> None:
        from synth_ray.train.runner import run_trainer

        # The reader takes the input's ``text_field`` into canonical ``text`` rows.
        run_trainer(ctx, sft_loop, kind="pretrain", tokenize=tokenize_text, rows_kind="text")
