"""SFT on Ray Train with TRL's ``SFTTrainer``: the instruction jobs' outputs -> a chat model.

Rows (Alpaca fields or ``messages``) are tokenized in the model's chat template by a Ray Data
stage, the prompt's tokens masked out of the loss, and streamed to ``scaling.num_workers``
workers; each runs TRL's ``SFTTrainer`` (its loss, optimizer and schedule; its own dataset
preparation is skipped because the rows arrive tokenized) under DDP, or DeepSpeed when
``deepspeed.enabled``. TRL 1.16 only accepts Hugging Face datasets in its constructor, so the
trainer is built on a one-row placeholder and then handed this worker's Ray Data iterable, the
way Ray's ``prepare_trainer`` feeds it (a plain DataLoader over the shard: no second sharding
by accelerate, which would drop half of each worker's rows). See ``synth_ray.train.base`` for checkpoints, failures and the output.
"""

from __future__ import annotations

from typing import Any

from synth_ray.job import JOBS, JobContext
from synth_ray.train.base import TrainMethod
from synth_ray.train.sft_config import SFTJobConfig


def sft_loop(config: dict[str, Any]) -> None:
    """Ray Train worker: TRL SFTTrainer over this worker's shard."""
    import torch
    from ray.train.huggingface.transformers import prepare_trainer
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from synth_ray.train import hf_worker as W

    ctx = W.setup_worker(config)
    rank = ctx.get_world_rank()
    tok = AutoTokenizer.from_pretrained(config["model"])
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    model = AutoModelForCausalLM.from_pretrained(config["model"], dtype=torch.float32)
    work = W.workdir()
    args = SFTConfig(
        **W.training_args_common(config, work), dataset_kwargs={"skip_prepare_dataset": True}
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=W.placeholder_dataset(),
        processing_class=tok,
        callbacks=W.callbacks(config, rank),
        peft_config=W.peft_config(config),
    )
    trainer.train_dataset = W.shard_batches(config, pad_id)
    trainer = prepare_trainer(trainer)
    W.train_and_report(trainer, tok, rank, work, W.resume_checkpoint(work))


@JOBS.register("sft")
class SFT(TrainMethod):
    """Supervised finetuning on instruction rows (TRL SFTTrainer on Ray Train)."""

    config_cls = SFTJobConfig

    def run(self, ctx: JobContext) -> None:
        from synth_ray.train.runner import run_trainer

        run_trainer(ctx, sft_loop, kind="sft")
