"""Preference data for DPO and reward models: Ray Data tokenization stages and collates.

Rows (Parquet / JSON(L), read by ``synth_ray.train.data.read_training_rows``):

- pairwise: ``prompt``, ``chosen``, ``rejected``. ``prompt`` is a string (one user turn) or a
  ``messages`` list (the conversation so far); ``chosen``/``rejected`` are strings (one assistant
  turn) or a list with one assistant message (TRL's conversational preference format).
- k-wise: ``prompt`` and ``responses`` (list of strings, best first; Starling's K=7 rankings).

Everything is rendered in the model's chat template, as in SFT. The token columns are what TRL
1.16 itself produces in its dataset preparation, so TRL's losses read our batches unchanged:

- DPO (``DPOTrainer._prepare_dataset``): ``prompt_ids`` (the prompt with the generation prompt),
  ``chosen_ids`` / ``rejected_ids`` (the completions after the prompt: the full conversation's
  tokens past the common prefix). ``dpo_collate`` then builds what
  ``DataCollatorForPreference`` gives ``DPOTrainer._compute_loss``: ``input_ids`` (2B, T) with
  prompt+chosen rows first and prompt+rejected rows second, ``attention_mask`` and
  ``completion_mask`` (1 on completion tokens), right-padded.
- Reward (``RewardTrainer._prepare_dataset``): ``chosen_ids`` / ``rejected_ids``, the whole
  prompt+response in the chat template. ``reward_collate`` gives what
  ``DataCollatorForPreference`` (reward) gives ``RewardTrainer.compute_loss``: ``input_ids``
  (2B, T), chosen first, and ``attention_mask``.
- K-wise: ``response_ids`` (K lists of full prompt+response tokens, best first). ``kwise_collate``
  flattens a batch to ``input_ids`` (B*Kmax, T) row-major, ``attention_mask`` and ``lengths``
  (B,): a row with fewer than Kmax responses is padded with one-token dummy sequences that
  ``plackett_luce_loss`` masks out by ``lengths``.

Sequences are truncated to ``max_length`` keeping the start (TRL's default ``keep_start``); a
DPO row whose prompt alone fills ``max_length`` is dropped, as TRL drops it.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from synth_ray.models.chat import full_tokens, prompt_messages, response_message  # noqa: F401
from synth_ray.train.data import _ids, _tokenizer

_IDS = pa.list_(pa.int32())


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def dpo_tokens(
    tokenizer, prompt: Any, chosen: Any, rejected: Any
) -> tuple[list[int], list[int], list[int]]:
    """(prompt_ids, chosen_ids, rejected_ids) as TRL's DPO preparation makes them: the completion
    starts where the tokenized prompt and the tokenized prompt+completion diverge."""
    msgs = prompt_messages(prompt)
    p = _ids(tokenizer.apply_chat_template(msgs, tokenize=True, add_generation_prompt=True))
    c = full_tokens(tokenizer, prompt, chosen)
    r = full_tokens(tokenizer, prompt, rejected)
    n = min(_common_prefix(p, c), _common_prefix(p, r), len(p))
    return p[:n], c[n:], r[n:]


def tokenize_dpo(batch: pa.Table, tokenizer_source: str, max_length: int) -> pa.Table:
    """Ray Data stage: prompt/chosen/rejected -> ``prompt_ids``, ``chosen_ids``,
    ``rejected_ids`` (+ ``n_tokens``, ``n_target`` for the record). Prompt+completion is cut to
    ``max_length`` (start kept); rows whose prompt fills ``max_length`` are dropped."""
    tok = _tokenizer(tokenizer_source)
    out: dict[str, list] = {
        "prompt_ids": [],
        "chosen_ids": [],
        "rejected_ids": [],
        "n_tokens": [],
        "n_target": [],
    }
    for row in batch.to_pylist():
        p, c, r = dpo_tokens(tok, row["prompt"], row["chosen"], row["rejected"])
        if len(p) >= max_length:
            continue
        c, r = c[: max_length - len(p)], r[: max_length - len(p)]
        out["prompt_ids"].append(p)
        out["chosen_ids"].append(c)
        out["rejected_ids"].append(r)
        out["n_tokens"].append(2 * len(p) + len(c) + len(r))
        out["n_target"].append(len(c) + len(r))
    return _table(out, ("prompt_ids", "chosen_ids", "rejected_ids"))


def tokenize_reward_pairs(batch: pa.Table, tokenizer_source: str, max_length: int) -> pa.Table:
    """Ray Data stage: prompt/chosen/rejected -> ``chosen_ids``, ``rejected_ids`` (the whole
    prompt+response, cut to ``max_length``) (+ ``n_tokens``, ``n_target``)."""
    tok = _tokenizer(tokenizer_source)
    out: dict[str, list] = {"chosen_ids": [], "rejected_ids": [], "n_tokens": [], "n_target": []}
    for row in batch.to_pylist():
        c = full_tokens(tok, row["prompt"], row["chosen"])[:max_length]
        r = full_tokens(tok, row["prompt"], row["rejected"])[:max_length]
        out["chosen_ids"].append(c)
        out["rejected_ids"].append(r)
        out["n_tokens"].append(len(c) + len(r))
        out["n_target"].append(len(c) + len(r))
    table = _table(out, ("chosen_ids", "rejected_ids"))
    if "label" in batch.column_names:  # soft_pairwise rows: P(chosen is better)
        table = table.append_column("label", batch.column("label").cast(pa.float32()))
    return table


def tokenize_reward_kwise(batch: pa.Table, tokenizer_source: str, max_length: int) -> pa.Table:
    """Ray Data stage: prompt/responses (best first) -> ``response_ids`` (one full
    prompt+response token list per response, cut to ``max_length``) (+ ``n_tokens``,
    ``n_target``). Rows with fewer than two responses carry no comparison and are dropped."""
    tok = _tokenizer(tokenizer_source)
    out: dict[str, list] = {"response_ids": [], "n_tokens": [], "n_target": []}
    for row in batch.to_pylist():
        responses = list(row["responses"] or [])
        if len(responses) < 2:
            continue
        seqs = [full_tokens(tok, row["prompt"], resp)[:max_length] for resp in responses]
        out["response_ids"].append(seqs)
        n = sum(len(s) for s in seqs)
        out["n_tokens"].append(n)
        out["n_target"].append(n)
    return pa.table(
        {
            "response_ids": pa.array(out["response_ids"], pa.list_(_IDS)),
            "n_tokens": pa.array(out["n_tokens"], pa.int32()),
            "n_target": pa.array(out["n_target"], pa.int32()),
        }
    )


def tokenize_attributes(
    batch: pa.Table, tokenizer_source: str, max_length: int, names: list[str]
) -> pa.Table:
    """Ray Data stage: attribute rows -> ``input_ids`` (the whole prompt+response, cut to
    ``max_length``), ``targets`` (one value per attribute of ``names``, 0 where unrated) and
    ``target_mask`` (1 where rated) (+ ``n_tokens``, ``n_target``)."""
    tok = _tokenizer(tokenizer_source)
    index = {n: i for i, n in enumerate(names)}
    out: dict[str, list] = {"input_ids": [], "targets": [], "target_mask": [], "n_tokens": []}
    for row in batch.to_pylist():
        ids = full_tokens(tok, row["prompt"], row["response"])[:max_length]
        target, mask = [0.0] * len(names), [0.0] * len(names)
        for n, v in zip(row["names"], row["values"]):
            if n in index:
                target[index[n]], mask[index[n]] = float(v), 1.0
        out["input_ids"].append(ids)
        out["targets"].append(target)
        out["target_mask"].append(mask)
        out["n_tokens"].append(len(ids))
    return pa.table(
        {
            "input_ids": pa.array(out["input_ids"], _IDS),
            "targets": pa.array(out["targets"], pa.list_(pa.float32())),
            "target_mask": pa.array(out["target_mask"], pa.list_(pa.float32())),
            "n_tokens": pa.array(out["n_tokens"], pa.int32()),
            "n_target": pa.array([int(sum(m)) for m in out["target_mask"]], pa.int32()),
        }
    )


def _table(out: dict[str, list], id_cols: tuple[str, ...]) -> pa.Table:
    cols = {k: pa.array(out[k], _IDS) for k in id_cols}
    cols["n_tokens"] = pa.array(out["n_tokens"], pa.int32())
    cols["n_target"] = pa.array(out["n_target"], pa.int32())
    return pa.table(cols)


# ----------------------------------------------------------------------------- collates


def _pad(seqs: list[list[int]], value: int):
    import torch

    width = max(len(s) for s in seqs)
    t = torch.full((len(seqs), width), value, dtype=torch.long)
    for k, s in enumerate(seqs):
        t[k, : len(s)] = torch.as_tensor(list(s), dtype=torch.long)
    return t


def _lists(col) -> list[list[int]]:
    return [[int(x) for x in r] for r in col]


def dpo_collate(batch: dict, pad_id: int) -> dict:
    """Numpy batch of ``prompt_ids``/``chosen_ids``/``rejected_ids`` -> the dict TRL's
    ``DPOTrainer._compute_loss`` reads: ``input_ids`` (2B, T) (prompt+chosen rows, then
    prompt+rejected rows), ``attention_mask``, ``completion_mask``, right-padded."""
    prompts = _lists(batch["prompt_ids"])
    chosen, rejected = _lists(batch["chosen_ids"]), _lists(batch["rejected_ids"])
    seqs = [p + c for p, c in zip(prompts, chosen)] + [p + r for p, r in zip(prompts, rejected)]
    comp = [[0] * len(p) + [1] * len(c) for p, c in zip(prompts, chosen)] + [
        [0] * len(p) + [1] * len(r) for p, r in zip(prompts, rejected)
    ]
    return {
        "input_ids": _pad(seqs, pad_id),
        "attention_mask": _pad([[1] * len(s) for s in seqs], 0),
        "completion_mask": _pad(comp, 0),
    }


def reward_collate(batch: dict, pad_id: int) -> dict:
    """Numpy batch of ``chosen_ids``/``rejected_ids`` -> the dict TRL's
    ``RewardTrainer.compute_loss`` reads: ``input_ids`` (2B, T), chosen rows first, and
    ``attention_mask``, right-padded."""
    seqs = _lists(batch["chosen_ids"]) + _lists(batch["rejected_ids"])
    out = {
        "input_ids": _pad(seqs, pad_id),
        "attention_mask": _pad([[1] * len(s) for s in seqs], 0),
    }
    if "label" in batch:  # soft labels (B,): read by the soft-label trainer
        import torch

        out["soft_labels"] = torch.as_tensor(batch["label"], dtype=torch.float32)
    return out


def attributes_collate(batch: dict, pad_id: int) -> dict:
    """Numpy batch of ``input_ids``/``targets``/``target_mask`` -> ``input_ids`` (B, T),
    ``attention_mask``, right-padded, and ``targets``, ``target_mask`` (B, K) float tensors."""
    import numpy as np
    import torch

    seqs = _lists(batch["input_ids"])
    return {
        "input_ids": _pad(seqs, pad_id),
        "attention_mask": _pad([[1] * len(s) for s in seqs], 0),
        "targets": torch.as_tensor(np.stack(list(batch["targets"])), dtype=torch.float32),
        "target_mask": torch.as_tensor(np.stack(list(batch["target_mask"])), dtype=torch.float32),
    }


def kwise_collate(batch: dict, pad_id: int) -> dict:
    """Numpy batch of ``response_ids`` (each row: K_b token lists, best first) -> ``input_ids``
    (B*Kmax, T) row-major (row b's responses at b*Kmax .. b*Kmax+K_b-1), ``attention_mask`` and
    ``lengths`` (B,) = K_b. Missing responses are one-token dummies (masked by ``lengths``)."""
    import torch

    rows = [_lists(r) for r in batch["response_ids"]]
    kmax = max(len(r) for r in rows)
    seqs: list[list[int]] = []
    for r in rows:
        seqs.extend(r + [[pad_id]] * (kmax - len(r)))
    return {
        "input_ids": _pad(seqs, pad_id),
        "attention_mask": _pad([[1] * len(s) for s in seqs], 0),
        "lengths": torch.tensor([len(r) for r in rows], dtype=torch.long),
    }


def shard_batches(config: dict[str, Any], collate, pad_id: int):
    """This worker's share of the ``train`` dataset, batched by ``collate`` (re-iterable)."""
    from functools import partial

    import ray.train

    shard = ray.train.get_dataset_shard("train")
    return shard.iter_torch_batches(
        batch_size=int(config["per_device_batch_size"]), collate_fn=partial(collate, pad_id=pad_id)
    )
