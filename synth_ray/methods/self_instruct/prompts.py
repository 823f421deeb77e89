"""Self-Instruct prompts, seed tasks and reference sampling (survey: Self-Instruct).

Wang et al. (2022) bootstrap a vanilla LM's own instructions: 8 in-context instructions (all
seed tasks in the first round, then 2 of the 8 from the model's own pool) prompt new ones;
each new instruction is classified as a classification task or not with a 31-shot prompt;
instances are generated input-first (non-classification) or output-first (classification);
new instructions are kept only when their ROUGE-L with every pooled instruction is <= 0.7.

Prompt text. The headers and demonstrations come from the survey and, for the full prompts,
from the reference implementation yizhongw/self-instruct (``self_instruct/templates/
clf_task_template.py``, ``instance_gen_template.py``, ``bootstrap_instructions.py``), reproduced
in ``templates/`` with this attribution (Apache-2.0). Template files end with one newline that
is not part of the prompt.

- :func:`generation_prompt`: ``templates/generate_tasks.txt`` (header) + ``Task i: ...`` lines
  + ``Task 9:``, the survey's format. Each instruction has its whitespace collapsed and a trailing
  ``:`` stripped, as the reference's ``encode_prompt`` does. Deviation (the paper's format, the
  survey's figure): the reference code numbers ``1. ...`` / ``9.``; the paper and the survey
  show ``Task 1: ...`` / ``Task 9:``. ``classification=True`` uses the reference's header for
  its ``--use_clf_seed_tasks_only`` mode (``templates/generate_clf_tasks.txt``).
- :func:`classification_prompt`: ``templates/is_classification.txt``, the paper's prompt: the
  survey's five examples first, in its order, then the reference's remaining 26, i.e. 12 "Yes"
  and 19 "No" seed-task instructions (the survey: "they used 12 classification instructions and
  19 non-classification instructions from the seed dataset") in the reference's fixed order;
  :data:`CLASSIFICATION_EXAMPLE_IDS` names the seed task of each. All 31 are the seed tasks'
  instructions verbatim except ``seed_task_67``, which the paper's prompt words "Find out the
  toxic word or phrase in the sentence." (seed: "find the toxic word ...").
- :func:`instance_prompt`: ``templates/instances_input_first.txt`` or
  ``instances_output_first.txt``: the survey's header and demonstrations verbatim (the survey's
  line wrapping undone, its typographic apostrophes and one doubled space written as the
  reference writes them), followed by demonstrations rendered from the shipped seed tasks
  (:data:`INPUT_FIRST_SEED_IDS`, :data:`OUTPUT_FIRST_SEED_IDS`, their first instance) where the
  reference's longer prompts have more hand-written ones. Ends ``Task: {instruction}\\n``.
  The output-first header is the paper's ("... just generate the correct class label."); the
  reference code's variant ends "... just generate possible class labels.".

Sampling (``*_SAMPLING`` dicts, :class:`synth_ray.engines.SamplingConfig` fields) are the
reference's ``make_gpt3_requests`` arguments; see each constant. ``top_p=0`` with
``temperature=0`` in the reference is written ``top_p=1.0`` (greedy either way; our engines need
``top_p > 0``). ``logprobs=1``/``best_of=1`` are dropped (no effect on the text).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from synth_ray.io.seeds import load_jsonl_records
from synth_ray.stages.prompt import PromptTemplate, fill, shipped_template

__all__ = [
    "CLASSIFICATION_EXAMPLE_IDS",
    "CLASSIFY_SAMPLING",
    "CLF_INSTANCE_SAMPLING",
    "GENERATE_SAMPLING",
    "INPUT_FIRST_SEED_IDS",
    "INSTANCE_SAMPLING",
    "MAX_INSTANCES_PER_TASK",
    "NUM_MACHINE_IN_PROMPT",
    "NUM_PROMPT_INSTRUCTIONS",
    "OUTPUT_FIRST_SEED_IDS",
    "REQUEST_BATCH",
    "ROUGE_THRESHOLD",
    "TEMPLATE_NAMES",
    "classification_prompt",
    "generation_prompt",
    "instance_prompt",
    "instance_sampling",
    "load_seed_tasks",
    "template",
]

# --- reference parameters -------------------------------------------------------------------

NUM_PROMPT_INSTRUCTIONS = 8
"""In-context instructions per generation prompt (``--num_prompt_instructions 8``)."""
NUM_MACHINE_IN_PROMPT = 2
"""Of those, sampled from the model's own pool once it has any (``n=2``; the rest from seeds)."""
REQUEST_BATCH = 5
"""Prompts per API request in the reference (``--request_batch_size 5``); informational."""
ROUGE_THRESHOLD = 0.7
"""Keep a new instruction iff its max ROUGE-L F to the pool is <= this (``> 0.7`` rejected)."""
MAX_INSTANCES_PER_TASK = 5
"""``--max_instances_to_generate 5`` (hence the "Example 6" stop); also the fine-tuning cap."""

