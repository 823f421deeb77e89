"""Training data: from the generation jobs' outputs to padded token batches, on Ray Data.

Inputs are what the generation jobs write, read by Ray Data (never whole by the driver):

- an instruction job's ``OUTPUT_DIR`` or its ``dataset/`` folder (Parquet: instruction, input,
  output), an export of it (Alpaca JSON list, or chat JSONL with ``messages``), or any Parquet /
  JSON(L) with those columns;
- for continued pretraining, WRAP's ``OUTPUT_DIR`` (its ``mix/``: real and synthetic ``text``)
  or any Parquet / JSONL with a text column;
- for DPO and reward models, preference rows (``prompt``/``chosen``/``rejected``, or ranked
  ``responses``): a job's ``preferences/``, an export, any Parquet / JSON(L).

They are read as the document readers read documents (``synth_ray.io.rows``): files, folders or
globs, JSONL plain or compressed (codec by magic bytes, a BOM skipped), Parquet, file by file in
Ray Data tasks, each record brought to its kind's canonical shape (SFT: ``messages``). Every bad
record or file (malformed JSON, a missing, empty or mistyped field, a corrupt file) becomes a
reject with its reason in the run's ``rejects/`` and training goes on with the rest; only an input
with no file, or with no usable row at all, stops the job (``TrainingInputError``, naming it).

Tokenization runs as a Ray Data stage (CPU tasks, on any node), so training workers receive
ready token rows through ``get_dataset_shard`` and only pad them into batches. For SFT each row
becomes ``input_ids`` and ``labels`` in the model's chat template, the prompt's tokens masked
(-100) so that only the response is learned.
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache
from typing import Any

import pyarrow as pa

from synth_ray.config import ConfigError
from synth_ray.io import fs
from synth_ray.io.lines import COMPRESSED_SUFFIXES
from synth_ray.io.readers import InputError, ReadOptions, find_inputs
from synth_ray.io.rows import read_rows, read_rows_local
from synth_ray.models.chat import token_ids

IGNORE_INDEX = -100


class TrainingInputError(ConfigError):
    """A training input with no file, or whose every record was rejected; names the input."""


def training_input(path: str) -> str:
    """Where the rows of ``path`` are: a job's ``OUTPUT_DIR`` stands for its ``dataset/``
    (instruction rows), ``mix/`` (WRAP) or ``preferences/``; anything else is itself."""
    root = fs.absolute(path)
    for sub in ("dataset", "mix", "preferences"):
        if fs.exists(fs.join(root, sub)):
            return fs.join(root, sub)
    return root


def _files(path: str) -> str:
    root = training_input(path)
    try:
        find_inputs(root)
    except InputError:
        raise TrainingInputError(
            f"field 'input': no training data at {path} (looked for .parquet, .json, .jsonl, "
            f".ndjson files, plain or {'/'.join(COMPRESSED_SUFFIXES)}, at {root})"
        ) from None
    return root


def read_training_rows(path: str, kind: str, rejects_dir: str, text_field: str = "text"):
    """A Ray Dataset of the canonical ``kind`` rows at ``path`` (``synth_ray.io.rows``: sft,
    text, pairwise, kwise), read file by file; every bad record or file is a reject with its
    reason in ``rejects_dir``. ``text_field``: the input's text field (``text`` kind)."""
    if not rejects_dir:
        raise ValueError("read_training_rows: rejects_dir is required (the run's rejects/)")
    opts = ReadOptions(text_field=text_field, id_field=None, rejects_dir=rejects_dir)
    return read_rows(_files(path), kind, opts)


def read_training_rows_local(path: str, kind: str, text_field: str = "text"):
    """(rows, rejects) as ``read_training_rows``, read in this process without Ray (small
    inputs read before a job starts, such as a loop's seed pairs)."""
    opts = ReadOptions(text_field=text_field, id_field=None)
    return read_rows_local(_files(path), kind, opts)


def no_usable_rows(path: str, rejects_dir: str) -> TrainingInputError:
    """The error of an input whose every record was rejected: the input, how many records
    and files were rejected and why, where the rejects are."""
    from synth_ray.io.rejects import read_rejects

    table = read_rejects(rejects_dir)
    rows = [r for r in table.to_pylist() if r["stage"] == "read"]
    seen = {(r["source"], r["line"], r["reason"]) for r in rows}
    reasons = Counter(reason for _, _, reason in seen)
    files = len({source for source, _, _ in seen})
    why = ", ".join(f"{k} {n}" for k, n in reasons.most_common()) or "nothing read"
    return TrainingInputError(
        f"field 'input': no usable training rows in {path}: {len(seen)} reject(s) from "
        f"{files} file(s) ({why}); each is in {rejects_dir} with its reason"
    )


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


def instruction_pairs(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    """(instruction, output) pairs of SFT rows, ``messages`` (first user and assistant turns)
    or Alpaca fields (instruction + input); rows with an empty side are left out."""
    pairs = []
    for r in rows:
        if r.get("messages"):
            msgs = r["messages"]
            user = next((m["content"] for m in msgs if m["role"] == "user"), "")
            out = next((m["content"] for m in msgs if m["role"] == "assistant"), "")
        else:
            user = (r.get("instruction") or "") + (f"\n\n{r['input']}" if r.get("input") else "")
            out = r.get("output") or ""
        if user.strip() and out.strip():
            pairs.append({"instruction": user, "output": out})
    return pairs


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
