"""Continued pretraining on a WRAP-style mix (mix/ Parquet of real and synthetic text)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synth_ray.runner import load_job_config, run_job

from ..conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.train]


def test_pretrain_on_a_wrap_mix(ray_local, tmp_path, c4_docs):
    wrap_out = tmp_path / "wrap"
    (wrap_out / "mix").mkdir(parents=True)
    texts = [d["text"][:600] for d in c4_docs[:12]]
    rows = [
        {"id": f"d{i}", "text": t, "origin": "real" if i % 2 else "synthetic"}
        for i, t in enumerate(texts)
    ] + [{"id": "empty", "text": " ", "origin": "real"}]
    pq.write_table(pa.Table.from_pylist(rows), wrap_out / "mix" / "part-0.parquet")
    config = load_job_config(
        str(REPO / "jobs/pretrain_wrap.yaml"),
        [
            f"input={wrap_out}",
            f"output_dir={tmp_path / 'out'}",
            "max_steps=25",
            "max_length=64",
            "learning_rate=0.005",
            "per_device_batch_size=4",
            "logging_steps=5",
            "checkpoint.save_steps=25",
        ],
    )
    rec = run_job(config)
    t = rec["counts"]["training"]
    assert rec["status"] == "succeeded" and t["global_step"] == 25
    # The blank text is a reject (empty_field), the 12 others windows of 64 tokens.
    assert t["rows_read"] == 12 and t["rows_trained"] >= 12
    assert rec["counts"]["rejects_by_reason"] == {"empty_field": 1}
    assert t["tokens"] == t["target_tokens"] > 0  # every token is a target in pretraining
    assert t["last_logged_loss"] < t["first_logged_loss"]
    assert (tmp_path / "out" / "model" / "config.json").exists()
