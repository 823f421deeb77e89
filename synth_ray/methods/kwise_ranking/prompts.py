"""The prompts to rank answers for, and the judge's ranking prompt (written for synth-ray,
Nectar-style: the K responses labelled A, B, ... in a shuffled order, the judge writes an
ordering of the labels, best first)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from synth_ray.config import ConfigError
from synth_ray.io.ids import stable_hash
from synth_ray.methods.kwise_ranking.ranking import LABELS, SEPARATOR
from synth_ray.stages.prompt import PromptTemplate, fill, load_template


def _prompt_of(obj: dict) -> str:
    if isinstance(obj.get("prompt"), str):
        return obj["prompt"]
    text = obj.get("instruction")
    if not isinstance(text, str):
        return ""
    inp = obj.get("input")
    return text + (f"\n\n{inp}" if isinstance(inp, str) and inp.strip() else "")


def _records(path: str) -> list[dict]:
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"field 'prompts': no such file: {path}")
    if p.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(p).to_pylist()
    text = p.read_text(encoding="utf-8")
    if p.suffix == ".json" and text.lstrip().startswith("["):
        return list(json.loads(text))
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ConfigError(f"field 'prompts': {path} line {n}: not JSON ({exc})") from None
    return out


def load_prompts(path: str | None, limit: int | None = None) -> list[dict]:
    """``[{id, prompt}]``: the file's records with a `prompt` (or `instruction` + `input`)
    text, in file order, duplicates dropped; default: the Self-Instruct seed instructions."""
    if path is None:
        from synth_ray.methods.self_instruct.prompts import load_seed_tasks

        records = [
            {"instruction": t["instruction"], "input": t["instances"][0]["input"]}
            for t in load_seed_tasks()
        ]
    else:
        records = _records(path)
    out, seen = [], set()
    for obj in records:
        text = _prompt_of(obj) if isinstance(obj, dict) else ""
        if not text.strip() or text in seen:
            continue
        seen.add(text)
        out.append({"id": f"p-{stable_hash(text, length=16)}", "prompt": text})
        if limit is not None and len(out) >= limit:
            break
    if not out:
        raise ConfigError(f"field 'prompts': no prompt text in {path or 'the seed tasks'}")
    return out


@cache
def template(name: str) -> PromptTemplate:
    return load_template(__package__, name)


def judge_template(override: str | None, reasoning: bool) -> PromptTemplate:
    name = "rank" if reasoning else "rank_noreason"
    return load_template(__package__, name, override) if override else template(name)


def render_responses(texts: list[str], max_chars: int) -> str:
    """The shown responses: '[Reply A]\\n<text>\\n' blocks in the shown order."""
    blocks = []
    for label, text in zip(LABELS, texts):
        body = text.strip()
        if len(body) > max_chars:
            body = body[:max_chars] + " [...]"
        blocks.append(f"[Reply {label}]\n{body}\n")
    return "\n".join(blocks)


def judge_messages(judge, prompt: str, shown: list[str]) -> list[dict[str, str]]:
    """The ranking request for ``shown`` responses (already in their shuffled order)."""
    t = judge_template(judge.template, judge.reasoning)
    text = fill(
        t.text.removesuffix("\n"),
        k=str(len(shown)),
        prompt=prompt.strip(),
        responses=render_responses(shown, judge.max_response_chars),
        example=SEPARATOR.join(LABELS[: len(shown)]),
    )
    return [{"role": "user", "content": text}]
