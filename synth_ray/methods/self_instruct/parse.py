"""Self-Instruct completion parsers and instance filters (survey: Self-Instruct).

Rules follow the reference implementation yizhongw/self-instruct (``post_process_gpt3_response``
in ``bootstrap_instructions.py``; ``parse_instances_for_*``, ``filter_invalid_instances`` and
``filter_duplicate_instances`` in ``prepare_for_finetuning.py``; the ``Yes``/``yes``/``YES`` test
of ``generate_instances.py``). Instruction filters are *not* applied here: the job applies
:func:`synth_ray.filters.instructions.instruction_reject_reason` so it can record reasons.

Tasks (:func:`parse_tasks`): the completion continues ``... Task 9:``. Items are split at line
starts ``Task N:`` (the paper's numbering) or ``N.`` (the reference's ``\\n\\d+\\s?\\. ``).
Reference rules: the whole response is dropped when ``finish_reason == "length"``
(``drop_truncated=True``); whitespace is collapsed. Named deviations / additions:

- ``drop_truncated=False`` keeps a truncated response but drops its last (possibly cut) item.
- The completion is cut at its first blank line: the reference's ``"\\n\\n"`` stop applied again,
  for engines or chat models that run past it (trailing chatter).
- A line-start marker numbered ``first_number`` (a model repeating ``Task 9:``) starts the list:
  text before it is preamble and dropped.
- ``strict_numbering=True`` stops at the first marker that is not the next number
  (default ``False``, as the reference, which splits on any number).
- ``capitalize`` is not applied (the reference's ``str.capitalize``; see
  :func:`synth_ray.filters.instructions.normalize_instruction`).

Instances (:func:`parse_instances`), input-first: blocks split at line-start ``Example N``; in
each, the input is the text before ``Output:`` (``Output\\s*\\d*\\s*:``, a leading ``Input N:``
label removed) and the output the text after it (up to a second ``Output:`` or an ``Input N:``).
With no ``Example`` but an ``Output:``, the whole completion is one pair. Output-first: blocks
split at ``Class label:``; the rest of that line is the label (the output), the following lines
the input. Text from a line-start ``Task:`` on is ignored (the reference's stop). With
``finish_reason="length"`` the last pair is dropped (reference). Deviations: an ``Example``
block without ``Output:`` is skipped (the reference keeps the whole block as an output with an
empty input); an empty ``Class label:`` line gives an empty label (the reference strips the
block first and takes the next line as the label); pairs with an empty output are skipped here
already.

:func:`filter_instances` (the survey: "exclude input-output pairs that are identical, or where the
input is identical but has different output"), reasons in order of checking: ``empty_output``,
``input_equals_output``, ``ends_with_colon`` (reference: an input or output ending with ``:`` is
usually an incomplete generation; kept, ``drop_colon_endings``), ``same_input_different_output``
(pairs sharing a non-empty input with different outputs: all pairs with that input are rejected;
the reference rejects *every* pair of the task, ``drop_task_on_conflict=True``), ``duplicate``
(an exact repeat; the first is kept). Not kept here: the reference's random cap of 5 instances
per task (:data:`~synth_ray.methods.self_instruct.prompts.MAX_INSTANCES_PER_TASK`, the job's
choice) and its fine-tuning-time rewrites (random field-name removal and encoding templates).
"""

from __future__ import annotations

import re
from typing import Any

from synth_ray.stages.parse import json_object

__all__ = [
    "CLASSIFY_JSON_SCHEMA",
    "CLF_INSTANCES_JSON_SCHEMA",
    "INSTANCES_JSON_SCHEMA",
    "TASKS_JSON_SCHEMA",
    "filter_instances",
    "parse_instances",
    "parse_instances_json",
    "parse_is_classification",
    "parse_tasks",
    "parse_tasks_json",
]

Pair = tuple[str, str]

# Schemas of the structured-output option (bounded: a weak model must close its record).
TASKS_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "tasks": {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "minItems": 1,
            "maxItems": 7,
        }
    },  # the paper's tasks 9..15
    "required": ["tasks"],
    "additionalProperties": False,
}
CLASSIFY_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"is_classification": {"type": "string", "enum": ["Yes", "No"]}},
    "required": ["is_classification"],
    "additionalProperties": False,
}


def _instances_schema(fields: tuple[str, str]) -> dict[str, Any]:
    item = {
        "type": "object",
        "properties": {f: {"type": "string"} for f in fields},
        "required": list(fields),
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {
            "instances": {"type": "array", "items": item, "minItems": 1, "maxItems": 5}
        },  # up to 5 instances (paper)
        "required": ["instances"],
        "additionalProperties": False,
    }


INSTANCES_JSON_SCHEMA = _instances_schema(("input", "output"))
CLF_INSTANCES_JSON_SCHEMA = _instances_schema(("class_label", "input"))

_WS = re.compile(r"\s+")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_TASK_MARKER = re.compile(r"\n[ \t]*(?:Task[ \t]*(\d+)[ \t]*[:.]|(\d+)[ \t]?\.(?=[ \t]))")


def _norm(text: str) -> str:
    return _WS.sub(" ", text).strip()


