"""What every trainer shares: scaling, checkpoints, failures, and the final model.

A training job is a Ray Train ``TorchTrainer`` run: ``scaling.num_workers`` workers (DDP over
gloo on CPU, NCCL on GPU; DeepSpeed when ``deepspeed.enabled``), the data streamed to each worker
from Ray Data (``get_dataset_shard``), Hugging Face checkpoints reported to Ray Train under
``storage_path`` (local folder, s3:// or gs://) as they are saved, ``max_failures`` worker
failures survived by restarting from the latest checkpoint, and a rerun of the same job (same
``output_dir``) resuming from it too. The final model is written to ``OUTPUT_DIR/model/`` as a
Hugging Face folder (config, safetensors, tokenizer with its chat template).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from synth_ray.config import StrictModel
from synth_ray.io import fs
from synth_ray.job import Job
from synth_ray.train.deepspeed_config import DeepSpeedConfig


class Scaling(StrictModel):
    num_workers: int = Field(2, ge=1, description="Training workers (data-parallel ranks).")
    use_gpu: bool = Field(False, description="One GPU per worker (NCCL); false: CPU (gloo).")
    cpus_per_worker: float = Field(1.0, gt=0, description="CPUs reserved per worker.")
    resources_per_worker: dict[str, float] = Field(
        default_factory=dict,
        description="Extra resources per worker, e.g. {accelerator_type:A100: 0.001}.",
    )
    torch_threads: int | None = Field(
        1,
        ge=1,
        description="torch intra-op threads per worker (None: torch's default). One "
        "thread per worker keeps workers from competing for cores on a small node.",
    )


class Checkpointing(StrictModel):
    save_steps: int = Field(50, ge=1, description="Save (and report to Ray Train) every N steps.")
    keep: int = Field(2, ge=1, description="Checkpoints kept by Ray Train.")
    metric: str | None = Field(
        None,
        description="Keep the best checkpoints by this logged metric (e.g. loss) instead "
        "of the latest.",
    )
    mode: str = Field("min", pattern="^(min|max)$", description="min or max of `metric`.")


class Lora(StrictModel):
    enabled: bool = Field(False, description="Train LoRA adapters (peft) instead of all weights.")
    r: int = Field(16, ge=1, description="LoRA rank.")
    alpha: int = Field(32, ge=1, description="LoRA alpha (scaling = alpha / r).")
    dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout.")
    target_modules: list[str] | str = Field(
        "all-linear", description="Modules that get adapters (peft's 'all-linear', or names)."
    )

    def peft_config(self, task_type: str = "CAUSAL_LM"):
        """The peft ``LoraConfig`` (None when disabled)."""
        if not self.enabled:
            return None
        from peft import LoraConfig

        return LoraConfig(
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=self.target_modules,
            task_type=task_type,
        )


class TrainCommon(StrictModel):
    """Fields shared by the training job configs (mixed into each ``XConfig``)."""

    input: str = Field(
        description="Training data: a generation job's OUTPUT_DIR, its dataset/, an "
        "export (Alpaca JSON, chat JSONL), or Parquet/JSONL files."
    )
    scaling: Scaling = Field(default_factory=Scaling, description="Workers and their resources.")
    learning_rate: float = Field(2e-5, gt=0, description="Peak learning rate.")
    epochs: float = Field(1.0, gt=0, description="Passes over the data (ignored with max_steps).")
    max_steps: int | None = Field(None, ge=1, description="Optimizer steps (overrides epochs).")
    per_device_batch_size: int = Field(8, ge=1, description="Rows per worker per micro-step.")
    gradient_accumulation_steps: int = Field(1, ge=1, description="Micro-steps per optimizer step.")
    max_length: int = Field(1024, ge=8, description="Tokens per row (longer rows are truncated).")
    warmup_ratio: float = Field(0.0, ge=0, lt=1, description="Linear warm-up fraction.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    logging_steps: int = Field(10, ge=1, description="Log every N steps.")
    checkpoint: Checkpointing = Field(default_factory=Checkpointing, description="Checkpoints.")
    max_failures: int = Field(
        2, ge=0, description="Worker failures survived (restart from the latest checkpoint)."
    )
    storage_path: str | None = Field(
        None,
        description="Where Ray Train keeps checkpoints (local, s3://, gs://). Default: "
        "OUTPUT_DIR/train. A rerun with the same storage resumes.",
    )
    seed: int = Field(0, description="Training seed.")
    deepspeed: DeepSpeedConfig = Field(
        default_factory=DeepSpeedConfig,
        description="DeepSpeed ZeRO (stage, offload, bf16/fp16), passed to the trainer when "
        "enabled; checked against the device before any worker starts.",
    )
    lora: Lora = Field(
        default_factory=Lora, description="LoRA adapters (peft); merged into the output model."
    )
    fail_once_at_step: int | None = Field(
        None,
        ge=1,
        description="Testing: rank 0 raises once at this step (to exercise "
        "recovery from a worker failure). Leave unset.",
    )


class TrainMethod(Job):
    """Base of the training methods: checks that need no Ray run before anything starts."""

    kind = "train"

    def preflight(self, config: TrainCommon) -> None:  # type: ignore[override]
        if config.deepspeed.enabled:
            config.deepspeed.check_device(config.scaling.use_gpu)


def steps_for(n_rows: int, cfg: TrainCommon) -> int:
    """Optimizer steps for ``epochs`` over ``n_rows`` rows split across the workers."""
    if cfg.max_steps:
        return cfg.max_steps
    per_step = cfg.scaling.num_workers * cfg.per_device_batch_size * cfg.gradient_accumulation_steps
    return max(1, int(-(-n_rows * cfg.epochs // per_step)))


def run_config(cfg: TrainCommon, output_dir: str, name: str):
    import ray.train

    storage = cfg.storage_path or fs.join(output_dir, "train")
    c = cfg.checkpoint
    return ray.train.RunConfig(
        name=name,
        storage_path=storage,
        checkpoint_config=ray.train.CheckpointConfig(
            num_to_keep=c.keep,
            checkpoint_score_attribute=c.metric,
            checkpoint_score_order=c.mode if c.metric else "max",
        ),
        failure_config=ray.train.FailureConfig(max_failures=cfg.max_failures),
    )


def scaling_config(cfg: TrainCommon):
    import ray.train

    s = cfg.scaling
    resources: dict[str, Any] = {"CPU": s.cpus_per_worker, **s.resources_per_worker}
    return ray.train.ScalingConfig(
        num_workers=s.num_workers, use_gpu=s.use_gpu, resources_per_worker=resources
    )


def copy_model(checkpoint_dir: str, output_dir: str, subdir: str = "model") -> str:
    """Copy the final Hugging Face folder out of a Ray checkpoint to ``OUTPUT_DIR/model``."""
    import os

    target = fs.join(output_dir, subdir)
    fs.makedirs(target)
    for old in fs.list_files(target):
        fs.delete_file(old)
    for name in sorted(os.listdir(checkpoint_dir)):
        src = os.path.join(checkpoint_dir, name)
        if os.path.isfile(src):
            with open(src, "rb") as f:
                fs.write_bytes(fs.join(target, name), f.read())
    return target
