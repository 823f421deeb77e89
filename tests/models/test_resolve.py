"""The model resolver (``synth_ray.models.resolve``): what each kind of spec resolves to, the
errors that name what was looked for, and ``model_revision`` of a local folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from synth_ray.models.resolve import ModelNotFoundError, model_revision, resolve_model


@pytest.fixture
def model_dir(tiny_model, tmp_path) -> Path:
    """A copy of the tiny model (config.json, model.safetensors, tokenizer): a local HF folder."""
    dst = tmp_path / "my-model"
    shutil.copytree(tiny_model, dst)
    return dst


def test_tiny(tiny_model):
    m = resolve_model("tiny")
    assert (m.spec, m.source, m.kind, m.name) == ("tiny", tiny_model, "tiny", "tiny")
    assert (Path(m.source) / "config.json").is_file()


def test_local_folder(model_dir, monkeypatch):
    m = resolve_model(str(model_dir))
    assert (m.spec, m.source, m.kind) == (str(model_dir), str(model_dir), "local")
    monkeypatch.chdir(
        model_dir.parent
    )  # a relative spec: the source is absolute, the name as written
    m = resolve_model("my-model")
    assert (m.name, m.source, m.kind) == ("my-model", str(model_dir), "local")


def test_folder_without_config_json(tmp_path):
    (tmp_path / "weights.safetensors").write_bytes(b"x")
    with pytest.raises(ModelNotFoundError, match="has no config.json") as exc:
        resolve_model(str(tmp_path))
    assert f"folder {tmp_path} exists" in str(exc.value)


@pytest.mark.parametrize("spec", ["/no/such/model", "./no-such-model", "~/no-such-model", "a/b/c"])
def test_path_like_spec_not_found_names_the_folder(spec):
    with pytest.raises(ModelNotFoundError) as exc:
        resolve_model(spec)
    where = Path(spec).expanduser().resolve()
    assert str(exc.value) == f"model {spec!r} not found: looked for a local folder at {where}"


@pytest.mark.parametrize("spec", ["", "  "])
def test_empty_spec(spec):
    with pytest.raises(ModelNotFoundError, match="empty model name"):
        resolve_model(spec)


def test_hub_id_failure_says_what_was_tried(monkeypatch):
    """An ``org/name`` that is no folder is looked up on the Hub. The lookup is made to fail
    here as it does offline (a real offline lookup retries for ~30 s), to check the message."""
    import transformers

    def offline(name, *a, **k):
        raise OSError(f"We couldn't connect to 'https://huggingface.co' to load {name}.\nmore")

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", offline)
    with pytest.raises(ModelNotFoundError) as exc:
        resolve_model("no-such-org/no-such-model")
    msg = str(exc.value)
    assert msg.startswith("model 'no-such-org/no-such-model' not found: looked for a local folder")
    assert "and for the Hugging Face Hub id 'no-such-org/no-such-model'" in msg
    assert (
        "We couldn't connect to 'https://huggingface.co' to load no-such-org/no-such-model." in msg
    )
    assert "more" not in msg  # the first line of the cause only
    assert msg.endswith("Use `model: tiny`, a local folder, or a reachable hub id.")


def test_hub_id_found_is_not_loaded(monkeypatch):
    import transformers

    seen = []
    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", lambda name: seen.append(name))
    m = resolve_model("some-org/some-model")
    assert (m.source, m.kind) == ("some-org/some-model", "hub") and seen == ["some-org/some-model"]


def test_model_revision_of_a_local_folder_follows_its_weights(model_dir):
    first = model_revision(str(model_dir))
    assert first.startswith("fp-") and len(first) == len("fp-") + 16  # its content fingerprint
    assert model_revision(str(model_dir)) == first  # stable
    (model_dir / "README.md").write_text("notes")  # not part of the model: same revision
    assert model_revision(str(model_dir)) == first
    weights = model_dir / "model.safetensors"
    weights.write_bytes(weights.read_bytes() + b"\0" * 8)  # weights replaced (another size)
    second = model_revision(str(model_dir))
    assert second != first
    (model_dir / "model-00002.safetensors").write_bytes(b"\0")  # a new shard
    assert model_revision(str(model_dir)) not in (first, second)
    cfg = model_dir / "config.json"
    before = model_revision(str(model_dir))
    cfg.write_text(cfg.read_text().replace("{", '{"x": 1, ', 1))  # config changed
    assert model_revision(str(model_dir)) != before


def test_model_revision_of_a_hub_model_is_the_requested_revision():
    assert model_revision("some-org/some-model", revision="abc123") == "abc123"
