"""Reward models on Ray Train: preference data -> a scalar-output sequence classifier.

``loss: pairwise`` (rows prompt/chosen/rejected): TRL's ``RewardTrainer`` and its
Bradley-Terry loss ``-logsigmoid(r(chosen) - r(rejected))`` on
``AutoModelForSequenceClassification(num_labels=1)`` (InstructGPT's reward model recipe).

``loss: kwise`` (rows prompt/responses, best first): the same trainer with its ``compute_loss``
replaced by the K-wise Plackett-Luce MLE (``synth_ray.train.losses.plackett_luce_loss``), as
Starling-7B's reward model was trained on GPT-4 rankings of K=7 responses (survey,
"Distillation techniques"); with K=2 it is the pairwise loss.

``loss: soft_pairwise`` (pairwise rows with a soft ``label``, or ``score_chosen``): the same
trainer with the Bradley-Terry cross-entropy against the label
(``synth_ray.train.losses.soft_bradley_terry_loss``), as Constitutional AI's preference model
was trained on the feedback model's normalised (A)/(B) probabilities (survey, "Constitutional
AI"; the RL-CAI job's preference rows carry them as ``score_chosen``).

As in SFT, rows are tokenized in the chat template by a Ray Data stage
(``synth_ray.train.pref_data``), TRL's dataset preparation is skipped (it recognises already
tokenized ``chosen_ids``/``rejected_ids`` on the one-row placeholder), and each worker's Ray
Data shard is handed to the trainer as padded batches. The output ``OUTPUT_DIR/model/`` loads
with ``AutoModelForSequenceClassification`` (one score; ``pad_token_id`` set in its config so the
score is read at the last real token) and ``AutoTokenizer``.
"""

from __future__ import annotations

from typing import Any

from synth_ray.job import JOBS, JobContext
from synth_ray.train.base import TrainMethod
from synth_ray.train.reward_config import RewardJobConfig


def _forward_scores(trainer, model, inputs):
    """(train or eval, the model's outputs, one score per row of ``input_ids``): the forward
    pass both custom losses share."""
    outputs = model(
        input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], use_cache=False
    )
    return ("train" if trainer.model.training else "eval"), outputs, outputs.logits.squeeze(-1)


def _log_accuracy(trainer, mode: str, acc) -> None:
    """The accuracy metric as TRL's RewardTrainer logs it (gathered across ranks)."""
    trainer._metrics[mode]["accuracy"].append(
        trainer.accelerator.gather_for_metrics(acc).mean().item()
    )


def _kwise_trainer_cls():
    import torch
    from trl import RewardTrainer

    from synth_ray.train.losses import plackett_luce_loss

    class KwiseRewardTrainer(RewardTrainer):
        """RewardTrainer with the Plackett-Luce loss over (B, K) scores (batch: input_ids
        (B*K, T), attention_mask, lengths (B,); see ``pref_data.kwise_collate``)."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            lengths = inputs.pop("lengths")
            mode, outputs, flat = _forward_scores(self, model, inputs)
            scores = flat.view(lengths.shape[0], -1)
            loss = plackett_luce_loss(scores, lengths)
            with torch.no_grad():
                k = scores.shape[1]
                idx = torch.arange(k, device=scores.device)
                valid = idx.unsqueeze(0) < lengths.unsqueeze(1)
                # every ranked pair (i better than j, i < j < K_b): fraction scored in that order
                pair = (
                    (idx.view(1, k, 1) < idx.view(1, 1, k))
                    & valid.unsqueeze(2)
                    & valid.unsqueeze(1)
                )
                right = (scores.unsqueeze(2) > scores.unsqueeze(1)) & pair
                _log_accuracy(self, mode, right.sum().float() / pair.sum().clamp_min(1).float())
                valid_scores = scores[valid]
                self._metrics[mode]["mean_reward"].append(valid_scores.mean().item())
            return (loss, outputs) if return_outputs else loss

    return KwiseRewardTrainer


def _soft_trainer_cls():
    import torch
    from trl import RewardTrainer

    from synth_ray.train.losses import soft_bradley_terry_loss

    class SoftRewardTrainer(RewardTrainer):
        """RewardTrainer with the soft-label Bradley-Terry loss (batch: input_ids (2B, T),
        chosen rows first, attention_mask, soft_labels (B,); see ``pref_data.reward_collate``)."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs.pop("soft_labels")
            mode, outputs, flat = _forward_scores(self, model, inputs)
            chosen, rejected = flat.chunk(2)
            loss = soft_bradley_terry_loss(chosen, rejected, labels)
            with torch.no_grad():
                _log_accuracy(self, mode, (chosen > rejected).float().mean())
                self._metrics[mode]["mean_label"].append(labels.mean().item())
            return (loss, outputs) if return_outputs else loss

    return SoftRewardTrainer


def reward_loop(config: dict[str, Any]) -> None:
    """Ray Train worker: TRL RewardTrainer (pairwise) or its Plackett-Luce variant (kwise)."""
    import torch
    from datasets import Dataset
    from ray.train.huggingface.transformers import prepare_trainer
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    from synth_ray.train import hf_worker as W
    from synth_ray.train import pref_data as P

    ctx = W.setup_worker(config)
    rank = ctx.get_world_rank()
    tok = AutoTokenizer.from_pretrained(config["model"])
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForSequenceClassification.from_pretrained(
        config["model"], num_labels=1, dtype=torch.float32
    )
    model.config.pad_token_id = tok.pad_token_id  # the score is read at the last non-pad token
    work = W.workdir()
    kwise = config["loss"] == "kwise"
    args = RewardConfig(
        **W.training_args_common(config, work),
        max_length=None,
        center_rewards_coefficient=config.get("center_rewards_coefficient")
        if config["loss"] == "pairwise"
        else None,
    )
    soft = config["loss"] == "soft_pairwise"
    cls = _kwise_trainer_cls() if kwise else _soft_trainer_cls() if soft else RewardTrainer
    placeholder = Dataset.from_dict(
        {"chosen_ids": [[0]], "rejected_ids": [[0]]}
    )  # already tokenized
    trainer = cls(
        model=model,
        args=args,
        train_dataset=placeholder,
        processing_class=tok,
        callbacks=W.callbacks(config, rank),
    )
    collate = P.kwise_collate if kwise else P.reward_collate
    trainer.train_dataset = P.shard_batches(config, collate, tok.pad_token_id)
    trainer = prepare_trainer(trainer)
    W.train_and_report(trainer, tok, rank, work, W.resume_checkpoint(work))


@JOBS.register("reward")
class Reward(TrainMethod):
    """Reward model: pairwise Bradley-Terry or k-wise Plackett-Luce on Ray Train."""

    config_cls = RewardJobConfig

    def run(self, ctx: JobContext) -> None:
        from synth_ray.train import pref_data as P
        from synth_ray.train.runner import run_trainer

        if ctx.config.loss == "kwise":
            run_trainer(
                ctx,
                reward_loop,
                kind="reward",
                tokenize=P.tokenize_reward_kwise,
                columns=("response_ids",),
                rows_kind="kwise",
            )
        else:
            soft = ctx.config.loss == "soft_pairwise"
            run_trainer(
                ctx,
                reward_loop,
                kind="reward",
                tokenize=P.tokenize_reward_pairs,
                columns=("chosen_ids", "rejected_ids") + (("label",) if soft else ()),
                rows_kind="soft_pairwise" if soft else "pairwise",
            )
