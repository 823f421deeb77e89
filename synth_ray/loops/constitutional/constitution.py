"""The constitution, the red-team prompts, the few-shot examples, and the conversations built
from them (Constitutional AI's supervised stage).

A constitution is a JSONL file of principles, one per line::

    {"name": "privacy",
     "critique": "<a critique request>",
     "revision": "<the paired revision request>",
     "choice": "<the principle as a multiple-choice question, for the feedback model>"}

The shipped files under ``data/`` are this project's own wording (see ``DATA.md`` beside them):
16 principles (the paper's count), 40 red-team prompts and 2 few-shot critique/revision
examples. Any user file of the same shape can replace each of them.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from importlib import resources
from typing import Any

from synth_ray.io import fs
from synth_ray.io.ids import stable_hash

PACKAGE = __name__.rsplit(".", 1)[0]
PRINCIPLE_FIELDS = ("name", "critique", "revision", "choice")


@dataclass(frozen=True)
class Principle:
    name: str
    critique: str
    revision: str
    choice: str


def _shipped_lines(name: str) -> list[str]:
    return resources.files(PACKAGE).joinpath("data", name).read_text("utf-8").splitlines()


def _jsonl(path: str | None, shipped: str) -> list[tuple[int, Any]]:
    """(line number, parsed value) of each non-blank line; a malformed line raises ValueError
    naming the file and line."""
    if path is None:
        lines, where = _shipped_lines(shipped), f"shipped {shipped}"
    else:
        lines, where = fs.read_bytes(fs.absolute(path)).decode("utf-8-sig").splitlines(), path
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append((n, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where} line {n}: not JSON ({exc.msg})") from None
    return out


def load_constitution(path: str | None = None) -> list[Principle]:
    """The principles of ``path`` (null: the shipped constitution). Every field is required and
    a non-empty string; names are unique."""
    where = path or "shipped constitution.jsonl"
    out: list[Principle] = []
    for n, row in _jsonl(path, "constitution.jsonl"):
        if not isinstance(row, dict):
            raise ValueError(f"{where} line {n}: a principle is a JSON object")
        missing = [k for k in PRINCIPLE_FIELDS if not str(row.get(k) or "").strip()]
        if missing:
            raise ValueError(f"{where} line {n}: missing or empty {', '.join(missing)}")
        unknown = sorted(set(row) - set(PRINCIPLE_FIELDS))
        if unknown:
            raise ValueError(
                f"{where} line {n}: unknown fields {unknown} (known: {', '.join(PRINCIPLE_FIELDS)})"
            )
        out.append(Principle(*(str(row[k]).strip() for k in PRINCIPLE_FIELDS)))
    names = [p.name for p in out]
    dup = sorted({x for x in names if names.count(x) > 1})
    if dup:
        raise ValueError(f"{where}: principle names repeated: {dup}")
    if not out:
        raise ValueError(f"{where}: no principles")
    return out


def load_prompts(path: str | None = None) -> list[str]:
    """Red-team prompts: JSONL rows with a ``prompt`` (or ``instruction``) string; null: the
    shipped set. Blank prompts are dropped, repeats kept once (first occurrence)."""
    where = path or "shipped red_team.jsonl"
    out: list[str] = []
    for n, row in _jsonl(path, "red_team.jsonl"):
        text = row.get("prompt", row.get("instruction")) if isinstance(row, dict) else None
        if not isinstance(text, str):
            raise ValueError(f"{where} line {n}: a row needs a 'prompt' string")
        if text.strip() and text.strip() not in out:
            out.append(text.strip())
    if not out:
        raise ValueError(f"{where}: no prompts")
    return out


def load_fewshot(path: str | None, constitution: list[Principle]) -> list[dict[str, str]]:
    """Few-shot examples (prompt, response, principle name, critique, revision); the principle
    must be in the constitution (its requests are the ones shown)."""
    where = path or "shipped fewshot.jsonl"
    names = {p.name for p in constitution}
    keys = ("prompt", "response", "principle", "critique", "revision")
    out = []
    for n, row in _jsonl(path, "fewshot.jsonl"):
        if not isinstance(row, dict) or any(not str(row.get(k) or "").strip() for k in keys):
            raise ValueError(f"{where} line {n}: an example needs {', '.join(keys)}")
        if row["principle"] not in names:
            raise ValueError(
                f"{where} line {n}: principle {row['principle']!r} is not in the constitution"
            )
        out.append({k: str(row[k]).strip() for k in keys})
    return out


def sample_principle(constitution: list[Principle], prompt: str, round_: int, seed: int):
    """The principle of one critique round of one prompt: uniform, seeded by (seed, prompt,
    round), so a rerun samples the same one and rounds of a prompt differ in general."""
    rng = random.Random(stable_hash(seed, prompt, round_, length=16))
    return rng.choice(constitution)


def _fewshot_turns(examples: list[dict[str, str]], by_name: dict[str, Principle]) -> list[dict]:
    turns: list[dict[str, str]] = []
    for ex in examples:
        p = by_name[ex["principle"]]
        turns += [
            {"role": "user", "content": ex["prompt"]},
            {"role": "assistant", "content": ex["response"]},
            {"role": "user", "content": f"Critique request: {p.critique}"},
            {"role": "assistant", "content": f"Critique: {ex['critique']}"},
            {"role": "user", "content": f"Revision request: {p.revision}"},
            {"role": "assistant", "content": f"Revision: {ex['revision']}"},
        ]
    return turns


def critique_messages(
    prompt: str,
    response: str,
    principle: Principle,
    examples: list[dict[str, str]],
    constitution: list[Principle],
) -> list[dict[str, str]]:
    """The conversation asking for a critique: the few-shot examples as earlier turns (each a
    prompt, a response, its critique and revision), then the prompt, the response under review
    and the critique request."""
    by_name = {p.name: p for p in constitution}
    return _fewshot_turns(examples, by_name) + [
        {"role": "user", "content": prompt},
        {"role": "assistant", "content": response},
        {"role": "user", "content": f"Critique request: {principle.critique}"},
    ]


def revision_messages(critique_msgs: list[dict[str, str]], critique: str, principle: Principle):
    """The critique conversation continued: the critique, then the paired revision request."""
    return critique_msgs + [
        {"role": "assistant", "content": f"Critique: {critique}"},
        {"role": "user", "content": f"Revision request: {principle.revision}"},
    ]


def strip_label(text: str, label: str) -> str:
    """A completion without a leading ``Critique:``/``Revision:`` label the model may repeat
    (the few-shot answers start with one)."""
    out = text.strip()
    head = label.lower() + ":"
    if out.lower().startswith(head):
        out = out[len(head) :].strip()
    return out
