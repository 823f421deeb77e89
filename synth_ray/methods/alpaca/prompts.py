"""Alpaca's batched instruction-generation prompt and reference sampling (survey: Alpaca).

Stanford Alpaca (Taori et al., 2023) "used the same 175 human-written instruction-response pairs
from the Self-Instruct seed set and generated more instruction-response pairs from gpt-3.5 via
few-shot prompting" (survey). Its pipeline (tatsu-lab/stanford_alpaca ``generate_instruction.py``)
differs from Self-Instruct: one request asks for a batch of tasks (instruction, input and output
together), prompted by 3 seed tasks (never machine ones), with ``text-davinci-003``.

``templates/prompt.txt`` is the reference's ``prompt.txt`` verbatim (tatsu-lab/stanford_alpaca,
Apache-2.0), its typos and its repeated requirement numbers (1, 2, 3, 2, 3, ...) included, plus the
newline ``encode_prompt`` appends to it. :func:`encode_prompt` then adds, per example::

    ###
    1. Instruction: <instruction, whitespace collapsed, trailing ':' stripped>
    1. Input:
    <input, or <noinput> when empty>
    1. Output:
    <output>

and ends with ``###\\n4. Instruction:`` (the next number).

Reference parameters: :data:`NUM_PROMPT_INSTRUCTIONS` 3, :data:`REQUEST_BATCH` 5,
:data:`SAMPLING` (temperature 1.0, top_p 1.0, max_tokens 3072 "to maximize the length", stop
``["\\n20", "20.", "20."]`` deduplicated), :data:`ROUGE_THRESHOLD` 0.7 (keep iff max ROUGE-L
<= 0.7 against seeds + kept machine instructions). Not reproduced: ``logit_bias {"50256": -100}``
(bans GPT-3's ``<|endoftext|>`` token; our sampling has no logit bias, and the id is
tokenizer-specific) and the reference's retry that shrinks ``max_tokens`` by 0.8 when the prompt
plus 3072 tokens exceeds the context: the job must cap ``max_tokens`` to the model's context.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from synth_ray.stages.prompt import PromptTemplate, load_template

__all__ = [
    "NUM_PROMPT_INSTRUCTIONS",
    "NUM_TASKS",
    "REQUEST_BATCH",
    "ROUGE_THRESHOLD",
    "SAMPLING",
    "encode_prompt",
    "seed_examples",
    "template",
]

NUM_PROMPT_INSTRUCTIONS = 3
"""Seed examples per prompt (``num_prompt_instructions=3``), sampled from the seed tasks only."""
NUM_TASKS = 20
"""Tasks the prompt asks for ("a set of 20 diverse task instructions"); the model writes items
4..19 (stopped at "20"), i.e. up to 16 new tasks per request."""
REQUEST_BATCH = 5
"""Prompts per API request in the reference (``request_batch_size=5``); informational."""
ROUGE_THRESHOLD = 0.7
"""Keep a new instruction iff its max ROUGE-L F to the pool is <= this."""

SAMPLING: dict[str, Any] = {
    "temperature": 1.0,
    "top_p": 1.0,
    "max_tokens": 3072,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "stop": [f"\n{NUM_TASKS}", f"{NUM_TASKS}."],
    "n": 1,
}
"""``generate_instruction.py`` decoding arguments (see the module doc for what is left out)."""

_WS = re.compile(r"\s+")


@cache
def template(name: str = "prompt") -> PromptTemplate:
    """The shipped template (``prompt``), e.g. to record its hash."""
    return load_template(__package__, name)


def encode_prompt(examples: list[dict]) -> str:
    """The Alpaca prompt for in-context ``examples`` (dicts with instruction, input, output)."""
    if not examples:
        raise ValueError("encode_prompt needs at least one example")
    parts = [template("prompt").text]
    for idx, ex in enumerate(examples, start=1):
        instruction = _WS.sub(" ", ex["instruction"]).strip().rstrip(":")
        inp = ex.get("input") or ""
        inp = "<noinput>" if inp == "" else inp
        parts.append(
            f"###\n{idx}. Instruction: {instruction}\n{idx}. Input:\n{inp}\n"
            f"{idx}. Output:\n{ex['output']}\n"
        )
    parts.append(f"###\n{len(examples) + 1}. Instruction:")
    return "".join(parts)


def seed_examples(tasks: list[dict] | None = None) -> list[dict]:
    """Alpaca's seed pool: each Self-Instruct seed task's first instance as
    ``{instruction, input, output}`` (default: the shipped 175 seed tasks)."""
    if tasks is None:
        from synth_ray.methods.self_instruct.prompts import load_seed_tasks

        tasks = load_seed_tasks()
    return [
        {
            "instruction": t["instruction"],
            "input": t["instances"][0]["input"],
            "output": t["instances"][0]["output"],
        }
        for t in tasks
    ]
