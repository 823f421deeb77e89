"""The Evol-Instruct task (see the package docstring for the method, defaults and deviations).

``evol_instruct`` is a chain task: it expands into ``generations`` generations of three steps,
``evol_instruct.evolve-g<g>`` (rewrite each instruction with one of the operations),
``evol_instruct.equal-g<g>`` (only with ``equality: llm``: is the evolved instruction equal to
its parent?) and ``evol_instruct.respond-g<g>`` (the model answers it). A row that fails a step
is a reject with the rule's reason, and its parent goes on down the chain unchanged
(``carried``) to be evolved again by the next generation, as in the paper.
"""

from __future__ import annotations

import random
from typing import Any, Literal

from pydantic import Field, field_validator

from synth_ray.engines.base import SamplingConfig
from synth_ray.io.ids import stable_hash
from synth_ray.stages.parse import json_object
from synth_ray.stages.prompt import fill
from synth_ray.stages.records import stage_sampling
from synth_ray.tasks.base import TASKS, Parsed, Task, TaskConfig
from synth_ray.tasks.evol_instruct import rules

PACKAGE = "synth_ray.tasks.evol_instruct"

IN_DEPTH = ("add_constraints", "deepen", "concretize", "increase_reasoning", "complicate_input")
IN_BREADTH = "in_breadth"
OPERATIONS = (*IN_DEPTH, IN_BREADTH)
Operation = Literal[
    "add_constraints", "deepen", "concretize", "increase_reasoning", "complicate_input",
    "in_breadth",
]  # fmt: skip

GENERATIONS = 4  # paper: M = 4 evolutions of the Alpaca 52k

EVOLVE_SAMPLING: dict[str, Any] = {"temperature": 1.0, "top_p": 1.0, "max_tokens": 512}
RESPOND_SAMPLING: dict[str, Any] = {"temperature": 1.0, "top_p": 1.0, "max_tokens": 1024}
EQUAL_SAMPLING: dict[str, Any] = {"temperature": 0.0, "max_tokens": 8}

EVOLVE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"instruction": {"type": "string", "minLength": 1}},
    "required": ["instruction"],
    "additionalProperties": False,
}
EQUAL_REGEX = "(Equal|Not Equal)"


class EvolInstructConfig(TaskConfig):
    name: Literal["evol_instruct"] = Field("evol_instruct", description="Evol-Instruct.")
    generations: int = Field(
        GENERATIONS, ge=1, le=32, description="M, rounds of evolution (paper: 4)."
    )
    operations: list[Operation] = Field(
        default_factory=lambda: list(OPERATIONS),
        min_length=1,
        description="Operations drawn from, uniformly, one per row and generation (paper: the "
        "five in-depth ones - add_constraints, deepen, concretize, increase_reasoning, "
        "complicate_input - and in_breadth).",
    )
    equality: Literal["llm", "rule", "off"] = Field(
        "llm",
        description="Elimination of an evolved instruction that adds no information: llm (the "
        "paper: the model judges 'Equal' / 'Not Equal', one more request per row), rule (ours, "
        "cheaper: fewer than min_new_words content words new against the parent), off.",
    )
    min_new_words: int = Field(
        1, ge=1, description="equality: rule - new content words an evolution must add."
    )
    sorry_max_words: int = Field(
        rules.SORRY_MAX_WORDS,
        ge=1,
        description="A response with 'sorry' under this many words eliminates its instruction "
        "(paper: 80).",
    )
    strip_marker: bool = Field(
        False,
        description="Strip a leading '#Rewritten Prompt#:' / '#New Prompt#:' label from an "
        "evolution before the rules (ours; the paper eliminates such copies).",
    )
    seed: int = Field(0, description="Seed of the operation drawn per row and generation.")
    sampling: SamplingConfig | None = Field(
        None,
        description="Sampling of the evolution requests. Unset: temperature 1.0, top_p 1.0, "
        "512 tokens (ours; the paper gives none). n must be 1.",
    )
    respond_sampling: SamplingConfig = Field(
        default_factory=lambda: SamplingConfig(**RESPOND_SAMPLING),
        description="Sampling of the responses (ours: temperature 1.0, 1024 tokens).",
    )
    equal_sampling: SamplingConfig = Field(
        default_factory=lambda: SamplingConfig(**EQUAL_SAMPLING),
        description="Sampling of the equality check (greedy, 8 tokens).",
    )
    structured_output: bool = Field(
        False,
        description="Ask for JSON {instruction} for evolutions and constrain the equality "
        "answer to 'Equal|Not Equal' (for weak models); paper: free text.",
    )

    @field_validator("sampling", "respond_sampling", "equal_sampling")
    @classmethod
    def _one_sample(cls, v):
        if v is not None and v.n != 1:
            raise ValueError("n must be 1: one evolution (and one answer) per row and generation")
        return v


def prompt_text(row: dict) -> str:
    """The instruction as evolved and answered: the instruction, then its input if any."""
    inp = row.get("input") or ""
    inp = inp if isinstance(inp, str) else str(inp)
    return row["instruction"].strip() + (f"\n{inp.strip()}" if inp.strip() else "")


def _parent(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in ("parent", "carried")}


def _carry(parent: dict | None) -> dict | None:
    return None if parent is None else {**parent, "carried": True}


