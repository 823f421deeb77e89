"""The per-row task contract (the shape of distilabel's tasks and of Ray's ``ray.data.llm``
processor stages), run by the generic ``tasks`` job (``synth_ray.tasks.job``).

A task says, for one input row at a time:

- which columns it reads (``input_columns``: checked on the input files before any work, a
  missing column named; a row lacking one is a ``missing_column:<name>`` reject) and which it
  adds (``output_columns``: what the next task of a chain may read);
- how the row becomes a prompt (:meth:`Task.prompt`, from templates in ``templates/`` beside
  the task's module, :meth:`Task.template`);
- its sampling defaults (``default_sampling``, overridden by the task's ``sampling:`` in the
  job config) and an optional output schema (``output_schema``, sent as structured output when
  ``structured_output: true``);
- how a completion becomes output rows or a reject with a reason (:meth:`Task.parse` ->
  :class:`Parsed`); a reject may carry rows back into the stream (Evol-Instruct puts a failed
  evolution's parent back, to be evolved again by the next generation);
- whether a row passes through untouched (:meth:`Task.skip`), and whether the task stands for a
  chain of tasks (:meth:`Task.expand`, e.g. Evol-Instruct's M generations).

``TASKS`` maps task names to task classes; an unknown name fails listing the known ones. A job
config lists tasks as ``{name: <task>, ...its options}``, each validated by its task's config
(unknown keys rejected).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import import_module
from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, Field

from synth_ray.config import StrictModel
from synth_ray.engines.base import SamplingConfig
from synth_ray.io.ids import stable_hash
from synth_ray.registry import Registry
from synth_ray.stages.prompt import PromptTemplate, shipped_template
from synth_ray.stages.records import stage_sampling

TASKS: Registry[type[Task]] = Registry("task")


class TaskConfig(StrictModel):
    """Fields every task shares; a task subclasses it with its own ``name`` literal."""

    name: str = Field(description="The task: one of the registered tasks (`synth-ray tasks`).")
    sampling: SamplingConfig | None = Field(
        None, description="Sampling of this task's requests. Unset: the task's defaults."
    )
    structured_output: bool = Field(
        False,
        description="Ask for the task's output schema (vLLM structured outputs, or "
        "response_format on OpenAI-compatible servers) instead of free text; for tasks that "
        "have one.",
    )
    output_schema: dict[str, Any] | None = Field(
        None, description="Replace the task's output schema (e.g. word patterns for a tiny model)."
    )


@dataclass
class Parsed:
    """What one completion became: output rows, and rejects as (reason, detail) pairs.

    ``carried`` rows go on down the chain although this completion was rejected (a parent put
    back); the dataset never takes them as new rows of this task."""

    rows: list[dict] = field(default_factory=list)
    rejects: list[tuple[str, str]] = field(default_factory=list)
    carried: list[dict] = field(default_factory=list)

    @classmethod
    def keep(cls, *rows: dict) -> Parsed:
        return cls(rows=list(rows))

    @classmethod
    def drop(cls, reason: str, detail: str = "", carry: dict | None = None) -> Parsed:
        return cls(rejects=[(reason, detail)], carried=[carry] if carry is not None else [])


class Task:
    """One per-row LLM step. Subclasses set the class attributes and implement ``prompt`` and
    ``parse``; ``__init__`` takes the validated config."""

    name: ClassVar[str] = ""
    config_cls: ClassVar[type[TaskConfig]] = TaskConfig
    input_columns: ClassVar[tuple[str, ...]] = ()
    output_columns: ClassVar[tuple[str, ...]] = ()
    default_sampling: ClassVar[dict[str, Any]] = {}
    output_schema: ClassVar[dict[str, Any] | None] = None
    templates: ClassVar[tuple[str, ...]] = ()  # template names the task uses (for its hash)
    package: ClassVar[str] = ""  # where templates/ lives; default: the class's module package

    def __init__(self, config: TaskConfig):
        self.config = config

    # -- what the job asks of every task --------------------------------------------------------
    @property
    def label(self) -> str:
        """Names this step in folders, rejects and run.json (a chained task adds detail)."""
        return self.name

    def expand(self) -> list[Task]:
        """The tasks this one stands for, in order (default: itself)."""
        return [self]

    def template(self, name: str) -> PromptTemplate:
        pkg = self.package or type(self).__module__.rsplit(".", 1)[0]
        return shipped_template(pkg, name)

    def fingerprint(self) -> str:
        """Hash of what shapes this task's requests: its config and its templates' texts."""
        hashes = [self.template(n).hash for n in self.templates]
        return stable_hash(self.name, self.label, self.config.model_dump(mode="json"), hashes)

    def schema(self) -> dict | None:
        if not self.config.structured_output:
            return None
        return self.config.output_schema or self.output_schema

    def sampling(self) -> SamplingConfig:
        return self.config.sampling or SamplingConfig(**self.default_sampling)

    def sampling_json(self, row: dict) -> str:
        """The request's sampling: the task's, its seed varied per row (when set)."""
        return stage_sampling(self.sampling(), self.schema(), key=row.get("id"))

    def missing_columns(self, row: dict) -> list[str]:
        """Declared input columns the row lacks (absent, null, or an empty string)."""
        return [c for c in self.input_columns if row.get(c) is None or row.get(c) == ""]

    def skip(self, row: dict) -> bool:
        """True: the row passes to the output unchanged, with no request."""
        return False

    def prompt(self, row: dict) -> str:
        raise NotImplementedError

    def parse(self, row: dict, completion: str, generation: dict) -> Parsed:
        """Output rows or rejects for one completion (``generation``: the engine's row, with
        ``finish_reason``, ``sample_index`` ...)."""
        raise NotImplementedError


def parse_task_config(data: Any) -> TaskConfig:
    """Dispatch on ``name`` to the registered task's config (unknown names list the known)."""
    if isinstance(data, TaskConfig):
        return data
    if isinstance(data, str):
        data = {"name": data}
    if not isinstance(data, dict) or "name" not in data:
        raise ValueError("a task is a mapping with a 'name' field (or a task name)")
    load_builtin_tasks()
    try:
        cls = TASKS.get(data["name"])
    except KeyError as exc:
        raise ValueError(str(exc.args[0])) from None
    return cls.config_cls.model_validate(data)


