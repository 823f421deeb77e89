"""Instruction filters of Self-Instruct and Alpaca: reasons, boundaries, whole-word keywords."""

from __future__ import annotations

import pytest

from synth_ray.filters.instructions import (
    ALPACA_BLOCKLIST,
    SELF_INSTRUCT_BLOCKLIST,
    instruction_reject_reason,
    normalize_instruction,
)


def test_blocklists_are_the_references():
    assert SELF_INSTRUCT_BLOCKLIST == (
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
    assert ALPACA_BLOCKLIST == SELF_INSTRUCT_BLOCKLIST + (
        "video",
        "audio",
        "music",
        "flowchart",
        "diagram",
    )


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "empty"),
        ("   \n\t ", "empty"),
        ("Sort the numbers.", "too_short"),  # 3 words: the reference drops <= 3
        ("Sort these numbers ascendingly.", None),  # 4 words: kept
        ("Describe the image below in detail.", "blocked_keyword:image"),
        ("Plot the data as a line chart.", "blocked_keyword:plot"),
        ("Give me directions so I can go to the station.", "blocked_keyword:go to"),
        ("Which MAPS app is the most popular?", "blocked_keyword:maps"),
        ("Write a program that reverses a string.", "banned_prefix"),
        ("write a program that reverses a string.", "banned_prefix"),
        ('"Carpe diem" means what in English?', "starts_with_punctuation"),
        ("- List three colors of the rainbow.", "starts_with_punctuation"),
        ("Écris une phrase en français, s'il te plaît.", "starts_with_non_ascii"),
        ("¿Cómo se dice hello en español?", "starts_with_non_ascii"),
        ("Explain the rules of chess to a beginner.", None),
    ],
)
def test_reject_reasons(text, reason):
    assert instruction_reject_reason(text) == reason


def test_keywords_are_whole_words():
    # "filed", "mapping", "graphic", "drawer", "plotting", "goto" contain blocked words but are
    # other words: the reference matches \bword\b.
    assert instruction_reject_reason("Explain why the complaint was filed late.") is None
    assert instruction_reject_reason("Describe the mapping between keys and values.") is None
    assert instruction_reject_reason("Suggest a graphic designer's portfolio layout.") is None
    assert instruction_reject_reason("Where should I keep the drawer keys?") is None
    assert instruction_reject_reason("Summarize the plotting of the conspirators.") is None
    assert instruction_reject_reason("Explain the goto statement in C.") is None
    assert instruction_reject_reason("Summarize this file, please.") == "blocked_keyword:file"


def test_word_bounds_inclusive():
    words_150 = " ".join(["word"] * 150)
    assert instruction_reject_reason(words_150) is None
    assert instruction_reject_reason(words_150 + " more") == "too_long"
    assert instruction_reject_reason("a b c d", min_words=5) == "too_short"
    assert instruction_reject_reason("a b c d e", min_words=5, max_words=5) is None


def test_first_failing_rule_wins_in_reference_order():
    # too short before keyword; keyword before prefix; prefix before punctuation
    assert instruction_reject_reason("Draw a cat.") == "too_short"
    assert instruction_reject_reason("Write a program to draw a circle.") == "blocked_keyword:draw"
    # the first keyword of the blocklist order is reported
    assert instruction_reject_reason("Draw a map of the city centre.") == "blocked_keyword:map"


def test_alpaca_blocklist_and_custom_options():
    text = "Compose a short piece of music for the piano."
    assert instruction_reject_reason(text) is None
    assert instruction_reject_reason(text, blocklist=ALPACA_BLOCKLIST) == "blocked_keyword:music"
    assert (
        instruction_reject_reason("Write a program to add two numbers.", banned_prefixes=()) is None
    )
    assert (
        instruction_reject_reason(
            "Translate this sentence into German.", banned_prefixes=("Translate",)
        )
        == "banned_prefix"
    )


def test_normalize_instruction():
    assert (
        normalize_instruction("  Write a\n poem   about\tthe sea.  ")
        == "Write a poem about the sea."
    )
    assert normalize_instruction("write a Python function.") == "write a Python function."
    assert normalize_instruction("write a Python function.", capitalize="first") == (
        "Write a Python function."
    )
    # Self-Instruct's str.capitalize() lower-cases the rest
    assert normalize_instruction("write a Python function.", capitalize="reference") == (
        "Write a python function."
    )
    assert normalize_instruction(" \n ") == ""
    with pytest.raises(ValueError):
        normalize_instruction("x", capitalize="upper")  # type: ignore[arg-type]
