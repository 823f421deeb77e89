"""Config errors stop the job before any work, naming the field."""

import pytest

from synth_ray.config import ConfigError
from synth_ray.runner import load_job_config, prepare

from .conftest import REPO

BASE = {"method": "wrap", "input": str(REPO / "examples/c4_sample.jsonl"), "output_dir": "/tmp/x"}


def test_job_yaml_files_parse():
    cfg = load_job_config(str(REPO / "jobs/wrap.yaml"))
    assert (
        cfg.method == "wrap"
        and cfg.chunk_tokens == 300
        and cfg.styles == ["easy", "medium", "hard", "qa"]
    )
    assert cfg.mix.real_to_synthetic == 1.0 and cfg.engine.type == "vllm"


def test_set_overrides_are_typed():
    cfg = load_job_config(
        str(REPO / "jobs/wrap.yaml"),
        [
            "engine.replicas=2",
            "sampling.temperature=0.2",
            "styles=[easy, qa]",
            "engine.type=openai",
        ],
    )
    assert cfg.engine.replicas == 2 and cfg.sampling.temperature == 0.2
    assert cfg.styles == ["easy", "qa"] and type(cfg.engine).__name__ == "OpenAIEngineConfig"


@pytest.mark.parametrize(
    "override, field",
    [
        ("chunk_tokens=many", "chunk_tokens"),
        ("engine.batch_size=0", "engine.batch_size"),
        ("engine.bogus=1", "engine.bogus"),
        ("sampling.top_p=2", "sampling.top_p"),
        ("mix.real_to_synthetic=-1", "mix.real_to_synthetic"),
        ("unknown_key=1", "unknown_key"),
    ],
)
def test_bad_field_is_named(override, field):
    with pytest.raises(ConfigError, match=f"field '{field}'"):
        load_job_config(data=dict(BASE), overrides=[override])


def test_unknown_method_and_engine_list_known_ones():
    with pytest.raises(ConfigError, match="unknown method 'nope'; known: .*wrap"):
        load_job_config(data={**BASE, "method": "nope"})
    with pytest.raises(ConfigError, match="unknown engine 'tgi'; known: openai, vllm"):
        load_job_config(data={**BASE, "engine": {"type": "tgi"}})


def test_style_without_prompt_is_rejected():
    with pytest.raises(ConfigError, match="style 'pirate' has no built-in prompt"):
        load_job_config(data={**BASE, "styles": ["easy", "pirate"]})


def test_missing_model_and_input_fail_before_ray(tmp_path):
    import ray

    was = ray.is_initialized()  # the session's Ray may already run when the whole suite does
    cfg = load_job_config(data={**BASE, "model": str(tmp_path / "no-such-model")})
    with pytest.raises(ConfigError, match="field 'model'.*looked for a local folder"):
        prepare(cfg)
    cfg = load_job_config(data={**BASE, "input": str(tmp_path / "none.jsonl")})
    with pytest.raises(ConfigError, match="no input files"):
        prepare(cfg)
    empty = tmp_path / "empty-model"
    empty.mkdir()
    with pytest.raises(ConfigError, match="has no config.json"):
        prepare(load_job_config(data={**BASE, "model": str(empty)}))
    assert ray.is_initialized() == was


def test_cli_exit_code_and_message(capsys):
    from synth_ray.cli import main

    assert main(["validate", str(REPO / "jobs/wrap.yaml"), "--set", "engine.replicas=zero"]) == 2
    assert "field 'engine.replicas'" in capsys.readouterr().err
