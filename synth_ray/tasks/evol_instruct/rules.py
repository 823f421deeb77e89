"""Evol-Instruct's elimination rules (WizardLM, "Instruction Eliminating"), as plain functions
of the model's text. Each returns the reject reason, or None when the rule does not fire.

The paper's four cases of a failed evolution:

1. the evolved instruction adds no information to the original (paper: a ChatGPT equality
   check, the ``evol_instruct.equal`` step; :func:`adds_no_information` is the cheaper rule
   of ``equality: rule``: fewer than ``min_new_words`` content words that the original lacks);
2. the model can hardly answer it: its response contains "sorry" and is short (under 80 words);
3. the response contains only punctuation and stop words;
4. the evolved instruction copies words of the evolving prompt (its markers, such as
   "#Rewritten Prompt#", or the phrases "rewritten prompt", "original prompt", "new prompt").
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

NO_INFORMATION = "no_information_gain"
SORRY = "response_sorry"
ONLY_STOPWORDS = "response_only_stopwords"
COPIES_PROMPT = "copies_evolving_prompt"
EMPTY_EVOLUTION = "empty_evolution"
EMPTY_RESPONSE = "empty_response"

SORRY_MAX_WORDS = 80
"""Paper: a response containing "sorry" "and is relatively short (i.e., less than 80 words)"."""

COPY_PHRASES = (
    "#original prompt#",
    "#rewritten prompt#",
    "#new prompt#",
    "original prompt",
    "rewritten prompt",
    "new prompt",
)
"""The words of this project's evolving prompts (``templates/``) an evolved instruction must not
copy; the paper's own list named its prompts' markers the same way ("#Rewritten Prompt#",
"given prompt", "rewritten prompt", ...)."""

_WORD = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?")
_MARKER = re.compile(r"^\s*#?\s*(rewritten|new)\s+prompt\s*#?\s*:?\s*", re.IGNORECASE)


@cache
def stopwords() -> frozenset[str]:
    text = resources.files(__package__).joinpath("stopwords.txt").read_text(encoding="utf-8")
    return frozenset(text.split())


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text or "")]


def strip_marker(text: str) -> str:
    """``text`` without a leading '#Rewritten Prompt#:' / '#New Prompt#:' label (the
    ``strip_marker`` option; the paper eliminates such instructions instead)."""
    return _MARKER.sub("", text or "", count=1).strip()


def copies_evolving_prompt(instruction: str) -> str | None:
    low = (instruction or "").lower()
    for phrase in COPY_PHRASES:
        if phrase in low:
            return COPIES_PROMPT
    return None


def adds_no_information(evolved: str, original: str, min_new_words: int = 1) -> str | None:
    """Rule 1, cheap form: fewer than ``min_new_words`` content words (not stop words) of the
    evolved instruction are missing from the original."""
    have = set(words(original))
    new = {w for w in words(evolved) if w not in have and w not in stopwords()}
    return NO_INFORMATION if len(new) < min_new_words else None


def is_sorry(response: str, max_words: int = SORRY_MAX_WORDS) -> str | None:
    if "sorry" in (response or "").lower() and len((response or "").split()) < max_words:
        return SORRY
    return None


def only_punctuation_and_stopwords(response: str) -> str | None:
    """Rule 3: no word outside the stop words (punctuation and spaces only besides)."""
    if not (response or "").strip():
        return EMPTY_RESPONSE
    sw = stopwords()
    if all(w in sw for w in words(response)):
        return ONLY_STOPWORDS
    return None


def response_problem(response: str, sorry_max_words: int = SORRY_MAX_WORDS) -> str | None:
    """Rules 2 and 3 on a response (empty first)."""
    return only_punctuation_and_stopwords(response) or is_sorry(response, sorry_max_words)