@TASKS.register("evol_instruct")
class EvolInstruct(Task):
    """Evol-Instruct (WizardLM): M generations of evolution, elimination, responses."""

    name = "evol_instruct"
    config_cls = EvolInstructConfig
    input_columns = ("instruction",)
    output_columns = ("instruction", "input", "output", "operation", "generation", "parent_id")

    def expand(self) -> list[Task]:
        cfg: EvolInstructConfig = self.config  # type: ignore[assignment]
        steps: list[Task] = []
        for g in range(1, cfg.generations + 1):
            steps.append(Evolve(cfg, g))
            if cfg.equality == "llm":
                steps.append(Equal(cfg, g))
            steps.append(Respond(cfg, g))
        return steps


class _Generation(Task):
    config_cls = EvolInstructConfig
    package = PACKAGE
    part = ""

    def __init__(self, config: EvolInstructConfig, generation: int):
        super().__init__(config)
        self.generation = generation

    @property
    def label(self) -> str:
        return f"evol_instruct.{self.part}-g{self.generation}"

    def skip(self, row: dict) -> bool:
        return bool(row.get("carried"))

    def schema(self) -> dict | None:
        return None  # only the evolution step has an output schema


class Evolve(_Generation):
    """Rewrite each row's instruction with one operation (in-depth or in-breadth)."""

    name = "evol_instruct.evolve"
    part = "evolve"
    input_columns = ("instruction",)
    output_columns = ("instruction", "input", "operation", "generation", "parent_id", "parent")
    templates = ("in_depth", "in_breadth", *IN_DEPTH)
    output_schema = EVOLVE_SCHEMA

    def skip(self, row: dict) -> bool:
        return False  # carried rows are evolved again

    def schema(self) -> dict | None:
        return Task.schema(self)

    def sampling(self) -> SamplingConfig:
        return self.config.sampling or SamplingConfig(**EVOLVE_SAMPLING)

    def operation(self, row: dict) -> str:
        cfg: EvolInstructConfig = self.config  # type: ignore[assignment]
        rng = random.Random(stable_hash(cfg.seed, row.get("id"), self.generation))
        return rng.choice(list(cfg.operations))

    def prompt(self, row: dict) -> str:
        op = self.operation(row)
        given = prompt_text(row)
        if op == IN_BREADTH:
            return fill(self.template("in_breadth").text, prompt=given)
        return fill(self.template("in_depth").text, operation=self.template(op).text, prompt=given)

    def parse(self, row: dict, completion: str, generation: dict) -> Parsed:
        cfg: EvolInstructConfig = self.config  # type: ignore[assignment]
        parent = _parent(row)
        text = completion
        if self.schema() is not None:
            obj = json_object(completion) or {}
            text = obj.get("instruction") if isinstance(obj.get("instruction"), str) else ""
        text = rules.strip_marker(text) if cfg.strip_marker else (text or "").strip()
        why = rules.EMPTY_EVOLUTION if not text else rules.copies_evolving_prompt(text)
        if not why and cfg.equality == "rule":
            why = rules.adds_no_information(text, prompt_text(row), cfg.min_new_words)
        if why:
            return Parsed.drop(why, text[:300], carry=_carry(parent))
        op = self.operation(row)
        child = {
            "id": f"evol-g{self.generation}-{stable_hash(parent.get('id'), op, text, length=20)}",
            "instruction": text,
            "input": "",
            "operation": op,
            "generation": self.generation,
            "parent_id": parent.get("id"),
            "method": "evol_instruct",
            "parent": parent,
        }
        return Parsed.keep(child)


class Equal(_Generation):
    """The paper's elimination of evolutions that add nothing: ask whether the evolved
    instruction equals its parent."""

    name = "evol_instruct.equal"
    part = "equal"
    input_columns = ("instruction", "parent")
    templates = ("equal",)

    def sampling(self) -> SamplingConfig:
        return self.config.equal_sampling  # type: ignore[attr-defined]

    def sampling_json(self, row: dict) -> str:
        s = self.sampling()
        if self.config.structured_output:
            s = s.model_copy(update={"regex": EQUAL_REGEX, "stop": []})
        return stage_sampling(s, None, key=row.get("id"))  # a set seed varies per row

    def prompt(self, row: dict) -> str:
        return fill(
            self.template("equal").text, first=prompt_text(row["parent"]), second=prompt_text(row)
        )

    def parse(self, row: dict, completion: str, generation: dict) -> Parsed:
        answer = " ".join((completion or "").strip().lower().replace('"', "").split())
        if answer.startswith("not equal"):
            return Parsed.keep(row)
        why = rules.NO_INFORMATION if answer.startswith("equal") else "unparsed_equality"
        return Parsed.drop(why, (completion or "")[:300], carry=_carry(row.get("parent")))


class Respond(_Generation):
    """The model answers the evolved instruction; rules 2 and 3 on the response."""

    name = "evol_instruct.respond"
    part = "respond"
    input_columns = ("instruction",)
    output_columns = ("output",)
    templates = ("respond",)

    def sampling(self) -> SamplingConfig:
        return self.config.respond_sampling  # type: ignore[attr-defined]

    def prompt(self, row: dict) -> str:
        return fill(self.template("respond").text, prompt=prompt_text(row))

    def parse(self, row: dict, completion: str, generation: dict) -> Parsed:
        cfg: EvolInstructConfig = self.config  # type: ignore[assignment]
        text = (completion or "").strip()
        why = rules.response_problem(text, cfg.sorry_max_words)
        if why:
            return Parsed.drop(why, text[:300], carry=_carry(row.get("parent")))
        out = {k: v for k, v in row.items() if k != "parent"}
        out["output"] = text
        return Parsed.keep(out)
