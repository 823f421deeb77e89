"""SFT on Ray Train (2 CPU workers, DDP over gloo, TRL's SFTTrainer) on the tiny model:
the loss falls, a worker failure mid-run is survived from the checkpoint, the model memorises
its answers, and vLLM loads the output and greedily reproduces them."""

from __future__ import annotations

import json

import pytest

from synth_ray.runner import load_job_config, run_job

from ..conftest import REPO

ANSWERS = ["apple river stone", "blue cloud seven", "quiet lamp forest", "green door twelve"]


def _question(i: int) -> str:
    return f"What is the code word number {i}?"


@pytest.fixture(scope="module")
def sft_run(ray_local, tmp_path_factory):
    root = tmp_path_factory.mktemp("sft")
    rows = [{"instruction": _question(i), "input": "", "output": a} for i, a in enumerate(ANSWERS)]
    (root / "alpaca.json").write_text(json.dumps(rows))
    overrides = [
        f"input={root / 'alpaca.json'}",
        f"output_dir={root / 'out'}",
        "max_steps=120",
        "learning_rate=0.01",
        "per_device_batch_size=2",
        "checkpoint.save_steps=40",
        "logging_steps=10",
        "fail_once_at_step=50",
    ]
    config = load_job_config(str(REPO / "jobs/sft.yaml"), overrides)
    return root / "out", run_job(config), config


@pytest.mark.slow
@pytest.mark.train
def test_loss_falls_and_the_failure_is_survived(sft_run):
    out, rec, _ = sft_run
    assert rec["status"] == "succeeded"
    t = rec["counts"]["training"]
    assert t["workers"] == 2 and t["rows_trained"] == 4 and t["global_step"] == 120
    assert t["last_logged_loss"] < t["first_logged_loss"] / 10
    # The injected failure happened (marker written) and training still reached max_steps.
    assert (out / "train" / ".failed_once").exists()


@pytest.mark.slow
@pytest.mark.train
def test_output_is_a_hugging_face_folder(sft_run):
    out, _, _ = sft_run
    names = {p.name for p in (out / "model").iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= names


@pytest.mark.slow
@pytest.mark.train
@pytest.mark.vllm
def test_vllm_loads_the_model_and_reproduces_the_answers(sft_run):
    import ray

    from synth_ray.engines import build_engine
    from synth_ray.engines.base import SamplingConfig
    from synth_ray.models.resolve import ResolvedModel

    out, _, _ = sft_run
    path = str(out / "model")
    eng = build_engine(
        {"type": "vllm", "lifetime": "run", "max_model_len": 512},
        ResolvedModel(path, path, "local"),
    )
    try:
        rows = [
            {
                "id": str(i),
                "messages": [{"role": "user", "content": _question(i)}],
                "sampling": SamplingConfig(temperature=0, max_tokens=12).to_json(),
            }
            for i in range(len(ANSWERS))
        ]
        got = {
            r["id"]: r["completion"].strip()
            for r in eng.generate(ray.data.from_items(rows), "messages").take_all()
        }
    finally:
        eng.close()
    assert got == {str(i): a for i, a in enumerate(ANSWERS)}


@pytest.mark.slow
@pytest.mark.train
def test_rerun_of_a_finished_job_trains_nothing(sft_run):
    out, _, config = sft_run
    again = run_job(config)
    assert again["status"] == "succeeded"
    assert "skipped" in again["counts"]["training"]


@pytest.mark.slow
@pytest.mark.train
def test_deepspeed_zero2_lowers_the_loss_like_ddp(ray_local, tmp_path, sft_run):
    """The same SFT under DeepSpeed ZeRO-2 (fp32, DeepSpeed's CPU accelerator, 2 workers)."""
    _, _, config = sft_run
    ds_config = config.model_copy(
        update={
            "output_dir": str(tmp_path / "ds"),
            "max_steps": 30,
            "fail_once_at_step": None,
            "deepspeed": config.deepspeed.model_copy(update={"enabled": True, "stage": 2}),
        }
    )
    rec = run_job(ds_config)
    t = rec["counts"]["training"]
    assert rec["status"] == "succeeded" and t["deepspeed"] is True and t["global_step"] == 30
    assert t["last_logged_loss"] < t["first_logged_loss"] / 3
    assert (tmp_path / "ds" / "model" / "model.safetensors").exists()


def test_impossible_deepspeed_config_stops_before_any_work(tmp_path):
    from synth_ray.config import ConfigError

    config = load_job_config(
        str(REPO / "jobs/sft.yaml"),
        [f"output_dir={tmp_path / 'x'}", "deepspeed.enabled=true", "deepspeed.bf16=true"],
    )
    with pytest.raises(ConfigError, match="deepspeed.bf16"):
        run_job(config)
    assert not (tmp_path / "x").exists()  # nothing written, no Ray started for it


@pytest.mark.slow
@pytest.mark.train
def test_rerun_after_a_failed_run_resumes_from_its_checkpoint(ray_local, tmp_path, sft_run):
    """No failures allowed: the run dies at step 50 (checkpoint at 40). The same command again
    resumes from step 40 and finishes."""
    _, first, config = sft_run
    assert first["counts"]["training"]["resumed_from_step"] == 40  # the in-run recovery
    cfg = config.model_copy(
        update={
            "output_dir": str(tmp_path / "r"),
            "max_steps": 60,
            "max_failures": 0,
            "fail_once_at_step": 50,
        }
    )
    with pytest.raises(Exception, match="injected failure"):
        run_job(cfg)
    assert (tmp_path / "r" / "train" / ".failed_once").exists()
    again = run_job(cfg)
    t = again["counts"]["training"]
    assert (
        again["status"] == "succeeded" and t["global_step"] == 60 and t["resumed_from_step"] == 40
    )


@pytest.mark.slow
@pytest.mark.train
def test_lora_trains_adapters_and_writes_a_merged_model(ray_local, tmp_path, sft_run, tiny_model):
    from transformers import AutoModelForCausalLM

    _, _, config = sft_run
    cfg = config.model_copy(
        update={
            "output_dir": str(tmp_path / "lora"),
            "max_steps": 30,
            "fail_once_at_step": None,
            "lora": config.lora.model_copy(update={"enabled": True, "r": 8, "alpha": 16}),
        }
    )
    rec = run_job(cfg)
    t = rec["counts"]["training"]
    assert rec["status"] == "succeeded" and t["last_logged_loss"] < t["first_logged_loss"]
    names = {p.name for p in (tmp_path / "lora" / "model").iterdir()}
    assert "model.safetensors" in names and "adapter_config.json" not in names  # merged
    merged = AutoModelForCausalLM.from_pretrained(str(tmp_path / "lora" / "model"))
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    assert sum(p.numel() for p in merged.parameters()) == sum(p.numel() for p in base.parameters())
