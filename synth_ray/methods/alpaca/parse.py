"""Alpaca completion parsers and instruction filter (survey: Alpaca).

Rules of tatsu-lab/stanford_alpaca ``post_process_gpt3_response`` (``generate_instruction.py``):
the completion continues ``... ###\\n4. Instruction:``; it is prefixed with that marker and split
on ``###``; the k-th piece must split on ``<n>\\.\\s+(Instruction|Input|Output):`` with
``n = num_prompt_examples + 1 + k`` into exactly 7 parts, else it is dropped (a malformed item,
or one numbered out of order, is lost, and so are all the later ones whose number no longer
matches their position). Deviation: the three labels must also come in the order Instruction,
Input, Output (the reference would read swapped labels into the wrong fields). When
``finish_reason == "length"`` the last piece is dropped (likely cut). ``<noinput>`` (any case)
becomes ``""``; fields are stripped.

The reference then filters instructions, which here is separate: :func:`alpaca_reject_reason`
(word bounds 4..150, :data:`~synth_ray.filters.instructions.ALPACA_BLOCKLIST`, "Write a program"
prefix, punctuation or non-ASCII first character) so the job can record reasons; see
:mod:`synth_ray.filters.instructions` for the one named deviation (the prefix matches
case-insensitively). Like the reference, no filter looks at the input or output.
"""

from __future__ import annotations

import re
from typing import Any

from synth_ray.filters.instructions import ALPACA_BLOCKLIST, instruction_reject_reason
from synth_ray.stages.parse import json_object

__all__ = ["BATCH_JSON_SCHEMA", "alpaca_reject_reason", "parse_batch", "parse_batch_json"]

BATCH_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "tasks": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "instruction": {"type": "string"},
                    "input": {"type": "string"},
                    "output": {"type": "string"},
                },
                "required": ["instruction", "input", "output"],
            },
        }
    },
    "required": ["tasks"],
}


def _input(text: str) -> str:
    text = text.strip()
    return "" if text.lower() == "<noinput>" else text


def parse_batch(
    completion: str, *, num_prompt_examples: int = 3, finish_reason: str = "stop"
) -> list[dict]:
    """``[{instruction, input, output}, ...]`` from a continuation of ``encode_prompt``."""
    raw = f"{num_prompt_examples + 1}. Instruction:" + (completion or "")
    pieces = raw.split("###")
    out: list[dict] = []
    for k, piece in enumerate(pieces):
        if k == len(pieces) - 1 and finish_reason == "length":
            continue
        n = num_prompt_examples + 1 + k
        parts = re.split(rf"{n}\.\s+(Instruction|Input|Output):", piece)
        if len(parts) != 7 or parts[1::2] != ["Instruction", "Input", "Output"]:
            continue
        instruction, inp, output = parts[2].strip(), _input(parts[4]), parts[6].strip()
        out.append({"instruction": instruction, "input": inp, "output": output})
    return out


def parse_batch_json(completion: str) -> list[dict]:
    """Tasks from ``{"tasks": [{"instruction", "input", "output"}]}``; [] when invalid.

    Items lacking a string field or with an empty instruction are skipped; ``<noinput>`` -> ""."""
    obj = json_object(completion or "")
    tasks = obj.get("tasks") if obj else None
    if not isinstance(tasks, list):
        return []
    out: list[dict] = []
    for t in tasks:
        if not isinstance(t, dict):
            continue
        fields = [t.get(k) for k in ("instruction", "input", "output")]
        if not all(isinstance(f, str) for f in fields) or not fields[0].strip():
            continue
        instruction, inp, output = fields[0].strip(), _input(fields[1]), fields[2].strip()
        out.append({"instruction": instruction, "input": inp, "output": output})
    return out


def alpaca_reject_reason(example: dict) -> str | None:
    """None when the example's instruction passes Alpaca's filters, else the reason."""
    return instruction_reject_reason(example.get("instruction") or "", blocklist=ALPACA_BLOCKLIST)