def parse_tasks(
    completion: str,
    *,
    finish_reason: str = "stop",
    first_number: int = 9,
    drop_truncated: bool = True,
    strict_numbering: bool = False,
) -> list[str]:
    """New instructions from a continuation of :func:`~.prompts.generation_prompt`."""
    truncated = finish_reason == "length"
    if truncated and drop_truncated:
        return []
    text = (completion or "").lstrip()
    blank = _BLANK_LINE.search(text)
    if blank:
        text, truncated = text[: blank.start()], False  # the items before a blank line are whole
    text = "\n" + text
    markers = [(m, int(m.group(1) or m.group(2))) for m in _TASK_MARKER.finditer(text)]
    start = 0
    if markers and markers[0][1] == first_number:  # repeated "Task 9:" after a preamble
        start = markers[0][0].end()
        markers = markers[1:]
    items: list[str] = []
    pos, expected = start, first_number + 1
    for m, number in markers:
        if strict_numbering and number != expected:
            truncated = False  # what follows is not part of the list
            items.append(text[pos : m.start()])
            pos = None
            break
        items.append(text[pos : m.start()])
        pos, expected = m.end(), number + 1
    if pos is not None:
        items.append(text[pos:])
    out = [_norm(it) for it in items]
    if truncated and out:
        out = out[:-1]
    return [it for it in out if it]


def parse_tasks_json(completion: str) -> list[str]:
    """Instructions from ``{"tasks": [string, ...]}``; [] when the JSON is invalid."""
    obj = json_object(completion or "")
    tasks = obj.get("tasks") if obj else None
    if not isinstance(tasks, list):
        return []
    return [t for t in (_norm(x) for x in tasks if isinstance(x, str)) if t]


_YES_NO = re.compile(r"\W*([A-Za-z]+)")


def parse_is_classification(completion: str) -> bool | None:
    """True/False from the first word (yes/no, any case) of the answer; None otherwise.

    The reference accepts exactly ``Yes``/``yes``/``YES`` after stripping and counts anything
    else as "no"; here the first word decides and an unclear answer is ``None``.
    """
    m = _YES_NO.match(completion or "")
    if not m:
        return None
    word = m.group(1).lower()
    return True if word == "yes" else False if word == "no" else None


_NEXT_TASK = re.compile(r"(?m)^[ \t]*Task:")
_EXAMPLE = re.compile(r"(?m)^[ \t]*Example[ \t]*\d*[ \t]*[.:]?")
_OUTPUT = re.compile(r"Output\s*\d*\s*:")
_INPUT = re.compile(r"Input\s*\d*\s*:")
_INPUT_PREFIX = re.compile(r"^Input\s*\d*\s*:")


def _input_output(block: str) -> Pair | None:
    parts = _OUTPUT.split(block)
    if len(parts) < 2:
        return None
    inp, out = parts[0].strip(), parts[1].strip()
    out = _INPUT.split(out)[0].strip()  # a second pair started without "Example"
    inp = _INPUT_PREFIX.sub("", inp).strip()
    return inp, out


def parse_instances(
    completion: str, is_classification: bool, *, finish_reason: str = "stop"
) -> list[Pair]:
    """(input, output) pairs from a continuation of :func:`~.prompts.instance_prompt`."""
    text = completion or ""
    truncated = finish_reason == "length"
    nxt = _NEXT_TASK.search(text)
    if nxt:
        text, truncated = text[: nxt.start()], False
    pairs: list[Pair | None] = []
    if is_classification:
        if "Class label:" not in text:
            return []
        for block in text.split("Class label:")[1:]:
            label, _, inp = block.lstrip(" \t").partition("\n")
            pairs.append((inp.strip(), label.strip()))
    elif _EXAMPLE.search(text):
        blocks = [b for b in _EXAMPLE.split(text) if b.strip()]
        pairs = [_input_output(b) for b in blocks]
    elif _OUTPUT.search(text):
        pairs = [_input_output(text)]
    if truncated and pairs:
        pairs = pairs[:-1]
    return [p for p in pairs if p is not None and p[1]]


def parse_instances_json(completion: str, is_classification: bool) -> list[Pair]:
    """Pairs from ``{"instances": [{"input", "output"}]}`` (classification:
    ``{"instances": [{"class_label", "input"}]}``, the label being the output); [] when invalid.
    Items lacking a string field or with an empty output are skipped."""
    obj = json_object(completion or "")
    items = obj.get("instances") if obj else None
    if not isinstance(items, list):
        return []
    out_key = "class_label" if is_classification else "output"
    pairs: list[Pair] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        inp, out = item.get("input"), item.get(out_key)
        if isinstance(inp, str) and isinstance(out, str) and out.strip():
            pairs.append((inp.strip(), out.strip()))
    return pairs


def filter_instances(
    pairs: list[Pair],
    *,
    drop_colon_endings: bool = True,
    drop_task_on_conflict: bool = False,
) -> tuple[list[Pair], list[tuple[Pair, str]]]:
    """Split one task's pairs into (kept, [(pair, reason), ...]); see the module doc."""
    rejected: list[tuple[Pair, str]] = []
    valid: list[Pair] = []
    for pair in pairs:
        inp, out = pair[0].strip(), pair[1].strip()
        if not out:
            rejected.append((pair, "empty_output"))
        elif inp == out:
            rejected.append((pair, "input_equals_output"))
        elif drop_colon_endings and (inp.endswith(":") or out.endswith(":")):
            rejected.append((pair, "ends_with_colon"))
        else:
            valid.append(pair)
    outputs: dict[str, set[str]] = {}
    for inp, out in valid:
        if inp.strip():
            outputs.setdefault(inp.strip(), set()).add(out.strip())
    conflicting = {inp for inp, outs in outputs.items() if len(outs) > 1}
    kept: list[Pair] = []
    seen: set[Pair] = set()
    for pair in valid:
        key = (pair[0].strip(), pair[1].strip())
        if conflicting and (drop_task_on_conflict or key[0] in conflicting):
            rejected.append((pair, "same_input_different_output"))
        elif key in seen:
            rejected.append((pair, "duplicate"))
        else:
            seen.add(key)
            kept.append(pair)
    return kept, rejected
