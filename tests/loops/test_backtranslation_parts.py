"""Instruction Backtranslation's parts that need no engine: segment cleaning, seed pairs, the
config's checks; the preference-row writer and its export."""

from __future__ import annotations

import subprocess
import sys

import pyarrow as pa
import pytest

from synth_ray.config import ConfigError
from synth_ray.loops.backtranslation import segments as S
from synth_ray.loops.backtranslation.backtranslation import (
    BacktranslationConfig,
    seed_pairs,
)
from synth_ray.runner import load_job_config

LONG = "The river flows past the old mill and into the valley below the hills. " * 3


def test_boilerplate_lines_dropped_and_paragraphs_packed():
    text = f"Home | About | Contact\n{LONG}\nAccept all cookies\n\n{LONG}\n---- ---- ----\n"
    segs = S.split_segments(text, max_chars=400)
    assert segs and all("cookies" not in s and "|" not in s for s in segs)
    assert all(len(s) <= 400 for s in segs)
    assert " ".join(segs).count("river flows") == 6


def test_segment_rejects_and_dedup():
    docs = pa.Table.from_pylist(
        [
            {"doc_id": "a", "text": LONG, "source": "f.jsonl"},
            {"doc_id": "b", "text": LONG.upper(), "source": "f.jsonl"},  # same once normalised
            {"doc_id": "c", "text": "Too short.", "source": "f.jsonl"},
            {"doc_id": "d", "text": "Click here to subscribe\nPrivacy policy", "source": "g"},
        ]
    )
    rows = S.deduplicate(S.segment_documents(docs, min_chars=50, max_chars=1000).to_pylist())
    by_doc = {r["doc_id"]: r for r in rows}
    assert by_doc["c"]["reject"] == "segment_too_short"
    assert by_doc["d"]["reject"] == "segment_boilerplate"
    dup = [r for r in rows if r["reject"] == "segment_duplicate"]
    kept = [r for r in rows if not r["reject"]]
    assert len(dup) == 1 and len(kept) == 1 and kept[0]["segment_id"] in dup[0]["detail"]
    assert len(rows) == 4  # every document accounted for


def test_seed_pairs_default_and_file(tmp_path):
    cfg = BacktranslationConfig(output_dir=str(tmp_path))
    pairs = seed_pairs(cfg)
    assert len(pairs) >= 175 and all(p["instruction"] and p["output"] for p in pairs)
    assert len(seed_pairs(cfg.model_copy(update={"max_seeds": 5}))) == 5


def test_train_settings_checked_before_work(tmp_path):
    with pytest.raises(ConfigError, match="max_steps"):
        load_job_config(
            "jobs/tiny/backtranslation.yaml",
            [f"output_dir={tmp_path}", "train.max_steps=0"],
        )
    with pytest.raises(ConfigError, match="select_k"):
        load_job_config("jobs/tiny/backtranslation.yaml", ["select_k=3"])


def test_methods_lists_every_job():
    out = subprocess.run(
        [sys.executable, "-m", "synth_ray.cli", "methods"], capture_output=True, text=True
    )
    names = {line.split()[0] for line in out.stdout.splitlines()}
    expected = {"wrap", "self_instruct", "alpaca", "unnatural", "sft", "dpo", "reward"}
    assert expected | {"pretrain", "backtranslation"} <= names
    kinds = {line.split()[0]: line.split()[1] for line in out.stdout.splitlines()}
    assert kinds["sft"] == "train" and kinds["backtranslation"] == "loop"
