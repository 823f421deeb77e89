"""The ``deepspeed`` block of a training job: validated up front, rendered for Hugging Face.

Issue (training): "a ``deepspeed`` block (ZeRO stage 2/3, offload, bf16) that is passed to the
trainer on GPU clusters", DeepSpeed on CPU too (``deepspeed.initialize`` with ZeRO stage 1 and 2,
fp32, on DeepSpeed's CPU accelerator, was seen working here inside 2 Ray Train CPU workers), and
"a DeepSpeed config that cannot work (a bad stage, bf16 where the device has none, offload
options that conflict) is rejected with a clear message before workers start". The survey's
preference-tuning recipes (Starling's reward model in "Distillation techniques", SPIN in
"Self-improvement (aka non-distillation) techniques") train 7B models, which is where ZeRO-2/3
and offload matter.

Two levels of checks, both on the driver:

- the model validators (any config): ``stage`` in 0..3; not ``bf16`` and ``fp16`` together;
  ``offload_param`` only at stage 3 (ZeRO partitions and offloads parameters only at stage 3);
  no offload at stage 0 (offload is part of ZeRO); ``nvme_path`` exactly when something is
  offloaded to ``nvme``. Errors are pydantic errors located at the offending field.
- ``check_device(use_gpu, device_supports_bf16)`` (needs the scaling): bf16/fp16 on CPU (the CPU
  path is fp32 only: DeepSpeed's CPU accelerator was only seen working in fp32), bf16 on a GPU
  without it, and any offload on CPU.

Offload on CPU is rejected, not merely allowed: with DeepSpeed's CPU accelerator the
parameters and optimizer state already live in host memory, so ``cpu`` offload only adds copies
(and a DeepSpeedCPUAdam op build in every worker), and neither ``cpu`` nor ``nvme`` offload on the
CPU accelerator was tested here; failing on the driver beats failing inside the workers.

``to_dict()`` renders the JSON config for ``transformers.TrainingArguments(deepspeed=...)``.
Batch sizes default to ``"auto"``, which Hugging Face fills from ``per_device_train_batch_size``,
``gradient_accumulation_steps`` and the world size (explicit numbers must match those exactly, or
the Trainer stops at ``train()`` with a mismatch error). ``gradient_clipping``, ``bf16.enabled``
and ``fp16.enabled`` are written explicitly, so the ``TrainingArguments`` must agree with them:
pass ``training_args_kwargs()`` (``max_grad_norm``, ``bf16``, ``fp16``) to it.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from synth_ray.config import ConfigError, StrictModel

OffloadDevice = Literal["none", "cpu", "nvme"]
Auto = Literal["auto"]


class DeepSpeedConfig(StrictModel):
    """DeepSpeed ZeRO settings for the Hugging Face trainers run inside Ray Train workers."""

    enabled: bool = Field(
        False,
        description="Train with DeepSpeed instead of plain DDP (gloo on CPU, NCCL on GPU). The other "
        "fields are validated either way but used only when this is true.",
    )
    stage: int = Field(
        2,
        strict=True,
        description="ZeRO stage: 0 (plain data parallel), 1 (optimizer states partitioned), 2 (+ "
        "gradients), 3 (+ parameters). On CPU workers only stages 1 and 2 (fp32) were seen working.",
    )
    offload_optimizer: OffloadDevice = Field(
        "none",
        description="Offload optimizer states (and the optimizer step) to 'cpu' RAM or 'nvme' "
        "(needs nvme_path); stage 1, 2 or 3; GPU only.",
    )
    offload_param: OffloadDevice = Field(
        "none",
        description="Offload parameters to 'cpu' RAM or 'nvme' (needs nvme_path); stage 3 only "
        "(ZeRO partitions parameters only at stage 3); GPU only.",
    )
    nvme_path: str | None = Field(
        None,
        description="Local NVMe folder for 'nvme' offload (ZeRO-Infinity), on every worker node. "
        "Required when an offload is 'nvme', not allowed otherwise.",
    )
    bf16: bool = Field(
        False,
        description="bfloat16 mixed precision. GPU only, on GPUs with bf16 (Ampere and later); "
        "the CPU path is fp32.",
    )
    fp16: bool = Field(
        False,
        description="float16 mixed precision with dynamic loss scaling. GPU only; not with bf16.",
    )
    gradient_clipping: float | None = Field(
        1.0,
        ge=0.0,
        description="Clip gradients to this global norm; null or 0 disables clipping. Becomes the "
        "Trainer's max_grad_norm too (they must agree).",
    )
    extra: dict[str, Any] = Field(
        default_factory=dict,
        description="Raw DeepSpeed config keys merged last, recursively (mappings merged, other "
        "values replaced), e.g. {zero_optimization: {overlap_comm: true}}. Not validated here.",
    )

    @field_validator("stage")
    @classmethod
    def _stage_known(cls, v: int) -> int:
        if v not in (0, 1, 2, 3):
            raise ValueError(f"stage must be 0, 1, 2 or 3 (ZeRO stages), got {v}")
        return v

    @field_validator("nvme_path")
    @classmethod
    def _nvme_path_nonempty(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("nvme_path must be a non-empty folder path (or null)")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> DeepSpeedConfig:
        errors: list[tuple[str, str, Any]] = []
        if self.bf16 and self.fp16:
            msg = "bf16 and fp16 cannot both be true: pick one (bf16 where the GPU has it)"
            errors.append(("fp16", msg, self.fp16))
        if self.offload_param != "none" and self.stage != 3:
            msg = (
                f"offload_param={self.offload_param!r} needs stage 3 (ZeRO offloads parameters "
                f"only at stage 3), stage is {self.stage}"
            )
            errors.append(("offload_param", msg, self.offload_param))
        if self.offload_optimizer != "none" and self.stage == 0:
            msg = (
                f"offload_optimizer={self.offload_optimizer!r} needs ZeRO stage 1, 2 or 3, "
                "stage is 0"
            )
            errors.append(("offload_optimizer", msg, self.offload_optimizer))
        nvme = [f for f in ("offload_optimizer", "offload_param") if getattr(self, f) == "nvme"]
        if nvme and self.nvme_path is None:
            msg = f"nvme_path is required when {' and '.join(nvme)} is 'nvme'"
            errors.append(("nvme_path", msg, None))
        if not nvme and self.nvme_path is not None:
            msg = (
                "nvme_path is set but neither offload_optimizer nor offload_param is 'nvme' "
                "(it would be ignored)"
            )
            errors.append(("nvme_path", msg, self.nvme_path))
        if errors:
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [
                    InitErrorDetails(
                        type=PydanticCustomError("deepspeed_config", msg), loc=(loc,), input=value
                    )
                    for loc, msg, value in errors
                ],
            )
        return self

    def check_device(self, use_gpu: bool, device_supports_bf16: bool | None = None) -> None:
        """Reject settings the workers' devices cannot run; call on the driver before training.

        ``use_gpu``: the workers train on GPUs (``ScalingConfig.use_gpu``). ``device_supports_bf16``:
        whether those GPUs have bf16 (e.g. ``torch.cuda.is_bf16_supported()`` run on a worker
        node); None means unknown, and bf16 is then not checked (the driver is often CPU-only).
        Nothing is checked when ``enabled`` is false. Raises ``ConfigError`` listing every problem,
        each naming its ``deepspeed.<field>``.
        """
        if not self.enabled:
            return
        problems: list[str] = []
        if not use_gpu:
            for name in ("bf16", "fp16"):
                if getattr(self, name):
                    problems.append(
                        f"deepspeed.{name}: not on CPU workers (use_gpu is false); "
                        "the CPU path is fp32 only, set it to false"
                    )
            for name in ("offload_optimizer", "offload_param"):
                value = getattr(self, name)
                if value != "none":
                    problems.append(
                        f"deepspeed.{name}={value!r}: offload is for GPU workers; on "
                        "CPU workers everything already lives in host memory (and "
                        "offload is untested on DeepSpeed's CPU accelerator), set it "
                        "to 'none'"
                    )
        elif self.bf16 and device_supports_bf16 is False:
            problems.append(
                "deepspeed.bf16: the GPUs have no bfloat16 support (pre-Ampere); use "
                "fp16: true instead, or fp32"
            )
        if problems:
            raise ConfigError("\n".join(problems))

    def training_args_kwargs(self) -> dict[str, Any]:
        """``TrainingArguments`` fields that must agree with ``to_dict()`` (HF checks the match)."""
        return {"bf16": self.bf16, "fp16": self.fp16, "max_grad_norm": self._clip()}

    def to_dict(
        self,
        train_batch_size: int | Auto | None = None,
        micro_batch: int | Auto | None = None,
        grad_accum: int | Auto | None = None,
    ) -> dict[str, Any]:
        """The DeepSpeed JSON config, for ``TrainingArguments(deepspeed=...)``.

        Each batch argument left None (or "auto") is written as ``"auto"`` for Hugging Face to
        fill from the ``TrainingArguments`` (preferred: then they cannot disagree). Given
        numbers are written as is; ``train_batch_size`` must then be a multiple of
        ``micro_batch * grad_accum`` (DeepSpeed: micro batch x accumulation x world size).
        At stage 3, ``stage3_gather_16bit_weights_on_model_save`` is on so that
        ``Trainer.save_model`` writes full weights. ``extra`` is merged last.
        """
        if not self.enabled:
            raise ConfigError("deepspeed.enabled is false: there is no DeepSpeed config to render")
        for name, value in (
            ("train_batch_size", train_batch_size),
            ("micro_batch", micro_batch),
            ("grad_accum", grad_accum),
        ):
            if (
                value is not None
                and value != "auto"
                and (isinstance(value, bool) or not isinstance(value, int) or value < 1)
            ):
                raise ConfigError(f"{name} must be a positive integer or 'auto', got {value!r}")
        if (
            isinstance(train_batch_size, int)
            and isinstance(micro_batch, int)
            and isinstance(grad_accum, int)
            and train_batch_size % (micro_batch * grad_accum) != 0
        ):
            raise ConfigError(
                f"train_batch_size={train_batch_size} is not a multiple of micro_batch x "
                f"grad_accum = {micro_batch} x {grad_accum} (DeepSpeed needs micro batch x "
                "accumulation x world size)"
            )

        zero: dict[str, Any] = {"stage": self.stage}
        for name in ("offload_optimizer", "offload_param"):
            device = getattr(self, name)
            if device != "none":
                block: dict[str, Any] = {"device": device}
                if device == "nvme":
                    block["nvme_path"] = self.nvme_path
                zero[name] = block
        if self.stage == 3:
            zero["stage3_gather_16bit_weights_on_model_save"] = True

        out: dict[str, Any] = {
            "train_batch_size": _auto(train_batch_size),
            "train_micro_batch_size_per_gpu": _auto(micro_batch),
            "gradient_accumulation_steps": _auto(grad_accum),
            "gradient_clipping": self._clip(),
            "bf16": {"enabled": self.bf16},
            "fp16": {"enabled": self.fp16},
            "zero_optimization": zero,
        }
        return _deep_merge(out, self.extra)

    def _clip(self) -> float:
        return float(self.gradient_clipping) if self.gradient_clipping else 0.0


def _auto(value: int | str | None) -> int | str:
    return "auto" if value is None else value


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