_LAST_TASK = 2 * NUM_PROMPT_INSTRUCTIONS  # the reference stops before item 16: new items 9..15

GENERATE_SAMPLING: dict[str, Any] = {
    "temperature": 0.7,
    "top_p": 0.5,
    "max_tokens": 1024,
    "presence_penalty": 2.0,
    "frequency_penalty": 0.0,
    # reference (``N.`` numbering): ["\n\n", "\n16", "16.", "16 ."]; with the paper's ``Task N:``
    # numbering the 16th item is "Task 16"; "\n16" is kept for models that fall back to "16.".
    "stop": ["\n\n", f"Task {_LAST_TASK}", f"\n{_LAST_TASK}"],
    "n": 1,
}
"""``bootstrap_instructions.py``: temperature 0.7, top_p 0.5, max_tokens 1024, presence 2."""

CLASSIFY_SAMPLING: dict[str, Any] = {
    "temperature": 0.0,
    "top_p": 1.0,
    "max_tokens": 3,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "stop": ["\n", "Task"],
    "n": 1,
}
"""``identify_clf_or_not.py``: greedy, max_tokens 3, stop ["\\n", "Task"]."""

INSTANCE_SAMPLING: dict[str, Any] = {
    "temperature": 0.0,
    "top_p": 1.0,
    "max_tokens": 350,
    "presence_penalty": 1.5,
    "frequency_penalty": 0.0,
    "stop": [f"Example {MAX_INSTANCES_PER_TASK + 1}", "Task:"],
    "n": 1,
}
"""``generate_instances.py`` for input-first prompts: greedy, 350 tokens, presence 1.5."""

CLF_INSTANCE_SAMPLING: dict[str, Any] = {**INSTANCE_SAMPLING, "max_tokens": 300}
"""Output-first prompts: 300 tokens ("because the clf template is longer"). The reference uses
300 for a whole request batch when any of its tasks is a classification task; here per task."""


def instance_sampling(is_classification: bool) -> dict[str, Any]:
    """A copy of the instance-generation sampling for one task."""
    src = CLF_INSTANCE_SAMPLING if is_classification else INSTANCE_SAMPLING
    return {k: list(v) if isinstance(v, list) else v for k, v in src.items()}


# --- seed tasks -------------------------------------------------------------------------------

_SEED_KEYS = {
    "id": str,
    "name": str,
    "instruction": str,
    "instances": list,
    "is_classification": bool,
}


def load_seed_tasks(path: str | None = None) -> list[dict]:
    """The seed tasks (default: the shipped 175 Self-Instruct tasks), one JSON object a line.

    Each has ``id, name, instruction, instances[{input, output}], is_classification``. Blank lines
    are skipped; a malformed line raises ``ValueError`` naming its file and line number.
    """
    return load_jsonl_records(path, __package__, "seed_tasks.jsonl", _seed_problem)


def _seed_problem(task: Any) -> str | None:
    if not isinstance(task, dict):
        return "not a JSON object"
    for key, typ in _SEED_KEYS.items():
        if key not in task:
            return f"missing field {key!r}"
        if not isinstance(task[key], typ):
            return f"field {key!r} is not {typ.__name__}"
    if not task["instances"]:
        return "no instances"
    for inst in task["instances"]:
        if not isinstance(inst, dict) or not all(
            isinstance(inst.get(k), str) for k in ("input", "output")
        ):
            return "an instance lacks string 'input' and 'output'"
    return None


# --- templates --------------------------------------------------------------------------------

TEMPLATE_NAMES = (
    "generate_tasks",
    "generate_clf_tasks",
    "is_classification",
    "instances_input_first",
    "instances_output_first",
)


def template(name: str) -> PromptTemplate:
    """The named template (its final newline removed), e.g. to record its hash."""
    return shipped_template(__package__, name)


_WS = re.compile(r"\s+")


def _prompt_instruction(instruction: str) -> str:
    return _WS.sub(" ", instruction).strip().rstrip(":")


