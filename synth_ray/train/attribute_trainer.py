"""SteerLM's attribute prediction model on Ray Train (survey, "SteerLM"; Dong et al. 2023).

Rows (``synth_ray.io.rows`` kind ``attributes``): a prompt, a response and its scores on named
attributes (quality, helpfulness, humor, toxicity, ... any names; a response need not be rated on
all of them). The model is ``AutoModelForSequenceClassification`` with one output per attribute
and ``problem_type: regression``, read at the last real token of prompt + response in the chat
template (the reward model's tokens), trained with the mean squared error over the rated
attributes only (``synth_ray.train.losses.masked_mse_loss``). The attribute names are in the
saved config (``id2label``), so the folder alone says what each output is.

Deviation, named: the paper's APM is a language model writing the attribute string token by
token (``L_APM = -sum_t log P(v_t | x, y, v_<t)``); the regression head predicts all attributes
in one forward pass and gives real-valued scores (rounded when written into prompts).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from synth_ray.job import JOBS, JobContext
from synth_ray.train.attribute_config import AttributeJobConfig
from synth_ray.train.base import TrainMethod


def _attribute_trainer_cls():
    from transformers import Trainer

    from synth_ray.train.losses import masked_mse_loss

    class AttributeTrainer(Trainer):
        """Masked multi-output MSE (batch: input_ids, attention_mask, targets, target_mask)."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            targets, mask = inputs.pop("targets"), inputs.pop("target_mask")
            outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
            loss = masked_mse_loss(outputs.logits, targets, mask)
            return (loss, outputs) if return_outputs else loss

    return AttributeTrainer


def attribute_loop(config: dict[str, Any]) -> None:
    """Ray Train worker: the regression head trained on this worker's shard."""
    import torch
    from ray.train.huggingface.transformers import prepare_trainer
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainingArguments

    from synth_ray.train import hf_worker as W
    from synth_ray.train import pref_data as P

    ctx = W.setup_worker(config)
    rank = ctx.get_world_rank()
    names = list(config["attribute_names"])
    tok = AutoTokenizer.from_pretrained(config["model"])
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForSequenceClassification.from_pretrained(
        config["model"],
        num_labels=len(names),
        problem_type="regression",
        id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)},
        dtype=torch.float32,
    )
    model.config.pad_token_id = tok.pad_token_id  # outputs read at the last non-pad token
    work = W.workdir()
    trainer = _attribute_trainer_cls()(
        model=model,
        args=TrainingArguments(**W.training_args_common(config, work)),
        train_dataset=W.placeholder_dataset(),
        processing_class=tok,
        callbacks=W.callbacks(config, rank),
    )
    trainer.train_dataset = P.shard_batches(config, P.attributes_collate, tok.pad_token_id)
    trainer = prepare_trainer(trainer)
    W.train_and_report(trainer, tok, rank, work, W.resume_checkpoint(work))


def attribute_names(config: AttributeJobConfig) -> list[str]:
    """The configured attributes, or every name rated in the input (sorted)."""
    if config.attributes:
        return list(config.attributes)
    from synth_ray.train.data import read_training_rows_local

    rows, _ = read_training_rows_local(config.input, "attributes")
    return sorted({n for r in rows for n in r["names"]})


@JOBS.register("attributes")
class Attributes(TrainMethod):
    """SteerLM attribute prediction model: multi-output regression on Ray Train."""

    config_cls = AttributeJobConfig

    def preflight(self, config: AttributeJobConfig) -> None:  # type: ignore[override]
        from synth_ray.config import ConfigError

        super().preflight(config)
        if not attribute_names(config):
            raise ConfigError(f"field 'input': no rated attribute in {config.input}")

    def run(self, ctx: JobContext) -> None:
        from synth_ray.train import pref_data as P
        from synth_ray.train.runner import run_trainer

        names = attribute_names(ctx.config)
        ctx.record.extra["attributes"] = names
        run_trainer(
            ctx,
            attribute_loop,
            kind="attributes",
            tokenize=partial(P.tokenize_attributes, names=names),
            columns=("input_ids", "targets", "target_mask"),
            extra_loop_config={"attribute_names": names},
            rows_kind="attributes",
        )
