"""``synth-ray export``: an instruction run's final rows in the formats finetuning tools read.

Reads ``RUN_DIR/dataset/*.parquet`` (columns ``id``, ``instruction``, ``input``, ``output``; the
lineage columns and the other folders, ``data/`` and ``rejects/``, are ignored) and writes:

    alpaca     one JSON file, a list of ``{"instruction", "input", "output"}`` (Alpaca's format)
    messages   JSONL, one ``{"messages": [system?, user, assistant]}`` per line; the user turn is
               the instruction, then ``"\\n\\n" + input`` when there is an input

    preferences  JSONL, one ``{"prompt", "chosen", "rejected"}`` per line from
               ``RUN_DIR/preferences/`` (TRL's standard preference format with an explicit
               prompt: DPOTrainer and RewardTrainer read it; ``score_chosen``/``score_rejected``
               are kept when set)

All load with ``datasets.load_dataset("json", data_files=...)``. TRL's ``SFTTrainer`` trains on
the messages file as is (conversational language modeling); for the Alpaca file it needs a
``formatting_func`` that renders a row to text (Alpaca's columns are none of TRL's dataset types).

Rows are written sorted by id (ties keep file order), UTF-8 with ``ensure_ascii=False``. Rows
whose instruction or output is empty (or blank) are skipped and counted by reason. The output is
written whole to a temporary file and renamed, so a crash leaves no half-written file. The run
directory is only read: unlike a job's resume, an unreadable Parquet file is an error here, never
moved aside.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Literal

import pyarrow as pa
import pyarrow.parquet as pq

from synth_ray.io import fs
from synth_ray.io.layout import read_parquet_dir

Format = Literal["alpaca", "messages", "preferences"]
FORMATS: tuple[str, ...] = ("alpaca", "messages", "preferences")
REQUIRED_COLUMNS: tuple[str, ...] = ("id", "instruction", "input", "output")
DEFAULT_NAMES = {
    "alpaca": "alpaca.json",
    "messages": "messages.jsonl",
    "preferences": "preferences.jsonl",
}

# Line breaks to Python's str.splitlines() that json.dumps(ensure_ascii=False) leaves raw: escaped
# in JSONL so that every reader sees one row per line (the JSON value is the same).
_LINE_BREAKS = {"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def default_out_path(run_dir: str, fmt: Format) -> str:
    """``RUN_DIR/export/alpaca.json`` or ``RUN_DIR/export/messages.jsonl``."""
    return fs.join(fs.absolute(run_dir), "export", DEFAULT_NAMES[fmt])


def _check_dataset(dataset_dir: str) -> None:
    """Fail clearly, before reading rows, when ``dataset_dir`` cannot be exported.

    Every file's schema is checked first: reading a file that lacks a requested column fails in
    pyarrow as if the file were corrupt, and ``read_parquet_dir`` would move it aside.
    """
    if not fs.exists(dataset_dir):
        raise FileNotFoundError(
            f"no dataset folder: {dataset_dir} (is this an instruction run's directory?)"
        )
    files = fs.list_files(dataset_dir, (".parquet",))
    if not files:
        raise FileNotFoundError(f"no Parquet files in {dataset_dir}")
    for f in files:
        fsys, p = fs.filesystem(f)
        try:
            with fsys.open_input_file(p) as fh:
                schema = pq.read_schema(fh)
        except (pa.ArrowInvalid, OSError) as exc:
            raise ValueError(f"unreadable Parquet file {f}: {exc}") from None
        missing = [c for c in REQUIRED_COLUMNS if c not in schema.names]
        if missing:
            raise ValueError(
                f"{f} lacks the required column(s) {', '.join(missing)} "
                f"(needs {', '.join(REQUIRED_COLUMNS)}; has {', '.join(schema.names)})"
            )
        types = {c: schema.field(c).type for c in REQUIRED_COLUMNS}
        wrong = [
            f"{c}: {t}"
            for c, t in types.items()
            if not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t))
        ]
        if wrong:
            raise ValueError(f"{f}: required column(s) not strings: {', '.join(wrong)}")


def _user_content(instruction: str, input_: str) -> str:
    return f"{instruction}\n\n{input_}" if input_ else instruction


def _jsonl_line(obj: dict) -> str:
    line = json.dumps(obj, ensure_ascii=False)
    for ch, esc in _LINE_BREAKS.items():
        if ch in line:  # only inside string values: a raw one is never JSON syntax
            line = line.replace(ch, esc)
    return line + "\n"


def export(run_dir: str, out_path: str, fmt: Format, *, system_prompt: str | None = None) -> dict:
    """Export ``RUN_DIR/dataset/`` to ``out_path`` in ``fmt``; returns the counts.

    ``{"format", "out", "rows", "written", "skipped": {reason: n}}`` with rows = written + the
    skipped ones. ``system_prompt`` (messages only) leads every conversation as a system turn.
    Raises FileNotFoundError when there is no dataset folder or Parquet file in it, ValueError
    for a missing or non-string required column, an unreadable file, or a bad format.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if system_prompt and fmt != "messages":
        raise ValueError(
            "a system prompt applies to the messages format only (Alpaca has no system field)"
        )
    if fmt == "preferences":
        return export_preferences(run_dir, out_path)
    dataset_dir = fs.join(fs.absolute(run_dir), "dataset")
    _check_dataset(dataset_dir)
    table = read_parquet_dir(dataset_dir, columns=list(REQUIRED_COLUMNS))
    rows = table.to_pylist() if table is not None else []

    skipped: Counter[str] = Counter()
    kept = []
    for r in rows:
        instruction, output = r["instruction"] or "", r["output"] or ""
        if r["id"] is None:
            skipped["missing_id"] += 1
        elif not instruction.strip():
            skipped["empty_instruction"] += 1
        elif not output.strip():
            skipped["empty_output"] += 1
        else:
            kept.append((r["id"], instruction, r["input"] or "", output))
    kept.sort(key=lambda k: k[0])  # stable: equal ids keep file order

    if fmt == "alpaca":
        records = [{"instruction": i, "input": x, "output": o} for _, i, x, o in kept]
        data = json.dumps(records, ensure_ascii=False, indent=2) + "\n"
    else:
        system = [{"role": "system", "content": system_prompt}] if system_prompt else []
        data = "".join(
            _jsonl_line(
                {
                    "messages": [
                        *system,
                        {"role": "user", "content": _user_content(i, x)},
                        {"role": "assistant", "content": o},
                    ]
                }
            )
            for _, i, x, o in kept
        )
    out = fs.absolute(out_path)
    fs.write_bytes(out, data.encode("utf-8"))
    return {
        "format": fmt,
        "out": out,
        "rows": len(rows),
        "written": len(kept),
        "skipped": dict(sorted(skipped.items())),
    }


