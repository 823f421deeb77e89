"""The inside of a Ray Train worker running a Hugging Face / TRL trainer.

Shared by the trainers: torch threads, the Ray Data shard as padded batches, Hugging Face
checkpoints reported to Ray Train as they are saved (``RayTrainReportCallback``), resume from the
latest Ray checkpoint after a failure or on a rerun, the testing hook that fails once, and the
final model reported as the run's last checkpoint (rank 0 writes it; every rank reports).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from functools import partial
from typing import Any

FINAL_MARKER = "synth_ray_final_model"


def setup_worker(config: dict[str, Any]):
    """Thread count, seeds; returns the Ray Train context."""
    import ray.train
    import torch

    if config.get("torch_threads"):
        torch.set_num_threads(int(config["torch_threads"]))
    torch.manual_seed(int(config.get("seed", 0)))
    return ray.train.get_context()


def shard_batches(config: dict[str, Any], pad_id: int):
    """This worker's share of the ``train`` dataset as padded torch batches (re-iterable)."""
    import ray.train

    from synth_ray.train.data import pad_collate

    shard = ray.train.get_dataset_shard("train")
    return shard.iter_torch_batches(
        batch_size=int(config["per_device_batch_size"]),
        collate_fn=partial(pad_collate, pad_id=pad_id),
    )


def peft_config(config: dict[str, Any], task_type: str = "CAUSAL_LM"):
    """The LoRA config of the job (None when LoRA is off)."""
    from synth_ray.train.base import Lora

    return Lora.model_validate(config.get("lora") or {}).peft_config(task_type)


def placeholder_dataset():
    """A one-row Hugging Face dataset for trainers whose constructor insists on one; the real
    data is this worker's Ray Data shard (see the trainers)."""
    from datasets import Dataset

    return Dataset.from_dict({"input_ids": [[0]], "labels": [[-100]]})


def resume_checkpoint(workdir: str) -> str | None:
    """The Hugging Face checkpoint inside the latest Ray checkpoint, copied to ``workdir``."""
    import ray.train

    ckpt = ray.train.get_checkpoint()
    if ckpt is None:
        return None
    with ckpt.as_directory() as d:
        src = os.path.join(d, "checkpoint")
        if not os.path.isdir(src):  # the final model of a finished run: nothing to resume
            return None
        dst = os.path.join(workdir, "resume")
        shutil.copytree(src, dst, dirs_exist_ok=True)
    return dst


def callbacks(config: dict[str, Any], rank: int) -> list:
    from ray.train.huggingface.transformers import RayTrainReportCallback

    cbs = [RayTrainReportCallback(), step_timer()]
    if config.get("fail_once_at_step") and rank == 0:
        cbs.append(_fail_once(int(config["fail_once_at_step"]), config["fail_marker"]))
    return cbs


def step_timer():
    """Wall time of each optimizer step (steady-state throughput, without start-up)."""
    import time

    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.ends: list[float] = []

        def on_step_end(self, args, state, control, **kwargs):
            self.ends.append(time.perf_counter())

        def steady_s_per_step(self) -> float | None:
            d = [b - a for a, b in zip(self.ends[2:], self.ends[3:])]  # skip warm-up steps
            return sorted(d)[len(d) // 2] if d else None

    return StepTimer()


def _fail_once(step: int, marker: str):
    from transformers import TrainerCallback

    from synth_ray.io import fs

    class FailOnce(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == step and not fs.exists(marker):
                fs.write_bytes(marker, b"failed once\n")
                raise RuntimeError(f"fail_once_at_step: injected failure at step {step}")

    return FailOnce()


def training_args_common(config: dict[str, Any], workdir: str) -> dict[str, Any]:
    """TrainingArguments fields every trainer sets the same way."""
    use_gpu = bool(config["use_gpu"])
    ds = config.get("deepspeed_dict")
    return dict(
        output_dir=workdir,
        max_steps=int(config["max_steps"]),
        per_device_train_batch_size=int(config["per_device_batch_size"]),
        gradient_accumulation_steps=int(config["gradient_accumulation_steps"]),
        learning_rate=float(config["learning_rate"]),
        warmup_steps=float(config["warmup_ratio"]),  # transformers 5: a float in [0, 1) is a ratio
        weight_decay=float(config["weight_decay"]),
        logging_steps=int(config["logging_steps"]),
        save_strategy="steps",
        save_steps=int(config["save_steps"]),
        save_total_limit=1,  # Ray Train keeps the history; each worker keeps only its newest
        report_to=[],
        use_cpu=not use_gpu,
        bf16=bool(ds and ds.get("bf16", {}).get("enabled")),
        fp16=bool(ds and ds.get("fp16", {}).get("enabled")),
        # DeepSpeed clips by its own gradient_clipping; HF insists both agree.
        max_grad_norm=float(ds.get("gradient_clipping") or 0.0) if ds else 1.0,
        seed=int(config.get("seed", 0)),
        deepspeed=ds,
        remove_unused_columns=False,
        disable_tqdm=True,
        ddp_find_unused_parameters=False,
    )


def train_and_report(trainer, tokenizer, rank: int, workdir: str, resume: str | None) -> None:
    """Train (resuming if asked), then report the final model as the last checkpoint."""
    import ray.train

    resumed_from = None
    if resume and os.path.exists(os.path.join(resume, "trainer_state.json")):
        import json

        with open(os.path.join(resume, "trainer_state.json")) as f:
            resumed_from = json.load(f).get("global_step")
    result = trainer.train(resume_from_checkpoint=resume)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    timer = next(
        (c for c in trainer.callback_handler.callbacks if hasattr(c, "steady_s_per_step")), None
    )
    metrics = {
        "final": 1,
        "global_step": trainer.state.global_step,
        "deepspeed": bool(getattr(trainer, "is_deepspeed_enabled", False)),
        "steady_s_per_step": timer.steady_s_per_step() if timer else None,
        "resumed_from_step": resumed_from,
        "train_loss": float(result.training_loss),
        "first_logged_loss": losses[0] if losses else None,
        "last_logged_loss": losses[-1] if losses else None,
    }
    final_dir = os.path.join(workdir, "final")
    model = trainer.accelerator.unwrap_model(trainer.model)
    if hasattr(model, "merge_and_unload"):  # LoRA: the output is the merged, plain model
        if rank == 0:
            model.merge_and_unload().save_pretrained(final_dir)
    else:
        trainer.save_model(final_dir)  # every rank: DeepSpeed ZeRO-3 gathers collectively
    checkpoint = None
    if rank == 0:
        tokenizer.save_pretrained(final_dir)
        open(os.path.join(final_dir, FINAL_MARKER), "w").close()
        checkpoint = ray.train.Checkpoint.from_directory(final_dir)
    ray.train.report(metrics, checkpoint=checkpoint)


def workdir() -> str:
    return tempfile.mkdtemp(prefix="synth-ray-train-")
