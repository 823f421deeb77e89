"""Instruction-level filters shared by Self-Instruct and Alpaca (survey: Self-Instruct, Alpaca).

The survey (Self-Instruct): "They also exclude instructions that contain keywords that can't be
fulfilled by a language model, such as "image", "picture", or "graph"." The reference code
(``post_process_gpt3_response`` in yizhongw/self-instruct
``self_instruct/bootstrap_instructions.py`` and in tatsu-lab/stanford_alpaca
``generate_instruction.py``) applies, in this order:

1. empty instruction dropped;
2. ``len(inst.split()) <= 3`` or ``> 150`` dropped (``min_words=4``, ``max_words=150`` here);
3. a blocklisted keyword anywhere, matched as a whole word, case-insensitively
   (``\\b(word)\\b`` with ``re.IGNORECASE``): :data:`SELF_INSTRUCT_BLOCKLIST`, or
   :data:`ALPACA_BLOCKLIST` (the same plus video, audio, music, flowchart, diagram);
4. instructions starting with "Write a program" dropped;
5. instructions whose first character is ASCII punctuation (``string.punctuation``) dropped;
6. instructions whose first character is not ASCII dropped.

:func:`instruction_reject_reason` returns the first failing rule as a short machine-readable
reason (``"empty"``, ``"too_short"``, ``"too_long"``, ``"blocked_keyword:<word>"``,
``"banned_prefix"``, ``"starts_with_punctuation"``, ``"starts_with_non_ascii"``) so a job can
record why a row was rejected.

Named deviations:

- ``banned_prefixes`` match case-insensitively. In Self-Instruct the reference capitalizes the
  instruction (``str.capitalize``) before its case-sensitive ``startswith("Write a program")``,
  so "write a program ..." is rejected there too; Alpaca does not capitalize, so this also
  rejects a lower-case "write a program ..." that Alpaca would keep.
- The text is stripped (surrounding whitespace) before the checks, as both references strip.

:func:`normalize_instruction` collapses whitespace runs to one space and strips (what both
references do). Self-Instruct additionally calls ``str.capitalize()``, which upper-cases the first
character *and lower-cases all the others* ("Write a Python function" -> "Write a python
function"); that is ``capitalize="reference"``. ``capitalize="first"`` only upper-cases the first
character. The default, ``"none"``, leaves case alone.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from functools import lru_cache
from typing import Literal

__all__ = [
    "ALPACA_BLOCKLIST",
    "SELF_INSTRUCT_BLOCKLIST",
    "instruction_reject_reason",
    "normalize_instruction",
]

SELF_INSTRUCT_BLOCKLIST: tuple[str, ...] = (
    "image",
    "images",
    "graph",
    "graphs",
    "picture",
    "pictures",
    "file",
    "files",
    "map",
    "maps",
    "draw",
    "plot",
    "go to",
)
"""Keywords of yizhongw/self-instruct ``bootstrap_instructions.py`` (what a text model can't do)."""

ALPACA_BLOCKLIST: tuple[str, ...] = SELF_INSTRUCT_BLOCKLIST + (
    "video",
    "audio",
    "music",
    "flowchart",
    "diagram",
)
"""Keywords of tatsu-lab/stanford_alpaca ``generate_instruction.py``: Self-Instruct's plus five."""

_WS = re.compile(r"\s+")


@lru_cache(maxsize=256)
def _word_pattern(word: str) -> re.Pattern[str]:
    return re.compile(r"\b(" + re.escape(word) + r")\b", flags=re.IGNORECASE)


def instruction_reject_reason(
    text: str,
    *,
    blocklist: Iterable[str] = SELF_INSTRUCT_BLOCKLIST,
    min_words: int = 4,
    max_words: int = 150,
    banned_prefixes: Iterable[str] = ("Write a program",),
) -> str | None:
    """None when ``text`` passes the reference instruction filters, else the first reason.

    Words are counted as ``len(text.split())``; an instruction needs ``min_words`` to
    ``max_words`` words inclusive (the reference drops ``<= 3`` and ``> 150``).
    """
    inst = (text or "").strip()
    if not inst:
        return "empty"
    n_words = len(inst.split())
    if n_words < min_words:
        return "too_short"
    if n_words > max_words:
        return "too_long"
    for word in blocklist:
        if _word_pattern(word).search(inst):
            return f"blocked_keyword:{word}"
    folded = inst.casefold()
    if any(folded.startswith(p.casefold()) for p in banned_prefixes):
        return "banned_prefix"
    if inst[0] in string.punctuation:
        return "starts_with_punctuation"
    if not inst[0].isascii():
        return "starts_with_non_ascii"
    return None


def normalize_instruction(
    text: str, *, capitalize: Literal["none", "first", "reference"] = "none"
) -> str:
    """Whitespace runs -> one space, stripped; optionally capitalized (see the module doc).

    ``capitalize="first"`` upper-cases only the first character; ``"reference"`` is Python's
    ``str.capitalize`` as Self-Instruct's code applies it (the rest is lower-cased).
    """
    out = _WS.sub(" ", text or "").strip()
    if not out or capitalize == "none":
        return out
    if capitalize == "first":
        return out[0].upper() + out[1:]
    if capitalize == "reference":
        return out.capitalize()
    raise ValueError(f"capitalize must be 'none', 'first' or 'reference', not {capitalize!r}")