def export_preferences(run_dir: str, out_path: str) -> dict:
    """``RUN_DIR/preferences/`` -> JSONL of prompt/chosen/rejected (+ scores), sorted by id;
    rows with an empty text are skipped and counted."""
    pref_dir = fs.join(fs.absolute(run_dir), "preferences")
    if not fs.exists(pref_dir) or not fs.list_files(pref_dir, (".parquet",)):
        raise FileNotFoundError(f"no preference rows: {pref_dir} (is this a preference run?)")
    table = read_parquet_dir(pref_dir)
    rows = sorted(table.to_pylist(), key=lambda r: r["id"] or "") if table is not None else []
    skipped: Counter[str] = Counter()
    lines = []
    for r in rows:
        empty = [c for c in ("prompt", "chosen", "rejected") if not (r.get(c) or "").strip()]
        if empty:
            skipped[f"empty_{empty[0]}"] += 1
            continue
        obj = {"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]}
        for c in ("score_chosen", "score_rejected"):
            if r.get(c) is not None:
                obj[c] = r[c]
        lines.append(_jsonl_line(obj))
    out = fs.absolute(out_path)
    fs.write_bytes(out, "".join(lines).encode("utf-8"))
    return {
        "format": "preferences",
        "out": out,
        "rows": len(rows),
        "written": len(lines),
        "skipped": dict(sorted(skipped.items())),
    }
