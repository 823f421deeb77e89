"""Unnatural Instructions completion parsers and example filters (survey: Unnatural Instructions).

The survey: generated instruction-input pairs are removed when they "(i) didn't contain expected
fields, (ii) were identical to the examples in the few-shot prompt, and (iii) were duplicates".

- :func:`parse_example_reason` reads the continuation of ``... Example 4\\n``: the fields are the
  text after line-start ``Instruction:``, ``Input:`` and ``Constraints:`` labels, each up to the
  next label; reading stops at a line-start ``Example N`` (the ``Example 5`` stop applied again for
  engines that ran past it; a leading repeated ``Example 4`` line is skipped), and the
  constraints end at the first blank line (trailing chatter). A missing or empty field gives
  ``missing_instruction`` / ``missing_input`` / ``missing_constraints`` (rule (i)).
- :func:`is_shot_copy` is rule (ii): the same instruction and input as a prompt example
  (whitespace-normalized; constraints ignored, they restate the instruction).
- :func:`dedup_key` is rule (iii): (instruction, input, constraints) with whitespace collapsed;
  equal keys are duplicates (case is kept: exact duplicates, as the paper).
- :func:`parse_output`: the greedy continuation after ``Output:``, stripped; ``None`` when empty
  (such examples are dropped).
- :func:`parse_reformulation_reason`: the continuation after ``Alternative formulation:`` up to
  a blank line or a line-start ``Example``; rejected as ``empty``, ``identical`` (equal to the
  original instruction after whitespace and case folding, the ``{INPUT}`` placeholder ignored) or
  ``missing_placeholder`` (ours: a formulation without ``{INPUT}`` would drop the task's input;
  ``require_placeholder``). Placeholder spellings such as ``{input}`` or ``{ INPUT }`` are
  normalized to ``{INPUT}``. :func:`expand_reformulation` substitutes the input.
"""

from __future__ import annotations

import re
from typing import Any

from synth_ray.stages.parse import json_object

__all__ = [
    "EXAMPLE_JSON_SCHEMA",
    "INPUT_PLACEHOLDER",
    "dedup_key",
    "expand_reformulation",
    "is_shot_copy",
    "parse_example",
    "parse_example_json",
    "parse_example_reason",
    "parse_output",
    "parse_reformulation",
    "parse_reformulation_reason",
]

INPUT_PLACEHOLDER = "{INPUT}"

EXAMPLE_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "instruction": {"type": "string"},
        "input": {"type": "string"},
        "constraints": {"type": "string"},
    },
    "required": ["instruction", "input", "constraints"],
}

_FIELDS = ("instruction", "input", "constraints")
_LABEL = re.compile(r"(?im)^[ \t]*(instruction|input|constraints)[ \t]*:[ \t]*")
_EXAMPLE_LINE = re.compile(r"(?m)^[ \t]*Example[ \t]*\d+[ \t]*:?[ \t]*$")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_WS = re.compile(r"\s+")


def _norm(text: str) -> str:
    return _WS.sub(" ", text or "").strip()


def parse_example_reason(completion: str) -> tuple[dict | None, str | None]:
    """``({instruction, input, constraints}, None)`` or ``(None, "missing_<field>")``."""
    text = (completion or "").lstrip()
    first = _EXAMPLE_LINE.match(text)
    if first:  # the model repeated the "Example 4" line
        text = text[first.end() :]
    nxt = _EXAMPLE_LINE.search(text)
    if nxt:
        text = text[: nxt.start()]
    labels = list(_LABEL.finditer(text))
    fields: dict[str, str] = {}
    for i, m in enumerate(labels):
        key = m.group(1).lower()
        if key in fields:
            continue  # only the first occurrence of a label counts
        end = labels[i + 1].start() if i + 1 < len(labels) else len(text)
        fields[key] = text[m.end() : end].strip()
    if "constraints" in fields:
        fields["constraints"] = _BLANK_LINE.split(fields["constraints"], 1)[0].strip()
    for key in _FIELDS:
        if not fields.get(key):
            return None, f"missing_{key}"
    return {k: fields[k] for k in _FIELDS}, None


def parse_example(completion: str) -> dict | None:
    """The generated example, or None when a field is missing (see :func:`parse_example_reason`)."""
    return parse_example_reason(completion)[0]


def parse_example_json(completion: str) -> dict | None:
    """The example from ``{"instruction", "input", "constraints"}``; None when invalid or a
    field is missing, empty or not a string."""
    obj = json_object(completion or "")
    if obj is None:
        return None
    out: dict[str, str] = {}
    for key in _FIELDS:
        value = obj.get(key)
        if not isinstance(value, str) or not value.strip():
            return None
        out[key] = value.strip()
    return out


def parse_output(completion: str) -> str | None:
    """The output (the continuation after ``Output:``), stripped; None when empty."""
    out = (completion or "").strip()
    return out or None


def dedup_key(example: dict) -> tuple[str, str, str]:
    """(instruction, input, constraints), whitespace collapsed: equal keys are duplicates."""
    return tuple(_norm(str(example.get(k) or "")) for k in _FIELDS)  # type: ignore[return-value]


def is_shot_copy(example: dict, shots: list[dict]) -> bool:
    """True when the example has the instruction and input of one of the prompt's shots."""
    key = dedup_key(example)[:2]
    return any(dedup_key(s)[:2] == key for s in shots)


_PLACEHOLDER_VARIANTS = re.compile(r"\{\s*input\s*\}", flags=re.IGNORECASE)
_REFORM_END = re.compile(r"\n[ \t]*\n|(?:^|\n)[ \t]*Example[ \t]*\d+")


def _fold(text: str) -> str:
    return _norm(text.replace(INPUT_PLACEHOLDER, " ")).casefold()


def parse_reformulation_reason(
    completion: str, example: dict, *, require_placeholder: bool = True
) -> tuple[str | None, str | None]:
    """``(formulation with {INPUT}, None)`` or ``(None, "empty" | "identical" |
    "missing_placeholder")``."""
    text = (completion or "").lstrip(" \t")
    end = _REFORM_END.search(text)
    if end:
        text = text[: end.start()]
    text = _PLACEHOLDER_VARIANTS.sub(INPUT_PLACEHOLDER, text).strip()
    if not text:
        return None, "empty"
    if _fold(text) == _fold(str(example.get("instruction") or "")):
        return None, "identical"
    has_input = bool(str(example.get("input") or "").strip())
    if require_placeholder and has_input and INPUT_PLACEHOLDER not in text:
        return None, "missing_placeholder"
    return text, None


def parse_reformulation(
    completion: str, example: dict, *, require_placeholder: bool = True
) -> str | None:
    """An alternative formulation (with ``{INPUT}``), or None; see the module doc."""
    text, _ = parse_reformulation_reason(
        completion, example, require_placeholder=require_placeholder
    )
    return text


def expand_reformulation(reformulation: str, example: dict) -> str:
    """The formulation with the example's input in place of ``{INPUT}`` (the paper's
    ``instruction_with_input``)."""
    return reformulation.replace(INPUT_PLACEHOLDER, str(example.get("input") or "").strip())
