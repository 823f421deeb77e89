"""SFT tokenization: the chat template, the prompt masked out of the labels, padding."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from synth_ray.train.data import (
    IGNORE_INDEX,
    conversation,
    pad_collate,
    sft_tokens,
    tokenize_sft,
)


@pytest.fixture(scope="module")
def tok(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def test_conversation_from_alpaca_and_messages():
    assert conversation({"instruction": "Add.", "input": "2 3", "output": "5"}) == [
        {"role": "user", "content": "Add.\n\n2 3"},
        {"role": "assistant", "content": "5"},
    ]
    assert conversation({"instruction": "Hi", "input": "", "output": "Yo"})[0]["content"] == "Hi"
    msgs = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u"},
        {"role": "assistant", "content": "a"},
    ]
    assert conversation({"messages": msgs}) == msgs


def test_only_the_response_is_learned(tok):
    msgs = conversation({"instruction": "Name a colour.", "input": "", "output": "blue sky"})
    ids, labels = sft_tokens(tok, msgs, 1024)
    assert len(ids) == len(labels)
    n_prompt = sum(1 for x in labels if x == IGNORE_INDEX)
    prompt = tok.apply_chat_template(msgs[:1], tokenize=False, add_generation_prompt=True)
    assert tok.decode(ids[:n_prompt]) == prompt  # masked part: exactly the prompt
    assert "blue sky" in tok.decode(ids[n_prompt:]) and labels[n_prompt:] == ids[n_prompt:]


def test_tokenize_stage_truncates_and_drops(tok, tiny_model):
    rows = [
        {"instruction": "Short.", "input": "", "output": "ok"},
        {"instruction": "word " * 400, "input": "", "output": "never seen"},
    ]
    out = tokenize_sft(pa.Table.from_pylist(rows), tiny_model, 64).to_pylist()
    assert len(out) == 1  # the second row's response is cut away entirely: dropped
    assert out[0]["n_tokens"] == len(out[0]["input_ids"]) <= 64 and out[0]["n_target"] > 0


def test_pad_collate():
    import numpy as np

    batch = {
        "input_ids": np.array([np.array([5, 6, 7]), np.array([8])], dtype=object),
        "labels": np.array([np.array([-100, 6, 7]), np.array([8])], dtype=object),
    }
    out = pad_collate(batch, pad_id=0)
    assert out["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert out["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert out["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


@pytest.mark.slow
@pytest.mark.ray
def test_reads_alpaca_export_and_job_dataset(tmp_path, ray_local):
    """Through Ray Data: an Alpaca export and a job's OUTPUT_DIR (its dataset/), as SFT rows
    in their canonical shape (messages)."""
    from synth_ray.stages.records import write_dataset
    from synth_ray.train.data import TrainingInputError, read_training_rows

    rows = [{"instruction": "I", "input": "", "output": "O"}]
    messages = [{"role": "user", "content": "I"}, {"role": "assistant", "content": "O"}]
    (tmp_path / "a.json").write_text(json.dumps(rows))
    rejects = str(tmp_path / "rejects")
    got = read_training_rows(str(tmp_path / "a.json"), "sft", rejects).take_all()
    assert got == [{"messages": messages}]
    write_dataset(str(tmp_path / "job" / "dataset"), [dict(rows[0], id="x", method="alpaca")])
    assert read_training_rows(str(tmp_path / "job"), "sft", rejects).take_all() == got
    with pytest.raises(TrainingInputError, match="no training data at .*empty"):
        read_training_rows(str(tmp_path / "empty"), "sft", rejects)
