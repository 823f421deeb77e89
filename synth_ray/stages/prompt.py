"""Prompt templates: files shipped beside each method, named and hashed.

A template is text with a ``{text}`` placeholder (replaced literally, so braces in documents
are safe). A template written in the Vicuna style of the papers (``<system> USER: <request>
ASSISTANT:``) can be sent as a raw prompt (the paper's way) or, with ``prompt_format: chat``,
as system + user messages through the model's own chat template.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

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
