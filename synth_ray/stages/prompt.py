"""Prompt templates: files shipped beside each method, named and hashed; and the one rule for
how every method sends its prompts (``prompt_format``).

A template is text with a ``{text}`` placeholder (replaced literally, so braces in documents
are safe). A template written in the Vicuna style of the papers (``<system> USER: <request>
ASSISTANT:``) can be sent as a raw prompt (the paper's way) or, with ``prompt_format: chat``,
as system + user messages through the model's own chat template.

``prompt_format: auto`` (the default of every method that sends prompts) follows the model:
its chat template when its tokenizer has one (an instruction-tuned model), the raw prompt
otherwise (a base model). The papers sent raw text to models of their time (GPT-3 completions,
Vicuna-format prompts); a chat model given raw text often answers with nothing or loops, so
the model's own format is the default here and ``raw`` the paper's option.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

from synth_ray.io.ids import text_hash


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    text: str

    @property
    def hash(self) -> str:
        return text_hash(self.text)

    def render(self, **values: str) -> str:
        out = self.text
        for key, value in values.items():
            out = out.replace("{" + key + "}", value)
        return out

    def render_messages(self, **values: str) -> list[dict[str, str]]:
        """Split a Vicuna-style prompt into system and user messages."""
        body = self.render(**values)
        if "USER:" not in body:
            return [{"role": "user", "content": body.strip()}]
        system, _, user = body.partition("USER:")
        user = user.rsplit("ASSISTANT:", 1)[0] if "ASSISTANT:" in user else user
        msgs = [{"role": "system", "content": system.strip()}] if system.strip() else []
        return msgs + [{"role": "user", "content": user.strip()}]


def load_template(package: str, name: str, override: str | None = None) -> PromptTemplate:
    """The template ``templates/<name>.txt`` of ``package``; ``override`` is a path or text."""
    if override:
        p = Path(override).expanduser()
        if len(override) < 4096 and "\n" not in override and p.is_file():
            return PromptTemplate(f"{name}@{p.name}", p.read_text(encoding="utf-8"))
        return PromptTemplate(f"{name}@inline", override)
    res = resources.files(package).joinpath("templates", f"{name}.txt")
    if not res.is_file():
        raise KeyError(name)
    return PromptTemplate(f"{package.rsplit('.', 1)[-1]}/{name}", res.read_text(encoding="utf-8"))


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def fill(text: str, **values: str) -> str:
    """Replace ``{key}`` placeholders in one pass: values are never re-scanned, and unknown
    placeholders (like Unnatural Instructions' ``{INPUT}``) stay as they are."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


@cache
def shipped_template(package: str, name: str) -> PromptTemplate:
    """A method's template file ``templates/<name>.txt`` without its final newline (files end
    with one newline that is not part of the prompt)."""
    t = load_template(package, name)
    return PromptTemplate(t.name, t.text.removesuffix("\n"))


# -- prompt_format: raw text or the model's chat template ------------------------------------

PromptFormat = Literal["auto", "raw", "chat"]

PROMPT_FORMAT_HELP = (
    "How prompts are sent. auto (default): through the model's chat template when its "
    "tokenizer has one, else as raw text (base models); raw: the paper's prompt text as a "
    "completion prompt; chat: as chat messages. The choice is recorded in run.json "
    "(prompt_format)."
)


@dataclass(frozen=True)
class PromptFormatChoice:
    setting: str  # what the config said: auto | raw | chat
    resolved: str  # raw | chat
    reason: str

    @property
    def input_kind(self) -> str:
        """The engine's input kind (``synth_ray.engines.base``): prompt or messages."""
        return "messages" if self.resolved == "chat" else "prompt"

    def to_dict(self) -> dict[str, str]:
        return {"setting": self.setting, "resolved": self.resolved, "reason": self.reason}


def chat_template_of(tokenizer_source: str | None) -> tuple[bool | None, str]:
    """(whether the tokenizer at ``tokenizer_source`` has a chat template, or None when it
    cannot be loaded; why)."""
    if not tokenizer_source:
        return None, "no tokenizer to look at (a served model name)"
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(tokenizer_source)
    except Exception as exc:  # a served name, an unreachable hub id: say why, fall back
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return None, f"tokenizer {tokenizer_source!r} could not be loaded ({first[:200]})"
    if getattr(tok, "chat_template", None):
        return True, "the model's tokenizer has a chat template"
    return False, "the model's tokenizer has no chat template (a base model)"


def resolve_prompt_format(setting: str, tokenizer_source: str | None) -> PromptFormatChoice:
    """The rule every method that sends prompts follows: ``raw`` and ``chat`` are taken as
    given; ``auto`` is ``chat`` when the model's tokenizer has a chat template, else ``raw``
    (also when the tokenizer cannot be looked at, e.g. a name an OpenAI endpoint serves)."""
    if setting in ("raw", "chat"):
        return PromptFormatChoice(setting, setting, "set in the config")
    if setting != "auto":
        raise ValueError(f"prompt_format must be auto, raw or chat, not {setting!r}")
    has, why = chat_template_of(tokenizer_source)
    return PromptFormatChoice("auto", "chat" if has else "raw", why)


def user_messages(prompt: str) -> list[dict[str, str]]:
    """A completion prompt sent through a chat template: one user turn (the model answers it
    instead of continuing it)."""
    return [{"role": "user", "content": prompt}]


def as_chat_request(row: dict) -> dict:
    """A request row with a raw ``prompt`` as the same request in chat form: ``messages``
    instead of ``prompt``, and an id of its own (``<id>-chat``), so a run never resumes from
    completions stored for the other format."""
    out = {k: v for k, v in row.items() if k != "prompt"}
    out["messages"] = user_messages(row["prompt"])
    out["id"] = f"{row['id']}-chat"
    return out


def apply_prompt_format(ctx, setting: str, tokenizer_source: str | None = None):
    """Resolve a job's ``prompt_format`` once, before any request is built: sets
    ``ctx.prompt_format`` (raw | chat) and records the choice in run.json (``prompt_format``:
    setting, resolved, reason). ``tokenizer_source`` defaults to the job's model (none for a
    name served by an OpenAI-compatible endpoint)."""
    if tokenizer_source is None and ctx.model.kind != "served":
        tokenizer_source = ctx.model.source
    choice = resolve_prompt_format(setting, tokenizer_source)
    ctx.prompt_format = choice.resolved
    ctx.record.extra["prompt_format"] = choice.to_dict()
    return choice
