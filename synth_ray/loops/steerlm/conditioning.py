"""SteerLM's attribute conditioning (survey, "SteerLM"; Dong et al. 2023): the attribute string
that attribute-conditioned SFT puts before each response, and the chat turns that carry it.

The paper writes the values as ``name:value`` pairs joined by commas, integers on a 0-4 scale
(``quality:4,toxicity:0,humor:0,creativity:0,...``), after a special token at the start of the
assistant's turn. A chat model here has no such token: the string goes into a system turn
(``placement: system``, ours) or at the head of the assistant's turn as the paper places it
(``placement: assistant``, where the model learns to write it and generation is prefilled
with it). Values the attribute model predicts are real numbers: they are rounded and clipped
to the scale before they are written (``round_value``).
"""

from __future__ import annotations

from typing import Literal

SCALE = (0, 4)
PREFIX = "Attributes: "


def round_value(v: float, scale: tuple[int, int] = SCALE) -> int:
    """A predicted attribute value as the integer the string carries (half up, clipped)."""
    lo, hi = scale
    return int(min(hi, max(lo, int(float(v) + 0.5))))


def attribute_string(values: dict[str, float], names: list[str]) -> str:
    """``name:value`` for each of ``names`` in that order (a name without a value is left
    out), comma-joined, values rounded to the scale."""
    return ",".join(f"{n}:{round_value(values[n])}" for n in names if n in values)


def parse_attribute_string(text: str) -> dict[str, int]:
    """The values of an attribute string (the inverse of ``attribute_string``); a malformed
    pair raises ValueError naming it."""
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.strip().split(","))):
        name, sep, value = part.partition(":")
        if not sep or not name.strip() or not value.strip().lstrip("-").isdigit():
            raise ValueError(f"attribute pair {part!r} is not name:integer")
        out[name.strip()] = int(value)
    return out


def conditioned_messages(
    prompt: str,
    values: dict[str, float],
    names: list[str],
    response: str | None = None,
    placement: Literal["system", "assistant"] = "system",
) -> list[dict[str, str]]:
    """The turns of one attribute-conditioned example: with a ``response``, a training row;
    without, a generation request for a response with the requested ``values``."""
    attrs = attribute_string(values, names)
    if placement == "system":
        msgs = [{"role": "system", "content": PREFIX + attrs}, {"role": "user", "content": prompt}]
        if response is not None:
            msgs.append({"role": "assistant", "content": response})
        return msgs
    msgs = [{"role": "user", "content": prompt}]
    if response is not None:
        msgs.append({"role": "assistant", "content": f"{PREFIX}{attrs}\n{response}"})
    return msgs