def generation_prompt(instructions: list[str], *, classification: bool = False) -> str:
    """``Come up with a series of tasks:\\nTask 1: ...\\n...\\nTask 8: ...\\nTask 9:``."""
    if not instructions:
        raise ValueError("generation_prompt needs at least one instruction")
    header = template("generate_clf_tasks" if classification else "generate_tasks").text
    lines = [header]
    for i, inst in enumerate(instructions, start=1):
        lines.append(f"Task {i}: {_prompt_instruction(inst)}")
    lines.append(f"Task {len(instructions) + 1}:")
    return "\n".join(lines)


CLASSIFICATION_EXAMPLE_IDS: tuple[tuple[str, bool], ...] = tuple(
    (f"seed_task_{n}", label)
    for n, label in [
        (153, True),
        (105, False),
        (108, False),
        (174, True),
        (120, False),
        (172, True),
        (122, False),
        (170, True),
        (67, False),
        (147, False),
        (169, True),
        (32, False),
        (163, True),
        (25, False),
        (167, True),
        (121, False),
        (149, False),
        (7, False),
        (0, False),
        (161, True),
        (155, True),
        (118, False),
        (127, False),
        (164, True),
        (66, False),
        (74, False),
        (148, True),
        (139, False),
        (150, True),
        (15, False),
        (22, False),
    ]
)
"""The seed task (and its "Is it classification?" answer) of each example in
``templates/is_classification.txt``, in prompt order: 12 True, 19 False."""


def classification_prompt(instruction: str) -> str:
    """The 31-shot "Is it classification?" prompt for one instruction (whitespace collapsed)."""
    text = template("is_classification").text
    return fill(text, instruction=_WS.sub(" ", instruction).strip())


INPUT_FIRST_SEED_IDS: tuple[str, ...] = (
    "seed_task_132",
    "seed_task_97",
    "seed_task_35",
    "seed_task_147",
    "seed_task_139",
)
"""Seed tasks rendered as extra input-first demonstrations (short, single-paragraph instances,
chosen after the reference prompt's own extra demonstrations: sorting, rephrasing, equation,
ranking, a program with no input)."""

OUTPUT_FIRST_SEED_IDS: tuple[str, ...] = (
    "seed_task_161",
    "seed_task_150",
    "seed_task_154",
    "seed_task_160",
    "seed_task_164",
)
"""Seed classification tasks rendered as extra output-first demonstrations (short instances;
the survey's own two demonstrations are the seed tasks 157 and 171)."""


def _output_line(output: str) -> str:
    return f"Output:\n{output}" if "\n" in output else f"Output: {output}"


def _input_first_demo(task: dict) -> str:
    inst = task["instances"][0]
    head = f"Task: {task['instruction'].strip()}"
    if inst["input"].strip():
        return f"{head}\nExample 1\n{inst['input'].strip()}\n{_output_line(inst['output'].strip())}"
    return f"{head}\n{_output_line(inst['output'].strip())}"


def _output_first_demo(task: dict) -> str:
    inst = task["instances"][0]
    out = f"Task: {task['instruction'].strip()}\nClass label: {inst['output'].strip()}"
    return f"{out}\n{inst['input'].strip()}" if inst["input"].strip() else out


@lru_cache(maxsize=2)
def _instance_prefix(is_classification: bool) -> str:
    by_id = {t["id"]: t for t in load_seed_tasks()}
    if is_classification:
        name = "instances_output_first"
        demos = [_output_first_demo(by_id[i]) for i in OUTPUT_FIRST_SEED_IDS]
    else:
        name = "instances_input_first"
        demos = [_input_first_demo(by_id[i]) for i in INPUT_FIRST_SEED_IDS]
    return fill(template(name).text, seed_demonstrations="\n\n".join(demos))


def instance_prompt(instruction: str, is_classification: bool) -> str:
    """Output-first (classification) or input-first prompt, ending ``Task: {instruction}\\n``."""
    head, _, tail = _instance_prefix(bool(is_classification)).rpartition("{instruction}")
    return head + instruction.strip() + tail + "\n"


def check_seed_tasks(path: str | None, need: int, need_field: str) -> None:
    """Preflight: the seed tasks load and are at least ``need`` (``ConfigError`` naming fields)."""
    from synth_ray.config import ConfigError

    try:
        tasks = load_seed_tasks(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"field 'seed_tasks': {exc}") from None
    if len(tasks) < need:
        raise ConfigError(
            f"field 'seed_tasks': {len(tasks)} tasks, fewer than {need_field} ({need})"
        )
