"""SteerLM's attribute string and conditioned turns (no engine)."""

from __future__ import annotations

import pytest

from synth_ray.loops.steerlm import conditioning as S

NAMES = ["quality", "toxicity", "humor", "creativity"]


def test_attribute_string_rounds_clips_and_keeps_the_order():
    values = {"humor": 0.4, "quality": 3.5, "toxicity": -1.2, "creativity": 9.0}
    assert S.attribute_string(values, NAMES) == "quality:4,toxicity:0,humor:0,creativity:4"
    assert S.attribute_string({"quality": 2.49}, NAMES) == "quality:2"  # missing names left out
    assert S.parse_attribute_string("quality:4, toxicity:0,humor:0") == {
        "quality": 4,
        "toxicity": 0,
        "humor": 0,
    }
    text = S.attribute_string(values, NAMES)
    assert S.attribute_string(S.parse_attribute_string(text), NAMES) == text  # round trip


@pytest.mark.parametrize("bad", ["quality", "quality:high", ":3", "quality:4,humor"])
def test_malformed_attribute_strings_name_the_pair(bad):
    with pytest.raises(ValueError, match="is not name:integer"):
        S.parse_attribute_string(bad)


def test_conditioned_turns_in_the_system_turn_or_at_the_head_of_the_answer():
    v = {"quality": 4, "toxicity": 0}
    row = S.conditioned_messages("Q?", v, NAMES, "A.")
    assert row == [
        {"role": "system", "content": "Attributes: quality:4,toxicity:0"},
        {"role": "user", "content": "Q?"},
        {"role": "assistant", "content": "A."},
    ]
    assert S.conditioned_messages("Q?", v, NAMES) == row[:2]  # a request: no answer yet
    inline = S.conditioned_messages("Q?", v, NAMES, "A.", placement="assistant")
    assert inline[-1]["content"] == "Attributes: quality:4,toxicity:0\nA."
