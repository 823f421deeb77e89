"""Training data: from the generation jobs' outputs to padded token batches, on Ray Data.

Inputs are what the generation jobs write, read by Ray Data (never whole by the driver):

- an instruction job's ``OUTPUT_DIR`` or its ``dataset/`` folder (Parquet: instruction, input,
  output), an export of it (Alpaca JSON list, or chat JSONL with ``messages``), or any Parquet /
  JSON(L) with those columns;
- for continued pretraining, WRAP's ``OUTPUT_DIR`` (its ``mix/``: real and synthetic ``text``)
  or any Parquet / JSONL with a text column.

Tokenization runs as a Ray Data stage (CPU tasks, on any node), so training workers receive
ready token rows through ``get_dataset_shard`` and only pad them into batches. For SFT each row
becomes ``input_ids`` and ``labels`` in the model's chat template, the prompt's tokens masked
(-100) so that only the response is learned.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import pyarrow as pa

from synth_ray.io import fs
from synth_ray.models.chat import token_ids

IGNORE_INDEX = -100


def read_training_rows(path: str):
    """A Ray Dataset of the rows at ``path`` (see the module docstring for what it accepts)."""
    import ray.data

    root = fs.absolute(path)
    # a job's OUTPUT_DIR: instruction rows, WRAP's mix, or preference rows
    for sub in ("dataset", "mix", "preferences"):
        if fs.exists(fs.join(root, sub)):
            root = fs.join(root, sub)
            break
    files = fs.list_files(root, (".parquet", ".json", ".jsonl")) if not _is_file(root) else [root]
    if not files:
        raise FileNotFoundError(f"no .parquet/.json/.jsonl training data under {path}")
    parquet = [f for f in files if f.endswith(".parquet")]
    if parquet:
        return ray.data.read_parquet(parquet)
    # JSON: an Alpaca export is one JSON list; chat exports are JSON lines.
    lists = [f for f in files if fs.read_bytes(f)[:1].strip() == b"["]
    if lists:
        rows = [r for f in lists for r in json.loads(fs.read_bytes(f))]
        return ray.data.from_items(rows)
    return ray.data.read_json(files, lines=True)


def _is_file(path: str) -> bool:
    return any(path.endswith(s) for s in (".parquet", ".json", ".jsonl"))


@lru_cache(maxsize=4)
def _tokenizer(source: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(source)


def conversation(row: dict[str, Any]) -> list[dict[str, str]]:
    """The chat messages of a row: ``messages`` as given, or Alpaca fields as user/assistant."""
    if row.get("messages"):
        return [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
    user = row["instruction"] + (f"\n\n{row['input']}" if row.get("input") else "")
    return [{"role": "user", "content": user}, {"role": "assistant", "content": row["output"]}]


def sft_tokens(
    tokenizer, messages: list[dict[str, str]], max_length: int
) -> tuple[list[int], list[int]]:
    """(input_ids, labels): the whole conversation in the chat template; labels keep only the
    last assistant turn (earlier turns and the prompt are masked), truncated to max_length."""
    if messages[-1]["role"] != "assistant":
        raise ValueError("the last message must be the assistant's response")
    prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=True, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(messages, tokenize=True)
    prompt, full = _ids(prompt), _ids(full)
    if full[: len(prompt)] != prompt:
        raise ValueError("chat template: the conversation does not start with its prompt")
    labels = [IGNORE_INDEX] * len(prompt) + full[len(prompt) :]
    return full[:max_length], labels[:max_length]


_ids = token_ids


def tokenize_sft(batch: pa.Table, tokenizer_source: str, max_length: int) -> pa.Table:
    """Ray Data stage: rows -> ``input_ids``, ``labels``, ``n_tokens``, ``n_target``. Rows whose
    response is cut away entirely by ``max_length`` are dropped (nothing to learn)."""
    tok = _tokenizer(tokenizer_source)
    ids, labels = [], []
    for row in batch.to_pylist():
        i, lab = sft_tokens(tok, conversation(row), max_length)
        if any(x != IGNORE_INDEX for x in lab):
            ids.append(i)
            labels.append(lab)
    return pa.table(
        {
            "input_ids": pa.array(ids, pa.list_(pa.int32())),
            "labels": pa.array(labels, pa.list_(pa.int32())),
            "n_tokens": pa.array([len(i) for i in ids], pa.int32()),
            "n_target": pa.array(
                [sum(x != IGNORE_INDEX for x in lab) for lab in labels], pa.int32()
            ),
        }
    )


def pad_collate(batch: dict, pad_id: int) -> dict:
    """Numpy batch of variable-length rows -> padded torch tensors (input_ids, labels,
    attention_mask), padded on the right to the batch's longest row."""
    import torch

    rows = list(batch["input_ids"])
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for k, (r, lab) in enumerate(zip(rows, batch["labels"])):
        ids[k, : len(r)] = torch.as_tensor(r, dtype=torch.long)
        labels[k, : len(lab)] = torch.as_tensor(lab, dtype=torch.long)
        mask[k, : len(r)] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def tokenize_text(
    batch: pa.Table, tokenizer_source: str, max_length: int, text_field: str = "text"
) -> pa.Table:
    """Ray Data stage for causal-LM pretraining: each text (plus EOS) -> ``input_ids`` =
    ``labels`` (every token learned), cut into windows of ``max_length``; empty texts dropped."""
    tok = _tokenizer(tokenizer_source)
    eos = [tok.eos_token_id] if tok.eos_token_id is not None else []
    ids: list[list[int]] = []
    for text in batch.column(text_field).to_pylist():
        if not text or not text.strip():
            continue
        toks = _ids(tok(text, add_special_tokens=True)) + eos
        ids += [toks[k : k + max_length] for k in range(0, len(toks), max_length)]
    ids = [w for w in ids if len(w) > 1]
    return pa.table(
        {
            "input_ids": pa.array(ids, pa.list_(pa.int32())),
            "labels": pa.array(ids, pa.list_(pa.int32())),
            "n_tokens": pa.array([len(w) for w in ids], pa.int32()),
            "n_target": pa.array([len(w) for w in ids], pa.int32()),
        }
    )
