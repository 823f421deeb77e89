"""DPO on Ray Train with TRL's ``DPOTrainer``: preference rows -> a policy closer to "chosen".

Rows prompt/chosen/rejected are tokenized in the chat template by a Ray Data stage
(``synth_ray.train.pref_data.tokenize_dpo``: ``prompt_ids``, ``chosen_ids``, ``rejected_ids``,
the columns TRL's own preparation makes) and streamed to ``scaling.num_workers`` workers. Each
worker runs TRL's ``DPOTrainer`` (its loss, ``loss_type`` and ``beta``; reference log-probs from a
frozen reference model, by default a fresh copy of ``model``), fed this worker's shard as padded
batches in TRL's collator format (``input_ids`` (2B, T), ``attention_mask``,
``completion_mask``). TRL 1.16's DPOTrainer has no flag to skip its dataset preparation (only
vision datasets skip it), so it is built on a one-row raw placeholder (which it tokenizes) and
then handed the real data, as in SFT.

SPIN (Chen et al. 2024; survey, "Self-improvement (aka non-distillation) techniques") is this
trainer: ``model`` = ``ref_model`` = the previous iteration's checkpoint, ``chosen`` = the real
(SFT data) response, ``rejected`` = that checkpoint's own generation for the prompt,
``loss_type: sigmoid`` and ``beta`` = SPIN's lambda. ``synth_ray.train.losses`` shows the two
objectives are the same function term by term; the next iteration regenerates the rejected
responses with the new model and uses it as both policy and reference.
"""

from __future__ import annotations

from typing import Any

from synth_ray.job import JOBS, JobContext
from synth_ray.train.base import TrainMethod
from synth_ray.train.dpo_config import DPOJobConfig


def dpo_loop(config: dict[str, Any]) -> None:
    """Ray Train worker: TRL DPOTrainer over this worker's shard, with a frozen reference."""
    import torch
    from datasets import Dataset
    from ray.train.huggingface.transformers import prepare_trainer
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from synth_ray.train import hf_worker as W
    from synth_ray.train import pref_data as P

    ctx = W.setup_worker(config)
    rank = ctx.get_world_rank()
    tok = AutoTokenizer.from_pretrained(config["model"])
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(config["model"], dtype=torch.float32)
    work = W.workdir()
    args = DPOConfig(
        **W.training_args_common(config, work),
        beta=float(config["beta"]),
        loss_type=config["loss_type"],
        max_length=None,
    )
    placeholder = Dataset.from_dict({"prompt": ["a"], "chosen": ["b"], "rejected": ["c"]})
    peft = W.peft_config(config)
    # With LoRA, TRL's reference is the base model with the adapters switched off.
    ref = (
        None
        if peft
        else AutoModelForCausalLM.from_pretrained(config["ref_model_source"], dtype=torch.float32)
    )
    trainer = DPOTrainer(
        model=model,
        ref_model=ref,
        args=args,
        train_dataset=placeholder,
        processing_class=tok,
        callbacks=W.callbacks(config, rank),
        peft_config=peft,
    )
    trainer.train_dataset = P.shard_batches(config, P.dpo_collate, tok.pad_token_id)
    trainer = prepare_trainer(trainer)
    W.train_and_report(trainer, tok, rank, work, W.resume_checkpoint(work))
    if rank == 0:  # TRL's logged DPO metrics, first and last, for the record
        logs = [h for h in trainer.state.log_history if "rewards/margins" in h]
        if logs:
            import json

            from synth_ray.io import fs

            keep = (
                "rewards/margins",
                "rewards/accuracies",
                "rewards/chosen",
                "rewards/rejected",
                "loss",
            )
            summary = {
                "first": {k: logs[0].get(k) for k in keep},
                "last": {k: logs[-1].get(k) for k in keep},
            }
            fs.write_bytes(config["dpo_metrics_path"], json.dumps(summary).encode())


@JOBS.register("dpo")
class DPO(TrainMethod):
    """DPO on preference rows (TRL DPOTrainer on Ray Train); SPIN is this trainer."""

    config_cls = DPOJobConfig

    def run(self, ctx: JobContext) -> None:
        from synth_ray.io import fs
        from synth_ray.models.resolve import resolve_model
        from synth_ray.train import pref_data as P
        from synth_ray.train.runner import run_trainer

        cfg = ctx.config
        ref = resolve_model(cfg.ref_model).source if cfg.ref_model else ctx.model.source
        run_trainer(
            ctx,
            dpo_loop,
            kind="dpo",
            tokenize=P.tokenize_dpo,
            columns=("prompt_ids", "chosen_ids", "rejected_ids"),
            rows_kind="pairwise",
            extra_loop_config={
                "ref_model_source": ref,
                "dpo_metrics_path": fs.join(ctx.layout.root, "dpo_metrics.json"),
            },
        )
