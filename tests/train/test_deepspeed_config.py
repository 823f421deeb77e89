"""The ``deepspeed`` block: bad combinations rejected on the driver, good ones accepted by
DeepSpeed's own config models and by ``transformers.TrainingArguments(deepspeed=...)``.
(Survey, "Distillation techniques" / "Self-improvement (aka non-distillation) techniques": the
7B preference-tuning runs that need ZeRO.)"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from pydantic import ValidationError

from synth_ray.config import ConfigError, StrictModel, validate
from synth_ray.train.deepspeed_config import DeepSpeedConfig

# --- validation ----------------------------------------------------------------------------

BAD = [
    ({"stage": 4}, "stage", "stage must be 0, 1, 2 or 3"),
    ({"stage": -1}, "stage", "stage must be 0, 1, 2 or 3"),
    ({"stage": True}, "stage", "valid integer"),
    ({"bf16": True, "fp16": True}, "fp16", "bf16 and fp16 cannot both be true"),
    ({"stage": 2, "offload_param": "cpu"}, "offload_param", "needs stage 3"),
    ({"stage": 1, "offload_param": "nvme", "nvme_path": "/nvme"}, "offload_param", "needs stage 3"),
    ({"stage": 0, "offload_optimizer": "cpu"}, "offload_optimizer", "needs ZeRO stage 1, 2 or 3"),
    (
        {"stage": 3, "offload_param": "nvme"},
        "nvme_path",
        "nvme_path is required when offload_param",
    ),
    ({"stage": 2, "offload_optimizer": "nvme"}, "nvme_path", "required when offload_optimizer"),
    ({"stage": 2, "nvme_path": "/nvme"}, "nvme_path", "it would be ignored"),
    ({"nvme_path": "  "}, "nvme_path", "non-empty folder path"),
    ({"offload_optimizer": "gpu"}, "offload_optimizer", "'none', 'cpu' or 'nvme'"),
    ({"gradient_clipping": -1.0}, "gradient_clipping", "greater than or equal to 0"),
    ({"zero_stage": 2}, "zero_stage", "unknown field"),
]


@pytest.mark.parametrize(("data", "field", "text"), BAD)
def test_bad_config_names_the_field(data, field, text):
    with pytest.raises(ConfigError) as exc:
        validate(DeepSpeedConfig, {"enabled": True, **data}, "deepspeed")
    msg = str(exc.value)
    assert f"field '{field}'" in msg
    assert text in msg
    assert msg.startswith("deepspeed: 1 error(s)")


def test_validation_error_location_and_nesting():
    with pytest.raises(ValidationError) as exc:
        DeepSpeedConfig(stage=2, offload_param="cpu")
    assert [e["loc"] for e in exc.value.errors()] == [("offload_param",)]

    class Job(StrictModel):
        deepspeed: DeepSpeedConfig

    data = {"deepspeed": {"bf16": True, "fp16": True, "stage": 0, "offload_optimizer": "nvme"}}
    with pytest.raises(ConfigError) as cexc:
        validate(Job, data, "job.yaml")
    lines = str(cexc.value).splitlines()
    assert lines[0] == "job.yaml: 3 error(s)"
    assert lines[1].startswith("  field 'deepspeed.fp16': bf16 and fp16 cannot both be true")
    assert lines[2].startswith("  field 'deepspeed.offload_optimizer': offload_optimizer='nvme'")
    assert lines[3].startswith("  field 'deepspeed.nvme_path': nvme_path is required")


def test_defaults_and_good_configs():
    d = DeepSpeedConfig()
    assert (d.enabled, d.stage, d.offload_optimizer, d.offload_param) == (False, 2, "none", "none")
    assert (d.nvme_path, d.bf16, d.fp16, d.gradient_clipping, d.extra) == (
        None,
        False,
        False,
        1.0,
        {},
    )
    ok = DeepSpeedConfig(
        enabled=True,
        stage=3,
        offload_param="nvme",
        offload_optimizer="cpu",
        nvme_path="/local_nvme",
        bf16=True,
    )
    assert ok.offload_param == "nvme"
    assert DeepSpeedConfig(stage=1, offload_optimizer="cpu").offload_optimizer == "cpu"
    for name, info in DeepSpeedConfig.model_fields.items():
        assert info.description, name


# --- check_device --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "use_gpu", "bf16_ok", "lines", "texts"),
    [
        ({"bf16": True}, False, None, 1, ["deepspeed.bf16: not on CPU workers", "fp32 only"]),
        ({"fp16": True}, False, None, 1, ["deepspeed.fp16: not on CPU workers"]),
        (
            {"offload_optimizer": "cpu"},
            False,
            None,
            1,
            ["deepspeed.offload_optimizer='cpu': offload is for GPU workers"],
        ),
        (
            {"stage": 3, "offload_param": "nvme", "nvme_path": "/n"},
            False,
            None,
            1,
            ["deepspeed.offload_param='nvme'"],
        ),
        (
            {"bf16": True, "offload_optimizer": "cpu"},
            False,
            None,
            2,
            ["deepspeed.bf16", "deepspeed.offload_optimizer='cpu'"],
        ),
        ({"bf16": True}, True, False, 1, ["deepspeed.bf16: the GPUs have no bfloat16 support"]),
    ],
)
def test_check_device_rejects(kwargs, use_gpu, bf16_ok, lines, texts):
    cfg = DeepSpeedConfig(enabled=True, **kwargs)
    with pytest.raises(ConfigError) as exc:
        cfg.check_device(use_gpu=use_gpu, device_supports_bf16=bf16_ok)
    msg = str(exc.value)
    assert len(msg.splitlines()) == lines
    for text in texts:
        assert text in msg


def test_check_device_accepts():
    for stage in (0, 1, 2, 3):
        assert DeepSpeedConfig(enabled=True, stage=stage).check_device(use_gpu=False) is None
    gpu = DeepSpeedConfig(
        enabled=True, stage=3, bf16=True, offload_param="cpu", offload_optimizer="cpu"
    )
    assert gpu.check_device(use_gpu=True, device_supports_bf16=True) is None
    assert gpu.check_device(use_gpu=True) is None  # unknown bf16 support: not checked
    fp16 = DeepSpeedConfig(enabled=True, fp16=True)
    assert fp16.check_device(use_gpu=True, device_supports_bf16=False) is None
    # Disabled: the block is not used, so devices are not checked.
    assert DeepSpeedConfig(enabled=False, bf16=True).check_device(use_gpu=False) is None


# --- to_dict -------------------------------------------------------------------------------


def test_to_dict_stage2_auto_batches():
    d = DeepSpeedConfig(enabled=True, stage=2, offload_optimizer="cpu").to_dict()
    assert d == {
        "train_batch_size": "auto",
        "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": 1.0,
        "bf16": {"enabled": False},
        "fp16": {"enabled": False},
        "zero_optimization": {"stage": 2, "offload_optimizer": {"device": "cpu"}},
    }
    json.dumps(d)  # plain JSON


def test_to_dict_stage3_nvme_explicit_batches_and_extra():
    cfg = DeepSpeedConfig(
        enabled=True,
        stage=3,
        offload_param="nvme",
        offload_optimizer="nvme",
        nvme_path="/nv",
        bf16=True,
        gradient_clipping=None,
        extra={
            "zero_optimization": {
                "overlap_comm": True,
                "stage3_gather_16bit_weights_on_model_save": False,
            },
            "steps_per_print": 50,
        },
    )
    d = cfg.to_dict(32, 4, 2)
    assert d["train_batch_size"] == 32
    assert d["train_micro_batch_size_per_gpu"] == 4
    assert d["gradient_accumulation_steps"] == 2
    assert d["gradient_clipping"] == 0.0
    assert d["bf16"] == {"enabled": True}
    assert d["steps_per_print"] == 50
    assert d["zero_optimization"] == {
        "stage": 3,
        "offload_optimizer": {"device": "nvme", "nvme_path": "/nv"},
        "offload_param": {"device": "nvme", "nvme_path": "/nv"},
        "stage3_gather_16bit_weights_on_model_save": False,  # extra wins
        "overlap_comm": True,
    }
    assert cfg.extra["zero_optimization"] == {
        "overlap_comm": True,
        "stage3_gather_16bit_weights_on_model_save": False,
    }
    assert cfg.training_args_kwargs() == {"bf16": True, "fp16": False, "max_grad_norm": 0.0}


def test_to_dict_rejects():
    with pytest.raises(ConfigError, match="deepspeed.enabled is false"):
        DeepSpeedConfig().to_dict()
    cfg = DeepSpeedConfig(enabled=True)
    with pytest.raises(ConfigError, match=r"train_batch_size=10 is not a multiple of .* 4 x 2"):
        cfg.to_dict(10, 4, 2)
    with pytest.raises(
        ConfigError, match="micro_batch must be a positive integer or 'auto', got 0"
    ):
        cfg.to_dict(micro_batch=0)
    assert cfg.to_dict(micro_batch=4)["train_micro_batch_size_per_gpu"] == 4
    assert cfg.to_dict(micro_batch=4)["train_batch_size"] == "auto"


# --- accepted by DeepSpeed's own models ----------------------------------------------------

GOOD = [
    {"stage": 1},
    {"stage": 2},
    {"stage": 2, "offload_optimizer": "cpu"},
    {"stage": 3, "offload_param": "cpu", "offload_optimizer": "cpu", "bf16": True},
    {
        "stage": 3,
        "offload_param": "nvme",
        "offload_optimizer": "nvme",
        "nvme_path": "/nv",
        "fp16": True,
    },
]


def _value(enum_or_str) -> str:  # DeepSpeed's models store enum values as plain str
    return str(getattr(enum_or_str, "value", enum_or_str))


@pytest.mark.parametrize("kwargs", GOOD)
def test_deepspeed_accepts(kwargs):
    pytest.importorskip("deepspeed")
    from deepspeed.runtime.config import DeepSpeedConfig as DSC
    from deepspeed.runtime.zero.config import DeepSpeedZeroConfig

    cfg = DeepSpeedConfig(enabled=True, **kwargs)
    d = cfg.to_dict(8, 4, 2)  # DSC without torch.distributed assumes world size 1
    zero = DeepSpeedZeroConfig(**d["zero_optimization"])
    assert int(zero.stage) == kwargs["stage"]
    if cfg.offload_optimizer != "none":
        assert _value(zero.offload_optimizer.device) == cfg.offload_optimizer
    if cfg.offload_param != "none":
        assert _value(zero.offload_param.device) == cfg.offload_param
    if cfg.nvme_path:
        assert str(zero.offload_param.nvme_path) == "/nv"

    ds = DSC(d)
    assert ds.zero_optimization_stage == kwargs["stage"]
    assert (ds.train_batch_size, ds.train_micro_batch_size_per_gpu) == (8, 4)
    assert ds.gradient_accumulation_steps == 2
    assert ds.gradient_clipping == 1.0
    assert ds.bfloat16_config.enabled is cfg.bf16
    assert ds.float16_config.enabled is cfg.fp16


_HF_SCRIPT = textwrap.dedent(
    """
    import gc, json, sys
    from transformers import TrainingArguments
    from deepspeed.runtime.config import DeepSpeedConfig as DSC
    from synth_ray.train.deepspeed_config import DeepSpeedConfig

    out = []
    for kwargs in json.loads(sys.argv[1]):
        cfg = DeepSpeedConfig(enabled=True, **kwargs)
        args = TrainingArguments(
            output_dir=sys.argv[2], deepspeed=cfg.to_dict(), per_device_train_batch_size=4,
            gradient_accumulation_steps=2, report_to=[], use_cpu=True, **cfg.training_args_kwargs(),
        )
        filled = args.hf_deepspeed_config.config
        ds = DSC(filled)
        out.append({"mismatches": args.hf_deepspeed_config.mismatches,
                    "batch": [filled["train_batch_size"], filled["train_micro_batch_size_per_gpu"],
                              filled["gradient_accumulation_steps"]],
                    "stage": int(ds.zero_optimization_stage), "bf16": ds.bfloat16_config.enabled})
        del args, filled, ds
        gc.collect()
    print("RESULT " + json.dumps(out))
    """
)


@pytest.mark.slow
@pytest.mark.train  # the training stack (DeepSpeed, accelerate state): ~15 s of imports
def test_transformers_training_arguments_accept(tmp_path):
    """The real ``TrainingArguments(deepspeed=...)`` fills the "auto" batch sizes with no mismatch.

    In a subprocess: TrainingArguments with a DeepSpeed config sets process-global state
    (accelerate's PartialState, transformers' ZeRO-3 weakref) that must not leak into other tests.
    """
    pytest.importorskip("deepspeed")
    proc = subprocess.run(
        [sys.executable, "-c", _HF_SCRIPT, json.dumps(GOOD), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    results = json.loads(line[len("RESULT ") :])
    assert [r["stage"] for r in results] == [1, 2, 2, 3, 3]
    assert [r["bf16"] for r in results] == [False, False, False, True, False]
    for r in results:
        assert r["mismatches"] == []
        assert r["batch"] == [8, 4, 2]  # world size 1 x 4 x 2
