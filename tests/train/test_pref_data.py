"""Preference tokenization stages and collates (no Ray): the columns TRL 1.16's DPOTrainer and
RewardTrainer would build themselves, and the batch dicts their losses read."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from synth_ray.train import pref_data as P


@pytest.fixture(scope="module")
def tok(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def _np(table: pa.Table, cols) -> dict:
    return {
        c: np.array(
            [np.array(x, dtype=np.int32) for x in table.column(c).to_pylist()] + [None],
            dtype=object,
        )[:-1]
        for c in cols
    }


def test_dpo_tokens_split_prompt_and_completions(tok):
    p, c, r = P.dpo_tokens(tok, "Say yes", "yes banana", "no")
    gen = tok.apply_chat_template(
        [{"role": "user", "content": "Say yes"}], tokenize=True, add_generation_prompt=True
    )
    assert p == P._ids(gen)
    assert tok.decode(c).startswith("yes banana") and tok.eos_token in tok.decode(c)
    assert tok.decode(r).startswith("no")
    # messages-style prompt and a one-message conversational response give the same tokens
    p2, c2, r2 = P.dpo_tokens(
        tok,
        [{"role": "user", "content": "Say yes"}],
        [{"role": "assistant", "content": "yes banana"}],
        "no",
    )
    assert (p2, c2, r2) == (p, c, r)


def test_tokenize_dpo_truncates_and_drops(tok, tiny_model):
    rows = pa.Table.from_pylist(
        [
            {"prompt": "Say yes", "chosen": "yes " * 50, "rejected": "no"},
            {"prompt": "long " * 200, "chosen": "a", "rejected": "b"},
        ]
    )
    out = P.tokenize_dpo(rows, tiny_model, max_length=40)
    assert out.num_rows == 1  # the prompt of row 2 alone fills max_length
    p, c = out.column("prompt_ids")[0].as_py(), out.column("chosen_ids")[0].as_py()
    assert len(p) + len(c) == 40
    assert out.column("n_target")[0].as_py() == len(c) + len(out.column("rejected_ids")[0].as_py())


def test_dpo_collate_matches_trl(tok, tiny_model):
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    rows = pa.Table.from_pylist(
        [
            {"prompt": "Say yes", "chosen": "yes banana", "rejected": "no"},
            {"prompt": "Hi, how are you?", "chosen": "fine", "rejected": "bad day"},
        ]
    )
    out = P.tokenize_dpo(rows, tiny_model, max_length=512)
    ours = P.dpo_collate(
        _np(out, ("prompt_ids", "chosen_ids", "rejected_ids")), pad_id=tok.pad_token_id
    )
    trl = DataCollatorForPreference(pad_token_id=tok.pad_token_id)(
        [
            {k: out.column(k)[i].as_py() for k in ("prompt_ids", "chosen_ids", "rejected_ids")}
            for i in range(2)
        ]
    )
    assert set(ours) == {"input_ids", "attention_mask", "completion_mask"}
    for k in ours:
        assert ours[k].tolist() == trl[k].tolist(), k
    assert ours["input_ids"].shape[0] == 4  # chosen rows, then rejected rows


def test_reward_pairs_and_collate_match_trl(tok, tiny_model):
    from trl.trainer.reward_trainer import DataCollatorForPreference

    rows = pa.Table.from_pylist(
        [
            {"prompt": "Say yes", "chosen": "yes banana", "rejected": "no"},
            {"prompt": "Hi", "chosen": "fine", "rejected": "bad day, really"},
        ]
    )
    out = P.tokenize_reward_pairs(rows, tiny_model, max_length=512)
    full = tok.apply_chat_template(
        [{"role": "user", "content": "Say yes"}, {"role": "assistant", "content": "yes banana"}],
        tokenize=True,
    )
    full = full["input_ids"] if hasattr(full, "keys") else full
    assert out.column("chosen_ids")[0].as_py() == [int(x) for x in full]
    ours = P.reward_collate(_np(out, ("chosen_ids", "rejected_ids")), pad_id=tok.pad_token_id)
    trl = DataCollatorForPreference(pad_token_id=tok.pad_token_id)(
        [{k: out.column(k)[i].as_py() for k in ("chosen_ids", "rejected_ids")} for i in range(2)]
    )
    assert set(ours) == {"input_ids", "attention_mask"}
    for k in ours:
        assert ours[k].tolist() == trl[k].tolist(), k


def test_soft_labels_ride_along_to_the_batch(tok, tiny_model):
    rows = pa.Table.from_pylist(
        [
            {"prompt": "Say yes", "chosen": "yes", "rejected": "no", "label": 0.75},
            {"prompt": "Hi", "chosen": "fine", "rejected": "bad", "label": 0.25},
        ]
    )
    out = P.tokenize_reward_pairs(rows, tiny_model, max_length=512)
    assert out.column("label").to_pylist() == [0.75, 0.25]
    batch = _np(out, ("chosen_ids", "rejected_ids"))
    batch["label"] = out.column("label").to_numpy()
    got = P.reward_collate(batch, pad_id=tok.pad_token_id)
    assert got["soft_labels"].tolist() == [0.75, 0.25] and got["input_ids"].shape[0] == 4


def test_kwise_tokenize_and_collate(tok, tiny_model):
    rows = pa.Table.from_pylist(
        [
            {"prompt": "Q1", "responses": ["a b c", "a b", "a"]},
            {"prompt": "Q2", "responses": ["x", "y"]},
            {"prompt": "Q3", "responses": ["only one"]},
        ]
    )
    out = P.tokenize_reward_kwise(rows, tiny_model, max_length=512)
    assert out.num_rows == 2  # a single response ranks nothing
    col = out.column("response_ids").to_pylist()
    assert [len(r) for r in col] == [3, 2]
    assert col[0][1] == P.full_tokens(tok, "Q1", "a b")
    batch = {
        "response_ids": np.array([[np.array(s) for s in r] for r in col] + [None], dtype=object)[
            :-1
        ]
    }
    b = P.kwise_collate(batch, pad_id=tok.pad_token_id)
    assert b["input_ids"].shape[0] == 6 and b["lengths"].tolist() == [3, 2]
    assert b["input_ids"][5].tolist()[0] == tok.pad_token_id and b["attention_mask"][5].sum() == 1
    assert b["input_ids"][3, : len(col[1][0])].tolist() == col[1][0]


def test_job_config_defaults():
    from synth_ray.train.dpo_config import DPOJobConfig
    from synth_ray.train.reward_config import RewardJobConfig

    d = DPOJobConfig(input="x", output_dir="y")
    assert (d.beta, d.loss_type, d.ref_model, d.learning_rate) == (0.1, "sigmoid", None, 5e-7)
    r = RewardJobConfig(input="x", output_dir="y")
    assert (
        r.loss == "pairwise"
        and RewardJobConfig(input="x", output_dir="y", loss="kwise").loss == "kwise"
    )
    with pytest.raises(ValueError):
        RewardJobConfig(input="x", output_dir="y", loss="listwise")


def test_attribute_rows_tokenize_and_collate(tok, tiny_model):
    rows = pa.Table.from_pylist(
        [
            {
                "prompt": "Q1",
                "response": "a b",
                "names": ["humor", "quality"],
                "values": [1.0, 4.0],
            },
            {"prompt": "Q2", "response": "c", "names": ["toxicity"], "values": [2.0]},
        ]
    )
    out = P.tokenize_attributes(rows, tiny_model, 512, names=["quality", "humor", "unused"])
    assert out.column("targets").to_pylist() == [[4.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    assert out.column("target_mask").to_pylist() == [[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    assert out.column("n_target").to_pylist() == [2, 0]
    batch = _np(out, ("input_ids",))
    batch["targets"] = np.array(
        [np.array(x, dtype=np.float32) for x in out.column("targets").to_pylist()]
    )
    batch["target_mask"] = np.array(
        [np.array(x, dtype=np.float32) for x in out.column("target_mask").to_pylist()]
    )
    got = P.attributes_collate(batch, pad_id=tok.pad_token_id)
    assert got["targets"].shape == got["target_mask"].shape == (2, 3)
    assert got["input_ids"].shape[0] == 2 and got["attention_mask"].sum() == sum(
        out.column("n_tokens").to_pylist()
    )