TaskSpec = Annotated[TaskConfig, BeforeValidator(parse_task_config)]


def build_task(config: TaskConfig | dict | str) -> Task:
    config = parse_task_config(config)
    return TASKS.get(config.name)(config)


def build_chain(configs: list) -> list[Task]:
    """The steps of a job: each configured task expanded (a chain task becomes its parts)."""
    return [t for c in configs for t in build_task(c).expand()]


def chain_problems(steps: list[Task], available: set[str] | None) -> list[str]:
    """Missing columns along a chain: step k may read the input's columns (``available``; None:
    not known) and what steps before it add. One message per missing column, naming it."""
    problems = []
    cols = None if available is None else set(available)
    for k, step in enumerate(steps, start=1):
        if cols is not None:
            for c in step.input_columns:
                if c not in cols:
                    where = "the input" if k == 1 else f"the input and steps 1-{k - 1}"
                    have = ", ".join(sorted(cols)) or "none"
                    problems.append(
                        f"step {k} ({step.label}) needs column {c!r}, which {where} do not "
                        f"provide (columns: {have})"
                    )
            cols |= set(step.output_columns)
    return problems


def load_builtin_tasks() -> Registry[type[Task]]:
    """Import every built-in task module (each registers itself) and return the registry."""
    for mod in BUILTIN_TASK_MODULES:
        import_module(mod)
    return TASKS


BUILTIN_TASK_MODULES = ("synth_ray.tasks.evol_instruct",)


def row_json(row: dict) -> str:
    return json.dumps(row, sort_keys=True, ensure_ascii=False, default=str)
