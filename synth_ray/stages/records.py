"""Instruction records: the output table of instruction-generation jobs, and the helpers the
jobs share to build requests and write results.

``OUTPUT_DIR/dataset/`` holds one row per (instruction, input, output) with its lineage:

    id            stable hash of the record's content
    instruction   str
    input         str ("" when the task takes no input)
    output        str
    method        self_instruct | unnatural | alpaca
    round         int, the generation round the instruction came from
    seed_ids      list<str>, the ids of the tasks shown in the prompt that produced it
    request_id    the generation request the instruction was parsed from
    model         the model that generated it (as configured)
    run_id        the run that wrote the table
    extra         str, JSON of method-specific fields (is_classification, constraints, ...)

``synth-ray export`` turns it into Alpaca JSON or chat JSONL.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from synth_ray.engines.base import INVALID_REQUEST, SamplingConfig
from synth_ray.io import fs
from synth_ray.io.ids import stable_hash

DATASET_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("instruction", pa.string()),
        ("input", pa.string()),
        ("output", pa.string()),
        ("method", pa.string()),
        ("round", pa.int64()),
        ("seed_ids", pa.list_(pa.string())),
        ("request_id", pa.string()),
        ("model", pa.string()),
        ("run_id", pa.string()),
        ("extra", pa.string()),
    ]
)


def record_id(method: str, instruction: str, input_: str, output: str) -> str:
    return f"{method}-{stable_hash(instruction, input_, output, length=20)}"


def request_id(prefix: str, prompt: Any, sampling: str, model_id: str) -> str:
    """An id naming the exact request: a changed prompt, sampling or model (its content
    fingerprint, ``ResolvedModel.fingerprint``) is a different request."""
    return f"{prefix}-{stable_hash(prompt, sampling, model_id, length=16)}"


def stage_sampling(base: SamplingConfig, schema: dict | None, key: str | None = None) -> str:
    """The sampling JSON of one request of a stage.

    With a JSON schema, stop strings are dropped (a stop string inside a JSON string value
    would cut the record short). With a seed and a ``key`` (e.g. the item the request is
    about), the request's seed is ``seed + hash(key)``: requests of a stage differ from each
    other, and a rerun repeats each one exactly.
    """
    update: dict[str, Any] = {}
    if schema is not None:
        update.update(json_schema=schema, stop=[])
    if key is not None and base.seed is not None:
        update["seed"] = (base.seed + int(stable_hash(key, length=8), 16)) % (2**31)
    return base.model_copy(update=update).to_json() if update else base.to_json()


def error_reason(error: str) -> str:
    """Reject reason of a failed generation: ``invalid_request`` (e.g. a prompt longer than
    the context: final) or ``generation_error`` (retried by the next run)."""
    return "invalid_request" if error.startswith(INVALID_REQUEST) else "generation_error"


def write_table_dir(path: str, table: pa.Table, name: str = "part") -> str:
    """Replace the Parquet files under ``path`` by ``table`` as one file named by its content.

    The new file is written first (atomically), then the old ones removed: a crash leaves the
    old table or both, never neither; readers take the newest complete state on the rerun.
    """
    buf = io.BytesIO()
    pq.write_table(table, buf)
    data = buf.getvalue()
    fs.makedirs(path)
    target = fs.join(path, f"{name}-{stable_hash(data.hex(), length=16)}.parquet")
    old = [f for f in fs.list_files(path, (".parquet",)) if f != target]
    fs.write_bytes(target, data)
    for f in old:
        fs.delete_file(f)
    return target


def write_dataset(path: str, rows: list[dict]) -> int:
    """Write instruction records (``DATASET_SCHEMA``; ``extra`` may be a dict) sorted by id."""
    norm = []
    for r in sorted(rows, key=lambda r: r["id"]):
        extra = r.get("extra") or {}
        norm.append(
            {
                **{k: r.get(k) for k in DATASET_SCHEMA.names},
                "extra": extra if isinstance(extra, str) else json.dumps(extra, sort_keys=True),
            }
        )
    write_table_dir(path, pa.Table.from_pylist(norm, schema=DATASET_SCHEMA))
    return len(norm)


# -- preference rows -------------------------------------------------------------------------
# ``OUTPUT_DIR/preferences/`` (or a loop iteration's): one row per (prompt, chosen, rejected) in
# the columns TRL's DPOTrainer and RewardTrainer read (its "standard" preference format with an
# explicit prompt), plus scores and lineage. ``synth-ray export --format preferences`` writes
# them as JSONL; ``method: dpo`` / ``method: reward`` train on the folder as it is.
PREFERENCE_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("prompt", pa.string()),
        ("chosen", pa.string()),
        ("rejected", pa.string()),
        ("score_chosen", pa.float64()),
        ("score_rejected", pa.float64()),
        ("model_chosen", pa.string()),  # who wrote each response (a model id, or "seed"/"human")
        ("model_rejected", pa.string()),
        ("method", pa.string()),
        ("iteration", pa.int64()),
        ("run_id", pa.string()),
        ("extra", pa.string()),  # JSON: judge samples, request ids, the prompt's source, ...
    ]
)


def preference_id(method: str, prompt: str, chosen: str, rejected: str) -> str:
    return f"{method}-{stable_hash(prompt, chosen, rejected, length=20)}"


def write_preferences(path: str, rows: list[dict]) -> int:
    """Write preference rows (``PREFERENCE_SCHEMA``; ``extra`` may be a dict; ``id`` is made
    from the content when absent), sorted by id, atomically (``write_table_dir``)."""
    norm = []
    for r in rows:
        for col in ("prompt", "chosen", "rejected"):
            if not isinstance(r.get(col), str) or not r[col].strip():
                raise ValueError(f"preference row without a {col!r} text: {str(r)[:200]}")
        extra = r.get("extra") or {}
        rid = r.get("id") or preference_id(
            r.get("method") or "", r["prompt"], r["chosen"], r["rejected"]
        )
        norm.append(
            {
                **{k: r.get(k) for k in PREFERENCE_SCHEMA.names},
                "id": rid,
                "extra": extra if isinstance(extra, str) else json.dumps(extra, sort_keys=True),
            }
        )
    norm.sort(key=lambda r: r["id"])
    write_table_dir(path, pa.Table.from_pylist(norm, schema=PREFERENCE_SCHEMA))
    return len(norm)
